// IPv6 fixed header and extension-header walk (RFC 8200 §3, §4).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-------+---------------+---------------------------------------+
//   |Version| Traffic Class |              Flow Label               |
//   +-------+---------------+-------+---------------+---------------+
//   |         Payload Length        |  Next Header  |   Hop Limit   |
//   +-------------------------------+---------------+---------------+
//   |                    Source Address (16 bytes)                  |
//   +---------------------------------------------------------------+
//   |                 Destination Address (16 bytes)                |
//   +---------------------------------------------------------------+
//
// Extension headers all start with (next header, length); the length unit differs:
//   hop-by-hop, routing, destination options: (len + 1) * 8 bytes       (RFC 8200 §4.3-4.6)
//   fragment: fixed 8 bytes, the length byte is reserved                (RFC 8200 §4.5)
//   AH: (len + 2) * 4 bytes                                             (RFC 4302 §2.2)
//
//   Fragment header:
//   +---------------+---------------+-------------------------+-----+
//   |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//   +---------------+---------------+-------------------------+-----+
//   |                         Identification                        |
//   +---------------------------------------------------------------+
#include "core/ipv6.hpp"

namespace core {
namespace {

constexpr std::uint32_t kFlowLabelMask = 0x000fffff;

bool is_walked_extension(std::uint8_t nh) noexcept {
  using namespace ip_protocol;
  return nh == kHopByHop || nh == kRouting || nh == kFragment || nh == kDestinationOptions ||
         nh == kAh;
}

}  // namespace

Result<Ipv6Packet> parse_ipv6(Bytes data) noexcept {
  ByteReader in{data};
  const std::uint32_t vtf = in.u32();
  const std::uint16_t payload_length = in.u16();
  const std::uint8_t next_header = in.u8();
  const std::uint8_t hop_limit = in.u8();
  const Ipv6Address src{in.array<16>()};
  const Ipv6Address dst{in.array<16>()};
  if (!in.ok()) return Errc::Truncated;

  if ((vtf >> 28) != 6) return Errc::BadVersion;
  if (payload_length > in.remaining()) return Errc::BadLength;
  if (payload_length == 0 && next_header == ip_protocol::kHopByHop) return Errc::Unsupported;

  Ipv6Packet p;
  p.header = Ipv6Header{
      .traffic_class = static_cast<std::uint8_t>((vtf >> 20) & 0xff),
      .flow_label = vtf & kFlowLabelMask,
      .next_header = next_header,
      .hop_limit = hop_limit,
      .src = src,
      .dst = dst,
  };
  p.payload_length = payload_length;
  p.packet = data.first(kIpv6HeaderLength + payload_length);
  p.payload = p.packet.subspan(kIpv6HeaderLength);

  // Walk the chain inside the payload only: a header running past the payload length is a
  // lie even if the buffer holds more bytes.
  ByteReader chain{p.payload};
  std::uint8_t nh = next_header;
  while (is_walked_extension(nh)) {
    if (nh == ip_protocol::kHopByHop && p.extension_count != 0) return Errc::BadHeader;
    if (p.extension_count == kIpv6MaxExtensionHeaders) return Errc::TooManyHeaders;
    ByteReader ext{chain.peek_rest()};
    const std::uint8_t next = ext.u8();
    const std::uint8_t len = ext.u8();
    if (!ext.ok()) return Errc::Truncated;

    std::size_t size = 0;
    if (nh == ip_protocol::kFragment) {
      const std::uint16_t offset_flags = ext.u16();
      const std::uint32_t id = ext.u32();
      if (!ext.ok()) return Errc::Truncated;
      const auto offset = static_cast<std::uint16_t>(offset_flags >> 3);
      if (offset != 0) return Errc::Unsupported;  // no upper-layer header in this fragment
      p.fragment =
          Ipv6FragmentInfo{.offset = offset, .more_fragments = (offset_flags & 1) != 0, .id = id};
      size = kIpv6FragmentHeaderLength;
    } else if (nh == ip_protocol::kAh) {
      size = (std::size_t{len} + 2) * 4;
    } else {
      size = (std::size_t{len} + 1) * 8;
    }
    if (size > chain.remaining()) return Errc::BadLength;
    chain.skip(size);
    ++p.extension_count;
    nh = next;
  }
  p.upper_protocol = nh;
  p.upper_offset = kIpv6HeaderLength + chain.position();
  return p;
}

Result<void> write_ipv6_header(ByteWriter& out, const Ipv6Header& h,
                               std::size_t payload_length) noexcept {
  if (h.flow_label > kFlowLabelMask) return Errc::BadHeader;
  if (payload_length > 0xffff) return Errc::BadLength;
  out.u32((std::uint32_t{6} << 28) | (std::uint32_t{h.traffic_class} << 20) | h.flow_label)
      .u16(static_cast<std::uint16_t>(payload_length))
      .u8(h.next_header)
      .u8(h.hop_limit)
      .array(h.src.bytes())
      .array(h.dst.bytes());
  if (!out.ok()) return Errc::NoSpace;
  return {};
}

Result<void> write_ipv6_extension_header(ByteWriter& out, std::uint8_t next_header,
                                         Bytes body) noexcept {
  const std::size_t size = body.size() + 2;
  if (size % 8 != 0 || size / 8 - 1 > 0xff) return Errc::BadLength;
  out.u8(next_header).u8(static_cast<std::uint8_t>(size / 8 - 1)).bytes(body);
  if (!out.ok()) return Errc::NoSpace;
  return {};
}

Result<void> write_ipv6_fragment_header(ByteWriter& out, std::uint8_t next_header,
                                        const Ipv6FragmentInfo& f) noexcept {
  if (f.offset > 0x1fff) return Errc::BadHeader;
  out.u8(next_header)
      .u8(0)
      .u16(static_cast<std::uint16_t>((f.offset << 3) | (f.more_fragments ? 1 : 0)))
      .u32(f.id);
  if (!out.ok()) return Errc::NoSpace;
  return {};
}

Result<std::vector<std::byte>> build_ipv6(const Ipv6Header& h, Bytes payload) {
  std::vector<std::byte> buf(kIpv6HeaderLength + payload.size());
  ByteWriter out{buf};
  if (auto r = write_ipv6_header(out, h, payload.size()); !r) return r.error();
  out.bytes(payload);
  return buf;
}

}  // namespace core
