// Incremental Internet checksum update (RFC 1624).
#include "core/checksum.hpp"

#include <array>
#include <bit>
#include <cassert>
#include <cstring>

namespace core {
namespace {

// RFC 1624 §3, eqn. 3, with the old and new contributions already summed: working on ~HC and
// adding ~m + m' keeps every intermediate in one's-complement arithmetic, which avoids the
// 0x0000/0xffff ambiguity of eqn. 2 (HC' = HC - ~m - m').
std::uint16_t update(std::uint16_t checksum, std::uint16_t old_sum,
                     std::uint16_t new_sum) noexcept {
  return Checksum{}
      .add_u16(static_cast<std::uint16_t>(~checksum & 0xffff))
      .add_u16(static_cast<std::uint16_t>(~old_sum & 0xffff))
      .add_u16(new_sum)
      .finish();
}

// The one's-complement sum contributed by `field` when it starts at `offset` in the summed data.
// A field at an odd offset contributes its bytes byte-swapped (RFC 1071 §2(B): the sum is
// byte-order independent), which is what leading with a zero byte produces.
std::uint16_t contribution(std::size_t offset, Bytes field) noexcept {
  Checksum c;
  if (offset % 2 != 0) c.add_u8(0);
  return c.add(field).sum();
}

// The sum of `data` in native-order 64-bit words with end-around carry, optionally copying each
// word on the way. The one's-complement sum is independent of byte order (RFC 1071 §2(B)): the
// caller folds the result and swaps the bytes of the fold on a little-endian host. A tail of
// fewer than 8 bytes is summed as a word padded with zeros, which is RFC 1071's odd-byte rule
// (data starts at an even offset, so the padding follows the last byte).
template <bool Copy>
std::uint64_t sum_words(Bytes data, MutableBytes copy_to) noexcept {
  std::uint64_t acc = 0;
  std::uint64_t carries = 0;
  std::size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, data.subspan(i, 8).data(), 8);
    if constexpr (Copy) std::memcpy(copy_to.subspan(i, 8).data(), &w, 8);
    acc += w;
    carries += acc < w ? 1 : 0;
  }
  if (i < data.size()) {
    const std::size_t n = data.size() - i;
    std::array<std::byte, 8> tail{};
    std::memcpy(tail.data(), data.subspan(i).data(), n);
    if constexpr (Copy) std::memcpy(copy_to.subspan(i, n).data(), tail.data(), n);
    std::uint64_t w = 0;
    std::memcpy(&w, tail.data(), 8);
    acc += w;
    carries += acc < w ? 1 : 0;
  }
  acc += carries;
  return acc + (acc < carries ? 1 : 0);
}

}  // namespace

std::uint16_t bulk_sum(Bytes data, MutableBytes copy_to) noexcept {
  assert(copy_to.empty() || copy_to.size() >= data.size());
  std::uint64_t s = copy_to.empty() ? sum_words<false>(data, {}) : sum_words<true>(data, copy_to);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  auto folded = static_cast<std::uint16_t>(s);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<std::uint16_t>((folded >> 8) | ((folded & 0xff) << 8));
  }
  return folded;
}

std::uint16_t checksum_update16(std::uint16_t checksum, std::uint16_t old_value,
                                std::uint16_t new_value) noexcept {
  return update(checksum, old_value, new_value);
}

std::uint16_t checksum_update32(std::uint16_t checksum, std::uint32_t old_value,
                                std::uint32_t new_value) noexcept {
  std::array<std::byte, 4> o{}, n{};
  store_be32(o, old_value);
  store_be32(n, new_value);
  return checksum_replace(checksum, 0, o, n);
}

std::uint16_t checksum_replace(std::uint16_t checksum, std::size_t offset, Bytes old_field,
                               Bytes new_field) noexcept {
  assert(old_field.size() == new_field.size());
  return update(checksum, contribution(offset, old_field), contribution(offset, new_field));
}

}  // namespace core
