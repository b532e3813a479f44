// The anycast-member binary as a child process, without privileges: --check-config, readiness
// after bind, GET /status, /metrics and /logs on its control socket, a probe counted in /status,
// a clean exit on SIGTERM that removes the socket file, and exit 1 when it cannot bind.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "anycast/wire.hpp"
#include "anycast_net/udp.hpp"
#include "platform/control.hpp"
#include "support/daemon_process.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using platform::Method;

namespace {

constexpr auto kDeadline = 20s;
const auto kLoopback = core::Ipv6Address::parse("::1").value();

std::string document(const test::TempDir& dir, int port = 0) {
  return fmt::format(R"({{"anycast": {{
      "member": {{"anycast": ["2001:db8:aaaa::1"], "unicast": "2001:db8:1::10",
                  "listen": "::1", "port": {}, "control_socket": "{}"}},
      "resolver": {{}}}},
    "web": {{"https_port": 8443}}}})",
                     port, (dir / "member.sock").string());
}

json::object status(const std::string& socket) {
  auto r = platform::ControlClient{socket}.request(Method::Get, "/status");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return r->body.as_object();
}

}  // namespace

TEST_CASE("member daemon: --check-config accepts a valid document and exits 78 on a bad one",
          "[anycast_member][daemon]") {
  test::TempDir dir;
  SECTION("valid") {
    const auto config = dir.write("member.json", document(dir));
    test::DaemonProcess p{{ANYCAST_MEMBER_BIN, "--config", config.string(), "--check-config"},
                          dir / "log"};
    CHECK(p.wait(kDeadline).code == 0);
    CHECK(p.log().find("valid (1 anycast addresses") != std::string::npos);
  }
  SECTION("invalid") {
    const auto config =
        dir.write("member.json", R"({"anycast": {"member": {"anycast": [], "unicast": "::1"}}})");
    test::DaemonProcess p{{ANYCAST_MEMBER_BIN, "--config", config.string(), "--check-config"},
                          dir / "log"};
    CHECK(p.wait(kDeadline).code == 78);
    const auto log = p.log();
    INFO(log);
    CHECK(log.find("/anycast/member/anycast: must list 1..64 IPv6 addresses") != std::string::npos);
    CHECK(log.find("/anycast/member/unicast: ::1 is not a global unicast address") !=
          std::string::npos);
  }
}

TEST_CASE("member daemon: serves its control socket once ready and exits cleanly on SIGTERM",
          "[anycast_member][daemon]") {
  test::TempDir dir;
  const auto config = dir.write("member.json", document(dir));
  const auto socket = (dir / "member.sock").string();
  test::DaemonProcess p{{ANYCAST_MEMBER_BIN, "--config", config.string()}, dir / "log"};
  INFO(p.log());
  REQUIRE(p.wait_ready(kDeadline));

  auto s = status(socket);
  CHECK(s.at("pid").to_number<pid_t>() == p.pid());
  CHECK(s.at("version").is_string());
  CHECK(s.at("anycast") == json::array{"2001:db8:aaaa::1"});
  CHECK(s.at("unicast") == "2001:db8:1::10");
  const auto port = s.at("port").to_number<std::uint16_t>();
  CHECK(port != 0);

  // A probe to ::1, which is neither its anycast nor its unicast address: dropped and counted.
  {
    boost::asio::io_context io;
    auto client = anycast::net::DatagramSocket::open(io.get_executor(), kLoopback, 0);
    REQUIRE(client);
    REQUIRE_FALSE(client->send(anycast::Outgoing{
        .source = {},
        .destination = {kLoopback, port},
        .bytes = anycast::encode(anycast::Message{.flags = 0, .body = anycast::Probe{}})}));
  }
  // The datagram is handled before a later control request only by chance: poll /status, each
  // request with its own deadline, until the count shows or the test's deadline passes.
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (status(socket).at("drops").at("not_anycast").to_number<std::uint64_t>() == 0 &&
         std::chrono::steady_clock::now() < deadline) {
  }
  s = status(socket);
  CHECK(s.at("drops").at("not_anycast").to_number<std::uint64_t>() == 1);
  CHECK(s.at("counters").at("probes").to_number<std::uint64_t>() == 1);

  auto metrics = platform::ControlClient{socket}.request(Method::Get, "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  REQUIRE(metrics->text);
  CHECK(metrics->text->find("anycast_member_drops_total{reason=\"not_anycast\"} 1") !=
        std::string::npos);
  auto logs = platform::ControlClient{socket}.request(Method::Get, "/logs");
  REQUIRE(logs);
  CHECK(logs->status == 200);
  CHECK(json::serialize(logs->body).find("answering for 1 anycast addresses") != std::string::npos);

  const auto exit = p.terminate(kDeadline);
  CHECK(exit.code == 0);
  CHECK_FALSE(std::filesystem::exists(socket));
}

TEST_CASE("member daemon: a port it cannot bind is a startup error (exit 1)",
          "[anycast_member][daemon]") {
  test::TempDir dir;
  boost::asio::io_context io;
  auto taken = anycast::net::DatagramSocket::open(io.get_executor(), kLoopback, 0);
  REQUIRE(taken);
  const auto config = dir.write("member.json", document(dir, taken->local_port()));
  test::DaemonProcess p{{ANYCAST_MEMBER_BIN, "--config", config.string()}, dir / "log"};
  CHECK_FALSE(p.wait_ready(kDeadline));
  CHECK(p.wait(kDeadline).code == 1);
  CHECK(p.log().find("ARR/UDP socket [::1]:") != std::string::npos);
  taken->close();
}
