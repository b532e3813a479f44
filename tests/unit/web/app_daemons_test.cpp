// The daemons through the App: status, leases, TEPs, traffic, events and logs, with stand-in
// daemons on Unix sockets, daemons that are down, and one that never answers.
#include "web/app.hpp"

#include <algorithm>
#include <memory>
#include <string>

#include <boost/asio/local/stream_protocol.hpp>
#include <catch2/catch.hpp>

#include "app_fixture.hpp"
#include "fake_daemons.hpp"

namespace {

using namespace webtest;

bool seen(const FakeState& st, std::string_view request) {
  return std::find(st.requests.begin(), st.requests.end(), request) != st.requests.end();
}

// The data of one "event: <name>" message.
std::optional<json::value> event_data(const std::string& message, std::string_view event) {
  const auto head = "event: " + std::string{event} + "\ndata: ";
  if (!message.starts_with(head) || !message.ends_with("\n\n")) return std::nullopt;
  return parse(message.substr(head.size(), message.size() - head.size() - 2));
}

json::value next_event(AppFixture& f, web::EventStream& stream, std::string_view event) {
  for (;;) {
    const auto message = run(f.io, stream.next());
    REQUIRE(message);
    if (auto data = event_data(*message, event)) return *data;
  }
}

}  // namespace

TEST_CASE("daemons: daemons that are down show as down, and their pages answer 503 at once",
          "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  const auto status = f.as(who, "GET", "/api/status");
  REQUIRE(status.status == 200);
  const auto s = body_of(status);
  CHECK(s.at("version") == "1.2.3");
  CHECK(s.at("roles") == parse(R"(["dstm-server", "tep"])"));
  const auto& daemons = s.at("daemons").as_array();
  REQUIRE(daemons.size() == 2);
  CHECK(daemons[0].at("name") == "dstm-server");
  CHECK(daemons[0].at("up") == false);
  CHECK(daemons[0].at("error") == "not running (no control socket)");
  CHECK(daemons[1].at("kind") == "tep");
  CHECK(s.at("pool").is_null());
  CHECK(s.at("leases").is_null());
  CHECK(s.at("sessions").is_null());
  CHECK(s.at("teps") == parse(R"([{"name": "tep-1", "alive": null, "up": false, "bindings": null,
                                   "query_rate": null, "query_latency": null}])"));
  CHECK(s.at("memory").at("total").as_int64() > 0);

  const auto leases = f.as(who, "GET", "/api/leases");
  CHECK(leases.status == 503);
  CHECK(body_of(leases).at("error") == "dstm-server is down: not running (no control socket)");
  CHECK(f.as(who, "POST", "/api/leases/198.51.100.7/release").status == 503);
  CHECK(f.as(who, "GET", "/api/teps/tep-1/bindings").status == 503);
  const auto teps = body_of(f.as(who, "GET", "/api/teps"));
  CHECK(teps.at(0).at("up") == false);
  CHECK(teps.at(0).at("status").is_null());
  CHECK(body_of(f.as(who, "GET", "/api/traffic")).at("teps").as_object().empty());
  const auto logs = body_of(f.as(who, "GET", "/api/logs"));
  CHECK(logs.at("unavailable").as_array().size() == 2);
}

TEST_CASE("daemons: a daemon that never answers is down after the request deadline", "[web]") {
  AppFixture f;
  f.options.daemon_timeout = 100ms;
  // Listens, so connecting works, but nobody ever reads or answers.
  asio::local::stream_protocol::acceptor hung{
      f.io, asio::local::stream_protocol::endpoint{f.socket("dstm-server")}};
  f.open();
  const auto who = f.admin();
  const auto leases = f.as(who, "GET", "/api/leases");
  CHECK(leases.status == 503);
  CHECK(body_of(leases).at("error") == "dstm-server is down: not answering (timeout)");
  const auto status = body_of(f.as(who, "GET", "/api/status"));
  CHECK(status.at("daemons").at(0).at("error") == "not answering (timeout)");
  // The rest of the API does not wait for it.
  CHECK(f.as(who, "GET", "/api/session").status == 200);
}

TEST_CASE("daemons: status combines the server's figures, each TEP and each daemon", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  tep.state.bindings = parse(R"([{"ipv4": "198.51.100.7"}, {"ipv4": "198.51.100.8"}])").as_array();
  server.state.generation = 3;
  f.open();
  const auto who = f.admin();
  const auto s = body_of(f.as(who, "GET", "/api/status"));
  CHECK(s.at("pool") == parse(R"({"total": 256, "used": 3, "free": 253})"));
  CHECK(s.at("leases") == parse(R"({"active": 2, "expired": 1})"));
  CHECK(s.at("sessions") == parse(R"({"tcp": 4, "udp": 5})"));
  CHECK(s.at("lease_lifetime") == 1440);
  const auto& d = s.at("daemons").as_array();
  CHECK(d[0].at("up") == true);
  CHECK(d[0].at("generation") == 3);
  CHECK(d[0].at("started_at") == 1800000000);
  CHECK_FALSE(d[0].as_object().contains("error"));
  CHECK(s.at("teps") ==
        parse(R"([{"name": "tep-1", "alive": true, "up": true, "bindings": 2, "query_rate": 1.5,
                   "query_latency": {"p50": 1, "p99": 2}},
                  {"name": "tep-far", "alive": false, "up": null, "bindings": null,
                   "query_rate": null, "query_latency": null}])"));
  CHECK(s.at("cpu").at("percent").is_number());
}

TEST_CASE("daemons: leases pass through to dstm-server with their parameters", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  f.open();
  const auto who = f.admin();
  const auto list = f.as(who, "GET", "/api/leases?q=198.51&state=active&limit=5&sort=expires_at");
  REQUIRE(list.status == 200);
  CHECK(body_of(list).at("leases").at(0).at("ipv4") == "198.51.100.7");
  CHECK(seen(server.state, "GET /leases?limit=5&q=198.51&sort=expires_at&state=active"));
  CHECK(f.as(who, "GET", "/api/leases?q=a%26b=c").status == 200);
  CHECK(seen(server.state, "GET /leases?q=a&b=c"));
  CHECK(f.as(who, "GET", "/api/leases?colour=red").status == 400);

  CHECK(f.as(who, "GET", "/api/leases/198.51.100.7").status == 200);
  CHECK(f.as(who, "GET", "/api/leases/198.51.100.9").status == 404);
  CHECK(f.as(who, "GET", "/api/leases/not-an-address").status == 400);
  CHECK(f.as(who, "POST", "/api/leases/198.51.100.7/release").status == 200);
  CHECK(seen(server.state, "POST /leases/198.51.100.7/release"));
  CHECK(f.as(who, "POST", "/api/leases/198.51.100.7/extend", R"({"seconds": 3600})").status == 200);
  CHECK(seen(server.state, R"(POST /leases/198.51.100.7/extend {"seconds":3600})"));
  CHECK(f.as(who, "POST", "/api/leases/198.51.100.7/extend", R"({"seconds": "1h"})").status == 400);
}

TEST_CASE("daemons: TEPs with the server's view, drops by reason and top talkers", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  tep.state.counters = parse(R"({"decapsulated": 10, "decapsulated_bytes": 1000,
                                 "encapsulated": 20, "encapsulated_bytes": 3000,
                                 "decap_truncated": 1, "spoofed": 2, "queue_full": 0,
                                 "tunnel_send_dropped": 4, "queries": 9})")
                           .as_object();
  tep.state.bindings = parse(R"([
      {"ipv4": "198.51.100.7", "bytes_to_client": 10, "bytes_from_client": 5},
      {"ipv4": "198.51.100.8", "bytes_to_client": 100, "bytes_from_client": 0},
      {"ipv4": "198.51.100.9", "bytes_to_client": 0, "bytes_from_client": 50}])")
                           .as_array();
  f.open();
  const auto who = f.admin();
  const auto teps = body_of(f.as(who, "GET", "/api/teps")).as_array();
  REQUIRE(teps.size() == 2);
  CHECK(teps[0].at("name") == "tep-1");
  CHECK(teps[0].at("up") == true);
  CHECK(teps[0].at("status").at("bindings") == 3);
  CHECK(teps[0].at("server").at("alive") == true);
  CHECK(teps[0].at("drops") ==
        parse(R"({"truncated": 1, "spoofed": 2, "queue_full": 0, "tunnel_send_dropped": 4})"));
  const auto& top = teps[0].at("top_talkers").as_array();
  REQUIRE(top.size() == 3);
  CHECK(top[0].at("ipv4") == "198.51.100.8");
  CHECK(top[0].at("bytes") == 100);
  CHECK(top[1].at("ipv4") == "198.51.100.9");
  CHECK(top[2].at("ipv4") == "198.51.100.7");
  CHECK(teps[1].at("name") == "tep-far");
  CHECK(teps[1].at("up").is_null());

  CHECK(f.as(who, "GET", "/api/teps/tep-1/bindings?search=198.51&limit=10").status == 200);
  CHECK(seen(tep.state, "GET /bindings?limit=10&search=198.51"));
  CHECK(f.as(who, "GET", "/api/teps/tep-9/bindings").status == 404);
  CHECK(f.as(who, "GET", "/api/teps/tep-1/bindings?sort=x").status == 400);

  const auto traffic = body_of(f.as(who, "GET", "/api/traffic"));
  CHECK(traffic.at("time") == 1'800'000'000'000);
  CHECK(traffic.at("teps") == parse(R"({"tep-1": {"rx_bytes": 1000, "tx_bytes": 3000,
                                                   "rx_packets": 10, "tx_packets": 20}})"));
}

TEST_CASE("daemons: the event stream ticks with figures and traffic rates", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  tep.state.counters = parse(R"({"decapsulated": 0, "decapsulated_bytes": 0,
                                 "encapsulated": 0, "encapsulated_bytes": 0})")
                           .as_object();
  f.open();
  const auto who = f.admin();
  const auto r = f.as(who, "GET", "/api/events");
  REQUIRE(r.status == 200);
  CHECK(r.content_type == "text/event-stream");
  REQUIRE(r.stream);
  CHECK(run(f.io, r.stream->next()) == "retry: 3000\n\n");
  const auto first = next_event(f, *r.stream, "tick");
  CHECK(first.at("pool").at("used") == 3);
  CHECK(first.at("sessions").at("tcp") == 4);
  CHECK(first.at("daemons") ==
        parse(R"([{"name": "dstm-server", "up": true}, {"name": "tep-1", "up": true}])"));
  CHECK(first.at("pending").is_null());
  CHECK(first.at("traffic").at("teps").at("tep-1").at("in_bps") == 0.0);

  // Traffic arrives: the next ticks show a rate in and none out.
  tep.state.counters["decapsulated_bytes"] = 125'000;
  tep.state.counters["decapsulated"] = 100;
  json::value tick;
  do {
    tick = next_event(f, *r.stream, "tick");
  } while (tick.at("traffic").at("total").at("in_bps").as_double() == 0.0);
  CHECK(tick.at("traffic").at("total").at("in_pps").as_double() > 0.0);
  CHECK(tick.at("traffic").at("total").at("out_bps").as_double() == 0.0);
  CHECK(tick.at("traffic").at("teps").at("tep-1").at("in_bps") ==
        tick.at("traffic").at("total").at("in_bps"));

  // A config change is announced on the stream.
  auto doc = body_of(f.as(who, "GET", "/api/config")).at("document");
  doc.as_object()["web"].as_object()["hsts"] = true;
  REQUIRE(f.as(who, "POST", "/api/config/apply",
               json::serialize(json::object{{"document", doc}, {"confirm", false}}))
              .status == 200);
  const auto config = next_event(f, *r.stream, "config");
  CHECK(config.at("event") == "apply");
  CHECK(config.at("revision") == 2);
}

TEST_CASE("daemons: at most 4 event streams per session, ended with the session", "[web]") {
  AppFixture f;
  f.open();
  const auto who = f.admin();
  std::vector<std::shared_ptr<web::EventStream>> streams;
  for (int i = 0; i < 4; ++i) {
    auto r = f.as(who, "GET", "/api/events");
    REQUIRE(r.status == 200);
    streams.push_back(r.stream);
  }
  CHECK(f.as(who, "GET", "/api/events").status == 429);
  const auto other = f.admin();
  auto fifth = f.as(other, "GET", "/api/events");
  CHECK(fifth.status == 200);
  // A closed stream frees its place.
  streams.back()->cancel();
  streams.pop_back();
  CHECK(f.as(who, "GET", "/api/events").status == 200);

  REQUIRE(f.as(who, "POST", "/api/logout").status == 200);
  for (auto& s : streams) {
    std::optional<std::string> m;
    do {
      m = run(f.io, s->next());
    } while (m);
  }
  // The other session's stream goes on.
  CHECK(next_event(f, *fifth.stream, "tick").at("daemons").is_array());
}

TEST_CASE("daemons: logs of every daemon merged by time, filtered and downloadable", "[web]") {
  AppFixture f;
  Fake server{f, "dstm-server", "dstm-server"};
  Fake tep{f, "tep", "tep-1"};
  server.state.log_lines = parse(R"([
      {"seq": 1, "time": "2026-11-22T10:00:01.000Z", "level": "info", "component": "dstm-server",
       "message": "started"},
      {"seq": 2, "time": "2026-11-22T10:00:03.000Z", "level": "warn", "component": "service",
       "message": "lease 198.51.100.7 expired\nforged line"}])")
                               .as_array();
  tep.state.log_lines = parse(R"([
      {"seq": 7, "time": "2026-11-22T10:00:02.000Z", "level": "error", "component": "tep",
       "message": "cannot reach the DSTM server"}])")
                            .as_array();
  f.open();
  const auto who = f.admin();
  const auto all = body_of(f.as(who, "GET", "/api/logs"));
  const auto& lines = all.at("lines").as_array();
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].at("daemon") == "dstm-server");
  CHECK(lines[1].at("daemon") == "tep-1");
  CHECK(lines[1].at("seq") == 7);
  CHECK(lines[1].at("level") == "error");
  CHECK(lines[2].at("message") == "lease 198.51.100.7 expired\nforged line");
  CHECK(seen(server.state, "GET /logs?level=debug&limit=2000"));

  CHECK(body_of(f.as(who, "GET", "/api/logs?q=LEASE")).at("lines").as_array().size() == 1);
  CHECK(body_of(f.as(who, "GET", "/api/logs?limit=2")).at("lines").at(0).at("daemon") == "tep-1");
  const auto only = body_of(f.as(who, "GET", "/api/logs?daemon=tep-1&level=warn"));
  CHECK(only.at("lines").as_array().size() == 1);
  CHECK(seen(tep.state, "GET /logs?level=warn&limit=2000"));
  CHECK(f.as(who, "GET", "/api/logs?daemon=nope").status == 400);
  CHECK(f.as(who, "GET", "/api/logs?level=loud").status == 400);
  CHECK(f.as(who, "GET", "/api/logs?limit=0").status == 400);
  CHECK(f.as(who, "GET", "/api/logs?grep=x").status == 400);

  const auto download = f.as(who, "GET", "/api/logs/download?daemon=dstm-server");
  REQUIRE(download.status == 200);
  CHECK(download.content_type == "text/plain; charset=utf-8");
  CHECK(std::string{download.header("content-disposition").value_or("")}.starts_with(
      "attachment; filename="));
  CHECK(download.body ==
        "2026-11-22T10:00:01.000Z dstm-server INFO [dstm-server] started\n"
        "2026-11-22T10:00:03.000Z dstm-server WARN [service] lease 198.51.100.7 expired\\nforged "
        "line\n");
}
