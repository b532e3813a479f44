// A transport endpoint (address and port) of either family, as a plain value: IPv4 is held as an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d), the way a dual-stack socket reports it.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/address.hpp"

namespace relay {

struct Endpoint {
  core::Ipv6Address address;  // IPv4 as ::ffff:a.b.c.d
  std::uint16_t port = 0;

  static Endpoint v4(core::Ipv4Address a, std::uint16_t port) noexcept;
  static Endpoint v6(const core::Ipv6Address& a, std::uint16_t port) noexcept {
    return Endpoint{a, port};
  }
  bool is_v4() const noexcept { return address.is_v4_mapped(); }
  // The IPv4 address of a v4 endpoint (0.0.0.0 for a v6 one).
  core::Ipv4Address v4_address() const noexcept;
  bool is_unspecified() const noexcept {
    return address.is_unspecified() || (is_v4() && v4_address().is_unspecified());
  }
  // "192.0.2.1:4444", "[2001:db8::1]:4444".
  std::string to_string() const;
  // The forms to_string() writes; nullopt otherwise (no names, no scope ids, port 0..65535).
  static std::optional<Endpoint> parse(std::string_view text) noexcept;

  auto operator<=>(const Endpoint&) const noexcept = default;
};

}  // namespace relay
