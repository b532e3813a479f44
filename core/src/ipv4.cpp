// IPv4 header parsing and writing (RFC 791 §3.1).
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-------+-------+-----------+---+-------------------------------+
//   |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//   +-------+-------+-----------+---+-+-+-+-------------------------+
//   |         Identification        |0|D|M|    Fragment Offset      |
//   +---------------+---------------+-+-+-+-------------------------+
//   |  Time to Live |    Protocol   |         Header Checksum       |
//   +---------------+---------------+-------------------------------+
//   |                       Source Address                          |
//   +---------------------------------------------------------------+
//   |                    Destination Address                        |
//   +---------------------------------------------------------------+
//   |                    Options (IHL*4 - 20 bytes)                 |
//   +---------------------------------------------------------------+
#include "core/ipv4.hpp"

#include "core/checksum.hpp"

namespace core {
namespace {

constexpr std::uint16_t kReservedFlag = 0x8000;
constexpr std::uint16_t kDontFragment = 0x4000;
constexpr std::uint16_t kMoreFragments = 0x2000;
constexpr std::uint16_t kOffsetMask = 0x1fff;
constexpr std::size_t kChecksumOffset = 10;

}  // namespace

bool Ipv4Packet::checksum_ok() const noexcept {
  return internet_checksum(header_bytes) == 0;
}

Result<Ipv4Packet> parse_ipv4(Bytes data) noexcept {
  ByteReader in{data};
  const std::uint8_t version_ihl = in.u8();
  const std::uint8_t tos = in.u8();
  const std::uint16_t total_length = in.u16();
  const std::uint16_t id = in.u16();
  const std::uint16_t flags_offset = in.u16();
  const std::uint8_t ttl = in.u8();
  const std::uint8_t protocol = in.u8();
  const std::uint16_t checksum = in.u16();
  const Ipv4Address src{in.u32()};
  const Ipv4Address dst{in.u32()};
  if (!in.ok()) return Errc::Truncated;

  if ((version_ihl >> 4) != 4) return Errc::BadVersion;
  const std::size_t header_length = std::size_t{version_ihl & 0x0fu} * 4;
  if (header_length < kIpv4MinHeaderLength) return Errc::BadHeader;
  if (total_length < header_length) return Errc::BadLength;
  if (total_length > data.size()) return Errc::BadLength;

  // From here every length is within data: total_length <= data.size() and the header fits in
  // total_length.
  const Bytes packet = data.first(total_length);
  Ipv4Packet p;
  p.header = Ipv4Header{
      .dscp = static_cast<std::uint8_t>(tos >> 2),
      .ecn = static_cast<std::uint8_t>(tos & 0x03),
      .id = id,
      .reserved_flag = (flags_offset & kReservedFlag) != 0,
      .dont_fragment = (flags_offset & kDontFragment) != 0,
      .more_fragments = (flags_offset & kMoreFragments) != 0,
      .fragment_offset = static_cast<std::uint16_t>(flags_offset & kOffsetMask),
      .ttl = ttl,
      .protocol = protocol,
      .src = src,
      .dst = dst,
      .options = packet.subspan(kIpv4MinHeaderLength, header_length - kIpv4MinHeaderLength),
  };
  p.header_length = header_length;
  p.total_length = total_length;
  p.checksum = checksum;
  p.packet = packet;
  p.header_bytes = packet.first(header_length);
  p.payload = packet.subspan(header_length);
  return p;
}

std::uint16_t ipv4_header_checksum(Bytes header) noexcept {
  if (header.size() < kChecksumOffset + 2) return internet_checksum(header);
  return Checksum{}
      .add(header.first(kChecksumOffset))
      .add(header.subspan(kChecksumOffset + 2))
      .finish();
}

Result<void> write_ipv4_header(ByteWriter& out, const Ipv4Header& h,
                               std::size_t payload_length) noexcept {
  if (h.dscp > 63 || h.ecn > 3 || h.fragment_offset > kOffsetMask) return Errc::BadHeader;
  if (h.options.size() > kIpv4MaxOptionsLength || h.options.size() % 4 != 0) {
    return Errc::BadHeader;
  }
  const std::size_t header_length = kIpv4MinHeaderLength + h.options.size();
  if (payload_length > 0xffff - header_length) return Errc::BadLength;

  std::uint16_t flags_offset = h.fragment_offset;
  if (h.reserved_flag) flags_offset |= kReservedFlag;
  if (h.dont_fragment) flags_offset |= kDontFragment;
  if (h.more_fragments) flags_offset |= kMoreFragments;

  const std::size_t start = out.size();
  out.u8(static_cast<std::uint8_t>(0x40 | (header_length / 4)))
      .u8(static_cast<std::uint8_t>((h.dscp << 2) | h.ecn))
      .u16(static_cast<std::uint16_t>(header_length + payload_length))
      .u16(h.id)
      .u16(flags_offset)
      .u8(h.ttl)
      .u8(h.protocol);
  const MutableBytes checksum = out.reserve(2);
  out.u32(h.src.to_uint()).u32(h.dst.to_uint()).bytes(h.options);
  if (!out.ok()) return Errc::NoSpace;
  store_be16(checksum, 0);
  store_be16(checksum, internet_checksum(out.written().subspan(start)));
  return {};
}

Result<std::vector<std::byte>> build_ipv4(const Ipv4Header& h, Bytes payload) {
  std::vector<std::byte> buf(kIpv4MinHeaderLength + h.options.size() + payload.size());
  ByteWriter out{buf};
  if (auto r = write_ipv4_header(out, h, payload.size()); !r) return r.error();
  out.bytes(payload);
  return buf;
}

}  // namespace core
