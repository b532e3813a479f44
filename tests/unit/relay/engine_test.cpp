// Tests for relay/engine.hpp: clients seal real SATP packets with their own codecs (role right,
// the engine's connections role left), the engine's output is recorded by a Sink and opened
// again on the client side. Routing between clients, the TUN, groups, the NAT, peers learned and
// moved, hostile packets, control messages, replacement of connections and cluster sync marks.
#include "relay/engine.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "relay/control.hpp"
#include "relay/endpoint.hpp"
#include "relay/error.hpp"
#include "relay/nat.hpp"
#include "relay/prefix_table.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"
#include "satp/replay.hpp"
#include "support/packet_builder.hpp"

using relay::ConnectionSpec;
using relay::Endpoint;
using relay::Engine;
using relay::EngineOptions;
using relay::Peer;
using relay::Prefix;
using test::hex;
using test::PacketBuilder;
using test::v4;
using test::v6;
using Packet = std::vector<std::byte>;

namespace {

constexpr std::uint16_t kEngineSender = 7;
constexpr std::uint16_t kClientSender = 0;
// Where the packets sit in the frames given to the engine: in place, between other bytes.
constexpr std::size_t kHeadroom = 4;
constexpr std::size_t kTailroom = 3;

// Client inner prefixes, outside hosts and the NAT addresses: documentation ranges.
constexpr std::string_view kClient1Host4 = "192.0.2.10";
constexpr std::string_view kClient1Host6 = "2001:db8:1::10";
constexpr std::string_view kClient2Host4 = "192.0.2.70";
constexpr std::string_view kClient2Host6 = "2001:db8:2::70";
constexpr std::string_view kOutside4 = "198.51.100.7";
constexpr std::string_view kOutside6 = "2001:db8:ff::7";
constexpr std::string_view kNat4 = "203.0.113.1";
constexpr std::string_view kNat6 = "2001:db8:ffff::1";

const Engine::Clock::time_point kNow = Engine::Clock::time_point{} + std::chrono::hours{1};

Prefix p4(std::string_view text) {
  return core::Ipv4Prefix::parse(text).value();
}
Prefix p6(std::string_view text) {
  return core::Ipv6Prefix::parse(text).value();
}

Peer udp_peer(std::string_view address, std::uint16_t port) {
  return Peer{address.find(':') == std::string_view::npos ? Endpoint::v4(v4(address), port)
                                                          : Endpoint::v6(v6(address), port)};
}

// The default routes of client `mux` (1..3): 192.0.2.(64 * (mux - 1))/26 and 2001:db8:mux::/48.
std::vector<Prefix> routes_of(std::uint16_t mux) {
  return {p4("192.0.2." + std::to_string(64 * (mux - 1)) + "/26"),
          p6("2001:db8:" + std::to_string(mux) + "::/48")};
}

// A UDP datagram between two hosts of one family.
Packet udp(std::string_view src, std::string_view dst, std::string_view text = "hello",
           std::uint16_t src_port = 5000, std::uint16_t dst_port = 53) {
  PacketBuilder b;
  if (src.find(':') == std::string_view::npos)
    b.ipv4(src, dst);
  else
    b.ipv6(src, dst);
  return b.udp(src_port, dst_port).payload(text).bytes();
}

satp::Settings settings(satp::Role role, std::size_t tag_length = satp::kDefaultTagLength) {
  satp::Settings s;
  s.role = role;
  s.tag_length = tag_length;
  return s;
}

satp::MasterKey key_of(std::string_view passphrase) {
  return satp::master_key_from_passphrase(passphrase, satp::KdPrf::AesCtr128);
}

std::string passphrase_of(std::uint16_t mux) {
  return "client " + std::to_string(mux);
}

std::uint64_t count(const relay::DropCounts& drops, std::string_view reason) {
  const auto it = drops.by_reason.find(reason);
  return it == drops.by_reason.end() ? 0 : it->second;
}

// One packet the engine sealed toward a peer, opened by the client it was meant for.
struct Received {
  satp::Header header;
  std::uint16_t type = 0;
  Packet payload;
};

// The client end of one connection: its own codec (role right) and replay window.
struct Client {
  std::uint16_t mux = 0;
  Peer peer;
  satp::Codec codec;
  satp::ReplayWindow window{};
  std::uint32_t seq = 1;

  Packet seal_at(std::uint32_t s, std::uint16_t type, core::Bytes payload,
                 std::uint16_t sender = kClientSender) {
    Packet out(satp::kMaxPacket);
    const auto sealed = codec.seal(satp::Header{s, sender, mux}, type, payload, out);
    REQUIRE(sealed);
    out.resize(sealed->size());
    return out;
  }
  Packet seal(std::uint16_t type, core::Bytes payload) { return seal_at(seq++, type, payload); }
  Packet seal(const Packet& inner) {
    return seal(
        (std::to_integer<unsigned>(inner[0]) >> 4) == 4 ? satp::kPayloadIpv4 : satp::kPayloadIpv6,
        inner);
  }
  Received open(Packet packet) {
    const auto opened = codec.open(packet, window);
    REQUIRE(opened);
    return {opened->header, opened->payload_type, {opened->payload.begin(), opened->payload.end()}};
  }
};

// Everything the engine asked of the daemon, copied.
class RecordingSink : public relay::Sink {
 public:
  struct ToPeer {
    Peer peer;
    Packet packet;
  };
  struct ToTun {
    Packet packet;
    std::size_t offset;
  };
  struct Control {
    std::uint16_t mux;
    Peer from;
    relay::control::Message message;
  };

  void to_peer(const Peer& peer, core::Bytes packet) override {
    peers.push_back({peer, {packet.begin(), packet.end()}});
  }
  void to_tun(core::MutableBytes frame, std::size_t offset, std::size_t length) override {
    REQUIRE(offset + length <= frame.size());
    const auto packet = frame.subspan(offset, length);
    tun.push_back({{packet.begin(), packet.end()}, offset});
  }
  void control(std::uint16_t mux, const Peer& from,
               const relay::control::Message& message) override {
    controls.push_back({mux, from, message});
  }
  void peer_changed(std::uint16_t mux, const Peer& peer) override {
    peer_changes.emplace_back(mux, peer);
  }

  bool empty() const {
    return peers.empty() && tun.empty() && controls.empty() && peer_changes.empty();
  }
  void clear() {
    peers.clear();
    tun.clear();
    controls.clear();
    peer_changes.clear();
  }

  std::vector<ToPeer> peers;
  std::vector<ToTun> tun;
  std::vector<Control> controls;
  std::vector<std::pair<std::uint16_t, Peer>> peer_changes;
};

EngineOptions options_with(std::optional<std::uint16_t> default_mux = std::nullopt,
                           bool nat = false) {
  EngineOptions o;
  o.sender_id = kEngineSender;
  o.default_mux = default_mux;
  if (nat) {
    relay::NatConfig c;
    c.address4 = v4(kNat4);
    c.address6 = v6(kNat6);
    o.nat = c;
  }
  o.seed = 42;
  return o;
}

// An engine, its sink and the clients of its connections.
struct Lab {
  explicit Lab(EngineOptions options = options_with()) : engine{std::move(options)} {}

  ConnectionSpec spec_of(std::uint16_t mux, std::optional<Peer> peer,
                         std::string_view passphrase) const {
    ConnectionSpec s;
    s.mux = mux;
    s.settings = settings(satp::Role::Left);
    s.key = key_of(passphrase);
    s.salt = satp::master_salt_from_passphrase(passphrase);
    s.peer = std::move(peer);
    s.routes = routes_of(mux);
    return s;
  }

  // Client `mux` at 198.51.100.mux:4000 + mux, known to the engine unless `known_peer` is false;
  // the engine's sequence numbers toward it start at 1000 * mux.
  Client& add(std::uint16_t mux, bool known_peer = true, bool open_tunnel = false,
              std::size_t tag_length = satp::kDefaultTagLength) {
    const auto peer =
        udp_peer("198.51.100." + std::to_string(mux), static_cast<std::uint16_t>(4000 + mux));
    auto s = spec_of(mux, known_peer ? std::optional{peer} : std::nullopt, passphrase_of(mux));
    s.open_tunnel = open_tunnel;
    s.settings.tag_length = tag_length;
    REQUIRE(engine.add(s, 1000u * mux));
    const auto passphrase = passphrase_of(mux);
    auto codec = satp::Codec::create(settings(satp::Role::Right, tag_length), key_of(passphrase),
                                     satp::master_salt_from_passphrase(passphrase));
    REQUIRE(codec);
    return clients.insert_or_assign(mux, Client{mux, peer, std::move(*codec)}).first->second;
  }

  // A SATP packet from the network, in the middle of a larger frame.
  void from_network(const Packet& packet, const Peer& from) {
    Packet frame(kHeadroom + packet.size() + kTailroom, std::byte{0xEE});
    std::copy(packet.begin(), packet.end(), frame.begin() + kHeadroom);
    engine.from_network(from, frame, kHeadroom, packet.size(), sink, kNow);
  }
  // `inner` sealed by the client and sent from its peer.
  void send(Client& c, const Packet& inner) { from_network(c.seal(inner), c.peer); }
  void from_tun(const Packet& inner) {
    Packet frame(kHeadroom + inner.size() + kTailroom, std::byte{0xEE});
    std::copy(inner.begin(), inner.end(), frame.begin() + kHeadroom);
    engine.from_tun(frame, kHeadroom, inner.size(), sink, kNow);
  }

  Client& client(std::uint16_t mux) { return clients.at(mux); }
  const relay::ConnectionStats& stats(std::uint16_t mux) const {
    const auto* s = engine.stats(mux);
    REQUIRE(s != nullptr);
    return *s;
  }

  Engine engine;
  RecordingSink sink;
  std::map<std::uint16_t, Client> clients;
};

// The only packet the sink got for a peer, which must be `mux`'s, opened by that client.
Received only_to(Lab& lab, std::uint16_t mux) {
  REQUIRE(lab.sink.peers.size() == 1);
  auto& c = lab.client(mux);
  CHECK(lab.sink.peers[0].peer == c.peer);
  return c.open(lab.sink.peers[0].packet);
}

// The connections whose peers got a packet, each opened by its client to `inner`.
std::vector<std::uint16_t> group_receivers(Lab& lab, const Packet& inner, std::uint16_t type) {
  std::vector<std::uint16_t> muxes;
  for (const auto& sent : lab.sink.peers) {
    const auto it = std::find_if(lab.clients.begin(), lab.clients.end(),
                                 [&](const auto& kv) { return kv.second.peer == sent.peer; });
    REQUIRE(it != lab.clients.end());
    const auto r = it->second.open(sent.packet);
    CHECK(r.header.mux == it->first);
    CHECK(r.type == type);
    CHECK(r.payload == inner);
    muxes.push_back(it->first);
  }
  std::sort(muxes.begin(), muxes.end());
  return muxes;
}

}  // namespace

TEST_CASE("engine: packets to no route go to the TUN unchanged and in place", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  const auto inner4 = udp(kClient1Host4, kOutside4);
  const auto inner6 = udp(kClient1Host6, kOutside6, "hello six");

  lab.send(c1, inner4);
  lab.send(c1, inner6);

  REQUIRE(lab.sink.tun.size() == 2);
  CHECK(lab.sink.tun[0].packet == inner4);
  CHECK(lab.sink.tun[1].packet == inner6);
  // The inner packet is where the codec decrypted it: after the header and the payload type.
  CHECK(lab.sink.tun[0].offset == kHeadroom + satp::kHeaderSize + satp::kPayloadTypeSize);
  CHECK(lab.sink.tun[1].offset == kHeadroom + satp::kHeaderSize + satp::kPayloadTypeSize);
  CHECK(lab.sink.peers.empty());
  CHECK(lab.sink.peer_changes.empty());  // the packets came from the known peer
  CHECK(lab.stats(1).rx_packets == 2);
  CHECK(lab.stats(1).rx_bytes == inner4.size() + inner6.size());
  CHECK(lab.stats(1).tx_packets == 0);
  CHECK(lab.stats(1).drops.total() == 0);
  CHECK(lab.stats(2).rx_packets == 0);
  CHECK(lab.engine.drops().total() == 0);
}

TEST_CASE("engine: a packet to another client's route is sealed to that client only",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  lab.add(3);

  SECTION("IPv4") {
    const auto inner = udp(kClient1Host4, kClient2Host4);
    lab.send(c1, inner);
    REQUIRE(lab.sink.peers.size() == 1);
    const auto& sealed = lab.sink.peers[0].packet;
    // seq 2000 (client 2's first), the engine's sender id 7, client 2's MUX; then type, inner,
    // the 10-byte tag.
    CHECK(sealed.size() == 8 + 2 + inner.size() + 10);
    CHECK(Packet(sealed.begin(), sealed.begin() + 8) == hex("0000 07d0 0007 0002"));
    const auto r = only_to(lab, 2);
    CHECK(r.header == satp::Header{2000, kEngineSender, 2});
    CHECK(r.type == satp::kPayloadIpv4);
    CHECK(r.payload == inner);
    CHECK(lab.engine.tx_seq(2) == 2001);
    CHECK(lab.stats(1).rx_packets == 1);
    CHECK(lab.stats(1).rx_bytes == inner.size());
    CHECK(lab.stats(1).tx_packets == 0);
    CHECK(lab.stats(2).tx_packets == 1);
    CHECK(lab.stats(2).tx_bytes == inner.size());
    CHECK(lab.stats(2).rx_packets == 0);
  }
  SECTION("IPv6 twice: the sequence number goes up by one per packet") {
    const auto inner = udp(kClient1Host6, kClient2Host6);
    lab.send(c1, inner);
    const auto first = only_to(lab, 2);
    CHECK(first.header == satp::Header{2000, kEngineSender, 2});
    CHECK(first.type == satp::kPayloadIpv6);
    CHECK(first.payload == inner);
    lab.sink.clear();
    lab.send(c1, inner);
    CHECK(only_to(lab, 2).header == satp::Header{2001, kEngineSender, 2});
    CHECK(lab.engine.tx_seq(2) == 2002);
    CHECK(lab.stats(2).tx_packets == 2);
    CHECK(lab.stats(2).tx_bytes == 2 * inner.size());
    CHECK(lab.stats(1).rx_packets == 2);
  }
  CHECK(lab.sink.tun.empty());
  CHECK(lab.engine.tx_seq(3) == 3000);
  CHECK(lab.stats(3).tx_packets == 0);
  CHECK(lab.engine.drops().total() == 0);
}

TEST_CASE("engine: the longest prefix wins between overlapping client routes", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);  // 192.0.2.64/26, 2001:db8:2::/48
  lab.add(3);
  auto s3 = *lab.engine.spec(3);
  s3.routes = {p4("192.0.2.96/27"), p6("2001:db8:2:5::/64")};
  REQUIRE(lab.engine.add(s3, 3000));

  const struct {
    std::string_view destination;
    std::uint16_t mux;
  } cases[] = {
      {"192.0.2.70", 2},      {"192.0.2.95", 2},      {"192.0.2.96", 3},      {"192.0.2.127", 3},
      {"2001:db8:2:4::1", 2}, {"2001:db8:2:5::1", 3}, {"2001:db8:2:6::1", 2},
  };
  for (const auto& k : cases) {
    INFO(k.destination);
    lab.sink.clear();
    const auto inner =
        udp(k.destination.find(':') == std::string_view::npos ? kClient1Host4 : kClient1Host6,
            k.destination);
    lab.send(c1, inner);
    CHECK(only_to(lab, k.mux).payload == inner);
    CHECK(lab.sink.tun.empty());
  }
}

TEST_CASE("engine: a client's packet to its own route is dropped as a loop", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  lab.send(c1, udp(kClient1Host4, "192.0.2.11"));
  lab.send(c1, udp(kClient1Host6, "2001:db8:1::11"));
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(1).drops, "loop") == 2);
  CHECK(lab.stats(1).drops.total() == 2);
  CHECK(lab.stats(1).rx_packets == 2);  // opened, then refused
  CHECK(lab.stats(1).tx_packets == 0);

  // The same destination from the TUN is no loop: it goes to client 1.
  const auto inner = udp(kOutside4, "192.0.2.11");
  lab.from_tun(inner);
  CHECK(only_to(lab, 1).payload == inner);
}

TEST_CASE("engine: multicast and broadcast from a client reach the other clients and the TUN",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  lab.add(3);
  lab.add(4, /*known_peer=*/false);

  const struct {
    Packet inner;
    std::uint16_t type;
  } cases[] = {
      {udp(kClient1Host4, "224.0.0.1"), satp::kPayloadIpv4},
      {udp(kClient1Host4, "239.1.2.3"), satp::kPayloadIpv4},
      {udp(kClient1Host4, "255.255.255.255"), satp::kPayloadIpv4},
      {udp(kClient1Host6, "ff02::1"), satp::kPayloadIpv6},
      {udp("fe80::1", "ff05::2"), satp::kPayloadIpv6},
  };
  for (const auto& k : cases) {
    lab.sink.clear();
    lab.send(c1, k.inner);
    CHECK(group_receivers(lab, k.inner, k.type) == std::vector<std::uint16_t>{2, 3});
    REQUIRE(lab.sink.tun.size() == 1);
    CHECK(lab.sink.tun[0].packet == k.inner);
  }
  // A connection without a peer is skipped, not counted as a drop.
  CHECK(lab.stats(4).drops.total() == 0);
  CHECK(lab.stats(4).tx_packets == 0);
  CHECK(lab.stats(1).tx_packets == 0);
  CHECK(lab.stats(2).tx_packets == 5);

  SECTION("from the TUN: every client with a peer and not the TUN again") {
    const auto inner = udp(kOutside4, "224.0.0.251");
    lab.sink.clear();
    lab.from_tun(inner);
    CHECK(group_receivers(lab, inner, satp::kPayloadIpv4) == std::vector<std::uint16_t>{1, 2, 3});
    CHECK(lab.sink.tun.empty());
  }
  SECTION("a directed broadcast or an address just below 224 is unicast") {
    for (const auto dst : {"255.255.255.254", "223.255.255.255"}) {
      lab.sink.clear();
      const auto inner = udp(kClient1Host4, dst);
      lab.send(c1, inner);
      CHECK(lab.sink.peers.empty());
      REQUIRE(lab.sink.tun.size() == 1);
    }
  }
}

TEST_CASE("engine: a TUN packet goes to the client of its route or else the default connection",
          "[relay][engine]") {
  SECTION("a client route") {
    Lab lab;
    lab.add(1);
    lab.add(2);
    const auto inner4 = udp(kOutside4, kClient2Host4);
    const auto inner6 = udp(kOutside6, kClient2Host6);
    lab.from_tun(inner4);
    auto r = only_to(lab, 2);
    CHECK(r.header == satp::Header{2000, kEngineSender, 2});
    CHECK(r.type == satp::kPayloadIpv4);
    CHECK(r.payload == inner4);
    lab.sink.clear();
    lab.from_tun(inner6);
    r = only_to(lab, 2);
    CHECK(r.header == satp::Header{2001, kEngineSender, 2});
    CHECK(r.type == satp::kPayloadIpv6);
    CHECK(r.payload == inner6);
    CHECK(lab.stats(2).tx_packets == 2);
    CHECK(lab.stats(2).tx_bytes == inner4.size() + inner6.size());
    CHECK(lab.engine.drops().total() == 0);
  }
  SECTION("no route and no default: dropped as no_route") {
    Lab lab;
    lab.add(1);
    lab.from_tun(udp(kOutside4, "198.51.100.99"));
    lab.from_tun(udp(kOutside6, "2001:db8:ff::99"));
    CHECK(lab.sink.empty());
    CHECK(count(lab.engine.drops(), "no_route") == 2);
    CHECK(lab.engine.drops().total() == 2);
    CHECK(lab.stats(1).drops.total() == 0);
  }
  SECTION("no route: the default connection and a route still wins") {
    Lab lab{options_with(/*default_mux=*/2)};
    lab.add(1);
    lab.add(2);
    const auto inner = udp(kOutside4, "198.51.100.99");
    lab.from_tun(inner);
    CHECK(only_to(lab, 2).payload == inner);
    lab.sink.clear();
    const auto routed = udp(kOutside4, kClient1Host4);
    lab.from_tun(routed);
    CHECK(only_to(lab, 1).payload == routed);
    CHECK(lab.engine.drops().total() == 0);
  }
  SECTION("a default connection that does not exist: no_route") {
    Lab lab{options_with(/*default_mux=*/9)};
    lab.add(1);
    lab.from_tun(udp(kOutside4, "198.51.100.99"));
    CHECK(lab.sink.empty());
    CHECK(count(lab.engine.drops(), "no_route") == 1);
  }
  SECTION("not IP: not_ip") {
    Lab lab{options_with(/*default_mux=*/1)};
    lab.add(1);
    const auto v4_packet = udp(kOutside4, kClient1Host4);
    lab.from_tun({});
    lab.from_tun(Packet(v4_packet.begin(), v4_packet.begin() + 19));  // shorter than a header
    lab.from_tun(hex("6000 0000"));                                   // IPv6, 4 bytes
    lab.from_tun(Packet(40, std::byte{0x55}));                        // version 5
    CHECK(lab.sink.empty());
    CHECK(count(lab.engine.drops(), "not_ip") == 4);
    CHECK(lab.engine.drops().total() == 4);
  }
}

TEST_CASE("engine: a connection's peer is learned from its first packet and follows it",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  auto& c2 = lab.add(2, /*known_peer=*/false);
  CHECK(lab.engine.peer(2) == std::nullopt);
  const auto to2 = udp(kClient1Host4, kClient2Host4);

  // No peer yet: nothing can be sent toward client 2.
  lab.send(c1, to2);
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(2).drops, "no_peer") == 1);
  CHECK(lab.stats(2).tx_packets == 0);
  CHECK(lab.engine.tx_seq(2) == 2000);
  lab.from_tun(udp(kOutside4, kClient2Host4));
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(2).drops, "no_peer") == 2);

  // Client 2's first packet teaches the engine where it is.
  lab.send(c2, udp(kClient2Host4, kOutside4));
  REQUIRE(lab.sink.peer_changes.size() == 1);
  CHECK(lab.sink.peer_changes[0] == std::pair{std::uint16_t{2}, c2.peer});
  CHECK(lab.engine.peer(2) == c2.peer);
  CHECK(lab.stats(2).peer_changes == 1);
  CHECK(lab.sink.tun.size() == 1);

  // A second packet from the same place changes nothing.
  lab.sink.clear();
  lab.send(c2, udp(kClient2Host4, kOutside4));
  CHECK(lab.sink.peer_changes.empty());
  CHECK(lab.stats(2).peer_changes == 1);

  lab.sink.clear();
  lab.send(c1, to2);
  CHECK(only_to(lab, 2).payload == to2);

  // Client 2 moves (roaming, or another anycast node's clients), here to IPv6 and a TCP stream.
  const Peer moved{Endpoint::v6(v6("2001:db8:aaaa::2"), 5555), 77};
  lab.sink.clear();
  lab.from_network(c2.seal(udp(kClient2Host4, kOutside4)), moved);
  REQUIRE(lab.sink.peer_changes.size() == 1);
  CHECK(lab.sink.peer_changes[0] == std::pair{std::uint16_t{2}, moved});
  CHECK(lab.engine.peer(2) == moved);
  CHECK(lab.stats(2).peer_changes == 2);
  lab.sink.clear();
  lab.send(c1, to2);
  REQUIRE(lab.sink.peers.size() == 1);
  CHECK(lab.sink.peers[0].peer == moved);
  CHECK(c2.open(lab.sink.peers[0].packet).payload == to2);

  // set_peer (cluster sync) sets it without a callback.
  lab.sink.clear();
  lab.engine.set_peer(2, c2.peer);
  CHECK(lab.engine.peer(2) == c2.peer);
  lab.engine.set_peer(2, std::nullopt);
  CHECK(lab.engine.peer(2) == std::nullopt);
  CHECK(lab.sink.empty());
  CHECK(lab.stats(2).peer_changes == 2);
}

TEST_CASE("engine: packets shorter than a SATP header are counted as truncated",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  const auto sealed = c1.seal(udp(kClient1Host4, kOutside4));
  for (std::size_t n = 0; n < satp::kHeaderSize; ++n)
    lab.from_network(Packet(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(n)),
                     c1.peer);
  CHECK(count(lab.engine.drops(), "truncated") == satp::kHeaderSize);
  CHECK(lab.engine.drops().total() == satp::kHeaderSize);

  // A whole header of a known MUX, but no room for the type and the tag: the connection's drop.
  const std::size_t overhead = satp::kHeaderSize + satp::kPayloadTypeSize + 10;
  for (std::size_t n = satp::kHeaderSize; n < overhead; ++n)
    lab.from_network(Packet(sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(n)),
                     c1.peer);
  CHECK(count(lab.stats(1).drops, "truncated") == overhead - satp::kHeaderSize);
  CHECK(lab.stats(1).drops.total() == overhead - satp::kHeaderSize);
  CHECK(lab.stats(1).rx_packets == 0);

  // Longer than anytun reads (kMaxPacket): too_long, before the tag is looked at.
  auto long_packet = sealed;
  long_packet.resize(satp::kMaxPacket + 1);
  lab.from_network(long_packet, c1.peer);
  CHECK(count(lab.stats(1).drops, "too_long") == 1);
  CHECK(lab.sink.empty());
}

TEST_CASE("engine: a packet for an unknown MUX is counted and not delivered", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  // Sealed with client 1's keys but the header names MUX 99.
  Client stranger{99, c1.peer,
                  satp::Codec::create(settings(satp::Role::Right), key_of(passphrase_of(1)),
                                      satp::master_salt_from_passphrase(passphrase_of(1)))
                      .value()};
  lab.send(stranger, udp(kClient1Host4, kOutside4));
  CHECK(lab.sink.empty());
  CHECK(count(lab.engine.drops(), "unknown_mux") == 1);
  CHECK(lab.engine.drops().total() == 1);
  CHECK(lab.stats(1).drops.total() == 0);
  CHECK(lab.stats(1).rx_packets == 0);
}

TEST_CASE("engine: a forged or corrupted packet fails its tag and does not move the peer",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  const auto attacker = udp_peer("198.51.100.66", 6666);
  const auto sealed = c1.seal(udp(kClient1Host4, kOutside4));

  // Every byte flipped in turn: bytes 6 and 7 (the MUX: 0x0101, 0x0000) name no connection, any
  // other makes the tag fail.
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    auto bad = sealed;
    bad[i] ^= std::byte{0x01};
    lab.from_network(bad, attacker);
  }
  CHECK(count(lab.stats(1).drops, "bad_tag") == sealed.size() - 2);
  CHECK(lab.stats(1).drops.total() == sealed.size() - 2);
  CHECK(count(lab.engine.drops(), "unknown_mux") == 2);

  // Client 1's packet with its MUX rewritten to client 2's: the MUX is authenticated.
  auto moved = sealed;
  moved[7] = std::byte{0x02};
  lab.from_network(moved, attacker);
  CHECK(count(lab.stats(2).drops, "bad_tag") == 1);

  // The wrong role (the packet as the engine would seal it) is no packet of client 1's either.
  auto engine_side = satp::Codec::create(settings(satp::Role::Left), key_of(passphrase_of(1)),
                                         satp::master_salt_from_passphrase(passphrase_of(1)))
                         .value();
  Packet out(satp::kMaxPacket);
  const auto inner = udp(kClient1Host4, kOutside4);
  const auto r = engine_side.seal({77, kClientSender, 1}, satp::kPayloadIpv4, inner, out);
  REQUIRE(r);
  lab.from_network(Packet(r->begin(), r->end()), attacker);
  CHECK(count(lab.stats(1).drops, "bad_tag") == sealed.size() - 1);

  CHECK(lab.sink.empty());
  CHECK(lab.engine.peer(1) == c1.peer);
  CHECK(lab.stats(1).peer_changes == 0);
  CHECK(lab.stats(1).rx_packets == 0);

  // The genuine packet still opens: nothing above touched the replay window.
  lab.from_network(sealed, c1.peer);
  REQUIRE(lab.sink.tun.size() == 1);
  CHECK(lab.sink.tun[0].packet == inner);
}

TEST_CASE("engine: a replayed packet is refused once accepted from anywhere", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  const auto inner = udp(kClient1Host4, kClient2Host4);
  const auto sealed = c1.seal(inner);
  lab.from_network(sealed, c1.peer);
  CHECK(only_to(lab, 2).payload == inner);

  lab.sink.clear();
  lab.from_network(sealed, c1.peer);
  lab.from_network(sealed, udp_peer("198.51.100.66", 6666));
  CHECK(lab.sink.empty());  // no second delivery, no peer change
  CHECK(count(lab.stats(1).drops, "replay") == 2);
  CHECK(lab.stats(1).drops.total() == 2);
  CHECK(lab.engine.peer(1) == c1.peer);
  CHECK(lab.stats(1).rx_packets == 1);
  CHECK(lab.stats(2).tx_packets == 1);
  CHECK(lab.engine.tx_seq(2) == 2001);

  // An older packet not yet seen is still fine (inside the window).
  lab.sink.clear();
  lab.from_network(c1.seal_at(0, satp::kPayloadIpv4, inner), c1.peer);
  CHECK(lab.sink.peers.size() == 1);
}

TEST_CASE("engine: a client whose counter starts again at 0 is served again after a few packets",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  const auto inner = udp(kClient1Host4, kClient2Host4);
  lab.from_network(c1.seal_at(500000, satp::kPayloadIpv4, inner), c1.peer);
  CHECK(lab.sink.peers.size() == 1);

  // Like a restarted anytun: 0, 1, 2 are refused as replays, the 4th in a row restarts the
  // window, and the client is served from then on.
  lab.sink.clear();
  for (std::uint32_t seq = 0; seq < 3; ++seq)
    lab.from_network(c1.seal_at(seq, satp::kPayloadIpv4, inner), c1.peer);
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(1).drops, "replay") == 3);
  for (std::uint32_t seq = 3; seq < 6; ++seq)
    lab.from_network(c1.seal_at(seq, satp::kPayloadIpv4, inner), c1.peer);
  CHECK(lab.sink.peers.size() == 3);
  CHECK(lab.stats(1).sender_restarts == 1);
  // The new window refuses replays as before.
  lab.sink.clear();
  lab.from_network(c1.seal_at(5, satp::kPayloadIpv4, inner), c1.peer);
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(1).drops, "replay") == 4);
}

TEST_CASE("engine: payload types and inner packets the engine does not take are dropped",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  const auto inner = udp(kClient1Host4, kClient2Host4);

  SECTION("Ethernet or any other type: bad_payload_type") {
    lab.from_network(c1.seal(satp::kPayloadEthernet, inner), c1.peer);
    lab.from_network(c1.seal(0x0000, inner), c1.peer);
    CHECK(count(lab.stats(1).drops, "bad_payload_type") == 2);
    CHECK(lab.stats(1).drops.total() == 2);
  }
  SECTION("an IP type whose payload is not IP: not_ip") {
    lab.from_network(c1.seal(satp::kPayloadIpv4, {}), c1.peer);
    lab.from_network(c1.seal(satp::kPayloadIpv4, hex("4500 0014")), c1.peer);
    lab.from_network(c1.seal(satp::kPayloadIpv6, Packet(40, std::byte{0x70})), c1.peer);
    CHECK(count(lab.stats(1).drops, "not_ip") == 3);
    CHECK(lab.stats(1).drops.total() == 3);
  }
  SECTION("a control payload that does not decode") {
    const struct {
      std::string_view bytes;
      std::string_view reason;
    } cases[] = {
        {"", "truncated"},
        {"01", "truncated"},
        {"0108 0000", "truncated"},
        {"0208 0000 0001", "bad_version"},
        {"0163 0000 0001", "unknown_type"},
        {"0108 0000 0001 00", "trailing_bytes"},
        {"0109 0000 0001 05 c0000201 115c", "bad_field"},
    };
    for (const auto& k : cases) {
      INFO(k.bytes);
      lab.sink.clear();
      const auto before = count(lab.stats(1).drops, k.reason);
      lab.from_network(c1.seal(relay::control::kPayloadType, hex(k.bytes)), c1.peer);
      CHECK(count(lab.stats(1).drops, k.reason) == before + 1);
      CHECK(lab.sink.empty());
    }
    CHECK(lab.stats(1).control == 0);
    CHECK(lab.stats(1).drops.total() == std::size(cases));
  }
  CHECK(lab.sink.empty());
  CHECK(lab.stats(2).tx_packets == 0);
  CHECK(lab.engine.drops().total() == 0);
}

TEST_CASE("engine: a control message from a client reaches the sink", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1, /*known_peer=*/false);
  const relay::control::Message locate{42, relay::control::Locate{}};
  // version 1, type 8 (Locate), request id 42, no body.
  lab.from_network(c1.seal(relay::control::kPayloadType, hex("0108 0000 002a")), c1.peer);
  REQUIRE(lab.sink.controls.size() == 1);
  CHECK(lab.sink.controls[0].mux == 1);
  CHECK(lab.sink.controls[0].from == c1.peer);
  CHECK(lab.sink.controls[0].message == locate);
  CHECK(lab.sink.tun.empty());
  CHECK(lab.sink.peers.empty());
  // The peer is learned from a control message too.
  CHECK(lab.sink.peer_changes.size() == 1);
  CHECK(lab.engine.peer(1) == c1.peer);
  CHECK(lab.stats(1).control == 1);
  CHECK(lab.stats(1).rx_packets == 1);
  CHECK(lab.stats(1).rx_bytes == 6);
}

TEST_CASE("engine: send_control seals a message toward the connection's peer", "[relay][engine]") {
  Lab lab;
  lab.add(1);
  lab.add(2, /*known_peer=*/false);
  const relay::control::Message located{
      42, relay::control::Located{Endpoint::v4(v4("192.0.2.1"), 4444)}};

  REQUIRE(lab.engine.send_control(1, located, lab.sink));
  const auto r = only_to(lab, 1);
  CHECK(r.header == satp::Header{1000, kEngineSender, 1});
  CHECK(r.type == relay::control::kPayloadType);
  // version 1, type 9 (Located), request 42, family 4, 192.0.2.1, port 4444.
  CHECK(r.payload == hex("0109 0000 002a 04 c0000201 115c"));
  CHECK(relay::control::decode(r.payload).value() == located);
  CHECK(lab.engine.tx_seq(1) == 1001);
  CHECK(lab.stats(1).tx_packets == 1);
  CHECK(lab.stats(1).tx_bytes == r.payload.size());

  lab.sink.clear();
  CHECK(lab.engine.send_control(99, located, lab.sink).error() == relay::Errc::UnknownMux);
  CHECK(lab.engine.send_control(2, located, lab.sink).error() == relay::Errc::NoRoute);
  const relay::control::Message bad{
      1, relay::control::Error{relay::control::Code::BadRequest, std::string(201, 'x')}};
  CHECK(lab.engine.send_control(1, bad, lab.sink).error() == relay::Errc::BadField);
  CHECK(lab.sink.empty());
  CHECK(lab.engine.tx_seq(1) == 1001);
  CHECK(lab.engine.tx_seq(2) == 2000);
}

TEST_CASE("engine: open tunnel clients are translated to the NAT address and back",
          "[relay][engine]") {
  Lab lab{options_with(std::nullopt, /*nat=*/true)};
  auto& c1 = lab.add(1, true, /*open_tunnel=*/true);
  auto& c2 = lab.add(2);
  REQUIRE(lab.engine.nat() != nullptr);

  const struct {
    std::string_view inner;
    std::string_view outside;
    std::string_view nat;
    std::uint16_t type;
  } cases[] = {
      {kClient1Host4, kOutside4, kNat4, satp::kPayloadIpv4},
      {kClient1Host6, kOutside6, kNat6, satp::kPayloadIpv6},
  };
  std::uint16_t port4 = 0;
  for (const auto& k : cases) {
    INFO(k.inner);
    lab.sink.clear();
    lab.send(c1, udp(k.inner, k.outside, "query", 5000, 53));
    REQUIRE(lab.sink.tun.size() == 1);
    const auto mappings = lab.engine.nat()->mappings();
    const auto it = std::find_if(mappings.begin(), mappings.end(), [&](const auto& m) {
      return m.inner ==
             (k.type == satp::kPayloadIpv4 ? v6("::ffff:" + std::string{k.inner}) : v6(k.inner));
    });
    REQUIRE(it != mappings.end());
    CHECK(it->mux == 1);
    CHECK(it->inner_port == 5000);
    CHECK(it->external_port >= 20000);
    CHECK(it->external_port <= 59999);
    const auto port = it->external_port;
    if (k.type == satp::kPayloadIpv4) port4 = port;
    CHECK(lab.sink.tun[0].packet == udp(k.nat, k.outside, "query", port, 53));
    CHECK(lab.sink.peers.empty());

    // The answer the kernel routes back into the tunnel.
    lab.sink.clear();
    lab.from_tun(udp(k.outside, k.nat, "answer", 53, port));
    const auto r = only_to(lab, 1);
    CHECK(r.type == k.type);
    CHECK(r.payload == udp(k.outside, k.inner, "answer", 53, 5000));
    CHECK(lab.sink.tun.empty());
  }
  CHECK(lab.engine.nat()->size_of(1) == 2);

  SECTION("a client without open tunnel goes to the TUN untranslated") {
    lab.sink.clear();
    const auto inner = udp(kClient2Host4, kOutside4);
    lab.send(c2, inner);
    REQUIRE(lab.sink.tun.size() == 1);
    CHECK(lab.sink.tun[0].packet == inner);
    CHECK(lab.engine.nat()->size_of(2) == 0);
  }
  SECTION("what the NAT refuses is dropped with its reason") {
    lab.sink.clear();
    // A fragment (unsupported), then a packet to the NAT address itself (not_allowed).
    lab.send(c1, PacketBuilder{}.ipv4(kClient1Host4, kOutside4).mf().udp(1, 2).bytes());
    lab.send(c1, udp(kClient1Host4, kNat4));
    CHECK(lab.sink.empty());
    CHECK(count(lab.stats(1).drops, "unsupported") == 1);
    CHECK(count(lab.stats(1).drops, "not_allowed") == 1);
  }
  SECTION("a reply without a mapping is dropped as unknown_mapping") {
    lab.sink.clear();
    lab.from_tun(udp(kOutside4, kNat4, "answer", 53, 1));
    // The mapping's port, but from a remote the client never sent to.
    lab.from_tun(udp("198.51.100.200", kNat4, "answer", 53, port4));
    CHECK(lab.sink.empty());
    CHECK(count(lab.engine.drops(), "unknown_mapping") == 2);
  }
  SECTION("routes between clients come before the NAT") {
    lab.sink.clear();
    const auto inner = udp(kClient1Host4, kClient2Host4);
    lab.send(c1, inner);
    CHECK(only_to(lab, 2).payload == inner);
    CHECK(lab.sink.tun.empty());
  }
  SECTION("remove() forgets the client's mappings") {
    CHECK(lab.engine.remove(1));
    CHECK(lab.engine.nat()->size() == 0);
  }
}

TEST_CASE("engine: open tunnel without a NAT configured goes to the TUN untranslated",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1, true, /*open_tunnel=*/true);
  CHECK(lab.engine.nat() == nullptr);
  const auto inner = udp(kClient1Host4, kOutside4);
  lab.send(c1, inner);
  REQUIRE(lab.sink.tun.size() == 1);
  CHECK(lab.sink.tun[0].packet == inner);
}

TEST_CASE("engine: replacing a connection keeps its counters and with the same keys its window",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1, /*known_peer=*/false);
  lab.add(2);
  const auto inner = udp(kClient1Host4, kOutside4);
  const auto sealed = c1.seal(inner);
  lab.from_network(sealed, c1.peer);
  REQUIRE(lab.engine.send_control(1, {1, relay::control::Locate{}}, lab.sink));
  CHECK(lab.engine.tx_seq(1) == 1001);

  SECTION("same keys: the replay window and the sequence numbers stay") {
    auto s = *lab.engine.spec(1);
    s.routes = {p4("192.0.2.128/26")};
    s.open_tunnel = true;
    REQUIRE(lab.engine.add(s, 0));
    CHECK(lab.engine.spec(1)->routes == s.routes);
    CHECK(lab.engine.spec(1)->open_tunnel);
    CHECK(lab.engine.tx_seq(1) == 1001);  // never back
    CHECK(lab.stats(1).rx_packets == 1);
    CHECK(lab.stats(1).tx_packets == 1);
    CHECK(lab.stats(1).peer_changes == 1);
    CHECK(lab.engine.peer(1) == c1.peer);  // learned, and the new spec names none

    lab.sink.clear();
    lab.from_network(sealed, c1.peer);
    CHECK(lab.sink.empty());
    CHECK(count(lab.stats(1).drops, "replay") == 1);

    // The routes were replaced.
    CHECK(lab.engine.routes().routes_of(1) == std::vector<relay::Route>{{p4("192.0.2.128/26"), 1}});
    lab.from_tun(udp(kOutside4, kClient1Host4));
    CHECK(count(lab.engine.drops(), "no_route") == 1);
    lab.from_tun(udp(kOutside4, "192.0.2.130"));
    CHECK(only_to(lab, 1).header.seq == 1001);

    // A larger starting sequence number is taken.
    REQUIRE(lab.engine.add(s, 5000));
    CHECK(lab.engine.tx_seq(1) == 5000);
  }
  SECTION("new keys: a new window and the given sequence numbers") {
    auto s = *lab.engine.spec(1);
    s.key = key_of("new passphrase");
    s.salt = satp::master_salt_from_passphrase("new passphrase");
    REQUIRE(lab.engine.add(s, 7));
    CHECK(lab.engine.tx_seq(1) == 7);
    CHECK(lab.stats(1).rx_packets == 1);  // the counters stay all the same
    CHECK(lab.engine.rx_marks(1).empty());

    Client renewed{1, c1.peer,
                   satp::Codec::create(settings(satp::Role::Right), s.key, s.salt).value()};
    lab.sink.clear();
    lab.from_network(renewed.seal_at(1, satp::kPayloadIpv4, inner), c1.peer);  // seq 1 again
    REQUIRE(lab.sink.tun.size() == 1);
    CHECK(lab.sink.tun[0].packet == inner);
    // The old key's packets no longer open.
    lab.from_network(c1.seal(inner), c1.peer);
    CHECK(count(lab.stats(1).drops, "bad_tag") == 1);
  }
  SECTION("keys a codec refuses: an error and the old connection stays") {
    auto s = *lab.engine.spec(1);
    s.key.size = 20;
    s.routes = {};
    CHECK(lab.engine.add(s, 0).error() == satp::Errc::BadKeyLength);
    CHECK(lab.engine.spec(1)->key == key_of(passphrase_of(1)));
    CHECK(lab.engine.routes().routes_of(1).size() == 2);
    s.mux = 9;
    CHECK(lab.engine.add(s, 0).error() == satp::Errc::BadKeyLength);
    CHECK_FALSE(lab.engine.contains(9));
  }
}

TEST_CASE("engine: remove() drops a connection and its routes", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  auto& c2 = lab.add(2);
  lab.add(3);
  CHECK(lab.engine.muxes() == std::vector<std::uint16_t>{1, 2, 3});
  CHECK(lab.engine.routes().size() == 6);

  CHECK(lab.engine.remove(2));
  CHECK_FALSE(lab.engine.remove(2));
  CHECK_FALSE(lab.engine.contains(2));
  CHECK(lab.engine.muxes() == std::vector<std::uint16_t>{1, 3});
  CHECK(lab.engine.stats(2) == nullptr);
  CHECK(lab.engine.spec(2) == nullptr);
  CHECK(lab.engine.peer(2) == std::nullopt);
  CHECK(lab.engine.routes().routes_of(2).empty());
  CHECK(lab.engine.routes().size() == 4);

  // Client 2's prefix now belongs to no one: to the TUN.
  const auto inner = udp(kClient1Host4, kClient2Host4);
  lab.send(c1, inner);
  CHECK(lab.sink.peers.empty());
  REQUIRE(lab.sink.tun.size() == 1);
  CHECK(lab.sink.tun[0].packet == inner);
  // And client 2's packets name an unknown MUX.
  lab.send(c2, udp(kClient2Host4, kOutside4));
  CHECK(count(lab.engine.drops(), "unknown_mux") == 1);
  CHECK(lab.sink.tun.size() == 1);
}

TEST_CASE("engine: rx_marks and raise_rx carry the replay window between nodes",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  const auto inner = udp(kClient1Host4, kOutside4);
  auto send_at = [&](std::uint32_t seq, std::uint16_t sender) {
    lab.sink.clear();
    lab.from_network(c1.seal_at(seq, satp::kPayloadIpv4, inner, sender), c1.peer);
    return lab.sink.tun.size() == 1;
  };
  using Marks = std::vector<std::pair<std::uint16_t, std::uint32_t>>;

  CHECK(lab.engine.rx_marks(1).empty());
  CHECK(send_at(10, 3));
  CHECK(lab.engine.rx_marks(1) == Marks{{3, 10}});

  lab.engine.raise_rx(1, 3, 50);
  CHECK(lab.engine.rx_marks(1) == Marks{{3, 50}});
  CHECK_FALSE(send_at(50, 3));
  CHECK_FALSE(send_at(45, 3));
  CHECK(count(lab.stats(1).drops, "replay") == 2);
  CHECK(send_at(51, 3));
  CHECK(lab.engine.rx_marks(1) == Marks{{3, 51}});

  // Lower: the mark stays.
  lab.engine.raise_rx(1, 3, 20);
  CHECK(lab.engine.rx_marks(1) == Marks{{3, 51}});

  // A sender not seen yet.
  lab.engine.raise_rx(1, 5, 100);
  CHECK(lab.engine.rx_marks(1) == Marks{{3, 51}, {5, 100}});
  CHECK_FALSE(send_at(100, 5));
  CHECK_FALSE(send_at(1, 5));
  CHECK(send_at(101, 5));

  // Unknown MUXes are ignored.
  lab.engine.raise_rx(9, 3, 1000);
  CHECK(lab.engine.rx_marks(9).empty());
}

TEST_CASE("engine: a connection tracks a bounded number of sender ids", "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  const auto inner = udp(kClient1Host4, kOutside4);
  for (std::uint16_t sender = 0; sender < satp::kDefaultMaxSenders; ++sender)
    lab.from_network(c1.seal_at(1, satp::kPayloadIpv4, inner, sender), c1.peer);
  CHECK(lab.sink.tun.size() == satp::kDefaultMaxSenders);
  CHECK(lab.engine.rx_marks(1).size() == satp::kDefaultMaxSenders);
  lab.from_network(c1.seal_at(1, satp::kPayloadIpv4, inner, 1000), c1.peer);
  CHECK(lab.sink.tun.size() == satp::kDefaultMaxSenders);
  CHECK(count(lab.stats(1).drops, "too_many_senders") == 1);
  CHECK(lab.engine.rx_marks(1).size() == satp::kDefaultMaxSenders);
}

TEST_CASE("engine: raise_tx_seq only raises the sequence number", "[relay][engine]") {
  Lab lab;
  lab.add(1);
  lab.engine.raise_tx_seq(1, 500);
  CHECK(lab.engine.tx_seq(1) == 1000);
  lab.engine.raise_tx_seq(1, 1000);
  CHECK(lab.engine.tx_seq(1) == 1000);
  lab.engine.raise_tx_seq(1, 4000);
  CHECK(lab.engine.tx_seq(1) == 4000);
  lab.engine.raise_tx_seq(9, 4000);
  CHECK(lab.engine.tx_seq(9) == 0);

  const auto inner = udp(kOutside4, kClient1Host4);
  lab.from_tun(inner);
  const auto r = only_to(lab, 1);
  CHECK(r.header == satp::Header{4000, kEngineSender, 1});
  CHECK(r.payload == inner);
  CHECK(lab.engine.tx_seq(1) == 4001);
}

TEST_CASE("engine: a connection stops at its last sequence number instead of wrapping",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2);
  lab.engine.raise_tx_seq(2, 0xfffffffdu);
  const auto inner = udp(kClient1Host4, kClient2Host4);
  for (int i = 0; i < 3; ++i) lab.from_network(c1.seal(inner), c1.peer);
  // 0xfffffffd and 0xfffffffe go out; 0xffffffff is never used, and nothing wraps to 0.
  CHECK(lab.sink.peers.size() == 2);
  CHECK(lab.stats(2).tx_packets == 2);
  CHECK(count(lab.stats(2).drops, "seq_exhausted") == 1);
  CHECK(lab.engine.tx_seq(2) == 0xffffffffu);
}

TEST_CASE("engine: a packet too long for the destination's codec is dropped as too_long",
          "[relay][engine]") {
  Lab lab;
  auto& c1 = lab.add(1);
  lab.add(2, true, false, /*tag_length=*/20);  // 10 bytes more overhead than client 1's
  // An IPv4 UDP packet of `size` bytes in all.
  const auto sized = [](std::string_view src, std::string_view dst, std::size_t size) {
    return udp(src, dst, std::string(size - 28, 'x'));
  };

  // The largest packet client 1 can seal does not fit client 2's (1610 > 1600 bytes).
  const auto largest = sized(kClient1Host4, kClient2Host4, 1580);
  lab.send(c1, largest);
  CHECK(lab.stats(1).rx_packets == 1);
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(2).drops, "too_long") == 1);
  CHECK(lab.engine.tx_seq(2) == 2000);  // no sequence number spent

  lab.from_tun(sized(kOutside4, kClient2Host4, 1571));
  CHECK(lab.sink.empty());
  CHECK(count(lab.stats(2).drops, "too_long") == 2);
  const auto fits = sized(kOutside4, kClient2Host4, 1570);
  lab.from_tun(fits);
  const auto r = only_to(lab, 2);
  CHECK(r.header == satp::Header{2000, kEngineSender, 2});
  CHECK(r.payload == fits);
  CHECK(lab.sink.peers[0].packet.size() == satp::kMaxPacket);
}
