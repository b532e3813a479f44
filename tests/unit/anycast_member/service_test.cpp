// Tests for anycast_member/service.hpp on loopback, with a frozen clock: liveness probes
// answered from the unicast address, malformed and unexpected datagrams dropped and counted by
// reason, the per-source probe budget, /status and the counters, start errors, and stop().
#include "anycast_member/service.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "anycast/error.hpp"
#include "anycast/wire.hpp"
#include "anycast_net/udp.hpp"
#include "platform/counters.hpp"
#include "run.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using anycast::Endpoint;
using anycast::Errc;
using anycast::net::DatagramSocket;
using anycast_member::Config;
using anycast_member::Service;
using namespace std::chrono_literals;

namespace {

const auto kLoopback = core::Ipv6Address::parse("::1").value();
const auto kAnycast = core::Ipv6Address::parse("2001:db8:aaaa::1").value();
const auto kOtherUnicast = core::Ipv6Address::parse("2001:db8:1::10").value();

// The member's unicast address is ::1 so that a probe to it is a liveness probe the member
// answers from ::1. (The parser refuses ::1 for a real member; the struct is built here.)
Config loopback_config() {
  Config c;
  c.anycast = {kAnycast};
  c.unicast = kLoopback;
  c.listen = kLoopback;
  c.port = 0;
  c.probes_per_second = 50;
  c.answer_ttl = 21;
  return c;
}

anycast::Nonce128 nonce(std::uint8_t n) {
  anycast::Nonce128 out{};
  out.fill(n);
  return out;
}

std::vector<std::byte> probe(std::uint8_t n, std::uint16_t flags = 0) {
  return anycast::encode(anycast::Message{.flags = 0, .body = anycast::Probe{flags, nonce(n)}});
}

// A member on ::1 and a client socket, on one io_context with a frozen clock.
struct Fixture {
  explicit Fixture(Config c = loopback_config()) : config{std::move(c)} {
    auto s = Service::start(io, config, counters, {.clock = [this] { return now; }});
    INFO((s ? "" : s.error()));
    REQUIRE(s);
    service = std::move(*s);
    auto socket = DatagramSocket::open(io.get_executor(), kLoopback, 0);
    REQUIRE(socket);
    client.emplace(std::move(*socket));
  }
  ~Fixture() {
    // The sockets and the service's timer go before the io_context.
    client->close();
    service->stop();
    io.restart();
    io.run();
  }

  Endpoint member() const { return Endpoint{kLoopback, service->port()}; }
  void send(std::vector<std::byte> bytes) {
    REQUIRE_FALSE(client->send(
        anycast::Outgoing{.source = {}, .destination = member(), .bytes = std::move(bytes)}));
  }
  // The next datagram to the client, parsed.
  anycast::Message receive() {
    auto got = test::run(io, client->receive(buffer));
    REQUIRE(got);
    CHECK(got->from == member());
    auto parsed = anycast::parse(std::span{buffer}.first(got->size));
    REQUIRE(parsed);
    return parsed->message;
  }
  // Sends a liveness probe and waits for its answer: every datagram sent before has been
  // handled by then (one socket, in order).
  anycast::ProbeAnswer round_trip(std::uint8_t n) {
    send(probe(n));
    auto m = receive();
    const auto* answer = std::get_if<anycast::ProbeAnswer>(&m.body);
    REQUIRE(answer != nullptr);
    return *answer;
  }
  std::uint64_t counter(std::string_view name) const {
    return service->status().at("counters").at(name).to_number<std::uint64_t>();
  }

  asio::io_context io;
  Config config;
  platform::Counters counters;
  anycast::Time now{std::chrono::hours{1}};
  std::unique_ptr<Service> service;
  std::optional<DatagramSocket> client;
  std::array<std::byte, anycast::kMaxDatagram> buffer{};
};

}  // namespace

TEST_CASE("member service: a liveness probe to the unicast address is answered from it",
          "[anycast_member][service]") {
  Fixture f;
  const auto answer = f.round_trip(9);
  CHECK(answer.nonce == nonce(9));
  CHECK(answer.flags == 0);
  CHECK(answer.ttl_seconds == 21);
  CHECK(answer.anycast == kLoopback);
  CHECK(answer.unicast == kLoopback);
  CHECK(f.counter("probes") == 1);
  CHECK(f.counter("liveness_answered") == 1);
  CHECK(f.counter("probes_answered") == 0);
  CHECK(f.counter("send_errors") == 0);
}

TEST_CASE("member service: malformed and unexpected datagrams are dropped and counted by reason",
          "[anycast_member][service]") {
  Fixture f;
  // Not ARR/UDP at all.
  f.send(std::vector<std::byte>(120, std::byte{0x11}));
  // Shorter than the shim header.
  f.send(std::vector<std::byte>(2, std::byte{0xac}));
  // Larger than any ARR/UDP datagram: cut by the socket.
  auto big = probe(1);
  big.resize(anycast::kMaxDatagram + 1);
  f.send(big);
  // A probe below the anti-amplification size.
  auto short_probe = probe(1);
  short_probe.resize(anycast::kProbeMinSize - 1);
  f.send(short_probe);
  // B on a liveness probe.
  f.send(probe(2, anycast::kProbeFlagBinding));
  // A probe answer is for resolvers.
  f.send(anycast::encode(anycast::Message{.flags = 0,
                                          .body = anycast::ProbeAnswer{.flags = 0,
                                                                       .ttl_seconds = 1,
                                                                       .nonce = nonce(3),
                                                                       .anycast = kAnycast,
                                                                       .unicast = kOtherUnicast}}));
  // A HoT belongs to an exchange for an anycast address; ::1 is the unicast.
  f.send(anycast::encode(anycast::Message{.flags = 0, .body = anycast::Hot{}}));
  // A CoT for an exchange that was never started.
  f.send(anycast::encode(anycast::Message{.flags = 0, .body = anycast::Cot{}}));
  f.round_trip(4);

  CHECK(f.service->drops(Errc::NotAnycast) == 1);
  CHECK(f.service->drops(Errc::NoPending) == 1);
  CHECK(f.counter("hot_received") == 1);
  CHECK(f.counter("cot_received") == 1);
  CHECK(f.service->drops(Errc::BadMagic) == 1);
  CHECK(f.service->drops(Errc::Truncated) == 1);
  CHECK(f.service->drops(Errc::BadLength) == 1);
  CHECK(f.service->drops(Errc::ShortProbe) == 1);
  CHECK(f.service->drops(Errc::BadFlags) == 1);
  CHECK(f.service->drops(Errc::UnknownKind) == 1);
  CHECK(f.service->drops(Errc::RateLimited) == 0);
  const auto status = f.service->status();
  const auto& drops = status.at("drops").as_object();
  CHECK(drops.at("bad_magic").to_number<std::uint64_t>() == 1);
  CHECK(drops.at("bad_flags").to_number<std::uint64_t>() == 1);
  CHECK(drops.at("replay").to_number<std::uint64_t>() == 0);
  // Every reason is listed, so a dashboard can show zeros.
  CHECK(drops.size() == static_cast<std::size_t>(Errc::Unsolicited));
  CHECK(f.counter("probes") == 2);
  CHECK(f.counter("liveness_answered") == 1);
  const auto metrics = f.counters.to_prometheus();
  CHECK(metrics.find("anycast_member_drops_total{reason=\"bad_magic\"} 1") != std::string::npos);
  CHECK(metrics.find("anycast_member_probes_total 2") != std::string::npos);
}

TEST_CASE("member service: a probe to an address the member does not serve is not_anycast",
          "[anycast_member][service]") {
  auto config = loopback_config();
  config.unicast = kOtherUnicast;
  Fixture f{config};
  f.send(probe(1));
  f.send(probe(2));
  // Nothing answers: wait for the counts themselves.
  test::run_until(f.io, [&] { return f.service->drops(Errc::NotAnycast) == 2; });
  CHECK(f.counter("probes") == 2);
  CHECK(f.counter("probes_answered") == 0);
}

TEST_CASE("member service: probes over the source's budget are dropped as rate_limited",
          "[anycast_member][service]") {
  auto config = loopback_config();
  config.probes_per_second = 1;  // a burst of 2
  Fixture f{config};
  f.send(probe(1));
  f.send(probe(2));
  f.send(probe(3));
  std::vector<anycast::Nonce128> answered;
  for (int i = 0; i < 2; ++i) {
    auto m = f.receive();
    answered.push_back(std::get<anycast::ProbeAnswer>(m.body).nonce);
  }
  CHECK(answered == std::vector{nonce(1), nonce(2)});
  test::run_until(f.io, [&] { return f.service->drops(Errc::RateLimited) == 1; });
  // One token comes back after a second.
  f.now += 1s;
  CHECK(f.round_trip(4).nonce == nonce(4));
  CHECK(f.service->drops(Errc::RateLimited) == 1);
  CHECK(f.counter("probes") == 4);
  CHECK(f.counter("liveness_answered") == 3);
  CHECK(f.service->status().at("rate_limited_sources").to_number<std::uint64_t>() == 1);
}

TEST_CASE("member service: status names the addresses, the bound port and the pending count",
          "[anycast_member][service]") {
  Fixture f;
  const auto status = f.service->status();
  CHECK(status.at("anycast") == json::array{"2001:db8:aaaa::1"});
  CHECK(status.at("unicast") == "::1");
  CHECK(status.at("listen") == "::1");
  CHECK(status.at("port").to_number<std::uint64_t>() == f.service->port());
  CHECK(f.service->port() != 0);
  CHECK(status.at("pending").to_number<std::uint64_t>() == 0);
  CHECK(status.at("join").is_null());
  for (const char* name : {"probes", "probes_answered", "liveness_answered", "exchanges_started",
                           "hot_received", "cot_received", "binding_updates_sent",
                           "binding_acks_accepted", "send_errors", "receive_errors"}) {
    INFO(name);
    CHECK(status.at("counters").at(name).to_number<std::uint64_t>() == 0);
  }
}

TEST_CASE("member service: start errors say what failed", "[anycast_member][service]") {
  asio::io_context io;
  platform::Counters counters;
  auto taken = DatagramSocket::open(io.get_executor(), kLoopback, 0);
  REQUIRE(taken);

  SECTION("the port is in use") {
    auto config = loopback_config();
    config.port = taken->local_port();
    auto s = Service::start(io, config, counters);
    REQUIRE_FALSE(s);
    CHECK(s.error().starts_with("ARR/UDP socket [::1]:"));
  }
  SECTION("the interface to join on does not exist") {
    auto config = loopback_config();
    config.join = anycast_member::Join{"nosuchif0"};
    auto s = Service::start(io, config, counters);
    REQUIRE_FALSE(s);
    CHECK(s.error().starts_with("interface nosuchif0: "));
  }
  taken->close();
  io.run();
}

TEST_CASE("member service: after stop() the io_context runs out of work",
          "[anycast_member][service]") {
  asio::io_context io;
  platform::Counters counters;
  auto s = Service::start(io, loopback_config(), counters);
  REQUIRE(s);
  (*s)->stop();
  (*s)->stop();
  io.run();  // returns: the receive loop and the timer have ended
  CHECK((*s)->status().at("pending").to_number<std::uint64_t>() == 0);
}
