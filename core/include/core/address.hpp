// IPv4/IPv6 addresses and prefixes: strict parsing, canonical text (RFC 5952), containment.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <iterator>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace core {

class Ipv4Address {
 public:
  constexpr Ipv4Address() noexcept = default;
  // From a host-order integer: Ipv4Address{0xC0000201} is 192.0.2.1.
  constexpr explicit Ipv4Address(std::uint32_t host_order) noexcept : value_{host_order} {}
  constexpr explicit Ipv4Address(const std::array<std::uint8_t, 4>& b) noexcept
      : value_{(std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
               (std::uint32_t{b[2]} << 8) | b[3]} {}

  // Dotted quad, exactly four decimal fields 0..255 without leading zeros.
  static Result<Ipv4Address> parse(std::string_view text) noexcept;

  constexpr std::uint32_t to_uint() const noexcept { return value_; }
  constexpr std::array<std::uint8_t, 4> bytes() const noexcept {
    return {static_cast<std::uint8_t>(value_ >> 24), static_cast<std::uint8_t>(value_ >> 16),
            static_cast<std::uint8_t>(value_ >> 8), static_cast<std::uint8_t>(value_)};
  }
  std::string to_string() const;
  // The same text without allocating (hot loops: searching a lease table by text).
  static constexpr std::size_t kMaxTextLength = 15;
  using Text = std::array<char, kMaxTextLength>;
  std::string_view to_chars(Text& out) const noexcept;

  constexpr bool is_unspecified() const noexcept { return value_ == 0; }
  constexpr bool is_multicast() const noexcept { return (value_ >> 28) == 0xe; }
  constexpr bool is_broadcast() const noexcept { return value_ == 0xffffffffu; }
  constexpr bool is_loopback() const noexcept { return (value_ >> 24) == 127; }

  constexpr auto operator<=>(const Ipv4Address&) const noexcept = default;

 private:
  std::uint32_t value_ = 0;
};

class Ipv6Address {
 public:
  using Octets = std::array<std::uint8_t, 16>;

  constexpr Ipv6Address() noexcept = default;
  constexpr explicit Ipv6Address(const Octets& b) noexcept : bytes_{b} {}

  // RFC 4291 section 2.2 text forms, including "::" and a trailing dotted quad. Zone ids
  // ("%eth0") are not addresses and are rejected.
  static Result<Ipv6Address> parse(std::string_view text) noexcept;

  constexpr const Octets& bytes() const noexcept { return bytes_; }
  // RFC 5952 canonical text: lowercase, no leading zeros, longest zero run compressed.
  std::string to_string() const;
  // The same text without allocating.
  static constexpr std::size_t kMaxTextLength = 45;  // "ffff:...:ffff" is 39; mapped ones 22
  using Text = std::array<char, kMaxTextLength>;
  std::string_view to_chars(Text& out) const noexcept;

  constexpr bool is_unspecified() const noexcept { return *this == Ipv6Address{}; }
  constexpr bool is_multicast() const noexcept { return bytes_[0] == 0xff; }
  constexpr bool is_link_local() const noexcept {
    return bytes_[0] == 0xfe && (bytes_[1] & 0xc0) == 0x80;
  }
  constexpr bool is_v4_mapped() const noexcept {
    for (int i = 0; i < 10; ++i)
      if (bytes_[static_cast<std::size_t>(i)] != 0) return false;
    return bytes_[10] == 0xff && bytes_[11] == 0xff;
  }

  constexpr auto operator<=>(const Ipv6Address&) const noexcept = default;

 private:
  Octets bytes_{};
};

// A network: address with all host bits zero, and a length. Iterates over its addresses.
class Ipv4Prefix {
 public:
  class Iterator;

  constexpr Ipv4Prefix() noexcept = default;
  // Rejects a length > 32 and an address with host bits set.
  static Result<Ipv4Prefix> make(Ipv4Address network, unsigned length) noexcept;
  // "192.0.2.0/24". A bare address is not a prefix: the length is required.
  static Result<Ipv4Prefix> parse(std::string_view text) noexcept;

  constexpr Ipv4Address network() const noexcept { return network_; }
  constexpr unsigned length() const noexcept { return length_; }
  constexpr std::uint32_t mask() const noexcept {
    return length_ == 0 ? 0 : ~std::uint32_t{0} << (32 - length_);
  }
  constexpr Ipv4Address last() const noexcept { return Ipv4Address{network_.to_uint() | ~mask()}; }
  // Number of addresses, 2^(32-length).
  constexpr std::uint64_t size() const noexcept { return std::uint64_t{1} << (32 - length_); }
  constexpr bool contains(Ipv4Address a) const noexcept {
    return (a.to_uint() & mask()) == network_.to_uint();
  }
  constexpr bool contains(const Ipv4Prefix& p) const noexcept {
    return p.length_ >= length_ && contains(p.network_);
  }
  std::string to_string() const;

  Iterator begin() const noexcept;
  Iterator end() const noexcept;

  constexpr auto operator<=>(const Ipv4Prefix&) const noexcept = default;

 private:
  constexpr Ipv4Prefix(Ipv4Address n, unsigned l) noexcept : network_{n}, length_{l} {}
  Ipv4Address network_;
  unsigned length_ = 0;
};

class Ipv6Prefix {
 public:
  class Iterator;

  constexpr Ipv6Prefix() noexcept = default;
  static Result<Ipv6Prefix> make(Ipv6Address network, unsigned length) noexcept;
  // "2001:db8::/32".
  static Result<Ipv6Prefix> parse(std::string_view text) noexcept;

  constexpr Ipv6Address network() const noexcept { return network_; }
  constexpr unsigned length() const noexcept { return length_; }
  bool contains(const Ipv6Address& a) const noexcept;
  bool contains(const Ipv6Prefix& p) const noexcept {
    return p.length_ >= length_ && contains(p.network_);
  }
  std::string to_string() const;

  // Iteration walks addresses in order; for a short prefix it is effectively unbounded, so
  // callers bound their loops.
  Iterator begin() const noexcept;
  Iterator end() const noexcept;

  constexpr auto operator<=>(const Ipv6Prefix&) const noexcept = default;

 private:
  Ipv6Prefix(Ipv6Address n, unsigned l) noexcept : network_{n}, length_{l} {}
  Ipv6Address network_;
  unsigned length_ = 0;
};

// Text form on streams (for diagnostics and test output).
std::ostream& operator<<(std::ostream& os, const Ipv4Address& a);
std::ostream& operator<<(std::ostream& os, const Ipv6Address& a);
std::ostream& operator<<(std::ostream& os, const Ipv4Prefix& p);
std::ostream& operator<<(std::ostream& os, const Ipv6Prefix& p);

class Ipv4Prefix::Iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Ipv4Address;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = Ipv4Address;

  constexpr Iterator() noexcept = default;
  constexpr Ipv4Address operator*() const noexcept {
    return Ipv4Address{static_cast<std::uint32_t>(next_)};
  }
  constexpr Iterator& operator++() noexcept {
    ++next_;
    return *this;
  }
  constexpr Iterator operator++(int) noexcept {
    auto old = *this;
    ++next_;
    return old;
  }
  constexpr bool operator==(const Iterator&) const noexcept = default;

 private:
  friend class Ipv4Prefix;
  // 64-bit so that one-past-255.255.255.255 is representable.
  constexpr explicit Iterator(std::uint64_t n) noexcept : next_{n} {}
  std::uint64_t next_ = 0;
};

class Ipv6Prefix::Iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Ipv6Address;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = Ipv6Address;

  Iterator() noexcept = default;
  Ipv6Address operator*() const noexcept { return current_; }
  Iterator& operator++() noexcept;
  Iterator operator++(int) noexcept {
    auto old = *this;
    ++*this;
    return old;
  }
  bool operator==(const Iterator&) const noexcept = default;

 private:
  friend class Ipv6Prefix;
  Iterator(Ipv6Address a, unsigned length, bool end) noexcept
      : current_{a}, length_{length}, end_{end} {}
  Ipv6Address current_;
  unsigned length_ = 0;
  bool end_ = true;
};

}  // namespace core

template <>
struct std::hash<core::Ipv4Address> {
  std::size_t operator()(const core::Ipv4Address& a) const noexcept {
    // Multiplicative mixing spreads sequential pool addresses across buckets.
    return static_cast<std::size_t>(a.to_uint() * 0x9E3779B97F4A7C15ull);
  }
};
template <>
struct std::hash<core::Ipv6Address> {
  std::size_t operator()(const core::Ipv6Address& a) const noexcept;
};
template <>
struct std::hash<core::Ipv4Prefix> {
  std::size_t operator()(const core::Ipv4Prefix& p) const noexcept {
    return std::hash<core::Ipv4Address>{}(p.network()) ^ p.length();
  }
};
template <>
struct std::hash<core::Ipv6Prefix> {
  std::size_t operator()(const core::Ipv6Prefix& p) const noexcept {
    return std::hash<core::Ipv6Address>{}(p.network()) ^ p.length();
  }
};
