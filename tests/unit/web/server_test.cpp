// Tests for the dashboard's HTTPS server on loopback: a Beast client that trusts the generated
// certificate, handlers of the test's own, and short injected limits. The server and the test
// coroutine share one io_context; every wait is on an event, with a safety deadline that only
// a broken build reaches.
#include "web/server.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/object.hpp>

#include "platform/counters.hpp"
#include "support/daemon_process.hpp"
#include "web/tls.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Response = http::response<http::string_body>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Guards against a hang in a broken build only; a passing test never waits for it.
// Note: co_await is never written inside CHECK/REQUIRE (Catch evaluates the expression more
// than once, which GCC 12 coroutines mishandle).
constexpr auto kSafety = 20s;

// A certificate store, the client's trust in its certificate, and counters.
struct Fixture {
  test::TempDir tmp;
  std::unique_ptr<web::Tls> tls;
  ssl::context client{ssl::context::tls_client};
  platform::Counters counters;

  Fixture() {
    auto t = web::Tls::open((tmp / "tls").string(), {"127.0.0.1", "localhost"});
    REQUIRE(t.has_value());
    tls = std::move(*t);
    client.set_verify_mode(ssl::verify_peer);
    client.load_verify_file((tmp / "tls" / "self-signed.crt").string());
  }

  web::ServerOptions options() {
    web::ServerOptions o;
    o.listen = {"127.0.0.1"};
    o.https_port = 0;
    o.http_port.reset();
    o.tls = tls.get();
    o.counters = &counters;
    return o;
  }

  std::uint64_t counter(std::string_view name, std::string_view code = {}) const {
    const auto all = counters.to_json();
    const auto* family = all.as_object().if_contains(name);
    if (!family) return 0;
    std::uint64_t sum = 0;
    for (const auto& s : family->at("series").as_array()) {
      const auto& labels = s.at("labels").as_object();
      if (!code.empty() && (!labels.contains("code") || labels.at("code").as_string() != code))
        continue;
      sum += s.at("value").to_number<std::uint64_t>();
    }
    return sum;
  }
};

template <typename Body>
void with_server(web::ServerOptions options, web::HttpHandler handler, Body body) {
  asio::io_context io{1};
  web::Server server{io, std::move(options), std::move(handler)};
  const auto started = server.start();
  INFO((started ? std::string{} : started.error()));
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

web::HttpHandler echo_handler(std::optional<web::HttpRequest>* seen = nullptr) {
  return [seen](web::HttpRequest req) -> asio::awaitable<web::HttpResponse> {
    if (seen) *seen = req;
    co_return web::HttpResponse::json({{"path", req.path}, {"body", req.body}});
  };
}

asio::awaitable<std::unique_ptr<TlsStream>> connect_tls(ssl::context& ctx, tcp::endpoint ep) {
  auto s = std::make_unique<TlsStream>(co_await asio::this_coro::executor, ctx);
  beast::get_lowest_layer(*s).expires_after(kSafety);
  auto [ec] = co_await beast::get_lowest_layer(*s).async_connect(ep, kNoThrow);
  REQUIRE_FALSE(ec);
  s->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  auto [hec] = co_await s->async_handshake(ssl::stream_base::client, kNoThrow);
  INFO(hec.message());
  REQUIRE_FALSE(hec);
  co_return s;
}

asio::awaitable<std::unique_ptr<beast::tcp_stream>> connect_tcp(tcp::endpoint ep) {
  auto s = std::make_unique<beast::tcp_stream>(co_await asio::this_coro::executor);
  s->expires_after(kSafety);
  auto [ec] = co_await s->async_connect(ep, kNoThrow);
  REQUIRE_FALSE(ec);
  co_return s;
}

template <typename Stream>
asio::awaitable<void> write_raw(Stream& s, std::string bytes) {
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes), kNoThrow);
  REQUIRE_FALSE(ec);
}

template <typename Stream>
asio::awaitable<Response> read_response(Stream& s, beast::flat_buffer& buffer) {
  Response res;
  auto [ec, n] = co_await http::async_read(s, buffer, res, kNoThrow);
  INFO(ec.message());
  REQUIRE_FALSE(ec);
  co_return res;
}

template <typename Stream>
asio::awaitable<Response> request(Stream& s, beast::flat_buffer& buffer, http::verb method,
                                  std::string target, std::string body = {}) {
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.body() = std::move(body);
  req.prepare_payload();
  auto [ec, n] = co_await http::async_write(s, req, kNoThrow);
  REQUIRE_FALSE(ec);
  co_return co_await read_response(s, buffer);
}

// Reads until the peer closes; true when it did (EOF, reset, or TLS truncation) before the
// safety deadline.
template <typename Stream>
asio::awaitable<bool> closed_by_peer(Stream& s) {
  std::array<char, 512> scratch{};
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(scratch), kNoThrow);
    if (ec) co_return ec != beast::error::timeout;
  }
}

// Yields to the io_context until pred() holds (the server has caught up with something the
// test did over the network), bounded by the safety deadline.
template <typename Pred>
asio::awaitable<bool> eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSafety;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) co_return false;
    asio::steady_timer tick{co_await asio::this_coro::executor, 1ms};
    co_await tick.async_wait(kNoThrow);
  }
  co_return true;
}

void check_security_headers(const Response& res, bool hsts) {
  CHECK(res["X-Content-Type-Options"] == "nosniff");
  CHECK(res["X-Frame-Options"] == "DENY");
  CHECK(res["Referrer-Policy"] == "no-referrer");
  CHECK(res["Content-Security-Policy"] == web::kContentSecurityPolicy);
  CHECK(res["Content-Security-Policy"].find("frame-ancestors 'none'") != beast::string_view::npos);
  if (hsts)
    CHECK(res[http::field::strict_transport_security] == web::kStrictTransportSecurity);
  else
    CHECK(res.find(http::field::strict_transport_security) == res.end());
}

TEST_CASE("server: a request reaches the handler decoded, over TLS with the generated certificate",
          "[web]") {
  Fixture f;
  std::optional<web::HttpRequest> seen;
  with_server(f.options(), echo_handler(&seen), [&](web::Server& server) -> asio::awaitable<void> {
    REQUIRE(server.https_endpoints().size() == 1);
    CHECK(server.https_endpoints()[0].port() != 0);
    CHECK(server.http_endpoints().empty());
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    http::request<http::string_body> req{http::verb::post, "/api/x%20y?q=a+b&n=1", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-CSRF-Token", "t");
    req.set(http::field::cookie, "appl_session=s");
    req.body() = R"({"k":1})";
    req.prepare_payload();
    auto [ec, n] = co_await http::async_write(*s, req, kNoThrow);
    REQUIRE_FALSE(ec);
    const auto res = co_await read_response(*s, buffer);
    CHECK(res.result_int() == 200);
    CHECK(res[http::field::content_type] == "application/json");
    CHECK(res.body() == R"({"path":"/api/x y","body":"{\"k\":1}"})"
                        "\n");
    CHECK(res[http::field::cache_control] == "no-store");
    check_security_headers(res, false);
    REQUIRE(seen.has_value());
    CHECK(seen->method == "POST");
    CHECK(seen->target == "/api/x%20y?q=a+b&n=1");
    CHECK(seen->path == "/api/x y");
    CHECK(seen->query == web::Params{{"q", "a b"}, {"n", "1"}});
    CHECK(seen->header("x-csrf-token") == "t");
    CHECK(seen->header("cookie") == "appl_session=s");
    CHECK(seen->header("host") == "127.0.0.1");
    CHECK(seen->body == R"({"k":1})");
    CHECK(seen->remote == "127.0.0.1");

    // Keep-alive: a second request on the same connection.
    const auto again = co_await request(*s, buffer, http::verb::get, "/second");
    CHECK(again.result_int() == 200);
    CHECK(seen->path == "/second");
    CHECK(server.connection_count() == 1);
  });
  CHECK(f.counter("web_requests_total", "200") == 2);
}

TEST_CASE("server: security headers on every response, HSTS only when asked", "[web]") {
  for (const bool hsts : {false, true}) {
    INFO("hsts " << hsts);
    Fixture f;
    auto options = f.options();
    options.hsts = hsts;
    web::HttpHandler handler = [](web::HttpRequest req) -> asio::awaitable<web::HttpResponse> {
      if (req.path == "/missing") co_return web::HttpResponse::error(404, "not found");
      if (req.path == "/cached")
        co_return web::HttpResponse::json(1).with_header("Cache-Control", "no-cache");
      if (req.path == "/empty") {
        web::HttpResponse r;
        r.status = 204;
        co_return r;
      }
      co_return web::HttpResponse::json(1);
    };
    with_server(options, handler, [&](web::Server& server) -> asio::awaitable<void> {
      auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
      beast::flat_buffer buffer;
      for (const char* target : {"/", "/missing", "/cached", "/empty", "/%2e%2e/x"}) {
        INFO(target);
        const auto res = co_await request(*s, buffer, http::verb::get, target);
        check_security_headers(res, hsts);
        const std::string_view path = target;
        CHECK(res[http::field::cache_control] == (path == "/cached" ? "no-cache" : "no-store"));
        if (path == "/empty") {
          CHECK(res.result_int() == 204);
          CHECK(res.find(http::field::content_type) == res.end());
        }
      }
      // A malformed request's 400 carries them too.
      auto raw = co_await connect_tls(f.client, server.https_endpoints()[0]);
      co_await write_raw(*raw, "NOT HTTP\r\n\r\n");
      beast::flat_buffer b2;
      const auto bad = co_await read_response(*raw, b2);
      CHECK(bad.result_int() == 400);
      check_security_headers(bad, hsts);
    });
  }
}

TEST_CASE("server: a body over the limit is refused with 413 from Content-Length alone", "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.max_body_bytes = 1024;
  bool called = false;
  web::HttpHandler handler = [&](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    called = true;
    co_return web::HttpResponse::json(1);
  };
  with_server(options, handler, [&](web::Server& server) -> asio::awaitable<void> {
    // At the limit: served.
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    const auto ok = co_await request(*s, buffer, http::verb::post, "/", std::string(1024, 'x'));
    CHECK(ok.result_int() == 200);
    CHECK(called);
    called = false;

    // Over it: the head alone is answered; the body is never sent.
    auto big = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(*big,
                       "POST /api/config/apply HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n");
    beast::flat_buffer b2;
    const auto res = co_await read_response(*big, b2);
    CHECK(res.result_int() == 413);
    CHECK(res.body() == "{\"error\":\"request body larger than 1024 bytes\"}\n");
    check_security_headers(res, false);
    const bool closed = co_await closed_by_peer(*big);
    CHECK(closed);

    // Chunked, with no length up front: refused once the limit is passed.
    auto chunked = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(*chunked,
                       "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "800\r\n" +
                           std::string(0x800, 'y') + "\r\n0\r\n\r\n");
    beast::flat_buffer b3;
    const auto res2 = co_await read_response(*chunked, b3);
    CHECK(res2.result_int() == 413);
  });
  CHECK_FALSE(called);
  CHECK(f.counter("web_requests_total", "413") == 2);
}

TEST_CASE("server: a header over the limit is 431", "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.max_header_bytes = 1024;
  with_server(options, echo_handler(), [&](web::Server& server) -> asio::awaitable<void> {
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(
        *s, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
    beast::flat_buffer buffer;
    const auto res = co_await read_response(*s, buffer);
    CHECK(res.result_int() == 431);
    CHECK(res.body() == "{\"error\":\"request header larger than 1024 bytes\"}\n");
    const bool closed = co_await closed_by_peer(*s);
    CHECK(closed);
  });
}

TEST_CASE("server: malformed HTTP is 400 and the connection is closed", "[web]") {
  const std::vector<std::string> requests{
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET\t/ HTTP/1.1\r\n\r\n",
  };
  Fixture f;
  bool called = false;
  web::HttpHandler handler = [&](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    called = true;
    co_return web::HttpResponse::json(1);
  };
  with_server(f.options(), handler, [&](web::Server& server) -> asio::awaitable<void> {
    for (const auto& bytes : requests) {
      INFO(bytes);
      auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
      co_await write_raw(*s, bytes);
      beast::flat_buffer buffer;
      const auto res = co_await read_response(*s, buffer);
      CHECK(res.result_int() == 400);
      CHECK(res[http::field::content_type] == "application/json");
      CHECK(res.body().starts_with("{\"error\":\"malformed HTTP request"));
      const bool closed = co_await closed_by_peer(*s);
      CHECK(closed);
    }
  });
  CHECK_FALSE(called);
}

TEST_CASE("server: a target with traversal or a bad escape is 400 and never reaches the handler",
          "[web]") {
  Fixture f;
  bool called = false;
  web::HttpHandler handler = [&](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    called = true;
    co_return web::HttpResponse::json(1);
  };
  with_server(f.options(), handler, [&](web::Server& server) -> asio::awaitable<void> {
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    for (const char* target :
         {"/../etc/passwd", "/%2e%2e/etc/passwd", "/a%2f..%2fb", "/a%00", "/x?a=1&a=2", "/%zz"}) {
      INFO(target);
      const auto res = co_await request(*s, buffer, http::verb::get, target);
      CHECK(res.result_int() == 400);
      CHECK(res.body() == "{\"error\":\"invalid request target\"}\n");
    }
  });
  CHECK_FALSE(called);
}

TEST_CASE("server: HEAD gets the head with the length a GET would have, and no body", "[web]") {
  Fixture f;
  web::HttpHandler handler = [](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    web::HttpResponse r;
    r.content_type = "text/plain";
    r.body = "0123456789";
    co_return r;
  };
  with_server(f.options(), handler, [&](web::Server& server) -> asio::awaitable<void> {
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    http::request<http::empty_body> req{http::verb::head, "/file", 11};
    req.set(http::field::host, "127.0.0.1");
    auto [ec, n] = co_await http::async_write(*s, req, kNoThrow);
    REQUIRE_FALSE(ec);
    http::response_parser<http::empty_body> parser;
    parser.skip(true);  // a response to HEAD has no body, whatever its Content-Length says
    std::tie(ec, n) = co_await http::async_read(*s, buffer, parser, kNoThrow);
    REQUIRE_FALSE(ec);
    CHECK(parser.get().result_int() == 200);
    CHECK(parser.get()[http::field::content_length] == "10");
    CHECK(parser.get()[http::field::content_type] == "text/plain");
    // Had a body been sent, it would be read as the start of this response.
    const auto get = co_await request(*s, buffer, http::verb::get, "/file");
    CHECK(get.result_int() == 200);
    CHECK(get.body() == "0123456789");
  });
}

TEST_CASE("server: a handler that throws or returns a bad status gives 500 and the server goes on",
          "[web]") {
  Fixture f;
  web::HttpHandler handler = [](web::HttpRequest req) -> asio::awaitable<web::HttpResponse> {
    if (req.path == "/throw") throw std::runtime_error("kaboom");
    if (req.path == "/status") {
      web::HttpResponse r;
      r.status = 1000;
      co_return r;
    }
    if (req.path == "/header")
      co_return web::HttpResponse::json(1).with_header("X-Evil", "a\r\nSet-Cookie: x=1");
    co_return web::HttpResponse::json(1);
  };
  with_server(f.options(), handler, [&](web::Server& server) -> asio::awaitable<void> {
    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    const auto thrown = co_await request(*s, buffer, http::verb::get, "/throw");
    CHECK(thrown.result_int() == 500);
    CHECK(thrown.body() == "{\"error\":\"internal error\"}\n");  // no exception text to the peer
    const auto status = co_await request(*s, buffer, http::verb::get, "/status");
    CHECK(status.result_int() == 500);
    const auto header = co_await request(*s, buffer, http::verb::get, "/header");
    CHECK(header.result_int() == 200);
    CHECK(header.find("X-Evil") == header.end());
    CHECK(header.find(http::field::set_cookie) == header.end());
    const auto fine = co_await request(*s, buffer, http::verb::get, "/");
    CHECK(fine.result_int() == 200);
  });
}

struct RedirectRow {
  std::string host;
  std::string target;
  std::string location;
};

TEST_CASE("redirect_location: the Host header's host only when it is a name or an IP literal",
          "[web]") {
  const auto fallback = asio::ip::make_address("192.0.2.1");
  const auto fallback6 = asio::ip::make_address("2001:db8::1");
  const std::vector<RedirectRow> rows{
      {"example.net", "/x?y=1", "https://example.net:8443/x?y=1"},
      {"example.net:8080", "/", "https://example.net:8443/"},
      {"DASH-1.Example.net", "/", "https://DASH-1.Example.net:8443/"},
      {"198.51.100.7:80", "/", "https://198.51.100.7:8443/"},
      {"[2001:db8:0::7]:80", "/a", "https://[2001:db8::7]:8443/a"},
      {"[2001:db8::7]", "/a", "https://[2001:db8::7]:8443/a"},
      {"", "/", "https://192.0.2.1:8443/"},
      {"evil.example/path", "/", "https://192.0.2.1:8443/"},
      {"evil.example@other", "/", "https://192.0.2.1:8443/"},
      {"a b", "/", "https://192.0.2.1:8443/"},
      {"example.net:80:80", "/", "https://192.0.2.1:8443/"},
      {"example.net:http", "/", "https://192.0.2.1:8443/"},
      {"2001:db8::7", "/", "https://192.0.2.1:8443/"},
      {"[2001:db8::7]x", "/", "https://192.0.2.1:8443/"},
      {"[not-v6]", "/", "https://192.0.2.1:8443/"},
      {"example.net", "http://other.example/", "https://example.net:8443/"},
      {"example.net", "*", "https://example.net:8443/"},
      {"example.net", "", "https://example.net:8443/"},
  };
  for (const auto& row : rows) {
    INFO(row.host << " " << row.target);
    CHECK(web::redirect_location(row.host, row.target, fallback, 8443) == row.location);
  }
  CHECK(web::redirect_location("bad/host", "/", fallback6, 443) == "https://[2001:db8::1]:443/");
}

TEST_CASE("server: the HTTP listener redirects every request to HTTPS with 308", "[web]") {
  Fixture f;
  auto options = f.options();
  options.hsts = true;
  options.http_port = 0;  // an ephemeral port
  bool called = false;
  web::HttpHandler handler = [&](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    called = true;
    co_return web::HttpResponse::json(1);
  };
  with_server(options, handler, [&](web::Server& server) -> asio::awaitable<void> {
    REQUIRE(server.http_endpoints().size() == 1);
    const auto https_port = server.https_endpoints()[0].port();
    const auto http_ep = server.http_endpoints()[0];
    for (const auto& [host, location] : std::vector<std::pair<std::string, std::string>>{
             {"dash.example.net:8080", "https://dash.example.net:{}/leases?q=1"},
             {"bad/host", "https://127.0.0.1:{}/leases?q=1"}}) {
      auto s = co_await connect_tcp(http_ep);
      co_await write_raw(
          *s, "POST /leases?q=1 HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 2\r\n\r\n{}");
      beast::flat_buffer buffer;
      const auto res = co_await read_response(*s, buffer);
      CHECK(res.result_int() == 308);
      CHECK(res[http::field::location] == fmt::format(fmt::runtime(location), https_port));
      check_security_headers(res, false);  // never HSTS over plain HTTP
      const bool closed = co_await closed_by_peer(*s);
      CHECK(closed);
    }
  });
  CHECK_FALSE(called);
  CHECK(f.counter("web_requests_total", "308") == 2);
}

// An event stream the test feeds: next() returns what push() queued, waiting while the queue
// is empty; cancel() ends it.
class TestStream : public web::EventStream {
 public:
  explicit TestStream(asio::any_io_executor ex)
      : wake_{ex, asio::steady_timer::time_point::max()},
        waiting_{ex, asio::steady_timer::time_point::max()} {}

  asio::awaitable<std::optional<std::string>> next() override {
    while (queue_.empty() && !cancelled_) {
      ++waits_;
      waiting_.cancel();  // tell the test the previous chunk has been written
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(kNoThrow);
    }
    if (cancelled_) co_return std::nullopt;
    auto s = std::move(queue_.front());
    queue_.pop_front();
    co_return s;
  }
  void cancel() noexcept override {
    cancelled_ = true;
    wake_.cancel();
    waiting_.cancel();
  }
  void push(std::string s) {
    queue_.push_back(std::move(s));
    wake_.cancel();
  }
  // Waits until the server asks for the next event again (it wrote the previous one) or the
  // stream was cancelled.
  asio::awaitable<void> drained() {
    const auto seen = waits_;
    while (waits_ == seen && !cancelled_) {
      waiting_.expires_at(asio::steady_timer::time_point::max());
      co_await waiting_.async_wait(kNoThrow);
    }
  }
  bool cancelled() const { return cancelled_; }

 private:
  asio::steady_timer wake_;
  asio::steady_timer waiting_;
  std::deque<std::string> queue_;
  unsigned waits_ = 0;
  bool cancelled_ = false;
};

// Drops the test's reference to the stream when the test body ends, however it ends: the
// stream's timers belong to the io_context, which with_server destroys when it returns.
struct ReleaseAtEnd {
  std::shared_ptr<TestStream>& stream;
  ~ReleaseAtEnd() { stream.reset(); }
};

web::HttpHandler stream_handler(std::shared_ptr<TestStream>& stream) {
  return [&stream](web::HttpRequest) -> asio::awaitable<web::HttpResponse> {
    stream = std::make_shared<TestStream>(co_await asio::this_coro::executor);
    web::HttpResponse r;
    r.stream = stream;
    co_return r;
  };
}

TEST_CASE("server: event stream chunks arrive as they come, and stop() cancels the stream",
          "[web]") {
  Fixture f;
  std::shared_ptr<TestStream> stream;
  with_server(
      f.options(), stream_handler(stream), [&](web::Server& server) -> asio::awaitable<void> {
        const ReleaseAtEnd release{stream};
        auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
        http::request<http::empty_body> req{http::verb::get, "/api/events", 11};
        req.set(http::field::host, "127.0.0.1");
        auto [ec, n] = co_await http::async_write(*s, req, kNoThrow);
        REQUIRE_FALSE(ec);
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        std::tie(ec, n) = co_await http::async_read_header(*s, buffer, parser, kNoThrow);
        REQUIRE_FALSE(ec);
        const auto& head = parser.get();
        CHECK(head.result_int() == 200);
        CHECK(head[http::field::content_type] == "text/event-stream");
        CHECK(head[http::field::cache_control] == "no-store");
        CHECK(head.chunked());
        CHECK(head["X-Frame-Options"] == "DENY");
        REQUIRE(stream != nullptr);

        // Each event arrives on its own, before the next one exists.
        for (const std::string event : {"event: tick\ndata: 1\n\n", "event: tick\ndata: 2\n\n"}) {
          stream->push(event);
          while (parser.get().body().find(event) == std::string::npos) {
            std::tie(ec, n) = co_await http::async_read_some(*s, buffer, parser, kNoThrow);
            REQUIRE_FALSE(ec);
          }
        }
        CHECK(parser.get().body() == "event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\n");
        CHECK_FALSE(stream->cancelled());

        // stop(): the stream is cancelled, its end is sent, and the connection closes.
        server.stop();
        CHECK(stream->cancelled());
        std::tie(ec, n) = co_await http::async_read(*s, buffer, parser, kNoThrow);
        CHECK_FALSE(ec);
        CHECK(parser.is_done());
        const bool closed = co_await closed_by_peer(*s);
        CHECK(closed);
      });
}

TEST_CASE("server: an event stream whose peer went away is cancelled", "[web]") {
  Fixture f;
  std::shared_ptr<TestStream> stream;
  with_server(
      f.options(), stream_handler(stream), [&](web::Server& server) -> asio::awaitable<void> {
        const ReleaseAtEnd release{stream};
        auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
        co_await write_raw(*s, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        const bool started = co_await eventually([&] { return stream != nullptr; });
        REQUIRE(started);
        // A hard close (RST): the server's next writes fail.
        const linger hard{1, 0};
        ::setsockopt(beast::get_lowest_layer(*s).socket().native_handle(), SOL_SOCKET, SO_LINGER,
                     &hard, sizeof hard);
        beast::get_lowest_layer(*s).socket().close();
        for (int i = 0; i < 100 && !stream->cancelled(); ++i) {
          stream->push("data: x\n\n");
          co_await stream->drained();
        }
        CHECK(stream->cancelled());
        const bool gone = co_await eventually([&] { return server.connection_count() == 0; });
        CHECK(gone);
      });
}

TEST_CASE("server: connections beyond the per-source and total limits are closed at accept",
          "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.max_connections = 3;
  options.limits.max_connections_per_source = 2;
  with_server(options, echo_handler(), [&](web::Server& server) -> asio::awaitable<void> {
    const auto ep = server.https_endpoints()[0];
    auto a = co_await connect_tls(f.client, ep);
    auto b = co_await connect_tls(f.client, ep);
    CHECK(server.connection_count() == 2);

    // The third from the same source: accepted by the kernel, closed by the server at once.
    auto c = co_await connect_tcp(ep);
    const bool refused = co_await closed_by_peer(*c);
    CHECK(refused);
    CHECK(f.counter("web_connections_rejected_total") == 1);

    // From another source (127.0.0.2 is loopback too) one more fits: the total is 3.
    auto other = std::make_unique<TlsStream>(co_await asio::this_coro::executor, f.client);
    auto& sock = beast::get_lowest_layer(*other).socket();
    sock.open(tcp::v4());
    sock.bind(tcp::endpoint{asio::ip::make_address("127.0.0.2"), 0});
    beast::get_lowest_layer(*other).expires_after(kSafety);
    auto [ec] = co_await beast::get_lowest_layer(*other).async_connect(ep, kNoThrow);
    REQUIRE_FALSE(ec);
    std::tie(ec) = co_await other->async_handshake(ssl::stream_base::client, kNoThrow);
    REQUIRE_FALSE(ec);
    CHECK(server.connection_count() == 3);
    auto d = std::make_unique<beast::tcp_stream>(co_await asio::this_coro::executor);
    d->socket().open(tcp::v4());
    d->socket().bind(tcp::endpoint{asio::ip::make_address("127.0.0.3"), 0});
    d->expires_after(kSafety);
    std::tie(ec) = co_await d->async_connect(ep, kNoThrow);
    REQUIRE_FALSE(ec);
    const bool refused_total = co_await closed_by_peer(*d);
    CHECK(refused_total);
    CHECK(f.counter("web_connections_rejected_total") == 2);

    // The survivors still work; once one leaves, its source may connect again.
    beast::flat_buffer buffer;
    const auto res = co_await request(*a, buffer, http::verb::get, "/");
    CHECK(res.result_int() == 200);
    beast::get_lowest_layer(*b).close();
    const bool left = co_await eventually([&] { return server.connection_count() == 2; });
    REQUIRE(left);
    auto e = co_await connect_tls(f.client, ep);
    beast::flat_buffer b2;
    const auto res2 = co_await request(*e, b2, http::verb::get, "/");
    CHECK(res2.result_int() == 200);
  });
  CHECK(f.counter("web_connections") == 0);
}

TEST_CASE("server: a TLS handshake that does not finish is closed at its deadline", "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.handshake_timeout = 50ms;
  with_server(options, echo_handler(), [&](web::Server& server) -> asio::awaitable<void> {
    auto s = co_await connect_tcp(server.https_endpoints()[0]);  // and never says hello
    const bool closed = co_await closed_by_peer(*s);
    CHECK(closed);
    // Plain HTTP on the HTTPS port fails the handshake without waiting for the deadline.
    auto plain = co_await connect_tcp(server.https_endpoints()[0]);
    co_await write_raw(*plain, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const bool closed_plain = co_await closed_by_peer(*plain);
    CHECK(closed_plain);
  });
  CHECK(f.counter("web_timeouts_total") == 1);
  CHECK(f.counter("web_tls_handshake_failures_total") == 2);
}

TEST_CASE("server: idle and half-sent requests are closed by their deadlines", "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.idle_timeout = 50ms;
  options.limits.read_timeout = 50ms;
  with_server(options, echo_handler(), [&](web::Server& server) -> asio::awaitable<void> {
    auto idle = co_await connect_tls(f.client, server.https_endpoints()[0]);
    const bool idle_closed = co_await closed_by_peer(*idle);
    CHECK(idle_closed);
    auto half = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(*half, "GET / HTTP/1.1\r\nHost: 127.");
    const bool half_closed = co_await closed_by_peer(*half);
    CHECK(half_closed);
  });
  CHECK(f.counter("web_timeouts_total") == 2);
}

TEST_CASE("server: start names the address and port it cannot bind, and stop closes the listener",
          "[web]") {
  Fixture f;
  asio::io_context io{1};
  tcp::acceptor taken{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  const auto port = taken.local_endpoint().port();

  auto options = f.options();
  options.https_port = port;
  web::Server busy{io, options, echo_handler()};
  const auto r = busy.start();
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.error(), Catch::StartsWith(fmt::format("cannot listen on 127.0.0.1:{}: ", port)));
  CHECK(busy.https_endpoints().empty());

  options = f.options();
  options.listen = {"127.0.0.1", "not-an-address"};
  web::Server bad{io, options, echo_handler()};
  const auto r2 = bad.start();
  REQUIRE_FALSE(r2.has_value());
  CHECK(r2.error() == "cannot listen on not-an-address: not an IP address");

  // All or nothing: the first address of the failed start is free again.
  web::Server good{io, f.options(), echo_handler()};
  REQUIRE(good.start().has_value());
  const auto ep = good.https_endpoints()[0];
  good.stop();
  tcp::socket probe{io};
  boost::system::error_code ec;
  probe.connect(ep, ec);
  CHECK(ec == asio::error::connection_refused);
}

}  // namespace

TEST_CASE("server: an upload's body goes to the policy's file under its own limit", "[web]") {
  Fixture f;
  auto options = f.options();
  options.limits.max_body_bytes = 1024;
  const auto file = f.tmp / "upload.part";
  options.upload = [&](const web::HttpRequest& head) -> std::optional<web::Upload> {
    if (head.path != "/upload") return std::nullopt;
    return web::Upload{.file = file, .max_bytes = 3 * 1024 * 1024, .timeout = kSafety};
  };
  std::string seen_in_file;
  std::optional<web::HttpRequest> seen;
  web::HttpHandler handler = [&](web::HttpRequest req) -> asio::awaitable<web::HttpResponse> {
    if (!req.body_file.empty()) {
      std::ifstream in{req.body_file, std::ios::binary};
      seen_in_file.assign(std::istreambuf_iterator<char>{in}, {});
    }
    seen = req;
    co_return web::HttpResponse::json(1);
  };
  std::string payload(3 * 1024 * 1024, 'u');
  for (std::size_t i = 0; i < payload.size(); i += 4096)
    payload[i] = static_cast<char>('a' + i % 26);
  with_server(options, handler, [&](web::Server& server) -> asio::awaitable<void> {
    // Another path keeps the ordinary limit.
    auto other = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(*other,
                       "POST /other HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2048\r\n\r\n");
    beast::flat_buffer b3;
    const auto refused = co_await read_response(*other, b3);
    CHECK(refused.result_int() == 413);

    auto s = co_await connect_tls(f.client, server.https_endpoints()[0]);
    beast::flat_buffer buffer;
    const auto ok = co_await request(*s, buffer, http::verb::post, "/upload", payload);
    CHECK(ok.result_int() == 200);
    REQUIRE(seen);
    CHECK(seen->body.empty());
    CHECK(seen->body_file == file);
    CHECK(seen_in_file == payload);
    // Removed once the handler returned.
    CHECK_FALSE(std::filesystem::exists(file));

    // Past the upload's own limit: refused from the head.
    auto big = co_await connect_tls(f.client, server.https_endpoints()[0]);
    co_await write_raw(*big,
                       "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Length: 3145729\r\n\r\n");
    beast::flat_buffer b2;
    const auto res = co_await read_response(*big, b2);
    CHECK(res.result_int() == 413);
    CHECK(res.body() == "{\"error\":\"request body larger than 3145728 bytes\"}\n");
  });
}
