// TCP header parsing, options, checksums, writing and MSS clamping (RFC 9293 §3.1-3.2).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-------------------------------+-------------------------------+
//   |          Source Port          |       Destination Port        |
//   +-------------------------------+-------------------------------+
//   |                        Sequence Number                        |
//   +---------------------------------------------------------------+
//   |                    Acknowledgment Number                      |
//   +-------+-------+---------------+-------------------------------+
//   |  Data |       |C|E|U|A|P|R|S|F|                               |
//   | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//   +-------+-------+---------------+-------------------------------+
//   |           Checksum            |         Urgent Pointer        |
//   +-------------------------------+-------------------------------+
//   |                 Options (data offset * 4 - 20)                |
//   +---------------------------------------------------------------+
//
//   MSS option: kind=2, length=4, 16-bit value (RFC 9293 §3.2, §3.7.1).
#include "core/tcp.hpp"

#include <array>

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"

namespace core {
namespace {

constexpr std::size_t kChecksumOffset = 16;
constexpr std::size_t kMssOptionLength = 4;

// Result<bool> cannot be built from an error_code implicitly (bool is constructible from one).
Result<bool> failed(const boost::system::error_code& ec) noexcept {
  return Result<bool>{boost::system::in_place_error, ec};
}

template <typename Address>
Result<void> write(ByteWriter& out, const TcpHeader& h, Bytes payload, const Address& src,
                   const Address& dst) noexcept {
  if (h.reserved > 0x0f) return Errc::BadHeader;
  if (h.options.size() > kTcpMaxOptionsLength || h.options.size() % 4 != 0) {
    return Errc::BadHeader;
  }
  const std::size_t header_length = kTcpMinHeaderLength + h.options.size();
  if (payload.size() > 0xffff - header_length) return Errc::BadLength;
  const std::size_t start = out.size();
  out.u16(h.src_port)
      .u16(h.dst_port)
      .u32(h.seq)
      .u32(h.ack)
      .u8(static_cast<std::uint8_t>(((header_length / 4) << 4) | h.reserved))
      .u8(h.flags)
      .u16(h.window);
  const MutableBytes checksum = out.reserve(2);
  out.u16(h.urgent_pointer).bytes(h.options).bytes(payload);
  if (!out.ok()) return Errc::NoSpace;
  store_be16(checksum, tcp_checksum(out.written().subspan(start), src, dst));
  return {};
}

template <typename Address>
Result<std::vector<std::byte>> build(const TcpHeader& h, Bytes payload, const Address& src,
                                     const Address& dst) {
  std::vector<std::byte> buf(kTcpMinHeaderLength + h.options.size() + payload.size());
  ByteWriter out{buf};
  if (auto r = write(out, h, payload, src, dst); !r) return r.error();
  return buf;
}

}  // namespace

Result<TcpSegment> parse_tcp(Bytes data) noexcept {
  ByteReader in{data};
  TcpSegment s;
  s.header.src_port = in.u16();
  s.header.dst_port = in.u16();
  s.header.seq = in.u32();
  s.header.ack = in.u32();
  const std::uint8_t offset_reserved = in.u8();
  s.header.flags = in.u8();
  s.header.window = in.u16();
  s.checksum = in.u16();
  s.header.urgent_pointer = in.u16();
  if (!in.ok()) return Errc::Truncated;

  s.header.reserved = offset_reserved & 0x0f;
  s.header_length = std::size_t{offset_reserved} / 16 * 4;
  if (s.header_length < kTcpMinHeaderLength) return Errc::BadHeader;
  if (s.header_length > data.size()) return Errc::BadLength;
  s.segment = data;
  s.header_bytes = data.first(s.header_length);
  s.header.options = s.header_bytes.subspan(kTcpMinHeaderLength);
  s.payload = data.subspan(s.header_length);
  return s;
}

Result<std::optional<TcpOption>> find_tcp_option(Bytes options, std::uint8_t kind) noexcept {
  ByteReader in{options};
  while (in.remaining() > 0) {
    const std::size_t offset = in.position();
    const std::uint8_t k = in.u8();
    if (k == tcp_option::kEnd) break;
    if (k == tcp_option::kNop) continue;
    const std::uint8_t length = in.u8();
    if (!in.ok()) return Errc::BadLength;  // kind byte is the last one: no room for the length
    if (length < 2) return Errc::BadHeader;
    const Bytes value = in.bytes(std::size_t{length} - 2);
    if (!in.ok()) return Errc::BadLength;
    if (k == kind)
      return std::optional<TcpOption>{TcpOption{.kind = k, .offset = offset, .data = value}};
  }
  return std::optional<TcpOption>{};
}

Result<std::optional<std::uint16_t>> tcp_mss(const TcpSegment& s) noexcept {
  auto opt = find_tcp_option(s.header.options, tcp_option::kMss);
  if (!opt) return opt.error();
  if (!*opt) return std::optional<std::uint16_t>{};
  if ((*opt)->data.size() != kMssOptionLength - 2) return Errc::BadHeader;
  return std::optional<std::uint16_t>{load_be16((*opt)->data)};
}

bool tcp_checksum_ok(const TcpSegment& s, Ipv4Address src, Ipv4Address dst) noexcept {
  if (s.segment.size() > 0xffff) return false;
  return ipv4_pseudo_header(src, dst, ip_protocol::kTcp,
                            static_cast<std::uint16_t>(s.segment.size()))
             .add(s.segment)
             .finish() == 0;
}

bool tcp_checksum_ok(const TcpSegment& s, const Ipv6Address& src, const Ipv6Address& dst) noexcept {
  return ipv6_pseudo_header(src, dst, ip_protocol::kTcp,
                            static_cast<std::uint32_t>(s.segment.size()))
             .add(s.segment)
             .finish() == 0;
}

std::uint16_t tcp_checksum(Bytes segment, Ipv4Address src, Ipv4Address dst) noexcept {
  return ipv4_pseudo_header(src, dst, ip_protocol::kTcp,
                            static_cast<std::uint16_t>(segment.size() & 0xffff))
      .add_except(segment, kChecksumOffset)
      .finish();
}

std::uint16_t tcp_checksum(Bytes segment, const Ipv6Address& src, const Ipv6Address& dst) noexcept {
  return ipv6_pseudo_header(src, dst, ip_protocol::kTcp, static_cast<std::uint32_t>(segment.size()))
      .add_except(segment, kChecksumOffset)
      .finish();
}

Result<void> write_tcp(ByteWriter& out, const TcpHeader& h, Bytes payload, Ipv4Address src,
                       Ipv4Address dst) noexcept {
  return write(out, h, payload, src, dst);
}

Result<void> write_tcp(ByteWriter& out, const TcpHeader& h, Bytes payload, const Ipv6Address& src,
                       const Ipv6Address& dst) noexcept {
  return write(out, h, payload, src, dst);
}

Result<std::vector<std::byte>> build_tcp(const TcpHeader& h, Bytes payload, Ipv4Address src,
                                         Ipv4Address dst) {
  return build(h, payload, src, dst);
}

Result<std::vector<std::byte>> build_tcp(const TcpHeader& h, Bytes payload, const Ipv6Address& src,
                                         const Ipv6Address& dst) {
  return build(h, payload, src, dst);
}

Result<bool> clamp_tcp_mss(MutableBytes segment, std::uint16_t max_mss) noexcept {
  auto s = parse_tcp(segment);
  if (!s) return failed(s.error());
  if (!s->has(tcp_flag::kSyn)) return false;
  auto opt = find_tcp_option(s->header.options, tcp_option::kMss);
  if (!opt) return failed(opt.error());
  if (!*opt) return false;
  if ((*opt)->data.size() != kMssOptionLength - 2) return Errc::BadHeader;
  const std::uint16_t mss = load_be16((*opt)->data);
  if (mss <= max_mss) return false;

  // The value sits at an arbitrary (possibly odd) offset in the segment: NOPs before it are
  // common. checksum_replace accounts for the byte position.
  const std::size_t at = kTcpMinHeaderLength + (*opt)->offset + 2;
  std::array<std::byte, 2> old_value{}, new_value{};
  store_be16(old_value, mss);
  store_be16(new_value, max_mss);
  const MutableBytes field = segment.subspan(at, 2);
  const MutableBytes checksum = segment.subspan(kChecksumOffset, 2);
  store_be16(checksum, checksum_replace(load_be16(checksum), at, old_value, new_value));
  store_be16(field, max_mss);
  return true;
}

Result<bool> clamp_ipv4_tcp_mss(MutableBytes ipv4_packet, std::uint16_t max_mss) noexcept {
  auto p = parse_ipv4(ipv4_packet);
  if (!p) return failed(p.error());
  if (p->header.protocol != ip_protocol::kTcp || !p->is_first_fragment_or_whole()) return false;
  return clamp_tcp_mss(ipv4_packet.subspan(p->header_length, p->payload.size()), max_mss);
}

}  // namespace core
