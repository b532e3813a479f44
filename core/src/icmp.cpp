// ICMPv4/ICMPv6 parsing, checksums, echo and error messages (RFC 792, RFC 1191, RFC 4443).
//
//   Echo request/reply (RFC 792; RFC 4443 §4.1-4.2):
//   +--------+--------+-----------------+
//   |  Type  |  Code  |    Checksum     |
//   +--------+--------+-----------------+
//   |   Identifier    | Sequence Number |
//   +-----------------+-----------------+
//   |  Data ...
//
//   ICMPv4 Fragmentation Needed (RFC 1191 §4):   ICMPv6 Packet Too Big (RFC 4443 §3.2):
//   +--------+--------+-----------------+       +--------+--------+-----------------+
//   |   3    |   4    |    Checksum     |       |   2    |   0    |    Checksum     |
//   +--------+--------+-----------------+       +--------+--------+-----------------+
//   |  unused = 0     |  Next-Hop MTU   |       |                MTU                |
//   +-----------------+-----------------+       +-----------------------------------+
//   | IP header + first 8 payload bytes |       | as much of the packet as fits 1280|
#include "core/icmp.hpp"

#include <algorithm>

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"

namespace core {
namespace {

constexpr std::size_t kChecksumOffset = 2;
constexpr std::size_t kIcmpv6MaxQuote =
    kIcmpv6MaxErrorPacket - kIpv6HeaderLength - kIcmpHeaderLength;
constexpr std::uint8_t kErrorTtl = 64;

template <typename Message>
Result<Message> parse(Bytes data) noexcept {
  ByteReader in{data};
  Message m;
  m.type = in.u8();
  m.code = in.u8();
  m.checksum = in.u16();
  m.rest_of_header = in.u32();
  if (!in.ok()) return Errc::Truncated;
  m.message = data;
  m.body = in.rest();
  return m;
}

// Writes type, code, a checksum placeholder, rest of header and the body pieces; returns the
// checksum field to patch and the start of the message in the writer.
struct Written {
  MutableBytes checksum;
  std::size_t start = 0;
};
Result<Written> write_message(ByteWriter& out, std::uint8_t type, std::uint8_t code,
                              std::uint32_t rest_of_header, Bytes body) noexcept {
  if (body.size() > 0xffff - kIcmpHeaderLength) return Errc::BadLength;
  Written w{.checksum = {}, .start = out.size()};
  out.u8(type).u8(code);
  w.checksum = out.reserve(2);
  out.u32(rest_of_header).bytes(body);
  if (!out.ok()) return Errc::NoSpace;
  return w;
}

Result<void> finish_v4(ByteWriter& out, const Written& w) noexcept {
  store_be16(w.checksum, icmpv4_checksum(out.written().subspan(w.start)));
  return {};
}

Result<void> finish_v6(ByteWriter& out, const Written& w, const Ipv6Address& src,
                       const Ipv6Address& dst) noexcept {
  store_be16(w.checksum, icmpv6_checksum(out.written().subspan(w.start), src, dst));
  return {};
}

std::uint32_t echo_word(const IcmpEcho& e) noexcept {
  return (std::uint32_t{e.id} << 16) | e.sequence;
}

// The offending IPv6 packet's fixed header and its exact extent, without walking the chain:
// errors are also sent about packets whose chain we do not follow (fragments, for one).
struct Ipv6Fixed {
  Ipv6Address src;
  Ipv6Address dst;
  Bytes packet;
};
Result<Ipv6Fixed> read_ipv6_fixed(Bytes data) noexcept {
  ByteReader in{data};
  const std::uint32_t vtf = in.u32();
  const std::uint16_t payload_length = in.u16();
  in.skip(2);
  Ipv6Fixed f{.src = Ipv6Address{in.array<16>()}, .dst = Ipv6Address{in.array<16>()}, .packet = {}};
  if (!in.ok()) return Errc::Truncated;
  if ((vtf >> 28) != 6) return Errc::BadVersion;
  if (payload_length > in.remaining()) return Errc::BadLength;
  f.packet = data.first(kIpv6HeaderLength + payload_length);
  return f;
}

bool is_unicast_host_v4(Ipv4Address a) noexcept {
  const std::uint32_t v = a.to_uint();
  return !a.is_unspecified() && !a.is_loopback() && !a.is_multicast() && !a.is_broadcast() &&
         (v >> 28) != 0xf;  // 240/4, reserved (RFC 1112 §4)
}

}  // namespace

Result<Icmpv4Message> parse_icmpv4(Bytes data) noexcept {
  return parse<Icmpv4Message>(data);
}
Result<Icmpv6Message> parse_icmpv6(Bytes data) noexcept {
  return parse<Icmpv6Message>(data);
}

bool icmpv4_checksum_ok(const Icmpv4Message& m) noexcept {
  return internet_checksum(m.message) == 0;
}

bool icmpv6_checksum_ok(const Icmpv6Message& m, const Ipv6Address& src,
                        const Ipv6Address& dst) noexcept {
  return ipv6_pseudo_header(src, dst, ip_protocol::kIcmpv6,
                            static_cast<std::uint32_t>(m.message.size()))
             .add(m.message)
             .finish() == 0;
}

std::uint16_t icmpv4_checksum(Bytes message) noexcept {
  return Checksum{}.add_except(message, kChecksumOffset).finish();
}

std::uint16_t icmpv6_checksum(Bytes message, const Ipv6Address& src,
                              const Ipv6Address& dst) noexcept {
  return ipv6_pseudo_header(src, dst, ip_protocol::kIcmpv6,
                            static_cast<std::uint32_t>(message.size()))
      .add_except(message, kChecksumOffset)
      .finish();
}

bool icmpv4_is_error(std::uint8_t type) noexcept {
  // Queries and replies of RFC 792 and RFC 1256 (router advertisement 9, solicitation 10);
  // timestamp 13/14, information 15/16, address mask 17/18.
  switch (type) {
    case icmpv4_type::kEchoReply:
    case icmpv4_type::kEchoRequest:
    case 9:
    case 10:
    case 13:
    case 14:
    case 15:
    case 16:
    case 17:
    case 18:
      return false;
    default:
      return true;
  }
}

Result<void> write_icmpv4_echo(ByteWriter& out, EchoKind kind, const IcmpEcho& e) noexcept {
  const std::uint8_t type =
      kind == EchoKind::request ? icmpv4_type::kEchoRequest : icmpv4_type::kEchoReply;
  auto w = write_message(out, type, 0, echo_word(e), e.data);
  if (!w) return w.error();
  return finish_v4(out, *w);
}

Result<void> write_icmpv6_echo(ByteWriter& out, EchoKind kind, const IcmpEcho& e,
                               const Ipv6Address& src, const Ipv6Address& dst) noexcept {
  const std::uint8_t type =
      kind == EchoKind::request ? icmpv6_type::kEchoRequest : icmpv6_type::kEchoReply;
  auto w = write_message(out, type, 0, echo_word(e), e.data);
  if (!w) return w.error();
  return finish_v6(out, *w, src, dst);
}

Result<void> write_icmpv4_error(ByteWriter& out, std::uint8_t type, std::uint8_t code,
                                std::uint32_t rest_of_header, Bytes offending) noexcept {
  auto p = parse_ipv4(offending);
  if (!p) return p.error();
  const Bytes quote =
      p->packet.first(std::min(p->packet.size(), p->header_length + kIcmpv4QuotedPayload));
  auto w = write_message(out, type, code, rest_of_header, quote);
  if (!w) return w.error();
  return finish_v4(out, *w);
}

Result<void> write_icmpv4_destination_unreachable(ByteWriter& out, std::uint8_t code,
                                                  Bytes offending,
                                                  std::uint16_t next_hop_mtu) noexcept {
  return write_icmpv4_error(out, icmpv4_type::kDestinationUnreachable, code, next_hop_mtu,
                            offending);
}

Result<void> write_icmpv6_error(ByteWriter& out, std::uint8_t type, std::uint8_t code,
                                std::uint32_t rest_of_header, Bytes offending,
                                const Ipv6Address& src, const Ipv6Address& dst) noexcept {
  const Bytes quote = offending.first(std::min(offending.size(), kIcmpv6MaxQuote));
  auto w = write_message(out, type, code, rest_of_header, quote);
  if (!w) return w.error();
  return finish_v6(out, *w, src, dst);
}

Result<void> write_icmpv6_packet_too_big(ByteWriter& out, std::uint32_t mtu, Bytes offending,
                                         const Ipv6Address& src, const Ipv6Address& dst) noexcept {
  return write_icmpv6_error(out, icmpv6_type::kPacketTooBig, 0, mtu, offending, src, dst);
}

Result<std::vector<std::byte>> build_icmpv4_error(Ipv4Address from, std::uint8_t type,
                                                  std::uint8_t code, std::uint32_t rest_of_header,
                                                  Bytes offending) {
  auto p = parse_ipv4(offending);
  if (!p) return p.error();
  const std::size_t quoted = std::min(p->packet.size(), p->header_length + kIcmpv4QuotedPayload);
  const std::size_t icmp_length = kIcmpHeaderLength + quoted;
  std::vector<std::byte> buf(kIpv4MinHeaderLength + icmp_length);
  ByteWriter out{buf};
  const Ipv4Header ip{.ttl = kErrorTtl,
                      .protocol = ip_protocol::kIcmp,
                      .src = from,
                      .dst = p->header.src,
                      .options = {}};
  if (auto r = write_ipv4_header(out, ip, icmp_length); !r) return r.error();
  if (auto r = write_icmpv4_error(out, type, code, rest_of_header, p->packet); !r) {
    return r.error();
  }
  return buf;
}

Result<std::vector<std::byte>> build_icmpv4_fragmentation_needed(Ipv4Address from,
                                                                 std::uint16_t next_hop_mtu,
                                                                 Bytes offending) {
  return build_icmpv4_error(from, icmpv4_type::kDestinationUnreachable,
                            icmpv4_unreachable::kFragmentationNeeded, next_hop_mtu, offending);
}

Result<std::vector<std::byte>> build_icmpv6_error(const Ipv6Address& from, std::uint8_t type,
                                                  std::uint8_t code, std::uint32_t rest_of_header,
                                                  Bytes offending) {
  auto f = read_ipv6_fixed(offending);
  if (!f) return f.error();
  const std::size_t quoted = std::min(f->packet.size(), kIcmpv6MaxQuote);
  const std::size_t icmp_length = kIcmpHeaderLength + quoted;
  std::vector<std::byte> buf(kIpv6HeaderLength + icmp_length);
  ByteWriter out{buf};
  const Ipv6Header ip{
      .next_header = ip_protocol::kIcmpv6, .hop_limit = kErrorTtl, .src = from, .dst = f->src};
  if (auto r = write_ipv6_header(out, ip, icmp_length); !r) return r.error();
  if (auto r = write_icmpv6_error(out, type, code, rest_of_header, f->packet, from, f->src); !r) {
    return r.error();
  }
  return buf;
}

Result<std::vector<std::byte>> build_icmpv6_packet_too_big(const Ipv6Address& from,
                                                           std::uint32_t mtu, Bytes offending) {
  return build_icmpv6_error(from, icmpv6_type::kPacketTooBig, 0, mtu, offending);
}

bool icmpv4_error_allowed(Bytes offending) noexcept {
  auto p = parse_ipv4(offending);
  if (!p) return false;
  if (!p->is_first_fragment_or_whole()) return false;
  if (!is_unicast_host_v4(p->header.src)) return false;
  if (p->header.dst.is_broadcast() || p->header.dst.is_multicast()) return false;
  if (p->header.protocol == ip_protocol::kIcmp) {
    // An ICMP message too short to carry its type cannot be told apart from an error.
    if (p->payload.empty()) return false;
    if (icmpv4_is_error(std::to_integer<std::uint8_t>(p->payload[0]))) return false;
  }
  return true;
}

bool icmpv6_error_allowed(Bytes offending, std::uint8_t type, std::uint8_t code) noexcept {
  auto f = read_ipv6_fixed(offending);
  if (!f) return false;
  if (f->src.is_unspecified() || f->src.is_multicast()) return false;
  if (f->dst.is_multicast()) {
    const bool exempt =
        type == icmpv6_type::kPacketTooBig || (type == icmpv6_type::kParameterProblem && code == 2);
    if (!exempt) return false;
  }
  // The chain may not be walkable (a non-first fragment): then it is not a whole ICMPv6 error.
  if (auto p = parse_ipv6(f->packet); p && p->upper_protocol == ip_protocol::kIcmpv6) {
    const Bytes upper = p->upper_layer();
    if (upper.empty() || icmpv6_is_error(std::to_integer<std::uint8_t>(upper[0]))) return false;
  }
  return true;
}

}  // namespace core
