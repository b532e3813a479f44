// The relay against live Debian anytun 0.3.8 nodes in namespaces (root): issue 8's tests 1 and 2.
//  - a Debian anytun client and satp-relay in tunnel mode, and satp-relay as a client of a Debian
//    anytun server: pings and checked TCP transfers both ways, with AES-CTR + HMAC-SHA1 and with
//    the null cipher;
//  - two Debian anytun clients that reach each other through satp-relay's routing;
//  - hostile datagrams (truncated, unknown MUX, wrong tag, a replay) dropped and counted by reason.
// anytun gives no readiness signal: its TUN device appearing (polled, bounded) and then the first
// answered ping (bounded tries) are what the test waits for. satp-relay signals --ready-fd.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "core/bytes.hpp"
#include "platform/control.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"

using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kPassphrase = "relay-lab-passphrase";
constexpr auto kDeadline = 20s;
constexpr unsigned kTransferBytes = 4 * 1024 * 1024;

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

 private:
  std::string socket_;
  std::unique_ptr<test::DaemonProcess> process_;
};

// The anycast side of a lab: one link between c (2001:db8:10::2) and r (2001:db8:10::1).
constexpr const char* kPair =
    "netns c\nnetns r\nveth c:eth0 r:eth0\n"
    "addr c eth0 2001:db8:10::2/64\naddr r eth0 2001:db8:10::1/64\n";

// A relay node "r" (sender id 1) listening on `listen`, its TUN satp0 at 198.51.100.1/24.
json::object relay_node(const char* listen, json::array connections) {
  return json::object{
      {"relay", json::object{{"name", "r"},
                             {"sender_id", 1},
                             {"listen", json::array{listen}},
                             {"tun", json::object{{"name", "satp0"},
                                                  {"addresses", json::array{"198.51.100.1/24"}}}},
                             {"connections", std::move(connections)}}}};
}

json::object connection(int mux, const char* role, const Suite& suite) {
  return json::object{{"mux", mux},
                      {"role", role},
                      {"passphrase", kPassphrase},
                      {"cipher", suite.cipher},
                      {"auth", suite.auth}};
}

// Pings until one is answered (the path is up: neighbours resolved, threads running).
void await_path(test::Lab& lab, const std::string& ns, const std::string& to) {
  bool ready = false;
  for (int i = 0; i < 20 && !ready; ++i)
    ready = lab.run(ns, {"ping", "-n", "-c", "1", "-W", "1", to}, 5s).ok();
  REQUIRE(ready);
}

void check_pings(test::Lab& lab, const std::string& ns, const std::string& to) {
  const auto ping = lab.run(ns, {"ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", to}, 20s);
  INFO(ns << " -> " << to << "\n" << ping.output);
  CHECK(ping.ok());
  CHECK(ping.output.find("5 received") != std::string::npos);
}

// A tcp_check server in `server_ns` on `address`; a put and a get of kTransferBytes from
// `client_ns`: data flows both ways and every byte is checked.
void check_transfers(test::Lab& lab, const test::TempDir& dir, const std::string& server_ns,
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

std::uint64_t counter(const json::object& client, const char* name) {
  return client.at(name).to_number<std::uint64_t>();
}

}  // namespace

TEST_CASE("relay: a Debian anytun client and satp-relay in tunnel mode", "[relay][interop]") {
  const auto suite = GENERATE(Suite{"aes-ctr", "sha1"}, Suite{"null", "sha1"});
  INFO("cipher " << suite.cipher);
  test::Lab lab{kPair};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  Relay relay{lab, dir, "r", relay_node("[2001:db8:10::1]:4444", {mux1})};
  Anytun client{lab,
                "c",
                {"-i", "2001:db8:10::2", "-p", "4444",      "-r", "2001:db8:10::1",
                 "-o", "4444",           "-s", "11",        "-m", "1",
                 "-e", "right",          "-E", kPassphrase, "-c", suite.cipher,
                 "-a", suite.auth},
                "198.51.100.10/24"};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  check_transfers(lab, dir, "r", "198.51.100.1", "c");
  check_transfers(lab, dir, "c", "198.51.100.10", "r");

  const auto c = relay.get("/clients/1");
  INFO(json::serialize(c) << "\n" << relay.log());
  CHECK(counter(c, "rx_packets") > 2 * kTransferBytes / 1400);
  CHECK(counter(c, "tx_packets") > 2 * kTransferBytes / 1400);
  CHECK(c.at("drops").as_object().empty());
  CHECK(c.at("peer").as_string() == "[2001:db8:10::2]:4444");
}

TEST_CASE("relay: satp-relay as the client of a Debian anytun server", "[relay][interop]") {
  const auto suite = GENERATE(Suite{"aes-ctr", "sha1"}, Suite{"null", "sha1"});
  INFO("cipher " << suite.cipher);
  test::Lab lab{kPair};
  test::TempDir dir;
  // The server learns its client's endpoint from the first packet (no -r).
  Anytun server{lab,
                "r",
                {"-i", "2001:db8:10::1", "-p", "4444", "-s", "1", "-m", "1", "-e", "left", "-E",
                 kPassphrase, "-c", suite.cipher, "-a", suite.auth},
                "198.51.100.1/24"};
  auto conn = connection(1, "right", suite);
  Relay client{
      lab, dir, "c",
      json::object{
          {"client",
           json::object{{"server", "[2001:db8:10::1]:4444"},
                        {"sender_id", 11},
                        {"connection", conn},
                        {"tun", json::object{{"name", "satp0"},
                                             {"addresses", json::array{"198.51.100.10/24"}}}}}}}};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  check_transfers(lab, dir, "r", "198.51.100.1", "c");
  check_transfers(lab, dir, "c", "198.51.100.10", "r");

  const auto c = client.get("/clients/1");
  INFO(json::serialize(c) << "\n" << client.log());
  CHECK(counter(c, "rx_packets") > 2 * kTransferBytes / 1400);
  CHECK(c.at("drops").as_object().empty());
}

TEST_CASE("relay: two Debian anytun clients reach each other through satp-relay",
          "[relay][interop]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{
      "netns c1\nnetns c2\nnetns r\n"
      "veth c1:eth0 r:eth1\nveth c2:eth0 r:eth2\n"
      "addr c1 eth0 2001:db8:11::2/64\naddr r eth1 2001:db8:11::1/64\n"
      "addr c2 eth0 2001:db8:12::2/64\naddr r eth2 2001:db8:12::1/64\n"};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  auto mux2 = connection(2, "left", suite);
  mux2["routes"] = json::array{"198.51.100.20/32"};
  Relay relay{lab, dir, "r", relay_node("[::]:4444", {mux1, mux2})};
  const auto anytun_args = [&](const char* self, const char* relay_address, const char* mux) {
    return std::vector<std::string>{
        "-i", self, "-p", "4444",  "-r", relay_address, "-o", "4444",       "-s", "11",
        "-m", mux,  "-e", "right", "-E", kPassphrase,   "-c", suite.cipher, "-a", suite.auth};
  };
  Anytun c1{lab, "c1", anytun_args("2001:db8:11::2", "2001:db8:11::1", "1"), "198.51.100.10/24"};
  Anytun c2{lab, "c2", anytun_args("2001:db8:12::2", "2001:db8:12::1", "2"), "198.51.100.20/24"};
  // Each client's first packet tells the relay where it is.
  await_path(lab, "c1", "198.51.100.1");
  await_path(lab, "c2", "198.51.100.1");
  check_pings(lab, "c1", "198.51.100.20");
  check_pings(lab, "c2", "198.51.100.10");
  check_transfers(lab, dir, "c2", "198.51.100.20", "c1");

  const auto clients = relay.get("/clients").at("clients").as_array();
  INFO(json::serialize(clients) << "\n" << relay.log());
  REQUIRE(clients.size() == 2);
  for (const auto& c : clients) {
    CHECK(counter(c.as_object(), "rx_packets") > kTransferBytes / 1400);
    CHECK(counter(c.as_object(), "tx_packets") > kTransferBytes / 1400);
    CHECK(c.as_object().at("drops").as_object().empty());
  }
}

TEST_CASE("relay: hostile datagrams are dropped and counted and the relay keeps serving",
          "[relay]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kPair};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  Relay relay{lab, dir, "r", relay_node("[2001:db8:10::1]:4444", {mux1})};
  // The client's end, sealed here: an ICMP echo request 198.51.100.10 -> 198.51.100.1.
  satp::Settings settings;
  settings.role = satp::Role::Right;
  auto codec =
      satp::Codec::create(settings, satp::master_key_from_passphrase(kPassphrase, settings.kd_prf),
                          satp::master_salt_from_passphrase(kPassphrase));
  REQUIRE(codec);
  const std::array<std::uint8_t, 28> echo{0x45, 0, 0,    28,   0,   1,  0,   0,  64,  1,
                                          0,    0, 198,  51,   100, 10, 198, 51, 100, 1,
                                          8,    0, 0xf7, 0xff, 0,   0,  0,   0};
  std::array<std::byte, 256> sealed_bytes{};
  auto sealed = codec->seal({.seq = 1, .sender_id = 11, .mux = 1}, satp::kPayloadIpv4,
                            std::as_bytes(std::span{echo}), sealed_bytes);
  REQUIRE(sealed);
  const std::vector<std::byte> valid(sealed->begin(), sealed->end());
  auto forged = valid;
  forged[10] ^= std::byte{1};  // a ciphertext bit: the tag no longer verifies
  auto unknown_mux = valid;
  unknown_mux[7] = std::byte{99};
  const std::vector<std::vector<std::byte>> datagrams{
      {std::byte{0}, std::byte{1}, std::byte{2}},  // truncated: no whole header
      unknown_mux,                                 // no connection with MUX 99
      forged,                                      // the tag does not verify
      valid,                                       // accepted
      valid,                                       // the same again: a replay
  };
  lab.enter("c", [&] {
    const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(4444);
    ::inet_pton(AF_INET6, "2001:db8:10::1", &to.sin6_addr);
    for (const auto& d : datagrams)
      ::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    ::close(fd);
  });
  // The accepted packet reaches the relay's TUN; once it is counted, the ones before it were
  // handled too (one socket, handled in order), and the replay after it within the same batch or
  // the next: poll the counters, bounded.
  json::object status;
  json::object client;
  const auto until = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    status = relay.get("/status");
    client = relay.get("/clients/1");
    const auto& drops = client.at("drops").as_object();
    if (drops.contains("replay") && counter(client, "rx_packets") == 1) break;
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(20ms);
  }
  INFO(json::serialize(status) << "\n" << json::serialize(client));
  const auto& relay_drops = status.at("drops").as_object();
  CHECK(relay_drops.at("truncated").to_number<int>() == 1);
  CHECK(relay_drops.at("unknown_mux").to_number<int>() == 1);
  const auto& drops = client.at("drops").as_object();
  CHECK(drops.at("bad_tag").to_number<int>() == 1);
  CHECK(drops.at("replay").to_number<int>() == 1);
  CHECK(counter(client, "rx_packets") == 1);
  // The forged packet did not move the peer; the accepted one set it.
  CHECK(counter(client, "peer_changes") == 1);
}
