// IPv6 header and extension-header chain (RFC 8200): a bounds-checked view and header writers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/ip_protocol.hpp"

namespace core {

inline constexpr std::size_t kIpv6HeaderLength = 40;
inline constexpr std::size_t kIpv6FragmentHeaderLength = 8;
// The minimum link MTU every IPv6 link carries (RFC 8200 §5).
inline constexpr std::size_t kIpv6MinMtu = 1280;
// parse_ipv6 walks at most this many extension headers before giving up with too_many_headers.
// Real traffic carries two or three; the bound keeps a hostile chain from costing more.
inline constexpr std::size_t kIpv6MaxExtensionHeaders = 8;

// The fields of the fixed IPv6 header, as read by parse_ipv6 and written by write_ipv6_header.
// The payload length is derived by the writer and reported by the view.
struct Ipv6Header {
  std::uint8_t traffic_class = 0;
  std::uint32_t flow_label = 0;  // 20 bits
  std::uint8_t next_header = 0;
  std::uint8_t hop_limit = 64;
  Ipv6Address src{};
  Ipv6Address dst{};
};

// The fragment header seen in the chain, if any (RFC 8200 §4.5).
struct Ipv6FragmentInfo {
  std::uint16_t offset = 0;  // 13 bits, units of 8 bytes; always 0 in a parsed view
  bool more_fragments = false;
  std::uint32_t id = 0;
};

// A parsed IPv6 packet. Spans point into the buffer given to parse_ipv6; the view owns nothing.
struct Ipv6Packet {
  Ipv6Header header;
  std::uint16_t payload_length = 0;
  Bytes packet{};   // exactly 40 + payload_length bytes: anything after is ignored
  Bytes payload{};  // everything after the fixed header, extension headers included
  // The header after the extension headers walked: an upper-layer protocol (6, 17, 58, 4...),
  // 59 (no next header), or one we do not walk (ESP, Mobility...). upper_offset is where it
  // starts, counted from the start of packet; upper_offset == packet.size() is possible.
  std::uint8_t upper_protocol = 0;
  std::size_t upper_offset = 0;
  std::size_t extension_count = 0;
  // Set when a first (or atomic) fragment header was seen; upper_layer() then holds only this
  // fragment's part of the upper-layer data.
  std::optional<Ipv6FragmentInfo> fragment;

  Bytes upper_layer() const noexcept { return packet.subspan(upper_offset); }
};

// Parses the fixed header at the start of `data` and walks the extension headers hop-by-hop (0,
// first only), routing (43), fragment (44), destination options (60) and AH (51). Errors:
//   fewer than 40 bytes                                   -> truncated
//   version != 6                                          -> bad_version
//   40 + payload length > data.size()                     -> bad_length
//   payload length 0 with hop-by-hop (RFC 2675 jumbogram) -> unsupported
//   an extension header's fixed part missing              -> truncated
//   an extension header's length runs past the packet     -> bad_length
//   hop-by-hop not first (RFC 8200 §4.1)                  -> bad_header
//   more than kIpv6MaxExtensionHeaders                    -> too_many_headers
//   a fragment with non-zero offset (no upper header)     -> unsupported
// The chain is walked inside the payload length only, never into bytes after it.
// No allocation; never throws.
Result<Ipv6Packet> parse_ipv6(Bytes data) noexcept;

// Writes the fixed header for `payload_length` bytes (extension headers included) that the
// caller writes next. Errors: bad_header (flow label over 20 bits), bad_length (payload over
// 65535; jumbograms are not written), no_space.
Result<void> write_ipv6_header(ByteWriter& out, const Ipv6Header& h,
                               std::size_t payload_length) noexcept;

// Writes an options-style extension header (hop-by-hop, routing, destination options):
// next header, length in 8-byte units beyond the first, then `body`. The body must make the
// header a multiple of 8 bytes long: body.size() % 8 == 6, at most 2046 bytes (else bad_length).
Result<void> write_ipv6_extension_header(ByteWriter& out, std::uint8_t next_header,
                                         Bytes body) noexcept;

// Writes a fragment header (RFC 8200 §4.5). offset is in 8-byte units, at most 8191
// (else bad_header).
Result<void> write_ipv6_fragment_header(ByteWriter& out, std::uint8_t next_header,
                                        const Ipv6FragmentInfo& f) noexcept;

// Fixed header plus payload as a new buffer; same errors as write_ipv6_header.
Result<std::vector<std::byte>> build_ipv6(const Ipv6Header& h, Bytes payload);

}  // namespace core
