// The source NAT of open tunnel mode under a script of hostile steps: raw and structured packets
// from clients (outbound) and from the outside (inbound), replies to existing mappings, time
// passing (also backwards), expire() and forget(), against one SourceNat with a tiny port range
// and small bounds. Invariants: no crash; a refused packet is unchanged; after an accepted
// outbound packet, a reply built from it and an ICMP error quoting it both reach the same client
// with the original source restored and every checksum as valid as it was; size() stays within
// max_mappings and each client within its bound.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/bytes.hpp"
#include "core/checksum.hpp"
#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "core/tcp.hpp"
#include "core/udp.hpp"
#include "fuzz_check.hpp"
#include "relay/nat.hpp"

namespace {

namespace ipp = core::ip_protocol;
using Packet = std::vector<std::byte>;
using Clock = relay::SourceNat::Clock;

constexpr std::uint16_t kClients = 4;
constexpr std::uint16_t kPortFirst = 1000;
constexpr std::uint16_t kPortLast = 1005;
constexpr std::size_t kMaxMappings = 10;
constexpr std::size_t kMaxPerClient = 4;
constexpr std::size_t kMaxPacket = 1600;

const auto kNat4 = *core::Ipv4Address::parse("203.0.113.1");
const auto kNat6 = *core::Ipv6Address::parse("2001:db8:ffff::1");
const auto kRouter4 = *core::Ipv4Address::parse("198.51.100.254");
const auto kRouter6 = *core::Ipv6Address::parse("2001:db8:2::fe");
// Inner addresses of the clients, and remote hosts (the NAT address among them, for hairpins).
const std::array kInner4{*core::Ipv4Address::parse("192.0.2.10"),
                         *core::Ipv4Address::parse("192.0.2.11")};
const std::array kInner6{*core::Ipv6Address::parse("2001:db8:1::10"),
                         *core::Ipv6Address::parse("2001:db8:1::11")};
const std::array kRemote4{*core::Ipv4Address::parse("198.51.100.7"),
                          *core::Ipv4Address::parse("198.51.100.8"),
                          *core::Ipv4Address::parse("192.0.2.99"), kNat4};
const std::array kRemote6{*core::Ipv6Address::parse("2001:db8:2::7"),
                          *core::Ipv6Address::parse("2001:db8:2::8"),
                          *core::Ipv6Address::parse("2001:db8:1::99"), kNat6};

struct Script {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
  Packet bytes(std::size_t len) {
    len = std::min(len, n);
    Packet out(len);
    for (auto& b : out) b = std::byte{byte()};
    return out;
  }
};

// Where the parts of a packet the NAT accepted are (it validated them).
struct View {
  bool v6 = false;
  std::uint8_t protocol = 0;
  std::size_t l4 = 0;

  explicit View(core::Bytes p) {
    v6 = (std::to_integer<unsigned>(p[0]) >> 4) == 6;
    protocol = std::to_integer<std::uint8_t>(p[v6 ? 6 : 9]);
    l4 = v6 ? 40 : (std::to_integer<std::size_t>(p[0]) & 0x0f) * 4;
  }
  bool icmp() const { return protocol == ipp::kIcmp || protocol == ipp::kIcmpv6; }
  core::Bytes src(core::Bytes p) const { return v6 ? p.subspan(8, 16) : p.subspan(12, 4); }
  core::Bytes dst(core::Bytes p) const { return v6 ? p.subspan(24, 16) : p.subspan(16, 4); }
  std::uint16_t port(core::Bytes p, bool source) const {
    return core::load_be16(p.subspan(l4 + (icmp() ? 4 : source ? 0 : 2), 2));
  }
  std::uint16_t udp_checksum(core::Bytes p) const { return core::load_be16(p.subspan(l4 + 6, 2)); }
};

// 0 and 0xffff are the same one's-complement number: an incremental update may turn one into
// the other.
std::uint16_t norm(std::uint16_t v) {
  return v == 0xffff ? 0 : v;
}

// The residue of the transport checksum (0 when valid), recomputed over the pseudo-header and
// `message`, which runs to the end of the packet.
std::uint16_t transport_residue(core::Bytes p, const View& v) {
  const auto msg = p.subspan(v.l4);
  if (v.protocol == ipp::kIcmp) return norm(core::internet_checksum(msg));
  // The pseudo-header with zero addresses, the packet's added after: a one's-complement sum of
  // whole words does not depend on their order.
  core::Checksum c;
  if (v.v6) {
    c = core::ipv6_pseudo_header(core::Ipv6Address{}, core::Ipv6Address{}, v.protocol,
                                 static_cast<std::uint32_t>(msg.size()));
  } else {
    c = core::ipv4_pseudo_header(core::Ipv4Address{}, core::Ipv4Address{}, v.protocol,
                                 static_cast<std::uint16_t>(msg.size()));
  }
  return norm(c.add(v.src(p)).add(v.dst(p)).add(msg).finish());
}

std::uint16_t header_residue(core::Bytes p, const View& v) {
  return v.v6 ? 0 : norm(core::internet_checksum(p.first(v.l4)));
}

class Harness {
 public:
  Harness()
      : nat_{[] {
               relay::NatConfig c;
               c.address4 = kNat4;
               c.address6 = kNat6;
               c.port_first = kPortFirst;
               c.port_last = kPortLast;
               c.max_mappings = kMaxMappings;
               c.max_mappings_per_client = kMaxPerClient;
               c.udp_timeout = std::chrono::seconds{30};
               c.tcp_timeout = std::chrono::seconds{300};
               c.tcp_transitory_timeout = std::chrono::seconds{20};
               c.icmp_timeout = std::chrono::seconds{10};
               return c;
             }(),
             1} {}

  void outbound(std::uint16_t mux, Packet p) {
    const Packet original = p;
    const auto r = nat_.outbound(mux, p, now_);
    if (!r) {
      FUZZ_CHECK(p == original);
      return;
    }
    const View v{original};
    const core::Bytes out{p};
    const auto nat = v.v6 ? core::Bytes{std::as_bytes(std::span{kNat6.bytes()})}
                          : core::Bytes{std::as_bytes(std::span{kNat4Bytes})};
    FUZZ_CHECK(fuzz::same(v.src(out), nat));
    FUZZ_CHECK(fuzz::same(v.dst(out), v.dst(original)));
    const auto port = v.port(out, true);
    FUZZ_CHECK(port >= kPortFirst && port <= kPortLast);
    // Past the ports and checksum nothing changes.
    const std::size_t tail = v.l4 + (v.protocol == ipp::kTcp ? 18 : 8);
    FUZZ_CHECK(fuzz::same(out.subspan(tail), core::Bytes{original}.subspan(tail)));
    check_checksums(original, p, v);
    check_error(mux, original, p, v);
    check_reply(mux, original, p, v);
  }

  void inbound(Packet p) {
    const Packet original = p;
    const auto r = nat_.inbound(p, now_);
    if (!r) {
      FUZZ_CHECK(p == original);
      return;
    }
    FUZZ_CHECK(nat_.is_inbound(original));
    FUZZ_CHECK(*r < kClients);
  }

  void advance(int seconds) { now_ += std::chrono::seconds{seconds}; }
  void expire() { nat_.expire(now_); }
  void forget(std::uint16_t mux) {
    const auto had = nat_.size_of(mux);
    FUZZ_CHECK(nat_.forget(mux) == had);
    FUZZ_CHECK(nat_.size_of(mux) == 0);
  }
  const relay::SourceNat& nat() const { return nat_; }

  void check_bounds() const {
    FUZZ_CHECK(nat_.size() <= kMaxMappings);
    std::size_t sum = 0;
    for (std::uint16_t mux = 0; mux < kClients; ++mux) {
      FUZZ_CHECK(nat_.size_of(mux) <= kMaxPerClient);
      sum += nat_.size_of(mux);
    }
    FUZZ_CHECK(sum == nat_.size());
    const auto all = nat_.mappings();
    FUZZ_CHECK(all.size() == nat_.size());
    for (const auto& m : all) {
      FUZZ_CHECK(m.external_port >= kPortFirst && m.external_port <= kPortLast);
      FUZZ_CHECK(m.mux < kClients);
    }
  }

 private:
  // Checksums stay as valid (or as wrong) as they were; a UDP checksum of 0 stays 0.
  static void check_checksums(const Packet& before, const Packet& after, const View& v) {
    FUZZ_CHECK(header_residue(after, v) == header_residue(before, v));
    if (v.protocol == ipp::kUdp && v.udp_checksum(before) == 0) {
      FUZZ_CHECK(v.udp_checksum(after) == 0);
    } else {
      FUZZ_CHECK(transport_residue(after, v) == transport_residue(before, v));
    }
  }

  // An ICMP error about the packet as it left reaches the client, quoting its packet as sent.
  void check_error(std::uint16_t mux, const Packet& original, const Packet& sent, const View& v) {
    auto built = v.v6 ? core::build_icmpv6_packet_too_big(kRouter6, 1280, sent)
                      : core::build_icmpv4_fragmentation_needed(kRouter4, 1400, sent);
    FUZZ_CHECK(built.has_value());
    Packet err = std::move(*built);
    const auto r = nat_.inbound(err, now_);
    FUZZ_CHECK(r.has_value());
    FUZZ_CHECK(*r == mux);
    const core::Bytes e{err};
    const View outer{e};
    FUZZ_CHECK(fuzz::same(outer.dst(e), v.src(original)));
    FUZZ_CHECK(header_residue(e, outer) == 0);
    FUZZ_CHECK(transport_residue(e, outer) == 0);
    const auto quote = e.subspan(outer.l4 + 8);
    const View q{quote};
    FUZZ_CHECK(fuzz::same(q.src(quote), v.src(original)));
    FUZZ_CHECK(fuzz::same(q.dst(quote), v.dst(original)));
    FUZZ_CHECK(q.port(quote, true) == v.port(original, true));
    FUZZ_CHECK(header_residue(quote, q) == header_residue(original, v));
    // An IPv6 quote holds all of a short packet: its transport checksum is comparable.
    if (v.v6 && quote.size() == original.size()) {
      FUZZ_CHECK(fuzz::same(quote.first(40), core::Bytes{original}.first(40)));
      if (v.protocol != ipp::kUdp || v.udp_checksum(original) != 0) {
        FUZZ_CHECK(transport_residue(quote, q) == transport_residue(original, v));
      }
    }
  }

  // A reply from the remote (addresses and ports swapped, echo request turned into a reply)
  // reaches the client with the original source as its destination.
  void check_reply(std::uint16_t mux, const Packet& original, const Packet& sent, const View& v) {
    Packet reply = sent;
    const core::MutableBytes r{reply};
    const std::size_t a = v.v6 ? 8 : 12;
    const std::size_t len = v.v6 ? 16 : 4;
    std::swap_ranges(r.begin() + static_cast<std::ptrdiff_t>(a),
                     r.begin() + static_cast<std::ptrdiff_t>(a + len),
                     r.begin() + static_cast<std::ptrdiff_t>(a + len));
    if (v.icmp()) {
      const auto word = r.subspan(v.l4, 2);
      const auto old_word = core::load_be16(word);
      const std::uint8_t reply_type = v.v6 ? 129 : 0;
      const auto new_word = static_cast<std::uint16_t>(reply_type << 8 | (old_word & 0xff));
      const auto cs = r.subspan(v.l4 + 2, 2);
      core::store_be16(cs, core::checksum_update16(core::load_be16(cs), old_word, new_word));
      core::store_be16(word, new_word);
    } else {
      std::swap_ranges(r.begin() + static_cast<std::ptrdiff_t>(v.l4),
                       r.begin() + static_cast<std::ptrdiff_t>(v.l4 + 2),
                       r.begin() + static_cast<std::ptrdiff_t>(v.l4 + 2));
    }
    const Packet before = reply;
    const auto got = nat_.inbound(reply, now_);
    FUZZ_CHECK(got.has_value());
    FUZZ_CHECK(*got == mux);
    const core::Bytes in{reply};
    FUZZ_CHECK(fuzz::same(v.dst(in), v.src(original)));
    FUZZ_CHECK(fuzz::same(v.src(in), v.dst(original)));
    FUZZ_CHECK(v.port(in, false) == v.port(original, true));
    check_checksums(before, reply, v);
  }

  static constexpr std::array<std::uint8_t, 4> kNat4Bytes{203, 0, 113, 1};
  relay::SourceNat nat_;
  Clock::time_point now_ = Clock::time_point{} + std::chrono::seconds{1000};
};

// A packet between two addresses of one family: TCP, UDP, or an echo request (id src_port) or
// reply (id dst_port) when protocol is ICMP of either family.
template <typename Address>
Packet make_packet(std::uint8_t protocol, const Address& src, const Address& dst,
                   std::uint16_t src_port, std::uint16_t dst_port, std::uint8_t flags,
                   core::EchoKind kind, core::Bytes payload) {
  constexpr bool v6 = std::is_same_v<Address, core::Ipv6Address>;
  Packet l4;
  if (protocol == ipp::kTcp) {
    l4 = core::build_tcp(core::TcpHeader{.src_port = src_port,
                                         .dst_port = dst_port,
                                         .seq = 1,
                                         .ack = 2,
                                         .flags = flags,
                                         .window = 1000},
                         payload, src, dst)
             .value();
  } else if (protocol == ipp::kUdp) {
    l4 = core::build_udp(core::UdpHeader{src_port, dst_port}, payload, src, dst).value();
  } else {
    protocol = v6 ? ipp::kIcmpv6 : ipp::kIcmp;
    l4.resize(core::kIcmpHeaderLength + payload.size());
    core::ByteWriter w{l4};
    const core::IcmpEcho echo{.id = kind == core::EchoKind::request ? src_port : dst_port,
                              .sequence = 1,
                              .data = payload};
    if constexpr (v6) {
      (void)core::write_icmpv6_echo(w, kind, echo, src, dst);
    } else {
      (void)core::write_icmpv4_echo(w, kind, echo);
    }
  }
  if constexpr (v6) {
    return core::build_ipv6(core::Ipv6Header{.next_header = protocol, .src = src, .dst = dst}, l4)
        .value();
  } else {
    return core::build_ipv4(core::Ipv4Header{.protocol = protocol, .src = src, .dst = dst}, l4)
        .value();
  }
}

constexpr std::array<std::uint8_t, 3> kProtocols{ipp::kTcp, ipp::kUdp, ipp::kIcmp};

// A well-formed packet from a client, its fields taken from the script.
Packet structured(Script& s) {
  const std::uint8_t shape = s.byte();
  const auto src_port = static_cast<std::uint16_t>(s.byte() % 8);
  const auto dst_port = static_cast<std::uint16_t>(s.byte());
  const std::uint8_t flags = s.byte();
  const Packet payload = s.bytes(s.byte() % 24);
  const std::uint8_t who = s.byte();
  const auto protocol = kProtocols[(shape >> 1) % 3];
  const auto request = core::EchoKind::request;
  if ((shape & 1) != 0) {
    return make_packet(protocol, kInner6[who & 1], kRemote6[(who >> 1) % 4], src_port, dst_port,
                       flags, request, payload);
  }
  return make_packet(protocol, kInner4[who & 1], kRemote4[(who >> 1) % 4], src_port, dst_port,
                     flags, request, payload);
}

// A mapping to aim at: an existing one mostly, else a made-up one of either family.
struct Target {
  std::uint8_t protocol = ipp::kUdp;
  std::uint16_t port = kPortFirst;
  bool v6 = false;
};

Target pick_target(Script& s, const relay::SourceNat& nat) {
  const auto all = nat.mappings();
  const std::uint8_t pick = s.byte();
  if (!all.empty() && pick < 200) {
    const auto& m = all[pick % all.size()];
    return {m.protocol, m.external_port, !m.inner.is_v4_mapped()};
  }
  return {kProtocols[pick % 3], static_cast<std::uint16_t>(kPortFirst + pick % 8),
          (pick & 0x40) != 0};
}

// A packet from a remote host to the NAT address for a mapping.
Packet reply_to_mapping(Script& s, const relay::SourceNat& nat) {
  const Target t = pick_target(s, nat);
  const std::uint8_t who = s.byte();
  const Packet payload = s.bytes(s.byte() % 8);
  const auto reply = core::EchoKind::reply;
  if (t.v6)
    return make_packet(t.protocol, kRemote6[who % 3], kNat6, 80, t.port, who, reply, payload);
  return make_packet(t.protocol, kRemote4[who % 3], kNat4, 80, t.port, who, reply, payload);
}

// An ICMP error from a router to the NAT address about a packet of a mapping, of a type from
// the script, its quote cut to a length from the script and maybe one byte flipped.
Packet error_to_mapping(Script& s, const relay::SourceNat& nat) {
  const Target t = pick_target(s, nat);
  const std::uint8_t who = s.byte();
  const std::uint8_t type_pick = s.byte();
  const std::uint8_t cut = s.byte();
  const std::uint8_t flip = s.byte();
  const auto request = core::EchoKind::request;
  // The quoted source is the NAT address, or an inner address now and then.
  Packet quoted = t.v6 ? make_packet(t.protocol, (who & 0x80) != 0 ? kInner6[0] : kNat6,
                                     kRemote6[who % 3], t.port, 80, 0, request, {})
                       : make_packet(t.protocol, (who & 0x80) != 0 ? kInner4[0] : kNat4,
                                     kRemote4[who % 3], t.port, 80, 0, request, {});
  quoted.resize(std::min<std::size_t>(quoted.size(), cut));
  if ((flip & 1) != 0 && !quoted.empty()) {
    quoted[s.byte() % quoted.size()] ^= std::byte{static_cast<std::uint8_t>(flip | 1)};
  }
  constexpr std::array<std::uint8_t, 6> kTypes4{3, 11, 12, 4, 5, 8};
  constexpr std::array<std::uint8_t, 6> kTypes6{1, 2, 3, 4, 128, 135};
  Packet msg(core::kIcmpHeaderLength + quoted.size());
  msg[0] = std::byte{(t.v6 ? kTypes6 : kTypes4)[type_pick % 6]};
  msg[1] = std::byte{static_cast<std::uint8_t>(type_pick >> 4)};
  std::ranges::copy(quoted, msg.begin() + core::kIcmpHeaderLength);
  const core::MutableBytes cs = core::MutableBytes{msg}.subspan(2, 2);
  if (t.v6) {
    core::store_be16(cs, core::icmpv6_checksum(msg, kRouter6, kNat6));
    return core::build_ipv6(
               core::Ipv6Header{.next_header = ipp::kIcmpv6, .src = kRouter6, .dst = kNat6}, msg)
        .value();
  }
  core::store_be16(cs, core::icmpv4_checksum(msg));
  return core::build_ipv4(core::Ipv4Header{.protocol = ipp::kIcmp, .src = kRouter4, .dst = kNat4},
                          msg)
      .value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness h;
  Script s{data, size};
  for (int step = 0; step < 64 && s.n > 0; ++step) {
    switch (s.byte() % 9) {
      case 0: {  // raw bytes from a client
        const auto mux = static_cast<std::uint16_t>(s.byte() % kClients);
        h.outbound(mux, s.bytes(s.u16() % kMaxPacket));
        break;
      }
      case 1:  // raw bytes from the outside
        h.inbound(s.bytes(s.u16() % kMaxPacket));
        break;
      case 2:
      case 3: {  // a well-formed packet from a client, maybe with one byte flipped
        const auto mux = static_cast<std::uint16_t>(s.byte() % kClients);
        Packet p = structured(s);
        const std::uint8_t flip = s.byte();
        if ((flip & 1) != 0)
          p[s.u16() % p.size()] ^= std::byte{static_cast<std::uint8_t>(flip | 1)};
        h.outbound(mux, std::move(p));
        break;
      }
      case 4:  // an answer from the outside
        h.inbound(reply_to_mapping(s, h.nat()));
        break;
      case 5:  // time passes, by up to two minutes, sometimes backwards
        h.advance(static_cast<std::int8_t>(s.byte()));
        break;
      case 6:
        h.advance(s.byte());
        h.expire();
        break;
      case 7:
        h.forget(static_cast<std::uint16_t>(s.byte() % kClients));
        break;
      case 8:  // an ICMP error from the outside, maybe about a mapping
        h.inbound(error_to_mapping(s, h.nat()));
        break;
    }
    h.check_bounds();
  }
  return 0;
}
