// Stand-ins for dstm-server and a TEP on Unix sockets, for the App's unit tests: what the real
// daemons answer on their control sockets (docs/dstm-server.md, docs/tep.md), with knobs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "app_fixture.hpp"
#include "platform/control.hpp"

namespace webtest {

using platform::Request;
using platform::Response;

// Shared by both kinds.
struct FakeState {
  std::string kind;  // "dstm-server" or "tep"
  std::string name;
  std::int64_t generation = 0;
  bool reload_fails_to_start = false;  // the new config does not start: back on the old one
  int reload_status = 202;             // 200: unchanged, 422: invalid
  std::vector<std::string> requests;   // "GET /leases?limit=5&q=198.51" (query sorted)
  json::array check_errors;            // what POST /config/check reports
  json::array log_lines;               // what GET /logs returns
  json::object counters;               // a TEP's /status "counters"
  json::array bindings;                // a TEP's GET /bindings
  json::value last_reload = nullptr;
};

inline std::string describe(std::string_view method, const Request& r) {
  std::string out = std::string{method} + " " + r.path;
  char sep = '?';
  for (const auto& [k, v] : r.query) {
    out += sep + k + "=" + v;
    sep = '&';
  }
  return out;
}

inline platform::Router fake_router(FakeState& st) {
  platform::Router r;
  r.get("/status", [&st](const Request& q) {
    st.requests.push_back(describe("GET", q));
    json::object o{{"generation", st.generation},
                   {"pid", 4242},
                   {"started_at", 1800000000},
                   {"last_reload", st.last_reload},
                   {"version", "1.2.3"}};
    if (st.kind == "dstm-server") {
      o["daemon"] = "dstm-server";
      o["pool"] = json::object{
          {"prefixes", json::array{"198.51.100.0/24"}}, {"total", 256}, {"used", 3}, {"free", 253}};
      o["leases"] = json::object{{"active", 2}, {"expired", 1}, {"total", 3}};
      o["sessions"] = json::object{{"tcp", 4}, {"udp", 5}};
      o["lease_lifetime"] = 1440;
      o["teps"] = json::object{
          {"configured", 2},
          {"alive", 1},
          {"list", json::array{json::object{{"name", "tep-1"}, {"alive", true}, {"leases", 2}},
                               json::object{{"name", "tep-far"}, {"alive", false}}}}};
    } else {
      o["name"] = st.name;
      o["bindings"] = st.bindings.size();
      o["server"] = json::object{{"connected", true},
                                 {"query_rate", 1.5},
                                 {"query_latency", json::object{{"p50", 1}, {"p99", 2}}}};
      o["counters"] = st.counters;
    }
    return Response::json(std::move(o));
  });
  r.post("/reload", [&st](const Request& q) {
    st.requests.push_back(describe("POST", q));
    if (st.reload_status == 200)
      return Response::json(json::object{{"changed", false}, {"generation", st.generation}});
    if (st.reload_status != 202)
      return Response::json(
          json::object{{"error", "invalid config"},
                       {"errors", json::array{json::object{{"pointer", "/dstm_server/lease"},
                                                           {"message", "bad"}}}}},
          static_cast<unsigned>(st.reload_status));
    ++st.generation;
    st.last_reload =
        st.reload_fails_to_start
            ? json::value(json::object{
                  {"time", 1800000000}, {"result", "failed"}, {"error", "cannot bind"}})
            : json::value(json::object{{"time", 1800000000}, {"result", "reloaded"}});
    return Response::json(json::object{{"changed", true}, {"generation", st.generation}}, 202);
  });
  r.post("/config/check", [&st](const Request& q) {
    st.requests.push_back(describe("POST", q));
    const auto& document = q.body.at("document");
    (void)document;
    return Response::json(
        json::object{{"valid", st.check_errors.empty()}, {"errors", st.check_errors}});
  });
  r.get("/logs", [&st](const Request& q) {
    st.requests.push_back(describe("GET", q));
    return Response::json(json::object{{"lines", st.log_lines}, {"next", 100}});
  });
  if (st.kind == "dstm-server") {
    r.get("/leases", [&st](const Request& q) {
      st.requests.push_back(describe("GET", q));
      return Response::json(json::object{
          {"total", 1},
          {"offset", 0},
          {"limit", 100},
          {"leases", json::array{json::object{{"ipv4", "198.51.100.7"}, {"state", "active"}}}}});
    });
    r.get("/leases/{ipv4}", [&st](const Request& q) {
      st.requests.push_back(describe("GET", q));
      if (q.param("ipv4") != "198.51.100.7") return Response::error(404, "no lease");
      return Response::json(json::object{{"ipv4", "198.51.100.7"}});
    });
    r.post("/leases/{ipv4}/release", [&st](const Request& q) {
      st.requests.push_back(describe("POST", q));
      return Response::json(json::object{{"released", json::object{{"ipv4", *q.param("ipv4")}}}});
    });
    r.post("/leases/{ipv4}/extend", [&st](const Request& q) {
      st.requests.push_back(describe("POST", q) + " " + json::serialize(q.body));
      return Response::json(json::object{{"lease", json::object{{"ipv4", *q.param("ipv4")}}}});
    });
    r.get("/teps", [&st](const Request& q) {
      st.requests.push_back(describe("GET", q));
      return Response::json(json::object{
          {"teps", json::array{json::object{{"name", "tep-1"}, {"alive", true}, {"leases", 2}},
                               json::object{{"name", "tep-far"}, {"alive", false}}}}});
    });
  } else {
    r.get("/bindings", [&st](const Request& q) {
      st.requests.push_back(describe("GET", q));
      return Response::json(json::object{{"total", st.bindings.size()}, {"bindings", st.bindings}});
    });
  }
  return r;
}

// A fake daemon and its state, on the socket the fixture's document names.
struct Fake {
  Fake(AppFixture& f, std::string kind, std::string name)
      : state{make(std::move(kind), std::move(name))},
        daemon{f.io, f.socket(state.name), fake_router(state)} {}
  static FakeState make(std::string kind, std::string name) {
    FakeState s;
    s.kind = std::move(kind);
    s.name = std::move(name);
    return s;
  }
  FakeState state;
  FakeDaemon daemon;
};

}  // namespace webtest
