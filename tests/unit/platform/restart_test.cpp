// Tests for the in-process restart loop and the reload decision (platform/restart.hpp), with a
// fake daemon whose config is one integer: no sockets, the loop's io_contexts run posted work.
#include "platform/restart.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>

#include "platform/signals.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using platform::ConfigResult;
using platform::LoadedConfig;
using platform::Restarter;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/restart-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string write(std::string_view name, std::string_view content) const {
    const auto file = path_ / name;
    std::ofstream{file} << content;
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

// The fake daemon's document: {"fake": {"n": <1..100>}, "other": <anything>}; its section is
// "fake".
ConfigResult<LoadedConfig<int>> load(std::string_view text) {
  return platform::parse_config(text, [](platform::ObjectReader& root) {
    root.ignore("other");
    const auto* section = root.raw("fake");
    const int n =
        root.object("fake", [](platform::ObjectReader& r) { return r.integer<int>("n", 1, 100); });
    return LoadedConfig<int>{n, section ? *section : json::value{}};
  });
}

LoadedConfig<int> loaded(std::string_view text) {
  auto l = load(text);
  REQUIRE(l.has_value());
  return std::move(*l);
}

std::string document(int n, int other = 0) {
  return "{\"fake\": {\"n\": " + std::to_string(n) + "}, \"other\": " + std::to_string(other) + "}";
}

// What the loop did, in order.
struct Events {
  std::vector<std::string> list;
  void add(std::string e) { list.push_back(std::move(e)); }
};

// The running daemon of one generation: its destruction is an event.
struct FakeDaemon {
  Events* events;
  int n;
  ~FakeDaemon() { events->add("stop " + std::to_string(n)); }
};

using StartResult = boost::system::result<std::unique_ptr<FakeDaemon>, std::string>;

}  // namespace

TEST_CASE("restart: a reload reads the file again and decides: unchanged, invalid, changed",
          "[platform]") {
  TempDir dir;
  const auto file = dir.write("appliance.json", document(1));
  Restarter<int> restarter{"fake", file, load};
  Events events;
  const int rc = restarter.run(loaded(document(1)), [&](asio::io_context& io, int n) {
    events.add("start " + std::to_string(n) + " generation " +
               std::to_string(restarter.life().generation));
    if (n == 1) {
      asio::post(io, [&] {
        // Another section changed only: nothing to do.
        dir.write("appliance.json", document(1, 7));
        auto d = restarter.reload();
        CHECK_FALSE(d.restart);
        CHECK(d.response.status == 200);
        CHECK(d.response.body == json::parse(R"({"changed": false, "generation": 0})"));

        // Invalid: every error with its pointer, the daemon keeps running.
        dir.write("appliance.json", R"({"fake": {"n": 0}, "extra": 1})");
        d = restarter.reload();
        CHECK_FALSE(d.restart);
        CHECK(d.response.status == 422);
        CHECK(d.response.body.at("errors") ==
              json::parse(R"([{"pointer": "/fake/n", "message": "must be between 1 and 100, got 0"},
                              {"pointer": "/extra", "message": "unknown key"}])"));
        CHECK(d.response.error_message() ==
              file + " is invalid (2 errors); the running config stays");

        // Unreadable: one error for the whole document.
        dir.write("appliance.json", "{");
        d = restarter.reload();
        CHECK(d.response.status == 422);
        REQUIRE(d.response.body.at("errors").as_array().size() == 1);
        CHECK(d.response.body.at("errors").at(0).at("pointer") == "");

        // Changed: 202 with the next generation, and the loop restarts once this one stops.
        dir.write("appliance.json", document(2));
        d = restarter.reload();
        CHECK(d.restart);
        CHECK(d.response.status == 202);
        CHECK(d.response.body == json::parse(R"({"changed": true, "generation": 1})"));
        CHECK(d.response.body.at("generation").is_int64());
        // A second reload before the restart changes nothing.
        d = restarter.reload();
        CHECK_FALSE(d.restart);
        CHECK(d.response.status == 409);
        CHECK(restarter.life().last_reload == std::nullopt);
      });
    }
    return StartResult{std::make_unique<FakeDaemon>(&events, n)};
  });
  CHECK(rc == 0);
  // The old generation is gone before the new one starts.
  CHECK(events.list == std::vector<std::string>{"start 1 generation 0", "stop 1",
                                                "start 2 generation 1", "stop 2"});
  CHECK(restarter.life().generation == 1);
  REQUIRE(restarter.life().last_reload.has_value());
  CHECK(restarter.life().last_reload->reloaded);
  CHECK(restarter.life().last_reload->time > 0);
}

TEST_CASE("restart: a new config that cannot start falls back to the previous one", "[platform]") {
  TempDir dir;
  const auto file = dir.write("appliance.json", document(2));
  Restarter<int> restarter{"fake", file, load};
  Events events;
  int runs_of_1 = 0;
  const int rc = restarter.run(loaded(document(1)), [&](asio::io_context& io, int n) {
    events.add("start " + std::to_string(n) + " generation " +
               std::to_string(restarter.life().generation));
    if (n == 2) return StartResult{std::string{"port 3653 in use"}};
    ++runs_of_1;
    if (runs_of_1 == 1) {  // asks for config 2
      asio::post(io, [&] { CHECK(restarter.reload().restart); });
    } else if (runs_of_1 == 2) {
      // Back on config 1, as the same generation as the failed start, which is on record.
      asio::post(io, [&] {
        CHECK(restarter.life().generation == 1);
        REQUIRE(restarter.life().last_reload.has_value());
        CHECK_FALSE(restarter.life().last_reload->reloaded);
        CHECK(restarter.life().last_reload->error == "port 3653 in use");
        // The running section is config 1's again, so the file's config 2 is still a change.
        CHECK(restarter.reload().response.status == 202);
      });
    }  // the third run asks for nothing, so the loop ends when it stops
    return StartResult{std::make_unique<FakeDaemon>(&events, n)};
  });
  CHECK(rc == 0);
  CHECK(events.list == std::vector<std::string>{"start 1 generation 0", "stop 1",
                                                "start 2 generation 1", "start 1 generation 1",
                                                "stop 1", "start 2 generation 2",
                                                "start 1 generation 2", "stop 1"});
}

TEST_CASE("restart: a SIGHUP during a restart reaches the next generation", "[platform]") {
  TempDir dir;
  const auto file = dir.write("appliance.json", document(2));
  Restarter<int> restarter{"fake", file, load};
  bool reloaded_by_signal = false;
  bool timed_out = false;
  std::optional<platform::SignalWatch> watch;
  std::optional<asio::steady_timer> safety;
  const int rc = restarter.run(loaded(document(1)), [&](asio::io_context& io, int n) {
    if (n == 1) {
      asio::post(io, [&] {
        REQUIRE(restarter.reload().restart);
        // No watch for SIGHUP here: its default action would end the test process, unless the
        // restart holds it for the next generation.
        ::raise(SIGHUP);
      });
    } else {
      watch = platform::stop_on_signals(
          io, {SIGUSR2}, [] {},
          [&] {
            reloaded_by_signal = true;
            watch->cancel();
            safety->cancel();
            // Both belong to this generation's io_context, which run() destroys when it returns.
            asio::post(io, [&] {
              safety.reset();
              watch.reset();
            });
          });
      // Guards against a hang in a broken build only.
      safety.emplace(io, std::chrono::seconds{20});
      safety->async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        timed_out = true;
        watch->cancel();
        asio::post(io, [&] { watch.reset(); });
      });
    }
    return StartResult{std::unique_ptr<FakeDaemon>{}};
  });
  CHECK(rc == 0);
  CHECK(reloaded_by_signal);
  CHECK_FALSE(timed_out);
}

TEST_CASE("restart: a failing first start ends the loop with 1", "[platform]") {
  Restarter<int> restarter{"fake", std::nullopt, load};
  int starts = 0;
  const int rc = restarter.run(loaded(document(1)), [&](asio::io_context&, int) {
    ++starts;
    return StartResult{std::string{"no such device"}};
  });
  CHECK(rc == 1);
  CHECK(starts == 1);
}

TEST_CASE("restart: without a config file there is nothing to reload", "[platform]") {
  Restarter<int> restarter{"fake", std::nullopt, load};
  const int rc = restarter.run(loaded(document(1)), [&](asio::io_context& io, int) {
    asio::post(io, [&] {
      const auto d = restarter.reload();
      CHECK_FALSE(d.restart);
      CHECK(d.response.status == 409);
      CHECK(d.response.error_message() == "started without --config: there is no file to reload");
    });
    return StartResult{std::unique_ptr<FakeDaemon>{}};
  });
  CHECK(rc == 0);
  CHECK(restarter.life().generation == 0);
}

TEST_CASE("restart: the status fields of a daemon's life", "[platform]") {
  platform::DaemonLife life;
  life.started_at = 1795000000;
  json::object status{{"daemon", "fake"}};
  platform::add_life_to_status(status, life);
  const auto pid = static_cast<std::int64_t>(::getpid());
  CHECK(json::value(status) == json::value{{"daemon", "fake"},
                                           {"generation", 0},
                                           {"started_at", 1795000000},
                                           {"config_file", nullptr},
                                           {"pid", pid},
                                           {"last_reload", nullptr}});

  // Every integer is JSON kind int64, so clients can read them all alike.
  CHECK(status.at("generation").is_int64());
  CHECK(status.at("started_at").is_int64());
  CHECK(status.at("pid").is_int64());

  life.generation = 3;
  life.config_file = "/etc/appl/appliance.json";
  life.last_reload = platform::ReloadOutcome{1795000100, false, "TSP listener: address in use"};
  platform::add_life_to_status(status, life);
  CHECK(status.at("generation") == 3);
  CHECK(status.at("config_file") == "/etc/appl/appliance.json");
  CHECK(status.at("last_reload") == json::parse(R"({"time": 1795000100, "result": "failed",
                                                    "error": "TSP listener: address in use"})"));
  life.last_reload = platform::ReloadOutcome{1795000200, true, ""};
  platform::add_life_to_status(status, life);
  CHECK(status.at("last_reload") == json::parse(R"({"time": 1795000200, "result": "reloaded"})"));
}

TEST_CASE("restart: POST /config/check runs the daemon's parser on the document", "[platform]") {
  platform::Router router;
  router.post("/config/check", [](const platform::Request& r) {
    return platform::check_config_request(r, [](std::string_view text) {
      auto l = load(text);
      return l ? platform::ConfigErrors{} : l.error();
    });
  });
  auto r = router.handle("POST", "/config/check", R"({"document": {"fake": {"n": 5}}})");
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"valid": true, "errors": []})"));

  r = router.handle("POST", "/config/check", R"({"document": {"fake": {"n": "5"}, "x": 1}})");
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"valid": false, "errors": [
      {"pointer": "/fake/n", "message": "expected an integer, got a string"},
      {"pointer": "/x", "message": "unknown key"}]})"));

  r = router.handle("POST", "/config/check", R"({"document": [1]})");
  CHECK(r.body.at("valid") == false);
  CHECK(r.body.at("errors").at(0).at("pointer") == "");

  for (std::string_view bad : {"", R"({"doc": {}})", R"([1])", R"({"document": {}, "more": 1})"}) {
    INFO(bad);
    r = router.handle("POST", "/config/check", bad);
    CHECK(r.status == 400);
    CHECK(r.error_message() == "body: expected {\"document\": <the appliance config document>}");
  }
}
