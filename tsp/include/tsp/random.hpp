// Random bytes for SASL nonces, injected so that sessions stay deterministic under test.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>

namespace tsp {

// Fills the span with unpredictable bytes. Called from the session's thread only.
using RandomSource = std::function<void(std::span<std::byte>)>;

// Crypto++ AutoSeededRandomPool, seeded from the operating system when first used. This is the
// one place in the library that reaches outside the process (the OS RNG); daemons pass it in,
// tests inject bytes. Without OS entropy the process aborts rather than issue guessable nonces.
RandomSource system_random_source();

// The bytes read as one big-endian unsigned number, in decimal without leading zeros ("0" for
// all zeros). DIGEST-MD5 nonces are written this way: digits need no quoting, and 16 bytes keep
// 128 bits of entropy (up to 39 digits).
std::string decimal_from_bytes(std::span<const std::byte> bytes);

// decimal_from_bytes of `count` fresh bytes from the source.
std::string random_decimal(const RandomSource& random, std::size_t count = 16);

}  // namespace tsp
