// dstm-server's config check and in-process reload, end to end and without privileges: the real
// binary on loopback (TSP port 0), its SQLite store, config file and control socket in a temporary
// directory. The dashboard relies on exactly this: /config/check errors at their JSON pointers,
// /reload answers, a new generation in /status, leases kept across the restart, the same PID.
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "dstm_server/sqlite_lease_store.hpp"
#include "platform/control.hpp"
#include "support/daemon_control.hpp"
#include "support/daemon_process.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using platform::Method;

namespace {

constexpr auto kDeadline = 20s;
const auto kLeased = core::Ipv4Address::parse("198.51.100.7").value();

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a test changes in the document.
struct Setup {
  int lifetime = 1440;
  std::string listen_ipv4 = "127.0.0.1";
  std::string web = R"({"https_port": 8443})";  // another daemon's section
};

// A dstm-server child process with its own config file, store and control socket; the config
// file can be rewritten and reloaded.
class Server {
 public:
  explicit Server(Setup setup = {}) {
    write_config(setup);
    seed_store();
    process_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{DSTM_SERVER_BIN, "--config", config_.string()},
        dir_ / "server.log");
    REQUIRE(process_->wait_ready(std::chrono::milliseconds{kDeadline}));
  }

  std::string document(const Setup& s) const {
    return fmt::format(
        R"({{"dstm_server": {{
          "listen": {{"ipv4": ["{}"], "port": 0}},
          "pool": {{"prefixes": ["198.51.100.0/24"]}},
          "lease": {{"lifetime": {}, "grace": 3600}},
          "auth": {{"anonymous": true, "users": []}},
          "teps": [{{"name": "tep-1", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1",
                     "heartbeat": false}}],
          "client": {{"dns_server": "2001:db8::53"}},
          "store": {{"path": "{}", "sync": "full"}},
          "control_socket": "{}"
        }}, "web": {}}})",
        s.listen_ipv4, s.lifetime, (dir_ / "leases.db").string(), socket(), s.web);
  }
  void write_config(const Setup& s) { config_ = dir_.write("appliance.json", document(s)); }
  void write_raw_config(std::string_view text) { dir_.write("appliance.json", text); }

  std::string socket() const { return (dir_ / "ctl.sock").string(); }
  const std::filesystem::path& config_file() const noexcept { return config_; }
  pid_t pid() const noexcept { return process_->pid(); }
  std::string log() const { return process_->log(); }
  test::ExitStatus terminate() { return process_->terminate(10s); }

  std::optional<platform::Response> try_control(Method method, const std::string& target,
                                                const json::value& body = nullptr) const {
    return test::try_control(socket(), method, target, body);
  }
  platform::Response control(Method method, const std::string& target,
                             const json::value& body = nullptr) const {
    auto r = try_control(method, target, body);
    INFO(log());
    REQUIRE(r.has_value());
    return *r;
  }
  json::object status() const { return control(Method::Get, "/status").body.as_object(); }

  json::object await_generation(std::uint64_t g) const {
    auto status = test::await_generation(socket(), g, kDeadline);
    INFO(log());
    if (!status) FAIL("no generation " << g << " before the deadline");
    return *status;
  }

 private:
  // One active lease, put into the store before the daemon opens it.
  void seed_store() {
    auto store = dstm_server::SqliteLeaseStore::open((dir_ / "leases.db").string());
    REQUIRE(store.has_value());
    const auto now = unix_now();
    (*store)->put(dstm_server::Lease{kLeased, core::Ipv6Address::parse("2001:db8:100::10").value(),
                                     "", "tep-1", now, now + 1440, dstm_server::LeaseState::active},
                  {});
    REQUIRE((*store)->commit().has_value());
  }

  test::TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<test::DaemonProcess> process_;
};

std::vector<std::string> pointers(const json::value& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors.as_array()) out.emplace_back(e.at("pointer").as_string());
  return out;
}

}  // namespace

TEST_CASE("dstm-server config check: every error at its JSON pointer, by the daemon's parser",
          "[dstm-server]") {
  Server server;
  const auto valid = json::parse(server.document({}));

  auto r = server.control(Method::Post, "/config/check", {{"document", valid}});
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"valid": true, "errors": []})"));

  auto bad = valid;
  auto& section = bad.at("dstm_server").as_object();
  section["lease"].as_object()["lifetime"] = "long";
  section["teps"].at(0).as_object()["ipv4"] = "198.51.100.1";  // inside the pool
  section["colour"] = "blue";
  bad.as_object()["tep"] = json::array{};  // other daemons' sections are not its business
  r = server.control(Method::Post, "/config/check", {{"document", bad}});
  CHECK(r.status == 200);
  CHECK(r.body.at("valid") == false);
  CHECK(pointers(r.body.at("errors")) == std::vector<std::string>{"/dstm_server/lease/lifetime",
                                                                  "/dstm_server/teps/0/ipv4",
                                                                  "/dstm_server/colour"});
  CHECK(r.body.at("errors").at(0).at("message") == "expected an integer, got a string");

  // Whole documents fit: the body limit is 1 MiB, far above the default 64 KiB.
  auto big = valid;
  big.as_object()["web"] = {{"notes", std::string(300'000, 'n')}};
  r = server.control(Method::Post, "/config/check", {{"document", big}});
  CHECK(r.status == 200);
  CHECK(r.body.at("valid") == true);

  r = server.control(Method::Post, "/config/check", {{"doc", valid}});
  CHECK(r.status == 400);
  // Checking changed nothing.
  CHECK(server.status().at("generation") == 0);
}

TEST_CASE("dstm-server reload: unchanged is 200, invalid is 422, and nothing restarts",
          "[dstm-server]") {
  Server server;
  const auto before = server.status();
  CHECK(before.at("generation") == 0);
  CHECK(before.at("pid").to_number<pid_t>() == server.pid());
  CHECK(before.at("config_file") == json::value(server.config_file().string()));
  CHECK(before.at("last_reload").is_null());
  CHECK(before.at("lease_lifetime") == 1440);
  CHECK(before.at("started_at").to_number<std::int64_t>() > 0);

  auto r = server.control(Method::Post, "/reload");
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"changed": false, "generation": 0})"));

  // Another daemon's section changed: still nothing for this one.
  server.write_config(Setup{.lifetime = 1440, .listen_ipv4 = "127.0.0.1", .web = "{}"});
  r = server.control(Method::Post, "/reload");
  CHECK(r.status == 200);
  CHECK(r.body.at("changed") == false);

  server.write_config(Setup{.lifetime = 1, .listen_ipv4 = "127.0.0.1", .web = "{}"});
  r = server.control(Method::Post, "/reload");
  CHECK(r.status == 422);
  CHECK(pointers(r.body.at("errors")) == std::vector<std::string>{"/dstm_server/lease/lifetime"});
  CHECK(r.error_message().find("the running config stays") != std::string_view::npos);

  server.write_raw_config("{\"dstm_server\": ");
  r = server.control(Method::Post, "/reload");
  CHECK(r.status == 422);
  CHECK(pointers(r.body.at("errors")) == std::vector<std::string>{""});

  const auto after = server.status();
  CHECK(after.at("generation") == 0);
  CHECK(after.at("started_at") == before.at("started_at"));
  CHECK(after.at("lease_lifetime") == 1440);
  CHECK(after.at("last_reload").is_null());
}

TEST_CASE("dstm-server reload: a changed section restarts it in process and keeps the leases",
          "[dstm-server]") {
  Server server;
  REQUIRE(server.status().at("leases").at("active") == 1);
  // A change made by this generation must be in the store when the next one opens it.
  auto r = server.control(Method::Post, "/leases/198.51.100.7/extend", {{"seconds", 7200}});
  REQUIRE(r.status == 200);
  const auto expires = r.body.at("lease").at("expires_at");

  server.write_config(Setup{.lifetime = 3600, .listen_ipv4 = "127.0.0.1", .web = "{}"});
  r = server.control(Method::Post, "/reload");
  CHECK(r.status == 202);
  CHECK(r.body == json::parse(R"({"changed": true, "generation": 1})"));

  const auto status = server.await_generation(1);
  CHECK(status.at("pid").to_number<pid_t>() == server.pid());
  CHECK(status.at("lease_lifetime") == 3600);
  REQUIRE(status.at("last_reload").is_object());
  CHECK(status.at("last_reload").at("result") == "reloaded");
  CHECK_FALSE(status.at("last_reload").as_object().contains("error"));
  CHECK(status.at("leases").at("active") == 1);
  r = server.control(Method::Get, "/leases/198.51.100.7");
  REQUIRE(r.status == 200);
  CHECK(r.body.at("expires_at") == expires);
  CHECK(r.body.at("state") == "active");

  // The log ring outlives the generations: GET /logs shows both and the restart between them.
  r = server.control(Method::Get, "/logs?limit=2000");
  REQUIRE(r.status == 200);
  std::string messages;
  for (const auto& l : r.body.at("lines").as_array())
    messages += std::string{l.at("message").as_string()} + "\n";
  CHECK_THAT(messages, Catch::Contains("changed: restarting with it"));
  CHECK_THAT(messages, Catch::Contains("restarting in process with the new config (generation 1)"));
  CHECK_THAT(messages, Catch::Contains("1 leases restored"));

  // SIGTERM still ends the process (no pending reload: no restart).
  const auto exit = server.terminate();
  CHECK(exit.code == 0);
}

TEST_CASE("dstm-server reload: a config that cannot start falls back to the previous one",
          "[dstm-server]") {
  Server server;
  // Valid, but nothing on this host has 192.0.2.1: its listener cannot bind.
  server.write_config(Setup{.lifetime = 3600, .listen_ipv4 = "192.0.2.1", .web = "{}"});
  auto r = server.control(Method::Post, "/reload");
  CHECK(r.status == 202);

  const auto status = server.await_generation(1);
  CHECK(status.at("pid").to_number<pid_t>() == server.pid());
  CHECK(status.at("lease_lifetime") == 1440);  // the previous config runs
  REQUIRE(status.at("last_reload").is_object());
  CHECK(status.at("last_reload").at("result") == "failed");
  CHECK_THAT(std::string{status.at("last_reload").at("error").as_string()},
             Catch::Contains("192.0.2.1"));
  CHECK(status.at("leases").at("active") == 1);
  CHECK(status.at("listeners").at(0).at("address") == "127.0.0.1");

  // Fixed in the file: the next reload restarts with it.
  server.write_config(Setup{.lifetime = 3600, .listen_ipv4 = "127.0.0.1", .web = "{}"});
  r = server.control(Method::Post, "/reload");
  CHECK(r.status == 202);
  CHECK(r.body.at("generation") == 2);
  CHECK(server.await_generation(2).at("lease_lifetime") == 3600);
}

TEST_CASE("dstm-server reload: SIGHUP reloads like POST /reload", "[dstm-server]") {
  Server server;
  server.write_config(Setup{.lifetime = 600, .listen_ipv4 = "127.0.0.1", .web = "{}"});
  REQUIRE(::kill(server.pid(), SIGHUP) == 0);
  const auto status = server.await_generation(1);
  CHECK(status.at("lease_lifetime") == 600);
  CHECK(status.at("pid").to_number<pid_t>() == server.pid());
}
