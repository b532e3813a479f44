// Endpoint text forms: "a.b.c.d:port" and "[v6]:port".
#include "relay/endpoint.hpp"

#include <charconv>

namespace relay {

Endpoint Endpoint::v4(core::Ipv4Address a, std::uint16_t port) noexcept {
  core::Ipv6Address::Octets b{};
  b[10] = 0xff;
  b[11] = 0xff;
  const auto v4 = a.bytes();
  for (std::size_t i = 0; i < 4; ++i) b[12 + i] = v4[i];
  return Endpoint{core::Ipv6Address{b}, port};
}

core::Ipv4Address Endpoint::v4_address() const noexcept {
  if (!is_v4()) return core::Ipv4Address{};
  const auto& b = address.bytes();
  return core::Ipv4Address{std::array<std::uint8_t, 4>{b[12], b[13], b[14], b[15]}};
}

std::string Endpoint::to_string() const {
  if (is_v4()) return v4_address().to_string() + ":" + std::to_string(port);
  return "[" + address.to_string() + "]:" + std::to_string(port);
}

std::optional<Endpoint> Endpoint::parse(std::string_view text) noexcept {
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535 || (port_text.size() > 1 && port_text.front() == '0'))
    return std::nullopt;
  if (bracketed) {
    const auto a = core::Ipv6Address::parse(host);
    // A mapped address is written in the IPv4 form, so "[::ffff:...]" is not a to_string() form.
    if (!a || a->is_v4_mapped()) return std::nullopt;
    return Endpoint{*a, static_cast<std::uint16_t>(port)};
  }
  const auto a = core::Ipv4Address::parse(host);
  if (!a) return std::nullopt;
  return v4(*a, static_cast<std::uint16_t>(port));
}

}  // namespace relay
