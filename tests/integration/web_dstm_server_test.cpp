// The dashboard's API against the real dstm-server, without privileges: the binary on loopback
// (TSP port 0) with its store, config file and control socket in a temporary directory, a lease
// made by a real TSP client, and the App (web library) in this process driven through
// App::handle. Shows leases listed, searched and released through /api, a config error at its
// pointer from the daemon's own parser, and apply + confirm / apply + rollback reloading the
// daemon in process (new generation, new lease lifetime, same PID, leases kept).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/config.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "support/daemon_process.hpp"
#include "tsp_net/client.hpp"
#include "web/app.hpp"
#include "web/config.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

json::value parse(std::string_view text) {
  auto v = platform::parse_json(text);
  REQUIRE(v);
  return *v;
}

struct Login {
  std::string cookie;
  std::string csrf;
};

// dstm-server as a child process and the dashboard App in this process, on one document.
class Appliance {
 public:
  Appliance() {
    // The dashboard's own lines are in GET /api/logs next to the daemon's.
    if (!platform::log_ring()) platform::install_log_ring();
    dir_.write("appliance.json",
               fmt::format(R"({{
  "dstm_server": {{
    "listen": {{"ipv6": ["::1"], "ipv4": [], "port": 0}},
    "pool": {{"prefixes": ["198.51.100.0/24"]}},
    "lease": {{"lifetime": 1440, "grace": 3600}},
    "auth": {{"anonymous": true, "users": []}},
    "teps": [{{"name": "tep-1", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1",
               "heartbeat": false}}],
    "client": {{"dns_server": "2001:db8::53"}},
    "store": {{"path": "{}", "sync": "full"}},
    "control_socket": "{}"
  }},
  "web": {{"state_dir": "{}"}}
}})",
                           (dir_ / "leases.db").string(), socket(), (dir_ / "state").string()));
    server_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{DSTM_SERVER_BIN, "--config", (dir_ / "appliance.json").string()},
        dir_ / "server.log");
    INFO(server_->log());
    REQUIRE(server_->wait_ready(std::chrono::milliseconds{kDeadline}));

    web::AppOptions options;
    options.config_path = (dir_ / "appliance.json").string();
    auto web_section = web::parse_web_section(parse(read_config()));
    REQUIRE(web_section);
    options.web = *web_section;
    options.version = "test";
    options.build = "test";
    options.counters = &counters_;
    options.clock = [this] { return std::chrono::system_clock::now() + skew; };
    options.scrypt_n = 16;
    options.tick = 50ms;
    auto app = web::App::open(io_, options);
    REQUIRE(app);
    app_ = std::move(*app);
    password_ = *app_->first_admin_password();
  }

  ~Appliance() {
    app_->stop();
    app_.reset();
    io_.restart();
    io_.poll();
  }

  std::string socket() const { return (dir_ / "ctl.sock").string(); }
  std::string read_config() const {
    auto text = platform::read_config_file(dir_ / "appliance.json");
    REQUIRE(text);
    return *text;
  }
  pid_t pid() const { return server_->pid(); }
  std::string log() const { return server_->log(); }

  web::HttpResponse request(std::string method, std::string target, std::string body = {},
                            const Login* who = nullptr) {
    web::HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.remote = "127.0.0.1";
    r.headers = {{"host", "127.0.0.1:8443"}, {"content-type", "application/json"}};
    if (who) {
      r.headers.emplace_back("cookie", who->cookie);
      r.headers.emplace_back("x-csrf-token", who->csrf);
    }
    std::optional<web::HttpResponse> out;
    asio::co_spawn(io_, app_->handle(std::move(r)),
                   [&](std::exception_ptr e, web::HttpResponse response) {
                     REQUIRE_FALSE(e);
                     out.emplace(std::move(response));
                   });
    run_until([&] { return out.has_value(); });
    return std::move(*out);
  }
  json::value get(const Login& who, std::string target) {
    const auto r = request("GET", std::move(target), {}, &who);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return parse(r.body);
  }

  template <typename Done>
  void run_until(Done&& done) {
    io_.restart();
    const auto bound = std::chrono::steady_clock::now() + kDeadline;
    while (!done() && std::chrono::steady_clock::now() < bound) io_.run_one_for(50ms);
    INFO(log());
    REQUIRE(done());
  }

  Login login() {
    const auto r =
        request("POST", "/api/login",
                json::serialize(json::object{{"user", "admin"}, {"password", password_}}));
    REQUIRE(r.status == 200);
    const auto cookie = std::string{r.header("set-cookie").value_or("")};
    return Login{cookie.substr(0, cookie.find(';')),
                 std::string{parse(r.body).at("csrf").as_string()}};
  }

  // A lease for ::1, made over TSP like any anonymous client's.
  std::string create_lease() {
    std::uint16_t port = 0;
    {
      const platform::ControlClient client{socket()};
      auto s = client.request(platform::Method::Get, "/status");
      REQUIRE(s);
      port = s->body.at("listeners").at(0).at("port").to_number<std::uint16_t>();
    }
    tsp::ClientConfig c;
    c.transport = tsp::Transport::Tcp;
    c.mechanisms = {tsp::Mechanism::Anonymous};
    c.server_name = "web-test";
    c.deadlines.reply = 10s;
    tsp::Tunnel t = tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6);
    t.client = tsp::Endpoint{};
    t.client->addresses.push_back(
        tsp::Address{core::Ipv6Address::parse("::1").value(), std::nullopt});
    c.request = t;
    const auto created =
        tsp_net::create_tunnel_blocking(tsp_net::Target{.address = "::1",
                                                        .port = port,
                                                        .transport = tsp::Transport::Tcp,
                                                        .source_address = {},
                                                        .freebind = false},
                                        c, kDeadline);
    INFO(log());
    REQUIRE(created);
    REQUIRE(created->offer.client);
    return created->offer.client->ipv4()->to_string();
  }

  // Polls /api/status until dstm-server answers as generation `g`.
  json::value await_generation(const Login& who, std::int64_t g) {
    json::value status;
    run_until([&] {
      status = get(who, "/api/status");
      const auto& d = status.at("daemons").at(0);
      return d.at("up") == true && d.at("generation") == g;
    });
    return status;
  }

  std::uint64_t rollbacks() const {
    const auto all = counters_.to_json();
    const auto* f = all.as_object().if_contains("web_config_rollbacks_total");
    return f ? f->at("series").at(0).at("value").to_number<std::uint64_t>() : 0;
  }

  std::chrono::seconds skew{0};  // the App's clock is this far ahead of the real one

 private:
  test::TempDir dir_;
  platform::Counters counters_;
  asio::io_context io_{1};
  std::unique_ptr<test::DaemonProcess> server_;
  std::unique_ptr<web::App> app_;
  std::string password_;
};

std::string apply_body(json::value document, bool confirm) {
  return json::serialize(
      json::object{{"document", std::move(document)}, {"confirm", confirm}, {"timeout", 30}});
}

json::value with_lifetime(Appliance& a, const Login& who, int lifetime) {
  auto doc = a.get(who, "/api/config").at("document");
  doc.at("dstm_server").at("lease").as_object()["lifetime"] = lifetime;
  return doc;
}

}  // namespace

TEST_CASE("web with dstm-server: leases are listed, searched and released through the API",
          "[web]") {
  Appliance a;
  const auto ipv4 = a.create_lease();
  const auto who = a.login();

  const auto all = a.get(who, "/api/leases");
  REQUIRE(all.at("total") == 1);
  CHECK(all.at("leases").at(0).at("ipv4").as_string() == ipv4);
  CHECK(all.at("leases").at(0).at("ipv6") == "::1");
  CHECK(all.at("leases").at(0).at("state") == "active");
  CHECK(a.get(who, "/api/leases?q=" + ipv4.substr(0, 8)).at("total") == 1);
  CHECK(a.get(who, "/api/leases?ipv6=::1&state=active&sort=expires_at&order=desc").at("total") ==
        1);
  CHECK(a.get(who, "/api/leases?q=203.0.113").at("total") == 0);
  CHECK(a.request("GET", "/api/leases?state=gone", {}, &who).status == 400);  // the daemon's 400
  CHECK(a.get(who, "/api/leases/" + ipv4).at("ipv6") == "::1");

  const auto status = a.get(who, "/api/status");
  CHECK(status.at("pool").at("used") == 1);
  CHECK(status.at("leases").at("active") == 1);
  CHECK(status.at("daemons").at(0).at("up") == true);
  CHECK(status.at("daemons").at(0).at("pid") == a.pid());
  CHECK(status.at("roles") == parse(R"(["dstm-server"])"));

  const auto released = a.request("POST", "/api/leases/" + ipv4 + "/release", {}, &who);
  CHECK(released.status == 200);
  CHECK(a.get(who, "/api/leases").at("total") == 0);
  CHECK(a.request("POST", "/api/leases/" + ipv4 + "/release", {}, &who).status == 404);

  // The logs page has the daemon's lines and the dashboard's own.
  const auto logs = a.get(who, "/api/logs?limit=2000");
  bool daemon_line = false;
  bool web_line = false;
  for (const auto& l : logs.at("lines").as_array()) {
    daemon_line = daemon_line || l.at("daemon") == "dstm-server";
    web_line = web_line || l.at("daemon") == "dstm-web";
  }
  CHECK(daemon_line);
  CHECK(web_line);
}

TEST_CASE("web with dstm-server: a config error is shown at its pointer", "[web]") {
  Appliance a;
  const auto who = a.login();
  const auto r =
      a.request("POST", "/api/config/check",
                json::serialize(json::object{{"document", with_lifetime(a, who, 1)}}), &who);
  REQUIRE(r.status == 200);
  const auto answer = parse(r.body);
  CHECK(answer.at("valid") == false);
  REQUIRE(answer.at("errors").as_array().size() == 1);
  CHECK(answer.at("errors").at(0).at("pointer") == "/dstm_server/lease/lifetime");
  CHECK(answer.at("errors").at(0).at("source") == "dstm-server");
  CHECK(answer.at("warnings").as_array().empty());

  // And an apply of it is refused before anything is written.
  const auto before = a.read_config();
  CHECK(a.request("POST", "/api/config/apply", apply_body(with_lifetime(a, who, 1), false), &who)
            .status == 422);
  CHECK(a.read_config() == before);
}

TEST_CASE("web with dstm-server: apply and confirm restarts the daemon in process", "[web]") {
  Appliance a;
  const auto ipv4 = a.create_lease();
  const auto who = a.login();
  CHECK(a.get(who, "/api/status").at("lease_lifetime") == 1440);

  const auto r =
      a.request("POST", "/api/config/apply", apply_body(with_lifetime(a, who, 600), true), &who);
  INFO(r.body);
  REQUIRE(r.status == 200);
  const auto answer = parse(r.body);
  CHECK(answer.at("reloaded") == parse(R"([{"name": "dstm-server", "result": "reloaded"}])"));
  CHECK(answer.at("pending").at("remaining") == 30);

  const auto status = a.await_generation(who, 1);
  CHECK(status.at("lease_lifetime") == 600);
  CHECK(status.at("daemons").at(0).at("pid") == a.pid());  // the same process
  CHECK(status.at("leases").at("active") == 1);            // the lease survived the restart
  CHECK(a.get(who, "/api/leases/" + ipv4).at("state") == "active");

  REQUIRE(a.request("POST", "/api/config/confirm", {}, &who).status == 200);
  CHECK(a.get(who, "/api/config").at("pending").is_null());
  CHECK(parse(a.read_config()).at("dstm_server").at("lease").at("lifetime") == 600);
}

TEST_CASE("web with dstm-server: an apply not confirmed in time is rolled back and reloaded",
          "[web]") {
  Appliance a;
  a.create_lease();
  const auto who = a.login();
  const auto original = a.read_config();
  REQUIRE(a.request("POST", "/api/config/apply", apply_body(with_lifetime(a, who, 600), true), &who)
              .status == 200);
  CHECK(a.await_generation(who, 1).at("lease_lifetime") == 600);

  a.skew = 31s;  // the window passes
  a.run_until([&] { return a.rollbacks() == 1; });
  const auto status = a.await_generation(who, 2);
  CHECK(status.at("lease_lifetime") == 1440);
  CHECK(status.at("daemons").at(0).at("pid") == a.pid());
  CHECK(status.at("leases").at("active") == 1);
  CHECK(parse(a.read_config()) == parse(original));
  const auto history = a.get(who, "/api/config/revisions");
  CHECK(history.at("revisions").at(0).at("state") == "rolled_back");
  CHECK(history.at("current") == 1);
}
