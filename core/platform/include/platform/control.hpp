// Control socket: HTTP/1.1 + JSON over a Unix stream socket (protocol in docs/control-socket.md).
// A pure router (request -> response, testable without sockets), the server that serves it on a
// daemon's io_context, and a client with a deadline. Beast stays out of this header.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace boost::asio {
class io_context;
}

namespace platform {

class Counters;
class LogRing;

// Failures of the control socket that are not plain system errors (those, like ENOENT or
// ECONNREFUSED from connect, are passed through as they are). Values are stable.
enum class ControlErrc {
  Timeout = 1,       // the client's deadline passed before a complete response
  ConnectionClosed,  // the server closed the connection without a (complete) response
  BadResponse,       // the response is not valid HTTP/1.1, or claims JSON and is not
  ResponseTooLarge,  // the response body exceeds the client's limit
  PathInUse,         // start(): a server already answers on the socket path
  NotASocket,        // start(): the path exists and is not a socket; it is left alone
  PathTooLong,       // the path is empty or does not fit in sockaddr_un (107 bytes)
};

const boost::system::error_category& control_category() noexcept;

inline boost::system::error_code make_error_code(ControlErrc e) noexcept {
  return {static_cast<int>(e), control_category()};
}

enum class Method { Get, Post, Put, Patch, Delete };

// "GET", "POST", ...
std::string_view to_string(Method method) noexcept;
// Exact upper-case method names; nullopt for any other.
std::optional<Method> parse_method(std::string_view text) noexcept;

using Headers = std::vector<std::pair<std::string, std::string>>;
using Params = std::map<std::string, std::string, std::less<>>;

struct Request {
  Method method = Method::Get;
  std::string path;         // the path as sent (still percent-encoded), without the query
  Params params;            // decoded values of the matched route's "{name}" segments
  Params query;             // decoded query parameters ("+" is a space)
  boost::json::value body;  // the JSON body; null when the request had no body

  // A path parameter or query parameter, if present.
  std::optional<std::string_view> param(std::string_view name) const;
  std::optional<std::string_view> query_param(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  boost::json::value body;          // sent as application/json unless `text` is set
  std::optional<std::string> text;  // a non-JSON body (e.g. /metrics), sent with content_type
  std::string content_type;         // for `text`; empty means text/plain; charset=utf-8
  // Extra headers to send. On the client side: every header of the received response.
  Headers headers;

  static Response json(boost::json::value body, unsigned status = 200);
  // {"error": message}
  static Response error(unsigned status, std::string_view message);
  static Response plain(std::string text, std::string_view content_type);

  // First header with this name, compared case-insensitively.
  std::optional<std::string_view> header(std::string_view name) const;
  // The "error" member of a JSON error body, or "" if there is none.
  std::string_view error_message() const;
};

// Handlers run on the server's io_context thread and must not block. An exception becomes a 500
// response ({"error": "internal error: <what>"}); the server keeps running.
using Handler = std::function<Response(const Request&)>;

// Routes (method, path pattern) to handlers. Patterns are "/"-separated literal segments or
// "{name}" segments, each matching one non-empty path segment: "/leases/{address}/release". When
// several routes match, the one with more literal segments wins, then the one added first.
class Router {
 public:
  // A malformed pattern (not starting with "/", unbalanced or empty "{}", a name used twice) or a
  // (method, pattern) added twice is a programming error and throws std::logic_error.
  Router& add(Method method, std::string_view pattern, Handler handler);
  Router& get(std::string_view pattern, Handler handler) {
    return add(Method::Get, pattern, std::move(handler));
  }
  Router& post(std::string_view pattern, Handler handler) {
    return add(Method::Post, pattern, std::move(handler));
  }
  bool has_route(Method method, std::string_view pattern) const;

  // The whole request pipeline without I/O, as the server runs it:
  //   target not "/..." or bad percent-encoding or a repeated query key -> 400
  //   no route for the path -> 404; the path exists but not for this method -> 405 with Allow
  //   non-empty body that is not JSON (or repeats a key) -> 400
  //   handler threw, or returned a status outside 100..599 -> 500
  // Every error response has a JSON body {"error": "..."}.
  Response handle(std::string_view method, std::string_view target, std::string_view body) const;

 private:
  struct Route {
    Method method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" kept verbatim
    std::size_t literals = 0;
    Handler handler;
  };
  std::vector<Route> routes_;
};

// GET /logs?since=N&limit=N&level=L from a log ring (docs/control-socket.md):
//   {"lines": [{"seq", "time": "2026-11-22T10:00:00.123Z", "level", "component", "message"}],
//    "next": N}
// Lines are oldest first: with `since`, those with seq >= since (at most limit, then "next" is
// where to continue); without it, the newest `limit`. limit is 1..2000 (default 500); level is
// the lowest level shown (default debug). A bad parameter is 400. The ControlServer serves this
// by itself when a ring is installed (platform::install_log_ring); servers that route HTTP
// themselves may call it.
Response serve_logs(const LogRing& ring, const Request& request);

struct ControlLimits {
  std::size_t max_header_bytes = 8 * 1024;  // request line + headers; more -> 431
  std::size_t max_body_bytes = 64 * 1024;   // request body; more -> 413
  // A connection with no request in progress is closed after idle_timeout (keep-alive idle).
  std::chrono::milliseconds idle_timeout{30'000};
  // Once the first byte of a request arrived, the whole request must arrive within read_timeout.
  std::chrono::milliseconds read_timeout{5'000};
  std::chrono::milliseconds write_timeout{5'000};  // to write one response
  // Connections beyond this get an immediate 503 {"error": "too many connections"} and a close.
  std::size_t max_connections = 16;
};

struct ControlServerOptions {
  std::string path;      // the socket file, e.g. /run/appl/tep.sock
  unsigned mode = 0660;  // permissions of the socket file
  ControlLimits limits;
  // Optional. When set, GET /metrics (Prometheus text) and GET /counters (JSON) are served from it
  // unless the router already has those routes, and the server counts its own activity in it
  // (control_requests_total{code}, control_connections_rejected_total, control_timeouts_total,
  // control_connections). Must outlive the server.
  Counters* counters = nullptr;
};

// Serves a Router on a Unix stream socket. Runs on the io_context passed in; all member functions
// must be called on that io_context's thread (or before it runs). Destroy before the io_context.
// When platform::log_ring() is set at construction and the router has no GET /logs, the server
// adds it (serve_logs).
class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, Router router, ControlServerOptions options);
  ~ControlServer();  // stop()
  ControlServer(ControlServer&&) noexcept;
  ControlServer& operator=(ControlServer&&) noexcept;
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds and starts accepting. A stale socket file (a socket nobody answers on) is removed
  // first; a live server gives ControlErrc::PathInUse and a non-socket ControlErrc::NotASocket,
  // both leaving the file alone. Other failures (directory missing, permissions) are system
  // errors. Call once.
  boost::system::result<void> start();

  // Closes the acceptor and every connection, and unlinks the socket file if it is still the
  // one this server created. A response being written finishes first (bounded by write_timeout).
  // Idempotent; after it returns no handler is called again. Pending coroutines finish once the
  // io_context runs, so io.run() returns when the rest of the daemon is done too.
  void stop() noexcept;

  const std::string& path() const noexcept;
  std::size_t connection_count() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct ControlClientOptions {
  // Deadline for the whole exchange: connect, write, read.
  std::chrono::milliseconds timeout{5'000};
  std::size_t max_response_bytes = 16 * 1024 * 1024;
};

// One request per connection. Transport failures are errors (system errors such as
// no_such_file_or_directory / connection_refused when no daemon listens, or a ControlErrc);
// an HTTP error status is a successful Response with that status.
class ControlClient {
 public:
  explicit ControlClient(std::string path, ControlClientOptions options = {});

  // Blocking, with the deadline; runs a private io_context. Not for use on an io_context thread
  // (it would stall that loop): use async_request there. A null body sends no body.
  boost::system::result<Response> request(Method method, std::string_view target,
                                          const boost::json::value& body = nullptr) const;

  // The same on the caller's executor. The returned awaitable owns copies of everything it
  // needs, so the client may go away before it completes.
  boost::asio::awaitable<boost::system::result<Response>> async_request(
      Method method, std::string target, boost::json::value body = nullptr) const;

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  ControlClientOptions options_;
};

}  // namespace platform

namespace boost::system {
template <>
struct is_error_code_enum<::platform::ControlErrc> : std::true_type {};
}  // namespace boost::system
