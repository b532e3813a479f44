// Default random source (Crypto++) and decimal nonce text.
#include "tsp/random.hpp"

#include <cstdlib>
#include <memory>
#include <vector>

#include <cryptopp/osrng.h>

namespace tsp {

RandomSource system_random_source() {
  // One pool per source, shared by its copies and created on first use, so that building a
  // configuration does not reach the OS. Sources are used from one thread (the sessions').
  auto pool = std::make_shared<std::unique_ptr<CryptoPP::AutoSeededRandomPool>>();
  return [pool](std::span<std::byte> out) {
    try {
      if (!*pool) *pool = std::make_unique<CryptoPP::AutoSeededRandomPool>();
      // Crypto++ writes unsigned chars; std::byte and unsigned char may alias.
      (*pool)->GenerateBlock(reinterpret_cast<CryptoPP::byte*>(out.data()), out.size());
    } catch (const CryptoPP::Exception&) {
      // No OS entropy: nonces would be guessable, which is worse than not running.
      std::abort();
    }
  };
}

std::string decimal_from_bytes(std::span<const std::byte> bytes) {
  // Repeated division by 10 of the big-endian number held in `digits` (base 256).
  std::vector<unsigned> number;
  number.reserve(bytes.size());
  for (auto b : bytes) number.push_back(std::to_integer<unsigned>(b));
  std::string out;
  bool nonzero = true;
  while (nonzero) {
    unsigned remainder = 0;
    nonzero = false;
    for (auto& d : number) {
      const unsigned cur = remainder * 256 + d;
      d = cur / 10;
      remainder = cur % 10;
      if (d != 0) nonzero = true;
    }
    out.insert(out.begin(), static_cast<char>('0' + remainder));
  }
  return out;
}

std::string random_decimal(const RandomSource& random, std::size_t count) {
  std::vector<std::byte> bytes(count);
  random(bytes);
  return decimal_from_bytes(bytes);
}

}  // namespace tsp
