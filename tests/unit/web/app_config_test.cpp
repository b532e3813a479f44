// The config API through App::handle: hidden secrets, check, diff, apply with its confirmation
// window (injected clock), rollback, persistence across a restart of the dashboard, reloads of
// the daemons, history and revert.
#include "web/app.hpp"

#include <algorithm>
#include <string>

#include <catch2/catch.hpp>

#include "app_fixture.hpp"
#include "fake_daemons.hpp"
#include "web/json_diff.hpp"

namespace {

using namespace webtest;

json::value running(AppFixture& f, const Login& who) {
  const auto r = f.as(who, "GET", "/api/config");
  REQUIRE(r.status == 200);
  return body_of(r);
}

// The running document (as the API shows it) with the value at a pointer set (its parent must
// exist).
json::value edited(AppFixture& f, const Login& who, std::string_view pointer, json::value value) {
  auto doc = running(f, who).at("document");
  const auto slash = pointer.rfind('/');
  auto* parent = const_cast<json::value*>(web::json_at(doc, pointer.substr(0, slash)));
  REQUIRE(parent);
  const auto key = pointer.substr(slash + 1);
  if (auto* a = parent->if_array()) {
    a->at(std::stoul(std::string{key})) = std::move(value);
  } else {
    parent->as_object()[key] = std::move(value);
  }
  return doc;
}

std::string apply_body(const json::value& document, bool confirm = true, int timeout = 30) {
  return json::serialize(
      json::object{{"document", document}, {"confirm", confirm}, {"timeout", timeout}});
}

bool has_error_at(const json::value& answer, std::string_view pointer, std::string_view source) {
  for (const auto& e : answer.at("errors").as_array())
    if (e.at("pointer").as_string() == pointer && e.at("source").as_string() == source) return true;
  return false;
}

std::string revision_state(AppFixture& f, const Login& who, std::int64_t id) {
  const auto r = f.as(who, "GET", "/api/config/revisions/" + std::to_string(id));
  REQUIRE(r.status == 200);
  return std::string{body_of(r).at("state").as_string()};
}

}  // namespace

TEST_CASE("config: secrets are hidden in the API and kept when the document comes back", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto shown = running(f, who);
  CHECK(shown.at("document").at("tep").at(0).at("server").at("password") == "********");
  CHECK(shown.at("document").at("dstm_server").at("auth").at("users").at(0).at("digest_md5") ==
        "********");
  CHECK(f.as(who, "GET", "/api/config").body.find("secret-1") == std::string::npos);
  CHECK(shown.at("revision") == 1);
  CHECK(shown.at("pending").is_null());

  const auto doc = edited(f, who, "/web/session_idle_timeout", 120);
  const auto diff =
      f.as(who, "POST", "/api/config/diff", json::serialize(json::object{{"document", doc}}));
  REQUIRE(diff.status == 200);
  CHECK(body_of(diff).at("changes") ==
        parse(R"([{"pointer": "/web/session_idle_timeout", "op": "add", "new": 120}])"));

  const auto applied = f.as(who, "POST", "/api/config/apply", apply_body(doc, false));
  REQUIRE(applied.status == 200);
  const auto disk = f.document_on_disk();
  CHECK(disk.at("tep").at(0).at("server").at("password") == "secret-1");
  CHECK(disk.at("dstm_server").at("auth").at("users").at(0).at("digest_md5") ==
        "8f9ba46a209c810e84e8f97ec2b0ef2f");
  CHECK(disk.at("web").at("session_idle_timeout") == 120);
  // A changed secret shows as changed, with both values hidden.
  const auto secret = edited(f, who, "/tep/0/server/password", "secret-2");
  CHECK(body_of(f.as(who, "POST", "/api/config/diff",
                     json::serialize(json::object{{"document", secret}})))
            .at("changes") == parse(R"([{"pointer": "/tep/0/server/password", "op": "replace",
                                         "old": "********", "new": "********"}])"));
}

TEST_CASE("config: check reports every error at its pointer, daemons that are down as warnings",
          "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  auto doc = running(f, who).at("document");
  doc.as_object()["web"].as_object()["https_port"] = 0;
  doc.as_object()["dstm_servr"] = json::object{};
  doc.at("tep").at(0).as_object()["name"] = "tep-2";
  doc.at("tep").as_array().push_back(
      json::object{{"server", json::object{{"password", "********"}}}});
  const auto r =
      f.as(who, "POST", "/api/config/check", json::serialize(json::object{{"document", doc}}));
  REQUIRE(r.status == 200);
  const auto answer = body_of(r);
  CHECK(answer.at("valid") == false);
  CHECK(has_error_at(answer, "/dstm_servr", "document"));
  CHECK(has_error_at(answer, "/tep/1/server/password", "document"));

  // Without the unknown section and the hidden value with nothing behind it: the web section's
  // own errors, and the daemons' sections unchecked because they are down.
  doc.as_object().erase("dstm_servr");
  doc.at("tep").as_array().pop_back();
  const auto second = body_of(
      f.as(who, "POST", "/api/config/check", json::serialize(json::object{{"document", doc}})));
  CHECK(second.at("valid") == false);
  CHECK(has_error_at(second, "/web/https_port", "web"));
  const auto& warnings = second.at("warnings").as_array();
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0].at("source") == "dstm-server");
  CHECK(std::string{warnings[0].at("message").as_string()}.starts_with("not checked: "));
  CHECK(warnings[1].at("source") == "tep");

  CHECK(f.as(who, "POST", "/api/config/check", R"({"document": []})").status == 200);
  CHECK(body_of(f.as(who, "POST", "/api/config/check", R"({"document": []})")).at("valid") ==
        false);
  CHECK(f.as(who, "POST", "/api/config/check", R"({"doc": {}})").status == 400);
}

TEST_CASE("config: check passes on what each daemon's own parser says, with its pointers",
          "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  server.state.check_errors = json::array{
      json::object{{"pointer", "/dstm_server/lease/lifetime"}, {"message", "must be at least 60"}}};
  tep.state.check_errors = json::array{
      json::object{{"pointer", "/tep/0/tunnel_mtu"}, {"message", "must be at least 1280"}}};
  f.open();
  const auto who = f.admin();
  const auto doc = running(f, who).at("document");
  const auto answer = body_of(
      f.as(who, "POST", "/api/config/check", json::serialize(json::object{{"document", doc}})));
  CHECK(answer.at("valid") == false);
  CHECK(has_error_at(answer, "/dstm_server/lease/lifetime", "dstm-server"));
  CHECK(has_error_at(answer, "/tep/0/tunnel_mtu", "tep"));
  CHECK(answer.at("warnings").as_array().empty());
  // The daemons got the real secrets back, not the hidden form.
  CHECK(std::count(server.state.requests.begin(), server.state.requests.end(),
                   "POST /config/check") == 1);

  // An apply of a document with errors is refused and changes nothing.
  const auto refused = f.as(who, "POST", "/api/config/apply", apply_body(doc));
  CHECK(refused.status == 422);
  CHECK(has_error_at(body_of(refused), "/tep/0/tunnel_mtu", "tep"));
  CHECK(running(f, who).at("revision") == 1);
  CHECK(std::count(server.state.requests.begin(), server.state.requests.end(), "POST /reload") ==
        0);
}

TEST_CASE("config: an apply waiting for confirmation is kept when confirmed", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto doc = edited(f, who, "/dstm_server/pool/prefixes/0", "203.0.113.0/24");
  const auto r = f.as(who, "POST", "/api/config/apply", apply_body(doc, true, 30));
  REQUIRE(r.status == 200);
  const auto answer = body_of(r);
  CHECK(answer.at("revision") == 2);
  CHECK(answer.at("pending").at("revision") == 2);
  CHECK(answer.at("pending").at("remaining") == 30);
  CHECK(answer.at("restart_required").as_array().empty());
  // The daemons are down here: reported, not fatal.
  const auto& reloaded = answer.at("reloaded").as_array();
  REQUIRE(reloaded.size() == 1);
  CHECK(reloaded[0].at("name") == "dstm-server");
  CHECK(reloaded[0].at("result") == "down");
  CHECK(f.document_on_disk().at("dstm_server").at("pool").at("prefixes").at(0) == "203.0.113.0/24");
  CHECK(revision_state(f, who, 2) == "pending");

  f.now += 10s;
  CHECK(running(f, who).at("pending").at("remaining") == 20);
  // Another apply must wait.
  CHECK(f.as(who, "POST", "/api/config/apply", apply_body(doc)).status == 409);
  const auto confirmed = f.as(who, "POST", "/api/config/confirm");
  REQUIRE(confirmed.status == 200);
  CHECK(body_of(confirmed).at("state") == "confirmed");
  CHECK(revision_state(f, who, 2) == "confirmed");
  CHECK(f.as(who, "POST", "/api/config/confirm").status == 409);
  CHECK(f.as(who, "POST", "/api/config/rollback").status == 409);

  // Past the old deadline nothing rolls back.
  f.now += 60s;
  f.io.restart();
  f.io.run_for(30ms);
  CHECK(running(f, who).at("revision") == 2);
  CHECK(f.document_on_disk().at("dstm_server").at("pool").at("prefixes").at(0) == "203.0.113.0/24");
}

TEST_CASE("config: an apply not confirmed in its window is rolled back", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto before = f.document_on_disk();
  const auto doc = edited(f, who, "/dstm_server/pool/prefixes/0", "203.0.113.0/24");
  REQUIRE(f.as(who, "POST", "/api/config/apply", apply_body(doc, true, 5)).status == 200);
  CHECK(running(f, who).at("pending").at("revision") == 2);

  f.now += 4s;
  f.io.restart();
  f.io.run_for(30ms);
  CHECK(running(f, who).at("revision") == 2);  // not yet

  f.now += 2s;
  run_until(f.io, [&] { return f.counter("web_config_rollbacks_total") == 1; });
  const auto after = running(f, who);
  CHECK(after.at("revision") == 1);
  CHECK(after.at("pending").is_null());
  CHECK(f.document_on_disk() == before);
  CHECK(revision_state(f, who, 2) == "rolled_back");
  // The history says so.
  const auto history = body_of(f.as(who, "GET", "/api/config/revisions"));
  CHECK(history.at("current") == 1);
  CHECK(history.at("revisions").at(0).at("id") == 2);
  CHECK(history.at("revisions").at(0).at("state") == "rolled_back");
  CHECK(history.at("revisions").at(1).at("current") == true);
}

TEST_CASE("config: roll back now", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto before = f.document_on_disk();
  const auto doc = edited(f, who, "/web/session_idle_timeout", 300);
  REQUIRE(f.as(who, "POST", "/api/config/apply", apply_body(doc)).status == 200);
  CHECK(body_of(f.as(who, "GET", "/api/session")).at("idle_timeout") == 300);
  const auto r = f.as(who, "POST", "/api/config/rollback");
  REQUIRE(r.status == 200);
  CHECK(body_of(r).at("revision") == 1);
  CHECK(body_of(r).at("rolled_back") == 2);
  CHECK(f.document_on_disk() == before);
  CHECK(body_of(f.as(who, "GET", "/api/session")).at("idle_timeout") == 900);
}

TEST_CASE("config: a restarted dashboard still rolls back an apply nobody confirmed", "[web]") {
  AppFixture f;
  f.open();
  const auto original = f.document_on_disk();
  {
    const auto who = f.admin();
    const auto doc = edited(f, who, "/dstm_server/pool/prefixes/0", "203.0.113.0/24");
    REQUIRE(f.as(who, "POST", "/api/config/apply", apply_body(doc, true, 60)).status == 200);
  }
  const auto password = f.admin_password;

  SECTION("re-opened after the deadline: rolled back at once") {
    f.close();
    f.now += 61s;
    f.open();
    CHECK(f.document_on_disk() == original);
    CHECK(f.counter("web_config_rollbacks_total") == 1);
    f.admin_password = password;
    const auto who = f.admin();
    CHECK(running(f, who).at("revision") == 1);
    CHECK(running(f, who).at("pending").is_null());
    CHECK(revision_state(f, who, 2) == "rolled_back");
  }
  SECTION("re-opened within the window: still waiting, then rolled back at the deadline") {
    f.close();
    f.now += 30s;
    f.open();
    f.admin_password = password;
    const auto who = f.admin();
    CHECK(running(f, who).at("pending").at("remaining") == 30);
    CHECK(f.document_on_disk() != original);
    f.now += 31s;
    run_until(f.io, [&] { return f.counter("web_config_rollbacks_total") == 1; });
    CHECK(f.document_on_disk() == original);
  }
  SECTION("re-opened within the window and confirmed") {
    f.close();
    f.open();
    f.admin_password = password;
    const auto who = f.admin();
    CHECK(f.as(who, "POST", "/api/config/confirm").status == 200);
    f.close();
    f.now += 120s;
    f.open();
    CHECK(f.document_on_disk() != original);
    CHECK(f.counter("web_config_rollbacks_total") == 0);
  }
}

TEST_CASE("config: apply reloads the daemons whose section changed and waits for them", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  f.open();
  const auto who = f.admin();
  auto doc = edited(f, who, "/dstm_server/lease", json::object{{"lifetime", 600}});

  SECTION("reloaded") {
    const auto r = f.as(who, "POST", "/api/config/apply", apply_body(doc, false));
    REQUIRE(r.status == 200);
    const auto answer = body_of(r);
    CHECK(answer.at("pending").is_null());
    CHECK(answer.at("reloaded") == parse(R"([{"name": "dstm-server", "result": "reloaded"}])"));
    CHECK(server.state.generation == 1);
    CHECK(std::count(tep.state.requests.begin(), tep.state.requests.end(), "POST /reload") == 0);
    CHECK(revision_state(f, who, 2) == "applied");
  }
  SECTION("the new config did not start: failed") {
    server.state.reload_fails_to_start = true;
    const auto answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, false)));
    const auto& result = answer.at("reloaded").at(0);
    CHECK(result.at("result") == "failed");
    CHECK(std::string{result.at("error").as_string()}.find("cannot bind") != std::string::npos);
  }
  SECTION("the daemon says nothing changed") {
    server.state.reload_status = 200;
    const auto answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, false)));
    CHECK(answer.at("reloaded").at(0).at("result") == "unchanged");
  }
  SECTION("the daemon refuses the file") {
    server.state.reload_status = 422;
    const auto answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, false)));
    CHECK(answer.at("reloaded").at(0).at("result") == "failed");
    CHECK(std::string{answer.at("reloaded").at(0).at("error").as_string()}.find(
              "/dstm_server/lease: bad") != std::string::npos);
  }
  SECTION("both sections changed: both reloaded, and a rollback reloads both again") {
    doc.at("tep").at(0).as_object()["tunnel_mtu"] = 1400;
    const auto answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, true)));
    CHECK(answer.at("reloaded").as_array().size() == 2);
    CHECK(tep.state.generation == 1);
    const auto back = body_of(f.as(who, "POST", "/api/config/rollback"));
    CHECK(back.at("reloaded").as_array().size() == 2);
    CHECK(server.state.generation == 2);
    CHECK(tep.state.generation == 2);
  }
}

TEST_CASE("config: history and revert", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  for (const int t : {100, 200, 300}) {
    const auto doc = edited(f, who, "/web/session_idle_timeout", t);
    const auto body = json::serialize(json::object{
        {"document", doc}, {"confirm", false}, {"comment", "idle " + std::to_string(t)}});
    REQUIRE(f.as(who, "POST", "/api/config/apply", body).status == 200);
  }
  const auto history = body_of(f.as(who, "GET", "/api/config/revisions"));
  const auto& list = history.at("revisions").as_array();
  REQUIRE(list.size() == 4);
  CHECK(list[0].at("id") == 4);
  CHECK(list[0].at("user") == "admin");
  CHECK(list[0].at("comment") == "idle 300");
  CHECK(list[0].at("state") == "applied");
  CHECK(list[3].at("user") == "(system)");

  const auto two = body_of(f.as(who, "GET", "/api/config/revisions/2"));
  CHECK(two.at("document").at("web").at("session_idle_timeout") == 100);
  CHECK(two.at("document").at("tep").at(0).at("server").at("password") == "********");
  CHECK(f.as(who, "GET", "/api/config/revisions/99").status == 404);
  CHECK(f.as(who, "GET", "/api/config/revisions/x").status == 400);

  const auto reverted = f.as(who, "POST", "/api/config/revisions/2/revert", R"({"confirm": true})");
  REQUIRE(reverted.status == 200);
  CHECK(body_of(reverted).at("revision") == 5);
  CHECK(f.document_on_disk().at("web").at("session_idle_timeout") == 100);
  CHECK(f.document_on_disk().at("tep").at(0).at("server").at("password") == "secret-1");
  REQUIRE(f.as(who, "POST", "/api/config/confirm").status == 200);
  const auto five = body_of(f.as(who, "GET", "/api/config/revisions/5"));
  CHECK(five.at("state") == "reverted");
  CHECK(five.at("revert_of") == 2);
  CHECK(five.at("comment") == "revert to revision 2");
  CHECK(f.as(who, "POST", "/api/config/revisions/77/revert").status == 404);
}

TEST_CASE("config: web settings apply at once, listeners need a restart", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  auto doc = edited(f, who, "/web/login_attempts_per_minute", 1);
  auto answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, false)));
  CHECK(answer.at("restart_required").as_array().empty());
  CHECK(f.login_response("admin", "wrong").status == 401);
  CHECK(f.login_response("admin", "wrong").status == 429);

  doc = edited(f, who, "/web/https_port", 9443);
  answer = body_of(f.as(who, "POST", "/api/config/apply", apply_body(doc, false)));
  CHECK(answer.at("restart_required") == parse(R"(["dstm-web"])"));
}

TEST_CASE("config: apply options are checked", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto doc = running(f, who).at("document");
  for (const auto* extra : {R"("timeout": 4)", R"("timeout": 3601)", R"("timeout": "60")",
                            R"("confirm": 1)", R"("comment": 7)", R"("other": true)"}) {
    INFO(extra);
    const auto body = R"({"document": )" + json::serialize(doc) + ", " + extra + "}";
    CHECK(f.as(who, "POST", "/api/config/apply", body).status == 400);
  }
  CHECK(running(f, who).at("revision") == 1);
}

TEST_CASE("config: a file changed outside the dashboard becomes a revision", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  auto doc = f.document_on_disk();
  doc.as_object()["web"].as_object()["hsts"] = true;
  f.write_document(json::serialize(doc));
  const auto shown = running(f, who);
  CHECK(shown.at("revision") == 2);
  CHECK(shown.at("document").at("web").at("hsts") == true);
  const auto history = body_of(f.as(who, "GET", "/api/config/revisions"));
  CHECK(history.at("revisions").at(0).at("user") == "(file)");

  f.write_document("{ not json");
  const auto broken = f.as(who, "GET", "/api/config");
  CHECK(broken.status == 500);
  CHECK(std::string{body_of(broken).at("error").as_string()}.find("line 1") != std::string::npos);
}
