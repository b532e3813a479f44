// TCP header (RFC 9293): a bounds-checked view, options walk, checksums, a writer, MSS clamping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"

namespace core {

inline constexpr std::size_t kTcpMinHeaderLength = 20;
inline constexpr std::size_t kTcpMaxOptionsLength = 40;

// Control bits (RFC 9293 §3.1, RFC 3168 §6.1 for ECE/CWR).
namespace tcp_flag {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
inline constexpr std::uint8_t kUrg = 0x20;
inline constexpr std::uint8_t kEce = 0x40;
inline constexpr std::uint8_t kCwr = 0x80;
}  // namespace tcp_flag

// Option kinds (RFC 9293 §3.2).
namespace tcp_option {
inline constexpr std::uint8_t kEnd = 0;
inline constexpr std::uint8_t kNop = 1;
inline constexpr std::uint8_t kMss = 2;
}  // namespace tcp_option

// The fields of a TCP header, as read by parse_tcp and written by write_tcp. The data offset and
// checksum are derived by the writer and reported by the view.
struct TcpHeader {
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t reserved = 0;  // the 4 bits between data offset and the control bits
  std::uint8_t flags = 0;     // tcp_flag bits
  std::uint16_t window = 0;
  std::uint16_t urgent_pointer = 0;
  // Options as on the wire, a multiple of 4 bytes, at most 40. A parsed header's options point
  // into the caller's buffer.
  Bytes options{};
};

// A parsed TCP segment. Spans point into the buffer given to parse_tcp.
struct TcpSegment {
  TcpHeader header;
  std::size_t header_length = 0;  // data offset * 4, 20..60
  std::uint16_t checksum = 0;     // as received
  Bytes segment{};                // header plus data: all of the IP payload
  Bytes header_bytes{};
  Bytes payload{};

  constexpr bool has(std::uint8_t flag) const noexcept { return (header.flags & flag) != 0; }
};

// Parses a TCP segment from an IP payload; TCP has no length field, so all of `data` is the
// segment.
//   fewer than 20 bytes              -> truncated
//   data offset < 5                  -> bad_header
//   data offset * 4 > data.size()    -> bad_length
// Options are not walked and the checksum is not verified here.
Result<TcpSegment> parse_tcp(Bytes data) noexcept;

// One option found by find_tcp_option.
struct TcpOption {
  std::uint8_t kind = 0;
  std::size_t offset = 0;  // of the kind byte, from the start of the options
  Bytes data{};            // the option's value, after kind and length
};

// Walks an options area (RFC 9293 §3.2): End ends the walk, NOP is one byte, every other option
// is kind, length (counting both), value. Returns the first option of `kind`, or nullopt.
// Errors: bad_header (a length below 2), bad_length (an option running past the area).
Result<std::optional<TcpOption>> find_tcp_option(Bytes options, std::uint8_t kind) noexcept;

// The Maximum Segment Size option, if present. Errors as find_tcp_option, plus bad_header if the
// MSS option's length is not 4.
Result<std::optional<std::uint16_t>> tcp_mss(const TcpSegment& s) noexcept;

// Verifies the checksum against the pseudo-header of the enclosing packet.
bool tcp_checksum_ok(const TcpSegment& s, Ipv4Address src, Ipv4Address dst) noexcept;
bool tcp_checksum_ok(const TcpSegment& s, const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// The value to store in the checksum field of `segment` (its checksum field treated as zero).
std::uint16_t tcp_checksum(Bytes segment, Ipv4Address src, Ipv4Address dst) noexcept;
std::uint16_t tcp_checksum(Bytes segment, const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// Writes header (data offset from the options), payload and checksum. Errors: bad_header
// (reserved over 4 bits, options not a multiple of 4 or over 40 bytes), bad_length (segment over
// 65535 bytes), no_space.
Result<void> write_tcp(ByteWriter& out, const TcpHeader& h, Bytes payload, Ipv4Address src,
                       Ipv4Address dst) noexcept;
Result<void> write_tcp(ByteWriter& out, const TcpHeader& h, Bytes payload, const Ipv6Address& src,
                       const Ipv6Address& dst) noexcept;

Result<std::vector<std::byte>> build_tcp(const TcpHeader& h, Bytes payload, Ipv4Address src,
                                         Ipv4Address dst);
Result<std::vector<std::byte>> build_tcp(const TcpHeader& h, Bytes payload, const Ipv6Address& src,
                                         const Ipv6Address& dst);

// Lowers the MSS option of a SYN segment to at most max_mss, in place, and updates the checksum
// incrementally (RFC 1624; the pseudo-header does not change). Returns true if the segment was
// changed; false for a segment without SYN, without an MSS option, or already at or below
// max_mss. An option is never added. Errors: those of parse_tcp and tcp_mss; the segment is
// then unchanged.
Result<bool> clamp_tcp_mss(MutableBytes segment, std::uint16_t max_mss) noexcept;

// The same for the TCP segment inside an IPv4 packet. Returns false without touching the packet
// if it does not carry TCP or is a non-first fragment. Errors: those of parse_ipv4 and
// clamp_tcp_mss.
Result<bool> clamp_ipv4_tcp_mss(MutableBytes ipv4_packet, std::uint16_t max_mss) noexcept;

}  // namespace core
