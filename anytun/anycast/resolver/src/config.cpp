// Reading /anycast/resolver: typed fields with their ranges, then the rules that relate them.
#include "anycast_resolver/config.hpp"

#include <fmt/core.h>

namespace anycast_resolver {

namespace {

using platform::ObjectReader;

constexpr std::size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) minus the NUL

// An error at a path below the reader's own keys (an array element).
void error_at(ObjectReader& r, std::string path, std::string message) {
  r.errors().push_back(platform::ConfigError{std::move(path), std::move(message)});
}

// Ranges in which no address is ever resolved (cache.hpp: resolvable()); a prefix inside one of
// them is a mistake, not a no-op.
bool holds_no_global_unicast(const core::Ipv6Prefix& p) {
  for (const char* text : {"ff00::/8", "fe80::/10", "::ffff:0:0/96", "::1/128", "::/128"})
    if (core::Ipv6Prefix::parse(text).value().contains(p)) return true;
  return false;
}

std::vector<core::Ipv6Prefix> read_prefixes(ObjectReader& r) {
  std::vector<core::Ipv6Prefix> out;
  const auto* raw = r.raw("prefixes");
  if (!raw) return out;
  const auto* array = raw->if_array();
  if (!array) {
    r.error("prefixes", "must be an array of IPv6 prefixes");
    return out;
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto where = platform::json_pointer_child(r.path_of("prefixes"), i);
    const auto* text = (*array)[i].if_string();
    const auto prefix = core::Ipv6Prefix::parse(text ? std::string_view{*text} : "");
    if (!text || !prefix) {
      error_at(r, where, "must be an IPv6 prefix such as 2001:db8:a::/48");
      continue;
    }
    if (holds_no_global_unicast(*prefix)) {
      error_at(r, where,
               fmt::format("{} holds no global unicast address (multicast, link-local, "
                           "IPv4-mapped, loopback or unspecified)",
                           prefix->to_string()));
      continue;
    }
    bool repeated = false;
    for (const auto& other : out) repeated = repeated || other == *prefix;
    if (repeated) {
      error_at(r, where, fmt::format("{} is listed earlier", prefix->to_string()));
      continue;
    }
    out.push_back(*prefix);
  }
  return out;
}

// Returns whether the value was read (so the rules that use it may check it).
bool read_methods(ObjectReader& r, Methods& out) {
  const auto* raw = r.raw("methods");
  if (!raw) return true;
  const auto* array = raw->if_array();
  if (!array || array->empty()) {
    r.error("methods", R"(must be a non-empty array of "udp" and "icmp")");
    return false;
  }
  Methods m{.udp = false, .icmp = false};
  bool ok = true;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto where = platform::json_pointer_child(r.path_of("methods"), i);
    const auto* text = (*array)[i].if_string();
    bool* flag = nullptr;
    if (text && *text == "udp") flag = &m.udp;
    if (text && *text == "icmp") flag = &m.icmp;
    if (!flag) {
      error_at(r, where, R"(must be "udp" or "icmp")");
      ok = false;
    } else if (*flag) {
      error_at(r, where, fmt::format("\"{}\" is listed earlier", std::string_view{*text}));
      ok = false;
    } else {
      *flag = true;
    }
  }
  if (ok) out = m;
  return ok;
}

void check_socket_path(ObjectReader& r, std::string_view key, const std::string& path) {
  if (path.empty() || path.front() != '/' || path.size() > kMaxSocketPath)
    r.error(key, fmt::format("must be an absolute path of at most {} bytes", kMaxSocketPath));
}

Config read_resolver(ObjectReader& r) {
  Config c;
  if (!r.is_object()) return c;
  c.prefixes = read_prefixes(r);
  c.probe_all = r.optional_boolean("probe_all").value_or(false);
  bool policy_read = true;
  if (r.has("policy")) {
    const auto before = r.errors().size();
    c.policy = r.one_of<Policy>("policy", {{"probe", Policy::Probe}, {"secure", Policy::Secure}});
    policy_read = r.errors().size() == before;
  }
  const bool methods_read = read_methods(r, c.methods);
  if (policy_read && methods_read && c.policy == Policy::Secure && !c.methods.udp)
    r.error("methods", R"(policy "secure" needs "udp")");
  c.port = r.optional_integer<std::uint16_t>("port", 1, 65535).value_or(c.port);
  c.source = r.optional_ipv6("source");
  if (c.source &&
      (c.source->is_multicast() || c.source->is_link_local() || c.source->is_v4_mapped()))
    r.error("source",
            fmt::format("{} is not a global unicast address (or ::)", c.source->to_string()));
  c.probe_timeout = std::chrono::milliseconds{
      r.optional_integer<std::uint32_t>("probe_timeout_ms", 10, 10'000).value_or(250)};
  c.probe_attempts = r.optional_integer<unsigned>("probe_attempts", 1, 10).value_or(3);
  c.negative_ttl =
      std::chrono::seconds{r.optional_integer<std::uint32_t>("negative_ttl", 1, 3600).value_or(30)};
  c.probe_ttl =
      std::chrono::seconds{r.optional_integer<std::uint32_t>("probe_ttl", 1, 3600).value_or(16)};
  c.answer_ttl = std::chrono::milliseconds{
      r.optional_integer<std::uint32_t>("answer_ttl_ms", 0, 60'000).value_or(1000)};
  c.idle_timeout = std::chrono::seconds{
      r.optional_integer<std::uint32_t>("idle_timeout", 1, 86'400).value_or(60)};
  c.liveness_interval = std::chrono::milliseconds{
      r.optional_integer<std::uint32_t>("liveness_interval_ms", 100, 60'000).value_or(1000)};
  c.liveness_misses = r.optional_integer<unsigned>("liveness_misses", 1, 100).value_or(3);
  c.max_entries =
      r.optional_integer<std::size_t>("max_entries", 1, 1'000'000).value_or(c.max_entries);
  c.max_waiters =
      r.optional_integer<std::size_t>("max_waiters", 1, 100'000).value_or(c.max_waiters);
  if (auto s = r.optional_string("socket")) {
    c.socket = std::move(*s);
    check_socket_path(r, "socket", c.socket);
  }
  if (auto s = r.optional_string("control_socket")) {
    c.control_socket = std::move(*s);
    check_socket_path(r, "control_socket", c.control_socket);
  }
  if (c.socket == c.control_socket)
    r.error("control_socket", "must differ from socket (the query socket)");
  return c;
}

}  // namespace

std::string_view to_string(Policy policy) noexcept {
  return policy == Policy::Probe ? "probe" : "secure";
}

platform::ConfigResult<Config> parse_config_document(std::string_view json) {
  return platform::parse_config(json, [](ObjectReader& root) {
    for (const char* other : {"dstm_server", "tep", "client", "web", "anytun", "system"})
      root.ignore(other);
    auto section = root.optional_object("anycast", [](ObjectReader& anycast) {
      anycast.ignore("member");
      return anycast.optional_object("resolver", read_resolver).value_or(Config{});
    });
    return section.value_or(Config{});
  });
}

}  // namespace anycast_resolver
