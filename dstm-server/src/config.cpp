// Reads and checks the "dstm_server" section of the appliance config document (docs/config.md).
#include "dstm_server/config.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <set>
#include <utility>

#include <fmt/format.h>

namespace dstm_server {
namespace {

using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using platform::ConfigErrors;
using platform::json_pointer_child;
using platform::ObjectReader;

// Limits that the header does not name (docs/config.md lists them all).
constexpr std::size_t kMaxTeps = 1024;
constexpr std::size_t kMaxNameLength = 32;
constexpr std::size_t kMaxUserLength = 64;
constexpr std::size_t kMaxRealmLength = 64;
constexpr std::size_t kMaxSocketPath = 107;   // sizeof(sockaddr_un::sun_path) minus the NUL
constexpr Seconds kMaxLeaseSeconds = 604800;  // a week
constexpr std::uint32_t kMaxCount = 1'000'000;

// Whether errors were recorded since construction. A rule that relates several values runs only
// over values that were read without error: ObjectReader hands out placeholders for invalid
// values, and a rule applied to a placeholder would report a second, invented mistake.
class ErrorMark {
 public:
  explicit ErrorMark(ObjectReader& r) : errors_{&r.errors()}, start_{errors_->size()} {}
  bool clean() const noexcept { return errors_->size() == start_; }

 private:
  const ConfigErrors* errors_;
  std::size_t start_;
};

std::string child(std::string_view base, std::size_t index, std::string_view key) {
  return json_pointer_child(json_pointer_child(base, index), key);
}

// Whether an error was recorded at `path` or below it.
bool has_errors_under(const ConfigErrors& errors, std::string_view path) {
  return std::any_of(errors.begin(), errors.end(), [&](const platform::ConfigError& e) {
    const std::string_view p = e.path;
    return p.starts_with(path) && (p.size() == path.size() || p[path.size()] == '/');
  });
}

// A JSON array of strings, each parsed by T::parse. Entries that do not parse are reported at
// /key/i and left as nullopt, so callers keep the document's indices for their own messages.
// nullopt for an absent optional key and for a value that is not an array of strings.
template <typename T>
std::optional<std::vector<std::optional<T>>> read_list(ObjectReader& r, std::string_view key,
                                                       std::string_view what, bool required) {
  if (required && !r.has(key)) {
    r.strings(key);  // records "missing required value"
    return std::nullopt;
  }
  const auto texts = r.optional_strings(key);
  if (!texts) return std::nullopt;
  std::vector<std::optional<T>> out;
  out.reserve(texts->size());
  for (std::size_t i = 0; i < texts->size(); ++i) {
    auto parsed = T::parse((*texts)[i]);
    if (parsed) {
      out.emplace_back(*parsed);
    } else {
      r.errors().push_back({json_pointer_child(r.path_of(key), i),
                            fmt::format("invalid {} ({})", what, parsed.error().message())});
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

// Remembers the first index at which each value appeared.
template <typename K>
class FirstSeen {
 public:
  // nullopt the first time k is seen (and remembers i); the earlier index afterwards.
  std::optional<std::size_t> check(const K& k, std::size_t i) {
    const auto [it, inserted] = seen_.emplace(k, i);
    if (inserted) return std::nullopt;
    return it->second;
  }

 private:
  std::map<K, std::size_t> seen_;
};

// IPv4 space that is never unicast to a host: a pool or TEP address there cannot work.
struct Reserved {
  Ipv4Prefix prefix;
  std::string_view what;
};

const std::array<Reserved, 4>& reserved_ipv4() {
  static const std::array<Reserved, 4> kReserved = {{
      {Ipv4Prefix::make(Ipv4Address{0x00000000u}, 8).value(), "\"this network\""},
      {Ipv4Prefix::make(Ipv4Address{0x7f000000u}, 8).value(), "loopback"},
      {Ipv4Prefix::make(Ipv4Address{0xe0000000u}, 4).value(), "multicast"},
      {Ipv4Prefix::make(Ipv4Address{0xf0000000u}, 4).value(), "reserved (and broadcast)"},
  }};
  return kReserved;
}

// Why an address cannot be a unicast host address, or nullopt. Used for TEP and keepalive
// addresses; loopback is allowed there (a lab on one host).
std::optional<std::string> not_unicast(Ipv4Address a) {
  for (const auto& r : reserved_ipv4()) {
    if (r.what == "loopback") continue;
    if (r.prefix.contains(a))
      return fmt::format("{} is not a unicast address (it is in {}, {})", a.to_string(),
                         r.prefix.to_string(), r.what);
  }
  return std::nullopt;
}

std::optional<std::string> not_unicast(const Ipv6Address& a) {
  if (a.is_unspecified()) return std::string{":: is not a unicast address"};
  if (a.is_multicast())
    return fmt::format("{} is a multicast address, not a unicast one", a.to_string());
  return std::nullopt;
}

// Whether every character is in [A-Za-z0-9] or in `extra`.
bool name_chars(std::string_view s, std::string_view extra) {
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

// An absolute file path: what a daemon can open or bind whatever its working directory.
void check_file_path(ObjectReader& r, std::string_view key, std::string_view path,
                     std::size_t max_bytes) {
  if (path.empty()) {
    r.error(key, "must not be empty");
  } else if (path.front() != '/') {
    r.error(key, fmt::format("must be an absolute path, got '{}'", path));
  } else if (path.find('\0') != std::string_view::npos) {
    r.error(key, "must not contain a NUL character");
  } else if (path.back() == '/') {
    r.error(key, fmt::format("must name a file, not a directory, got '{}'", path));
  } else if (path.size() > max_bytes) {
    r.error(key, fmt::format("must be at most {} bytes, got {}", max_bytes, path.size()));
  }
}

// --- listen ------------------------------------------------------------------------------------

// Checks one address family's listen list: unicast or the wildcard, no repeats, and the
// wildcard alone (it already covers every address, and binding both fails with EADDRINUSE).
template <typename T, typename Reject>
void check_listen_list(ObjectReader& r, std::string_view key,
                       const std::vector<std::optional<T>>& list, const T& wildcard,
                       Reject reject) {
  const auto base = r.path_of(key);
  FirstSeen<T> seen;
  std::optional<std::size_t> wildcard_at;
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (list[i] && *list[i] == wildcard) wildcard_at = i;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (!list[i]) continue;
    const T& a = *list[i];
    const auto path = json_pointer_child(base, i);
    if (auto why = reject(a)) {
      r.errors().push_back({path, *why});
    } else if (const auto first = seen.check(a, i)) {
      r.errors().push_back({path, fmt::format("{} is listed twice (also at {})", a.to_string(),
                                              json_pointer_child(base, *first))});
    } else if (wildcard_at && *wildcard_at != i && a != wildcard) {
      r.errors().push_back(
          {path, fmt::format("{} is already covered by {} at {}", a.to_string(),
                             wildcard.to_string(), json_pointer_child(base, *wildcard_at))});
    }
  }
}

ListenConfig default_listen() {
  return ListenConfig{.ipv6 = {Ipv6Address{}}, .ipv4 = {Ipv4Address{}}};
}

ListenConfig read_listen(ObjectReader& r) {
  ListenConfig c;
  if (!r.is_object()) return c;
  const ErrorMark lists_mark{r};
  const auto v6 = read_list<Ipv6Address>(r, "ipv6", "IPv6 address", false);
  const auto v4 = read_list<Ipv4Address>(r, "ipv4", "IPv4 address", false);
  const bool lists_ok = lists_mark.clean();
  if (v6) {
    check_listen_list(r, "ipv6", *v6, Ipv6Address{}, [](const Ipv6Address& a) {
      return a.is_multicast()
                 ? std::optional{fmt::format("{} is a multicast address", a.to_string())}
                 : std::nullopt;
    });
    for (const auto& a : *v6)
      if (a) c.ipv6.push_back(*a);
  }
  if (v4) {
    check_listen_list(r, "ipv4", *v4, Ipv4Address{}, [](const Ipv4Address& a) {
      return a.is_multicast() || a.is_broadcast()
                 ? std::optional{fmt::format("{} is not a unicast address", a.to_string())}
                 : std::nullopt;
    });
    for (const auto& a : *v4)
      if (a) c.ipv4.push_back(*a);
  }
  if (lists_ok && c.ipv6.empty() && c.ipv4.empty())
    r.error_here("no address to listen on: ipv6 and ipv4 are both absent or empty");

  c.port = r.optional_integer<std::uint16_t>("port").value_or(kTspPort);
  const ErrorMark flags_mark{r};
  c.tcp = r.optional_boolean("tcp").value_or(true);
  c.udp = r.optional_boolean("udp").value_or(true);
  if (flags_mark.clean() && !c.tcp && !c.udp)
    r.error_here("tcp and udp are both false: nothing would listen");
  return c;
}

// --- pool --------------------------------------------------------------------------------------

PoolConfig read_pool(ObjectReader& r) {
  PoolConfig c;
  if (!r.is_object()) return c;
  const auto prefixes_path = r.path_of("prefixes");
  const ErrorMark prefixes_mark{r};
  const auto prefixes = read_list<Ipv4Prefix>(r, "prefixes", "IPv4 prefix", true);
  if (prefixes && prefixes->empty())
    r.error("prefixes", "must list at least one prefix (the pool would be empty)");

  // Prefixes that parsed and are unicast space, with their index in the document.
  std::vector<std::pair<Ipv4Prefix, std::size_t>> valid;
  if (prefixes) {
    for (std::size_t i = 0; i < prefixes->size(); ++i) {
      if (!(*prefixes)[i]) continue;
      const auto& p = *(*prefixes)[i];
      bool ok = true;
      for (const auto& res : reserved_ipv4()) {
        if (res.prefix.contains(p)) {
          r.errors().push_back({json_pointer_child(prefixes_path, i),
                                fmt::format("{} is {} space ({}): its addresses cannot be "
                                            "handed to clients",
                                            p.to_string(), res.what, res.prefix.to_string())});
          ok = false;
          break;
        }
        if (p.contains(res.prefix)) {
          r.errors().push_back({json_pointer_child(prefixes_path, i),
                                fmt::format("{} includes {} space ({}), whose addresses cannot "
                                            "be handed to clients",
                                            p.to_string(), res.what, res.prefix.to_string())});
          ok = false;
          break;
        }
      }
      if (ok) valid.emplace_back(p, i);
    }
  }

  // Overlaps. Sorted by network, a prefix overlaps an earlier one exactly when its network is
  // not past the end of the widest-reaching earlier prefix (CIDR blocks nest or are disjoint).
  // Each overlap is reported at the entry that comes later in the document, naming the other.
  auto sorted = valid;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const std::pair<Ipv4Prefix, std::size_t>* reach = nullptr;
  std::uint64_t total = 0;
  for (const auto& entry : sorted) {
    if (reach != nullptr && entry.first.network() <= reach->first.last()) {
      const auto& [later, earlier] =
          entry.second > reach->second ? std::pair{entry, *reach} : std::pair{*reach, entry};
      const auto message =
          later.first == earlier.first
              ? fmt::format("{} is listed twice (also at {})", later.first.to_string(),
                            json_pointer_child(prefixes_path, earlier.second))
              : fmt::format("{} overlaps {} at {}", later.first.to_string(),
                            earlier.first.to_string(),
                            json_pointer_child(prefixes_path, earlier.second));
      r.errors().push_back({json_pointer_child(prefixes_path, later.second), message});
    } else {
      total += entry.first.size();
    }
    if (reach == nullptr || entry.first.last() > reach->first.last()) reach = &entry;
  }
  for (const auto& entry : valid) c.prefixes.push_back(entry.first);
  const bool prefixes_ok = prefixes_mark.clean();
  if (prefixes_ok && total > Pool::kMaxAddresses) {
    r.error("prefixes", fmt::format("the prefixes hold {} addresses, more than the {} (a /8) a "
                                    "pool may have",
                                    total, Pool::kMaxAddresses));
  }

  const auto exclude_path = r.path_of("exclude");
  const ErrorMark exclude_mark{r};
  const auto excluded = read_list<Ipv4Address>(r, "exclude", "IPv4 address", false);
  if (excluded) {
    FirstSeen<Ipv4Address> seen;
    for (std::size_t i = 0; i < excluded->size(); ++i) {
      if (!(*excluded)[i]) continue;
      const auto a = *(*excluded)[i];
      const bool inside = std::any_of(c.prefixes.begin(), c.prefixes.end(),
                                      [&](const Ipv4Prefix& p) { return p.contains(a); });
      if (const auto first = seen.check(a, i)) {
        r.errors().push_back({json_pointer_child(exclude_path, i),
                              fmt::format("{} is listed twice (also at {})", a.to_string(),
                                          json_pointer_child(exclude_path, *first))});
      } else if (!inside && prefixes_ok) {
        r.errors().push_back({json_pointer_child(exclude_path, i),
                              fmt::format("{} is in no pool prefix (an exclusion must lie "
                                          "inside the pool)",
                                          a.to_string())});
      } else {
        c.excluded.push_back(a);
      }
    }
  }

  // Usable addresses, counted as Pool::make counts them (without allocating its 8 bytes per
  // address): every address, minus network and broadcast of each prefix up to /30, minus the
  // exclusions that are not one of those already. TEP addresses never count here: one inside
  // the pool is an error of its own (validate()).
  if (prefixes_ok && exclude_mark.clean() && total <= Pool::kMaxAddresses && total > 0) {
    std::set<Ipv4Address> gone;
    for (const auto& p : c.prefixes) {
      if (p.length() <= 30) {
        gone.insert(p.network());
        gone.insert(p.last());
      }
    }
    gone.insert(c.excluded.begin(), c.excluded.end());
    if (gone.size() >= total) {
      std::string list;
      for (const auto& p : c.prefixes) list += (list.empty() ? "" : ", ") + p.to_string();
      r.error_here(
          fmt::format("no usable address: every address of {} is a network, broadcast "
                      "or excluded address",
                      list));
    }
  }
  return c;
}

// --- lease -------------------------------------------------------------------------------------

LeaseConfig read_lease(ObjectReader& r) {
  LeaseConfig c;
  if (!r.is_object()) return c;
  const ErrorMark lifetime_mark{r};
  // Below a minute only makes sense in a lab (clients renew every lifetime), but it is valid.
  c.lifetime = r.optional_integer<Seconds>("lifetime", 2, kMaxLeaseSeconds).value_or(1440);
  const bool lifetime_ok = lifetime_mark.clean();
  const ErrorMark max_mark{r};
  const auto max = r.optional_integer<Seconds>("max_lifetime", 2, kMaxLeaseSeconds);
  c.max_lifetime = max.value_or(std::max<Seconds>(86400, c.lifetime));
  if (lifetime_ok && max && max_mark.clean() && *max < c.lifetime) {
    r.error("max_lifetime",
            fmt::format("must be at least lifetime ({}), got {}", c.lifetime, *max));
  }
  c.grace = r.optional_integer<Seconds>("grace", 0, kMaxLeaseSeconds).value_or(3600);
  return c;
}

// --- auth --------------------------------------------------------------------------------------

UserConfig read_user(ObjectReader& r) {
  UserConfig u;
  if (!r.is_object()) return u;
  const ErrorMark name_mark{r};
  u.name = r.string("name");
  if (name_mark.clean() &&
      (u.name.empty() || u.name.size() > kMaxUserLength || !name_chars(u.name, "._@-"))) {
    r.error("name", fmt::format("must be 1 to {} characters of [A-Za-z0-9._@-], got '{}'",
                                kMaxUserLength, u.name));
  }
  const ErrorMark digest_mark{r};
  const auto digest = r.string("digest_md5");
  if (digest_mark.clean()) {
    if (auto v = parse_verifier_hex(digest)) {
      u.verifier = *v;
    } else {
      r.error("digest_md5", fmt::format("must be 32 hex digits, MD5(name \":\" realm \":\" "
                                        "password), got {} characters",
                                        digest.size()));
    }
  }
  return u;
}

AuthConfig read_auth(ObjectReader& r) {
  AuthConfig c;
  if (!r.is_object()) return c;
  const ErrorMark realm_mark{r};
  c.realm = r.optional_string("realm").value_or("dstm");
  const bool realm_chars_ok = std::all_of(c.realm.begin(), c.realm.end(), [](char ch) {
    return ch >= 0x20 && ch <= 0x7e && ch != '"' && ch != '\\';
  });
  if (realm_mark.clean() &&
      (c.realm.empty() || c.realm.size() > kMaxRealmLength || !realm_chars_ok)) {
    r.error("realm", fmt::format("must be 1 to {} printable ASCII characters other than '\"' and "
                                 "'\\'",
                                 kMaxRealmLength));
  }
  c.anonymous = r.optional_boolean("anonymous").value_or(false);
  c.plain = r.optional_boolean("plain").value_or(true);
  c.users = r.optional_objects("users", read_user);
  const auto users_path = r.path_of("users");
  FirstSeen<std::string> seen;
  for (std::size_t i = 0; i < c.users.size(); ++i) {
    if (c.users[i].name.empty()) continue;  // missing or not a string: reported
    if (const auto first = seen.check(c.users[i].name, i)) {
      r.errors().push_back({child(users_path, i, "name"),
                            fmt::format("user '{}' is listed twice (also at {})", c.users[i].name,
                                        json_pointer_child(users_path, *first))});
    }
  }
  return c;
}

// --- teps --------------------------------------------------------------------------------------

TepConfig read_tep(ObjectReader& r) {
  TepConfig t;
  if (!r.is_object()) return t;
  const ErrorMark name_mark{r};
  t.name = r.string("name");
  if (name_mark.clean() &&
      (t.name.empty() || t.name.size() > kMaxNameLength || !name_chars(t.name, "._-"))) {
    r.error("name", fmt::format("must be 1 to {} characters of [A-Za-z0-9._-], got '{}'",
                                kMaxNameLength, t.name));
  }
  const ErrorMark ipv6_mark{r};
  t.ipv6 = r.ipv6("ipv6");
  if (ipv6_mark.clean()) {
    if (auto why = not_unicast(t.ipv6)) r.error("ipv6", *why);
  }
  const ErrorMark ipv4_mark{r};
  t.ipv4 = r.ipv4("ipv4");
  if (ipv4_mark.clean()) {
    if (auto why = not_unicast(t.ipv4)) r.error("ipv4", *why);
  }
  t.weight = r.optional_integer<std::uint32_t>("weight", 1, 1000).value_or(1);
  t.user = r.optional_string("user");
  const ErrorMark heartbeat_mark{r};
  t.heartbeat = r.optional_boolean("heartbeat").value_or(true);
  if (heartbeat_mark.clean() && t.heartbeat && !r.has("user")) {
    r.error("user",
            "missing: a TEP with heartbeat true must name the user it authenticates as (or set "
            "heartbeat to false)");
  }
  const ErrorMark keepalive_mark{r};
  t.keepalive = r.optional_ipv4("keepalive");
  if (keepalive_mark.clean() && t.keepalive) {
    if (auto why = not_unicast(*t.keepalive)) r.error("keepalive", *why);
  }
  return t;
}

// --- client, store, limits ---------------------------------------------------------------------

ClientOptions read_client(ObjectReader& r) {
  ClientOptions c;
  if (!r.is_object()) return c;
  const ErrorMark dns_mark{r};
  c.dns_server = r.ipv6("dns_server");
  if (dns_mark.clean()) {
    if (auto why = not_unicast(c.dns_server)) r.error("dns_server", *why);
  }
  c.keepalive_interval =
      r.optional_integer<std::uint32_t>("keepalive_interval", 5, 3600).value_or(30);
  return c;
}

StoreConfig read_store(ObjectReader& r) {
  StoreConfig c;
  if (!r.is_object()) return c;
  const ErrorMark path_mark{r};
  if (auto path = r.optional_string("path")) c.path = std::move(*path);
  if (path_mark.clean()) check_file_path(r, "path", c.path, 4096);
  if (r.has("sync"))
    c.sync =
        r.one_of<StoreSync>("sync", {{"full", StoreSync::Full}, {"normal", StoreSync::Normal}});
  return c;
}

LimitsConfig read_limits(ObjectReader& r) {
  LimitsConfig c;
  if (!r.is_object()) return c;
  // Reads an optional count into `field` (left at its default when absent); true if no error.
  const auto count = [&](std::string_view key, std::uint32_t& field, std::uint32_t max) {
    const ErrorMark mark{r};
    if (auto v = r.optional_integer<std::uint32_t>(key, 1, max)) field = *v;
    return mark.clean();
  };
  // A per-source limit may not exceed its total: that would be a limit that never applies.
  const auto at_most = [&](std::string_view key, std::uint32_t value, std::string_view total_key,
                           std::uint32_t total) {
    if (value <= total) return;
    r.error(key, fmt::format("{}{} exceeds {} ({}): a per-source limit must not exceed the total",
                             value, r.has(key) ? "" : " (the default)", total_key, total));
  };
  const bool conn_ok = count("max_connections", c.max_connections, kMaxCount);
  const bool conn_src_ok =
      count("max_connections_per_source", c.max_connections_per_source, kMaxCount);
  if (conn_ok && conn_src_ok)
    at_most("max_connections_per_source", c.max_connections_per_source, "max_connections",
            c.max_connections);
  const bool udp_ok = count("max_udp_sessions", c.max_udp_sessions, kMaxCount);
  const bool udp_src_ok =
      count("max_udp_sessions_per_source", c.max_udp_sessions_per_source, kMaxCount);
  if (udp_ok && udp_src_ok)
    at_most("max_udp_sessions_per_source", c.max_udp_sessions_per_source, "max_udp_sessions",
            c.max_udp_sessions);
  count("new_sessions_per_second", c.new_sessions_per_second, kMaxCount);
  count("new_sessions_burst", c.new_sessions_burst, kMaxCount);
  count("handshake_timeout", c.handshake_timeout, 3600);
  count("command_timeout", c.command_timeout, 3600);
  count("query_idle_timeout", c.query_idle_timeout, 86400);
  return c;
}

// --- rules across sections ---------------------------------------------------------------------

// TEPs against each other, the pool and the users; heartbeat_interval against tep_timeout.
// Values that could not be read are placeholders (empty names, unspecified addresses, zero
// times) and were reported already; the rules skip them.
void validate(Config& c, ObjectReader& s) {
  const auto teps_path = s.path_of("teps");
  const auto users_path = json_pointer_child(s.path_of("auth"), "users");
  // A user entry that could not be read would make every TEP naming it look unknown.
  const bool users_ok = !has_errors_under(s.errors(), users_path);
  const auto in_pool = [&](Ipv4Address a) -> std::optional<Ipv4Prefix> {
    for (const auto& p : c.pool.prefixes)
      if (p.contains(a)) return p;
    return std::nullopt;
  };
  FirstSeen<std::string> names;
  FirstSeen<std::string> users;
  FirstSeen<Ipv6Address> ipv6s;
  FirstSeen<Ipv4Address> ipv4s;
  const auto twice = [&](std::size_t i, std::string_view key, std::string_view what,
                         std::size_t first) {
    s.errors().push_back(
        {child(teps_path, i, key),
         fmt::format("{} is already used by {}", what, json_pointer_child(teps_path, first))});
  };
  for (std::size_t i = 0; i < c.teps.size(); ++i) {
    const auto& t = c.teps[i];
    if (!t.name.empty()) {
      if (const auto first = names.check(t.name, i))
        twice(i, "name", fmt::format("name '{}'", t.name), *first);
    }
    if (!t.ipv6.is_unspecified()) {
      if (const auto first = ipv6s.check(t.ipv6, i)) twice(i, "ipv6", t.ipv6.to_string(), *first);
    }
    if (!t.ipv4.is_unspecified()) {
      if (const auto first = ipv4s.check(t.ipv4, i)) {
        twice(i, "ipv4", t.ipv4.to_string(), *first);
      } else if (const auto p = in_pool(t.ipv4)) {
        s.errors().push_back({child(teps_path, i, "ipv4"),
                              fmt::format("{} is inside the pool ({}); a TEP's IPv4 address "
                                          "must lie outside it",
                                          t.ipv4.to_string(), p->to_string())});
      }
    }
    if (t.keepalive && !t.keepalive->is_unspecified()) {
      if (const auto p = in_pool(*t.keepalive)) {
        s.errors().push_back({child(teps_path, i, "keepalive"),
                              fmt::format("{} is inside the pool ({}), so it could be a "
                                          "client's address",
                                          t.keepalive->to_string(), p->to_string())});
      }
    }
    if (t.user) {
      const bool known = std::any_of(c.auth.users.begin(), c.auth.users.end(),
                                     [&](const UserConfig& u) { return u.name == *t.user; });
      if (!known && users_ok) {
        s.errors().push_back({child(teps_path, i, "user"),
                              fmt::format("unknown user '{}' (not in {})", *t.user, users_path)});
      } else if (const auto first = users.check(*t.user, i)) {
        twice(i, "user", fmt::format("user '{}'", *t.user), *first);
      }
    }
  }
  c.pool.tep_addresses.clear();
  for (const auto& t : c.teps) c.pool.tep_addresses.push_back(t.ipv4);

  if (c.tep_timeout != 0 && c.heartbeat_interval != 0 && c.heartbeat_interval >= c.tep_timeout) {
    s.error("heartbeat_interval",
            fmt::format("{}{} must be less than tep_timeout ({}), or a TEP dies between two "
                        "heartbeats",
                        c.heartbeat_interval, s.has("heartbeat_interval") ? "" : " (the default)",
                        c.tep_timeout));
  }
}

}  // namespace

Config read_config(ObjectReader& s) {
  Config c;
  if (!s.is_object()) return c;
  c.listen = s.optional_object("listen", read_listen).value_or(default_listen());
  c.pool = s.object("pool", read_pool);
  c.lease = s.optional_object("lease", read_lease).value_or(LeaseConfig{});
  c.auth = s.optional_object("auth", read_auth).value_or(AuthConfig{});

  const ErrorMark teps_mark{s};
  c.teps = s.objects("teps", read_tep);
  if (teps_mark.clean() && c.teps.empty())
    s.error("teps", "must list at least one TEP (clients need a tunnel end point)");
  if (c.teps.size() > kMaxTeps)
    s.error("teps", fmt::format("at most {} TEPs, got {}", kMaxTeps, c.teps.size()));

  c.tep_timeout = s.optional_integer<Seconds>("tep_timeout", 5, 3600).value_or(30);
  c.heartbeat_interval = s.optional_integer<Seconds>("heartbeat_interval", 1, 3599).value_or(10);
  c.client = s.object("client", read_client);
  c.store = s.optional_object("store", read_store).value_or(StoreConfig{});
  const ErrorMark socket_mark{s};
  if (auto path = s.optional_string("control_socket")) c.control_socket = std::move(*path);
  if (socket_mark.clean()) check_file_path(s, "control_socket", c.control_socket, kMaxSocketPath);
  c.limits = s.optional_object("limits", read_limits).value_or(LimitsConfig{});

  validate(c, s);
  return c;
}

platform::ConfigResult<Config> parse_config_document(std::string_view json) {
  return platform::parse_config(json, [](ObjectReader& root) {
    // The other daemons' sections: each daemon reads its own and ignores these.
    for (const char* other : {"tep", "client", "web", "anytun", "anycast", "system"}) root.ignore(other);
    return root.object("dstm_server", [](ObjectReader& section) { return read_config(section); });
  });
}

std::optional<tsp::Md5Digest> parse_verifier_hex(std::string_view text) noexcept {
  tsp::Md5Digest out{};
  if (text.size() != out.size() * 2) return std::nullopt;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(text[2 * i]);
    const int lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

}  // namespace dstm_server
