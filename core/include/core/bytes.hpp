// Checked big-endian readers and writers over byte spans (no casts, no pointer arithmetic).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace core {

using Bytes = std::span<const std::byte>;
using MutableBytes = std::span<std::byte>;

// Big-endian loads/stores. The caller guarantees the span is long enough (asserted in debug).
constexpr std::uint16_t load_be16(Bytes b) noexcept {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(b[0]) << 8) |
                                    std::to_integer<unsigned>(b[1]));
}
constexpr std::uint32_t load_be32(Bytes b) noexcept {
  return (std::uint32_t{load_be16(b.first(2))} << 16) | load_be16(b.subspan(2, 2));
}
constexpr void store_be16(MutableBytes b, std::uint16_t v) noexcept {
  b[0] = static_cast<std::byte>(v >> 8);
  b[1] = static_cast<std::byte>(v & 0xff);
}
constexpr void store_be32(MutableBytes b, std::uint32_t v) noexcept {
  store_be16(b.first(2), static_cast<std::uint16_t>(v >> 16));
  store_be16(b.subspan(2, 2), static_cast<std::uint16_t>(v & 0xffff));
}

// Reads fields in network order. A read past the end makes the reader fail *sticky*: that read
// and every later one return zeros / empty spans, and ok() turns false. Check ok() once after a
// group of reads instead of after each.
class ByteReader {
 public:
  constexpr explicit ByteReader(Bytes data) noexcept : data_{data} {}

  constexpr std::uint8_t u8() noexcept {
    auto b = take(1);
    return b.empty() ? 0 : std::to_integer<std::uint8_t>(b[0]);
  }
  constexpr std::uint16_t u16() noexcept {
    auto b = take(2);
    return b.empty() ? 0 : load_be16(b);
  }
  constexpr std::uint32_t u32() noexcept {
    auto b = take(4);
    return b.empty() ? 0 : load_be32(b);
  }
  constexpr std::uint64_t u64() noexcept {
    const std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  // The next n bytes as a view into the underlying buffer (empty on failure).
  constexpr Bytes bytes(std::size_t n) noexcept { return take(n); }
  template <std::size_t N>
  constexpr std::array<std::uint8_t, N> array() noexcept {
    std::array<std::uint8_t, N> out{};
    auto b = take(N);
    for (std::size_t i = 0; i < b.size(); ++i) out[i] = std::to_integer<std::uint8_t>(b[i]);
    return out;
  }
  constexpr void skip(std::size_t n) noexcept { (void)take(n); }
  // Everything not read yet; the reader is then at the end.
  constexpr Bytes rest() noexcept { return take(remaining()); }

  constexpr bool ok() const noexcept { return ok_; }
  constexpr std::size_t position() const noexcept { return pos_; }
  constexpr std::size_t remaining() const noexcept { return data_.size() - pos_; }
  constexpr Bytes peek_rest() const noexcept { return data_.subspan(pos_); }

 private:
  constexpr Bytes take(std::size_t n) noexcept {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      pos_ = data_.size();
      return {};
    }
    auto out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  Bytes data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Writes fields in network order into a caller-owned buffer. A write past the end fails sticky:
// nothing more is written and ok() turns false. written() is the prefix that was filled.
class ByteWriter {
 public:
  constexpr explicit ByteWriter(MutableBytes out) noexcept : out_{out} {}

  constexpr ByteWriter& u8(std::uint8_t v) noexcept {
    if (auto b = take(1); !b.empty()) b[0] = static_cast<std::byte>(v);
    return *this;
  }
  constexpr ByteWriter& u16(std::uint16_t v) noexcept {
    if (auto b = take(2); !b.empty()) store_be16(b, v);
    return *this;
  }
  constexpr ByteWriter& u32(std::uint32_t v) noexcept {
    if (auto b = take(4); !b.empty()) store_be32(b, v);
    return *this;
  }
  constexpr ByteWriter& u64(std::uint64_t v) noexcept {
    u32(static_cast<std::uint32_t>(v >> 32));
    return u32(static_cast<std::uint32_t>(v & 0xffffffffu));
  }
  constexpr ByteWriter& bytes(Bytes src) noexcept {
    auto b = take(src.size());
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = src[i];
    return *this;
  }
  template <std::size_t N>
  constexpr ByteWriter& array(const std::array<std::uint8_t, N>& src) noexcept {
    auto b = take(N);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>(src[i]);
    return *this;
  }
  constexpr ByteWriter& text(std::string_view s) noexcept {
    auto b = take(s.size());
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>(s[i]);
    return *this;
  }
  constexpr ByteWriter& zeros(std::size_t n) noexcept {
    for (auto& b : take(n)) b = std::byte{0};
    return *this;
  }
  // Reserves n bytes to be filled later (e.g. a length or checksum); empty on failure.
  constexpr MutableBytes reserve(std::size_t n) noexcept { return take(n); }

  constexpr bool ok() const noexcept { return ok_; }
  constexpr std::size_t size() const noexcept { return pos_; }
  constexpr std::size_t remaining() const noexcept { return out_.size() - pos_; }
  constexpr MutableBytes written() const noexcept { return out_.first(pos_); }

 private:
  constexpr MutableBytes take(std::size_t n) noexcept {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return {};
    }
    auto out = out_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  MutableBytes out_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Views a string's characters as bytes (for protocol text and tests).
inline Bytes as_bytes(std::string_view s) noexcept {
  return std::as_bytes(std::span{s});
}

}  // namespace core
