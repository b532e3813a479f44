// Tests for anycast_resolver/config.hpp: defaults, a full section, one table row per mistake
// (each at its JSON pointer), the policy/methods rule, unknown keys, other sections ignored.
#include "anycast_resolver/config.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

using anycast_resolver::Config;
using anycast_resolver::parse_config_document;
using anycast_resolver::Policy;
using namespace std::chrono_literals;

namespace {

core::Ipv6Address ip6(const char* text) {
  return core::Ipv6Address::parse(text).value();
}
core::Ipv6Prefix net6(const char* text) {
  return core::Ipv6Prefix::parse(text).value();
}

// Every key of the section, none at its default.
constexpr std::string_view kFull = R"({
  "anycast": {
    "resolver": {
      "prefixes": ["2001:db8:a::/48", "2001:db8:b::1/128"],
      "probe_all": true,
      "policy": "probe",
      "methods": ["icmp", "udp"],
      "port": 4600,
      "source": "2001:db8:1::5",
      "probe_timeout_ms": 100,
      "probe_attempts": 5,
      "negative_ttl": 10,
      "probe_ttl": 8,
      "answer_ttl_ms": 500,
      "idle_timeout": 120,
      "liveness_interval_ms": 2000,
      "liveness_misses": 4,
      "max_entries": 100,
      "max_waiters": 10,
      "socket": "/tmp/q.sock",
      "control_socket": "/tmp/c.sock"
    },
    "member": {"read by": "anycast-member"}
  },
  "dstm_server": {"x": 1},
  "tep": [],
  "client": null,
  "web": {},
  "anytun": 3,
  "system": "not ours"
})";

// kFull with the value at a JSON pointer replaced (json non-empty; a missing last key is added)
// or removed (json empty).
std::string edited(std::string_view pointer, std::string_view json) {
  auto doc = boost::json::parse(kFull);
  const auto slash = pointer.rfind('/');
  REQUIRE(slash != std::string_view::npos);
  boost::system::error_code ec;
  auto* parent = doc.find_pointer(pointer.substr(0, slash), ec);
  REQUIRE(parent != nullptr);
  const std::string last{pointer.substr(slash + 1)};
  auto& obj = parent->as_object();
  if (json.empty())
    REQUIRE(obj.erase(last) == 1);
  else
    obj[last] = boost::json::parse(json);
  return boost::json::serialize(doc);
}

std::vector<std::string> errors_of(std::string_view doc) {
  auto r = parse_config_document(doc);
  if (r) return {};
  std::vector<std::string> out;
  for (const auto& e : r.error()) out.push_back(e.to_string());
  return out;
}

}  // namespace

TEST_CASE("resolver config: a document without the section gives every default",
          "[anycast_resolver][config]") {
  for (const char* doc : {R"({})", R"({"anycast": {}})", R"({"anycast": {"resolver": {}}})",
                          R"({"anycast": {"member": {"anycast": []}}, "tep": []})"}) {
    INFO(doc);
    auto r = parse_config_document(doc);
    REQUIRE(r.has_value());
    const Config& c = *r;
    CHECK(c.prefixes.empty());
    CHECK_FALSE(c.probe_all);
    CHECK(c.policy == Policy::Secure);
    CHECK(c.methods == anycast_resolver::Methods{.udp = true, .icmp = false});
    CHECK(c.port == 4545);
    CHECK_FALSE(c.source.has_value());
    CHECK(c.probe_timeout == 250ms);
    CHECK(c.probe_attempts == 3);
    CHECK(c.negative_ttl == 30s);
    CHECK(c.probe_ttl == 16s);
    CHECK(c.answer_ttl == 1000ms);
    CHECK(c.idle_timeout == 60s);
    CHECK(c.liveness_interval == 1000ms);
    CHECK(c.liveness_misses == 3);
    CHECK(c.max_entries == 4096);
    CHECK(c.max_waiters == 1024);
    CHECK(c.socket == "/run/anycast-resolver/query.sock");
    CHECK(c.control_socket == "/run/anycast-resolver/control.sock");
  }
}

TEST_CASE("resolver config: a full section is read to exact values", "[anycast_resolver][config]") {
  auto r = parse_config_document(kFull);
  INFO(Catch::Detail::stringify(errors_of(kFull)));
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.prefixes == std::vector{net6("2001:db8:a::/48"), net6("2001:db8:b::1/128")});
  CHECK(c.probe_all);
  CHECK(c.policy == Policy::Probe);
  CHECK(c.methods == anycast_resolver::Methods{.udp = true, .icmp = true});
  CHECK(c.port == 4600);
  CHECK(c.source == std::optional{ip6("2001:db8:1::5")});
  CHECK(c.probe_timeout == 100ms);
  CHECK(c.probe_attempts == 5);
  CHECK(c.negative_ttl == 10s);
  CHECK(c.probe_ttl == 8s);
  CHECK(c.answer_ttl == 500ms);
  CHECK(c.idle_timeout == 120s);
  CHECK(c.liveness_interval == 2000ms);
  CHECK(c.liveness_misses == 4);
  CHECK(c.max_entries == 100);
  CHECK(c.max_waiters == 10);
  CHECK(c.socket == "/tmp/q.sock");
  CHECK(c.control_socket == "/tmp/c.sock");
}

TEST_CASE("resolver config: icmp alone is enough under the probe policy",
          "[anycast_resolver][config]") {
  auto r = parse_config_document(edited("/anycast/resolver/methods", R"(["icmp"])"));
  REQUIRE(r.has_value());
  CHECK(r->methods == anycast_resolver::Methods{.udp = false, .icmp = true});
}

TEST_CASE("resolver config: each mistake is reported at its JSON pointer",
          "[anycast_resolver][config]") {
  struct Row {
    const char* pointer;  // the value edited
    const char* json;     // its new value ("" = removed)
    const char* error;    // the one error expected
  };
  const Row rows[] = {
      {"/anycast/resolver/prefixes", R"("2001:db8::/32")",
       "/anycast/resolver/prefixes: must be an array of IPv6 prefixes"},
      {"/anycast/resolver/prefixes", R"(["2001:db8::"])",
       "/anycast/resolver/prefixes/0: must be an IPv6 prefix such as 2001:db8:a::/48"},
      {"/anycast/resolver/prefixes", R"(["2001:db8::/32", 7])",
       "/anycast/resolver/prefixes/1: must be an IPv6 prefix such as 2001:db8:a::/48"},
      {"/anycast/resolver/prefixes", R"(["2001:db8::/32", "2001:db8::/32"])",
       "/anycast/resolver/prefixes/1: 2001:db8::/32 is listed earlier"},
      {"/anycast/resolver/prefixes", R"(["ff02::/16"])",
       "/anycast/resolver/prefixes/0: ff02::/16 holds no global unicast address (multicast, "
       "link-local, IPv4-mapped, loopback or unspecified)"},
      {"/anycast/resolver/prefixes", R"(["fe80::/64"])",
       "/anycast/resolver/prefixes/0: fe80::/64 holds no global unicast address (multicast, "
       "link-local, IPv4-mapped, loopback or unspecified)"},
      {"/anycast/resolver/prefixes", R"(["::ffff:192.0.2.0/120"])",
       "/anycast/resolver/prefixes/0: ::ffff:192.0.2.0/120 holds no global unicast address "
       "(multicast, link-local, IPv4-mapped, loopback or unspecified)"},
      {"/anycast/resolver/probe_all", "1", "/anycast/resolver/probe_all: expected a boolean"},
      {"/anycast/resolver/policy", R"("strict")",
       "/anycast/resolver/policy: 'strict' is not one of 'probe', 'secure'"},
      {"/anycast/resolver/methods", "[]",
       R"(/anycast/resolver/methods: must be a non-empty array of "udp" and "icmp")"},
      {"/anycast/resolver/methods", R"(["udp", "tcp"])",
       R"(/anycast/resolver/methods/1: must be "udp" or "icmp")"},
      {"/anycast/resolver/methods", R"(["udp", "udp"])",
       R"(/anycast/resolver/methods/1: "udp" is listed earlier)"},
      {"/anycast/resolver/port", "0", "/anycast/resolver/port: must be between 1 and 65535, got 0"},
      {"/anycast/resolver/port", "65536",
       "/anycast/resolver/port: must be between 1 and 65535, got 65536"},
      {"/anycast/resolver/source", R"("ff02::1")",
       "/anycast/resolver/source: ff02::1 is not a global unicast address (or ::)"},
      {"/anycast/resolver/source", R"("fe80::1")",
       "/anycast/resolver/source: fe80::1 is not a global unicast address (or ::)"},
      {"/anycast/resolver/probe_timeout_ms", "9",
       "/anycast/resolver/probe_timeout_ms: must be between 10 and 10000, got 9"},
      {"/anycast/resolver/probe_attempts", "11",
       "/anycast/resolver/probe_attempts: must be between 1 and 10, got 11"},
      {"/anycast/resolver/negative_ttl", "0",
       "/anycast/resolver/negative_ttl: must be between 1 and 3600, got 0"},
      {"/anycast/resolver/probe_ttl", "3601",
       "/anycast/resolver/probe_ttl: must be between 1 and 3600, got 3601"},
      {"/anycast/resolver/answer_ttl_ms", "60001",
       "/anycast/resolver/answer_ttl_ms: must be between 0 and 60000, got 60001"},
      {"/anycast/resolver/idle_timeout", "0",
       "/anycast/resolver/idle_timeout: must be between 1 and 86400, got 0"},
      {"/anycast/resolver/liveness_interval_ms", "99",
       "/anycast/resolver/liveness_interval_ms: must be between 100 and 60000, got 99"},
      {"/anycast/resolver/liveness_misses", "101",
       "/anycast/resolver/liveness_misses: must be between 1 and 100, got 101"},
      {"/anycast/resolver/max_entries", "0",
       "/anycast/resolver/max_entries: must be between 1 and 1000000, got 0"},
      {"/anycast/resolver/max_waiters", "0",
       "/anycast/resolver/max_waiters: must be between 1 and 100000, got 0"},
      {"/anycast/resolver/socket", R"("relative.sock")",
       "/anycast/resolver/socket: must be an absolute path of at most 107 bytes"},
      {"/anycast/resolver/control_socket", R"("/tmp/q.sock")",
       "/anycast/resolver/control_socket: must differ from socket (the query socket)"},
      {"/anycast/resolver/port", "\"4545\"", ""},  // type errors: checked by prefix below
      {"/anycast/resolver/typo", "1", "/anycast/resolver/typo: unknown key"},
      {"/anycast/tipo", "{}", "/anycast/tipo: unknown key"},
      {"/dns", "{}", "/dns: unknown key"},
  };
  for (const auto& row : rows) {
    const auto doc = edited(row.pointer, row.json);
    INFO(row.pointer << " = " << row.json);
    const auto errors = errors_of(doc);
    REQUIRE(errors.size() == 1);
    if (std::string_view{row.error}.empty()) {
      CHECK(errors[0].starts_with(std::string{row.pointer} + ": "));
    } else {
      CHECK(errors[0].starts_with(row.error));
    }
  }
}

TEST_CASE("resolver config: secure without udp is an error at methods",
          "[anycast_resolver][config]") {
  auto doc = edited("/anycast/resolver/policy", R"("secure")");
  doc = boost::json::serialize([&] {
    auto v = boost::json::parse(doc);
    v.at_pointer("/anycast/resolver/methods") = boost::json::array{"icmp"};
    return v;
  }());
  CHECK(errors_of(doc) ==
        std::vector<std::string>{R"(/anycast/resolver/methods: policy "secure" needs "udp")"});
  // The default policy is secure too.
  CHECK(errors_of(R"({"anycast": {"resolver": {"methods": ["icmp"]}}})") ==
        std::vector<std::string>{R"(/anycast/resolver/methods: policy "secure" needs "udp")"});
  // An unreadable policy is not checked again.
  CHECK(errors_of(R"({"anycast": {"resolver": {"policy": 1, "methods": ["icmp"]}}})").size() == 1);
}

TEST_CASE("resolver config: several mistakes are all reported", "[anycast_resolver][config]") {
  const auto errors = errors_of(
      R"({"anycast": {"resolver": {"port": 0, "probe_attempts": 0, "extra": 1}}, "x": 2})");
  REQUIRE(errors.size() == 4);
  CHECK(errors[0].starts_with("/anycast/resolver/port: "));
  CHECK(errors[1].starts_with("/anycast/resolver/probe_attempts: "));
  CHECK(errors[2].starts_with("/anycast/resolver/extra: unknown key"));
  CHECK(errors[3].starts_with("/x: unknown key"));
}
