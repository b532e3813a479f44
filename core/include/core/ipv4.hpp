// IPv4 header (RFC 791): a bounds-checked view over a received packet and a header writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/ip_protocol.hpp"

namespace core {

inline constexpr std::size_t kIpv4MinHeaderLength = 20;
inline constexpr std::size_t kIpv4MaxHeaderLength = 60;
inline constexpr std::size_t kIpv4MaxOptionsLength = 40;

// The fields of an IPv4 header, as read by parse_ipv4 and as written by write_ipv4_header.
// Lengths and the checksum are not here: the writer derives them, the view reports them.
struct Ipv4Header {
  std::uint8_t dscp = 0;              // 6 bits (RFC 2474)
  std::uint8_t ecn = 0;               // 2 bits (RFC 3168)
  std::uint16_t id = 0;               // identification
  bool reserved_flag = false;         // flag bit 0, must be zero on send (RFC 791)
  bool dont_fragment = false;         // DF
  bool more_fragments = false;        // MF
  std::uint16_t fragment_offset = 0;  // 13 bits, in units of 8 bytes
  std::uint8_t ttl = 64;
  std::uint8_t protocol = 0;
  Ipv4Address src{};
  Ipv4Address dst{};
  // Options as they appear on the wire (RFC 791 §3.1), padded to a multiple of 4, at most 40
  // bytes. A parsed header's options point into the caller's buffer.
  Bytes options{};
};

// A parsed IPv4 packet. All spans point into the buffer given to parse_ipv4 and are valid as long
// as it is; the view owns nothing.
struct Ipv4Packet {
  Ipv4Header header;
  std::size_t header_length = 0;  // IHL * 4, 20..60
  std::uint16_t total_length = 0;
  std::uint16_t checksum = 0;  // header checksum as received
  Bytes packet{};              // exactly total_length bytes: trailing link padding is cut off
  Bytes header_bytes{};        // the first header_length bytes of packet
  Bytes payload{};             // the rest of packet, total_length - header_length bytes

  // Whether the header checksum verifies (RFC 791 §3.1, RFC 1071).
  bool checksum_ok() const noexcept;
  // Any fragment, first or not (MF set or offset non-zero).
  constexpr bool is_fragment() const noexcept {
    return header.more_fragments || header.fragment_offset != 0;
  }
  // The payload starts with the upper-layer header only in the first fragment.
  constexpr bool is_first_fragment_or_whole() const noexcept { return header.fragment_offset == 0; }
};

// Parses the IPv4 header at the start of `data`. Checks, in order:
//   fewer than 20 bytes                         -> truncated
//   version != 4                                -> bad_version
//   IHL < 5                                     -> bad_header
//   total length < IHL * 4                      -> bad_length
//   total length > data.size()                  -> bad_length
// Bytes after total length (Ethernet padding) are ignored. The header checksum is *not*
// verified here; call Ipv4Packet::checksum_ok (a router counts the two drops apart).
// No allocation; never throws.
Result<Ipv4Packet> parse_ipv4(Bytes data) noexcept;

// The value for the header checksum field of `header` (IHL * 4 bytes), computed as if the
// checksum field (bytes 10..11) were zero.
std::uint16_t ipv4_header_checksum(Bytes header) noexcept;

// Writes a header for a payload of `payload_length` bytes that the caller writes next: IHL and
// total length are derived, the checksum is computed. Errors: bad_header (dscp > 63, ecn > 3,
// fragment offset > 8191, options longer than 40 bytes or not a multiple of 4), bad_length
// (total length over 65535), no_space (the writer ran out; it is then failed).
Result<void> write_ipv4_header(ByteWriter& out, const Ipv4Header& h,
                               std::size_t payload_length) noexcept;

// Header plus payload as a new buffer; same errors as write_ipv4_header (never no_space).
Result<std::vector<std::byte>> build_ipv4(const Ipv4Header& h, Bytes payload);

}  // namespace core
