// Versions, tunnel types, actions, mechanisms, VERSION and CAPABILITY lines.
#include "tsp/protocol.hpp"

#include "text.hpp"

namespace tsp {

std::string Version::to_string() const {
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) about
  // `"." + std::to_string(...)`.
  std::string out = std::to_string(major);
  out += '.';
  out += std::to_string(minor);
  if (has_patch) {
    out += '.';
    out += std::to_string(patch);
  }
  return out;
}

bool is_supported_version(const Version& v, bool allow_v1) noexcept {
  if (v.major == 2 && v.minor == 0 && v.has_patch) return v.patch <= 2;
  if (v.major == 1 && v.minor == 0) return allow_v1;
  return false;
}

Result<Version> parse_version_line(std::string_view line) {
  constexpr std::string_view kKey = "VERSION=";
  if (!detail::istarts_with(line, kKey)) return Errc::BadVersion;
  auto rest = line.substr(kKey.size());
  std::uint8_t parts[3] = {0, 0, 0};
  int count = 0;
  while (true) {
    const auto dot = rest.find('.');
    const auto field = rest.substr(0, dot);
    if (field.size() > 3) return Errc::BadVersion;
    const auto value = detail::parse_decimal(field, 255);
    if (!value || count == 3) return Errc::BadVersion;
    parts[count++] = static_cast<std::uint8_t>(*value);
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
  }
  if (count < 2) return Errc::BadVersion;
  return Version{parts[0], parts[1], parts[2], count == 3};
}

std::string version_line(const Version& v) {
  return "VERSION=" + v.to_string();
}

std::string_view tunnel_type_name(TunnelType t) noexcept {
  switch (t) {
    case TunnelType::V6V4:
      return "v6v4";
    case TunnelType::V6UdpV4:
      return "v6udpv4";
    case TunnelType::V6AnyV4:
      return "v6anyv4";
    case TunnelType::V4V6:
      return "v4v6";
    case TunnelType::Any:
      return "*";
  }
  return "";
}

std::optional<TunnelType> parse_tunnel_type(std::string_view s) noexcept {
  for (auto t : {TunnelType::V6V4, TunnelType::V6UdpV4, TunnelType::V6AnyV4, TunnelType::V4V6,
                 TunnelType::Any}) {
    if (detail::iequals(s, tunnel_type_name(t))) return t;
  }
  return std::nullopt;
}

std::optional<std::string_view> tunnel_capability_name(TunnelType t) noexcept {
  switch (t) {
    case TunnelType::V6V4:
      return "V6V4";
    case TunnelType::V6UdpV4:
      return "V6UDPV4";
    case TunnelType::V4V6:
      return "V4V6";
    case TunnelType::V6AnyV4:
    case TunnelType::Any:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string_view tunnel_action_name(TunnelAction a) noexcept {
  switch (a) {
    case TunnelAction::Create:
      return "create";
    case TunnelAction::Info:
      return "info";
    case TunnelAction::Accept:
      return "accept";
    case TunnelAction::Reject:
      return "reject";
    case TunnelAction::Delete:
      return "delete";
    case TunnelAction::Query:
      return "query";
    case TunnelAction::Heartbeat:
      return "heartbeat";
  }
  return "";
}

std::optional<TunnelAction> parse_tunnel_action(std::string_view s) noexcept {
  for (auto a :
       {TunnelAction::Create, TunnelAction::Info, TunnelAction::Accept, TunnelAction::Reject,
        TunnelAction::Delete, TunnelAction::Query, TunnelAction::Heartbeat}) {
    if (detail::iequals(s, tunnel_action_name(a))) return a;
  }
  return std::nullopt;
}

std::string_view mechanism_name(Mechanism m) noexcept {
  switch (m) {
    case Mechanism::Anonymous:
      return "ANONYMOUS";
    case Mechanism::Plain:
      return "PLAIN";
    case Mechanism::DigestMd5:
      return "DIGEST-MD5";
  }
  return "";
}

std::optional<Mechanism> parse_mechanism(std::string_view s) noexcept {
  for (auto m : {Mechanism::Anonymous, Mechanism::Plain, Mechanism::DigestMd5}) {
    if (detail::iequals(s, mechanism_name(m))) return m;
  }
  return std::nullopt;
}

std::string capability_line(const Capability& c) {
  std::string out = "CAPABILITY";
  for (auto t : c.tunnels) {
    if (auto name = tunnel_capability_name(t)) {
      out += " TUNNEL=";
      out += *name;
    }
  }
  for (auto m : c.mechanisms) {
    out += " AUTH=";
    out += mechanism_name(m);
  }
  return out;
}

Result<Capability> parse_capability_line(std::string_view line) {
  constexpr std::string_view kKey = "CAPABILITY";
  if (!line.starts_with(kKey)) return Errc::BadCapability;
  auto rest = line.substr(kKey.size());
  if (!rest.empty() && rest.front() != ' ') return Errc::BadCapability;
  Capability cap;
  while (!rest.empty()) {
    const auto space = rest.find(' ');
    const auto token = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
    const auto eq = token.find('=');
    if (eq == std::string_view::npos) continue;
    const auto key = token.substr(0, eq);
    const auto value = token.substr(eq + 1);
    if (key == "TUNNEL") {
      for (auto t : {TunnelType::V6V4, TunnelType::V6UdpV4, TunnelType::V4V6}) {
        if (value == *tunnel_capability_name(t)) cap.tunnels.push_back(t);
      }
    } else if (key == "AUTH") {
      if (auto m = parse_mechanism(value)) cap.mechanisms.push_back(*m);
    }
  }
  return cap;
}

}  // namespace tsp
