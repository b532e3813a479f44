// libFuzzer target: address and prefix text parsing. Whatever parses must format to text that
// parses back to the same value (parse(to_string(x)) == x) and formats the same again; addresses
// and prefixes made from the raw input bytes must round-trip through text too.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "core/address.hpp"

#include "fuzz_check.hpp"

namespace {

// parse(to_string(x)) == x, and the canonical text is a fixed point.
template <typename T>
void round_trip(const T& x) {
  const std::string text = x.to_string();
  const auto again = T::parse(text);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == x);
  FUZZ_CHECK(again->to_string() == text);
}

template <typename T>
void from_text(std::string_view text) {
  const auto x = T::parse(text);
  if (!x) {
    FUZZ_CHECK(x.error().category() == core::core_category());
    return;
  }
  round_trip(*x);
}

void prefixes_from_bytes(std::span<const std::uint8_t> b) {
  if (b.size() >= 5) {
    const core::Ipv4Address a{std::array<std::uint8_t, 4>{b[0], b[1], b[2], b[3]}};
    round_trip(a);
    if (const auto p = core::Ipv4Prefix::make(a, b[4] % 40u)) {
      round_trip(*p);
      FUZZ_CHECK(p->contains(p->network()) && p->contains(p->last()));
      FUZZ_CHECK(p->contains(*p));
    }
  }
  if (b.size() >= 17) {
    core::Ipv6Address::Octets o{};
    for (std::size_t i = 0; i < o.size(); ++i) o[i] = b[i];
    const core::Ipv6Address a{o};
    round_trip(a);
    if (const auto p = core::Ipv6Prefix::make(a, b[16] % 140u)) {
      round_trip(*p);
      FUZZ_CHECK(p->contains(p->network()) && p->contains(*p));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = std::span{data, size};
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>(bytes[i]);
  from_text<core::Ipv4Address>(text);
  from_text<core::Ipv6Address>(text);
  from_text<core::Ipv4Prefix>(text);
  from_text<core::Ipv6Prefix>(text);
  prefixes_from_bytes(bytes);
  return 0;
}
