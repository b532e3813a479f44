// UDP (RFC 768; RFC 8200 §8.1 for IPv6): a bounds-checked view, checksums and a writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"

namespace core {

inline constexpr std::size_t kUdpHeaderLength = 8;

struct UdpHeader {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
};

// A parsed UDP datagram. Spans point into the buffer given to parse_udp.
struct UdpDatagram {
  UdpHeader header;
  std::uint16_t length = 0;    // the UDP length field: header plus data
  std::uint16_t checksum = 0;  // as received; 0 on IPv4 means "not computed"
  Bytes datagram{};            // exactly `length` bytes
  Bytes payload{};             // datagram after the 8-byte header
};

// Parses a UDP datagram from an IP payload (`data` is everything after the IP header chain).
//   fewer than 8 bytes         -> truncated
//   length field < 8           -> bad_length
//   length field > data.size() -> bad_length
// Bytes after `length` are ignored, as the Linux stack does. Checksums are not verified here.
Result<UdpDatagram> parse_udp(Bytes data) noexcept;

// Verifies the checksum against the pseudo-header of the enclosing packet. On IPv4 a zero
// checksum means the sender did not compute one and is accepted (RFC 768); on IPv6 the checksum
// is mandatory and zero fails (RFC 8200 §8.1).
bool udp_checksum_ok(const UdpDatagram& d, Ipv4Address src, Ipv4Address dst) noexcept;
bool udp_checksum_ok(const UdpDatagram& d, const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// The value to store in the checksum field of `datagram` (header plus data, its checksum field
// treated as zero). A computed 0 is returned as 0xffff (RFC 768), so the result is never 0.
std::uint16_t udp_checksum(Bytes datagram, Ipv4Address src, Ipv4Address dst) noexcept;
std::uint16_t udp_checksum(Bytes datagram, const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// Writes header, payload and checksum. Errors: bad_length (datagram over 65535), no_space.
Result<void> write_udp(ByteWriter& out, const UdpHeader& h, Bytes payload, Ipv4Address src,
                       Ipv4Address dst) noexcept;
Result<void> write_udp(ByteWriter& out, const UdpHeader& h, Bytes payload, const Ipv6Address& src,
                       const Ipv6Address& dst) noexcept;

// The datagram as a new buffer; same errors as write_udp (never no_space).
Result<std::vector<std::byte>> build_udp(const UdpHeader& h, Bytes payload, Ipv4Address src,
                                         Ipv4Address dst);
Result<std::vector<std::byte>> build_udp(const UdpHeader& h, Bytes payload, const Ipv6Address& src,
                                         const Ipv6Address& dst);

}  // namespace core
