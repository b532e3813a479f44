// Readings of the daemons' answers, encoding of what is passed on to them, and gather().
#include "web/daemons.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "app_fixture.hpp"

namespace {

using namespace webtest;

}  // namespace

TEST_CASE("daemons: a TEP's traffic adds the fast path to the engine", "[web]") {
  const auto status = parse(R"({"counters": {"decapsulated": 1, "decapsulated_bytes": 100,
                                             "encapsulated": 2, "encapsulated_bytes": 200},
                                "fast_path": {"decapsulated": 10, "decapsulated_bytes": 1000,
                                              "encapsulated": 20, "encapsulated_bytes": 2000,
                                              "dropped": 3}})");
  CHECK(web::tep_traffic(status) == web::Traffic{1100, 2200, 11, 22});
  CHECK(web::tep_traffic(parse("{}")) == web::Traffic{});
  CHECK(web::tep_traffic(parse(R"({"counters": {"decapsulated": -5, "encapsulated": "x"}})")) ==
        web::Traffic{});
  CHECK(json::value(web::tep_drops(status)) == parse(R"({"fast_path_dropped": 3})"));
}

TEST_CASE("daemons: rates between two samples, and counters that restarted", "[web]") {
  const auto r = web::rates({1000, 0, 10, 0}, {2000, 500, 30, 5}, 2.0);
  CHECK(r.in_bps == Approx(4000.0));
  CHECK(r.out_bps == Approx(2000.0));
  CHECK(r.in_pps == Approx(10.0));
  CHECK(r.out_pps == Approx(2.5));
  const auto restarted = web::rates({5000, 0, 0, 0}, {100, 0, 0, 0}, 1.0);
  CHECK(restarted.in_bps == Approx(800.0));
  CHECK(web::rates({}, {100, 0, 0, 0}, 0.0).in_bps == 0.0);
}

TEST_CASE("daemons: top talkers by bytes both ways", "[web]") {
  json::array bindings;
  for (int i = 0; i < 15; ++i)
    bindings.push_back(json::object{{"ipv4", "198.51.100." + std::to_string(i)},
                                    {"bytes_to_client", i * 10},
                                    {"bytes_from_client", i % 2}});
  const auto top = web::top_talkers(json::object{{"bindings", bindings}}, 10);
  REQUIRE(top.size() == 10);
  CHECK(top[0].at("ipv4") == "198.51.100.14");
  CHECK(top[0].at("bytes") == 140);
  CHECK(top[9].at("ipv4") == "198.51.100.5");
  CHECK(web::top_talkers(parse("[]"), 10).empty());
  CHECK(web::top_talkers(parse(R"({"bindings": [1, "x"]})"), 10).empty());
}

TEST_CASE("daemons: query values are percent-encoded", "[web]") {
  CHECK(web::percent_encode("198.51.100.0/24") == "198.51.100.0%2F24");
  CHECK(web::percent_encode("a b&c=d?#%") == "a%20b%26c%3Dd%3F%23%25");
  CHECK(web::percent_encode("\xc3\xa9") == "%C3%A9");
  CHECK(web::query_string({}) == "");
  CHECK(web::query_string({{"q", "x y"}, {"limit", "5"}}) == "?limit=5&q=x%20y");
}

TEST_CASE("daemons: gather runs the tasks at once and keeps their order", "[web]") {
  asio::io_context io;
  std::vector<int> finished;
  auto task = [&](int n, std::chrono::milliseconds delay) -> asio::awaitable<int> {
    asio::steady_timer t{io, delay};
    co_await t.async_wait(asio::use_awaitable);
    finished.push_back(n);
    co_return n * 10;
  };
  std::vector<asio::awaitable<int>> tasks;
  tasks.push_back(task(1, 30ms));
  tasks.push_back(task(2, 0ms));
  tasks.push_back(task(3, 10ms));
  const auto results = run(io, web::gather(std::move(tasks)));
  CHECK(results == std::vector<int>{10, 20, 30});
  CHECK(finished.front() == 2);  // not one after the other
  CHECK(run(io, web::gather(std::vector<asio::awaitable<int>>{})).empty());
}

TEST_CASE("daemons: a daemon's transport errors read as why it is down", "[web]") {
  CHECK(web::down_reason(boost::system::errc::make_error_code(
            boost::system::errc::no_such_file_or_directory)) == "not running (no control socket)");
  CHECK(web::down_reason(boost::system::errc::make_error_code(
            boost::system::errc::connection_refused)) == "not running (connection refused)");
  CHECK(web::down_reason(platform::ControlErrc::Timeout) == "not answering (timeout)");
}
