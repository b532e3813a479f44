// Reading /anytun: typed fields with their ranges, then the rules that relate them. Strict keys,
// every error at its JSON pointer; passphrases, secrets and keys never appear in a message.
#include "relay_daemon/config.hpp"

#include <algorithm>
#include <concepts>
#include <map>
#include <utility>

#include <fmt/core.h>
#include <boost/json/value.hpp>

#include "relay/cluster.hpp"
#include "satp/replay.hpp"

namespace relay_daemon {
namespace {

using platform::ConfigErrors;
using platform::ObjectReader;

constexpr std::size_t kMaxSocketPath = 107;    // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr std::size_t kMaxStatePath = 4096;    // PATH_MAX
constexpr std::size_t kMaxInterfaceName = 15;  // IFNAMSIZ minus the NUL
constexpr std::size_t kMaxListen = 8;
constexpr std::size_t kMaxConnections = 4096;
constexpr std::size_t kMaxRoutes = 1024;  // per connection
constexpr std::size_t kMaxTunAddresses = 16;
constexpr std::size_t kMaxRelayAddresses = 8;
constexpr std::size_t kMaxPeers = 16;
constexpr std::size_t kMaxBindings = 64;
constexpr std::size_t kMinSecret = 16;
constexpr std::size_t kMaxSecret = 256;
constexpr std::size_t kMaxTepName = 64;
constexpr std::size_t kMaxPassphrase = 1024;
constexpr std::size_t kMaxTable = 1'048'576;  // NAT mappings, relay bindings
constexpr std::uint32_t kMinIpv6Mtu = 1280;   // RFC 8200 section 5

// The names satp::parse_cipher, parse_kd_prf, parse_auth and parse_role take, for error messages.
constexpr std::string_view kCipherNames =
    "'null', 'aes-ctr', 'aes-ctr-128', 'aes-ctr-192', 'aes-ctr-256'";
constexpr std::string_view kAuthNames = "'null', 'sha1'";
constexpr std::string_view kRoleNames = "'left', 'right', 'alice', 'bob', 'server', 'client'";

void error_at(ConfigErrors& errors, std::string path, std::string message) {
  errors.push_back(platform::ConfigError{std::move(path), std::move(message)});
}

// Counts the errors recorded while it lives: ok() says whether a value was read cleanly, so that
// the rules relating it to others check only values that were (one mistake, one error).
class Clean {
 public:
  explicit Clean(ObjectReader& r) : errors_{&r.errors()}, before_{r.errors().size()} {}
  bool ok() const noexcept { return errors_->size() == before_; }

 private:
  const ConfigErrors* errors_;
  std::size_t before_;
};

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string text_of(const core::Ipv6Address& a) {
  const relay::Endpoint e{a, 0};
  return e.is_v4() ? e.v4_address().to_string() : a.to_string();
}
std::string text_of(const relay::Endpoint& e) {
  return e.to_string();
}
std::string text_of(const relay::Prefix& p) {
  return std::visit([](const auto& x) { return x.to_string(); }, p);
}
std::string text_of(const TunAddress& a) {
  return fmt::format("{}/{}", std::visit([](const auto& x) { return x.to_string(); }, a.address),
                     a.length);
}

// --- Values in text form -------------------------------------------------------------------------

// What an endpoint may be: one bound here (port 0: ephemeral, for tests; the unspecified address:
// every address of its family) or one a packet is sent to.
enum class EndpointUse { Bind, Peer };

std::optional<relay::Endpoint> endpoint_value(std::string_view text, const std::string& path,
                                              ConfigErrors& errors, EndpointUse use) {
  const auto e = relay::Endpoint::parse(text);
  if (!e) {
    error_at(errors, path,
             fmt::format("'{}' is not an endpoint (a.b.c.d:port or [IPv6]:port)", text));
    return std::nullopt;
  }
  const bool multicast = e->is_v4()
                             ? e->v4_address().is_multicast() || e->v4_address().is_broadcast()
                             : e->address.is_multicast();
  if (multicast) {
    error_at(errors, path, fmt::format("{} is a multicast or broadcast endpoint", e->to_string()));
    return std::nullopt;
  }
  if (use == EndpointUse::Peer && e->is_unspecified()) {
    error_at(errors, path,
             fmt::format("{} names no address (0.0.0.0 and :: only bind)", e->to_string()));
    return std::nullopt;
  }
  if (use == EndpointUse::Peer && e->port == 0) {
    error_at(errors, path,
             fmt::format("{}: port 0 only binds; give the peer's port", e->to_string()));
    return std::nullopt;
  }
  return e;
}

std::optional<relay::Prefix> prefix_value(std::string_view text, const std::string& path,
                                          ConfigErrors& errors) {
  if (text.find(':') != std::string_view::npos) {
    if (const auto p = core::Ipv6Prefix::parse(text)) return relay::Prefix{*p};
    error_at(
        errors, path,
        fmt::format("invalid IPv6 prefix ({})", core::Ipv6Prefix::parse(text).error().message()));
    return std::nullopt;
  }
  if (const auto p = core::Ipv4Prefix::parse(text)) return relay::Prefix{*p};
  error_at(
      errors, path,
      fmt::format("invalid IPv4 prefix ({})", core::Ipv4Prefix::parse(text).error().message()));
  return std::nullopt;
}

// An IPv4 or IPv6 address (IPv4 held as ::ffff:a.b.c.d) that a socket binds and peers are told.
std::optional<core::Ipv6Address> address_value(std::string_view text, const std::string& path,
                                               ConfigErrors& errors) {
  std::optional<core::Ipv6Address> a;
  if (text.find(':') != std::string_view::npos) {
    const auto v6 = core::Ipv6Address::parse(text);
    if (!v6) {
      error_at(errors, path, fmt::format("invalid IPv6 address ({})", v6.error().message()));
      return std::nullopt;
    }
    if (v6->is_v4_mapped()) {
      error_at(errors, path, "write an IPv4 address as a.b.c.d, not ::ffff:a.b.c.d");
      return std::nullopt;
    }
    a = *v6;
  } else {
    const auto v4 = core::Ipv4Address::parse(text);
    if (!v4) {
      error_at(errors, path, fmt::format("invalid IPv4 address ({})", v4.error().message()));
      return std::nullopt;
    }
    a = relay::Endpoint::v4(*v4, 0).address;
  }
  const relay::Endpoint e{*a, 0};
  const bool multicast = e.is_v4() ? e.v4_address().is_multicast() || e.v4_address().is_broadcast()
                                   : a->is_multicast();
  if (e.is_unspecified() || multicast) {
    error_at(errors, path,
             fmt::format("{} is not a unicast address (it is handed to peers)", text_of(*a)));
    return std::nullopt;
  }
  return a;
}

std::optional<TunAddress> tun_address_value(std::string_view text, const std::string& path,
                                            ConfigErrors& errors) {
  const auto bad = [&] {
    error_at(errors, path,
             "must be an address with its prefix length, such as 192.0.2.1/24 or 2001:db8::1/64");
    return std::nullopt;
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  const auto address = text.substr(0, slash);
  const auto length = text.substr(slash + 1);
  unsigned bits = 0;
  if (length.empty() || length.size() > 3 || (length.size() > 1 && length.front() == '0'))
    return bad();
  for (char c : length) {
    if (c < '0' || c > '9') return bad();
    bits = bits * 10 + static_cast<unsigned>(c - '0');
  }
  const bool v6 = address.find(':') != std::string_view::npos;
  const unsigned max = v6 ? 128 : 32;
  if (bits < 1 || bits > max) {
    error_at(errors, path, fmt::format("prefix length must be 1..{}, got {}", max, bits));
    return std::nullopt;
  }
  TunAddress out;
  out.length = static_cast<std::uint8_t>(bits);
  if (v6) {
    const auto a = core::Ipv6Address::parse(address);
    if (!a) {
      error_at(errors, path, fmt::format("invalid IPv6 address ({})", a.error().message()));
      return std::nullopt;
    }
    if (a->is_unspecified() || a->is_multicast() || a->is_v4_mapped()) {
      error_at(errors, path, fmt::format("{} cannot be an interface address", a->to_string()));
      return std::nullopt;
    }
    out.address = *a;
  } else {
    const auto a = core::Ipv4Address::parse(address);
    if (!a) {
      error_at(errors, path, fmt::format("invalid IPv4 address ({})", a.error().message()));
      return std::nullopt;
    }
    if (a->is_unspecified() || a->is_multicast() || a->is_broadcast()) {
      error_at(errors, path, fmt::format("{} cannot be an interface address", a->to_string()));
      return std::nullopt;
    }
    out.address = *a;
  }
  return out;
}

// --- Lists ---------------------------------------------------------------------------------------

template <typename T>
struct List {
  std::vector<T> values;        // the elements read well
  std::vector<std::size_t> at;  // the array index of each of them
  bool ok = true;               // the key had no error
};

// An array of strings with min..max elements, each read by parse(text, path, errors) ->
// optional<T>; a value equal to an earlier one is an error naming the earlier one. An absent key
// gives an empty, clean list.
template <typename T, typename Parse>
List<T> read_list(ObjectReader& r, std::string_view key, std::size_t min, std::size_t max,
                  std::string_view what, Parse parse) {
  List<T> out;
  const Clean clean{r};
  const auto texts = r.optional_strings(key);
  if (texts && (texts->size() < min || texts->size() > max)) {
    r.error(key, min == 0 ? fmt::format("must list at most {} {}", max, what)
                          : fmt::format("must list {}..{} {}", min, max, what));
  } else if (texts) {
    const auto base = r.path_of(key);
    // The index of each value read; ordered values are looked up in log time (a connection may
    // have a thousand routes), the others are in short lists.
    std::map<T, std::size_t> seen;
    const auto earlier = [&](const T& v) -> std::optional<std::size_t> {
      if constexpr (std::totally_ordered<T>) {
        if (const auto it = seen.find(v); it != seen.end()) return it->second;
      } else {
        const auto it = std::find(out.values.begin(), out.values.end(), v);
        if (it != out.values.end())
          return out.at[static_cast<std::size_t>(it - out.values.begin())];
      }
      return std::nullopt;
    };
    for (std::size_t i = 0; i < texts->size(); ++i) {
      const auto path = platform::json_pointer_child(base, i);
      auto v = parse((*texts)[i], path, r.errors());
      if (!v) continue;
      if (const auto j = earlier(*v)) {
        error_at(r.errors(), path,
                 fmt::format("{} is listed twice (also at {})", text_of(*v),
                             platform::json_pointer_child(base, *j)));
        continue;
      }
      if constexpr (std::totally_ordered<T>) seen.emplace(*v, i);
      out.values.push_back(std::move(*v));
      out.at.push_back(i);
    }
  }
  out.ok = clean.ok();
  return out;
}

std::optional<relay::Endpoint> read_endpoint(ObjectReader& r, std::string_view key,
                                             EndpointUse use) {
  const auto text = r.optional_string(key);
  if (!text) return std::nullopt;
  return endpoint_value(*text, r.path_of(key), r.errors(), use);
}

relay::Endpoint required_endpoint(ObjectReader& r, std::string_view key, EndpointUse use) {
  if (!r.has(key)) {
    (void)r.string(key);  // records it as missing
    return {};
  }
  return read_endpoint(r, key, use).value_or(relay::Endpoint{});
}

// "ports": [first, last], both 1..65535, first <= last. Absent: the defaults stay.
void read_port_range(ObjectReader& r, std::uint16_t& first, std::uint16_t& last) {
  const auto* v = r.raw("ports");
  if (!v) return;
  const auto* array = v->if_array();
  if (!array || array->size() != 2) {
    r.error("ports", "must be [first, last]: two ports 1..65535");
    return;
  }
  std::uint16_t ports[2] = {};
  bool ok = true;
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& p = (*array)[i];
    const auto* s = p.if_int64();
    const auto* u = p.if_uint64();
    const bool in_range = (s && *s >= 1 && *s <= 65535) || (u && *u >= 1 && *u <= 65535);
    if (!in_range) {
      error_at(r.errors(), platform::json_pointer_child(r.path_of("ports"), i),
               "must be a port, an integer 1..65535");
      ok = false;
      continue;
    }
    ports[i] = static_cast<std::uint16_t>(s ? *s : static_cast<std::int64_t>(*u));
  }
  if (!ok) return;
  if (ports[0] > ports[1]) {
    r.error("ports", fmt::format("the first port ({}) is above the last ({})", ports[0], ports[1]));
    return;
  }
  first = ports[0];
  last = ports[1];
}

// A string that names one of satp's choices (parse: satp::parse_cipher, ...); nullopt when absent
// or wrong.
template <typename Parse>
auto read_choice(ObjectReader& r, std::string_view key, Parse parse, std::string_view names)
    -> decltype(parse(std::string_view{})) {
  const auto text = r.optional_string(key);
  if (!text) return std::nullopt;
  if (auto v = parse(*text)) return v;
  r.error(key, fmt::format("'{}' is not one of {}", *text, names));
  return std::nullopt;
}

void check_socket_path(ObjectReader& r, std::string_view key, const std::string& path) {
  if (path.empty() || path.front() != '/' || path.size() > kMaxSocketPath ||
      path.find('\0') != std::string::npos)
    r.error(key, fmt::format("must be an absolute path of at most {} bytes", kMaxSocketPath));
}

std::optional<std::string> read_state_file(ObjectReader& r) {
  auto path = r.optional_string("state_file");
  if (path && (path->empty() || path->front() != '/' || path->back() == '/' ||
               path->size() > kMaxStatePath || path->find('\0') != std::string::npos))
    r.error("state_file",
            fmt::format("must be an absolute path to a file, at most {} bytes", kMaxStatePath));
  return path;
}

// --- Sections ------------------------------------------------------------------------------------

bool valid_tun_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName || name == "." || name == "..") return false;
  bool numbered = false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name[i] != '%') {
      if (!is_name_char(name[i])) return false;
      continue;
    }
    // The kernel takes one "%d" and puts the first free number there.
    if (numbered || i + 1 >= name.size() || name[i + 1] != 'd') return false;
    numbered = true;
    ++i;
  }
  return true;
}

TunConfig read_tun(ObjectReader& r) {
  TunConfig t;
  if (!r.is_object()) return t;
  if (auto name = r.optional_string("name")) {
    t.name = std::move(*name);
    if (!valid_tun_name(t.name))
      r.error("name",
              "must be 1..15 characters of [A-Za-z0-9._-] with at most one %d (the kernel "
              "numbers the device)");
  }
  const Clean mtu_clean{r};
  t.mtu = r.optional_integer<std::uint32_t>("mtu", 576, 1580).value_or(t.mtu);
  const bool mtu_ok = mtu_clean.ok();
  auto addresses =
      read_list<TunAddress>(r, "addresses", 0, kMaxTunAddresses, "addresses", tun_address_value);
  t.addresses = std::move(addresses.values);
  const bool has_v6 = std::any_of(t.addresses.begin(), t.addresses.end(), [](const auto& a) {
    return std::holds_alternative<core::Ipv6Address>(a.address);
  });
  if (mtu_ok && has_v6 && t.mtu < kMinIpv6Mtu)
    r.error("mtu", fmt::format("must be at least {} with an IPv6 address on the device, got {}",
                               kMinIpv6Mtu, t.mtu));
  return t;
}

enum class Side { Relay, Client };

// A connection and what the rules across connections need to know of it.
struct ReadConnection {
  ConnectionConfig config;
  bool mux_ok = false;
  std::vector<std::size_t> route_at;  // the array index of each of config.routes
  std::string path;
};

void read_key(ObjectReader& r, ConnectionConfig& c, bool kd_prf_ok) {
  const bool has_passphrase = r.has("passphrase");
  const bool has_key = r.has("key");
  const bool has_salt = r.has("salt");
  const auto passphrase = r.optional_string("passphrase");
  const auto key = r.optional_string("key");
  const auto salt = r.optional_string("salt");
  if (has_passphrase && (has_key || has_salt)) {
    r.error(has_key ? "key" : "salt", "give either a passphrase, or a key and a salt, not both");
    return;
  }
  if (!has_passphrase && !has_key && !has_salt) {
    r.error_here("needs a passphrase, or a key and a salt");
    return;
  }
  if (has_passphrase) {
    if (!passphrase) return;  // not a string: reported
    if (passphrase->empty() || passphrase->size() > kMaxPassphrase) {
      r.error("passphrase", fmt::format("must be 1..{} bytes", kMaxPassphrase));
      return;
    }
    c.key = satp::master_key_from_passphrase(*passphrase, c.settings.kd_prf);
    c.salt = satp::master_salt_from_passphrase(*passphrase);
    return;
  }
  if (!has_salt) r.error("salt", "a key needs its salt (28 hex digits)");
  if (!has_key) r.error("key", "a salt needs its key (32, 48 or 64 hex digits)");
  if (key) {
    const auto needed = satp::key_size(c.settings.kd_prf);
    const auto k = satp::master_key_from_hex(*key);
    if (!k) {
      r.error("key", k.error() == satp::Errc::BadHex ? "must be hex digits only"
                                                     : "must be 32, 48 or 64 hex digits");
    } else if (kd_prf_ok && needed == 0) {
      r.error("key", "kd_prf null uses no key: give a passphrase instead");
    } else if (kd_prf_ok && k->size != needed) {
      r.error("key",
              fmt::format("is a {}-bit key; kd_prf {} takes {}-bit keys ({} hex digits)",
                          k->size * 8, satp::to_string(c.settings.kd_prf), needed * 8, needed * 2));
    } else {
      c.key = *k;
    }
  }
  if (salt) {
    if (const auto s = satp::master_salt_from_hex(*salt))
      c.salt = *s;
    else
      r.error("salt", "must be 28 hex digits");
  }
}

ReadConnection read_connection(ObjectReader& r, Side side) {
  ReadConnection out;
  out.path = r.path();
  auto& c = out.config;
  if (!r.is_object()) return out;
  const Clean mux_clean{r};
  c.mux = r.integer<std::uint16_t>("mux");
  out.mux_ok = mux_clean.ok();

  const Clean settings_clean{r};
  c.settings.role = read_choice(r, "role", satp::parse_role, kRoleNames)
                        .value_or(side == Side::Relay ? satp::Role::Left : satp::Role::Right);
  c.settings.cipher =
      read_choice(r, "cipher", satp::parse_cipher, kCipherNames).value_or(c.settings.cipher);
  const Clean kd_prf_clean{r};
  c.settings.kd_prf =
      read_choice(r, "kd_prf", satp::parse_kd_prf, kCipherNames).value_or(c.settings.kd_prf);
  const bool kd_prf_ok = kd_prf_clean.ok();
  c.settings.auth = read_choice(r, "auth", satp::parse_auth, kAuthNames).value_or(c.settings.auth);
  c.settings.tag_length =
      r.optional_integer<std::size_t>("tag_length", 0, satp::kMaxTagLength)
          .value_or(c.settings.auth == satp::Auth::Null ? 0 : satp::kDefaultTagLength);
  if (settings_clean.ok()) {
    if (const auto problem = satp::settings_problem(c.settings); !problem.empty()) {
      if (r.has("tag_length"))
        r.error("tag_length", std::string{problem});
      else
        r.error_here(std::string{problem});
    }
  }
  read_key(r, c, kd_prf_ok);
  c.window =
      r.optional_integer<std::uint32_t>("window", 0, satp::kMaxWindowSize).value_or(c.window);

  if (side == Side::Client) {
    // Keys of a relay's connections only: a mistake here would otherwise be silently unused.
    const std::pair<std::string_view, std::string_view> relay_only[] = {
        {"remote", "the client's peer is its server (/anytun/client/server)"},
        {"routes", "only a relay's connections have routes; the client routes through its TUN"},
        {"open_tunnel", "a permission the relay grants: set it in the relay's connection"},
        {"relay_mode", "a permission the relay grants: set it in the relay's connection"},
    };
    for (const auto& [key, why] : relay_only) {
      if (!r.has(key)) continue;
      r.ignore(key);
      r.error(key, std::string{why});
    }
    return out;
  }
  c.remote = read_endpoint(r, "remote", EndpointUse::Peer);
  auto routes = read_list<relay::Prefix>(r, "routes", 0, kMaxRoutes, "prefixes", prefix_value);
  c.routes = std::move(routes.values);
  out.route_at = std::move(routes.at);
  c.open_tunnel = r.optional_boolean("open_tunnel").value_or(false);
  c.relay_mode = r.optional_boolean("relay_mode").value_or(false);
  return out;
}

// A table's total bound `name` and its per-client bound `name`_per_client, which may not exceed
// the total (compared only when both read cleanly, so one error is not reported twice).
void read_table_bounds(ObjectReader& r, const std::string& name, std::size_t& total,
                       std::size_t& per_client) {
  const Clean total_clean{r};
  total = r.optional_integer<std::size_t>(name, 1, kMaxTable).value_or(total);
  const bool total_ok = total_clean.ok();
  const Clean per_client_clean{r};
  const auto per_client_name = name + "_per_client";
  per_client = r.optional_integer<std::size_t>(per_client_name, 1, kMaxTable).value_or(per_client);
  if (total_ok && per_client_clean.ok() && per_client > total)
    r.error(per_client_name, fmt::format("{} is above {} ({})", per_client, name, total));
}

OpenTunnelConfig read_open_tunnel(ObjectReader& r) {
  OpenTunnelConfig o;
  if (!r.is_object()) return o;
  o.address4 = r.optional_ipv4("address4");
  if (o.address4 &&
      (o.address4->is_unspecified() || o.address4->is_multicast() || o.address4->is_broadcast()))
    r.error("address4", fmt::format("{} is not a unicast address (flows leave from it)",
                                    o.address4->to_string()));
  o.address6 = r.optional_ipv6("address6");
  if (o.address6 && (o.address6->is_unspecified() || o.address6->is_multicast() ||
                     o.address6->is_v4_mapped() || o.address6->is_link_local()))
    r.error("address6", fmt::format("{} is not a global unicast address (flows leave from it)",
                                    o.address6->to_string()));
  if (!r.has("address4") && !r.has("address6"))
    r.error_here("needs address4, address6 or both (the source addresses of NATed flows)");
  read_port_range(r, o.port_first, o.port_last);
  read_table_bounds(r, "max_mappings", o.max_mappings, o.max_mappings_per_client);
  return o;
}

RelayModeConfig read_relay_mode(ObjectReader& r) {
  RelayModeConfig m;
  if (!r.is_object()) return m;
  if (!r.has("addresses")) r.error("addresses", "missing required value");
  m.addresses = read_list<core::Ipv6Address>(r, "addresses", 1, kMaxRelayAddresses,
                                             "IPv4 or IPv6 addresses", address_value)
                    .values;
  read_port_range(r, m.port_first, m.port_last);
  read_table_bounds(r, "max_bindings", m.max_bindings, m.max_bindings_per_client);
  m.max_lifetime =
      r.optional_integer<std::uint32_t>("max_lifetime", 10, 86'400).value_or(m.max_lifetime);
  return m;
}

TcpConfig read_tcp(ObjectReader& r) {
  TcpConfig t;
  if (!r.is_object()) return t;
  const Clean listen_clean{r};
  t.listen = required_endpoint(r, "listen", EndpointUse::Bind);
  t.advertise = read_endpoint(r, "advertise", EndpointUse::Peer);
  if (listen_clean.ok() && !r.has("advertise") && t.listen.is_unspecified())
    r.error("advertise", fmt::format("needed: listen ({}) names no address to tell clients",
                                     t.listen.to_string()));
  t.max_connections =
      r.optional_integer<std::size_t>("max_connections", 1, 65'536).value_or(t.max_connections);
  // Above the client's keepalive (15 s), so that a quiet client keeps its stream.
  t.idle_timeout =
      r.optional_integer<std::uint32_t>("idle_timeout", 20, 86'400).value_or(t.idle_timeout);
  return t;
}

ClusterConfig read_cluster(ObjectReader& r) {
  ClusterConfig c;
  if (!r.is_object()) return c;
  const Clean listen_clean{r};
  c.listen = required_endpoint(r, "listen", EndpointUse::Bind);
  const bool listen_ok = listen_clean.ok();
  auto peers = read_list<relay::Endpoint>(
      r, "peers", 0, kMaxPeers, "endpoints",
      [](std::string_view text, const std::string& path, ConfigErrors& errors) {
        return endpoint_value(text, path, errors, EndpointUse::Peer);
      });
  for (std::size_t i = 0; listen_ok && i < peers.values.size(); ++i)
    if (peers.values[i] == c.listen)
      error_at(r.errors(), platform::json_pointer_child(r.path_of("peers"), peers.at[i]),
               fmt::format("{} is this node's own listen endpoint", c.listen.to_string()));
  c.peers = std::move(peers.values);
  c.secret = r.string("secret");
  if (r.has("secret") && r.raw("secret")->is_string() &&
      (c.secret.size() < kMinSecret || c.secret.size() > kMaxSecret))
    r.error("secret",
            fmt::format("must be {}..{} bytes, got {}", kMinSecret, kMaxSecret, c.secret.size()));
  return c;
}

AnytunSyncConfig read_anytun_sync(ObjectReader& r) {
  AnytunSyncConfig s;
  if (!r.is_object()) return s;
  s.listen = required_endpoint(r, "listen", EndpointUse::Bind);
  return s;
}

// --- Rules across the relay's sections -----------------------------------------------------------

// Where the relay takes ports: a socket's endpoint, or a range of ports on one address (the NAT's
// external ports, relay bindings). Two uses of one protocol collide when their ports overlap on
// the same address, or on any address of the family when one of them binds the unspecified one.
struct PortUse {
  std::string path;
  std::string what;
  bool udp = false;
  bool tcp = false;
  relay::Endpoint address;  // the port is unused
  std::uint16_t first = 0;
  std::uint16_t last = 0;
};

bool collide(const PortUse& a, const PortUse& b) {
  if (!((a.udp && b.udp) || (a.tcp && b.tcp))) return false;
  if (a.address.is_v4() != b.address.is_v4()) return false;
  if (a.address.address != b.address.address && !a.address.is_unspecified() &&
      !b.address.is_unspecified())
    return false;
  return a.first <= b.last && b.first <= a.last;
}

PortUse socket_use(std::string path, const relay::Endpoint& e, bool udp) {
  return PortUse{.path = std::move(path),
                 .what = fmt::format("{} {}", udp ? "UDP" : "TCP", e.to_string()),
                 .udp = udp,
                 .tcp = !udp,
                 .address = relay::Endpoint{e.address, 0},
                 .first = e.port,
                 .last = e.port};
}

struct RelayChecks {
  bool listen_ok = false;
  bool tun_present = false;
  bool open_tunnel_present = false;
  bool open_tunnel_ok = false;
  bool relay_mode_present = false;
  bool relay_mode_ok = false;
  bool tcp_ok = false;
  bool cluster_ok = false;
  bool anytun_sync_ok = false;
  std::vector<std::size_t> listen_at;
};

void check_ports(ObjectReader& r, const RelayConfig& c, const RelayChecks& ok) {
  std::vector<PortUse> uses;
  if (ok.listen_ok)
    for (std::size_t i = 0; i < c.listen.size(); ++i)
      uses.push_back(socket_use(
          r.has("listen") ? platform::json_pointer_child(r.path_of("listen"), ok.listen_at[i])
                          : r.path_of("listen"),
          c.listen[i], true));
  if (ok.tcp_ok) uses.push_back(socket_use(r.path_of("tcp") + "/listen", c.tcp->listen, false));
  if (ok.cluster_ok)
    uses.push_back(socket_use(r.path_of("cluster") + "/listen", c.cluster->listen, false));
  if (ok.anytun_sync_ok)
    uses.push_back(socket_use(r.path_of("anytun_sync") + "/listen", c.anytun_sync->listen, false));
  const auto range_use = [](std::string path, std::string_view what, bool tcp,
                            const core::Ipv6Address& a, std::uint16_t first, std::uint16_t last) {
    return PortUse{.path = std::move(path),
                   .what = fmt::format("the {} range {}..{} on {}", what, first, last, text_of(a)),
                   .udp = true,
                   .tcp = tcp,
                   .address = relay::Endpoint{a, 0},
                   .first = first,
                   .last = last};
  };
  if (ok.open_tunnel_ok) {
    const auto& o = *c.open_tunnel;
    const auto path = r.path_of("open_tunnel") + "/ports";
    if (o.address4)
      uses.push_back(range_use(path, "open tunnel", true,
                               relay::Endpoint::v4(*o.address4, 0).address, o.port_first,
                               o.port_last));
    if (o.address6)
      uses.push_back(range_use(path, "open tunnel", true, *o.address6, o.port_first, o.port_last));
  }
  if (ok.relay_mode_ok)
    for (const auto& a : c.relay_mode->addresses)
      uses.push_back(range_use(r.path_of("relay_mode") + "/ports", "relay mode", false, a,
                               c.relay_mode->port_first, c.relay_mode->port_last));
  // Port 0 binds an ephemeral port, which collides with nothing configured.
  std::erase_if(uses, [](const PortUse& u) { return u.first == 0; });
  for (std::size_t i = 1; i < uses.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (!collide(uses[i], uses[j])) continue;
      error_at(r.errors(), uses[i].path,
               fmt::format("{} collides with {} at {}", uses[i].what, uses[j].what, uses[j].path));
      break;
    }
  }
}

// Connections: one MUX each, a prefix routed to one connection, and the sections their modes use.
void check_connections(ObjectReader& r, const std::vector<ReadConnection>& connections,
                       const RelayChecks& ok) {
  std::map<std::uint16_t, const std::string*> muxes;  // MUX -> the connection's path
  std::map<relay::Prefix, std::string> claims;        // route -> its path
  for (const auto& rc : connections) {
    if (rc.mux_ok) {
      if (const auto [it, added] = muxes.emplace(rc.config.mux, &rc.path); !added)
        error_at(r.errors(), rc.path + "/mux",
                 fmt::format("MUX {} is also the MUX of {}", rc.config.mux, *it->second));
    }
    for (std::size_t k = 0; k < rc.config.routes.size(); ++k) {
      auto path = fmt::format("{}/routes/{}", rc.path, rc.route_at[k]);
      const auto& prefix = rc.config.routes[k];
      if (const auto it = claims.find(prefix); it != claims.end())
        error_at(r.errors(), path,
                 fmt::format("{} is routed to two connections (also at {})", text_of(prefix),
                             it->second));
      else
        claims.emplace(prefix, std::move(path));
    }
    if (rc.config.open_tunnel) {
      std::vector<std::string> missing;
      if (!ok.open_tunnel_present) missing.push_back(r.path_of("open_tunnel"));
      if (!ok.tun_present) missing.push_back(r.path_of("tun"));
      if (!missing.empty())
        error_at(r.errors(), rc.path + "/open_tunnel",
                 missing.size() == 1
                     ? fmt::format("open tunnel mode needs {}", missing[0])
                     : fmt::format("open tunnel mode needs {} and {}", missing[0], missing[1]));
    }
    if (rc.config.relay_mode && !ok.relay_mode_present)
      error_at(r.errors(), rc.path + "/relay_mode",
               fmt::format("relay mode needs {}", r.path_of("relay_mode")));
  }
  // The NAT addresses are routed into the TUN even before a connection uses them; said once, at
  // a connection when one uses open tunnel mode.
  const bool used = std::any_of(connections.begin(), connections.end(),
                                [](const ReadConnection& rc) { return rc.config.open_tunnel; });
  if (ok.open_tunnel_present && !ok.tun_present && !used)
    error_at(
        r.errors(), r.path_of("open_tunnel"),
        fmt::format("open tunnel mode needs {}: replies to the NAT addresses are routed into it",
                    r.path_of("tun")));
}

RelayConfig read_relay(ObjectReader& r) {
  RelayConfig c;
  RelayChecks ok;
  if (!r.is_object()) return c;
  if (auto name = r.optional_string("name")) {
    c.name = std::move(*name);
    if (c.name.empty() || c.name.size() > relay::cluster::kMaxName ||
        !std::all_of(c.name.begin(), c.name.end(), is_name_char))
      r.error("name",
              fmt::format("must be 1..{} characters of [A-Za-z0-9._-]", relay::cluster::kMaxName));
  }
  c.sender_id = r.optional_integer<std::uint16_t>("sender_id").value_or(c.sender_id);
  if (r.has("listen")) {
    auto listen = read_list<relay::Endpoint>(
        r, "listen", 1, kMaxListen, "endpoints",
        [](std::string_view text, const std::string& path, ConfigErrors& errors) {
          return endpoint_value(text, path, errors, EndpointUse::Bind);
        });
    c.listen = std::move(listen.values);
    ok.listen_at = std::move(listen.at);
    ok.listen_ok = listen.ok;
  } else {
    c.listen = {relay::Endpoint{core::Ipv6Address{}, kDefaultPort},
                relay::Endpoint::v4(core::Ipv4Address{}, kDefaultPort)};
    ok.listen_ok = true;
  }
  ok.tun_present = r.has("tun");
  c.tun = r.optional_object("tun", read_tun);

  std::vector<ReadConnection> connections;
  if (const auto* v = r.raw("connections");
      v && v->is_array() && v->as_array().size() > kMaxConnections) {
    r.error("connections", fmt::format("must list at most {} connections", kMaxConnections));
  } else {
    connections = r.optional_objects(
        "connections", [](ObjectReader& cr) { return read_connection(cr, Side::Relay); });
  }
  for (const auto& rc : connections) c.connections.push_back(rc.config);

  ok.open_tunnel_present = r.has("open_tunnel");
  const Clean open_tunnel_clean{r};
  c.open_tunnel = r.optional_object("open_tunnel", read_open_tunnel);
  ok.open_tunnel_ok = c.open_tunnel && open_tunnel_clean.ok();
  ok.relay_mode_present = r.has("relay_mode");
  const Clean relay_mode_clean{r};
  c.relay_mode = r.optional_object("relay_mode", read_relay_mode);
  ok.relay_mode_ok = c.relay_mode && relay_mode_clean.ok();
  const Clean tcp_clean{r};
  c.tcp = r.optional_object("tcp", read_tcp);
  ok.tcp_ok = c.tcp && tcp_clean.ok();
  const Clean cluster_clean{r};
  c.cluster = r.optional_object("cluster", read_cluster);
  ok.cluster_ok = c.cluster && cluster_clean.ok();
  const Clean anytun_sync_clean{r};
  c.anytun_sync = r.optional_object("anytun_sync", read_anytun_sync);
  ok.anytun_sync_ok = c.anytun_sync && anytun_sync_clean.ok();

  c.state_file = read_state_file(r);
  c.hosted_by_tep = r.optional_string("hosted_by_tep");
  if (c.hosted_by_tep && (c.hosted_by_tep->empty() || c.hosted_by_tep->size() > kMaxTepName))
    r.error("hosted_by_tep", fmt::format("must be a TEP's name, 1..{} characters", kMaxTepName));
  if (auto s = r.optional_string("control_socket")) {
    c.control_socket = std::move(*s);
    check_socket_path(r, "control_socket", c.control_socket);
  }

  check_connections(r, connections, ok);
  check_ports(r, c, ok);
  return c;
}

BindingConfig read_binding(ObjectReader& r) {
  BindingConfig b;
  if (!r.is_object()) return b;
  b.peer = required_endpoint(r, "peer", EndpointUse::Peer);
  b.client_port = r.integer<std::uint16_t>("client_port", 1, 65535);
  return b;
}

ClientConfig read_client(ObjectReader& r) {
  ClientConfig c;
  if (!r.is_object()) return c;
  c.server = required_endpoint(r, "server", EndpointUse::Peer);
  if (r.has("transport"))
    c.transport =
        r.one_of<Transport>("transport", {{"udp", Transport::Udp}, {"tcp", Transport::Tcp}});
  c.sender_id = r.optional_integer<std::uint16_t>("sender_id").value_or(c.sender_id);
  c.connection = r.object("connection", [](ObjectReader& cr) {
                    return read_connection(cr, Side::Client);
                  }).config;
  c.tun = r.optional_object("tun", read_tun);
  const Clean bindings_clean{r};
  if (const auto* v = r.raw("bindings"); v && v->is_array() && v->as_array().size() > kMaxBindings)
    r.error("bindings", fmt::format("must list at most {} bindings", kMaxBindings));
  else
    c.bindings = r.optional_objects("bindings", read_binding);
  if (bindings_clean.ok()) {
    for (std::size_t i = 1; i < c.bindings.size(); ++i) {
      const auto first = std::find(
          c.bindings.begin(), c.bindings.begin() + static_cast<std::ptrdiff_t>(i), c.bindings[i]);
      if (first == c.bindings.begin() + static_cast<std::ptrdiff_t>(i)) continue;
      error_at(r.errors(), platform::json_pointer_child(r.path_of("bindings"), i),
               fmt::format("is listed twice (also at {})",
                           platform::json_pointer_child(
                               r.path_of("bindings"),
                               static_cast<std::size_t>(first - c.bindings.begin()))));
    }
  }
  c.state_file = read_state_file(r);
  if (auto s = r.optional_string("control_socket")) {
    c.control_socket = std::move(*s);
    check_socket_path(r, "control_socket", c.control_socket);
  }
  return c;
}

Config read_anytun(ObjectReader& r) {
  Config c;
  if (!r.is_object()) return c;
  const Clean relay_clean{r};
  c.relay = r.optional_object("relay", read_relay);
  const bool relay_ok = c.relay && relay_clean.ok();
  const Clean client_clean{r};
  c.client = r.optional_object("client", read_client);
  const bool client_ok = c.client && client_clean.ok();
  if (!r.has("relay") && !r.has("client")) {
    r.error_here("needs \"relay\", \"client\" or both");
    return c;
  }
  // One host may run both; they must not share what is theirs alone.
  if (!relay_ok || !client_ok) return c;
  const auto client_path = r.path_of("client");
  if (c.client->control_socket == c.relay->control_socket)
    error_at(r.errors(), client_path + "/control_socket",
             fmt::format("is also {}/control_socket", r.path_of("relay")));
  if (c.client->state_file && c.client->state_file == c.relay->state_file)
    error_at(r.errors(), client_path + "/state_file",
             fmt::format("is also {}/state_file", r.path_of("relay")));
  if (c.client->tun && c.relay->tun && c.client->tun->name == c.relay->tun->name &&
      c.client->tun->name.find('%') == std::string::npos)
    error_at(r.errors(), client_path + "/tun/name",
             fmt::format("is also {}/tun/name", r.path_of("relay")));
  return c;
}

// The TEP named by hosted_by_tep must be one of the document's, or no tep daemon would run the
// relay. Only names are looked at: the "tep" section itself is the tep daemon's to check.
void check_host(ObjectReader& root, const Config& c) {
  if (!c.relay || !c.relay->hosted_by_tep) return;
  const auto& name = *c.relay->hosted_by_tep;
  if (name.empty() || name.size() > kMaxTepName) return;  // reported where it was read
  if (const auto* teps = root.raw("tep"); teps && teps->is_array())
    for (const auto& t : teps->as_array())
      if (const auto* o = t.if_object())
        if (const auto* n = o->if_contains("name"); n && n->is_string() && n->as_string() == name)
          return;
  root.errors().push_back(
      {"/anytun/relay/hosted_by_tep", fmt::format("no TEP named '{}' in /tep", name)});
}

}  // namespace

platform::ConfigResult<Config> parse_config_document(std::string_view json) {
  return platform::parse_config(json, [](ObjectReader& root) {
    for (const char* other : {"dstm_server", "tep", "client", "web", "anycast", "system"})
      root.ignore(other);
    auto c = root.object("anytun", read_anytun);
    check_host(root, c);
    return c;
  });
}

}  // namespace relay_daemon
