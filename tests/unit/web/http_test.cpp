// Tests for the dashboard's request parsers (target, query, cookies, percent-decoding) and the
// request/response helpers: tables of hostile and ordinary input.
#include "web/http.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>

namespace {

using web::Params;

struct DecodeRow {
  std::string in;
  bool plus_is_space;
  std::optional<std::string> out;
};

TEST_CASE("percent_decode: escapes, plus, and refused input", "[web]") {
  const std::vector<DecodeRow> rows{
      {"plain", false, "plain"},
      {"", false, ""},
      {"%41%62%63", false, "Abc"},
      {"%2f%2F", false, "//"},
      {"a+b", false, "a+b"},
      {"a+b", true, "a b"},
      {"%2B", true, "+"},
      {"%e2%82%ac", false, "\xe2\x82\xac"},
      {"%", false, std::nullopt},
      {"%4", false, std::nullopt},
      {"abc%", false, std::nullopt},
      {"%zz", false, std::nullopt},
      {"%4g", false, std::nullopt},
      {"%00", false, std::nullopt},
      {"a%00b", true, std::nullopt},
      {std::string{"a\0b", 3}, false, std::nullopt},
  };
  for (const auto& row : rows) {
    INFO(row.in << " plus_is_space=" << row.plus_is_space);
    CHECK(web::percent_decode(row.in, row.plus_is_space) == row.out);
  }
}

struct TargetRow {
  std::string target;
  bool ok;
  std::string path;
  Params query;
};

TEST_CASE("parse_target: paths and queries are decoded", "[web]") {
  const std::vector<TargetRow> rows{
      {"/", true, "/", {}},
      {"/index.html", true, "/index.html", {}},
      {"/api/leases?q=198.51&limit=10", true, "/api/leases", {{"q", "198.51"}, {"limit", "10"}}},
      {"/api/leases?q=a+b%20c", true, "/api/leases", {{"q", "a b c"}}},
      {"/a%20b/c", true, "/a b/c", {}},
      {"/a+b", true, "/a+b", {}},  // "+" is a space only in the query
      {"/x?flag", true, "/x", {{"flag", ""}}},
      {"/x?a=1&&b=2&", true, "/x", {{"a", "1"}, {"b", "2"}}},
      {"/x?", true, "/x", {}},
      {"/x?a=1=2", true, "/x", {{"a", "1=2"}}},
      {"/x?%61=1", true, "/x", {{"a", "1"}}},
      {"/api/teps/tep-1/bindings", true, "/api/teps/tep-1/bindings", {}},
      {"//double//slash", true, "//double//slash", {}},
      {"/...", true, "/...", {}},  // not a dot segment
      {"/a..b/.c", true, "/a..b/.c", {}},
  };
  for (const auto& row : rows) {
    INFO(row.target);
    const auto t = web::parse_target(row.target);
    REQUIRE(t.has_value() == row.ok);
    CHECK(t->path == row.path);
    CHECK(t->query == row.query);
  }
}

TEST_CASE("parse_target: traversal, NUL, malformed escapes and repeated keys are refused",
          "[web]") {
  const std::vector<std::string> refused{
      "",
      "index.html",
      "*",
      "http://example.net/",
      "/..",
      "/../etc/passwd",
      "/a/../../etc/passwd",
      "/a/..",
      "/./a",
      "/a/./b",
      "/.",
      "/%2e%2e/etc/passwd",
      "/%2E%2E/etc/passwd",
      "/.%2e/x",
      "/a%2f..%2fb",  // "/a/../b" once decoded
      "/a%2F%2E%2E%2Fb",
      "/vendor/%2e%2e",
      "/a%00b",
      "/a%00.html",
      "/a%",
      "/a%2",
      "/a%zz",
      "/x?a=%00",
      "/x?%00=1",
      "/x?a=%g1",
      "/x?a=1&a=2",
      "/x?a=1&b=2&a=1",
      "/x?a=1&%61=2",  // the same key once decoded
      "/x?a+b=1&a%20b=2",
  };
  for (const auto& target : refused) {
    INFO(target);
    CHECK_FALSE(web::parse_target(target).has_value());
  }
}

struct CookieRow {
  std::string header;
  Params cookies;
};

TEST_CASE("parse_cookies: pairs, spaces, quotes, malformed and repeated names", "[web]") {
  const std::vector<CookieRow> rows{
      {"", {}},
      {"a=1", {{"a", "1"}}},
      {"a=1; b=2", {{"a", "1"}, {"b", "2"}}},
      {"a=1;b=2", {{"a", "1"}, {"b", "2"}}},
      {"  a = 1 ;\tb=2  ", {{"a", "1"}, {"b", "2"}}},
      {"appl_session=abc; theme=dark", {{"appl_session", "abc"}, {"theme", "dark"}}},
      {"a=\"quoted\"", {{"a", "quoted"}}},
      {"a=\"", {{"a", "\""}}},
      {"a=", {{"a", ""}}},
      {"a=x=y", {{"a", "x=y"}}},
      {"noequals; a=1", {{"a", "1"}}},
      {"=1; a=2", {{"a", "2"}}},
      {";;; a=1;;", {{"a", "1"}}},
      {"a=first; a=second", {{"a", "first"}}},
  };
  for (const auto& row : rows) {
    INFO(row.header);
    CHECK(web::parse_cookies(row.header) == row.cookies);
  }
}

TEST_CASE("parse_cookies: at most 64 cookies are kept", "[web]") {
  std::string header;
  for (int i = 0; i < 200; ++i) header += "c" + std::to_string(i) + "=v; ";
  const auto cookies = web::parse_cookies(header);
  CHECK(cookies.size() == 64);
  CHECK(cookies.contains("c0"));
  CHECK(cookies.contains("c63"));
  CHECK_FALSE(cookies.contains("c64"));
}

TEST_CASE("http: request accessors and response helpers", "[web]") {
  web::HttpRequest req;
  req.headers = {{"host", "192.0.2.1"}, {"cookie", "a=1"}, {"cookie", "b=2"}};
  req.query = {{"q", "x"}};
  req.params = {{"name", "tep-1"}};
  CHECK(req.header("cookie") == "a=1");
  CHECK_FALSE(req.header("origin").has_value());
  CHECK(req.query_param("q") == "x");
  CHECK_FALSE(req.query_param("limit").has_value());
  CHECK(req.param("name") == "tep-1");

  const auto ok = web::HttpResponse::json({{"ok", true}});
  CHECK(ok.status == 200);
  CHECK(ok.content_type == "application/json");
  CHECK(ok.body == "{\"ok\":true}\n");

  auto err = web::HttpResponse::error(404, "no such lease: \"x\"");
  CHECK(err.status == 404);
  CHECK(boost::json::parse(err.body) == boost::json::value{{"error", "no such lease: \"x\""}});
  err.with_header("Allow", "GET").with_header("Set-Cookie", "a=1");
  CHECK(err.header("allow") == "GET");
  CHECK(err.header("SET-COOKIE") == "a=1");
  CHECK(err.header("Content-Type") == "application/json");
  CHECK_FALSE(err.header("etag").has_value());
}

}  // namespace
