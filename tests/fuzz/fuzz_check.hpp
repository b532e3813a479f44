// Shared helpers for the fuzz targets: an invariant check that holds in every build type, and
// byte-span comparisons.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>

// A failed invariant aborts, which libFuzzer reports as a crash (NDEBUG does not disable it).
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

namespace fuzz {

using Bytes = std::span<const std::byte>;

// Whether `part` lies inside `whole` (an empty span lies anywhere).
inline bool within(Bytes part, Bytes whole) {
  if (part.empty()) return true;
  const std::less_equal<const std::byte*> le;
  return le(whole.data(), part.data()) &&
         le(std::to_address(part.end()), std::to_address(whole.end()));
}

inline bool same(Bytes a, Bytes b) {
  return std::ranges::equal(a, b);
}

// Whether a received checksum field verifies, given the value computed for the data: equal, or,
// when the computed value is 0x0000, its one's-complement twin 0xffff (RFC 1071: -0 == +0).
inline bool verifies_as(std::uint16_t computed, std::uint16_t received) {
  return received == computed || (computed == 0 && received == 0xffff);
}

}  // namespace fuzz
