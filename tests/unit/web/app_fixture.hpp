// A dashboard App driven without sockets for the unit tests: a temp state directory and config
// file, an injected clock, cheap password hashes, requests run to completion on one io_context,
// and stand-in daemons (platform::ControlServer with a test Router) on the same io_context.
#pragma once

#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/config.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "support/daemon_process.hpp"
#include "web/app.hpp"

namespace webtest {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

// Only a bound for a test that went wrong; nothing waits for it to pass.
inline constexpr auto kSafety = 20s;

inline json::value parse(std::string_view text) {
  auto v = platform::parse_json(text);
  REQUIRE(v);
  return *v;
}

// Runs the io_context until `done` holds (or the safety bound passes: then the test fails).
template <typename Done>
void run_until(asio::io_context& io, Done&& done) {
  io.restart();
  const auto bound = std::chrono::steady_clock::now() + kSafety;
  while (!done() && std::chrono::steady_clock::now() < bound) io.run_one_for(50ms);
  REQUIRE(done());
}

// Runs one coroutine to completion.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) out.emplace(std::move(value));
    finished = true;
  });
  run_until(io, [&] { return finished; });
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

// A stand-in daemon: the given routes on a Unix socket served from the test's io_context.
class FakeDaemon {
 public:
  FakeDaemon(asio::io_context& io, std::string path, platform::Router router)
      : path_{path}, server_{io, std::move(router), options(std::move(path))} {
    REQUIRE(server_.start());
  }
  const std::string& path() const noexcept { return path_; }

 private:
  static platform::ControlServerOptions options(std::string path) {
    platform::ControlServerOptions o;
    o.path = std::move(path);
    return o;
  }
  std::string path_;
  platform::ControlServer server_;
};

struct Login {
  std::string cookie;  // "appl_session=..."
  std::string csrf;
};

class AppFixture {
 public:
  static constexpr std::string_view kHost = "192.0.2.10:8443";

  // A document whose daemons' sockets live in the temp directory (none of them running unless a
  // test starts a FakeDaemon there).
  std::string default_document() const {
    return R"({
  "dstm_server": {
    "pool": {"prefixes": ["198.51.100.0/24"]},
    "auth": {"users": [{"name": "tep-1", "digest_md5": "8f9ba46a209c810e84e8f97ec2b0ef2f"}]},
    "teps": [{"name": "tep-1", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1", "heartbeat": false}],
    "client": {"dns_server": "2001:db8::53"},
    "control_socket": ")" +
           socket("dstm-server") + R"("
  },
  "tep": [{"name": "tep-1", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1",
           "pool": ["198.51.100.0/24"],
           "server": {"address": "::1", "user": "tep-1", "password": "secret-1"},
           "control_socket": ")" +
           socket("tep-1") + R"("}],
  "web": {"state_dir": ")" +
           (dir.path() / "state").string() + R"("}
})";
  }

  explicit AppFixture(std::optional<std::string> document = std::nullopt) {
    write_document(document ? *document : default_document());
    options.config_path = (dir.path() / "appliance.json").string();
    options.web.state_dir = (dir.path() / "state").string();
    options.version = "1.2.3";
    options.build = "test";
    options.counters = &counters;
    options.clock = [this] { return now; };
    options.scrypt_n = 16;  // cheap hashes: the cost is a parameter, not what is tested here
    options.tick = 10ms;
    options.daemon_timeout = 2s;
    options.reload_wait = 5s;
    // Never the host's tools: a test that needs them sets its own.
    options.web.firmware.tool = (dir.path() / "no-fw-upgrade").string();
    options.web.firmware.disk = (dir.path() / "no-disk").string();
    options.web.firmware.reboot_command = {"/bin/false"};
  }

  ~AppFixture() { close(); }

  std::string socket(std::string_view name) const {
    return (dir.path() / (std::string{name} + ".sock")).string();
  }

  void write_document(const std::string& text) const { dir.write("appliance.json", text); }
  json::value document_on_disk() const {
    std::ifstream in{dir.path() / "appliance.json"};
    std::string text{std::istreambuf_iterator<char>{in}, {}};
    return parse(text);
  }

  web::App& open() {
    auto opened = web::App::open(io, options);
    REQUIRE(opened);
    app = std::move(*opened);
    if (app->first_admin_password()) admin_password = *app->first_admin_password();
    return *app;
  }
  void close() {
    if (!app) return;
    app->stop();
    app.reset();
    // Let cancelled coroutines finish.
    io.restart();
    io.poll();
  }

  web::HttpResponse request(std::string method, std::string target, std::string body = {},
                            std::vector<std::pair<std::string, std::string>> headers = {},
                            std::string remote = "192.0.2.1") {
    web::HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    r.remote = std::move(remote);
    r.headers.emplace_back("host", std::string{kHost});
    for (auto& h : headers) r.headers.push_back(std::move(h));
    return run(io, app->handle(std::move(r)));
  }

  // As a logged-in user: cookie and CSRF token (and JSON content) added.
  web::HttpResponse as(const Login& who, std::string method, std::string target,
                       std::string body = {}) {
    std::vector<std::pair<std::string, std::string>> h{{"cookie", who.cookie},
                                                       {"x-csrf-token", who.csrf}};
    if (!body.empty()) h.emplace_back("content-type", "application/json");
    return request(std::move(method), std::move(target), std::move(body), std::move(h));
  }

  web::HttpResponse login_response(std::string_view user, std::string_view password,
                                   std::string remote = "192.0.2.1") {
    const auto body = json::serialize(json::object{{"user", user}, {"password", password}});
    return request("POST", "/api/login", body, {{"content-type", "application/json"}},
                   std::move(remote));
  }

  Login login(std::string_view user, std::string_view password) {
    const auto r = login_response(user, password);
    REQUIRE(r.status == 200);
    const auto cookie = std::string{r.header("set-cookie").value_or("")};
    Login out;
    out.cookie = cookie.substr(0, cookie.find(';'));
    out.csrf = std::string{parse(r.body).at("csrf").as_string()};
    return out;
  }
  Login admin() { return login("admin", admin_password); }

  std::uint64_t counter(std::string_view name, std::string_view label_value = {}) const {
    const auto all = counters.to_json();
    const auto* family = all.as_object().if_contains(name);
    if (!family) return 0;
    std::uint64_t sum = 0;
    for (const auto& s : family->at("series").as_array()) {
      const auto& labels = s.at("labels").as_object();
      bool match = label_value.empty();
      for (const auto& [k, v] : labels)
        if (v.as_string() == label_value) match = true;
      if (match) sum += s.at("value").to_number<std::uint64_t>();
    }
    return sum;
  }

  test::TempDir dir;
  platform::Counters counters;  // before io: coroutines destroyed with io may refer to it
  asio::io_context io{1};
  std::chrono::system_clock::time_point now{std::chrono::seconds{1'800'000'000}};
  web::AppOptions options;
  std::unique_ptr<web::App> app;
  std::string admin_password;
};

inline json::value body_of(const web::HttpResponse& r) {
  return parse(r.body);
}

}  // namespace webtest
