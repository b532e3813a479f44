// Reading /anycast/member: strict keys, every error at its JSON pointer.
#include "anycast_member/config.hpp"

#include <algorithm>
#include <set>

#include <fmt/core.h>

namespace anycast_member {
namespace {

using platform::ObjectReader;

constexpr std::size_t kMaxAnycast = 64;
constexpr std::size_t kMaxSocketPath = 107;    // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr std::size_t kMaxInterfaceName = 15;  // IFNAMSIZ minus the NUL

const auto kLoopback = core::Ipv6Address::parse("::1").value();

// An address a member answers for or answers from: one that routes beyond the link.
bool is_global_unicast(const core::Ipv6Address& a) {
  return !a.is_unspecified() && !a.is_multicast() && !a.is_link_local() && !a.is_v4_mapped() &&
         a != kLoopback;
}

// An error at a path below the reader's own keys (an array element).
void error_at(ObjectReader& r, std::string path, std::string message) {
  r.errors().push_back(platform::ConfigError{std::move(path), std::move(message)});
}

std::vector<core::Ipv6Address> read_anycast(ObjectReader& r) {
  std::vector<core::Ipv6Address> out;
  const auto* array = r.has("anycast") ? r.raw("anycast")->if_array() : nullptr;
  const auto texts = r.strings("anycast");  // reports a missing key or a wrong type
  if (!array || texts.size() != array->size()) return out;
  if (texts.empty() || texts.size() > kMaxAnycast) {
    r.error("anycast", fmt::format("must list 1..{} IPv6 addresses", kMaxAnycast));
    return out;
  }
  const auto base = r.path_of("anycast");
  std::vector<std::size_t> at;  // the index of each address of `out` in the array
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto where = platform::json_pointer_child(base, i);
    const auto a = core::Ipv6Address::parse(texts[i]);
    if (!a) {
      error_at(r, where, fmt::format("invalid IPv6 address ({})", a.error().message()));
      continue;
    }
    if (!is_global_unicast(*a)) {
      error_at(r, where, fmt::format("{} is not a global unicast address", a->to_string()));
      continue;
    }
    if (const auto first = std::find(out.begin(), out.end(), *a); first != out.end()) {
      error_at(r, where,
               fmt::format("{} is listed twice (also at {})", a->to_string(),
                           platform::json_pointer_child(
                               base, at[static_cast<std::size_t>(first - out.begin())])));
      continue;
    }
    out.push_back(*a);
    at.push_back(i);
  }
  return out;
}

Join read_join(ObjectReader& r) {
  Join j;
  j.interface = r.string("interface");
  const bool valid_chars = std::all_of(j.interface.begin(), j.interface.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
  if (r.has("interface") &&
      (j.interface.empty() || j.interface.size() > kMaxInterfaceName || !valid_chars))
    r.error("interface", "must be 1..15 characters of [A-Za-z0-9._-]");
  return j;
}

Config read_member(ObjectReader& r) {
  Config c;
  if (!r.is_object()) return c;
  c.anycast = read_anycast(r);
  const auto errors_before = r.errors().size();
  c.unicast = r.ipv6("unicast");
  if (r.errors().size() == errors_before) {  // present and an address
    if (!is_global_unicast(c.unicast))
      r.error("unicast", fmt::format("{} is not a global unicast address", c.unicast.to_string()));
    else if (std::find(c.anycast.begin(), c.anycast.end(), c.unicast) != c.anycast.end())
      r.error("unicast", fmt::format("{} is one of the anycast addresses", c.unicast.to_string()));
  }
  if (auto listen = r.optional_ipv6("listen")) {
    c.listen = *listen;
    // The socket is IPv6-only and has no scope id to bind a link-local address with.
    if (c.listen.is_multicast() || c.listen.is_link_local() || c.listen.is_v4_mapped())
      r.error("listen",
              fmt::format("{} cannot be bound: use :: or a unicast address", c.listen.to_string()));
  }
  c.port = r.optional_integer<std::uint16_t>("port", 0, 65535).value_or(c.port);
  c.join = r.optional_object("join", read_join);
  c.answer_ttl = r.optional_integer<std::uint16_t>("answer_ttl", 1, 3600).value_or(c.answer_ttl);
  c.max_pending =
      r.optional_integer<std::size_t>("max_pending", 1, 1'000'000).value_or(c.max_pending);
  c.probes_per_second = r.optional_integer<std::uint32_t>("probes_per_second", 1, 1'000'000)
                            .value_or(c.probes_per_second);
  c.control_socket = r.optional_string("control_socket").value_or(c.control_socket);
  if (c.control_socket.empty() || c.control_socket.front() != '/' ||
      c.control_socket.size() > kMaxSocketPath)
    r.error("control_socket",
            fmt::format("must be an absolute path of at most {} bytes", kMaxSocketPath));
  return c;
}

}  // namespace

platform::ConfigResult<Config> parse_config_document(std::string_view json) {
  return platform::parse_config(json, [](ObjectReader& root) {
    for (const char* other : {"dstm_server", "tep", "client", "web", "anytun", "system"})
      root.ignore(other);
    return root.object("anycast", [](ObjectReader& anycast) {
      anycast.ignore("resolver");
      return anycast.object("member", read_member);
    });
  });
}

}  // namespace anycast_member
