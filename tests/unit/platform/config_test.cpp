// Tests for the config helpers, on a made-up "relay" section (the real schema belongs to daemons).
#include "platform/config.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

using platform::ConfigError;
using platform::ConfigErrors;
using platform::ObjectReader;

enum class Mode { Fast, Safe };

struct Peer {
  core::Ipv6Address ipv6;
  core::Ipv4Address ipv4;
  unsigned weight = 1;
};

struct Limits {
  std::uint32_t queue = 0;
};

struct Relay {
  std::string name;
  std::uint16_t listen_port = 0;
  bool verbose = false;
  core::Ipv4Prefix pool;
  std::optional<core::Ipv6Prefix> tunnel_prefix;
  Mode mode = Mode::Safe;
  std::vector<Peer> peers;
  std::vector<std::string> tags;
  Limits limits;
  std::int32_t offset = 0;
};

// How a daemon would write its reader: required and optional fields, a default applied only
// when the key is absent, nested objects, arrays of objects, and one cross-field rule.
Relay read_relay(ObjectReader& r) {
  Relay c;
  c.name = r.string("name");
  c.listen_port = r.integer<std::uint16_t>("listen_port", 1, 65535);
  c.verbose = r.optional_boolean("verbose").value_or(false);
  c.pool = r.ipv4_prefix("pool");
  c.tunnel_prefix = r.optional_ipv6_prefix("tunnel_prefix");
  c.mode = r.one_of<Mode>("mode", {{"fast", Mode::Fast}, {"safe", Mode::Safe}});
  c.peers = r.objects("peers", [](ObjectReader& p) {
    Peer peer;
    peer.ipv6 = p.ipv6("ipv6");
    peer.ipv4 = p.ipv4("ipv4");
    peer.weight = p.optional_integer<unsigned>("weight", 1, 100).value_or(1u);
    return peer;
  });
  c.tags = r.optional_strings("tags").value_or(std::vector<std::string>{});
  c.limits = r.object("limits", [](ObjectReader& l) {
    return Limits{l.integer<std::uint32_t>("queue", 1, 1'000'000)};
  });
  c.offset = r.optional_integer<std::int32_t>("offset", -100, 100).value_or(0);
  for (std::size_t i = 0; i < c.peers.size(); ++i) {
    if (r.has("pool") && !c.pool.contains(c.peers[i].ipv4))
      r.errors().push_back({platform::json_pointer_child(
                                platform::json_pointer_child(r.path_of("peers"), i), "ipv4"),
                            "not inside /pool"});
  }
  return c;
}

constexpr std::string_view kValid = R"({
  "name": "lab",
  "listen_port": 3653,
  "pool": "192.0.2.0/24",
  "mode": "fast",
  "peers": [
    {"ipv6": "2001:db8::1", "ipv4": "192.0.2.1", "weight": 10},
    {"ipv6": "2001:db8::2", "ipv4": "192.0.2.2"}
  ],
  "limits": {"queue": 100}
})";

ConfigErrors errors_of(std::string_view text) {
  auto r = platform::parse_config(text, read_relay);
  REQUIRE_FALSE(r.has_value());
  return r.error();
}

std::vector<std::string> strings_of(const ConfigErrors& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.to_string());
  return out;
}

}  // namespace

TEST_CASE("config: a valid section is read, defaults only for absent keys", "[platform]") {
  auto r = platform::parse_config(kValid, read_relay);
  REQUIRE(r.has_value());
  const Relay& c = *r;
  CHECK(c.name == "lab");
  CHECK(c.listen_port == 3653);
  CHECK_FALSE(c.verbose);
  CHECK(c.pool.to_string() == "192.0.2.0/24");
  CHECK_FALSE(c.tunnel_prefix.has_value());
  CHECK(c.mode == Mode::Fast);
  REQUIRE(c.peers.size() == 2);
  CHECK(c.peers[0].ipv6.to_string() == "2001:db8::1");
  CHECK(c.peers[0].weight == 10);
  CHECK(c.peers[1].ipv4.to_string() == "192.0.2.2");
  CHECK(c.peers[1].weight == 1);
  CHECK(c.tags.empty());
  CHECK(c.limits.queue == 100);
  CHECK(c.offset == 0);
}

TEST_CASE("config: each kind of mistake is reported at its JSON pointer", "[platform]") {
  struct Row {
    std::string doc;
    std::vector<std::string> errors;
  };
  // Base document with one field swapped per row.
  const auto with = [](std::string_view key_value) {
    return fmt::format(
        R"({{"name": "lab", "listen_port": 3653, "pool": "192.0.2.0/24", "mode": "safe",
      "peers": [{{"ipv6": "2001:db8::1", "ipv4": "192.0.2.1"}}], "limits": {{"queue": 1}}{}}})",
        key_value);
  };
  const std::vector<Row> rows = {
      {with(R"(, "verbose": "yes")"), {"/verbose: expected a boolean, got a string"}},
      {with(R"(, "verbose": null)"), {"/verbose: expected a boolean, got null"}},
      {with(R"(, "offset": -101)"), {"/offset: must be between -100 and 100, got -101"}},
      {with(R"(, "offset": 2.5)"),
       {"/offset: expected an integer, got a number with a fraction or exponent"}},
      {with(R"(, "offset": 1e2)"),
       {"/offset: expected an integer, got a number with a fraction or exponent"}},
      {with(R"(, "offset": 18446744073709551615)"),
       {"/offset: must be between -100 and 100, got 18446744073709551615"}},
      {with(R"(, "tunnel_prefix": "2001:db8::1/32")"),
       {"/tunnel_prefix: invalid IPv6 prefix (host bits set in prefix)"}},
      {with(R"(, "tunnel_prefix": 32)"),
       {"/tunnel_prefix: expected IPv6 prefix as a string, got a number"}},
      {with(R"(, "tags": ["a", 1, "c", {}])"),
       {"/tags/1: expected a string, got a number", "/tags/3: expected a string, got an object"}},
      {with(R"(, "tags": "a")"), {"/tags: expected an array of strings, got a string"}},
      {with(R"(, "lmits": {})"), {"/lmits: unknown key (did you mean 'limits'?)"}},
      {with(R"(, "colour": "blue")"), {"/colour: unknown key"}},
      {with(R"(, "a/b~c": 1)"), {"/a~1b~0c: unknown key"}},
  };
  for (const auto& row : rows) {
    INFO(row.doc);
    CHECK(strings_of(errors_of(row.doc)) == row.errors);
  }
}

TEST_CASE("config: every error in a document is collected, nested paths included", "[platform]") {
  constexpr std::string_view doc = R"({
    "name": 7,
    "listen_port": 70000,
    "pool": "192.0.2.0/33",
    "mode": "turbo",
    "peers": [
      {"ipv6": "2001:db8::1", "ipv4": "192.0.2.1"},
      {"ipv6": "2001:db8::1::2", "ipv4": "198.51.100.1", "wieght": 3},
      "not an object",
      {"ipv4": "192.0.2.01", "weight": 0}
    ],
    "limits": {"queue": -1, "extra": true}
  })";
  CHECK(strings_of(errors_of(doc)) ==
        std::vector<std::string>{
            "/name: expected a string, got a number",
            "/listen_port: must be between 1 and 65535, got 70000",
            "/pool: invalid IPv4 prefix (invalid prefix length)",
            "/mode: 'turbo' is not one of 'fast', 'safe'",
            "/peers/1/ipv6: invalid IPv6 address (misplaced or repeated '::')",
            "/peers/1/wieght: unknown key (did you mean 'weight'?)",
            "/peers/2: expected an object, got a string",
            "/peers/3/ipv6: missing required value",
            "/peers/3/ipv4: invalid IPv4 address (leading zero in a decimal field)",
            "/peers/3/weight: must be between 1 and 100, got 0",
            "/limits/queue: must be between 1 and 1000000, got -1",
            "/limits/extra: unknown key",
        });
}

TEST_CASE("config: a cross-field check names its path too", "[platform]") {
  const std::string doc =
      std::string{kValid}.replace(std::string{kValid}.find("192.0.2.2"), 9, "198.51.100.2");
  CHECK(strings_of(errors_of(doc)) == std::vector<std::string>{"/peers/1/ipv4: not inside /pool"});
}

TEST_CASE("config: missing required keys and a non-object root", "[platform]") {
  CHECK(strings_of(errors_of(R"({"limits": {}})")) ==
        std::vector<std::string>{
            "/name: missing required value", "/listen_port: missing required value",
            "/pool: missing required value", "/mode: missing required value",
            "/peers: missing required value", "/limits/queue: missing required value"});
  CHECK(strings_of(errors_of("[]")) ==
        std::vector<std::string>{"(document): expected an object, got an array"});
  // A missing nested object is one error, not one per field inside it.
  CHECK(strings_of(errors_of(R"({"name": "x", "listen_port": 1, "pool": "192.0.2.0/24",
                                 "mode": "safe", "peers": []})")) ==
        std::vector<std::string>{"/limits: missing required value"});
}

TEST_CASE("config: syntax errors give line and column", "[platform]") {
  struct Row {
    std::string text;
    std::string error;
  };
  const std::vector<Row> rows = {
      {"{\n  \"a\": 1,\n  \"b\": x\n}", "(document): line 3, column 8: syntax error"},
      {"{\"a\": 1", "(document): line 1, column 8: incomplete JSON"},
      {"", "(document): line 1, column 1: incomplete JSON"},
      {"[1, 2,]", "(document): line 1, column 7: syntax error"},
      {"{} {}", "(document): line 1, column 4: extra data"},
      {"{\"a\": 1} // comment", "(document): line 1, column 10: extra data"},
      {"{\"a\": /* no comments */ 1}", "(document): line 1, column 7: syntax error"},
  };
  for (const auto& row : rows) {
    INFO(row.text);
    const auto r = platform::parse_json(row.text);
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.error().size() == 1);
    CHECK(r.error()[0].to_string() == row.error);
  }
}

TEST_CASE("config: a key repeated in one object is an error, not a silent override", "[platform]") {
  const auto r = platform::parse_json(
      R"({"a": 1, "b": [{"x": 1, "x": 2}, {"x": 3}], "a": 2, "c/d": {"e": {}, "e": []}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(strings_of(r.error()) ==
        std::vector<std::string>{"/b/0/x: duplicate key (each key may appear once)",
                                 "/a: duplicate key (each key may appear once)",
                                 "/c~1d/e: duplicate key (each key may appear once)"});
}

TEST_CASE("config: deep nesting is rejected", "[platform]") {
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  const auto r = platform::parse_json(deep);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error()[0].message.starts_with("line 1, column 33:"));
}

TEST_CASE("config: json pointers escape '~' and '/'", "[platform]") {
  CHECK(platform::json_pointer_child("", "teps") == "/teps");
  CHECK(platform::json_pointer_child("/teps", std::size_t{1}) == "/teps/1");
  CHECK(platform::json_pointer_child("/x", "a/b~c") == "/x/a~1b~0c");
  CHECK(platform::json_pointer_child("", "") == "/");
}

TEST_CASE("config: ignored keys are known, raw gives the value", "[platform]") {
  const auto r = platform::parse_config(R"({"mine": {"k": 1}, "other_daemon": {"anything": 1}})",
                                        [](ObjectReader& root) {
                                          root.ignore("other_daemon");
                                          const auto* mine = root.raw("mine");
                                          return mine ? mine->at("k").as_int64() : -1;
                                        });
  REQUIRE(r.has_value());
  CHECK(*r == 1);
}

TEST_CASE("config: value() of a failed result throws with every error", "[platform]") {
  const auto r = platform::parse_config("{\"x\": 1}", [](ObjectReader&) { return 0; });
  REQUIRE_FALSE(r.has_value());
  CHECK_THROWS_WITH(r.value(), "config: /x: unknown key\n");
  CHECK(platform::format_config_errors("/etc/appl.json", r.error()) ==
        "/etc/appl.json: /x: unknown key\n");
}

TEST_CASE("config: files are read, and unreadable ones are reported", "[platform]") {
  char dir_template[] = "/tmp/config-test-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::filesystem::path dir{dir_template};
  { std::ofstream{dir / "relay.json"} << kValid; }
  auto text = platform::read_config_file(dir / "relay.json");
  REQUIRE(text.has_value());
  CHECK(*text == kValid);

  auto missing = platform::read_config_file(dir / "absent.json");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error()[0].to_string() ==
        fmt::format("(document): cannot read {}: No such file or directory",
                    (dir / "absent.json").string()));

  CHECK(platform::read_config_file(dir).error()[0].message.ends_with("not a regular file"));
  CHECK(platform::read_config_file(dir / "relay.json", 10)
            .error()[0]
            .message.ends_with("larger than 10 bytes"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("config: load_config_or_exit exits 78 after printing the errors", "[platform]") {
  int err_pipe[2];
  REQUIRE(::pipe(err_pipe) == 0);
  // Unflushed output would be written twice: once by us, once by the child's exit().
  std::cout.flush();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(err_pipe[1], STDERR_FILENO);
    (void)platform::load_config_or_exit("/nonexistent/appl.json", read_relay);
    std::_Exit(0);  // not reached
  }
  ::close(err_pipe[1]);
  std::string printed;
  char buf[256];
  for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;)
    printed.append(buf, static_cast<std::size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == platform::kExitConfig);
  CHECK(printed ==
        "/nonexistent/appl.json: (document): cannot read /nonexistent/appl.json: No such file or "
        "directory\n");
}
