// The source NAT of open tunnel mode: whole-packet validation, in-place rewriting with
// incremental checksum updates (RFC 1624), and the mapping tables (forward, reverse, per timeout
// class LRU lists).
#include "relay/nat.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <list>
#include <random>
#include <span>
#include <unordered_map>

#include "core/checksum.hpp"
#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "core/tcp.hpp"
#include "core/udp.hpp"

namespace relay {
namespace {

namespace ipp = core::ip_protocol;

// Field offsets in the IPv4 header (RFC 791 section 3.1) and the IPv6 header (RFC 8200 section 3).
constexpr std::size_t kIpv4ChecksumOffset = 10;
constexpr std::size_t kIpv4FragmentOffset = 6;
constexpr std::size_t kIpv4ProtocolOffset = 9;
constexpr std::size_t kIpv4SrcOffset = 12;
constexpr std::size_t kIpv4DstOffset = 16;
constexpr std::size_t kIpv6PayloadLengthOffset = 4;
constexpr std::size_t kIpv6NextHeaderOffset = 6;
constexpr std::size_t kIpv6SrcOffset = 8;
constexpr std::size_t kIpv6DstOffset = 24;
// ... and in the transport headers (RFC 9293 section 3.1, RFC 768, RFC 792 / RFC 4443).
constexpr std::size_t kDstPortOffset = 2;
constexpr std::size_t kTcpChecksumOffset = 16;
constexpr std::size_t kUdpChecksumOffset = 6;
constexpr std::size_t kIcmpChecksumOffset = 2;
constexpr std::size_t kIcmpIdOffset = 4;

// Random candidates tried before scanning: in a range with room to spare the first one is free
// almost always; the scan is for a nearly full range.
constexpr int kRandomProbes = 8;

bool is_icmp(std::uint8_t protocol) noexcept {
  return protocol == ipp::kIcmp || protocol == ipp::kIcmpv6;
}

// An address as it sits in a packet of its family: 4 bytes of a v4-mapped address, else 16.
core::Bytes wire(const core::Ipv6Address& a, bool v6) noexcept {
  const auto all = std::as_bytes(std::span{a.bytes()});
  return v6 ? all : all.last(4);
}

// The inverse of wire(): a 4-byte field becomes ::ffff:a.b.c.d.
core::Ipv6Address address_at(core::Bytes field) noexcept {
  core::Ipv6Address::Octets o{};
  std::size_t at = 0;
  if (field.size() == 4) {
    o[10] = 0xff;
    o[11] = 0xff;
    at = 12;
  }
  for (const std::byte b : field) o[at++] = std::to_integer<std::uint8_t>(b);
  return core::Ipv6Address{o};
}

core::Ipv6Address mapped(core::Ipv4Address a) noexcept {
  const auto b = a.bytes();
  return address_at(std::as_bytes(std::span{b}));
}

void put16(core::MutableBytes field, std::uint16_t v) noexcept {
  core::store_be16(field.first(2), v);
}

// A whole packet, validated: where its parts are and the fields the NAT looks at.
struct Packet {
  bool v6 = false;
  std::uint8_t protocol = 0;
  std::size_t l4 = 0;          // offset of the transport header
  core::Ipv6Address src, dst;  // IPv4 as ::ffff:a.b.c.d
  std::uint16_t src_port = 0;  // ICMP echo: the identifier, in both
  std::uint16_t dst_port = 0;
  std::uint8_t tcp_flags = 0;
  std::uint8_t icmp_type = 0;
};

// Validates the IP header (lengths equal to the packet's, no fragment, no IPv6 extension header)
// and the transport header of TCP, UDP, ICMP and ICMPv6.
Result<Packet> parse_packet(core::Bytes packet) noexcept {
  if (packet.empty()) return Errc::NotIp;
  Packet p;
  const auto version = std::to_integer<unsigned>(packet[0]) >> 4;
  if (version == 4) {
    const auto ip = core::parse_ipv4(packet);
    if (!ip || ip->total_length != packet.size()) return Errc::NotIp;
    if (ip->is_fragment()) return Errc::Unsupported;
    p.protocol = ip->header.protocol;
    p.l4 = ip->header_length;
    p.src = mapped(ip->header.src);
    p.dst = mapped(ip->header.dst);
    if (p.protocol == ipp::kIcmpv6) return Errc::Unsupported;
  } else if (version == 6) {
    // The fixed header is checked here so that a malformed one is NotIp, while anything about
    // extension headers is Unsupported without being walked.
    if (packet.size() < core::kIpv6HeaderLength ||
        core::kIpv6HeaderLength + core::load_be16(packet.subspan(kIpv6PayloadLengthOffset, 2)) !=
            packet.size()) {
      return Errc::NotIp;
    }
    p.v6 = true;
    p.protocol = std::to_integer<std::uint8_t>(packet[kIpv6NextHeaderOffset]);
    if (p.protocol != ipp::kTcp && p.protocol != ipp::kUdp && p.protocol != ipp::kIcmpv6) {
      return Errc::Unsupported;
    }
    p.l4 = core::kIpv6HeaderLength;
    p.src = address_at(packet.subspan(kIpv6SrcOffset, 16));
    p.dst = address_at(packet.subspan(kIpv6DstOffset, 16));
  } else {
    return Errc::NotIp;
  }

  const auto l4 = packet.subspan(p.l4);
  if (p.protocol == ipp::kTcp) {
    const auto t = core::parse_tcp(l4);
    if (!t) return Errc::NotIp;
    p.src_port = t->header.src_port;
    p.dst_port = t->header.dst_port;
    p.tcp_flags = t->header.flags;
  } else if (p.protocol == ipp::kUdp) {
    const auto u = core::parse_udp(l4);
    if (!u || u->length != l4.size()) return Errc::NotIp;
    p.src_port = u->header.src_port;
    p.dst_port = u->header.dst_port;
  } else if (is_icmp(p.protocol)) {
    // The common 8-byte header is all the NAT reads (type, checksum, echo id).
    const auto m = core::parse_icmpv4(l4);
    if (!m) return Errc::NotIp;
    p.icmp_type = m->type;
    p.src_port = m->echo_id();
    p.dst_port = m->echo_id();
  } else {
    return Errc::Unsupported;
  }
  return p;
}

// Rewrites one side (source or destination) of a validated packet: address, port or echo id,
// and every checksum that covers them. A UDP checksum of 0 is left alone: "none" on IPv4, and
// invalid on IPv6 where updating it could make it look valid.
void rewrite(core::MutableBytes packet, const Packet& p, bool source,
             const core::Ipv6Address& address, std::uint16_t port) noexcept {
  const std::size_t at = p.v6 ? (source ? kIpv6SrcOffset : kIpv6DstOffset)
                              : (source ? kIpv4SrcOffset : kIpv4DstOffset);
  const auto new_address = wire(address, p.v6);
  const auto field = packet.subspan(at, new_address.size());
  std::array<std::byte, 16> old_copy{};
  std::ranges::copy(field, old_copy.begin());
  const auto old_address = core::Bytes{old_copy}.first(field.size());

  // Addresses sit at even offsets of the IPv4 header and of the pseudo-headers, so the offset
  // passed to checksum_replace (whose parity is all that matters) is 0.
  if (!p.v6) {
    const auto cs = packet.subspan(kIpv4ChecksumOffset, 2);
    put16(cs, core::checksum_replace(core::load_be16(cs), 0, old_address, new_address));
  }

  const auto l4 = packet.subspan(p.l4);
  const std::uint16_t old_port = source ? p.src_port : p.dst_port;
  std::size_t port_at = source ? 0 : kDstPortOffset;
  std::size_t cs_at = kTcpChecksumOffset;
  if (p.protocol == ipp::kUdp) cs_at = kUdpChecksumOffset;
  if (is_icmp(p.protocol)) {
    port_at = kIcmpIdOffset;
    cs_at = kIcmpChecksumOffset;
  }
  const auto cs_field = l4.subspan(cs_at, 2);
  std::uint16_t cs = core::load_be16(cs_field);
  if (p.protocol != ipp::kUdp || cs != 0) {
    // ICMPv4 alone has no pseudo-header (RFC 792); ICMPv6 has one (RFC 4443 section 2.3).
    if (p.protocol != ipp::kIcmp) cs = core::checksum_replace(cs, 0, old_address, new_address);
    cs = core::checksum_update16(cs, old_port, port);
    // 0 and 0xffff are the same one's-complement value; UDP must send 0xffff (RFC 768).
    if (p.protocol == ipp::kUdp && cs == 0) cs = 0xffff;
    put16(cs_field, cs);
  }
  put16(l4.subspan(port_at, 2), port);
  std::ranges::copy(new_address, field.begin());
}

// Writes fields of a region covered by one checksum (an ICMP message), keeping that checksum
// up to date with each write.
class ChecksummedRegion {
 public:
  ChecksummedRegion(core::MutableBytes region, std::uint16_t checksum) noexcept
      : region_{region}, checksum_{checksum} {}

  void put(std::size_t offset, core::Bytes value) noexcept {
    const auto field = region_.subspan(offset, value.size());
    checksum_ = core::checksum_replace(checksum_, offset, field, value);
    std::ranges::copy(value, field.begin());
  }
  void put16(std::size_t offset, std::uint16_t v) noexcept {
    std::array<std::byte, 2> b{};
    core::store_be16(b, v);
    put(offset, b);
  }
  std::uint16_t load16(std::size_t offset) const noexcept {
    return core::load_be16(region_.subspan(offset, 2));
  }
  std::uint16_t checksum() const noexcept { return checksum_; }

 private:
  core::MutableBytes region_;
  std::uint16_t checksum_;
};

bool is_error(bool v6, std::uint8_t type) noexcept {
  namespace t4 = core::icmpv4_type;
  namespace t6 = core::icmpv6_type;
  if (v6) {
    return type == t6::kDestinationUnreachable || type == t6::kPacketTooBig ||
           type == t6::kTimeExceeded || type == t6::kParameterProblem;
  }
  return type == t4::kDestinationUnreachable || type == t4::kTimeExceeded ||
         type == t4::kParameterProblem;
}

// The packet an ICMP error quotes, as far as the quote holds it: offsets are from the start of
// the ICMP message.
struct Quote {
  std::uint8_t protocol = 0;
  std::size_t ip = core::kIcmpHeaderLength;  // the quoted IP header
  std::size_t l4 = 0;                        // the quoted transport header
  core::Ipv6Address src, dst;
  std::uint16_t port = 0;  // the quoted source port or echo id: the external port
};

// Reads the quote of an error in `message` (a validated ICMP message of the given family): an IP
// header of the same family without fragment offset or IPv6 extension header, then TCP, UDP or
// an echo request with at least its ports or id.
Result<Quote> parse_quote(core::Bytes message, bool v6) noexcept {
  Quote q;
  const auto quote = message.subspan(q.ip);
  if (quote.empty()) return Errc::Unsupported;
  const auto version = std::to_integer<unsigned>(quote[0]) >> 4;
  if (v6) {
    if (version != 6 || quote.size() < core::kIpv6HeaderLength) return Errc::Unsupported;
    q.protocol = std::to_integer<std::uint8_t>(quote[kIpv6NextHeaderOffset]);
    q.src = address_at(quote.subspan(kIpv6SrcOffset, 16));
    q.dst = address_at(quote.subspan(kIpv6DstOffset, 16));
    q.l4 = q.ip + core::kIpv6HeaderLength;
    if (q.protocol == ipp::kIcmp) return Errc::Unsupported;
  } else {
    // The quoted total length usually exceeds the quote (RFC 792 quotes 8 bytes of payload), so
    // parse_ipv4 does not fit; the fields needed are read directly.
    const std::size_t ihl = (std::to_integer<std::size_t>(quote[0]) & 0x0f) * 4;
    if (version != 4 || ihl < core::kIpv4MinHeaderLength || quote.size() < ihl) {
      return Errc::Unsupported;
    }
    // A non-first fragment quotes no ports; a first one (MF set) does, and is fine.
    if ((core::load_be16(quote.subspan(kIpv4FragmentOffset, 2)) & 0x1fff) != 0) {
      return Errc::Unsupported;
    }
    q.protocol = std::to_integer<std::uint8_t>(quote[kIpv4ProtocolOffset]);
    q.src = address_at(quote.subspan(kIpv4SrcOffset, 4));
    q.dst = address_at(quote.subspan(kIpv4DstOffset, 4));
    q.l4 = q.ip + ihl;
    if (q.protocol == ipp::kIcmpv6) return Errc::Unsupported;
  }
  const auto l4 = message.subspan(q.l4);
  if (q.protocol == ipp::kTcp || q.protocol == ipp::kUdp) {
    if (l4.size() < 4) return Errc::Unsupported;
    q.port = core::load_be16(l4.first(2));
  } else if (is_icmp(q.protocol)) {
    const std::uint8_t request =
        v6 ? core::icmpv6_type::kEchoRequest : core::icmpv4_type::kEchoRequest;
    if (l4.size() < kIcmpIdOffset + 2 || std::to_integer<std::uint8_t>(l4[0]) != request) {
      return Errc::Unsupported;
    }
    q.port = core::load_be16(l4.subspan(kIcmpIdOffset, 2));
  } else {
    return Errc::Unsupported;
  }
  return q;
}

}  // namespace

struct SourceNat::Impl {
  // Mappings sharing a timeout share a list, so that each list stays ordered by last use.
  enum Timer : std::uint8_t { kUdp, kIcmp, kTcpTransitory, kTcpEstablished, kTimerCount };

  struct Entry {
    NatMapping m;
    bool v6 = false;
    Timer timer = kUdp;
    bool syn_out = false;  // an outbound SYN since the mapping began or last saw FIN/RST
    Clock::time_point last_used;
    std::array<core::Ipv6Address, kMaxNatRemotes> remotes{};
    std::uint8_t remote_count = 0;
    std::uint8_t remote_next = 0;  // the slot to replace next: the oldest once full
  };
  using List = std::list<Entry>;
  using Iter = List::iterator;

  struct FlowKey {
    std::uint16_t mux;
    std::uint8_t protocol;
    bool v6;
    std::uint16_t port;
    core::Ipv6Address inner;
    bool operator==(const FlowKey&) const noexcept = default;
  };
  struct FlowKeyHash {
    std::size_t operator()(const FlowKey& k) const noexcept {
      const std::uint64_t small = (std::uint64_t{k.mux} << 32) | (std::uint64_t{k.protocol} << 24) |
                                  (std::uint64_t{k.v6} << 16) | k.port;
      return std::hash<core::Ipv6Address>{}(k.inner) ^ (small * 0x9E3779B97F4A7C15ull);
    }
  };

  Impl(NatConfig c, std::uint64_t seed) : config{std::move(c)}, rng{seed} {}

  static FlowKey key_of(const Entry& e) noexcept {
    return {e.m.mux, e.m.protocol, e.v6, e.m.inner_port, e.m.inner};
  }
  static std::uint32_t port_key(std::uint8_t protocol, bool v6, std::uint16_t port) noexcept {
    return (std::uint32_t{v6} << 24) | (std::uint32_t{protocol} << 16) | port;
  }
  // The port space of (protocol, family): TCP, UDP, echo; times two families.
  static std::size_t space(std::uint8_t protocol, bool v6) noexcept {
    const std::size_t p = protocol == ipp::kTcp ? 0 : protocol == ipp::kUdp ? 1 : 2;
    return p * 2 + (v6 ? 1 : 0);
  }

  std::optional<core::Ipv6Address> nat_address(bool v6) const noexcept {
    if (v6) return config.address6;
    if (config.address4) return mapped(*config.address4);
    return std::nullopt;
  }

  Clock::time_point advance(Clock::time_point now) noexcept {
    latest = std::max(latest, now);
    return latest;
  }

  std::chrono::seconds timeout(Timer t) const noexcept {
    switch (t) {
      case kUdp:
        return config.udp_timeout;
      case kIcmp:
        return config.icmp_timeout;
      case kTcpTransitory:
        return config.tcp_transitory_timeout;
      case kTcpEstablished:
      case kTimerCount:
        break;
    }
    return config.tcp_timeout;
  }

  bool expired(const Entry& e, Clock::time_point now) const noexcept {
    return now - e.last_used > timeout(e.timer);
  }

  // Marks a mapping used now, in timeout class t: to the back of that class's list.
  void touch(Iter it, Timer t, Clock::time_point now) noexcept {
    lists[t].splice(lists[t].end(), lists[it->timer], it);
    it->timer = t;
    it->last_used = now;
  }

  Iter erase(Iter it) noexcept {
    flows.erase(key_of(*it));
    ports.erase(port_key(it->m.protocol, it->v6, it->m.external_port));
    --ports_used[space(it->m.protocol, it->v6)];
    if (const auto c = per_client.find(it->m.mux); c != per_client.end() && --c->second == 0) {
      per_client.erase(c);
    }
    return lists[it->timer].erase(it);
  }

  std::optional<std::uint16_t> pick_port(std::uint8_t protocol, bool v6) {
    const std::uint32_t n = std::uint32_t{config.port_last} - config.port_first + 1;
    if (ports_used[space(protocol, v6)] >= n) return std::nullopt;
    const auto is_free = [&](std::uint32_t i) {
      const auto port = static_cast<std::uint16_t>(config.port_first + i);
      return !ports.contains(port_key(protocol, v6, port));
    };
    for (int k = 0; k < kRandomProbes; ++k) {
      const auto i = static_cast<std::uint32_t>(rng() % n);
      if (is_free(i)) return static_cast<std::uint16_t>(config.port_first + i);
    }
    const auto start = static_cast<std::uint32_t>(rng() % n);
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint32_t i = (start + k) % n;
      if (is_free(i)) return static_cast<std::uint16_t>(config.port_first + i);
    }
    return std::nullopt;  // not reached: ports_used said a port was free
  }

  Result<Iter> create(const FlowKey& key, Clock::time_point now) {
    if (flows.size() >= config.max_mappings) return Errc::TableFull;
    const auto c = per_client.find(key.mux);
    if ((c == per_client.end() ? 0 : c->second) >= config.max_mappings_per_client) {
      return Errc::TableFull;
    }
    const auto port = pick_port(key.protocol, key.v6);
    if (!port) return Errc::PortsExhausted;

    const Timer t = key.protocol == ipp::kTcp   ? kTcpTransitory
                    : key.protocol == ipp::kUdp ? kUdp
                                                : kIcmp;
    auto& list = lists[t];
    list.push_back(Entry{.m = {.mux = key.mux,
                               .protocol = key.protocol,
                               .inner = key.inner,
                               .inner_port = key.port,
                               .external_port = *port},
                         .v6 = key.v6,
                         .timer = t,
                         .last_used = now});
    const Iter it = std::prev(list.end());
    flows.emplace(key, it);
    ports.emplace(port_key(key.protocol, key.v6, *port), it);
    ++per_client[key.mux];
    ++ports_used[space(key.protocol, key.v6)];
    ++stats.created;
    return it;
  }

  // The live mapping of an external port; a mapping past its timeout is dropped here.
  std::optional<Iter> find_external(std::uint8_t protocol, bool v6, std::uint16_t port,
                                    Clock::time_point now) noexcept {
    const auto f = ports.find(port_key(protocol, v6, port));
    if (f == ports.end()) return std::nullopt;
    if (expired(*f->second, now)) {
      erase(f->second);
      return std::nullopt;
    }
    return f->second;
  }

  static bool has_remote(const Entry& e, const core::Ipv6Address& a) noexcept {
    return std::find(e.remotes.begin(), e.remotes.begin() + e.remote_count, a) !=
           e.remotes.begin() + e.remote_count;
  }
  static void add_remote(Entry& e, const core::Ipv6Address& a) noexcept {
    if (has_remote(e, a)) return;
    e.remotes[e.remote_next] = a;
    e.remote_next = static_cast<std::uint8_t>((e.remote_next + 1) % kMaxNatRemotes);
    if (e.remote_count < kMaxNatRemotes) ++e.remote_count;
  }

  // The TCP timeout state machine: see the header.
  void tcp_seen(Iter it, std::uint8_t flags, bool outbound, Clock::time_point now) noexcept {
    Timer t = it->timer;
    if ((flags & (core::tcp_flag::kFin | core::tcp_flag::kRst)) != 0) {
      it->syn_out = false;
      t = kTcpTransitory;
    } else if (outbound && (flags & core::tcp_flag::kSyn) != 0) {
      it->syn_out = true;
    } else if (!outbound && (flags & core::tcp_flag::kAck) != 0 && it->syn_out) {
      t = kTcpEstablished;
    }
    touch(it, t, now);
  }

  Result<std::uint16_t> translate_error(core::MutableBytes packet, const Packet& p,
                                        const core::Ipv6Address& nat, Clock::time_point now);
  // SourceNat::outbound and inbound without the counting.
  Result<void> outbound(std::uint16_t mux, core::MutableBytes packet, Clock::time_point now);
  Result<std::uint16_t> inbound(core::MutableBytes packet, Clock::time_point now);

  NatConfig config;
  std::mt19937_64 rng;
  Clock::time_point latest{};
  std::array<List, kTimerCount> lists;
  std::unordered_map<FlowKey, Iter, FlowKeyHash> flows;
  std::unordered_map<std::uint32_t, Iter> ports;
  std::unordered_map<std::uint16_t, std::size_t> per_client;
  std::array<std::size_t, 6> ports_used{};
  NatStats stats;
};

// An inbound ICMP error about a packet the NAT translated: the quote is that packet as it left
// (source = NAT address and external port), and gets its inner source back. Every write inside
// the ICMP message goes through a ChecksummedRegion, so the ICMP checksum follows them all.
Result<std::uint16_t> SourceNat::Impl::translate_error(core::MutableBytes packet, const Packet& p,
                                                       const core::Ipv6Address& nat,
                                                       Clock::time_point now) {
  const auto message = packet.subspan(p.l4);
  const auto q = parse_quote(message, p.v6);
  if (!q) return q.error();
  if (q->src != nat) return Errc::UnknownMapping;
  // An error neither refreshes nor deletes the mapping it is about (RFC 5508): anyone on the
  // path can send one. A mapping past its timeout is dropped as on any lookup.
  const auto found = find_external(q->protocol, p.v6, q->port, now);
  if (!found || !has_remote(**found, q->dst)) return Errc::UnknownMapping;
  Entry& e = **found;

  const auto inner = wire(e.m.inner, p.v6);
  const auto nat_wire = wire(nat, p.v6);
  std::uint16_t icmp_cs = core::load_be16(message.subspan(kIcmpChecksumOffset, 2));
  // ICMPv6 sums the outer pseudo-header, whose destination changes below.
  if (p.v6) icmp_cs = core::checksum_replace(icmp_cs, 0, nat_wire, inner);
  ChecksummedRegion m{message, icmp_cs};

  if (!p.v6) {
    const std::size_t cs_at = q->ip + kIpv4ChecksumOffset;
    m.put16(cs_at, core::checksum_replace(m.load16(cs_at), 0, nat_wire, inner));
  }
  m.put(q->ip + (p.v6 ? kIpv6SrcOffset : kIpv4SrcOffset), inner);

  // The quoted transport checksum, when the quote reaches it: pseudo-header source (not for
  // ICMPv4) and the port or id.
  std::size_t port_at = q->l4;
  std::size_t cs_at = q->l4 + kTcpChecksumOffset;
  if (q->protocol == ipp::kUdp) cs_at = q->l4 + kUdpChecksumOffset;
  if (is_icmp(q->protocol)) {
    port_at = q->l4 + kIcmpIdOffset;
    cs_at = q->l4 + kIcmpChecksumOffset;
  }
  if (cs_at + 2 <= message.size()) {
    std::uint16_t cs = m.load16(cs_at);
    if (q->protocol != ipp::kUdp || cs != 0) {
      if (q->protocol != ipp::kIcmp) cs = core::checksum_replace(cs, 0, nat_wire, inner);
      cs = core::checksum_update16(cs, e.m.external_port, e.m.inner_port);
      if (q->protocol == ipp::kUdp && cs == 0) cs = 0xffff;
      m.put16(cs_at, cs);
    }
  }
  m.put16(port_at, e.m.inner_port);
  put16(message.subspan(kIcmpChecksumOffset, 2), m.checksum());

  // The outer destination; only IPv4 has a header checksum.
  const auto dst = packet.subspan(p.v6 ? kIpv6DstOffset : kIpv4DstOffset, inner.size());
  if (!p.v6) {
    const auto cs = packet.subspan(kIpv4ChecksumOffset, 2);
    put16(cs, core::checksum_replace(core::load_be16(cs), 0, dst, inner));
  }
  std::ranges::copy(inner, dst.begin());
  ++e.m.packets_in;
  return e.m.mux;
}

SourceNat::SourceNat(NatConfig config, std::uint64_t random_seed)
    : impl_{std::make_unique<Impl>(std::move(config), random_seed)} {
  assert(impl_->config.port_first <= impl_->config.port_last);
  assert(impl_->config.max_mappings >= 1);
}
SourceNat::SourceNat(SourceNat&&) noexcept = default;
SourceNat& SourceNat::operator=(SourceNat&&) noexcept = default;
SourceNat::~SourceNat() = default;

const NatConfig& SourceNat::config() const noexcept {
  return impl_->config;
}

Result<void> SourceNat::Impl::outbound(std::uint16_t mux, core::MutableBytes packet,
                                       Clock::time_point now) {
  auto& d = *this;
  const auto p = parse_packet(packet);
  if (!p) return p.error();
  if (is_icmp(p->protocol) &&
      p->icmp_type != (p->v6 ? core::icmpv6_type::kEchoRequest : core::icmpv4_type::kEchoRequest)) {
    return Errc::Unsupported;
  }
  const auto nat = d.nat_address(p->v6);
  if (!nat || p->dst == *nat) return Errc::NotAllowed;
  now = d.advance(now);

  const Impl::FlowKey key{mux, p->protocol, p->v6, p->src_port, p->src};
  Impl::Iter it;
  if (const auto f = d.flows.find(key); f != d.flows.end() && !d.expired(*f->second, now)) {
    it = f->second;
  } else {
    if (f != d.flows.end()) d.erase(f->second);
    const auto created = d.create(key, now);
    if (!created) return created.error();
    it = *created;
  }
  Impl::add_remote(*it, p->dst);
  if (p->protocol == ipp::kTcp) {
    d.tcp_seen(it, p->tcp_flags, true, now);
  } else {
    d.touch(it, it->timer, now);
  }
  rewrite(packet, *p, true, *nat, it->m.external_port);
  ++it->m.packets_out;
  return {};
}

bool SourceNat::is_inbound(core::Bytes packet) const noexcept {
  if (packet.empty()) return false;
  const auto version = std::to_integer<unsigned>(packet[0]) >> 4;
  if (version == 4 && impl_->config.address4 && packet.size() >= core::kIpv4MinHeaderLength) {
    return address_at(packet.subspan(kIpv4DstOffset, 4)) == mapped(*impl_->config.address4);
  }
  if (version == 6 && impl_->config.address6 && packet.size() >= core::kIpv6HeaderLength) {
    return address_at(packet.subspan(kIpv6DstOffset, 16)) == *impl_->config.address6;
  }
  return false;
}

Result<std::uint16_t> SourceNat::Impl::inbound(core::MutableBytes packet, Clock::time_point now) {
  auto& d = *this;
  const auto p = parse_packet(packet);
  if (!p) return p.error();
  const auto nat = d.nat_address(p->v6);
  if (!nat || p->dst != *nat) return Errc::UnknownMapping;
  now = d.advance(now);

  if (is_icmp(p->protocol)) {
    if (is_error(p->v6, p->icmp_type)) return d.translate_error(packet, *p, *nat, now);
    if (p->icmp_type != (p->v6 ? core::icmpv6_type::kEchoReply : core::icmpv4_type::kEchoReply)) {
      return Errc::Unsupported;
    }
  }
  const auto found = d.find_external(p->protocol, p->v6, p->dst_port, now);
  if (!found || !Impl::has_remote(**found, p->src)) return Errc::UnknownMapping;
  const Impl::Iter it = *found;
  if (p->protocol == ipp::kTcp) {
    d.tcp_seen(it, p->tcp_flags, false, now);
  } else {
    d.touch(it, it->timer, now);
  }
  rewrite(packet, *p, false, it->m.inner, it->m.inner_port);
  ++it->m.packets_in;
  return it->m.mux;
}

Result<void> SourceNat::outbound(std::uint16_t mux, core::MutableBytes packet,
                                 Clock::time_point now) {
  auto r = impl_->outbound(mux, packet, now);
  if (r)
    ++impl_->stats.outbound;
  else
    ++impl_->stats.refused_outbound[to_string(static_cast<Errc>(r.error().value()))];
  return r;
}

Result<std::uint16_t> SourceNat::inbound(core::MutableBytes packet, Clock::time_point now) {
  auto r = impl_->inbound(packet, now);
  if (r)
    ++impl_->stats.inbound;
  else
    ++impl_->stats.refused_inbound[to_string(static_cast<Errc>(r.error().value()))];
  return r;
}

std::size_t SourceNat::expire(Clock::time_point now) {
  auto& d = *impl_;
  now = d.advance(now);
  std::size_t n = 0;
  for (auto& list : d.lists) {
    while (!list.empty() && d.expired(list.front(), now)) {
      d.erase(list.begin());
      ++n;
    }
  }
  d.stats.expired += n;
  return n;
}

std::size_t SourceNat::forget(std::uint16_t mux) {
  auto& d = *impl_;
  const auto c = d.per_client.find(mux);
  if (c == d.per_client.end()) return 0;
  const std::size_t count = c->second;  // c dies with the client's last mapping
  std::size_t n = 0;
  for (auto& list : d.lists) {
    for (auto it = list.begin(); it != list.end() && n < count;) {
      if (it->m.mux == mux) {
        it = d.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
  }
  return n;
}

std::size_t SourceNat::size() const noexcept {
  return impl_->flows.size();
}

std::size_t SourceNat::size_of(std::uint16_t mux) const noexcept {
  const auto c = impl_->per_client.find(mux);
  return c == impl_->per_client.end() ? 0 : c->second;
}

const NatStats& SourceNat::stats() const noexcept {
  return impl_->stats;
}

std::vector<NatMapping> SourceNat::mappings() const {
  std::vector<NatMapping> out;
  out.reserve(size());
  for (const auto& list : impl_->lists) {
    for (const auto& e : list) out.push_back(e.m);
  }
  return out;
}

}  // namespace relay
