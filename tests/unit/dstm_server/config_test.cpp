// Tests for dstm_server/config.hpp: the default and a full document, defaults for absent keys,
// one table row per mistake (each at its JSON pointer), several mistakes reported together.
#include "dstm_server/config.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using dstm_server::Config;
using dstm_server::parse_config_document;

namespace {

Ipv4Address ip4(const char* text) {
  return Ipv4Address::parse(text).value();
}
Ipv6Address ip6(const char* text) {
  return Ipv6Address::parse(text).value();
}
Ipv4Prefix net(const char* text) {
  return Ipv4Prefix::parse(text).value();
}

// Every key of the section, none at its default. docs/config.md shows the same document.
constexpr std::string_view kFull = R"({
  "dstm_server": {
    "listen": {"ipv6": ["2001:db8:1::10"], "ipv4": ["192.0.2.10"], "port": 3700,
               "tcp": true, "udp": false},
    "pool": {"prefixes": ["198.51.100.0/24", "203.0.113.0/25"], "exclude": ["198.51.100.77"]},
    "lease": {"lifetime": 3600, "max_lifetime": 7200, "grace": 600},
    "auth": {
      "realm": "example.net", "anonymous": true, "plain": false,
      "users": [
        {"name": "tep-a", "digest_md5": "8f9ba46a209c810e84e8f97ec2b0ef2f"},
        {"name": "alice@example.net", "digest_md5": "876483F158251133A853FF739B1D9D33"}
      ]
    },
    "teps": [
      {"name": "tep-a", "ipv6": "2001:db8:2::1", "ipv4": "192.0.2.1", "weight": 2,
       "user": "tep-a", "heartbeat": true, "keepalive": "192.0.2.100"},
      {"name": "tep-b", "ipv6": "2001:db8:2::2", "ipv4": "192.0.2.2", "heartbeat": false}
    ],
    "tep_timeout": 60,
    "heartbeat_interval": 20,
    "client": {"dns_server": "2001:db8:53::53", "keepalive_interval": 45},
    "store": {"path": "/var/lib/dstm/leases.db", "sync": "normal"},
    "control_socket": "/run/dstm.sock",
    "limits": {
      "max_connections": 1000, "max_connections_per_source": 10,
      "max_udp_sessions": 2000, "max_udp_sessions_per_source": 20,
      "new_sessions_per_second": 5, "new_sessions_burst": 15,
      "handshake_timeout": 11, "command_timeout": 22, "query_idle_timeout": 33
    }
  },
  "tep": {"read by": "the tep daemon"},
  "client": {"anything": [1, 2]},
  "web": {},
  "anytun": null,
  "system": "not ours to check"
})";

// Only what has no default.
constexpr std::string_view kMinimal = R"({
  "dstm_server": {
    "pool": {"prefixes": ["198.51.100.0/24"]},
    "teps": [{"name": "t", "ipv6": "2001:db8:2::1", "ipv4": "192.0.2.1", "heartbeat": false}],
    "client": {"dns_server": "2001:db8:53::53"}
  }
})";

// kFull with the value at a JSON pointer replaced (json non-empty; a missing last key is added)
// or removed (json empty).
std::string edited(std::string_view pointer, std::string_view json, std::string_view base = kFull) {
  auto doc = boost::json::parse(base);
  const auto slash = pointer.rfind('/');
  REQUIRE(slash != std::string_view::npos);
  const auto parent_pointer = pointer.substr(0, slash);
  const std::string last{pointer.substr(slash + 1)};
  boost::json::value* parent = &doc;
  if (!parent_pointer.empty()) {
    boost::system::error_code ec;
    parent = doc.find_pointer(parent_pointer, ec);
    REQUIRE(parent != nullptr);
  }
  if (auto* obj = parent->if_object()) {
    if (json.empty()) {
      REQUIRE(obj->erase(last) == 1);
    } else {
      (*obj)[last] = boost::json::parse(json);
    }
  } else {
    auto& array = parent->as_array();
    const auto index = std::stoul(last);
    REQUIRE(index < array.size());
    if (json.empty()) {
      array.erase(array.begin() + static_cast<std::ptrdiff_t>(index));
    } else {
      array[index] = boost::json::parse(json);
    }
  }
  return boost::json::serialize(doc);
}

std::vector<std::string> errors_of(std::string_view doc) {
  auto r = parse_config_document(doc);
  if (r) return {};
  std::vector<std::string> out;
  for (const auto& e : r.error()) out.push_back(e.to_string());
  return out;
}

// One error per line, for INFO().
std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace

TEST_CASE("config: the embedded default document parses", "[dstm_server][config]") {
  auto r = parse_config_document(dstm_server::default_config_document());
  INFO(joined(errors_of(dstm_server::default_config_document())));
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.listen.ipv6 == std::vector{ip6("::1")});
  CHECK(c.listen.ipv4 == std::vector{ip4("127.0.0.1")});
  CHECK(c.listen.port == dstm_server::kTspPort);
  CHECK(c.pool.prefixes == std::vector{net("198.51.100.0/24")});
  CHECK(c.pool.tep_addresses == std::vector{ip4("192.0.2.1")});
  CHECK(c.auth.anonymous);
  REQUIRE(c.teps.size() == 1);
  CHECK(c.teps[0].name == "tep-1");
  CHECK_FALSE(c.teps[0].heartbeat);
  // What the daemon builds from it.
  CHECK(dstm_server::Pool::make(c.pool).has_value());
}

TEST_CASE("config: a full document is read to exact values", "[dstm_server][config]") {
  auto r = parse_config_document(kFull);
  INFO(joined(errors_of(kFull)));
  REQUIRE(r.has_value());
  const Config& c = *r;

  CHECK(c.listen.ipv6 == std::vector{ip6("2001:db8:1::10")});
  CHECK(c.listen.ipv4 == std::vector{ip4("192.0.2.10")});
  CHECK(c.listen.port == 3700);
  CHECK(c.listen.tcp);
  CHECK_FALSE(c.listen.udp);

  CHECK(c.pool.prefixes == std::vector{net("198.51.100.0/24"), net("203.0.113.0/25")});
  CHECK(c.pool.excluded == std::vector{ip4("198.51.100.77")});
  CHECK(c.pool.tep_addresses == std::vector{ip4("192.0.2.1"), ip4("192.0.2.2")});
  auto pool = dstm_server::Pool::make(c.pool);
  REQUIRE(pool.has_value());
  CHECK(pool->total() == 254 + 126 - 1);

  CHECK(c.lease.lifetime == 3600);
  CHECK(c.lease.max_lifetime == 7200);
  CHECK(c.lease.grace == 600);

  CHECK(c.auth.realm == "example.net");
  CHECK(c.auth.anonymous);
  CHECK_FALSE(c.auth.plain);
  REQUIRE(c.auth.users.size() == 2);
  CHECK(c.auth.users[0].name == "tep-a");
  CHECK(c.auth.users[0].verifier == tsp::digest_verifier("tep-a", "example.net", "secret"));
  CHECK(c.auth.users[1].name == "alice@example.net");
  // Upper-case hex is accepted.
  CHECK(c.auth.users[1].verifier ==
        tsp::digest_verifier("alice@example.net", "example.net", "wonderland"));

  REQUIRE(c.teps.size() == 2);
  CHECK(c.teps[0].name == "tep-a");
  CHECK(c.teps[0].ipv6 == ip6("2001:db8:2::1"));
  CHECK(c.teps[0].ipv4 == ip4("192.0.2.1"));
  CHECK(c.teps[0].weight == 2);
  CHECK(c.teps[0].user == std::optional<std::string>{"tep-a"});
  CHECK(c.teps[0].heartbeat);
  CHECK(c.teps[0].keepalive == std::optional{ip4("192.0.2.100")});
  CHECK(c.teps[1].name == "tep-b");
  CHECK(c.teps[1].weight == 1);
  CHECK_FALSE(c.teps[1].user.has_value());
  CHECK_FALSE(c.teps[1].heartbeat);
  CHECK_FALSE(c.teps[1].keepalive.has_value());

  CHECK(c.tep_timeout == 60);
  CHECK(c.heartbeat_interval == 20);
  CHECK(c.client.dns_server == ip6("2001:db8:53::53"));
  CHECK(c.client.keepalive_interval == 45);
  CHECK(c.store.path == "/var/lib/dstm/leases.db");
  CHECK(c.store.sync == dstm_server::StoreSync::Normal);
  CHECK(c.control_socket == "/run/dstm.sock");

  CHECK(c.limits.max_connections == 1000);
  CHECK(c.limits.max_connections_per_source == 10);
  CHECK(c.limits.max_udp_sessions == 2000);
  CHECK(c.limits.max_udp_sessions_per_source == 20);
  CHECK(c.limits.new_sessions_per_second == 5);
  CHECK(c.limits.new_sessions_burst == 15);
  CHECK(c.limits.handshake_timeout == 11);
  CHECK(c.limits.command_timeout == 22);
  CHECK(c.limits.query_idle_timeout == 33);
}

TEST_CASE("config: absent keys take the documented defaults", "[dstm_server][config]") {
  auto r = parse_config_document(kMinimal);
  INFO(joined(errors_of(kMinimal)));
  REQUIRE(r.has_value());
  const Config& c = *r;
  const dstm_server::LimitsConfig limits;

  CHECK(c.listen.ipv6 == std::vector{ip6("::")});
  CHECK(c.listen.ipv4 == std::vector{ip4("0.0.0.0")});
  CHECK(c.listen.port == 3653);
  CHECK(c.listen.tcp);
  CHECK(c.listen.udp);
  CHECK(c.pool.excluded.empty());
  CHECK(c.lease.lifetime == 1440);
  CHECK(c.lease.max_lifetime == 86400);
  CHECK(c.lease.grace == 3600);
  CHECK(c.auth.realm == "dstm");
  CHECK_FALSE(c.auth.anonymous);
  CHECK(c.auth.plain);
  CHECK(c.auth.users.empty());
  CHECK(c.teps[0].weight == 1);
  CHECK(c.tep_timeout == 30);
  CHECK(c.heartbeat_interval == 10);
  CHECK(c.client.keepalive_interval == 30);
  CHECK(c.store.path == "/var/lib/appl/dstm-server/leases.db");
  CHECK(c.store.sync == dstm_server::StoreSync::Full);
  CHECK(c.control_socket == "/run/appl/dstm-server.sock");
  CHECK(c.limits.max_connections == limits.max_connections);
  CHECK(c.limits.max_connections_per_source == limits.max_connections_per_source);
  CHECK(c.limits.max_udp_sessions == limits.max_udp_sessions);
  CHECK(c.limits.max_udp_sessions_per_source == limits.max_udp_sessions_per_source);
  CHECK(c.limits.new_sessions_per_second == limits.new_sessions_per_second);
  CHECK(c.limits.new_sessions_burst == limits.new_sessions_burst);
  CHECK(c.limits.handshake_timeout == limits.handshake_timeout);
  CHECK(c.limits.command_timeout == limits.command_timeout);
  CHECK(c.limits.query_idle_timeout == limits.query_idle_timeout);

  SECTION("a present listen object has no default addresses") {
    auto v6_only = parse_config_document(
        edited("/dstm_server/listen", R"({"ipv6": ["::"], "port": 0})", kMinimal));
    REQUIRE(v6_only.has_value());
    CHECK(v6_only->listen.ipv6 == std::vector{ip6("::")});
    CHECK(v6_only->listen.ipv4.empty());
    CHECK(v6_only->listen.port == 0);
  }
  SECTION("max_lifetime defaults to the larger of a day and lifetime") {
    auto long_lease =
        parse_config_document(edited("/dstm_server/lease", R"({"lifetime": 100000})", kMinimal));
    REQUIRE(long_lease.has_value());
    CHECK(long_lease->lease.max_lifetime == 100000);
  }
  SECTION("the heartbeat TEP of the full document without the limits section") {
    auto no_limits = parse_config_document(edited("/dstm_server/limits", ""));
    REQUIRE(no_limits.has_value());
    CHECK(no_limits->limits.max_connections == limits.max_connections);
  }
}

TEST_CASE("config: each mistake is reported at its JSON pointer", "[dstm_server][config]") {
  struct Row {
    std::string pointer;  // edited in kFull
    std::string json;     // the new value; empty: the key is removed
    std::vector<std::string> errors;
  };
  const std::vector<Row> rows = {
      // Document and section.
      {"/dstm_server/colour", R"("blue")", {"/dstm_server/colour: unknown key"}},
      {"/dstm_server/tep_timout",
       "30",
       {"/dstm_server/tep_timout: unknown key (did you mean 'tep_timeout'?)"}},
      {"/dhcp", "{}", {"/dhcp: unknown key"}},
      {"/dstm_server", "", {"/dstm_server: missing required value"}},
      {"/dstm_server", "[]", {"/dstm_server: expected an object, got an array"}},
      // listen
      {"/dstm_server/listen/port",
       "65536",
       {"/dstm_server/listen/port: must be between 0 and 65535, got 65536"}},
      {"/dstm_server/listen/udp",
       R"("no")",
       {"/dstm_server/listen/udp: expected a boolean, got a string"}},
      {"/dstm_server/listen/tcp",
       "false",
       {"/dstm_server/listen: tcp and udp are both false: nothing would listen"}},
      {"/dstm_server/listen",
       R"({"ipv6": [], "ipv4": []})",
       {"/dstm_server/listen: no address to listen on: ipv6 and ipv4 are both absent or empty"}},
      {"/dstm_server/listen/ipv4",
       R"(["192.0.2.10", "192.0.2.010"])",
       {"/dstm_server/listen/ipv4/1: invalid IPv4 address (leading zero in a decimal field)"}},
      {"/dstm_server/listen/ipv6",
       R"(["2001:db8:1::10", "2001:DB8:1::10"])",
       {"/dstm_server/listen/ipv6/1: 2001:db8:1::10 is listed twice (also at "
        "/dstm_server/listen/ipv6/0)"}},
      {"/dstm_server/listen/ipv6",
       R"(["2001:db8:1::10", "::"])",
       {"/dstm_server/listen/ipv6/0: 2001:db8:1::10 is already covered by :: at "
        "/dstm_server/listen/ipv6/1"}},
      {"/dstm_server/listen/ipv6",
       R"(["ff02::1"])",
       {"/dstm_server/listen/ipv6/0: ff02::1 is a multicast address"}},
      {"/dstm_server/listen/ipv4",
       R"(["255.255.255.255"])",
       {"/dstm_server/listen/ipv4/0: 255.255.255.255 is not a unicast address"}},
      // pool
      {"/dstm_server/pool", "", {"/dstm_server/pool: missing required value"}},
      {"/dstm_server/pool/prefixes",
       "[]",
       {"/dstm_server/pool/prefixes: must list at least one prefix (the pool would be empty)"}},
      {"/dstm_server/pool/prefixes",
       R"(["198.51.100.1/24"])",
       {"/dstm_server/pool/prefixes/0: invalid IPv4 prefix (host bits set in prefix)"}},
      {"/dstm_server/pool/prefixes",
       R"(["198.51.100.0/24", "198.51.100.128/25"])",
       {"/dstm_server/pool/prefixes/1: 198.51.100.128/25 overlaps 198.51.100.0/24 at "
        "/dstm_server/pool/prefixes/0"}},
      {"/dstm_server/pool/prefixes",
       R"(["198.51.100.128/25", "198.51.100.0/24"])",
       {"/dstm_server/pool/prefixes/1: 198.51.100.0/24 overlaps 198.51.100.128/25 at "
        "/dstm_server/pool/prefixes/0"}},
      {"/dstm_server/pool/prefixes",
       R"(["198.51.100.0/24", "203.0.113.0/24", "198.51.100.0/24"])",
       {"/dstm_server/pool/prefixes/2: 198.51.100.0/24 is listed twice (also at "
        "/dstm_server/pool/prefixes/0)"}},
      {"/dstm_server/pool/prefixes",
       R"(["224.1.0.0/16"])",
       {"/dstm_server/pool/prefixes/0: 224.1.0.0/16 is multicast space (224.0.0.0/4): its "
        "addresses cannot be handed to clients"}},
      {"/dstm_server/pool/prefixes",
       R"(["127.0.0.0/8"])",
       {"/dstm_server/pool/prefixes/0: 127.0.0.0/8 is loopback space (127.0.0.0/8): its "
        "addresses cannot be handed to clients"}},
      {"/dstm_server/pool/prefixes",
       R"(["0.0.0.0/16"])",
       {"/dstm_server/pool/prefixes/0: 0.0.0.0/16 is \"this network\" space (0.0.0.0/8): its "
        "addresses cannot be handed to clients"}},
      {"/dstm_server/pool/prefixes",
       R"(["240.0.0.0/24"])",
       {"/dstm_server/pool/prefixes/0: 240.0.0.0/24 is reserved (and broadcast) space "
        "(240.0.0.0/4): its addresses cannot be handed to clients"}},
      {"/dstm_server/pool/prefixes",
       R"(["192.0.0.0/2"])",
       {"/dstm_server/pool/prefixes/0: 192.0.0.0/2 includes multicast space (224.0.0.0/4), "
        "whose addresses cannot be handed to clients"}},
      {"/dstm_server/pool",
       R"({"prefixes": ["10.0.0.0/7"]})",
       {"/dstm_server/pool/prefixes: the prefixes hold 33554432 addresses, more than the "
        "16777216 (a /8) a pool may have"}},
      {"/dstm_server/pool/exclude",
       R"(["203.0.113.200"])",
       {"/dstm_server/pool/exclude/0: 203.0.113.200 is in no pool prefix (an exclusion must lie "
        "inside the pool)"}},
      {"/dstm_server/pool/exclude",
       R"(["198.51.100.7", "198.51.100.7"])",
       {"/dstm_server/pool/exclude/1: 198.51.100.7 is listed twice (also at "
        "/dstm_server/pool/exclude/0)"}},
      {"/dstm_server/pool",
       R"({"prefixes": ["198.51.100.0/30", "198.51.100.4/32"],
           "exclude": ["198.51.100.1", "198.51.100.2", "198.51.100.4"]})",
       {"/dstm_server/pool: no usable address: every address of 198.51.100.0/30, "
        "198.51.100.4/32 is a network, broadcast or excluded address"}},
      {"/dstm_server/pool/colour", R"("red")", {"/dstm_server/pool/colour: unknown key"}},
      // lease
      {"/dstm_server/lease/lifetime",
       "1",
       {"/dstm_server/lease/lifetime: must be between 2 and 604800, got 1"}},
      {"/dstm_server/lease/max_lifetime",
       "3599",
       {"/dstm_server/lease/max_lifetime: must be at least lifetime (3600), got 3599"}},
      {"/dstm_server/lease/grace",
       "-1",
       {"/dstm_server/lease/grace: must be between 0 and 604800, got -1"}},
      // auth
      {"/dstm_server/auth/realm",
       R"("")",
       {"/dstm_server/auth/realm: must be 1 to 64 printable ASCII characters other than '\"' and "
        "'\\'"}},
      {"/dstm_server/auth/realm",
       R"("a\"b")",
       {"/dstm_server/auth/realm: must be 1 to 64 printable ASCII characters other than '\"' and "
        "'\\'"}},
      {"/dstm_server/auth/users/1/name",
       R"("alice smith")",
       {"/dstm_server/auth/users/1/name: must be 1 to 64 characters of [A-Za-z0-9._@-], got "
        "'alice smith'"}},
      {"/dstm_server/auth/users/1/name",
       R"("tep-a")",
       {"/dstm_server/auth/users/1/name: user 'tep-a' is listed twice (also at "
        "/dstm_server/auth/users/0)"}},
      {"/dstm_server/auth/users/1/digest_md5",
       R"("876483f158251133a853ff739b1d9d3")",
       {"/dstm_server/auth/users/1/digest_md5: must be 32 hex digits, MD5(name \":\" realm \":\" "
        "password), got 31 characters"}},
      {"/dstm_server/auth/users/1/digest_md5",
       R"("876483f158251133a853ff739b1d9d3g")",
       {"/dstm_server/auth/users/1/digest_md5: must be 32 hex digits, MD5(name \":\" realm \":\" "
        "password), got 32 characters"}},
      {"/dstm_server/auth/users/1/password",
       R"("wonderland")",
       {"/dstm_server/auth/users/1/password: unknown key"}},
      // teps
      {"/dstm_server/teps",
       "[]",
       {"/dstm_server/teps: must list at least one TEP (clients need a tunnel end point)"}},
      {"/dstm_server/teps", "", {"/dstm_server/teps: missing required value"}},
      {"/dstm_server/teps/1/name",
       R"("tep b")",
       {"/dstm_server/teps/1/name: must be 1 to 32 characters of [A-Za-z0-9._-], got 'tep b'"}},
      {"/dstm_server/teps/1/name",
       R"("tep-a")",
       {"/dstm_server/teps/1/name: name 'tep-a' is already used by /dstm_server/teps/0"}},
      {"/dstm_server/teps/1/ipv6",
       R"("2001:db8:2::1")",
       {"/dstm_server/teps/1/ipv6: 2001:db8:2::1 is already used by /dstm_server/teps/0"}},
      {"/dstm_server/teps/1/ipv6",
       R"("::")",
       {"/dstm_server/teps/1/ipv6: :: is not a unicast address"}},
      {"/dstm_server/teps/1/ipv6",
       R"("ff05::2")",
       {"/dstm_server/teps/1/ipv6: ff05::2 is a multicast address, not a unicast one"}},
      {"/dstm_server/teps/1/ipv4",
       R"("192.0.2.1")",
       {"/dstm_server/teps/1/ipv4: 192.0.2.1 is already used by /dstm_server/teps/0"}},
      {"/dstm_server/teps/1/ipv4",
       R"("203.0.113.9")",
       {"/dstm_server/teps/1/ipv4: 203.0.113.9 is inside the pool (203.0.113.0/25); a TEP's "
        "IPv4 address must lie outside it"}},
      {"/dstm_server/teps/1/ipv4",
       R"("239.1.1.1")",
       {"/dstm_server/teps/1/ipv4: 239.1.1.1 is not a unicast address (it is in 224.0.0.0/4, "
        "multicast)"}},
      {"/dstm_server/teps/0/keepalive",
       R"("198.51.100.1")",
       {"/dstm_server/teps/0/keepalive: 198.51.100.1 is inside the pool (198.51.100.0/24), so it "
        "could be a client's address"}},
      {"/dstm_server/teps/1/weight",
       "0",
       {"/dstm_server/teps/1/weight: must be between 1 and 1000, got 0"}},
      {"/dstm_server/teps/0/user",
       R"("bob")",
       {"/dstm_server/teps/0/user: unknown user 'bob' (not in /dstm_server/auth/users)"}},
      {"/dstm_server/teps/1/user",
       R"("tep-a")",
       {"/dstm_server/teps/1/user: user 'tep-a' is already used by /dstm_server/teps/0"}},
      {"/dstm_server/teps/0/user",
       "",
       {"/dstm_server/teps/0/user: missing: a TEP with heartbeat true must name the user it "
        "authenticates as (or set heartbeat to false)"}},
      {"/dstm_server/teps/1/heartbeat",
       "",
       {"/dstm_server/teps/1/user: missing: a TEP with heartbeat true must name the user it "
        "authenticates as (or set heartbeat to false)"}},
      {"/dstm_server/teps/1",
       R"("tep-b")",
       {"/dstm_server/teps/1: expected an object, got a string"}},
      // times, client, store, control socket
      {"/dstm_server/tep_timeout",
       "4",
       {"/dstm_server/tep_timeout: must be between 5 and 3600, got 4"}},
      {"/dstm_server/heartbeat_interval",
       "60",
       {"/dstm_server/heartbeat_interval: 60 must be less than tep_timeout (60), or a TEP dies "
        "between two heartbeats"}},
      {"/dstm_server/tep_timeout",
       "10",
       {"/dstm_server/heartbeat_interval: 20 must be less than tep_timeout (10), or a TEP dies "
        "between two heartbeats"}},
      {"/dstm_server/client", "", {"/dstm_server/client: missing required value"}},
      {"/dstm_server/client/dns_server",
       "",
       {"/dstm_server/client/dns_server: missing required value"}},
      {"/dstm_server/client/dns_server",
       R"("192.0.2.53")",
       {"/dstm_server/client/dns_server: invalid IPv6 address (wrong number of fields)"}},
      {"/dstm_server/client/keepalive_interval",
       "4",
       {"/dstm_server/client/keepalive_interval: must be between 5 and 3600, got 4"}},
      {"/dstm_server/store/path",
       R"("leases.db")",
       {"/dstm_server/store/path: must be an absolute path, got 'leases.db'"}},
      {"/dstm_server/store/path", R"("")", {"/dstm_server/store/path: must not be empty"}},
      {"/dstm_server/store/sync",
       R"("off")",
       {"/dstm_server/store/sync: 'off' is not one of 'full', 'normal'"}},
      {"/dstm_server/control_socket",
       '"' + std::string(108, 'x').replace(0, 1, "/") + '"',
       {"/dstm_server/control_socket: must be at most 107 bytes, got 108"}},
      {"/dstm_server/control_socket",
       R"("/run/")",
       {"/dstm_server/control_socket: must name a file, not a directory, got '/run/'"}},
      // limits
      {"/dstm_server/limits/max_connections",
       "0",
       {"/dstm_server/limits/max_connections: must be between 1 and 1000000, got 0"}},
      {"/dstm_server/limits/max_connections_per_source",
       "1001",
       {"/dstm_server/limits/max_connections_per_source: 1001 exceeds max_connections (1000): a "
        "per-source limit must not exceed the total"}},
      {"/dstm_server/limits",
       R"({"max_udp_sessions": 16})",
       {"/dstm_server/limits/max_udp_sessions_per_source: 32 (the default) exceeds "
        "max_udp_sessions (16): a per-source limit must not exceed the total"}},
      {"/dstm_server/limits/handshake_timeout",
       "3601",
       {"/dstm_server/limits/handshake_timeout: must be between 1 and 3600, got 3601"}},
  };
  for (const auto& row : rows) {
    const auto doc = edited(row.pointer, row.json);
    INFO(row.pointer << " = " << (row.json.empty() ? "(removed)" : row.json));
    CHECK(errors_of(doc) == row.errors);
  }
}

TEST_CASE("config: a default that breaks a rule is an error, not quietly adjusted",
          "[dstm_server][config]") {
  // heartbeat_interval's default (10) is not less than this tep_timeout.
  CHECK(errors_of(edited("/dstm_server/tep_timeout", "5", kMinimal)) ==
        std::vector<std::string>{
            "/dstm_server/heartbeat_interval: 10 (the default) must be less than tep_timeout "
            "(5), or a TEP dies between two heartbeats"});
  // An invalid value is never replaced by the default: the document is rejected.
  CHECK_FALSE(parse_config_document(edited("/dstm_server/lease", R"({"lifetime": 1})", kMinimal))
                  .has_value());
}

TEST_CASE("config: every mistake in a document is reported, in reading order",
          "[dstm_server][config]") {
  constexpr std::string_view doc = R"({
    "dstm_server": {
      "listen": {"port": -1, "tcp": false, "udp": false},
      "pool": {"prefixes": ["198.51.100.0/24", "198.51.100.0/25", "300.0.0.0/8"],
               "exclude": ["198.51.100.0.1"]},
      "auth": {"users": [{"name": "tep-a", "digest_md5": "xyz"}, {"name": "tep-a"}]},
      "teps": [
        {"name": "a", "ipv6": "2001:db8:2::1", "ipv4": "198.51.100.9", "user": "nobody"},
        {"name": "a", "ipv6": "2001:db8:2::1", "ipv4": "192.0.2.2", "heartbeat": false,
         "wieght": 3}
      ],
      "client": {},
      "limits": {"max_connections": 8}
    },
    "extra": true
  })";
  CHECK(errors_of(doc) ==
        std::vector<std::string>{
            "/dstm_server/listen: no address to listen on: ipv6 and ipv4 are both absent or empty",
            "/dstm_server/listen/port: must be between 0 and 65535, got -1",
            "/dstm_server/listen: tcp and udp are both false: nothing would listen",
            "/dstm_server/pool/prefixes/2: invalid IPv4 prefix (field out of range)",
            "/dstm_server/pool/prefixes/1: 198.51.100.0/25 overlaps 198.51.100.0/24 at "
            "/dstm_server/pool/prefixes/0",
            "/dstm_server/pool/exclude/0: invalid IPv4 address (wrong number of fields)",
            "/dstm_server/auth/users/0/digest_md5: must be 32 hex digits, MD5(name \":\" realm "
            "\":\" password), got 3 characters",
            "/dstm_server/auth/users/1/digest_md5: missing required value",
            "/dstm_server/auth/users/1/name: user 'tep-a' is listed twice (also at "
            "/dstm_server/auth/users/0)",
            "/dstm_server/teps/1/wieght: unknown key (did you mean 'weight'?)",
            "/dstm_server/client/dns_server: missing required value",
            "/dstm_server/limits/max_connections_per_source: 32 (the default) exceeds "
            "max_connections (8): a per-source limit must not exceed the total",
            "/dstm_server/teps/0/ipv4: 198.51.100.9 is inside the pool (198.51.100.0/24); a "
            "TEP's IPv4 address must lie outside it",
            "/dstm_server/teps/1/name: name 'a' is already used by /dstm_server/teps/0",
            "/dstm_server/teps/1/ipv6: 2001:db8:2::1 is already used by /dstm_server/teps/0",
            "/extra: unknown key",
        });
}

TEST_CASE("config: a document that is not JSON or not an object", "[dstm_server][config]") {
  CHECK(errors_of("[1, 2]") ==
        std::vector<std::string>{"(document): expected an object, got an array"});
  CHECK(errors_of("{\"dstm_server\": {},}").size() == 1);
  const auto missing = errors_of("{\"dstm_server\": {}}");
  CHECK(missing == std::vector<std::string>{"/dstm_server/pool: missing required value",
                                            "/dstm_server/teps: missing required value",
                                            "/dstm_server/client: missing required value"});
}

TEST_CASE("config: the pool check agrees with Pool::make", "[dstm_server][config]") {
  // {prefixes, exclude}: accepted by the config exactly when Pool::make builds a pool.
  const std::vector<std::pair<std::string, std::string>> pools = {
      {R"(["198.51.100.0/30"])", R"(["198.51.100.1"])"},
      {R"(["198.51.100.0/30"])", R"(["198.51.100.1", "198.51.100.2"])"},
      {R"(["198.51.100.0/31"])", R"(["198.51.100.0"])"},
      {R"(["198.51.100.0/31"])", R"(["198.51.100.0", "198.51.100.1"])"},
      {R"(["198.51.100.7/32"])", R"([])"},
      {R"(["198.51.100.7/32"])", R"(["198.51.100.7"])"},
      {R"(["198.51.100.0/30", "198.51.100.4/32"])", R"(["198.51.100.0", "198.51.100.4"])"},
  };
  for (const auto& [prefixes, exclude] : pools) {
    const auto doc =
        edited("/dstm_server/pool",
               R"({"prefixes": )" + prefixes + R"(, "exclude": )" + exclude + "}", kMinimal);
    INFO(doc);
    const auto pool_json = boost::json::parse(doc).at("dstm_server").at("pool");
    dstm_server::PoolConfig pc;
    for (const auto& p : pool_json.at("prefixes").as_array())
      pc.prefixes.push_back(Ipv4Prefix::parse(p.as_string()).value());
    for (const auto& a : pool_json.at("exclude").as_array())
      pc.excluded.push_back(Ipv4Address::parse(a.as_string()).value());
    const auto made = dstm_server::Pool::make(pc);
    const auto parsed = parse_config_document(doc);
    CHECK(made.has_value() == parsed.has_value());
    if (!made) CHECK(made.error() == dstm_server::Errc::PoolEmpty);
  }
}

TEST_CASE("config: verifiers as hex", "[dstm_server][config]") {
  const auto v = tsp::digest_verifier("tep-b", "dstm", "pw");
  CHECK(tsp::to_hex(v) == "159cd4409c497d6e0e751656d8ca0145");
  CHECK(dstm_server::parse_verifier_hex("159cd4409c497d6e0e751656d8ca0145") == std::optional{v});
  CHECK(dstm_server::parse_verifier_hex("159CD4409C497D6E0E751656D8CA0145") == std::optional{v});
  for (std::string_view bad :
       {"", "159cd4409c497d6e0e751656d8ca014", "159cd4409c497d6e0e751656d8ca01450",
        "159cd4409c497d6e0e751656d8ca014g", " 59cd4409c497d6e0e751656d8ca0145",
        "0x9cd4409c497d6e0e751656d8ca0145"}) {
    INFO(bad);
    CHECK_FALSE(dstm_server::parse_verifier_hex(bad).has_value());
  }
  tsp::Md5Digest zeros{};
  CHECK(tsp::to_hex(zeros) == std::string(32, '0'));
}

TEST_CASE("config: at most 1024 TEPs", "[dstm_server][config]") {
  const auto teps_with = [](std::size_t n) {
    boost::json::array teps;
    for (std::size_t i = 0; i < n; ++i) {
      teps.push_back(boost::json::object{
          {"name", "t" + std::to_string(i)},
          {"ipv6", "2001:db8:2::" + std::to_string(i + 1)},
          {"ipv4", "192.0." + std::to_string(2 + i / 256) + "." + std::to_string(i % 256)},
          {"heartbeat", false}});
    }
    return edited("/dstm_server/teps", boost::json::serialize(teps), kMinimal);
  };
  CHECK(errors_of(teps_with(1024)).empty());
  CHECK(errors_of(teps_with(1025)) ==
        std::vector<std::string>{"/dstm_server/teps: at most 1024 TEPs, got 1025"});
}
