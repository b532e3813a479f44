#include "tep_daemon/config.hpp"

#include <algorithm>
#include <set>

#include <fmt/core.h>

namespace tep_daemon {

namespace {

using platform::ObjectReader;

constexpr std::size_t kMaxSocketPath = 107;  // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr std::size_t kMaxInterfaceName = 15;

bool name_chars(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

// An error at a path below the reader's own keys (an array element, a sibling's field).
void error_at(ObjectReader& r, std::string path, std::string message) {
  r.errors().push_back(platform::ConfigError{std::move(path), std::move(message)});
}

// An IPv4 address a TEP may use as its own or as the keepalive address: one host.
void check_unicast(ObjectReader& r, std::string_view key, core::Ipv4Address a) {
  const auto first = static_cast<unsigned>(a.to_uint() >> 24);
  if (first == 0 || first == 127 || first >= 224)
    r.error(key, fmt::format("{} is not a unicast host address", a.to_string()));
}

ServerConfig read_server(ObjectReader& r) {
  ServerConfig s;
  s.address = r.string("address");
  if (r.has("address") && !core::Ipv6Address::parse(s.address) &&
      !core::Ipv4Address::parse(s.address))
    r.error("address", fmt::format("'{}' is not an IPv6 or IPv4 address", s.address));
  s.port = r.optional_integer<std::uint16_t>("port", 1, 65535).value_or(3653);
  if (r.has("transport"))
    s.transport = r.one_of<tsp::Transport>(
        "transport", {{"tcp", tsp::Transport::Tcp}, {"udp", tsp::Transport::Udp}});
  s.user = r.string("user");
  if (r.has("user") && (s.user.empty() || s.user.size() > 64 || !name_chars(s.user, "._@-")))
    r.error("user", "must be 1..64 characters of [A-Za-z0-9._@-]");
  s.password = r.string("password");
  if (r.has("password") && s.password.empty()) r.error("password", "must not be empty");
  return s;
}

tep::BindingLimits read_bindings(ObjectReader& r) {
  tep::BindingLimits b;
  b.max_bindings = r.optional_integer<std::size_t>("max", 1, 1 << 24).value_or(b.max_bindings);
  b.max_negative =
      r.optional_integer<std::size_t>("max_negative", 1, 1 << 20).value_or(b.max_negative);
  b.negative_ttl =
      std::chrono::seconds{r.optional_integer<std::uint32_t>("negative_ttl", 1, 3600).value_or(5)};
  return b;
}

tep::MissQueueLimits read_queue(ObjectReader& r) {
  tep::MissQueueLimits q;
  q.per_address = r.optional_integer<std::size_t>("per_address", 1, 1024).value_or(q.per_address);
  q.max_packets =
      r.optional_integer<std::size_t>("max_packets", 1, 1 << 20).value_or(q.max_packets);
  q.max_bytes = r.optional_integer<std::size_t>("max_bytes", 65536, std::size_t{1} << 30)
                    .value_or(q.max_bytes);
  q.max_addresses =
      r.optional_integer<std::size_t>("max_addresses", 1, 1 << 20).value_or(q.max_addresses);
  q.timeout = std::chrono::milliseconds{
      r.optional_integer<std::uint32_t>("timeout_ms", 100, 60'000).value_or(3000)};
  if (q.per_address > q.max_packets)
    r.error_here(fmt::format("per_address ({}) must not exceed max_packets ({})", q.per_address,
                             q.max_packets));
  return q;
}

Config read_tep(ObjectReader& r) {
  Config c;
  if (!r.is_object()) return c;
  c.name = r.string("name");
  if (r.has("name") && (c.name.empty() || c.name.size() > 32 || !name_chars(c.name, "._-")))
    r.error("name", "must be 1..32 characters of [A-Za-z0-9._-]");
  c.ipv6 = r.ipv6("ipv6");
  if (r.has("ipv6") && (c.ipv6.is_unspecified() || c.ipv6.is_multicast() ||
                        c.ipv6 == core::Ipv6Address::parse("::1").value()))
    r.error("ipv6", fmt::format("{} is not a unicast address", c.ipv6.to_string()));
  c.ipv4 = r.ipv4("ipv4");
  if (r.has("ipv4")) check_unicast(r, "ipv4", c.ipv4);
  c.keepalive = r.optional_ipv4("keepalive");
  if (c.keepalive) check_unicast(r, "keepalive", *c.keepalive);

  if (const auto* raw = r.raw("pool"); raw) {
    const auto* array = raw->if_array();
    if (!array || array->empty()) {
      r.error("pool", "must be a non-empty array of IPv4 prefixes");
    } else {
      for (std::size_t i = 0; i < array->size(); ++i) {
        const auto* text = (*array)[i].if_string();
        const auto where = platform::json_pointer_child(r.path_of("pool"), i);
        const auto prefix = core::Ipv4Prefix::parse(text ? std::string_view{*text} : "");
        if (!text || !prefix) {
          error_at(r, where, "must be an IPv4 prefix such as 198.51.100.0/24");
          continue;
        }
        for (const auto& other : c.pool)
          if (other.contains(*prefix) || prefix->contains(other))
            error_at(r, where,
                     fmt::format("{} overlaps {}", prefix->to_string(), other.to_string()));
        c.pool.push_back(*prefix);
      }
    }
  } else {
    r.error("pool", "is required");
  }
  for (const auto& p : c.pool) {
    if (r.has("ipv4") && p.contains(c.ipv4))
      r.error("ipv4", fmt::format("{} is inside the pool ({})", c.ipv4.to_string(), p.to_string()));
    if (c.keepalive && p.contains(*c.keepalive))
      r.error("keepalive",
              fmt::format("{} is inside the pool ({})", c.keepalive->to_string(), p.to_string()));
  }

  c.server = r.object("server", read_server);
  if (auto name = r.optional_string("interface")) {
    c.interface = std::move(*name);
    if (c.interface.empty() || c.interface.size() > kMaxInterfaceName ||
        !name_chars(c.interface, "._-"))
      r.error("interface", "must be 1..15 characters of [A-Za-z0-9._-]");
  }
  c.tunnel_mtu = r.optional_integer<std::uint32_t>("tunnel_mtu", 1280, 65535).value_or(1500);
  c.hop_limit = r.optional_integer<std::uint8_t>("hop_limit", 1, 255).value_or(64);
  if (r.has("backend"))
    c.backend = r.one_of<tep::io::Backend>("backend", {{"auto", tep::io::Backend::Auto},
                                                       {"bpf", tep::io::Backend::Bpf},
                                                       {"user", tep::io::Backend::User},
                                                       {"kernel", tep::io::Backend::Kernel}});
  c.bindings = r.optional_object("bindings", read_bindings).value_or(tep::BindingLimits{});
  c.miss_queue = r.optional_object("miss_queue", read_queue).value_or(tep::MissQueueLimits{});
  c.icmp_rate = r.optional_integer<std::uint32_t>("icmp_rate", 1, 100'000).value_or(100);
  c.control_socket = r.optional_string("control_socket").value_or("/run/appl/" + c.name + ".sock");
  if (c.control_socket.empty() || c.control_socket.front() != '/' ||
      c.control_socket.size() > kMaxSocketPath)
    r.error("control_socket",
            fmt::format("must be an absolute path of at most {} bytes", kMaxSocketPath));
  return c;
}

}  // namespace

platform::ConfigResult<std::vector<Config>> parse_config_document(std::string_view json) {
  return platform::parse_config(json, [](ObjectReader& root) {
    for (const char* other : {"dstm_server", "client", "web", "anytun", "anycast", "system"})
      root.ignore(other);
    auto teps = root.objects("tep", read_tep);
    if (root.has("tep") && root.raw("tep")->is_array() && teps.empty())
      root.error("tep", "must list at least one TEP");
    std::set<std::string> names, interfaces, sockets;
    for (std::size_t i = 0; i < teps.size(); ++i) {
      const auto& t = teps[i];
      const auto at = platform::json_pointer_child(root.path_of("tep"), i);
      const auto field = [&](std::string_view key) {
        return platform::json_pointer_child(at, key);
      };
      if (!names.insert(t.name).second)
        error_at(root, field("name"), fmt::format("'{}' is used by an earlier TEP", t.name));
      if (!interfaces.insert(t.interface).second)
        error_at(root, field("interface"),
                 fmt::format("'{}' is used by an earlier TEP", t.interface));
      if (!sockets.insert(t.control_socket).second)
        error_at(root, field("control_socket"), "is used by an earlier TEP");
    }
    return teps;
  });
}

const Config* select_tep(const std::vector<Config>& teps, std::string_view name,
                         std::string& error) {
  if (name.empty()) {
    if (teps.size() == 1) return &teps.front();
    error = fmt::format("the document lists {} TEPs: choose one with --name", teps.size());
    return nullptr;
  }
  for (const auto& t : teps)
    if (t.name == name) return &t;
  error = fmt::format("no TEP named '{}' in the document", name);
  return nullptr;
}

}  // namespace tep_daemon
