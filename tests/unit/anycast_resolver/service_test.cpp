// Tests for anycast_resolver/service.hpp without privileges: the service runs on its own thread
// with its sockets in a temporary directory, and the tests talk to it as the preload library and
// an operator do, over the real Unix seqpacket query socket, the control socket, and ARR/UDP on
// loopback.
#include "anycast_resolver/service.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "anycast/query.hpp"
#include "anycast/wire.hpp"
#include "platform/control.hpp"
#include "platform/fd.hpp"

using anycast_resolver::Config;
using anycast_resolver::Policy;
using anycast_resolver::Service;
namespace q = anycast::query;
using namespace std::chrono_literals;

namespace {

core::Ipv6Address ip6(const char* text) {
  return core::Ipv6Address::parse(text).value();
}

// A fresh directory for the sockets, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "acr-XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

// Nothing answers at this port: the resolutions of these tests never bind.
Config config_in(const TempDir& dir, Policy policy = Policy::Probe) {
  Config c;
  c.prefixes = {core::Ipv6Prefix::parse("2001:db8:a::/48").value()};
  c.policy = policy;
  c.port = 9;
  c.probe_timeout = 20ms;
  c.probe_attempts = 2;
  c.negative_ttl = 30s;
  c.socket = (dir.path / "query.sock").string();
  c.control_socket = (dir.path / "control.sock").string();
  return c;
}

// The service on its own io_context thread; stopped on that thread, destroyed after it ends.
struct Running {
  boost::asio::io_context io{1};
  std::unique_ptr<Service> service;
  std::thread thread;

  explicit Running(Config config) {
    auto started = Service::start(io, std::move(config), {.version = "test", .ready_fd = {}});
    INFO((started ? std::string{} : started.error()));
    REQUIRE(started.has_value());
    service = std::move(*started);
    thread = std::thread{[this] { io.run(); }};
  }
  ~Running() {
    boost::asio::post(io, [this] { service->stop(); });
    thread.join();
    service.reset();
  }
};

// The preload library's side of the query socket, blocking with a receive deadline.
class QueryClient {
 public:
  explicit QueryClient(const std::string& path)
      : fd_{::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)} {
    REQUIRE(fd_.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    timeval deadline{.tv_sec = 10, .tv_usec = 0};
    REQUIRE(::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &deadline, sizeof deadline) == 0);
  }

  std::optional<q::Answer> send_raw(std::span<const std::uint8_t> bytes) {
    REQUIRE(::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
    std::array<std::uint8_t, 64> buffer{};
    const auto n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
    if (n <= 0) return std::nullopt;
    return q::parse_answer(std::span{buffer}.first(static_cast<std::size_t>(n)));
  }

  std::optional<q::Answer> ask(const char* address, std::uint16_t flags = 0,
                               std::uint16_t wait_ms = 0) {
    const auto bytes = q::encode(q::Request{.op = q::Op::Resolve,
                                            .flags = flags,
                                            .wait_ms = wait_ms,
                                            .address = ip6(address).bytes(),
                                            .unicast = {}});
    return send_raw(bytes);
  }

 private:
  platform::Fd fd_;
};

boost::json::object get_json(const std::string& control, const std::string& target,
                             unsigned expected_status = 200) {
  auto r = platform::ControlClient{control}.request(platform::Method::Get, target);
  REQUIRE(r.has_value());
  INFO(target << ": " << boost::json::serialize(r->body));
  REQUIRE(r->status == expected_status);
  return r->body.as_object();
}

std::uint64_t counter(const boost::json::object& status, const char* group, const char* name) {
  return status.at(group).at(name).to_number<std::uint64_t>();
}

// ARR/UDP datagrams arrive on their own socket: poll GET /status until `group`/`name` reaches
// `at_least` (nullopt when 10 s pass first).
std::optional<boost::json::object> await_counter(const std::string& control, const char* group,
                                                 const char* name, std::uint64_t at_least) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto status = get_json(control, "/status");
    if (counter(status, group, name) >= at_least) return status;
    std::this_thread::sleep_for(1ms);
  }
  return std::nullopt;
}

// Sends one datagram from [::1] to the service's ARR/UDP port.
void send_udp(std::uint16_t port, std::span<const std::byte> bytes) {
  platform::Fd fd{::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  REQUIRE(fd.valid());
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(port);
  to.sin6_addr = in6addr_loopback;
  REQUIRE(::sendto(fd.get(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof to) == static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("resolver service: an address outside the prefixes passes through",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  QueryClient client{config.socket};
  // Several requests in sequence on one connection.
  for (const char* a : {"2001:db8:b::1", "::ffff:192.0.2.1", "fe80::1", "::1"}) {
    INFO(a);
    const auto answer = client.ask(a, q::kFlagMayWait, 300);
    REQUIRE(answer);
    CHECK(answer->status == q::Status::PassThrough);
    CHECK(answer->ttl_ms == 1000);
  }
  const auto status = get_json(config.control_socket, "/status");
  CHECK(counter(status, "counters", "queries") == 4);
  CHECK(counter(status, "counters", "pass_through") == 4);
  CHECK(counter(status, "counters", "probes_sent") == 0);
  CHECK(counter(status, "counters", "send_errors") == 0);
  CHECK(status.at("entries").to_number<int>() == 0);
  CHECK(status.at("policy").as_string() == "probe");
  CHECK(status.at("query_socket").as_string() == config.socket);
  CHECK(status.at("port").to_number<int>() == running.service->port());
  CHECK(running.service->port() != 0);
}

TEST_CASE("resolver service: the query socket is open to every local user",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  struct stat st {};
  REQUIRE(::stat(config.socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0666);
}

TEST_CASE("resolver service: a malformed request is Refused and counted by reason",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  QueryClient client{config.socket};
  auto good = q::encode(q::Request{.op = q::Op::Resolve,
                                   .flags = 0,
                                   .wait_ms = 0,
                                   .address = ip6("2001:db8:b::1").bytes(),
                                   .unicast = {}});
  auto short_one = std::span<const std::uint8_t>{good}.first(39);
  auto answer = client.send_raw(short_one);
  REQUIRE(answer);
  CHECK(answer->status == q::Status::Refused);
  auto bad_magic = good;
  bad_magic[1] = 'X';
  answer = client.send_raw(bad_magic);
  REQUIRE(answer);
  CHECK(answer->status == q::Status::Refused);
  auto bad_flags = good;
  bad_flags[5] = 0x80;
  answer = client.send_raw(bad_flags);
  REQUIRE(answer);
  CHECK(answer->status == q::Status::Refused);
  // The connection still serves.
  answer = client.send_raw(good);
  REQUIRE(answer);
  CHECK(answer->status == q::Status::PassThrough);

  const auto status = get_json(config.control_socket, "/status");
  CHECK(counter(status, "drops", "truncated") == 1);
  CHECK(counter(status, "drops", "bad_magic") == 1);
  CHECK(counter(status, "drops", "bad_flags") == 1);
  CHECK(counter(status, "counters", "queries") == 1);
}

TEST_CASE("resolver service: a non-blocking query for a prefix address is Pending and probes",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  QueryClient client{config.socket};
  const auto answer = client.ask("2001:db8:a::1");
  REQUIRE(answer);
  CHECK(answer->status == q::Status::Pending);
  CHECK(answer->ttl_ms == 0);
  // The first attempt went out before the answer. Without a route to 2001:db8:a::/48 the kernel
  // refuses it, which is a send error; either way the resolution tried.
  const auto status = get_json(config.control_socket, "/status");
  CHECK(counter(status, "counters", "misses") == 1);
  CHECK(counter(status, "counters", "pending_answers") == 1);
  CHECK(counter(status, "counters", "probes_sent") + counter(status, "counters", "send_errors") >=
        1);
  CHECK(status.at("entries").to_number<int>() == 1);
}

TEST_CASE("resolver service: a blocking query with no member is Pending after its budget",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  QueryClient client{config.socket};
  // Budget: min(5000, 20 ms * 2 attempts).
  auto answer = client.ask("2001:db8:a::2", q::kFlagMayWait, 5000);
  REQUIRE(answer);
  CHECK(answer->status == q::Status::Pending);
  // The resolution ended with the budget: the address is negative now.
  answer = client.ask("2001:db8:a::2");
  REQUIRE(answer);
  CHECK(answer->status == q::Status::PassThrough);
  const auto entry = get_json(config.control_socket, "/cache/2001:db8:a::2");
  CHECK(entry.at("state").as_string() == "negative");
  CHECK(entry.at("anycast").as_string() == "2001:db8:a::2");
  CHECK_FALSE(entry.at("verified").as_bool());
  CHECK(entry.at("expires_in_ms").to_number<std::int64_t>() > 20'000);
  const auto status = get_json(config.control_socket, "/status");
  CHECK(counter(status, "counters", "resolutions_failed") == 1);
  CHECK(counter(status, "counters", "probes_sent") + counter(status, "counters", "send_errors") >=
        2);
  CHECK(counter(status, "counters", "pending_answers") == 1);
  CHECK(counter(status, "counters", "pass_through") == 1);
}

TEST_CASE("resolver service: the cache is listed, looked up and flushed on the control socket",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  QueryClient client{config.socket};
  REQUIRE(client.ask("2001:db8:a::1"));
  REQUIRE(client.ask("2001:db8:a::2"));
  const auto list = get_json(config.control_socket, "/cache");
  REQUIRE(list.at("entries").as_array().size() == 2);
  // Most recently used first.
  CHECK(list.at("entries").as_array()[0].at("anycast").as_string() == "2001:db8:a::2");
  get_json(config.control_socket, "/cache/2001:db8:a::3", 404);
  get_json(config.control_socket, "/cache/not-an-address", 400);

  auto flushed = platform::ControlClient{config.control_socket}.request(platform::Method::Post,
                                                                        "/cache/flush");
  REQUIRE(flushed.has_value());
  CHECK(flushed->status == 200);
  CHECK(flushed->body.at("flushed").to_number<int>() == 2);
  CHECK(get_json(config.control_socket, "/cache").at("entries").as_array().empty());
  get_json(config.control_socket, "/cache/2001:db8:a::1", 404);
}

TEST_CASE("resolver service: metrics carry every counter and drop reason",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running running{config};
  auto r =
      platform::ControlClient{config.control_socket}.request(platform::Method::Get, "/metrics");
  REQUIRE(r.has_value());
  REQUIRE(r->text);
  CHECK(r->text->find("anycast_resolver_queries_total 0") != std::string::npos);
  CHECK(r->text->find("anycast_resolver_liveness_failures_total 0") != std::string::npos);
  CHECK(r->text->find("anycast_resolver_drops_total{reason=\"unsolicited\"} 0") !=
        std::string::npos);
}

TEST_CASE("resolver service: bad and unsolicited ARR/UDP datagrams are dropped by reason",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir, Policy::Secure);
  Running running{config};
  const auto port = running.service->port();

  const std::array<std::byte, 3> runt{std::byte{0xAC}, std::byte{1}, std::byte{0}};
  send_udp(port, runt);
  std::array<std::byte, 16> not_ours{};
  send_udp(port, not_ours);
  // A forged probe answer: never binds under "secure".
  const auto forged =
      anycast::encode(anycast::Message{.flags = 0,
                                       .body = anycast::ProbeAnswer{.flags = 0,
                                                                    .ttl_seconds = 16,
                                                                    .nonce = {},
                                                                    .anycast = ip6("2001:db8:a::1"),
                                                                    .unicast = ip6("::1")}});
  send_udp(port, forged);
  // A HoTI from an address nobody resolves.
  const auto hoti = anycast::encode(anycast::Message{.flags = 0, .body = anycast::Hoti{}});
  send_udp(port, hoti);

  const auto status = await_counter(config.control_socket, "drops", "unsolicited", 1);
  REQUIRE(status);
  CHECK(counter(*status, "drops", "truncated") == 1);
  CHECK(counter(*status, "drops", "bad_magic") == 1);
  CHECK(counter(*status, "counters", "answers_ignored_secure") == 1);
  CHECK(counter(*status, "counters", "hoti_answered") == 0);
  CHECK(counter(*status, "counters", "answers_accepted") == 0);
}

TEST_CASE("resolver service: stop removes the socket files", "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  {
    Running running{config};
    CHECK(std::filesystem::exists(config.socket));
    CHECK(std::filesystem::exists(config.control_socket));
  }
  CHECK_FALSE(std::filesystem::exists(config.socket));
  CHECK_FALSE(std::filesystem::exists(config.control_socket));
}

TEST_CASE("resolver service: a query socket another resolver serves is not taken over",
          "[anycast_resolver][service]") {
  TempDir dir;
  const auto config = config_in(dir);
  Running first{config};
  auto second_config = config;
  second_config.control_socket = (dir.path / "control2.sock").string();
  boost::asio::io_context io{1};
  auto second = Service::start(io, second_config, {});
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().find("another process serves it") != std::string::npos);
  // The first still answers.
  QueryClient client{config.socket};
  CHECK(client.ask("2001:db8:b::1"));
}
