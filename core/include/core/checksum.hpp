// The Internet checksum (RFC 1071), pseudo-headers, and incremental update (RFC 1624).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/address.hpp"
#include "core/bytes.hpp"

namespace core {

// Accumulates the 16-bit one's-complement sum of a byte stream fed in pieces (RFC 1071 §4.1).
// The pieces are summed as if concatenated: a piece of odd length leaves its last byte as the
// high half of a word that the next piece completes, so a header, a pseudo-header and a payload
// can be added one after the other whatever their lengths. Pure value type, no allocation.
class Checksum {
 public:
  constexpr Checksum() noexcept = default;

  constexpr Checksum& add(Bytes data) noexcept {
    std::size_t i = 0;
    if (odd_ && !data.empty()) add_byte(std::to_integer<std::uint8_t>(data[i++]));
    // Whole words, then at most one byte left over for the next piece.
    for (; i + 1 < data.size(); i += 2) acc_ += load_be16(data.subspan(i, 2));
    if (i < data.size()) add_byte(std::to_integer<std::uint8_t>(data[i]));
    return *this;
  }
  // Fields in network order, as if their big-endian bytes were added.
  constexpr Checksum& add_u8(std::uint8_t v) noexcept {
    add_byte(v);
    return *this;
  }
  constexpr Checksum& add_u16(std::uint16_t v) noexcept {
    add_byte(static_cast<std::uint8_t>(v >> 8));
    add_byte(static_cast<std::uint8_t>(v & 0xff));
    return *this;
  }
  constexpr Checksum& add_u32(std::uint32_t v) noexcept {
    add_u16(static_cast<std::uint16_t>(v >> 16));
    return add_u16(static_cast<std::uint16_t>(v & 0xffff));
  }
  // Adds data as if the 2-byte field at field_offset (a checksum field) held zeros; for
  // computing the value to store in a header that already sits in its buffer. A field that
  // lies partly or wholly past the end of data is zeroed only where it overlaps.
  constexpr Checksum& add_except(Bytes data, std::size_t field_offset) noexcept {
    for (std::size_t i = 0; i < data.size(); ++i) {
      const bool in_field = i >= field_offset && i - field_offset < 2;
      add_byte(in_field ? std::uint8_t{0} : std::to_integer<std::uint8_t>(data[i]));
    }
    return *this;
  }
  constexpr Checksum& add(Ipv4Address a) noexcept { return add_u32(a.to_uint()); }
  constexpr Checksum& add(const Ipv6Address& a) noexcept {
    for (const std::uint8_t b : a.bytes()) add_byte(b);
    return *this;
  }

  // The folded one's-complement sum (not complemented). A pending odd byte counts as the high
  // half of a word padded with a zero byte (RFC 1071 §4.1, "if (count > 0)").
  constexpr std::uint16_t sum() const noexcept {
    std::uint64_t s = acc_;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return static_cast<std::uint16_t>(s);
  }
  // The value to store in a checksum field: ~sum. Over data that already contains a correct
  // checksum field the result is 0.
  constexpr std::uint16_t finish() const noexcept {
    return static_cast<std::uint16_t>(~sum() & 0xffff);
  }
  // Whether an odd number of bytes has been added so far.
  constexpr bool odd() const noexcept { return odd_; }

 private:
  constexpr void add_byte(std::uint8_t b) noexcept {
    // 64 bits cannot overflow before 2^48 bytes have been added.
    acc_ += odd_ ? std::uint64_t{b} : std::uint64_t{b} << 8;
    odd_ = !odd_;
  }

  std::uint64_t acc_ = 0;
  bool odd_ = false;
};

// The checksum of one span: ~(one's-complement sum). 0 when data holds a correct checksum.
constexpr std::uint16_t internet_checksum(Bytes data) noexcept {
  return Checksum{}.add(data).finish();
}

// IPv4 pseudo-header for UDP/TCP (RFC 768, RFC 9293 §3.1):
//   src(4) dst(4) zero(1) protocol(1) length(2)
// where length is the transport header plus data.
constexpr Checksum ipv4_pseudo_header(Ipv4Address src, Ipv4Address dst, std::uint8_t protocol,
                                      std::uint16_t length) noexcept {
  return Checksum{}.add(src).add(dst).add_u8(0).add_u8(protocol).add_u16(length);
}

// IPv6 pseudo-header for upper-layer checksums (RFC 8200 §8.1):
//   src(16) dst(16) upper-layer length(4) zero(3) next header(1)
constexpr Checksum ipv6_pseudo_header(const Ipv6Address& src, const Ipv6Address& dst,
                                      std::uint8_t next_header, std::uint32_t length) noexcept {
  return Checksum{}.add(src).add(dst).add_u32(length).add_u16(0).add_u8(0).add_u8(next_header);
}

// The folded one's-complement sum of `data`, the value Checksum{}.add(data).sum() gives, summed
// eight bytes at a time: for bulk data (payloads) on the packet path. When `copy_to` is not
// empty, data is also copied into its front in the same pass (copy_to.size() >= data.size(),
// asserted; the two must not overlap). Add the result to a Checksum with add_u16 when data
// starts at an even offset of the checksummed bytes.
std::uint16_t bulk_sum(Bytes data, MutableBytes copy_to = {}) noexcept;

// Incremental update, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), where m is the old value of a
// changed 16-bit word and m' the new one. The field must be at an even offset from the start of
// the checksummed data (use checksum_replace otherwise).
std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value) noexcept;
// The same for a 32-bit field at an even offset (an IPv4 address, a sequence number).
std::uint16_t checksum_update32(std::uint16_t checksum, std::uint32_t old_value,
                                std::uint32_t new_value) noexcept;
// The same for a field of any length (an IPv6 address, a TCP option) at `offset` bytes from the
// start of the checksummed data; only the parity of offset matters. old_field and new_field must
// have the same size (asserted).
std::uint16_t checksum_replace(std::uint16_t checksum, std::size_t offset, Bytes old_field,
                               Bytes new_field) noexcept;

}  // namespace core
