// The 4over6 codec: RFC 2473 encapsulation, RFC 6040 ECN, RFC 791/1191 MTU handling.
#include "tep/fourover6.hpp"

#include "errors.hpp"

#include <algorithm>
#include <array>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include "core/checksum.hpp"
#include "core/hash.hpp"
#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"

namespace tep {
namespace {

namespace ipp = core::ip_protocol;

constexpr std::uint8_t kNotEct = 0;
constexpr std::uint8_t kEct1 = 1;
constexpr std::uint8_t kEct0 = 2;
constexpr std::uint8_t kCe = 3;
constexpr std::uint8_t kIcmpErrorTtl = 64;

// Offsets in the IPv4 header (RFC 791 §3.1):
//    0                   1                   2                   3
//   |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//   |         Identification        |Flags|      Fragment Offset    |
//   |  Time to Live |    Protocol   |         Header Checksum       |
constexpr std::size_t kIpv4ChecksumOffset = 10;

class TepCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tep"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::InnerTruncated:
        return "inner IPv4 packet truncated";
      case Errc::InnerBadVersion:
        return "inner packet is not IPv4";
      case Errc::InnerBadHeader:
        return "invalid inner IPv4 header";
      case Errc::InnerBadTotalLength:
        return "inner IPv4 total length disagrees with the data";
      case Errc::NoHeadroom:
        return "less than 40 bytes of headroom";
      case Errc::BadHopLimit:
        return "hop limit 0";
      case Errc::BadMtu:
        return "tunnel MTU below 1280";
      case Errc::DontFragment:
        return "packet too big with DF set";
      case Errc::BadFragmentIndex:
        return "fragment index out of range";
      case Errc::NoSpace:
        return "output buffer too small";
      case Errc::BadOffload:
        return "virtio header does not fit the packet";
      case Errc::OffloadNotTcp:
        return "GSO packet is not a whole TCPv4 segment";
      case Errc::OffloadBadTcpHeader:
        return "GSO packet has a malformed TCP header";
      case Errc::OffloadNoPayload:
        return "GSO packet without payload";
    }
    return "unknown tep error";
  }
};

class DropCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tep.drop"; }
  std::string message(int ev) const override {
    if (ev < 0 || static_cast<std::size_t>(ev) >= kDropReasonCount) return "unknown drop reason";
    return std::string{drop_reason_name(static_cast<DropReason>(ev))};
  }
};

DropReason inner_drop(const boost::system::error_code& ec) noexcept {
  switch (inner_error_of(ec)) {
    case Errc::InnerTruncated:
      return DropReason::InnerTruncated;
    case Errc::InnerBadVersion:
      return DropReason::InnerBadVersion;
    case Errc::InnerBadTotalLength:
      return DropReason::InnerBadTotalLength;
    default:
      return DropReason::InnerBadHeader;
  }
}

Result<core::Ipv4Packet> parse_inner(core::Bytes inner) noexcept {
  auto p = core::parse_ipv4(inner);
  if (!p) return make_error_code(inner_error_of(p.error()));
  return *p;
}

bool is_extension_header(std::uint8_t nh) noexcept {
  return nh == ipp::kHopByHop || nh == ipp::kRouting || nh == ipp::kFragment ||
         nh == ipp::kDestinationOptions || nh == ipp::kAh;
}

// Protocols whose first 4 bytes are source and destination port.
bool has_ports(std::uint8_t protocol) noexcept {
  return protocol == ipp::kTcp || protocol == ipp::kUdp || protocol == 33 /* DCCP */ ||
         protocol == 132 /* SCTP */ || protocol == 136 /* UDP-Lite */;
}

using core::mix32;

// The options a non-first fragment carries: those with the copied flag (RFC 791 §3.1, option
// type bit 0x80), padded with End of Option List to a multiple of 4. Returns the length used in
// buf, or an error for options whose lengths run past the header.
Result<std::size_t> copied_options(core::Bytes options, std::span<std::byte, 40> buf) noexcept {
  core::ByteReader in{options};
  core::ByteWriter out{buf};
  while (in.remaining() > 0) {
    const std::uint8_t type = in.u8();
    if (type == 0) break;     // End of Option List
    if (type == 1) continue;  // No Operation: single byte, not copied
    const std::uint8_t length = in.u8();
    if (length < 2) return make_error_code(Errc::InnerBadHeader);
    const core::Bytes body = in.bytes(length - 2u);
    if (!in.ok()) return make_error_code(Errc::InnerBadHeader);
    if ((type & 0x80) != 0) out.u8(type).u8(length).bytes(body);
  }
  // The copied options are a subset of at most 40 bytes: they always fit.
  out.zeros((4 - out.size() % 4) % 4);
  return out.size();
}

struct FragmentPlan {
  core::Ipv4Packet packet;
  std::size_t count = 1;
  std::size_t first_data = 0;  // payload bytes in the first fragment
  std::size_t other_data = 0;  // payload bytes in each later one (the last may carry fewer)
  std::array<std::byte, 40> options{};
  std::size_t options_length = 0;
};

Result<FragmentPlan> plan(core::Bytes inner, std::size_t tunnel_mtu) noexcept {
  auto m = inner_mtu(tunnel_mtu);
  if (!m) return m.error();
  auto p = parse_inner(inner);
  if (!p) return p.error();
  FragmentPlan f{.packet = *p};
  if (p->total_length <= *m) return f;
  if (p->header.dont_fragment) return make_error_code(Errc::DontFragment);
  auto copied = copied_options(p->header.options, f.options);
  if (!copied) return copied.error();
  f.options_length = *copied;
  f.first_data = (*m - p->header_length) / 8 * 8;
  f.other_data = (*m - core::kIpv4MinHeaderLength - f.options_length) / 8 * 8;
  const std::size_t rest = p->payload.size() - f.first_data;
  f.count = 1 + (rest + f.other_data - 1) / f.other_data;
  return f;
}

}  // namespace

Errc inner_error_of(const boost::system::error_code& ec) noexcept {
  switch (static_cast<core::Errc>(ec.value())) {
    case core::Errc::Truncated:
      return Errc::InnerTruncated;
    case core::Errc::BadVersion:
      return Errc::InnerBadVersion;
    case core::Errc::BadLength:
      return Errc::InnerBadTotalLength;
    default:
      return Errc::InnerBadHeader;
  }
}

const boost::system::error_category& tep_category() noexcept {
  static const TepCategory category;
  return category;
}

const boost::system::error_category& drop_category() noexcept {
  static const DropCategory category;
  return category;
}

void throw_exception_from_error(DropReason r, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(make_error_code(r)), loc);
}

std::string_view drop_reason_name(DropReason r) noexcept {
  switch (r) {
    case DropReason::Truncated:
      return "truncated";
    case DropReason::NotIpv6:
      return "not_ipv6";
    case DropReason::BadPayloadLength:
      return "bad_payload_length";
    case DropReason::ExtensionHeaders:
      return "extension_headers";
    case DropReason::NotIpip:
      return "not_ipip";
    case DropReason::InnerTruncated:
      return "inner_truncated";
    case DropReason::InnerBadVersion:
      return "inner_bad_version";
    case DropReason::InnerBadHeader:
      return "inner_bad_header";
    case DropReason::InnerBadTotalLength:
      return "inner_bad_total_length";
    case DropReason::InnerBadChecksum:
      return "inner_bad_checksum";
    case DropReason::EcnNotEctCe:
      return "ecn_not_ect_ce";
  }
  return "unknown";
}

std::uint32_t inner_flow_label(core::Bytes inner) noexcept {
  auto p = core::parse_ipv4(inner);
  if (!p) return 1;
  std::uint32_t h = mix32(p->header.src.to_uint() ^ 0x9e3779b9u);
  h = mix32(h ^ p->header.dst.to_uint());
  h = mix32(h ^ p->header.protocol);
  if (!p->is_fragment() && has_ports(p->header.protocol)) {
    core::ByteReader ports{p->payload};
    const std::uint32_t both = ports.u32();
    if (ports.ok()) h = mix32(h ^ both);
  }
  const std::uint32_t label = (h ^ (h >> 20)) & 0xfffffu;
  // 0 means "unlabelled" (RFC 6437 §2); a hash never claims it.
  return label == 0 ? 1 : label;
}

Result<core::MutableBytes> encapsulate(core::MutableBytes frame, std::size_t headroom,
                                       const Endpoints& ends,
                                       const EncapOptions& options) noexcept {
  if (headroom < kEncapOverhead || headroom > frame.size()) {
    return make_error_code(Errc::NoHeadroom);
  }
  if (options.hop_limit == 0) return make_error_code(Errc::BadHopLimit);
  auto p = parse_inner(frame.subspan(headroom));
  if (!p) return p.error();
  // RFC 6040 §4.1 normal mode and RFC 2983 uniform DSCP: the outer traffic class is the inner
  // TOS byte as is.
  const auto tos = static_cast<std::uint8_t>(p->header.dscp << 2 | p->header.ecn);
  const core::Ipv6Header outer{
      .traffic_class = tos,
      .flow_label = options.flow_label == FlowLabel::InnerHash ? inner_flow_label(p->packet) : 0,
      .next_header = ipp::kIpv4,
      .hop_limit = options.hop_limit,
      .src = ends.src,
      .dst = ends.dst,
  };
  const std::size_t start = headroom - kEncapOverhead;
  core::ByteWriter out{frame.subspan(start, kEncapOverhead)};
  // Cannot fail: the flow label has 20 bits, the payload at most 65535 bytes, the span 40.
  if (auto r = core::write_ipv6_header(out, outer, p->total_length); !r) return r.error();
  return frame.subspan(start, kEncapOverhead + p->total_length);
}

boost::system::result<Decapsulated, DropReason> decapsulate(core::MutableBytes packet) noexcept {
  // RFC 8200 §3, the fixed header:
  //   |Version| Traffic Class |           Flow Label                  |
  //   |         Payload Length        |  Next Header  |   Hop Limit   |
  //   |                 Source Address (16), Destination Address (16)   |
  core::ByteReader in{packet};
  const std::uint32_t vtf = in.u32();
  const std::uint16_t payload_length = in.u16();
  const std::uint8_t next_header = in.u8();
  const std::uint8_t hop_limit = in.u8();
  const auto src = in.array<16>();
  const auto dst = in.array<16>();
  if (!in.ok()) return DropReason::Truncated;
  if (vtf >> 28 != 6) return DropReason::NotIpv6;
  if (payload_length > in.remaining()) return DropReason::BadPayloadLength;
  if (next_header != ipp::kIpv4) {
    return is_extension_header(next_header) ? DropReason::ExtensionHeaders : DropReason::NotIpip;
  }
  const core::MutableBytes inner = packet.subspan(kEncapOverhead, payload_length);
  const auto p = core::parse_ipv4(inner);
  if (!p) return inner_drop(p.error());
  // The tunnel payload is exactly the inner packet (RFC 2473 §3): anything after its total
  // length inside the payload length is not ours to forward.
  if (p->total_length != payload_length) return DropReason::InnerBadTotalLength;
  if (!p->checksum_ok()) return DropReason::InnerBadChecksum;

  Decapsulated d{
      .outer = {.traffic_class = static_cast<std::uint8_t>((vtf >> 20) & 0xff),
                .flow_label = vtf & 0xfffffu,
                .next_header = next_header,
                .hop_limit = hop_limit,
                .src = core::Ipv6Address{src},
                .dst = core::Ipv6Address{dst}},
      .inner = inner,
  };
  // RFC 6040 §4.2, Figure 4.
  const std::uint8_t outer_ecn = d.outer.traffic_class & 3;
  const std::uint8_t inner_ecn = p->header.ecn;
  std::uint8_t ecn = inner_ecn;
  if (outer_ecn == kCe) {
    if (inner_ecn == kNotEct) return DropReason::EcnNotEctCe;
    ecn = kCe;
  } else if (outer_ecn == kEct1 && inner_ecn == kEct0) {
    ecn = kEct1;
  }
  d.ecn_anomaly =
      (inner_ecn == kNotEct && outer_ecn != kNotEct) || (inner_ecn == kCe && outer_ecn == kEct1);
  if (ecn != inner_ecn) {
    // The ECN bits share the header's first 16-bit word with version, IHL and DSCP; update the
    // checksum for that word (RFC 1624 eqn. 3) rather than summing the header again.
    const std::uint16_t old_word = core::load_be16(inner.first(2));
    const auto new_word = static_cast<std::uint16_t>((old_word & ~3u) | ecn);
    const std::uint16_t sum = core::load_be16(inner.subspan(kIpv4ChecksumOffset, 2));
    core::store_be16(inner.first(2), new_word);
    core::store_be16(inner.subspan(kIpv4ChecksumOffset, 2),
                     core::checksum_update16(sum, old_word, new_word));
    d.ecn_rewritten = true;
  }
  return d;
}

Result<std::size_t> inner_mtu(std::size_t tunnel_mtu) noexcept {
  if (tunnel_mtu < core::kIpv6MinMtu) return make_error_code(Errc::BadMtu);
  return std::min<std::size_t>(tunnel_mtu - kEncapOverhead, 65535);
}

Result<MtuVerdict> check_mtu(core::Bytes inner, std::size_t tunnel_mtu) noexcept {
  auto m = inner_mtu(tunnel_mtu);
  if (!m) return m.error();
  auto p = parse_inner(inner);
  if (!p) return p.error();
  if (p->total_length <= *m) return MtuVerdict::Fits;
  return p->header.dont_fragment ? MtuVerdict::TooBigDontFragment : MtuVerdict::NeedsFragmentation;
}

Result<core::MutableBytes> write_fragmentation_needed(core::MutableBytes out,
                                                      core::Ipv4Address router, core::Bytes inner,
                                                      std::size_t tunnel_mtu) noexcept {
  auto m = inner_mtu(tunnel_mtu);
  if (!m) return m.error();
  auto p = parse_inner(inner);
  if (!p) return p.error();
  const std::size_t quoted =
      std::min(p->packet.size(), p->header_length + core::kIcmpv4QuotedPayload);
  const std::size_t icmp_length = core::kIcmpHeaderLength + quoted;
  const core::Ipv4Header ip{.ttl = kIcmpErrorTtl,
                            .protocol = ipp::kIcmp,
                            .src = router,
                            .dst = p->header.src,
                            .options = {}};
  core::ByteWriter w{out};
  if (!core::write_ipv4_header(w, ip, icmp_length) ||
      !core::write_icmpv4_destination_unreachable(w, core::icmpv4_unreachable::kFragmentationNeeded,
                                                  p->packet, static_cast<std::uint16_t>(*m))) {
    // The packet parsed and the lengths are small: only the output can be short.
    return make_error_code(Errc::NoSpace);
  }
  return w.written();
}

Result<std::size_t> fragment_count(core::Bytes inner, std::size_t tunnel_mtu) noexcept {
  auto f = plan(inner, tunnel_mtu);
  if (!f) return f.error();
  return f->count;
}

Result<core::MutableBytes> write_fragment(core::Bytes inner, std::size_t tunnel_mtu,
                                          std::size_t index, core::MutableBytes out) noexcept {
  auto f = plan(inner, tunnel_mtu);
  if (!f) return f.error();
  if (index >= f->count) return make_error_code(Errc::BadFragmentIndex);
  const core::Ipv4Packet& p = f->packet;
  core::ByteWriter w{out};
  if (f->count == 1) {
    w.bytes(p.packet);
    if (!w.ok()) return make_error_code(Errc::NoSpace);
    return w.written();
  }
  const std::size_t begin = index == 0 ? 0 : f->first_data + (index - 1) * f->other_data;
  const std::size_t length =
      std::min(index == 0 ? f->first_data : f->other_data, p.payload.size() - begin);
  core::Ipv4Header h = p.header;
  h.more_fragments = index + 1 < f->count || p.header.more_fragments;
  const std::size_t offset = p.header.fragment_offset + begin / 8;
  // An offset past 13 bits means the original claimed bytes past 65535: not a real packet.
  if (offset > 8191) return make_error_code(Errc::InnerBadHeader);
  h.fragment_offset = static_cast<std::uint16_t>(offset);
  if (index > 0) h.options = core::Bytes{f->options}.first(f->options_length);
  if (auto r = core::write_ipv4_header(w, h, length); !r) {
    return make_error_code(w.ok() ? Errc::InnerBadHeader : Errc::NoSpace);
  }
  w.bytes(p.payload.subspan(begin, length));
  if (!w.ok()) return make_error_code(Errc::NoSpace);
  return w.written();
}

}  // namespace tep
