// Tests for anycast_member/config.hpp: a full document, the defaults, one table row per mistake
// (each at its JSON pointer), and the sections the member does not read.
#include "anycast_member/config.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

using anycast_member::Config;
using anycast_member::parse_config_document;
using core::Ipv6Address;

namespace {

Ipv6Address ip6(const char* text) {
  return Ipv6Address::parse(text).value();
}

// Every key of the section, none at its default, next to every other section of the document.
constexpr std::string_view kFull = R"({
  "anycast": {
    "member": {
      "anycast": ["2001:db8:aaaa::1", "2001:db8:aaaa::2"],
      "unicast": "2001:db8:1::10",
      "listen": "2001:db8:1::10",
      "port": 4646,
      "join": {"interface": "eth0"},
      "answer_ttl": 30,
      "max_pending": 100,
      "probes_per_second": 7,
      "control_socket": "/run/test/member.sock"
    },
    "resolver": {"read by": "anycast-resolver", "prefixes": 12}
  },
  "dstm_server": {"anything": 1},
  "tep": [1, 2],
  "client": null,
  "web": {},
  "anytun": "x",
  "system": {"hostname": "m1"}
})";

// Only what has no default.
constexpr std::string_view kMinimal = R"({
  "anycast": {"member": {"anycast": ["2001:db8:aaaa::1"], "unicast": "2001:db8:1::10"}}
})";

// kFull with the value at a JSON pointer replaced (json non-empty; a missing last key is added)
// or removed (json empty).
std::string edited(std::string_view pointer, std::string_view json, std::string_view base = kFull) {
  auto doc = boost::json::parse(base);
  const auto slash = pointer.rfind('/');
  REQUIRE(slash != std::string_view::npos);
  boost::json::value* parent = &doc;
  if (const auto parent_pointer = pointer.substr(0, slash); !parent_pointer.empty()) {
    boost::system::error_code ec;
    parent = doc.find_pointer(parent_pointer, ec);
    REQUIRE(parent != nullptr);
  }
  auto& obj = parent->as_object();
  const std::string last{pointer.substr(slash + 1)};
  if (json.empty()) {
    REQUIRE(obj.erase(last) == 1);
  } else {
    obj[last] = boost::json::parse(json);
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

}  // namespace

TEST_CASE("member config: a full document is read to exact values", "[anycast_member]") {
  auto r = parse_config_document(kFull);
  INFO(Catch::Detail::stringify(errors_of(kFull)));
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.anycast == std::vector{ip6("2001:db8:aaaa::1"), ip6("2001:db8:aaaa::2")});
  CHECK(c.unicast == ip6("2001:db8:1::10"));
  CHECK(c.listen == ip6("2001:db8:1::10"));
  CHECK(c.port == 4646);
  REQUIRE(c.join.has_value());
  CHECK(c.join->interface == "eth0");
  CHECK(c.answer_ttl == 30);
  CHECK(c.max_pending == 100);
  CHECK(c.probes_per_second == 7);
  CHECK(c.control_socket == "/run/test/member.sock");
}

TEST_CASE("member config: absent keys take the documented defaults", "[anycast_member]") {
  auto r = parse_config_document(kMinimal);
  INFO(Catch::Detail::stringify(errors_of(kMinimal)));
  REQUIRE(r.has_value());
  const Config& c = *r;
  CHECK(c.anycast == std::vector{ip6("2001:db8:aaaa::1")});
  CHECK(c.unicast == ip6("2001:db8:1::10"));
  CHECK(c.listen == ip6("::"));
  CHECK(c.port == 4545);
  CHECK_FALSE(c.join.has_value());
  CHECK(c.answer_ttl == 16);
  CHECK(c.max_pending == 4096);
  CHECK(c.probes_per_second == 50);
  CHECK(c.control_socket == "/run/dstm/anycast-member.sock");
}

TEST_CASE("member config: the limits of each range are accepted", "[anycast_member]") {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"/anycast/member/port", "0"},
      {"/anycast/member/port", "65535"},
      {"/anycast/member/answer_ttl", "1"},
      {"/anycast/member/answer_ttl", "3600"},
      {"/anycast/member/max_pending", "1"},
      {"/anycast/member/max_pending", "1000000"},
      {"/anycast/member/listen", R"("::")"},
      {"/anycast/member/listen", R"("::1")"},
      {"/anycast/member/unicast", R"("fd00::10")"},
  };
  for (const auto& [pointer, json] : rows) {
    const auto doc = edited(pointer, json);
    INFO(pointer << " = " << json << "\n" << Catch::Detail::stringify(errors_of(doc)));
    CHECK(parse_config_document(doc).has_value());
  }
  std::string many = "[";
  for (int i = 1; i <= 64; ++i)
    many += (i > 1 ? ",\"2001:db8:aaaa::" : "\"2001:db8:aaaa::") + std::to_string(i) + "\"";
  many += "]";
  auto r = parse_config_document(edited("/anycast/member/anycast", many));
  REQUIRE(r.has_value());
  CHECK(r->anycast.size() == 64);
}

TEST_CASE("member config: each mistake is reported at its JSON pointer", "[anycast_member]") {
  struct Row {
    std::string pointer;  // edited in kFull
    std::string json;     // the new value; empty: the key is removed
    std::vector<std::string> errors;
  };
  std::string too_many = "[";
  for (int i = 1; i <= 65; ++i)
    too_many += (i > 1 ? ",\"2001:db8:aaaa::" : "\"2001:db8:aaaa::") + std::to_string(i) + "\"";
  too_many += "]";
  const std::vector<Row> rows = {
      // Document and sections.
      {"/dhcp", "{}", {"/dhcp: unknown key"}},
      {"/anycast", "", {"/anycast: missing required value"}},
      {"/anycast", "[]", {"/anycast: expected an object, got an array"}},
      {"/anycast/member", "", {"/anycast/member: missing required value"}},
      {"/anycast/member", "7", {"/anycast/member: expected an object, got a number"}},
      {"/anycast/relay", "{}", {"/anycast/relay: unknown key"}},
      {"/anycast/member/colour", R"("blue")", {"/anycast/member/colour: unknown key"}},
      // anycast
      {"/anycast/member/anycast", "", {"/anycast/member/anycast: missing required value"}},
      {"/anycast/member/anycast",
       "[]",
       {"/anycast/member/anycast: must list 1..64 IPv6 addresses"}},
      {"/anycast/member/anycast",
       too_many,
       {"/anycast/member/anycast: must list 1..64 IPv6 addresses"}},
      {"/anycast/member/anycast",
       R"("2001:db8:aaaa::1")",
       {"/anycast/member/anycast: expected an array of strings, got a string"}},
      {"/anycast/member/anycast",
       R"(["2001:db8:aaaa::1", "2001:db8::g"])",
       {"/anycast/member/anycast/1: invalid IPv6 address (" +
        core::Ipv6Address::parse("2001:db8::g").error().message() + ")"}},
      {"/anycast/member/anycast",
       R"(["2001:db8:aaaa::1", "2001:DB8:AAAA::1"])",
       {"/anycast/member/anycast/1: 2001:db8:aaaa::1 is listed twice (also at "
        "/anycast/member/anycast/0)"}},
      {"/anycast/member/anycast",
       R"(["::", "ff02::1", "fe80::1", "::1", "::ffff:192.0.2.1"])",
       {"/anycast/member/anycast/0: :: is not a global unicast address",
        "/anycast/member/anycast/1: ff02::1 is not a global unicast address",
        "/anycast/member/anycast/2: fe80::1 is not a global unicast address",
        "/anycast/member/anycast/3: ::1 is not a global unicast address",
        "/anycast/member/anycast/4: ::ffff:192.0.2.1 is not a global unicast address"}},
      // unicast
      {"/anycast/member/unicast", "", {"/anycast/member/unicast: missing required value"}},
      {"/anycast/member/unicast",
       R"("2001:db8:aaaa::2")",
       {"/anycast/member/unicast: 2001:db8:aaaa::2 is one of the anycast addresses"}},
      {"/anycast/member/unicast",
       R"("fe80::10")",
       {"/anycast/member/unicast: fe80::10 is not a global unicast address"}},
      {"/anycast/member/unicast",
       R"("::1")",
       {"/anycast/member/unicast: ::1 is not a global unicast address"}},
      {"/anycast/member/unicast",
       "10",
       {"/anycast/member/unicast: expected IPv6 address as a string, got a number"}},
      // listen, port
      {"/anycast/member/listen",
       R"("ff02::1")",
       {"/anycast/member/listen: ff02::1 cannot be bound: use :: or a unicast address"}},
      {"/anycast/member/listen",
       R"("fe80::1")",
       {"/anycast/member/listen: fe80::1 cannot be bound: use :: or a unicast address"}},
      {"/anycast/member/listen",
       R"("192.0.2.1")",
       {"/anycast/member/listen: invalid IPv6 address (" +
        core::Ipv6Address::parse("192.0.2.1").error().message() + ")"}},
      {"/anycast/member/port",
       "65536",
       {"/anycast/member/port: must be between 0 and 65535, got 65536"}},
      {"/anycast/member/port", "-1", {"/anycast/member/port: must be between 0 and 65535, got -1"}},
      // join
      {"/anycast/member/join",
       R"("eth0")",
       {"/anycast/member/join: expected an object, got a string"}},
      {"/anycast/member/join", "{}", {"/anycast/member/join/interface: missing required value"}},
      {"/anycast/member/join",
       R"({"interface": "eth0", "mode": 1})",
       {"/anycast/member/join/mode: unknown key"}},
      {"/anycast/member/join",
       R"({"interface": "a-very-long-interface"})",
       {"/anycast/member/join/interface: must be 1..15 characters of [A-Za-z0-9._-]"}},
      {"/anycast/member/join",
       R"({"interface": "eth 0"})",
       {"/anycast/member/join/interface: must be 1..15 characters of [A-Za-z0-9._-]"}},
      {"/anycast/member/join",
       R"({"interface": ""})",
       {"/anycast/member/join/interface: must be 1..15 characters of [A-Za-z0-9._-]"}},
      // answer_ttl, max_pending, probes_per_second
      {"/anycast/member/answer_ttl",
       "0",
       {"/anycast/member/answer_ttl: must be between 1 and 3600, got 0"}},
      {"/anycast/member/answer_ttl",
       "3601",
       {"/anycast/member/answer_ttl: must be between 1 and 3600, got 3601"}},
      {"/anycast/member/answer_ttl",
       "1.5",
       {"/anycast/member/answer_ttl: expected an integer, got a number with a fraction or "
        "exponent"}},
      {"/anycast/member/max_pending",
       "0",
       {"/anycast/member/max_pending: must be between 1 and 1000000, got 0"}},
      {"/anycast/member/max_pending",
       "1000001",
       {"/anycast/member/max_pending: must be between 1 and 1000000, got 1000001"}},
      {"/anycast/member/probes_per_second",
       "0",
       {"/anycast/member/probes_per_second: must be between 1 and 1000000, got 0"}},
      // control_socket
      {"/anycast/member/control_socket",
       R"("member.sock")",
       {"/anycast/member/control_socket: must be an absolute path of at most 107 bytes"}},
      {"/anycast/member/control_socket",
       "\"/" + std::string(107, 'x') + "\"",
       {"/anycast/member/control_socket: must be an absolute path of at most 107 bytes"}},
  };
  for (const auto& row : rows) {
    INFO(row.pointer << " = " << (row.json.empty() ? "(removed)" : row.json));
    CHECK(errors_of(edited(row.pointer, row.json)) == row.errors);
  }
}

TEST_CASE("member config: several mistakes are reported together", "[anycast_member]") {
  const auto doc =
      edited("/anycast/member/port", "70000", edited("/anycast/member/answer_ttl", "0"));
  CHECK(errors_of(doc) ==
        std::vector<std::string>{"/anycast/member/port: must be between 0 and 65535, got 70000",
                                 "/anycast/member/answer_ttl: must be between 1 and 3600, got 0"});
}

TEST_CASE("member config: syntax errors and repeated keys are reported", "[anycast_member]") {
  CHECK_FALSE(parse_config_document("{").has_value());
  CHECK(errors_of(R"({"anycast": {"member": {"unicast": "2001:db8:1::10",
                                             "anycast": ["2001:db8:aaaa::1"],
                                             "port": 1, "port": 2}}})")
            .size() == 1);
}
