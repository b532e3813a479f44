// Incremental Internet checksum update (RFC 1624).
#include "core/checksum.hpp"

#include <array>
#include <cassert>

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

}  // namespace

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
