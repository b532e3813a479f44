// UDP parsing, checksums and writing (RFC 768).
//
//    0      7 8     15 16    23 24    31
//   +--------+--------+--------+--------+
//   |   Source Port   | Destination Port|
//   +--------+--------+--------+--------+
//   |     Length      |    Checksum     |
//   +--------+--------+--------+--------+
//   |          data octets ...
//   +-----------------------------------
#include "core/udp.hpp"

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"

namespace core {
namespace {

constexpr std::size_t kChecksumOffset = 6;

// ~(pseudo + datagram with its checksum field as zero), with 0 sent as 0xffff.
std::uint16_t finish_udp(Checksum pseudo, Bytes datagram) noexcept {
  const std::uint16_t c = pseudo.add_except(datagram, kChecksumOffset).finish();
  return c == 0 ? 0xffff : c;
}

// Header and payload into `out`, then the checksum computed over what was written.
template <typename Address>
Result<void> write(ByteWriter& out, const UdpHeader& h, Bytes payload, const Address& src,
                   const Address& dst) noexcept {
  const std::size_t length = kUdpHeaderLength + payload.size();
  if (length > 0xffff) return Errc::BadLength;
  const std::size_t start = out.size();
  out.u16(h.src_port).u16(h.dst_port).u16(static_cast<std::uint16_t>(length));
  const MutableBytes checksum = out.reserve(2);
  out.bytes(payload);
  if (!out.ok()) return Errc::NoSpace;
  store_be16(checksum, udp_checksum(out.written().subspan(start), src, dst));
  return {};
}

template <typename Address>
Result<std::vector<std::byte>> build(const UdpHeader& h, Bytes payload, const Address& src,
                                     const Address& dst) {
  std::vector<std::byte> buf(kUdpHeaderLength + payload.size());
  ByteWriter out{buf};
  if (auto r = write(out, h, payload, src, dst); !r) return r.error();
  return buf;
}

}  // namespace

Result<UdpDatagram> parse_udp(Bytes data) noexcept {
  ByteReader in{data};
  UdpDatagram d;
  d.header.src_port = in.u16();
  d.header.dst_port = in.u16();
  d.length = in.u16();
  d.checksum = in.u16();
  if (!in.ok()) return Errc::Truncated;
  if (d.length < kUdpHeaderLength || d.length > data.size()) return Errc::BadLength;
  d.datagram = data.first(d.length);
  d.payload = d.datagram.subspan(kUdpHeaderLength);
  return d;
}

bool udp_checksum_ok(const UdpDatagram& d, Ipv4Address src, Ipv4Address dst) noexcept {
  if (d.checksum == 0) return true;
  return ipv4_pseudo_header(src, dst, ip_protocol::kUdp, d.length).add(d.datagram).finish() == 0;
}

bool udp_checksum_ok(const UdpDatagram& d, const Ipv6Address& src,
                     const Ipv6Address& dst) noexcept {
  if (d.checksum == 0) return false;
  return ipv6_pseudo_header(src, dst, ip_protocol::kUdp, d.length).add(d.datagram).finish() == 0;
}

std::uint16_t udp_checksum(Bytes datagram, Ipv4Address src, Ipv4Address dst) noexcept {
  // The pseudo-header length is the 16-bit UDP length; a datagram that cannot fit it cannot be
  // sent over IPv4 either, so truncating the value loses nothing that matters.
  return finish_udp(ipv4_pseudo_header(src, dst, ip_protocol::kUdp,
                                       static_cast<std::uint16_t>(datagram.size() & 0xffff)),
                    datagram);
}

std::uint16_t udp_checksum(Bytes datagram, const Ipv6Address& src,
                           const Ipv6Address& dst) noexcept {
  return finish_udp(
      ipv6_pseudo_header(src, dst, ip_protocol::kUdp, static_cast<std::uint32_t>(datagram.size())),
      datagram);
}

Result<void> write_udp(ByteWriter& out, const UdpHeader& h, Bytes payload, Ipv4Address src,
                       Ipv4Address dst) noexcept {
  return write(out, h, payload, src, dst);
}

Result<void> write_udp(ByteWriter& out, const UdpHeader& h, Bytes payload, const Ipv6Address& src,
                       const Ipv6Address& dst) noexcept {
  return write(out, h, payload, src, dst);
}

Result<std::vector<std::byte>> build_udp(const UdpHeader& h, Bytes payload, Ipv4Address src,
                                         Ipv4Address dst) {
  return build(h, payload, src, dst);
}

Result<std::vector<std::byte>> build_udp(const UdpHeader& h, Bytes payload, const Ipv6Address& src,
                                         const Ipv6Address& dst) {
  return build(h, payload, src, dst);
}

}  // namespace core
