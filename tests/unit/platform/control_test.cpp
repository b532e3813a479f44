// Tests for the control socket: the pure router, the counters registry, and a real server and
// client on a Unix socket in a temporary directory (short deadlines; readiness awaited, no sleeps).
#include "platform/control.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "platform/counters.hpp"
#include "platform/log.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using platform::ControlErrc;
using platform::Method;
using platform::Request;
using platform::Response;
using platform::Router;

using Local = asio::local::stream_protocol;
using Stream = beast::basic_stream<Local, asio::any_io_executor, beast::unlimited_rate_policy>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Guards against a hang in a broken build only; a passing test never waits for it.
// Note: co_await is never written inside a CHECK/REQUIRE: Catch expands the expression more than
// once (e.g. in __builtin_constant_p), which GCC 12 coroutines mishandle.
constexpr auto kSafety = 20s;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/control-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

Router test_router() {
  Router r;
  r.get("/status", [](const Request&) { return Response::json({{"state", "up"}}); });
  r.get("/leases/{address}", [](const Request& req) {
    return Response::json({{"address", *req.param("address")}});
  });
  r.get("/leases/stats", [](const Request&) { return Response::json({{"count", 2}}); });
  r.post("/leases/{address}/release", [](const Request& req) {
    return Response::json(
        {{"released", *req.param("address")}, {"force", req.query_param("force").value_or("no")}});
  });
  r.post("/echo", [](const Request& req) { return Response::json({{"got", req.body}}); });
  r.get("/boom", [](const Request&) -> Response { throw std::runtime_error("kaboom"); });
  return r;
}

// Option structs are filled field by field: GCC 12 warns (-Wmissing-field-initializers) about
// designated initializers that leave members to their defaults.
platform::ControlServerOptions server_options(std::string path,
                                              platform::Counters* counters = nullptr) {
  platform::ControlServerOptions o;
  o.path = std::move(path);
  o.counters = counters;
  return o;
}

platform::ControlClientOptions client_options(std::chrono::milliseconds timeout) {
  platform::ControlClientOptions o;
  o.timeout = timeout;
  return o;
}

// --- helpers for a server and a test coroutine sharing one io_context -------------------------

template <typename Body>
void with_server(Router router, platform::ControlServerOptions options, Body body) {
  asio::io_context io{1};
  platform::ControlServer server{io, std::move(router), std::move(options)};
  const auto started = server.start();
  REQUIRE(started.has_value());
  std::exception_ptr failure;
  bool finished = false;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { co_await body(server); },
      [&](std::exception_ptr e) {
        failure = e;
        finished = true;
        server.stop();
      });
  io.run_for(kSafety);
  REQUIRE(finished);
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<Stream> connect_raw(std::string path) {
  Stream s{co_await asio::this_coro::executor};
  s.expires_after(kSafety);
  auto [ec] = co_await s.async_connect(Local::endpoint{path}, kNoThrow);
  REQUIRE_FALSE(ec);
  co_return s;
}

asio::awaitable<void> write_raw(Stream& s, std::string bytes) {
  s.expires_after(kSafety);
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes), kNoThrow);
  REQUIRE_FALSE(ec);
}

asio::awaitable<http::response<http::string_body>> read_response(Stream& s,
                                                                 beast::flat_buffer& buffer) {
  http::response<http::string_body> res;
  s.expires_after(kSafety);
  auto [ec, n] = co_await http::async_read(s, buffer, res, kNoThrow);
  INFO(ec.message());
  REQUIRE_FALSE(ec);
  co_return res;
}

// Reads until the peer closes the connection; the error that ended reading (eof when the server
// closed it, timeout only if the safety deadline fired).
asio::awaitable<boost::system::error_code> wait_closed(Stream& s) {
  s.expires_after(kSafety);
  std::array<char, 512> buf;
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
    if (ec) co_return ec;
  }
}

asio::awaitable<http::response<http::string_body>> exchange_raw(std::string path,
                                                                std::string bytes) {
  auto s = co_await connect_raw(path);
  co_await write_raw(s, std::move(bytes));
  beast::flat_buffer buffer;
  co_return co_await read_response(s, buffer);
}

std::string error_of(const http::response<http::string_body>& res) {
  const auto v = json::parse(res.body());
  return std::string{v.at("error").as_string()};
}

// A server running on its own thread, for the blocking client.
class ServerThread {
 public:
  ServerThread(Router router, platform::ControlServerOptions options)
      : server_{io_, std::move(router), std::move(options)} {
    const auto started = server_.start();
    REQUIRE(started.has_value());
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~ServerThread() {
    asio::post(io_, [this] { server_.stop(); });
    thread_.join();
  }

 private:
  asio::io_context io_{1};
  platform::ControlServer server_;
  std::thread thread_;
};

// A socket file that nobody listens on: bound, then closed without unlinking.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  ::close(fd);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

// --- Router (pure) -----------------------------------------------------------------------------

TEST_CASE("router: dispatches by method and path, with path and query parameters", "[platform]") {
  const auto router = test_router();
  auto r = router.handle("GET", "/status", "");
  CHECK(r.status == 200);
  CHECK(r.body == json::value{{"state", "up"}});

  r = router.handle("GET", "/leases/2001:db8::7", "");
  CHECK(r.body == json::value{{"address", "2001:db8::7"}});

  r = router.handle("POST", "/leases/192.0.2.7/release?force=yes%21&x=a+b", "");
  CHECK(r.body == json::value{{"released", "192.0.2.7"}, {"force", "yes!"}});

  r = router.handle("POST", "/leases/a%2Fb/release", "");  // an encoded "/" stays in the segment
  CHECK(r.body.at("released") == "a/b");

  r = router.handle("POST", "/echo", R"({"n": [1, 2]})");
  CHECK(r.body == json::parse(R"({"got": {"n": [1, 2]}})"));
  r = router.handle("POST", "/echo", "");  // no body: null
  CHECK(r.body == json::parse(R"({"got": null})"));
}

TEST_CASE("router: a literal segment wins over a parameter", "[platform]") {
  const auto router = test_router();
  CHECK(router.handle("GET", "/leases/stats", "").body == json::value{{"count", 2}});
  CHECK(router.handle("GET", "/leases/", "").status == 404);  // a parameter is never empty
}

TEST_CASE("router: unknown path is 404 with a JSON error", "[platform]") {
  const auto r = test_router().handle("GET", "/nope", "");
  CHECK(r.status == 404);
  CHECK(r.error_message() == "no such resource: /nope");
}

TEST_CASE("router: a known path with another method is 405 with Allow", "[platform]") {
  const auto router = test_router();
  auto r = router.handle("DELETE", "/status", "");
  CHECK(r.status == 405);
  CHECK(r.error_message() == "method DELETE not allowed on /status");
  CHECK(r.header("allow") == "GET");
  r = router.handle("BREW", "/leases/192.0.2.7/release", "");
  CHECK(r.status == 405);
  CHECK(r.header("Allow") == "POST");
}

TEST_CASE("router: malformed requests are 400 with a JSON error", "[platform]") {
  struct Row {
    std::string method, target, body, error;
  };
  const std::vector<Row> rows = {
      {"POST", "/echo", "{\"a\": }", "invalid JSON body: line 1, column 7: syntax error"},
      {"POST", "/echo", "{\"a\": 1,\n\"a\": 2}",
       "invalid JSON body: /a: duplicate key (each key may appear once)"},
      {"GET", "status", "", "request target must start with '/'"},
      {"GET", "http://localhost/status", "", "request target must start with '/'"},
      {"GET", "/leases/%zz", "", "invalid percent-encoding in path"},
      {"GET", "/leases/%00", "", "invalid percent-encoding in path"},
      {"GET", "/leases/%4", "", "invalid percent-encoding in path"},
      {"GET", "/status?a=%", "", "invalid percent-encoding in query"},
      {"GET", "/status?a=1&a=2", "", "query parameter 'a' given more than once"},
  };
  const auto router = test_router();
  for (const auto& row : rows) {
    INFO(row.method << " " << row.target << " " << row.body);
    const auto r = router.handle(row.method, row.target, row.body);
    CHECK(r.status == 400);
    CHECK(r.error_message() == row.error);
  }
}

TEST_CASE("router: a throwing handler gives 500 and the router keeps working", "[platform]") {
  auto router = test_router();
  router.get("/weird", [](const Request&) -> Response { throw 42; });
  router.get("/bad-status", [](const Request&) { return Response::json({}, 42); });
  auto r = router.handle("GET", "/boom", "");
  CHECK(r.status == 500);
  CHECK(r.error_message() == "internal error: kaboom");
  CHECK(router.handle("GET", "/weird", "").error_message() == "internal error");
  CHECK(router.handle("GET", "/bad-status", "").status == 500);
  CHECK(router.handle("GET", "/status", "").status == 200);
}

TEST_CASE("router: malformed or repeated routes are programming errors", "[platform]") {
  Router r;
  const platform::Handler h = [](const Request&) { return Response::json({}); };
  r.get("/a/{x}", h);
  CHECK_THROWS_AS(r.get("/a/{x}", h), std::logic_error);
  CHECK_NOTHROW(r.post("/a/{x}", h));
  CHECK_THROWS_AS(r.get("a", h), std::logic_error);
  CHECK_THROWS_AS(r.get("/b/{}", h), std::logic_error);
  CHECK_THROWS_AS(r.get("/b/{x}/{x}", h), std::logic_error);
  CHECK_THROWS_AS(r.get("/b/x{y}", h), std::logic_error);
  CHECK_THROWS_AS(r.get("/c", platform::Handler{}), std::logic_error);
  CHECK(r.has_route(Method::Post, "/a/{x}"));
  CHECK_FALSE(r.has_route(Method::Put, "/a/{x}"));
}

TEST_CASE("router: method names", "[platform]") {
  for (auto m : {Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete})
    CHECK(platform::parse_method(platform::to_string(m)) == m);
  CHECK_FALSE(platform::parse_method("get").has_value());
  CHECK_FALSE(platform::parse_method("HEAD").has_value());
}

// --- Counters ------------------------------------------------------------------------------------

TEST_CASE("router: serve_logs pages a log ring as JSON", "[platform]") {
  platform::LogRing ring{100};
  const auto t = std::chrono::system_clock::time_point{std::chrono::milliseconds{1795000000123}};
  for (int i = 1; i <= 5; ++i)
    ring.push(platform::LogRecord{t, i % 2 ? platform::LogLevel::Info : platform::LogLevel::Error,
                                  "tep", fmt::format("line {}", i)});
  Router router;
  router.get("/logs", [&ring](const Request& r) { return platform::serve_logs(ring, r); });

  auto r = router.handle("GET", "/logs", "");
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"lines": [
      {"seq": 1, "time": "2026-11-18T11:06:40.123Z", "level": "info", "component": "tep",
       "message": "line 1"},
      {"seq": 2, "time": "2026-11-18T11:06:40.123Z", "level": "error", "component": "tep",
       "message": "line 2"},
      {"seq": 3, "time": "2026-11-18T11:06:40.123Z", "level": "info", "component": "tep",
       "message": "line 3"},
      {"seq": 4, "time": "2026-11-18T11:06:40.123Z", "level": "error", "component": "tep",
       "message": "line 4"},
      {"seq": 5, "time": "2026-11-18T11:06:40.123Z", "level": "info", "component": "tep",
       "message": "line 5"}], "next": 6})"));

  const auto seqs_of = [](const Response& res) {
    std::vector<std::int64_t> out;
    for (const auto& l : res.body.at("lines").as_array())
      out.push_back(l.at("seq").to_number<std::int64_t>());
    return out;
  };
  CHECK(r.body.at("next").is_int64());
  CHECK(r.body.at("lines").at(0).at("seq").is_int64());
  r = router.handle("GET", "/logs?since=2&limit=2", "");
  CHECK(seqs_of(r) == std::vector<std::int64_t>{2, 3});
  CHECK(r.body.at("next") == 4);
  r = router.handle("GET", "/logs?since=2&level=error", "");
  CHECK(seqs_of(r) == std::vector<std::int64_t>{2, 4});
  CHECK(r.body.at("next") == 6);
  // Without since: the newest lines.
  r = router.handle("GET", "/logs?limit=2", "");
  CHECK(seqs_of(r) == std::vector<std::int64_t>{4, 5});
  r = router.handle("GET", "/logs?since=6", "");
  CHECK(seqs_of(r).empty());
  CHECK(r.body.at("next") == 6);
  r = router.handle("GET", "/logs?limit=2000", "");
  CHECK(r.status == 200);

  const std::pair<std::string_view, std::string_view> bad[] = {
      {"/logs?since=-1", "since: expected a non-negative integer"},
      {"/logs?since=x", "since: expected a non-negative integer"},
      {"/logs?since=", "since: expected a non-negative integer"},
      {"/logs?limit=0", "limit: expected an integer from 1 to 2000"},
      {"/logs?limit=2001", "limit: expected an integer from 1 to 2000"},
      {"/logs?limit=99999999999999999999999", "limit: expected an integer from 1 to 2000"},
      {"/logs?level=WARN", "level: expected debug, info, warn or error"},
  };
  for (const auto& [target, message] : bad) {
    INFO(target);
    r = router.handle("GET", target, "");
    CHECK(r.status == 400);
    CHECK(r.error_message() == message);
  }
}

TEST_CASE("counters: Prometheus text format, sorted, with escaped label values", "[platform]") {
  platform::Counters c;
  c.counter("tep_packets_total", "Packets seen, by direction.", {{"dir", "out"}}).inc(5);
  c.counter("tep_packets_total", "Packets seen, by direction.", {{"dir", "in"}}).inc(7);
  c.gauge("tep_queue_depth", "Packets waiting\nfor a query \\ answer.").set(-3);
  c.counter("tep_drops_total", "Drops.", {{"z", "1"}, {"reason", "a \"b\"\n\\"}}).inc();
  CHECK(c.to_prometheus() ==
        "# HELP tep_drops_total Drops.\n"
        "# TYPE tep_drops_total counter\n"
        "tep_drops_total{reason=\"a \\\"b\\\"\\n\\\\\",z=\"1\"} 1\n"
        "# HELP tep_packets_total Packets seen, by direction.\n"
        "# TYPE tep_packets_total counter\n"
        "tep_packets_total{dir=\"in\"} 7\n"
        "tep_packets_total{dir=\"out\"} 5\n"
        "# HELP tep_queue_depth Packets waiting\\nfor a query \\\\ answer.\n"
        "# TYPE tep_queue_depth gauge\n"
        "tep_queue_depth -3\n");
}

TEST_CASE("counters: JSON snapshot", "[platform]") {
  platform::Counters c;
  c.counter("a_total", "A.", {{"k", "v"}}).inc(18446744073709551615ull);
  c.gauge("b", "B.").set(4);
  CHECK(c.to_json() == json::parse(R"({
    "a_total": {"type": "counter", "help": "A.",
                "series": [{"labels": {"k": "v"}, "value": 18446744073709551615}]},
    "b": {"type": "gauge", "help": "B.", "series": [{"labels": {}, "value": 4}]}})"));
}

TEST_CASE("counters: the same name and labels give the same series, in any label order",
          "[platform]") {
  platform::Counters c;
  auto& x = c.counter("x_total", "X.", {{"a", "1"}, {"b", "2"}});
  auto& y = c.counter("x_total", "X.", {{"b", "2"}, {"a", "1"}});
  CHECK(&x == &y);
  CHECK(&c.counter("x_total", "X.", {{"a", "2"}, {"b", "2"}}) != &x);
}

TEST_CASE("counters: callback series are read at every snapshot, beside stored ones",
          "[platform]") {
  platform::Counters c;
  std::uint64_t elsewhere = 3;
  std::int64_t depth = -2;
  c.counter("requests_total", "Requests", {{"kind", "a"}}).inc(5);
  c.counter_fn("requests_total", "Requests", {{"kind", "b"}}, [&] { return elsewhere; });
  c.gauge_fn("queue_depth", "Depth", {}, [&] { return depth; });
  elsewhere = 7;
  depth = 4;
  const auto text = c.to_prometheus();
  CHECK(text.find("requests_total{kind=\"a\"} 5\n") != std::string::npos);
  CHECK(text.find("requests_total{kind=\"b\"} 7\n") != std::string::npos);
  CHECK(text.find("queue_depth 4\n") != std::string::npos);
  const auto json = c.to_json();
  CHECK(json.at("queue_depth").at("series").at(0).at("value").to_number<std::int64_t>() == 4);
  CHECK_THROWS_AS(
      c.counter_fn("requests_total", "Requests", {{"kind", "b"}}, [] { return std::uint64_t{0}; }),
      std::logic_error);
  CHECK_THROWS_AS(c.counter("requests_total", "Requests", {{"kind", "b"}}), std::logic_error);
}

TEST_CASE("counters: bad names and conflicting registrations throw", "[platform]") {
  platform::Counters c;
  c.counter("ok_total", "Ok.");
  CHECK_THROWS_AS(c.counter("9lives", "."), std::logic_error);
  CHECK_THROWS_AS(c.counter("has-dash", "."), std::logic_error);
  CHECK_THROWS_AS(c.counter("x", ".", {{"__reserved", "v"}}), std::logic_error);
  CHECK_THROWS_AS(c.counter("x", ".", {{"a", "1"}, {"a", "2"}}), std::logic_error);
  CHECK_THROWS_AS(c.gauge("ok_total", "Ok."), std::logic_error);
  CHECK_THROWS_AS(c.counter("ok_total", "Other help."), std::logic_error);
}

// --- Server and client over a real Unix socket ------------------------------------------------

TEST_CASE("control: the blocking client gets answers from a server on another thread",
          "[platform]") {
  TempDir dir;
  const auto path = dir.file("tep.sock");
  ServerThread server{test_router(), server_options(path)};
  const platform::ControlClient client{path, client_options(10s)};

  auto r = client.request(Method::Get, "/status");
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->body == json::value{{"state", "up"}});
  CHECK(r->header("content-type") == "application/json");

  r = client.request(Method::Post, "/echo", json::value{{"lease", "192.0.2.9"}});
  REQUIRE(r.has_value());
  CHECK(r->body == json::parse(R"({"got": {"lease": "192.0.2.9"}})"));

  r = client.request(Method::Get, "/nowhere");
  REQUIRE(r.has_value());
  CHECK(r->status == 404);
  CHECK(r->error_message() == "no such resource: /nowhere");
}

TEST_CASE("control: the awaitable client, errors as JSON, and a server that survives them",
          "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  auto options = server_options(path);
  options.limits.max_body_bytes = 1024;
  options.limits.max_header_bytes = 1024;
  with_server(test_router(), options, [&](platform::ControlServer&) -> asio::awaitable<void> {
    const platform::ControlClient client{path, client_options(10s)};

    // (Bodies are built before co_await: GCC 12 cannot keep an initializer_list's array alive
    // across a suspension.)
    const json::value small{{"x", 1}};
    const json::value big{{"x", std::string(2000, 'a')}};
    auto r = co_await client.async_request(Method::Post, "/echo", small);
    REQUIRE(r.has_value());
    CHECK(r->status == 200);

    // Oversized body: 413, before the server reads it.
    r = co_await client.async_request(Method::Post, "/echo", big);
    REQUIRE(r.has_value());
    CHECK(r->status == 413);
    CHECK(r->error_message() == "request body larger than 1024 bytes");

    // A handler exception is a 500 and the server keeps serving.
    r = co_await client.async_request(Method::Get, "/boom");
    REQUIRE(r.has_value());
    CHECK(r->status == 500);
    CHECK(r->error_message() == "internal error: kaboom");

    // Bad JSON body.
    auto res = co_await exchange_raw(
        path, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"a\": tru");
    CHECK(res.result_int() == 400);
    CHECK(error_of(res) == "invalid JSON body: line 1, column 10: incomplete JSON");

    // Not HTTP at all.
    res = co_await exchange_raw(path, "HELLO THERE\r\n\r\n");
    CHECK(res.result_int() == 400);
    CHECK(error_of(res).starts_with("malformed HTTP request: "));

    // Header over the limit.
    const std::string big_header =
        "GET /status HTTP/1.1\r\nX-Pad: " + std::string(2000, 'p') + "\r\n\r\n";
    res = co_await exchange_raw(path, big_header);
    CHECK(res.result_int() == 431);
    CHECK(error_of(res) == "request header larger than 1024 bytes");

    // Chunked body over the limit (no Content-Length to refuse up front).
    const std::string big_chunk =
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
        std::string(0x800, ' ') + "\r\n0\r\n\r\n";
    res = co_await exchange_raw(path, big_chunk);
    CHECK(res.result_int() == 413);

    r = co_await client.async_request(Method::Get, "/status");
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
  });
}

TEST_CASE("control: keep-alive serves several requests, pipelined too, on one connection",
          "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  with_server(test_router(), server_options(path),
              [&](platform::ControlServer& server) -> asio::awaitable<void> {
                auto s = co_await connect_raw(path);
                beast::flat_buffer buffer;
                co_await write_raw(s, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
                auto res = co_await read_response(s, buffer);
                CHECK(res.result_int() == 200);
                CHECK(res.keep_alive());

                co_await write_raw(s,
                                   "GET /leases/192.0.2.1 HTTP/1.1\r\n\r\n"
                                   "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
                                   "GET /status HTTP/1.1\r\nConnection: close\r\n\r\n");
                res = co_await read_response(s, buffer);
                CHECK(json::parse(res.body()) == json::value{{"address", "192.0.2.1"}});
                res = co_await read_response(s, buffer);
                CHECK(json::parse(res.body()) == json::parse(R"({"got": []})"));
                res = co_await read_response(s, buffer);
                CHECK(res.result_int() == 200);
                CHECK_FALSE(res.keep_alive());
                const auto closed = co_await wait_closed(s);
                CHECK(closed == asio::error::eof);
                CHECK(server.connection_count() == 0);
              });
}

TEST_CASE("control: Expect 100-continue is answered before the body is sent", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  with_server(test_router(), server_options(path),
              [&](platform::ControlServer&) -> asio::awaitable<void> {
                auto s = co_await connect_raw(path);
                beast::flat_buffer buffer;
                co_await write_raw(
                    s, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
                auto interim = co_await read_response(s, buffer);
                CHECK(interim.result_int() == 100);
                co_await write_raw(s, "true");
                auto res = co_await read_response(s, buffer);
                CHECK(json::parse(res.body()) == json::parse(R"({"got": true})"));
              });
}

TEST_CASE("control: a peer that stops mid-request is cut off by the read deadline", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  platform::Counters counters;
  auto options = server_options(path, &counters);
  options.limits.read_timeout = 50ms;
  with_server(
      test_router(), options, [&](platform::ControlServer& server) -> asio::awaitable<void> {
        auto s = co_await connect_raw(path);
        co_await write_raw(s, "GET /status HTTP/1.1\r\nHost: x\r\n");  // no blank line: never ends
        const auto closed = co_await wait_closed(s);
        CHECK(closed == asio::error::eof);
        CHECK(server.connection_count() == 0);
        CHECK(counters
                  .counter("control_timeouts_total",
                           "Control-socket connections closed by the idle or read deadline")
                  .value() == 1);
      });
}

TEST_CASE("control: an idle connection is closed by the idle deadline", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  auto options = server_options(path);
  // Long enough that the request below is surely sent before it expires even on a loaded machine.
  options.limits.idle_timeout = 200ms;
  with_server(test_router(), options, [&](platform::ControlServer&) -> asio::awaitable<void> {
    auto s = co_await connect_raw(path);  // sends nothing
    const auto closed = co_await wait_closed(s);
    CHECK(closed == asio::error::eof);
    // Also after a first request on a kept-alive connection.
    auto t = co_await connect_raw(path);
    beast::flat_buffer buffer;
    co_await write_raw(t, "GET /status HTTP/1.1\r\n\r\n");
    const auto res = co_await read_response(t, buffer);
    CHECK(res.result_int() == 200);
    const auto closed_after = co_await wait_closed(t);
    CHECK(closed_after == asio::error::eof);
  });
}

TEST_CASE("control: connections beyond the limit get 503 and the others keep working",
          "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  platform::Counters counters;
  auto options = server_options(path, &counters);
  options.limits.max_connections = 1;
  with_server(test_router(), options, [&](platform::ControlServer&) -> asio::awaitable<void> {
    auto first = co_await connect_raw(path);  // holds the only slot (accepted in order)
    auto second = co_await connect_raw(path);
    beast::flat_buffer b2;
    auto refused = co_await read_response(second, b2);
    CHECK(refused.result_int() == 503);
    CHECK(error_of(refused) == "too many connections");

    beast::flat_buffer b1;
    co_await write_raw(first, "GET /status HTTP/1.1\r\n\r\n");
    const auto answered = co_await read_response(first, b1);
    CHECK(answered.result_int() == 200);
    CHECK(counters.to_json()
              .at("control_connections_rejected_total")
              .at("series")
              .at(0)
              .at("value") == 1);
  });
}

TEST_CASE("control: /metrics renders the registered counters as Prometheus text", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  platform::Counters counters;
  counters.counter("tep_packets_total", "Packets.", {{"dir", "in"}}).inc(3);
  with_server(test_router(), server_options(path, &counters),
              [&](platform::ControlServer&) -> asio::awaitable<void> {
                const platform::ControlClient client{path};
                const auto ok = co_await client.async_request(Method::Get, "/status");
                CHECK(ok->status == 200);
                const auto missing = co_await client.async_request(Method::Get, "/nope");
                CHECK(missing->status == 404);

                auto r = co_await client.async_request(Method::Get, "/metrics");
                REQUIRE(r.has_value());
                CHECK(r->status == 200);
                CHECK(r->header("Content-Type") == platform::kPrometheusContentType);
                REQUIRE(r->text.has_value());
                const std::string& text = *r->text;
                CHECK_THAT(text, Catch::Contains("# TYPE tep_packets_total counter\n"
                                                 "tep_packets_total{dir=\"in\"} 3\n"));
                CHECK_THAT(text, Catch::Contains("# TYPE control_requests_total counter\n"
                                                 "control_requests_total{code=\"200\"} 1\n"
                                                 "control_requests_total{code=\"404\"} 1\n"));
                CHECK_THAT(text, Catch::Contains("control_connections 1\n"));

                r = co_await client.async_request(Method::Get, "/counters");
                REQUIRE(r.has_value());
                CHECK(r->body.at("tep_packets_total").at("series").at(0).at("value") == 3);
              });
}

TEST_CASE("control: a server serves GET /logs from the installed log ring", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  const auto previous = platform::default_log_sink();
  const auto ring = platform::install_log_ring(50);
  platform::Logger{"tep"}.warn("the tunnel said {}", "\"hi\"\n");
  with_server(test_router(), server_options(path),
              [&](platform::ControlServer&) -> asio::awaitable<void> {
                const platform::ControlClient client{path};
                auto r = co_await client.async_request(Method::Get, "/logs?level=warn");
                REQUIRE(r.has_value());
                CHECK(r->status == 200);
                const auto& lines = r->body.at("lines").as_array();
                REQUIRE(lines.size() == 1);
                CHECK(lines[0].at("component") == "tep");
                CHECK(lines[0].at("level") == "warn");
                CHECK(lines[0].at("message") == "the tunnel said \"hi\"\n");
                CHECK(lines[0].at("seq") == 1);
                CHECK(r->body.at("next").to_number<std::int64_t>() >= 2);  // the server logs too

                r = co_await client.async_request(Method::Get, "/logs?limit=0");
                REQUIRE(r.has_value());
                CHECK(r->status == 400);
              });

  // A router with its own /logs keeps it.
  auto router = test_router();
  router.get("/logs", [](const Request&) { return Response::json({{"own", true}}); });
  with_server(std::move(router), server_options(path),
              [&](platform::ControlServer&) -> asio::awaitable<void> {
                const platform::ControlClient client{path};
                auto r = co_await client.async_request(Method::Get, "/logs");
                REQUIRE(r.has_value());
                CHECK(r->body == json::value{{"own", true}});
              });
  platform::set_default_log_sink(previous);
}

TEST_CASE("control: the socket file is created 0660 and removed by stop()", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  const mode_t old_umask = ::umask(022);
  asio::io_context io{1};
  {
    platform::ControlServer server{io, test_router(), server_options(path)};
    REQUIRE(server.start().has_value());
    ::umask(old_umask);
    struct stat st {};
    REQUIRE(::lstat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == 0660);
    server.stop();
    CHECK_FALSE(exists(path));
    server.stop();  // idempotent
  }
  io.run_for(kSafety);  // the stopped accept loop finishes; returns at once
  CHECK(io.stopped());
}

TEST_CASE("control: stop() from a handler still answers that request", "[platform]") {
  TempDir dir;
  const auto path = dir.file("ctl.sock");
  platform::ControlServer* self = nullptr;
  auto router = test_router();
  router.post("/shutdown", [&](const Request&) {
    self->stop();
    return Response::json({{"stopping", true}});
  });
  with_server(std::move(router), server_options(path),
              [&](platform::ControlServer& server) -> asio::awaitable<void> {
                self = &server;
                const platform::ControlClient client{path};
                auto r = co_await client.async_request(Method::Post, "/shutdown");
                REQUIRE(r.has_value());
                CHECK(r->body == json::value{{"stopping", true}});
                CHECK_FALSE(exists(path));
                auto again = co_await client.async_request(Method::Get, "/status");
                CHECK(again.error() == boost::system::errc::no_such_file_or_directory);
              });
}

TEST_CASE("control: a stale socket is replaced, a live one and a non-socket are left alone",
          "[platform]") {
  TempDir dir;
  asio::io_context io{1};

  const auto stale = dir.file("stale.sock");
  make_stale_socket(stale);
  platform::ControlServer first{io, test_router(), server_options(stale)};
  REQUIRE(first.start().has_value());

  // The first server listens (the kernel accepts for it even before io runs).
  platform::ControlServer second{io, test_router(), server_options(stale)};
  auto r = second.start();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == ControlErrc::PathInUse);
  CHECK(exists(stale));
  second.stop();  // must not remove the first server's file
  CHECK(exists(stale));

  const auto regular = dir.file("config.json");
  std::ofstream{regular} << "{}";
  platform::ControlServer third{io, test_router(), server_options(regular)};
  r = third.start();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == ControlErrc::NotASocket);
  CHECK(std::filesystem::file_size(regular) == 2);

  platform::ControlServer fourth{io, test_router(),
                                 server_options("/tmp/" + std::string(120, 'x'))};
  CHECK(fourth.start().error() == ControlErrc::PathTooLong);

  platform::ControlServer fifth{io, test_router(), server_options(dir.file("missing/dir.sock"))};
  CHECK(fifth.start().error() == boost::system::errc::no_such_file_or_directory);
}

TEST_CASE("control client: no server at the path is an immediate error", "[platform]") {
  TempDir dir;
  // A long deadline: an error other than timeout proves the client did not wait for it.
  const platform::ControlClient absent{dir.file("absent.sock"), client_options(60s)};
  auto r = absent.request(Method::Get, "/status");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == boost::system::errc::no_such_file_or_directory);

  const auto stale = dir.file("stale.sock");
  make_stale_socket(stale);
  r = platform::ControlClient{stale, client_options(60s)}.request(Method::Get, "/status");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == boost::system::errc::connection_refused);

  r = platform::ControlClient{std::string(200, 'x')}.request(Method::Get, "/status");
  CHECK(r.error() == ControlErrc::PathTooLong);
}

TEST_CASE("control client: a server that never answers gives a timeout at the deadline",
          "[platform]") {
  TempDir dir;
  const auto path = dir.file("hung.sock");
  asio::io_context io{1};
  // Listens but never accepts or reads: connect and write succeed, the response never comes.
  Local::acceptor hung{io, Local::endpoint{path}};
  const platform::ControlClient client{path, client_options(50ms)};
  auto r = client.request(Method::Post, "/echo", json::value{{"x", 1}});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == ControlErrc::Timeout);
  CHECK(r.error().message() == "control socket: no complete response before the deadline");
}

TEST_CASE("control client: a peer that closes without answering is reported", "[platform]") {
  TempDir dir;
  const auto path = dir.file("rude.sock");
  asio::io_context io{1};
  Local::acceptor rude{io, Local::endpoint{path}};
  std::thread peer{[&] {
    Local::socket s{io};
    rude.accept(s);
    char buf[4096];
    boost::system::error_code ec;
    (void)s.read_some(asio::buffer(buf), ec);  // the whole request fits in one read here
    s.close(ec);
  }};
  const platform::ControlClient client{path, client_options(10s)};
  auto r = client.request(Method::Get, "/status");
  peer.join();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error() == ControlErrc::ConnectionClosed);
}
