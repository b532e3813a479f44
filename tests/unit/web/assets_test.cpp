// Tests for the embedded assets: the build step's table (Chart.js and the UI files, content
// types, ETags) and serving (methods, conditional GET, unknown paths, traversal).
#include "web/assets.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>

namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  REQUIRE(in);
  return {std::istreambuf_iterator<char>{in}, {}};
}

web::HttpRequest get(std::string path, std::string method = "GET") {
  web::HttpRequest r;
  r.method = std::move(method);
  r.target = path;
  r.path = std::move(path);
  return r;
}

// A table of our own, so the serving rules are tested whatever the UI's files are.
constexpr char kIndex[] = "<!doctype html><title>x</title>";
constexpr char kScript[] = "export const x = 1;";
const web::Asset kTable[] = {
    {"/app.js", "text/javascript; charset=utf-8", "\"bbbb\"", kScript},
    {"/index.html", "text/html; charset=utf-8", "\"aaaa\"", kIndex},
};

TEST_CASE("assets: Chart.js from Debian is embedded byte for byte as /vendor/chart.min.js",
          "[web]") {
  const web::Asset* chart = web::find_asset("/vendor/chart.min.js");
  REQUIRE(chart != nullptr);
  CHECK(chart->content_type == "text/javascript; charset=utf-8");
  CHECK(chart->body == read("/usr/share/javascript/chart.js/chart.min.js"));
  CHECK(std::regex_match(std::string{chart->etag}, std::regex{R"("[0-9a-f]{32}")"}));
}

TEST_CASE("assets: every file under web/assets is embedded with its type and a distinct ETag",
          "[web]") {
  const fs::path dir = fs::path{APPL_SOURCE_DIR} / "web" / "assets";
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename().string().starts_with(".")) continue;
    ++files;
    const std::string url = "/" + fs::relative(entry.path(), dir).generic_string();
    INFO(url);
    const web::Asset* a = web::find_asset(url);
    REQUIRE(a != nullptr);
    CHECK(a->body == read(entry.path()));
    const std::string ext = entry.path().extension().string();
    if (ext == ".html") CHECK(a->content_type == "text/html; charset=utf-8");
    if (ext == ".js") CHECK(a->content_type == "text/javascript; charset=utf-8");
    if (ext == ".css") CHECK(a->content_type == "text/css; charset=utf-8");
    if (ext == ".svg") CHECK(a->content_type == "image/svg+xml");
    if (ext == ".png") CHECK(a->content_type == "image/png");
  }
  CHECK(web::embedded_assets().size() == files + 1);  // + Chart.js
  std::set<std::string_view> paths;
  for (const auto& a : web::embedded_assets()) paths.insert(a.path);
  CHECK(paths.size() == web::embedded_assets().size());
  CHECK(std::is_sorted(web::embedded_assets().begin(), web::embedded_assets().end(),
                       [](const auto& x, const auto& y) { return x.path < y.path; }));
}

TEST_CASE("assets: GET serves the file with its type, ETag and no-cache", "[web]") {
  const auto r = web::serve_asset(get("/app.js"), kTable);
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/javascript; charset=utf-8");
  CHECK(r.body == kScript);
  CHECK(r.header("ETag") == "\"bbbb\"");
  CHECK(r.header("Cache-Control") == "no-cache");
  CHECK(r.stream == nullptr);

  const auto head = web::serve_asset(get("/app.js", "HEAD"), kTable);
  CHECK(head.status == 200);  // the server sends the head only
  CHECK(head.header("ETag") == "\"bbbb\"");
}

TEST_CASE("assets: / is /index.html", "[web]") {
  const auto r = web::serve_asset(get("/"), kTable);
  CHECK(r.status == 200);
  CHECK(r.body == kIndex);
  CHECK(r.content_type == "text/html; charset=utf-8");
  CHECK(web::find_asset("/", kTable) == web::find_asset("/index.html", kTable));
}

TEST_CASE("assets: If-None-Match with the ETag gives 304 without a body", "[web]") {
  for (const char* inm :
       {"\"bbbb\"", "W/\"bbbb\"", "\"zz\", \"bbbb\"", " \"x\" ,W/\"bbbb\" ", "*"}) {
    INFO(inm);
    auto req = get("/app.js");
    req.headers.emplace_back("if-none-match", inm);
    const auto r = web::serve_asset(req, kTable);
    CHECK(r.status == 304);
    CHECK(r.body.empty());
    CHECK(r.header("ETag") == "\"bbbb\"");
  }
  for (const char* inm : {"\"aaaa\"", "bbbb", "\"bbbb", ""}) {
    INFO(inm);
    auto req = get("/app.js");
    req.headers.emplace_back("if-none-match", inm);
    CHECK(web::serve_asset(req, kTable).status == 200);
  }
}

TEST_CASE("assets: other methods are 405 with Allow", "[web]") {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "get"}) {
    INFO(method);
    const auto r = web::serve_asset(get("/app.js", method), kTable);
    CHECK(r.status == 405);
    CHECK(r.header("Allow") == "GET, HEAD");
    CHECK(r.content_type == "application/json");
  }
}

TEST_CASE("assets: unknown paths and traversal attempts are 404 JSON errors", "[web]") {
  for (const char* path :
       {"/nope.js", "/index.htm", "/APP.JS", "/app.js/", "//app.js", "/../app.js", "/./app.js",
        "/vendor/../app.js", "/etc/passwd", "", "index.html"}) {
    INFO(path);
    const auto r = web::serve_asset(get(path), kTable);
    CHECK(r.status == 404);
    CHECK(r.content_type == "application/json");
    CHECK(r.body == "{\"error\":\"not found\"}\n");
  }
  CHECK(web::find_asset("/../vendor/chart.min.js") == nullptr);
}

}  // namespace
