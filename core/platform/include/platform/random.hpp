// Cryptographically random bytes for keys, nonces and identifiers (getrandom(2)).
#pragma once

#include <cstdint>
#include <span>

namespace platform {

// Fills `out`; aborts if the kernel cannot give randomness (nonces and keys would be guessable).
void random_bytes(std::span<std::uint8_t> out) noexcept;

}  // namespace platform
