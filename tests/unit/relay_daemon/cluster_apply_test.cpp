// Tests for cluster_apply.hpp: two nodes, each a real relay::Engine with its applier; records go
// from one node's dump(), progress() or peer_record() into the other's apply(). A client seals
// real SATP packets, so the takeover checks are the engine's own replay decisions.
#include "cluster_apply.hpp"

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "relay/cluster.hpp"
#include "relay/engine.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"
#include "support/packet_builder.hpp"

using relay_daemon::ClusterApplier;
namespace cluster = relay::cluster;

namespace {

constexpr std::uint16_t kMux = 1;
constexpr std::uint16_t kClientSender = 11;
constexpr std::string_view kPassphrase = "cluster apply test";

relay::Endpoint endpoint(std::string_view address, std::uint16_t port) {
  return relay::Endpoint::v6(test::v6(address), port);
}
relay::Prefix p4(std::string_view text) {
  return core::Ipv4Prefix::parse(text).value();
}

satp::Settings settings(satp::Role role) {
  satp::Settings s;
  s.role = role;
  return s;
}

relay::ConnectionSpec spec(std::uint16_t mux, std::string_view passphrase = kPassphrase) {
  relay::ConnectionSpec s;
  s.mux = mux;
  s.settings = settings(satp::Role::Left);
  s.key = satp::master_key_from_passphrase(passphrase, s.settings.kd_prf);
  s.salt = satp::master_salt_from_passphrase(passphrase);
  s.routes = {p4("198.51.100.0/25")};
  return s;
}

struct NullSink : relay::Sink {
  std::size_t tun = 0;
  void to_peer(const relay::Peer&, core::Bytes) override {}
  void to_tun(core::MutableBytes, std::size_t, std::size_t) override { ++tun; }
  void control(std::uint16_t, const relay::Peer&, const relay::control::Message&) override {}
};

// A relay node: an engine with its sender id, and its applier (learned connections start their
// sequence numbers at 1000).
struct Node {
  relay::Engine engine;
  ClusterApplier applier;
  NullSink sink;
  explicit Node(std::uint16_t sender_id, ClusterApplier::Limits limits = {})
      : engine{options(sender_id)}, applier{engine, [](std::uint16_t) { return 1000u; }, limits} {}

  static relay::EngineOptions options(std::uint16_t sender_id) {
    relay::EngineOptions o;
    o.sender_id = sender_id;
    return o;
  }
  // Every record of `from`, as a link would carry them; the reasons of those left alone.
  std::vector<std::string_view> take(const std::vector<cluster::Record>& records) {
    std::vector<std::string_view> out;
    for (const auto& r : records)
      if (const auto reason = applier.apply(r); !reason.empty()) out.push_back(reason);
    return out;
  }
  const relay::ConnectionStats& stats() const { return *engine.stats(kMux); }
  std::uint64_t drops(std::string_view reason) const {
    const auto& d = stats().drops.by_reason;
    const auto it = d.find(reason);
    return it == d.end() ? 0 : it->second;
  }
};

// The client end of MUX 1: seals UDP datagrams 198.51.100.10 -> 203.0.113.10.
struct Client {
  satp::Codec codec =
      satp::Codec::create(settings(satp::Role::Right),
                          satp::master_key_from_passphrase(kPassphrase, satp::KdPrf::AesCtr128),
                          satp::master_salt_from_passphrase(kPassphrase))
          .value();
  relay::Peer from{endpoint("2001:db8:1::2", 4444), 0};

  // Seals packet `seq` and hands it to `node`; whether the node accepted it (it reached the TUN).
  bool send(Node& node, std::uint32_t seq) {
    const auto inner = test::PacketBuilder{}
                           .ipv4("198.51.100.10", "203.0.113.10")
                           .udp(5000, 5001)
                           .payload("x")
                           .bytes();
    std::array<std::byte, satp::kMaxPacket> out{};
    const auto sealed = codec.seal({.seq = seq, .sender_id = kClientSender, .mux = kMux},
                                   satp::kPayloadIpv4, inner, out);
    REQUIRE(sealed);
    std::vector<std::byte> frame(sealed->begin(), sealed->end());
    const auto before = node.sink.tun;
    node.engine.from_network(from, frame, 0, frame.size(), node.sink,
                             relay::Engine::Clock::time_point{});
    return node.sink.tun == before + 1;
  }
};

using Marks = std::vector<std::pair<std::uint16_t, std::uint32_t>>;

}  // namespace

TEST_CASE("cluster applier: a dump teaches a node the connection with its peer marks and routes",
          "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2};
  REQUIRE(a.engine.add(spec(kMux), 5000));
  Client client;
  for (std::uint32_t seq = 1; seq <= 20; ++seq) REQUIRE(client.send(a, seq));

  CHECK(b.take(a.applier.dump()).empty());
  REQUIRE(b.engine.contains(kMux));
  CHECK(b.applier.is_learned(kMux));
  CHECK(b.applier.learned() == 1);
  CHECK(b.engine.spec(kMux)->key == spec(kMux).key);
  CHECK(b.engine.peer(kMux) == client.from);
  CHECK(b.engine.tx_seq(kMux) == a.engine.tx_seq(kMux));
  CHECK(b.engine.rx_marks(kMux) == Marks{{kClientSender, 20}});
  REQUIRE(b.engine.routes().routes_of(kMux).size() == 1);
  CHECK(b.engine.routes().routes_of(kMux)[0].prefix == p4("198.51.100.0/25"));

  // The takeover: what the client's former node accepted is a replay at the new one, the next
  // packet is not.
  CHECK_FALSE(client.send(b, 20));
  CHECK_FALSE(client.send(b, 7));
  CHECK(b.drops("replay") == 2);
  CHECK(client.send(b, 21));
}

TEST_CASE("cluster applier: progress raises marks and sequence numbers at the other node",
          "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2};
  REQUIRE(a.engine.add(spec(kMux), 100));
  REQUIRE(b.engine.add(spec(kMux), 50));  // configured on both
  Client client;
  REQUIRE(client.send(a, 1));
  auto first = a.applier.progress();
  REQUIRE(first.size() == 1);
  CHECK(std::get<cluster::Progress>(first[0]) ==
        cluster::Progress{kMux, 100, {{kClientSender, 1}}});
  // Nothing moved: nothing to tell.
  CHECK(a.applier.progress().empty());

  for (std::uint32_t seq = 2; seq <= 40; ++seq) REQUIRE(client.send(a, seq));
  a.engine.raise_tx_seq(kMux, 700);
  const auto moved = a.applier.progress();
  REQUIRE(moved.size() == 1);
  CHECK(b.take(moved).empty());
  CHECK(b.engine.tx_seq(kMux) == 700);
  CHECK(b.engine.rx_marks(kMux) == Marks{{kClientSender, 40}});
  CHECK_FALSE(client.send(b, 40));
  CHECK(client.send(b, 41));
  // A configured connection stays configured.
  CHECK_FALSE(b.applier.is_learned(kMux));
  // Progress for a connection the node does not have.
  CHECK(b.take({cluster::Progress{9, 1, {}}}) == std::vector<std::string_view>{"unknown_mux"});
}

TEST_CASE("cluster applier: a configured connection keeps its keys and routes",
          "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2};
  auto other = spec(kMux, "another passphrase");
  other.routes = {p4("198.51.100.128/25")};
  REQUIRE(a.engine.add(other, 1));
  REQUIRE(b.engine.add(spec(kMux), 1));
  const auto reasons = b.take(a.applier.dump());
  CHECK(reasons == std::vector<std::string_view>{"conflict", "configured"});
  CHECK(b.engine.spec(kMux)->key == spec(kMux).key);
  REQUIRE(b.engine.routes().routes_of(kMux).size() == 1);
  CHECK(b.engine.routes().routes_of(kMux)[0].prefix == p4("198.51.100.0/25"));
  // Never removed by another node.
  CHECK(b.take({cluster::Remove{kMux}}) == std::vector<std::string_view>{"configured"});
  CHECK(b.engine.contains(kMux));
}

TEST_CASE("cluster applier: a learned connection follows its routes and goes on Remove",
          "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2};
  REQUIRE(a.engine.add(spec(kMux), 1));
  auto configured = spec(2, "client two");
  configured.routes = {p4("192.0.2.0/24")};
  REQUIRE(b.engine.add(configured, 1));
  REQUIRE(b.take(a.applier.dump()).empty());
  Client client;
  REQUIRE(client.send(b, 5));  // the peer and window survive route changes

  CHECK(b.take({cluster::RouteAdd{{p4("203.0.113.0/24"), kMux}}}).empty());
  CHECK(b.engine.routes().routes_of(kMux).size() == 2);
  CHECK(b.engine.routes().lookup(test::v4("203.0.113.9")) == kMux);
  // Twice is once.
  CHECK(b.take({cluster::RouteAdd{{p4("203.0.113.0/24"), kMux}}}).empty());
  CHECK(b.engine.routes().routes_of(kMux).size() == 2);
  // Another connection's route stays where it is.
  CHECK(b.take({cluster::RouteAdd{{p4("192.0.2.0/24"), kMux}}}) ==
        std::vector<std::string_view>{"route_taken"});
  CHECK(b.engine.routes().lookup(test::v4("192.0.2.1")) == 2);
  CHECK(b.take({cluster::RouteRemove{{p4("203.0.113.0/24"), kMux}}}).empty());
  CHECK(b.engine.routes().routes_of(kMux).size() == 1);
  CHECK(b.engine.peer(kMux) == client.from);
  CHECK_FALSE(client.send(b, 5));
  CHECK(client.send(b, 6));

  CHECK(b.take({cluster::Remove{kMux}}).empty());
  CHECK_FALSE(b.engine.contains(kMux));
  CHECK(b.applier.learned() == 0);
  CHECK(b.take({cluster::Remove{kMux}}) == std::vector<std::string_view>{"unknown_mux"});
}

TEST_CASE("cluster applier: the newest word on the client's endpoint wins",
          "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2};
  REQUIRE(a.engine.add(spec(kMux), 1));
  REQUIRE(b.engine.add(spec(kMux), 1));
  Client client;
  REQUIRE(client.send(a, 1));
  // The client moved to b from another endpoint, and sent more there.
  client.from = relay::Peer{endpoint("2001:db8:2::2", 5555), 0};
  REQUIRE(client.send(b, 2));
  REQUIRE(client.send(b, 3));
  // a's dump is older (its mark is lower): b keeps its peer; b's dump moves a's. (Both have
  // the connection configured: its routes stay as configured.)
  const std::vector<std::string_view> configured{"configured"};
  CHECK(b.take(a.applier.dump()) == configured);
  CHECK(b.engine.peer(kMux) == client.from);
  CHECK(a.take(b.applier.dump()) == configured);
  CHECK(a.engine.peer(kMux) == client.from);

  // A Peer record is authoritative, whatever the marks.
  const auto moved = relay::Peer{endpoint("2001:db8:3::3", 6666), 0};
  const auto record = ClusterApplier::peer_record(kMux, moved);
  REQUIRE(record);
  CHECK(b.take({*record}).empty());
  CHECK(b.engine.peer(kMux) == moved);
  // A client on a TCP stream of its node is not something another node can reach.
  CHECK_FALSE(ClusterApplier::peer_record(kMux, relay::Peer{moved.endpoint, 3}));
  CHECK(b.take({cluster::Peer{kMux, std::nullopt}}) == std::vector<std::string_view>{"no_peer"});
}

TEST_CASE("cluster applier: learned connections are bounded", "[relay-daemon][cluster]") {
  Node a{1};
  Node b{2, ClusterApplier::Limits{.max_connections = 2, .max_routes = 1}};
  for (std::uint16_t mux = 1; mux <= 3; ++mux) {
    auto s = spec(mux);
    s.routes = {p4("198.51.100." + std::to_string(mux * 16) + "/28")};
    REQUIRE(a.engine.add(s, 1));
  }
  CHECK(b.take(a.applier.dump()) == std::vector<std::string_view>{"table_full", "unknown_mux"});
  CHECK(b.engine.muxes() == std::vector<std::uint16_t>{1, 2});
  CHECK(b.take({cluster::RouteAdd{{p4("203.0.113.0/24"), 1}}}) ==
        std::vector<std::string_view>{"table_full"});
}
