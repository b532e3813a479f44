// Address and prefix parsing and formatting.
#include "core/address.hpp"

#include <fmt/format.h>
#include <ostream>

namespace core {
namespace {

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits "addr/len" and parses len as a decimal 0..max without sign or leading zeros.
Result<std::pair<std::string_view, unsigned>> split_prefix(std::string_view text,
                                                           unsigned max) noexcept {
  if (text.empty()) return Errc::Empty;
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return Errc::BadPrefixLength;
  const auto len_text = text.substr(slash + 1);
  if (len_text.empty() || len_text.size() > 3) return Errc::BadPrefixLength;
  if (len_text.size() > 1 && len_text[0] == '0') return Errc::BadPrefixLength;
  unsigned len = 0;
  for (char c : len_text) {
    if (!is_digit(c)) return Errc::BadPrefixLength;
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len > max) return Errc::BadPrefixLength;
  return std::pair{text.substr(0, slash), len};
}

}  // namespace

Result<Ipv4Address> Ipv4Address::parse(std::string_view text) noexcept {
  if (text.empty()) return Errc::Empty;
  std::uint32_t value = 0;
  int fields = 0;
  std::size_t i = 0;
  while (true) {
    if (i >= text.size() || !is_digit(text[i])) {
      return i < text.size() && text[i] != '.' ? Errc::BadCharacter : Errc::BadFieldCount;
    }
    const std::size_t start = i;
    unsigned octet = 0;
    while (i < text.size() && is_digit(text[i])) {
      octet = octet * 10 + static_cast<unsigned>(text[i] - '0');
      if (octet > 255) return Errc::FieldOutOfRange;
      ++i;
    }
    if (i - start > 1 && text[start] == '0') return Errc::LeadingZero;
    value = (value << 8) | octet;
    if (++fields == 4) break;
    if (i >= text.size()) return Errc::BadFieldCount;
    if (text[i] != '.') return Errc::BadCharacter;
    ++i;
  }
  if (i != text.size()) return text[i] == '.' ? Errc::BadFieldCount : Errc::BadCharacter;
  return Ipv4Address{value};
}

namespace {

// Decimal 0..255 at p; returns the end.
char* put_decimal(char* p, unsigned v) noexcept {
  if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
  if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
  *p++ = static_cast<char>('0' + v % 10);
  return p;
}

// Lower-case hex without leading zeros, 0..0xffff at p; returns the end.
char* put_hex(char* p, unsigned v) noexcept {
  constexpr char kDigits[] = "0123456789abcdef";
  int shift = 12;
  while (shift > 0 && (v >> shift) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) *p++ = kDigits[(v >> shift) & 0xf];
  return p;
}

char* put_dotted_quad(char* p, std::uint32_t v) noexcept {
  for (int shift = 24; shift >= 0; shift -= 8) {
    p = put_decimal(p, (v >> shift) & 0xff);
    if (shift) *p++ = '.';
  }
  return p;
}

}  // namespace

std::string_view Ipv4Address::to_chars(Text& out) const noexcept {
  char* end = put_dotted_quad(out.data(), value_);
  return {out.data(), static_cast<std::size_t>(end - out.data())};
}

std::string Ipv4Address::to_string() const {
  Text text;
  return std::string{to_chars(text)};
}

Result<Ipv6Address> Ipv6Address::parse(std::string_view text) noexcept {
  if (text.empty()) return Errc::Empty;
  if (text.size() > 45) return Errc::BadFieldCount;  // longest form: 6 groups + dotted quad
  std::array<std::uint16_t, 8> groups{};
  int count = 0;    // groups filled
  int gap_at = -1;  // index in groups where "::" stands
  std::size_t i = 0;

  if (text.starts_with("::")) {
    gap_at = 0;
    i = 2;
    if (i == text.size()) return Ipv6Address{};
  } else if (text[0] == ':') {
    return Errc::BadCompression;
  }

  while (i < text.size()) {
    // One group, or a trailing dotted quad.
    const std::size_t start = i;
    unsigned value = 0;
    while (i < text.size() && hex_value(text[i]) >= 0) {
      if (i - start == 4) return Errc::FieldOutOfRange;
      value = value * 16 + static_cast<unsigned>(hex_value(text[i]));
      ++i;
    }
    if (i < text.size() && text[i] == '.') {
      auto v4 = Ipv4Address::parse(text.substr(start));
      if (!v4) return v4.error();
      if (count > 6) return Errc::BadFieldCount;
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(v4->to_uint() >> 16);
      groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(v4->to_uint());
      i = text.size();
      break;
    }
    if (i == start) return text[i] == ':' ? Errc::BadCompression : Errc::BadCharacter;
    if (count == 8) return Errc::BadFieldCount;
    groups[static_cast<std::size_t>(count++)] = static_cast<std::uint16_t>(value);
    if (i == text.size()) break;
    if (text[i] != ':') return Errc::BadCharacter;
    ++i;
    if (i < text.size() && text[i] == ':') {
      if (gap_at >= 0) return Errc::BadCompression;
      gap_at = count;
      ++i;
    } else if (i == text.size()) {
      return Errc::BadCompression;  // trailing single ':'
    }
  }

  Octets out{};
  if (gap_at < 0) {
    if (count != 8) return Errc::BadFieldCount;
  } else {
    // "::" stands for at least one zero group (RFC 4291: one or more).
    if (count > 7) return Errc::BadCompression;
    const int shift = 8 - count;
    for (int g = count - 1; g >= gap_at; --g) {
      groups[static_cast<std::size_t>(g + shift)] = groups[static_cast<std::size_t>(g)];
      groups[static_cast<std::size_t>(g)] = 0;
    }
  }
  for (std::size_t g = 0; g < 8; ++g) {
    out[2 * g] = static_cast<std::uint8_t>(groups[g] >> 8);
    out[2 * g + 1] = static_cast<std::uint8_t>(groups[g]);
  }
  return Ipv6Address{out};
}

std::string_view Ipv6Address::to_chars(Text& out) const noexcept {
  std::array<unsigned, 8> g{};
  for (std::size_t i = 0; i < 8; ++i) g[i] = (unsigned{bytes_[2 * i]} << 8) | bytes_[2 * i + 1];
  char* const begin = out.data();
  char* p = begin;
  const auto view = [&] { return std::string_view{begin, static_cast<std::size_t>(p - begin)}; };

  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad.
  if (is_v4_mapped()) {
    for (char c : std::string_view{"::ffff:"}) *p++ = c;
    p = put_dotted_quad(p, (g[6] << 16) | g[7]);
    return view();
  }
  // Section 4.2: compress the longest run of two or more zero groups, the first on a tie.
  int best_at = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[static_cast<std::size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[static_cast<std::size_t>(j)] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best_at = i;
      best_len = j - i;
    }
    i = j;
  }
  for (int i = 0; i < 8; ++i) {
    if (i == best_at) {
      *p++ = ':';
      *p++ = ':';
      i += best_len - 1;
      continue;
    }
    if (p != begin && p[-1] != ':') *p++ = ':';
    p = put_hex(p, g[static_cast<std::size_t>(i)]);
  }
  return view();
}

std::string Ipv6Address::to_string() const {
  Text text;
  return std::string{to_chars(text)};
}

Result<Ipv4Prefix> Ipv4Prefix::make(Ipv4Address network, unsigned length) noexcept {
  if (length > 32) return Errc::BadPrefixLength;
  Ipv4Prefix p{network, length};
  if ((network.to_uint() & ~p.mask()) != 0) return Errc::HostBitsSet;
  return p;
}

Result<Ipv4Prefix> Ipv4Prefix::parse(std::string_view text) noexcept {
  auto parts = split_prefix(text, 32);
  if (!parts) return parts.error();
  auto addr = Ipv4Address::parse(parts->first);
  if (!addr) return addr.error();
  return make(*addr, parts->second);
}

std::string Ipv4Prefix::to_string() const {
  return fmt::format("{}/{}", network_.to_string(), length_);
}

Ipv4Prefix::Iterator Ipv4Prefix::begin() const noexcept {
  return Iterator{network_.to_uint()};
}
Ipv4Prefix::Iterator Ipv4Prefix::end() const noexcept {
  return Iterator{std::uint64_t{network_.to_uint()} + size()};
}

Result<Ipv6Prefix> Ipv6Prefix::make(Ipv6Address network, unsigned length) noexcept {
  if (length > 128) return Errc::BadPrefixLength;
  Ipv6Prefix p{network, length};
  // A network address has no bits set past the length.
  const auto& b = network.bytes();
  for (unsigned bit = length; bit < 128; ++bit) {
    if (b[bit / 8] & (0x80u >> (bit % 8))) return Errc::HostBitsSet;
  }
  return p;
}

Result<Ipv6Prefix> Ipv6Prefix::parse(std::string_view text) noexcept {
  auto parts = split_prefix(text, 128);
  if (!parts) return parts.error();
  auto addr = Ipv6Address::parse(parts->first);
  if (!addr) return addr.error();
  return make(*addr, parts->second);
}

bool Ipv6Prefix::contains(const Ipv6Address& a) const noexcept {
  const auto& n = network_.bytes();
  const auto& x = a.bytes();
  const unsigned full = length_ / 8;
  for (unsigned i = 0; i < full; ++i)
    if (n[i] != x[i]) return false;
  if (const unsigned rem = length_ % 8; rem != 0) {
    const auto m = static_cast<std::uint8_t>(0xff << (8 - rem));
    if ((n[full] & m) != (x[full] & m)) return false;
  }
  return true;
}

std::string Ipv6Prefix::to_string() const {
  return fmt::format("{}/{}", network_.to_string(), length_);
}

Ipv6Prefix::Iterator Ipv6Prefix::begin() const noexcept {
  return {network_, length_, false};
}
Ipv6Prefix::Iterator Ipv6Prefix::end() const noexcept {
  return {network_, length_, true};
}

Ipv6Prefix::Iterator& Ipv6Prefix::Iterator::operator++() noexcept {
  // Add one to the host bits; a carry into the network bits means we are past the end, where
  // the host bits have wrapped back to zero and the address equals the network again.
  auto b = current_.bytes();
  for (int bit = 127; bit >= static_cast<int>(length_); --bit) {
    const auto idx = static_cast<std::size_t>(bit / 8);
    const auto m = static_cast<std::uint8_t>(0x80u >> (bit % 8));
    b[idx] = static_cast<std::uint8_t>(b[idx] ^ m);
    if (b[idx] & m) {  // 0 -> 1: no carry
      current_ = Ipv6Address{b};
      return *this;
    }
  }
  current_ = Ipv6Address{b};
  end_ = true;
  return *this;
}

std::ostream& operator<<(std::ostream& os, const Ipv4Address& a) {
  return os << a.to_string();
}
std::ostream& operator<<(std::ostream& os, const Ipv6Address& a) {
  return os << a.to_string();
}
std::ostream& operator<<(std::ostream& os, const Ipv4Prefix& p) {
  return os << p.to_string();
}
std::ostream& operator<<(std::ostream& os, const Ipv6Prefix& p) {
  return os << p.to_string();
}

}  // namespace core

std::size_t std::hash<core::Ipv6Address>::operator()(const core::Ipv6Address& a) const noexcept {
  // FNV-1a over the 16 bytes: good spread, no allocation.
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : a.bytes()) {
    h ^= b;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h);
}
