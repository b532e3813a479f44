// Longest-prefix match from inner destination addresses to clients (MUX), over IPv4 and IPv6:
// the tunnel-mode routing table of a relay (draft-gsenger-anycast-relay-00 section 1.1.1.1;
// anytun's "-R" routes and synced route records).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"

namespace relay {

using Prefix = std::variant<core::Ipv4Prefix, core::Ipv6Prefix>;

struct Route {
  Prefix prefix;
  std::uint16_t mux = 0;
  bool operator==(const Route&) const = default;
};

// Lookups cost one hash probe per prefix length in use (at most 33 / 129), longest first, without
// allocating. A value type: copyable and movable. Not thread-safe.
class PrefixTable {
 public:
  // Adds or replaces (a prefix maps to one MUX; the last insert wins, as in anytun).
  void insert(const Prefix& prefix, std::uint16_t mux);
  // Whether it was present.
  bool erase(const Prefix& prefix) noexcept;
  // Removes every route to `mux`; returns how many.
  std::size_t erase_mux(std::uint16_t mux) noexcept;
  void clear() noexcept;

  std::optional<std::uint16_t> lookup(core::Ipv4Address a) const noexcept;
  std::optional<std::uint16_t> lookup(const core::Ipv6Address& a) const noexcept;
  // By the destination of an IPv4 or IPv6 packet (nullopt if it is neither or too short for its
  // header's destination field).
  std::optional<std::uint16_t> lookup_destination(core::Bytes ip_packet) const noexcept;

  std::size_t size() const noexcept;
  // Every route, IPv4 first, each family by prefix (for dumps and sync).
  std::vector<Route> routes() const;
  std::vector<Route> routes_of(std::uint16_t mux) const;

 private:
  // A prefix as a hash key: its network (host bits zero) and its length.
  struct Key4 {
    std::uint32_t network = 0;
    std::uint8_t length = 0;
    bool operator==(const Key4&) const = default;
  };
  struct Key6 {
    core::Ipv6Address network;
    std::uint8_t length = 0;
    bool operator==(const Key6&) const = default;
  };
  struct Hash {
    std::size_t operator()(const Key4& k) const noexcept;
    std::size_t operator()(const Key6& k) const noexcept;
  };
  // How many routes each length has, and the lengths that have any, longest first (what a
  // lookup walks).
  template <std::size_t Bits>
  struct Lengths {
    std::array<std::size_t, Bits + 1> count{};
    std::array<std::uint8_t, Bits + 1> in_use{};
    std::size_t used = 0;
    void add(std::uint8_t length) noexcept;
    void remove(std::uint8_t length) noexcept;
  };

  std::unordered_map<Key4, std::uint16_t, Hash> v4_;
  std::unordered_map<Key6, std::uint16_t, Hash> v6_;
  Lengths<32> lengths4_;
  Lengths<128> lengths6_;
};

}  // namespace relay
