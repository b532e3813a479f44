// Helpers for the anycast tests: byte strings from octets, addresses, a deterministic random
// source and an injected clock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

#include "anycast/rr.hpp"
#include "anycast/wire.hpp"
#include "core/address.hpp"

namespace anycast_test {

using Datagram = std::vector<std::byte>;

inline Datagram bytes(std::initializer_list<int> octets) {
  Datagram out;
  for (int o : octets) out.push_back(static_cast<std::byte>(o));
  return out;
}

inline Datagram cat(Datagram a, const Datagram& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline core::Ipv6Address addr(std::string_view text) {
  return core::Ipv6Address::parse(text).value();
}

inline Datagram octets(const core::Ipv6Address& a) {
  Datagram out;
  for (auto b : a.bytes()) out.push_back(std::byte{b});
  return out;
}

// The datagram with one byte replaced.
inline Datagram with(Datagram d, std::size_t at, int value) {
  d.at(at) = static_cast<std::byte>(value);
  return d;
}

// Counts up from `seed`: distinct, reproducible "random" bytes.
inline anycast::Random counter_random(std::uint8_t seed = 1) {
  return [n = seed](std::span<std::uint8_t> out) mutable {
    for (auto& b : out) b = n++;
  };
}

// A fixed origin for the injected clock.
inline const anycast::Time kT0 = anycast::Time{} + std::chrono::hours{1000};

inline anycast::Time at(std::chrono::milliseconds since_t0) {
  return kT0 + since_t0;
}

}  // namespace anycast_test
