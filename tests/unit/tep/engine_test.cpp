// Tests for tep/engine.hpp: the TEP's data path, packets and answers in, packets and queries out.
#include "tep/engine.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "support/packet_builder.hpp"

using namespace std::chrono_literals;
using test::PacketBuilder;

namespace {

const auto kTep = *core::Ipv6Address::parse("2001:db8:e2::2");
const auto kClient = *core::Ipv6Address::parse("2001:db8:c1::2");
const auto kOther = *core::Ipv6Address::parse("2001:db8:c2::2");
const auto kRouter = *core::Ipv4Address::parse("192.0.2.5");
const auto kKeepalive = *core::Ipv4Address::parse("192.0.2.202");
const auto kLease = *core::Ipv4Address::parse("198.51.100.1");
const auto kLease2 = *core::Ipv4Address::parse("198.51.100.2");
constexpr const char* kHost = "203.0.113.10";

// Records what the engine asks for.
struct Recorder : tep::Engine::Sink {
  std::vector<std::vector<std::byte>> ipv4;
  std::vector<std::vector<std::byte>> tunnel;
  std::vector<core::Ipv4Address> queries;
  std::vector<std::vector<std::byte>> icmp;
  void to_ipv4(core::Bytes p) override { ipv4.emplace_back(p.begin(), p.end()); }
  void icmp_error(core::Bytes p) override { icmp.emplace_back(p.begin(), p.end()); }
  void to_tunnel(core::Bytes p) override { tunnel.emplace_back(p.begin(), p.end()); }
  void query(core::Ipv4Address a) override { queries.push_back(a); }
};

tep::EngineConfig config() {
  tep::EngineConfig c;
  c.local = kTep;
  c.router = kRouter;
  c.keepalive = kKeepalive;
  c.pool = {*core::Ipv4Prefix::parse("198.51.100.0/24")};
  c.tunnel_mtu = 1500;
  c.icmp_rate = 1000;
  c.icmp_burst = 1000;
  return c;
}

struct Fixture {
  Recorder out;
  tep::Engine engine{config(), out};
  tep::TimePoint t0{std::chrono::seconds{1000}};

  // An IPv4 packet from the IPv4 side, in a frame with 40 bytes of headroom.
  void from_ipv4(const std::vector<std::byte>& packet, tep::TimePoint now) {
    std::vector<std::byte> frame(tep::kEncapOverhead + packet.size());
    std::copy(packet.begin(), packet.end(), frame.begin() + tep::kEncapOverhead);
    engine.from_ipv4(frame, tep::kEncapOverhead, now);
  }
  // An IPv4 packet sent by `client` through the tunnel.
  void from_client(const std::vector<std::byte>& inner, const core::Ipv6Address& client,
                   tep::TimePoint now) {
    auto outer = PacketBuilder{}.ipv6(client.to_string(), kTep.to_string(), 4).raw(inner).bytes();
    engine.from_tunnel(outer, now);
  }
};

std::vector<std::byte> udp(const std::string& src, const std::string& dst, std::size_t n = 16,
                           bool df = false) {
  return PacketBuilder{}.ipv4(src, dst).df(df).udp(4000, 5000).payload(std::string(n, 'x')).bytes();
}

core::Ipv6Header outer_header(const std::vector<std::byte>& packet) {
  auto h = core::parse_ipv6(packet);
  REQUIRE(h);
  return h->header;
}

core::Ipv4Packet ipv4_of(const std::vector<std::byte>& packet) {
  auto p = core::parse_ipv4(packet);
  REQUIRE(p);
  return *p;
}

}  // namespace

TEST_CASE(
    "engine: return traffic to an unknown pool address waits for the query, then goes to "
    "the holder",
    "[tep][engine]") {
  Fixture f;
  const auto packet = udp(kHost, "198.51.100.1");
  f.from_ipv4(packet, f.t0);
  f.from_ipv4(packet, f.t0);
  REQUIRE(f.out.queries == std::vector{kLease});  // one query for both packets
  CHECK(f.out.tunnel.empty());
  CHECK(f.engine.counters().queued == 2);

  f.engine.answer_leased(kLease, kClient, 60s, f.t0 + 5ms);
  REQUIRE(f.out.tunnel.size() == 2);
  const auto h = outer_header(f.out.tunnel[0]);
  CHECK(h.src == kTep);
  CHECK(h.dst == kClient);
  CHECK(h.next_header == core::ip_protocol::kIpv4);
  CHECK(std::vector<std::byte>(f.out.tunnel[0].begin() + 40, f.out.tunnel[0].end()) == packet);
  CHECK(f.engine.counters().bindings_learned_query == 1);
  CHECK(f.engine.counters().encapsulated == 2);

  // The binding now answers without a query.
  f.from_ipv4(packet, f.t0 + 1s);
  CHECK(f.out.queries.size() == 1);
  CHECK(f.out.tunnel.size() == 3);
}

TEST_CASE("engine: a binding expires with the lease's remaining lifetime", "[tep][engine]") {
  Fixture f;
  f.from_ipv4(udp(kHost, "198.51.100.1"), f.t0);
  f.engine.answer_leased(kLease, kClient, 10s, f.t0);
  f.from_ipv4(udp(kHost, "198.51.100.1"), f.t0 + 9s);
  CHECK(f.out.queries.size() == 1);
  f.engine.tick(f.t0 + 10s);
  f.from_ipv4(udp(kHost, "198.51.100.1"), f.t0 + 10s);
  CHECK(f.out.queries.size() == 2);  // asked again
}

TEST_CASE("engine: an unleased pool address draws ICMP host unreachable and a negative entry",
          "[tep][engine]") {
  Fixture f;
  const auto packet = udp(kHost, "198.51.100.9");
  f.from_ipv4(packet, f.t0);
  REQUIRE(f.out.queries.size() == 1);
  f.engine.answer_not_leased(f.out.queries[0], f.t0);
  REQUIRE(f.out.icmp.size() == 1);
  const auto icmp_ip = ipv4_of(f.out.icmp[0]);
  CHECK(icmp_ip.header.src == kRouter);
  CHECK(icmp_ip.header.dst.to_string() == kHost);
  const auto icmp = core::parse_icmpv4(icmp_ip.payload);
  REQUIRE(icmp);
  CHECK(icmp->type == core::icmpv4_type::kDestinationUnreachable);
  CHECK(icmp->code == core::icmpv4_unreachable::kHost);
  CHECK(f.engine.counters().destination_not_leased == 1);

  // The negative cache answers the next one without asking.
  f.from_ipv4(packet, f.t0 + 1s);
  CHECK(f.out.queries.size() == 1);
  CHECK(f.out.icmp.size() == 2);
  CHECK(f.engine.counters().destination_not_leased == 2);
  // ... until it expires.
  f.from_ipv4(packet, f.t0 + 10s);
  CHECK(f.out.queries.size() == 2);
}

TEST_CASE("engine: ICMP errors are rate-limited", "[tep][engine]") {
  Recorder out;
  auto c = config();
  c.icmp_rate = 1;
  c.icmp_burst = 2;
  tep::Engine engine{c, out};
  const tep::TimePoint t0{std::chrono::seconds{5}};
  engine.answer_not_leased(*core::Ipv4Address::parse("198.51.100.9"), t0);
  const auto packet = udp(kHost, "198.51.100.9");
  for (int i = 0; i < 10; ++i) {
    std::vector<std::byte> frame(40 + packet.size());
    std::copy(packet.begin(), packet.end(), frame.begin() + 40);
    engine.from_ipv4(frame, 40, t0);
  }
  CHECK(out.icmp.size() == 2);
  CHECK(engine.counters().icmp_rate_limited == 8);
}

TEST_CASE("engine: a client's first packet is forwarded only once the server confirms its lease",
          "[tep][engine]") {
  Fixture f;
  const auto inner = udp("198.51.100.1", kHost);
  f.from_client(inner, kClient, f.t0);
  CHECK(f.out.ipv4.empty());
  REQUIRE(f.out.queries == std::vector{kLease});
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);
  REQUIRE(f.out.ipv4.size() == 1);
  CHECK(f.out.ipv4[0] == inner);
  CHECK(f.engine.counters().bindings_learned_traffic == 1);
  CHECK(f.engine.counters().decapsulated == 1);
  // Later packets go straight through.
  f.from_client(inner, kClient, f.t0 + 1s);
  CHECK(f.out.ipv4.size() == 2);
  CHECK(f.out.queries.size() == 1);
}

TEST_CASE("engine: anti-spoofing drops inner sources not leased to the outer source",
          "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);

  SECTION("another client's address") {
    f.from_client(udp("198.51.100.1", kHost), kOther, f.t0);
    CHECK(f.engine.counters().spoofed == 1);
  }
  SECTION("an address outside the pool") {
    f.from_client(udp("203.0.113.99", kHost), kClient, f.t0);
    CHECK(f.engine.counters().source_outside_pool == 1);
  }
  SECTION("a pool address the server says is not leased") {
    f.from_client(udp("198.51.100.2", kHost), kClient, f.t0);
    REQUIRE(f.out.queries == std::vector{kLease2});
    f.engine.answer_not_leased(kLease2, f.t0);
    CHECK(f.engine.counters().source_not_leased == 1);
    // The negative entry catches the next one without a query.
    f.from_client(udp("198.51.100.2", kHost), kClient, f.t0);
    CHECK(f.engine.counters().source_not_leased == 2);
    CHECK(f.out.queries.size() == 1);
  }
  SECTION("a pool address the server says is leased to someone else") {
    f.from_client(udp("198.51.100.2", kHost), kClient, f.t0);
    f.engine.answer_leased(kLease2, kOther, 60s, f.t0);
    CHECK(f.engine.counters().spoofed == 1);
  }
  CHECK(f.out.ipv4.empty());
  CHECK(f.engine.counters().decapsulated == 0);
}

TEST_CASE("engine: malformed tunnel packets are counted by reason", "[tep][engine]") {
  Fixture f;
  std::vector<std::byte> tiny(10);
  f.engine.from_tunnel(tiny, f.t0);
  auto udp6 = PacketBuilder{}.ipv6(kClient.to_string(), kTep.to_string()).udp(1, 2).bytes();
  f.engine.from_tunnel(udp6, f.t0);
  CHECK(f.engine.counters().decap_drops[static_cast<std::size_t>(tep::DropReason::Truncated)] == 1);
  CHECK(f.engine.counters().decap_drops[static_cast<std::size_t>(tep::DropReason::NotIpip)] == 1);
  CHECK(f.out.ipv4.empty());
  CHECK(f.out.queries.empty());
}

TEST_CASE("engine: keepalive echo requests are answered inside the tunnel", "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);
  const auto ping = PacketBuilder{}
                        .ipv4("198.51.100.1", kKeepalive.to_string())
                        .icmpv4_echo(77, 3)
                        .payload("keepalive")
                        .bytes();
  f.from_client(ping, kClient, f.t0);
  CHECK(f.out.ipv4.empty());
  REQUIRE(f.out.tunnel.size() == 1);
  CHECK(outer_header(f.out.tunnel[0]).dst == kClient);
  const std::vector<std::byte> inner(f.out.tunnel[0].begin() + 40, f.out.tunnel[0].end());
  const auto reply = ipv4_of(inner);
  CHECK(reply.header.src == kKeepalive);
  CHECK(reply.header.dst == kLease);
  CHECK(reply.checksum_ok());
  const auto icmp = core::parse_icmpv4(reply.payload);
  REQUIRE(icmp);
  CHECK(icmp->type == core::icmpv4_type::kEchoReply);
  CHECK(icmp->echo_id() == 77);
  CHECK(icmp->echo_sequence() == 3);
  CHECK(core::icmpv4_checksum_ok(*icmp));
  CHECK(f.engine.counters().keepalive_replies == 1);
}

TEST_CASE("engine: MTU: DF packets too big draw fragmentation needed, others are fragmented",
          "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);

  SECTION("DF set") {
    f.from_ipv4(udp(kHost, "198.51.100.1", 1472, true), f.t0);  // 1500 bytes > 1460
    CHECK(f.out.tunnel.empty());
    REQUIRE(f.out.icmp.size() == 1);
    const auto ip = ipv4_of(f.out.icmp[0]);
    CHECK(ip.header.src == kRouter);
    const auto icmp = core::parse_icmpv4(ip.payload);
    REQUIRE(icmp);
    CHECK(icmp->code == core::icmpv4_unreachable::kFragmentationNeeded);
    CHECK(icmp->next_hop_mtu() == 1460);
    CHECK(f.engine.counters().frag_needed_sent == 1);
  }
  SECTION("DF clear") {
    f.from_ipv4(udp(kHost, "198.51.100.1", 1472, false), f.t0);
    REQUIRE(f.out.tunnel.size() == 2);
    for (const auto& p : f.out.tunnel) CHECK(p.size() <= 1500);
    CHECK(f.engine.counters().fragmented == 1);
    CHECK(f.engine.counters().encapsulated == 2);
  }
  SECTION("exactly the inner MTU fits") {
    f.from_ipv4(udp(kHost, "198.51.100.1", 1432, true), f.t0);  // 1460
    REQUIRE(f.out.tunnel.size() == 1);
    CHECK(f.out.tunnel[0].size() == 1500);
  }
}

TEST_CASE("engine: the miss queue is bounded and times out with ICMP", "[tep][engine]") {
  Recorder out;
  auto c = config();
  c.queue.per_address = 2;
  c.queue.timeout = 3s;
  tep::Engine engine{c, out};
  const tep::TimePoint t0{std::chrono::seconds{5}};
  const auto packet = udp(kHost, "198.51.100.1");
  for (int i = 0; i < 5; ++i) {
    std::vector<std::byte> frame(40 + packet.size());
    std::copy(packet.begin(), packet.end(), frame.begin() + 40);
    engine.from_ipv4(frame, 40, t0);
  }
  CHECK(engine.counters().queued == 2);
  CHECK(engine.counters().queue_address_full == 3);
  engine.tick(t0 + 2s);
  CHECK(out.icmp.empty());
  engine.tick(t0 + 3s);
  CHECK(engine.counters().queue_timeout == 2);
  CHECK(out.icmp.size() == 2);  // host unreachable for each
  // A late answer still installs the binding; nothing is left to send.
  engine.answer_leased(kLease, kClient, 60s, t0 + 4s);
  CHECK(out.tunnel.empty());
  CHECK(engine.bindings().size() == 1);
}

TEST_CASE("engine: a failed query drops what waited, with ICMP for return traffic",
          "[tep][engine]") {
  Fixture f;
  f.from_ipv4(udp(kHost, "198.51.100.1"), f.t0);
  f.from_client(udp("198.51.100.1", kHost), kClient, f.t0);
  f.engine.answer_failed(kLease, f.t0);
  CHECK(f.engine.counters().query_failed == 2);
  CHECK(f.out.icmp.size() == 1);  // the unreachable
  CHECK(f.out.ipv4.empty());      // the client's packet is not forwarded
  CHECK(f.engine.bindings().size() == 0);
  CHECK(f.engine.bindings().negative_size() == 0);
}

TEST_CASE("engine: withdrawals and flushes remove bindings", "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);
  f.engine.answer_leased(kLease2, kOther, 60s, f.t0);
  f.engine.withdraw(kLease);
  CHECK(f.engine.counters().withdrawn == 1);
  f.from_ipv4(udp(kHost, "198.51.100.1"), f.t0);
  CHECK(f.out.queries == std::vector{kLease});
  f.engine.flush();
  CHECK(f.engine.bindings().size() == 0);
  CHECK(f.engine.counters().flushes == 1);
}

TEST_CASE("engine: traffic outside the pool and invalid IPv4 are counted", "[tep][engine]") {
  Fixture f;
  f.from_ipv4(udp(kHost, "203.0.113.7"), f.t0);
  std::vector<std::byte> junk(60, std::byte{0x45});
  f.engine.from_ipv4(junk, 40, f.t0);
  CHECK(f.engine.counters().destination_outside_pool == 1);
  CHECK(f.engine.counters().ipv4_invalid == 1);
  CHECK(f.out.queries.empty());
}

TEST_CASE("engine: per-binding traffic counters", "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);
  const auto up = udp("198.51.100.1", kHost, 100);
  const auto down = udp(kHost, "198.51.100.1", 200);
  f.from_client(up, kClient, f.t0);
  f.from_ipv4(down, f.t0);
  f.from_ipv4(down, f.t0);
  const auto* b = f.engine.bindings().find(kLease, f.t0);
  REQUIRE(b);
  CHECK(b->packets_from_client == 1);
  CHECK(b->bytes_from_client == up.size());
  CHECK(b->packets_to_client == 2);
  CHECK(b->bytes_to_client == 2 * down.size());
}

TEST_CASE("engine: a binding learned from a query becomes a traffic binding when the client sends",
          "[tep][engine]") {
  Fixture f;
  f.engine.answer_leased(kLease, kClient, 60s, f.t0);
  CHECK(f.engine.bindings().find(kLease, f.t0)->origin == tep::BindingOrigin::Query);
  f.from_client(udp("198.51.100.1", kHost), kClient, f.t0);
  CHECK(f.engine.bindings().find(kLease, f.t0)->origin == tep::BindingOrigin::Traffic);
}
