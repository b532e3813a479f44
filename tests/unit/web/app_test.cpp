// The dashboard application through App::handle, without sockets: login and sessions, CSRF,
// roles, the request pipeline's errors, and the users API.
#include "web/app.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "app_fixture.hpp"

namespace {

using namespace webtest;
namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in{p};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

}  // namespace

TEST_CASE("app: the first start creates admin with a random password kept in a 0600 file",
          "[web]") {
  AppFixture f;
  f.open();
  REQUIRE(f.app->first_admin_password());
  const auto password = *f.app->first_admin_password();
  CHECK(password.size() >= 16);
  const auto file = f.dir.path() / "state" / "initial-admin-password";
  CHECK(read_file(file) == password + "\n");
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  struct stat db {};
  REQUIRE(::stat((f.dir.path() / "state" / "web.db").c_str(), &db) == 0);
  CHECK((db.st_mode & 0077) == 0);

  // Another start keeps the user and prints nothing.
  f.close();
  f.open();
  CHECK_FALSE(f.app->first_admin_password());
  f.admin_password = password;
  const auto who = f.admin();
  CHECK(body_of(f.as(who, "GET", "/api/session")).at("user") == "admin");
}

TEST_CASE("app: login sets an HttpOnly, Secure, SameSite=Strict session cookie and a CSRF token",
          "[web]") {
  AppFixture f;
  f.open();
  const auto r = f.login_response("admin", f.admin_password);
  REQUIRE(r.status == 200);
  const auto cookie = std::string{r.header("set-cookie").value_or("")};
  CHECK(cookie.starts_with("appl_session="));
  CHECK(cookie.find("; HttpOnly") != std::string::npos);
  CHECK(cookie.find("; Secure") != std::string::npos);
  CHECK(cookie.find("; SameSite=Strict") != std::string::npos);
  CHECK(cookie.find("; Path=/") != std::string::npos);
  const auto id = cookie.substr(13, cookie.find(';') - 13);
  CHECK(id.size() == 64);  // 256 bits, hex
  const auto body = body_of(r);
  CHECK(body.at("user") == "admin");
  CHECK(body.at("role") == "admin");
  CHECK(body.at("csrf").as_string().size() == 64);
  CHECK(body.at("idle_timeout") == 900);
  CHECK(r.header("cache-control") == "no-store");

  const webtest::Login who{cookie.substr(0, cookie.find(';')),
                           std::string{body.at("csrf").as_string()}};
  const auto session = f.as(who, "GET", "/api/session");
  REQUIRE(session.status == 200);
  CHECK(body_of(session).at("csrf") == body.at("csrf"));
}

TEST_CASE("app: a wrong password and an unknown user get the same answer at the same cost",
          "[web]") {
  AppFixture f;
  f.open();
  const auto before = f.counter("web_password_checks_total");
  const auto wrong = f.login_response("admin", "not the password");
  CHECK(f.counter("web_password_checks_total") == before + 1);
  const auto unknown = f.login_response("nobody", "not the password");
  CHECK(f.counter("web_password_checks_total") == before + 2);
  CHECK(wrong.status == 401);
  CHECK(unknown.status == 401);
  CHECK(wrong.body == unknown.body);
  CHECK_FALSE(wrong.header("set-cookie"));
  CHECK(f.counter("web_logins_total", "failed") == 2);
}

TEST_CASE("app: failed logins per source are refused with 429 without hashing, then recover",
          "[web]") {
  AppFixture f;
  f.options.web.login_attempts_per_minute = 3;
  f.open();
  for (int i = 0; i < 3; ++i) CHECK(f.login_response("admin", "wrong").status == 401);
  const auto checks = f.counter("web_password_checks_total");
  const auto limited = f.login_response("admin", f.admin_password);
  CHECK(limited.status == 429);
  CHECK(limited.header("retry-after") == "60");
  CHECK(f.counter("web_password_checks_total") == checks);  // no hash for a refused attempt
  CHECK(f.counter("web_logins_total", "rate_limited") == 1);
  // Another address has its own budget.
  CHECK(f.login_response("admin", f.admin_password, "192.0.2.2").status == 200);

  f.now += 30s;
  CHECK(f.login_response("admin", f.admin_password).header("retry-after") == "30");
  f.now += 30s;
  CHECK(f.login_response("admin", f.admin_password).status == 200);
}

TEST_CASE("app: a successful login does not use up the budget", "[web]") {
  AppFixture f;
  f.options.web.login_attempts_per_minute = 2;
  f.open();
  for (int i = 0; i < 5; ++i) CHECK(f.login_response("admin", f.admin_password).status == 200);
}

TEST_CASE("app: login needs a JSON body and a same-origin Origin", "[web]") {
  AppFixture f;
  f.open();
  const auto body =
      json::serialize(json::object{{"user", "admin"}, {"password", f.admin_password}});
  CHECK(f.request("POST", "/api/login", body, {{"content-type", "text/plain"}}).status == 415);
  CHECK(f.request("POST", "/api/login", body).status == 415);
  CHECK(f.request("POST", "/api/login", body,
                  {{"content-type", "application/json"}, {"origin", "https://evil.example"}})
            .status == 403);
  CHECK(f.request("POST", "/api/login", body,
                  {{"content-type", "application/json; charset=utf-8"},
                   {"origin", "https://192.0.2.10:8443"}})
            .status == 200);
  CHECK(f.request("POST", "/api/login", R"({"user": "admin"})",
                  {{"content-type", "application/json"}})
            .status == 400);
}

TEST_CASE("app: a session ends after the idle timeout, and use keeps it alive", "[web]") {
  AppFixture f;
  f.options.web.session_idle_timeout = 600s;
  f.open();
  const auto who = f.admin();
  f.now += 599s;
  CHECK(f.as(who, "GET", "/api/session").status == 200);
  f.now += 599s;
  CHECK(f.as(who, "GET", "/api/session").status == 200);
  f.now += 600s;
  CHECK(f.as(who, "GET", "/api/session").status == 401);
}

TEST_CASE("app: a session ends after 12 hours however busy", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  for (int i = 0; i < 12 * 6 - 1; ++i) {
    f.now += 10min;
    REQUIRE(f.as(who, "GET", "/api/session").status == 200);
  }
  f.now += 10min;
  CHECK(f.as(who, "GET", "/api/session").status == 401);
}

TEST_CASE("app: without a valid session the API is 401, except login and health", "[web]") {
  AppFixture f;
  f.open();
  CHECK(f.request("GET", "/api/health").status == 200);
  CHECK(body_of(f.request("GET", "/api/health")).at("ok") == true);
  for (const auto* target : {"/api/status", "/api/config", "/api/leases", "/api/session",
                             "/api/users", "/api/metrics"}) {
    const auto r = f.request("GET", target);
    CHECK(r.status == 401);
    CHECK(body_of(r).at("error").is_string());
  }
  CHECK(f.request("GET", "/api/session", {}, {{"cookie", "appl_session=" + std::string(64, 'a')}})
            .status == 401);
  CHECK(f.request("GET", "/api/session", {}, {{"cookie", "appl_session=../../etc"}}).status == 401);
}

TEST_CASE("app: state-changing requests need the session's CSRF token and a same-origin Origin",
          "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const std::string body = R"({"name": "alice", "password": "0123456789", "role": "viewer"})";
  const std::pair<std::string, std::string> cookie{"cookie", who.cookie};
  const std::pair<std::string, std::string> json_type{"content-type", "application/json"};

  CHECK(f.request("POST", "/api/users", body, {cookie, json_type}).status == 403);
  CHECK(f.request("POST", "/api/users", body, {cookie, json_type, {"x-csrf-token", "0"}}).status ==
        403);
  auto other = f.login("admin", f.admin_password);  // another session's token is wrong here
  CHECK(f.request("POST", "/api/users", body, {cookie, json_type, {"x-csrf-token", other.csrf}})
            .status == 403);
  CHECK(
      f.request("POST", "/api/users", body,
                {cookie, json_type, {"x-csrf-token", who.csrf}, {"origin", "https://evil.example"}})
          .status == 403);
  CHECK(f.request("POST", "/api/users", body,
                  {cookie, json_type, {"x-csrf-token", who.csrf}, {"origin", "null"}})
            .status == 403);
  CHECK(f.counter("web_csrf_refused_total") == 5);
  // Nothing was created by the refused requests.
  CHECK(body_of(f.as(who, "GET", "/api/users")).at("users").as_array().size() == 1);

  const auto ok = f.request(
      "POST", "/api/users", body,
      {cookie, json_type, {"x-csrf-token", who.csrf}, {"origin", "https://192.0.2.10:8443"}});
  CHECK(ok.status == 201);
  // GET needs no token.
  CHECK(f.request("GET", "/api/users", {}, {cookie}).status == 200);
}

TEST_CASE("app: a viewer reads but every action is 403", "[web]") {
  AppFixture f;
  f.open();
  const auto admin = f.admin();
  REQUIRE(f.as(admin, "POST", "/api/users",
               R"({"name": "val", "password": "viewer-password", "role": "viewer"})")
              .status == 201);
  const auto viewer = f.login("val", "viewer-password");
  CHECK(body_of(f.as(viewer, "GET", "/api/session")).at("role") == "viewer");
  CHECK(f.as(viewer, "GET", "/api/config").status == 200);
  CHECK(f.as(viewer, "GET", "/api/firmware").status == 200);
  CHECK(f.as(viewer, "POST", "/api/config/apply", R"({"document": {}})").status == 403);
  CHECK(f.as(viewer, "POST", "/api/config/rollback").status == 403);
  CHECK(f.as(viewer, "POST", "/api/leases/198.51.100.7/release").status == 403);
  CHECK(f.as(viewer, "POST", "/api/users",
             R"({"name": "x", "password": "0123456789", "role": "admin"})")
            .status == 403);
  CHECK(f.as(viewer, "DELETE", "/api/users/admin").status == 403);
  CHECK(f.as(viewer, "POST", "/api/users/admin/password", R"({"password": "0123456789"})").status ==
        403);
  CHECK(f.as(viewer, "GET", "/api/users").status == 403);
  CHECK(f.as(viewer, "GET", "/api/tls").status == 403);
  // Their own password and logging out are theirs.
  CHECK(f.as(viewer, "POST", "/api/users/val/password",
             R"({"password": "another-password", "current": "viewer-password"})")
            .status == 200);
  CHECK(f.as(viewer, "POST", "/api/logout").status == 200);
}

TEST_CASE("app: a body that is not JSON is 400 with its line and column", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto r = f.as(who, "POST", "/api/config/check", "{\"document\": \n  {,}}");
  CHECK(r.status == 400);
  const auto error = std::string{body_of(r).at("error").as_string()};
  CHECK(error.starts_with("invalid JSON: "));
  CHECK(error.find("line 2") != std::string::npos);
  CHECK(f.as(who, "POST", "/api/config/check", R"({"a": 1, "a": 2})").status == 400);
  const auto login =
      f.request("POST", "/api/login", "{\"user\":", {{"content-type", "application/json"}});
  CHECK(login.status == 400);
}

TEST_CASE("app: an unknown API path is 404 and a wrong method 405 with Allow", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto missing = f.as(who, "GET", "/api/nothing-here");
  CHECK(missing.status == 404);
  CHECK(body_of(missing).at("error").is_string());
  CHECK(f.request("GET", "/api").status == 404);
  CHECK(f.request("GET", "/api/health/").status == 404);
  const auto wrong = f.as(who, "DELETE", "/api/config");
  CHECK(wrong.status == 405);
  CHECK(wrong.header("allow") == "GET");
  const auto users = f.as(who, "PUT", "/api/users");
  CHECK(users.status == 405);
  CHECK(users.header("allow") == "GET, POST");
}

TEST_CASE("app: path traversal never reaches a file", "[web]") {
  AppFixture f;
  f.open();
  for (const auto* target :
       {"/../appliance.json", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
        "/assets/../../state/web.db", "/index.html%00.js", "/./index.html", "//etc/passwd",
        "/api/../api/health", "/api/%2e%2e/health", "/state/initial-admin-password",
        "/appliance.json", "relative"}) {
    const auto r = f.request("GET", target);
    INFO(target);
    CHECK((r.status == 400 || r.status == 404));
    CHECK(r.body.find("root:") == std::string::npos);
    CHECK(r.body.find(f.admin_password) == std::string::npos);
    CHECK(r.body.find("dstm_server") == std::string::npos);
  }
}

TEST_CASE("app: logout ends the session", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto out = f.as(who, "POST", "/api/logout");
  CHECK(out.status == 200);
  CHECK(std::string{out.header("set-cookie").value_or("")}.find("Max-Age=0") != std::string::npos);
  CHECK(f.as(who, "GET", "/api/session").status == 401);

  // A login from a browser that still has a session replaces that session.
  const auto first = f.admin();
  const auto body =
      json::serialize(json::object{{"user", "admin"}, {"password", f.admin_password}});
  const auto again = f.request("POST", "/api/login", body,
                               {{"content-type", "application/json"}, {"cookie", first.cookie}});
  REQUIRE(again.status == 200);
  CHECK(f.as(first, "GET", "/api/session").status == 401);
}

TEST_CASE("app: users are added, listed and deleted, the last admin stays", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  CHECK(f.as(who, "POST", "/api/users", R"({"name": "bob", "password": "short", "role": "viewer"})")
            .status == 400);
  CHECK(f.as(who, "POST", "/api/users",
             R"({"name": "b/b", "password": "0123456789", "role": "viewer"})")
            .status == 400);
  CHECK(f.as(who, "POST", "/api/users",
             R"({"name": "bob", "password": "0123456789", "role": "root"})")
            .status == 400);
  CHECK(f.as(who, "POST", "/api/users",
             R"({"name": "bob", "password": "0123456789", "role": "viewer"})")
            .status == 201);
  CHECK(f.as(who, "POST", "/api/users",
             R"({"name": "bob", "password": "0123456789", "role": "admin"})")
            .status == 409);
  const auto list = body_of(f.as(who, "GET", "/api/users")).at("users").as_array();
  REQUIRE(list.size() == 2);
  CHECK(list[1].at("name") == "bob");
  CHECK(list[1].at("role") == "viewer");
  CHECK_FALSE(list[1].as_object().contains("hash"));

  const auto bob = f.login("bob", "0123456789");
  CHECK(f.as(who, "DELETE", "/api/users/admin").status == 409);
  CHECK(f.as(who, "DELETE", "/api/users/nobody").status == 404);
  CHECK(f.as(who, "DELETE", "/api/users/bob").status == 200);
  CHECK(f.as(bob, "GET", "/api/session").status == 401);  // a deleted user's sessions end
  CHECK(f.login_response("bob", "0123456789").status == 401);
}

TEST_CASE("app: a password change needs the current password for your own and ends other sessions",
          "[web]") {
  AppFixture f;
  f.open();
  const auto first = f.admin();
  const auto second = f.admin();
  const auto file = f.dir.path() / "state" / "initial-admin-password";
  REQUIRE(fs::exists(file));
  CHECK(f.as(first, "POST", "/api/users/admin/password", R"({"password": "a new password"})")
            .status == 400);
  CHECK(f.as(first, "POST", "/api/users/admin/password",
             R"({"password": "a new password", "current": "wrong"})")
            .status == 403);
  const auto changed = f.as(
      first, "POST", "/api/users/admin/password",
      json::serialize(json::object{{"password", "a new password"}, {"current", f.admin_password}}));
  REQUIRE(changed.status == 200);
  CHECK(body_of(changed).at("sessions_ended") == 1);
  CHECK(f.as(first, "GET", "/api/session").status == 200);
  CHECK(f.as(second, "GET", "/api/session").status == 401);
  CHECK_FALSE(fs::exists(file));
  CHECK(f.login_response("admin", f.admin_password).status == 401);
  CHECK(f.login_response("admin", "a new password").status == 200);

  // An admin sets another user's password without theirs; that user's sessions end.
  REQUIRE(f.as(first, "POST", "/api/users",
               R"({"name": "carol", "password": "0123456789", "role": "viewer"})")
              .status == 201);
  const auto carol = f.login("carol", "0123456789");
  CHECK(f.as(first, "POST", "/api/users/carol/password", R"({"password": "9876543210"})").status ==
        200);
  CHECK(f.as(carol, "GET", "/api/session").status == 401);
  CHECK(f.as(first, "POST", "/api/users/nobody/password", R"({"password": "9876543210"})").status ==
        404);
}

TEST_CASE("app: firmware, metrics and TLS without a certificate store", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto firmware = body_of(f.as(who, "GET", "/api/firmware"));
  CHECK(firmware.at("version") == "1.2.3");
  CHECK(firmware.at("build") == "test");
  CHECK(firmware.at("board") == "x86-64");
  // No fw-upgrade at the default path here: the status says why, the rest is shown.
  CHECK(firmware.at("status").at("error") == "tool");
  CHECK(firmware.at("staged").is_null());
  CHECK(firmware.at("job").at("state") == "idle");
  const auto metrics = f.as(who, "GET", "/api/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type.starts_with("text/plain; version=0.0.4"));
  CHECK(metrics.body.find("web_logins_total{result=\"ok\"} 1") != std::string::npos);
  CHECK(f.as(who, "GET", "/api/tls").status == 503);
}

TEST_CASE("app: non-API paths are the embedded assets", "[web]") {
  AppFixture f;
  f.open();
  const auto index = f.request("GET", "/");
  CHECK(index.status == 200);
  CHECK(index.content_type.starts_with("text/html"));
  CHECK(f.request("GET", "/no-such-file.js").status == 404);
}
