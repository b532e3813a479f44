// Little-endian loads and stores for the on-disk formats (GPT, FAT) that use that order. The
// caller has checked the span's length (asserted).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "core/bytes.hpp"

namespace fwimage {

inline std::uint16_t le16(core::Bytes b, std::size_t at) noexcept {
  assert(at + 2 <= b.size());
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(b[at]) |
                                    (std::to_integer<unsigned>(b[at + 1]) << 8));
}
inline std::uint32_t le32(core::Bytes b, std::size_t at) noexcept {
  return std::uint32_t{le16(b, at)} | (std::uint32_t{le16(b, at + 2)} << 16);
}
inline std::uint64_t le64(core::Bytes b, std::size_t at) noexcept {
  return std::uint64_t{le32(b, at)} | (std::uint64_t{le32(b, at + 4)} << 32);
}

}  // namespace fwimage
