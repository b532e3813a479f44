// Integer mixing shared by the hash tables and flow hashes.
#pragma once

#include <cstdint>

namespace core {

// MurmurHash3's 32-bit finaliser: every input bit reaches every output bit, and it is a bijection
// (xor-shifts and odd multipliers are invertible), so equal outputs mean equal inputs.
constexpr std::uint32_t mix32(std::uint32_t h) noexcept {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

}  // namespace core
