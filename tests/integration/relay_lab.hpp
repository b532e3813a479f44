// The relay lab tests' shared parts: Debian anytun and satp-relay processes in namespaces, their
// configs, and the checks of a path (pings, checked TCP transfers). anytun gives no readiness
// signal: its TUN device appearing (polled, bounded) and then the first answered ping (bounded
// tries) are what a test waits for. satp-relay signals --ready-fd.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"

namespace relay_lab {
using namespace std::chrono_literals;
namespace json = boost::json;

inline constexpr const char* kIp = "/usr/sbin/ip";
inline constexpr const char* kPassphrase = "relay-lab-passphrase";
inline constexpr auto kDeadline = 20s;
inline constexpr unsigned kTransferBytes = 4 * 1024 * 1024;

struct Suite {
  const char* cipher;
  const char* auth;
};

// One Debian anytun 0.3.8 in a namespace, configured as its -n would (which needs net-tools).
class Anytun {
 public:
  Anytun(test::Lab& lab, const std::string& ns, std::vector<std::string> args,
         const std::string& address) {
    std::vector<std::string> argv{"anytun", "-D", "-L", "stderr:2", "-t", "tun", "-d", "anyt0"};
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = std::make_unique<test::Process>(lab.spawn(ns, argv));
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!lab.run(ns, {kIp, "link", "show", "dev", "anyt0"}).ok()) {
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(20ms);
    }
    REQUIRE(lab.run(ns, {kIp, "addr", "add", address, "dev", "anyt0"}).ok());
    REQUIRE(lab.run(ns, {kIp, "link", "set", "dev", "anyt0", "up", "mtu", "1400"}).ok());
  }

 private:
  std::unique_ptr<test::Process> process_;
};

// satp-relay in a namespace with a config document written to the test's directory.
class Relay {
 public:
  Relay(test::Lab& lab, const test::TempDir& dir, const std::string& ns,
        const json::object& anytun) {
    socket_ = (dir / (ns + ".sock")).string();
    json::object section = anytun;
    for (auto& [key, value] : section) value.as_object()["control_socket"] = socket_;
    const auto config = dir.write(ns + ".json", json::serialize(json::object{{"anytun", section}}));
    process_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", lab.netns_name(ns), SATP_RELAY_BIN,
                                 "--config", config.string()},
        dir / (ns + ".log"));
    INFO(process_->log());
    REQUIRE(process_->wait_ready(kDeadline));
  }

  json::object get(const std::string& target) const {
    auto r = platform::ControlClient{socket_}.request(platform::Method::Get, target);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return r->body.as_object();
  }
  std::string log() const { return process_->log(); }
  // SIGTERM: the daemon stops as on a shutdown (a client releases its bindings).
  void stop() { process_->terminate(kDeadline); }

 private:
  std::string socket_;
  std::unique_ptr<test::DaemonProcess> process_;
};

// The anycast side of a lab: one link between c (2001:db8:10::2) and r (2001:db8:10::1).
inline constexpr const char* kPair =
    "netns c\nnetns r\nveth c:eth0 r:eth0\n"
    "addr c eth0 2001:db8:10::2/64\naddr r eth0 2001:db8:10::1/64\n";

// A relay node "r" (sender id 1) listening on `listen`, its TUN satp0 at 198.51.100.1/24.
inline json::object relay_node(const char* listen, json::array connections) {
  return json::object{
      {"relay", json::object{{"name", "r"},
                             {"sender_id", 1},
                             {"listen", json::array{listen}},
                             {"tun", json::object{{"name", "satp0"},
                                                  {"addresses", json::array{"198.51.100.1/24"}}}},
                             {"connections", std::move(connections)}}}};
}

inline json::object connection(int mux, const char* role, const Suite& suite) {
  return json::object{{"mux", mux},
                      {"role", role},
                      {"passphrase", kPassphrase},
                      {"cipher", suite.cipher},
                      {"auth", suite.auth}};
}

// A Debian anytun client (sender id 11, role right) in "c" of kPair, of the relay r, MUX 1.
inline std::vector<std::string> anytun_client_args(const Suite& suite) {
  return {"-i", "2001:db8:10::2", "-p", "4444",      "-r", "2001:db8:10::1",
          "-o", "4444",           "-s", "11",        "-m", "1",
          "-e", "right",          "-E", kPassphrase, "-c", suite.cipher,
          "-a", suite.auth};
}

// satp-relay as a client node (sender id 11, role right, MUX 1) of `server`, its TUN satp0 at
// 198.51.100.10/24.
inline json::object client_node(const std::string& server, const Suite& suite) {
  return json::object{
      {"client",
       json::object{{"server", server},
                    {"sender_id", 11},
                    {"connection", connection(1, "right", suite)},
                    {"tun", json::object{{"name", "satp0"},
                                         {"addresses", json::array{"198.51.100.10/24"}}}}}}};
}

// Pings until one is answered (the path is up: neighbours resolved, threads running).
inline void await_path(test::Lab& lab, const std::string& ns, const std::string& to) {
  bool ready = false;
  for (int i = 0; i < 20 && !ready; ++i)
    ready = lab.run(ns, {"ping", "-n", "-c", "1", "-W", "1", to}, 5s).ok();
  REQUIRE(ready);
}

inline void check_pings(test::Lab& lab, const std::string& ns, const std::string& to) {
  const auto ping = lab.run(ns, {"ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", to}, 20s);
  INFO(ns << " -> " << to << "\n" << ping.output);
  CHECK(ping.ok());
  CHECK(ping.output.find("5 received") != std::string::npos);
}

// A tcp_check server in `server_ns` on `address`; a put and a get of kTransferBytes from
// `client_ns`: data flows both ways and every byte is checked.
inline void check_transfers(test::Lab& lab, const test::TempDir& dir, const std::string& server_ns,
                            const std::string& address, const std::string& client_ns) {
  test::DaemonProcess server{{kIp, "netns", "exec", lab.netns_name(server_ns), TCP_CHECK_BIN,
                              "serve", "--listen", address, "--port", "5001"},
                             dir / (server_ns + "-tcp.log")};
  REQUIRE(server.wait_ready(kDeadline));
  for (const char* mode : {"put", "get"}) {
    const auto r = lab.run(client_ns,
                           {TCP_CHECK_BIN, mode, "--to", address, "--port", "5001", "--bytes",
                            std::to_string(kTransferBytes)},
                           60s);
    INFO(mode << " " << client_ns << " -> " << address << ": " << r.output);
    CHECK(r.ok());
  }
}

inline std::uint64_t counter(const json::object& client, const char* name) {
  return client.at(name).to_number<std::uint64_t>();
}

}  // namespace relay_lab
