// JSON pointers, document diffs and the redaction of secrets.
#include "web/json_diff.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/config.hpp"

namespace {

namespace json = boost::json;
using web::JsonChange;

json::value parse(std::string_view text) {
  auto v = platform::parse_json(text);
  REQUIRE(v);
  return *v;
}

}  // namespace

TEST_CASE("json_diff: pointers resolve per RFC 6901", "[web]") {
  const auto doc = parse(R"({"a": {"b": [10, 20, {"c/d": 1, "e~f": 2, "": 3}]}})");
  struct Case {
    const char* pointer;
    const char* expected;  // nullptr: none
  };
  const Case cases[] = {
      {"", R"({"a": {"b": [10, 20, {"c/d": 1, "e~f": 2, "": 3}]}})"},
      {"/a/b/0", "10"},
      {"/a/b/2/c~1d", "1"},
      {"/a/b/2/e~0f", "2"},
      {"/a/b/2/", "3"},
      {"/a/b/3", nullptr},
      {"/a/b/01", nullptr},
      {"/a/b/-1", nullptr},
      {"/a/b/x", nullptr},
      {"/a/b/99999999999999999999", nullptr},
      {"/a/x", nullptr},
      {"a", nullptr},
      {"/a/b/2/e~2f", nullptr},
      {"/a/b/2/e~", nullptr},
      {"/a/b/0/deeper", nullptr},
  };
  for (const auto& c : cases) {
    INFO(c.pointer);
    const auto* at = web::json_at(doc, c.pointer);
    if (c.expected) {
      REQUIRE(at);
      CHECK(*at == parse(c.expected));
    } else {
      CHECK(at == nullptr);
    }
  }
}

TEST_CASE("json_diff: changes between two documents, in document order", "[web]") {
  struct Case {
    const char* before;
    const char* after;
    const char* changes;
  };
  const Case cases[] = {
      {R"({"a": 1})", R"({"a": 1})", "[]"},
      {R"({"a": 1})", R"({"a": 2})", R"([{"pointer": "/a", "op": "replace", "old": 1, "new": 2}])"},
      {R"({"a": 1})", R"({"a": 1, "b": {"c": true}})",
       R"([{"pointer": "/b", "op": "add", "new": {"c": true}}])"},
      {R"({"a": 1, "b": 2})", R"({"b": 2})", R"([{"pointer": "/a", "op": "remove", "old": 1}])"},
      {R"({"a": [1, 2, 3]})", R"({"a": [1, 5]})",
       R"([{"pointer": "/a/1", "op": "replace", "old": 2, "new": 5},
           {"pointer": "/a/2", "op": "remove", "old": 3}])"},
      {R"({"a": [1]})", R"({"a": [1, 2, 3]})",
       R"([{"pointer": "/a/1", "op": "add", "new": 2}, {"pointer": "/a/2", "op": "add", "new": 3}])"},
      {R"({"a": [1, 2, 3]})", R"({"a": []})",
       R"([{"pointer": "/a/2", "op": "remove", "old": 3}, {"pointer": "/a/1", "op": "remove", "old": 2},
           {"pointer": "/a/0", "op": "remove", "old": 1}])"},
      {R"({"a": {"x": 1}})", R"({"a": [1]})",
       R"([{"pointer": "/a", "op": "replace", "old": {"x": 1}, "new": [1]}])"},
      {R"({"a/b": 1, "t~": 1})", R"({"a/b": 2, "t~": 2})",
       R"([{"pointer": "/a~1b", "op": "replace", "old": 1, "new": 2},
           {"pointer": "/t~0", "op": "replace", "old": 1, "new": 2}])"},
      {R"({"n": 1})", R"({"n": 1.0})",
       R"([{"pointer": "/n", "op": "replace", "old": 1, "new": 1.0}])"},
      {"1", "2", R"([{"pointer": "", "op": "replace", "old": 1, "new": 2}])"},
  };
  for (const auto& c : cases) {
    INFO(c.before << " -> " << c.after);
    CHECK(json::value(web::to_json(web::json_diff(parse(c.before), parse(c.after)))) ==
          parse(c.changes));
  }
}

TEST_CASE("json_diff: secrets are redacted at any depth, in documents and in diffs", "[web]") {
  const auto doc = parse(R"({"tep": [{"server": {"password": "s3cret", "user": "t"}}],
                             "dstm_server": {"auth": {"users": [{"name": "a", "digest_md5": "ab"}]}},
                             "password_hint": "kept"})");
  const auto shown = web::redact(doc);
  CHECK(shown == parse(R"({"tep": [{"server": {"password": "********", "user": "t"}}],
                           "dstm_server": {"auth": {"users": [{"name": "a", "digest_md5": "********"}]}},
                           "password_hint": "kept"})"));
  CHECK(json::serialize(shown).find("s3cret") == std::string::npos);

  const auto changes = web::redact(web::json_diff(
      doc,
      parse(
          R"({"tep": [{"server": {"password": "new", "user": "u"}}, {"server": {"password": "p2"}}],
                     "password_hint": "kept"})")));
  CHECK(json::value(web::to_json(changes)) == parse(R"([
      {"pointer": "/tep/0/server/password", "op": "replace", "old": "********", "new": "********"},
      {"pointer": "/tep/0/server/user", "op": "replace", "old": "t", "new": "u"},
      {"pointer": "/tep/1", "op": "add", "new": {"server": {"password": "********"}}},
      {"pointer": "/dstm_server", "op": "remove",
       "old": {"auth": {"users": [{"name": "a", "digest_md5": "********"}]}}}])"));
}

TEST_CASE("json_diff: hidden values come back from the running document", "[web]") {
  const auto running = parse(R"({"tep": [{"server": {"password": "s3cret"}}], "x": "********"})");
  auto restored = web::unredact(web::redact(running), running);
  REQUIRE(restored);
  CHECK(*restored == running);

  // A changed secret stays changed; a hidden value with nothing behind it is an error at its place.
  const auto edited = parse(R"({"tep": [{"server": {"password": "changed"}},
                                        {"server": {"password": "********"}}]})");
  auto partial = web::unredact(edited, running);
  REQUIRE_FALSE(partial);
  CHECK(partial.error() == platform::ConfigErrors{{"/tep/1/server/password",
                                                   "a hidden value with no value to keep: enter "
                                                   "the value"}});
  auto fine = web::unredact(parse(R"({"tep": [{"server": {"password": "changed"}}]})"), running);
  REQUIRE(fine);
  CHECK(fine->at("tep").at(0).at("server").at("password") == "changed");
}
