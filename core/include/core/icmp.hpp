// ICMPv4 (RFC 792, RFC 1191) and ICMPv6 (RFC 4443): views, checksums, echo and error builders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"

namespace core {

inline constexpr std::size_t kIcmpHeaderLength = 8;
// An ICMPv4 error quotes the offending IP header plus this many bytes of its payload (RFC 792).
inline constexpr std::size_t kIcmpv4QuotedPayload = 8;
// An ICMPv6 error packet, IPv6 header included, never exceeds the minimum MTU (RFC 4443 §2.4(c)).
inline constexpr std::size_t kIcmpv6MaxErrorPacket = kIpv6MinMtu;

namespace icmpv4_type {
inline constexpr std::uint8_t kEchoReply = 0;
inline constexpr std::uint8_t kDestinationUnreachable = 3;
inline constexpr std::uint8_t kRedirect = 5;
inline constexpr std::uint8_t kEchoRequest = 8;
inline constexpr std::uint8_t kTimeExceeded = 11;
inline constexpr std::uint8_t kParameterProblem = 12;
}  // namespace icmpv4_type

// Destination Unreachable codes (RFC 792, RFC 1812 §5.2.7.1).
namespace icmpv4_unreachable {
inline constexpr std::uint8_t kNet = 0;
inline constexpr std::uint8_t kHost = 1;
inline constexpr std::uint8_t kProtocol = 2;
inline constexpr std::uint8_t kPort = 3;
inline constexpr std::uint8_t kFragmentationNeeded = 4;  // carries the next-hop MTU (RFC 1191)
inline constexpr std::uint8_t kAdminProhibited = 13;
}  // namespace icmpv4_unreachable

namespace icmpv6_type {
inline constexpr std::uint8_t kDestinationUnreachable = 1;
inline constexpr std::uint8_t kPacketTooBig = 2;
inline constexpr std::uint8_t kTimeExceeded = 3;
inline constexpr std::uint8_t kParameterProblem = 4;
inline constexpr std::uint8_t kEchoRequest = 128;
inline constexpr std::uint8_t kEchoReply = 129;
}  // namespace icmpv6_type

// The 8-byte header common to ICMPv4 and ICMPv6 and the rest of the message. Spans point into the
// buffer given to the parser.
//   +--------+--------+-----------------+
//   |  Type  |  Code  |    Checksum     |
//   +--------+--------+-----------------+
//   |   rest of header (type-specific)  |
//   +-----------------------------------+
//   |   body (echo data, quoted packet) |
struct IcmpMessage {
  std::uint8_t type = 0;
  std::uint8_t code = 0;
  std::uint16_t checksum = 0;        // as received
  std::uint32_t rest_of_header = 0;  // bytes 4..7
  Bytes message{};                   // the whole ICMP message: all of the IP payload
  Bytes body{};                      // message after the 8-byte header

  // Echo request/reply: identifier and sequence number (RFC 792, RFC 4443 §4).
  constexpr std::uint16_t echo_id() const noexcept {
    return static_cast<std::uint16_t>(rest_of_header >> 16);
  }
  constexpr std::uint16_t echo_sequence() const noexcept {
    return static_cast<std::uint16_t>(rest_of_header & 0xffff);
  }
};

struct Icmpv4Message : IcmpMessage {
  // Fragmentation needed: the next-hop MTU in the low 16 bits (RFC 1191 §4).
  constexpr std::uint16_t next_hop_mtu() const noexcept {
    return static_cast<std::uint16_t>(rest_of_header & 0xffff);
  }
};

struct Icmpv6Message : IcmpMessage {
  // Packet Too Big: the MTU of the next-hop link (RFC 4443 §3.2).
  constexpr std::uint32_t mtu() const noexcept { return rest_of_header; }
};

// Parses an ICMP message from an IP payload. Fewer than 8 bytes -> truncated. The checksum is
// not verified here. No allocation.
Result<Icmpv4Message> parse_icmpv4(Bytes data) noexcept;
Result<Icmpv6Message> parse_icmpv6(Bytes data) noexcept;

// ICMPv4 sums the message alone; ICMPv6 includes the IPv6 pseudo-header (RFC 4443 §2.3).
bool icmpv4_checksum_ok(const Icmpv4Message& m) noexcept;
bool icmpv6_checksum_ok(const Icmpv6Message& m, const Ipv6Address& src,
                        const Ipv6Address& dst) noexcept;
// The value for the checksum field of `message` (its checksum field treated as zero).
std::uint16_t icmpv4_checksum(Bytes message) noexcept;
std::uint16_t icmpv6_checksum(Bytes message, const Ipv6Address& src,
                              const Ipv6Address& dst) noexcept;

// Error messages, as opposed to informational ones (echo...). ICMPv6 types below 128 are errors
// (RFC 4443 §2.1). For ICMPv4, types 3, 4, 5, 11, 12 are errors, and so is any type we do not
// know as a query, so that we never answer an error with an error.
bool icmpv4_is_error(std::uint8_t type) noexcept;
constexpr bool icmpv6_is_error(std::uint8_t type) noexcept {
  return type < 128;
}

enum class EchoKind { request, reply };

struct IcmpEcho {
  std::uint16_t id = 0;
  std::uint16_t sequence = 0;
  Bytes data{};
};

// Echo request/reply messages (ICMP part only; the caller writes the IP header). Errors:
// bad_length (message over 65535 bytes), no_space.
Result<void> write_icmpv4_echo(ByteWriter& out, EchoKind kind, const IcmpEcho& e) noexcept;
Result<void> write_icmpv6_echo(ByteWriter& out, EchoKind kind, const IcmpEcho& e,
                               const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// An ICMPv4 error message (ICMP part only) quoting the offending packet's IP header and the first
// 8 bytes of its payload (RFC 792; fewer if it has fewer). `offending` must parse as IPv4 (its
// errors are returned); trailing padding after its total length is not quoted. rest_of_header
// is the type-specific word (0, a pointer, a gateway, or the next-hop MTU).
Result<void> write_icmpv4_error(ByteWriter& out, std::uint8_t type, std::uint8_t code,
                                std::uint32_t rest_of_header, Bytes offending) noexcept;
// Destination unreachable; for code kFragmentationNeeded pass the next-hop MTU (RFC 1191 §4),
// otherwise 0.
Result<void> write_icmpv4_destination_unreachable(ByteWriter& out, std::uint8_t code,
                                                  Bytes offending,
                                                  std::uint16_t next_hop_mtu = 0) noexcept;

// An ICMPv6 error message (ICMPv6 part only, checksummed with src/dst as the IPv6 addresses it
// will be sent with) quoting as much of `offending` as keeps the whole IPv6 packet within 1280
// bytes (RFC 4443 §2.4(c)): at most 1232 bytes, quoted as given. Errors: no_space.
Result<void> write_icmpv6_error(ByteWriter& out, std::uint8_t type, std::uint8_t code,
                                std::uint32_t rest_of_header, Bytes offending,
                                const Ipv6Address& src, const Ipv6Address& dst) noexcept;
Result<void> write_icmpv6_packet_too_big(ByteWriter& out, std::uint32_t mtu, Bytes offending,
                                         const Ipv6Address& src, const Ipv6Address& dst) noexcept;

// Whole packets, ready to send from `from` back to the offending packet's source: IP header
// (TTL/hop limit 64, protocol ICMP, DF clear, id 0) plus the error message. An IPv4 `offending`
// must parse (parse_ipv4 errors are returned); an IPv6 one needs a valid fixed header only
// (truncated, bad_version, bad_length), so that errors about fragments can be built. The IPv6
// quote is the offending packet up to its payload length, cut to fit 1280 bytes. Neither applies
// rate limits or the "never in response to" rules: see icmpv4_error_allowed and
// icmpv6_error_allowed.
Result<std::vector<std::byte>> build_icmpv4_error(Ipv4Address from, std::uint8_t type,
                                                  std::uint8_t code, std::uint32_t rest_of_header,
                                                  Bytes offending);
Result<std::vector<std::byte>> build_icmpv4_fragmentation_needed(Ipv4Address from,
                                                                 std::uint16_t next_hop_mtu,
                                                                 Bytes offending);
Result<std::vector<std::byte>> build_icmpv6_error(const Ipv6Address& from, std::uint8_t type,
                                                  std::uint8_t code, std::uint32_t rest_of_header,
                                                  Bytes offending);
Result<std::vector<std::byte>> build_icmpv6_packet_too_big(const Ipv6Address& from,
                                                           std::uint32_t mtu, Bytes offending);

// Whether an ICMPv4 error may be sent about `offending` (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7):
// not about an ICMPv4 error, a non-first fragment, a packet to the limited broadcast or a
// multicast group, or from a source that is not one host (0.0.0.0, loopback, multicast,
// broadcast, 240/4), and not about a packet that does not parse. Directed broadcasts need
// interface knowledge and stay the caller's check.
bool icmpv4_error_allowed(Bytes offending) noexcept;

// Whether an ICMPv6 error of `type`/`code` may be sent about `offending` (RFC 4443 §2.4(e)): not
// about an ICMPv6 error message, not from an unspecified or multicast source, and to a multicast
// destination only for Packet Too Big and Parameter Problem code 2. A non-first fragment (whose
// upper layer cannot be seen) is allowed; a packet without a valid fixed header is not.
bool icmpv6_error_allowed(Bytes offending, std::uint8_t type, std::uint8_t code) noexcept;

}  // namespace core
