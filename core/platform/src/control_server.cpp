// ControlServer: accepts on a Unix socket and serves the Router, one coroutine per connection.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <list>
#include <optional>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>

#include "control_http.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/error.hpp"
#include "platform/log.hpp"

namespace platform {

using namespace control_detail;
namespace http = beast::http;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kReadChunk = 4096;
// The buffer also holds bytes of a pipelined next request; keep room for one chunk of those.
constexpr std::size_t kBufferSlack = kReadChunk;

std::string_view json_content_type() {
  return "application/json";
}

// Is a server answering on this socket path? true: yes (connected, or its backlog is full);
// false: nobody listens (stale file, or the file vanished).
boost::system::result<bool> someone_answers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return {boost::system::in_place_error, errno_code(errno)};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  // A Unix-domain connect never waits: it succeeds, is refused, or reports a full backlog.
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return true;
  if (err == ECONNREFUSED || err == ENOENT) return false;
  return {boost::system::in_place_error, errno_code(err)};
}

}  // namespace

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
  struct Connection {
    Connection(std::shared_ptr<Impl> o, Local::socket socket)
        : owner{std::move(o)}, stream{std::move(socket)} {}
    ~Connection() {
      owner->connections.erase(self);
      if (owner->active) owner->active->sub(1);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    std::shared_ptr<Impl> owner;
    Stream stream;
    std::list<Connection*>::iterator self;
    bool responding = false;  // between handler call and the end of the response write
  };

  Impl(boost::asio::io_context& io_context, Router r, ControlServerOptions o)
      : io{io_context}, router{std::move(r)}, options{std::move(o)} {}

  boost::asio::io_context& io;
  Router router;
  ControlServerOptions options;
  Logger log{"control"};
  std::optional<Local::acceptor> acceptor;
  std::list<Connection*> connections;
  bool started = false;
  bool stopped = false;
  bool created_file = false;
  dev_t file_dev = 0;
  ino_t file_ino = 0;

  Counter* rejected = nullptr;
  Counter* timeouts = nullptr;
  Gauge* active = nullptr;

  void count_status(unsigned status) {
    if (!options.counters) return;
    try {
      options.counters
          ->counter("control_requests_total", "Control-socket requests answered, by status code",
                    {{"code", std::to_string(status)}})
          .inc();
    } catch (...) {  // allocation failure: a lost count is better than a lost response
    }
  }

  void count_timeout() {
    if (timeouts) timeouts->inc();
  }

  boost::system::result<void> start();
  void stop() noexcept;
  void unlink_socket_file() noexcept;
  void reject(Local::socket& socket) noexcept;

  static boost::asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self);
  static boost::asio::awaitable<void> session(std::shared_ptr<Connection> conn);
  static boost::asio::awaitable<bool> send(Connection& conn, const Response& response,
                                           unsigned version, bool keep_alive);
};

boost::system::result<void> ControlServer::Impl::start() {
  // Once only: a stopped server stays stopped (its accept loop would exit at once).
  if (started || stopped)
    return boost::system::errc::make_error_code(boost::system::errc::already_connected);
  const std::string& path = options.path;
  if (!fits_sockaddr_un(path)) return ControlErrc::PathTooLong;

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return ControlErrc::NotASocket;
    auto answers = someone_answers(path);
    if (!answers) return answers.error();
    if (*answers) return ControlErrc::PathInUse;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_code(errno);
    log.info("removed stale control socket {}", path);
  } else if (errno != ENOENT) {
    return errno_code(errno);
  }

  Local::acceptor a{io};
  boost::system::error_code ec;
  a.open(Local{}, ec);
  if (ec) return ec;
  // On Linux the socket file takes the socket inode's mode (minus umask) at bind time, so this
  // fchmod makes the file never more permissive than `mode`; the chmod below then drops the
  // umask's effect to give exactly `mode`.
  const auto mode = static_cast<mode_t>(options.mode & 07777);
  if (::fchmod(a.native_handle(), mode) != 0) return errno_code(errno);
  a.bind(Local::endpoint{path}, ec);
  if (ec) return ec;
  created_file = true;
  if (::chmod(path.c_str(), mode) != 0 || ::lstat(path.c_str(), &st) != 0) {
    const auto err = errno_code(errno);
    unlink_socket_file();
    return err;
  }
  file_dev = st.st_dev;
  file_ino = st.st_ino;
  a.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    unlink_socket_file();
    return ec;
  }
  acceptor.emplace(std::move(a));
  started = true;

  if (auto* c = options.counters) {
    rejected = &c->counter("control_connections_rejected_total",
                           "Control-socket connections refused because of the connection limit");
    timeouts = &c->counter("control_timeouts_total",
                           "Control-socket connections closed by the idle or read deadline");
    active = &c->gauge("control_connections", "Open control-socket connections");
  }
  boost::asio::co_spawn(io, accept_loop(shared_from_this()), boost::asio::detached);
  log.info("control socket listening on {}", path);
  return {};
}

void ControlServer::Impl::unlink_socket_file() noexcept {
  if (!created_file) return;
  created_file = false;
  struct stat st {};
  // Only our own file: another server may have replaced it since.
  if (::lstat(options.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
      (file_ino == 0 || (st.st_dev == file_dev && st.st_ino == file_ino)))
    ::unlink(options.path.c_str());
}

void ControlServer::Impl::stop() noexcept {
  if (stopped) return;
  stopped = true;
  boost::system::error_code ignored;
  if (acceptor) acceptor->close(ignored);
  for (Connection* c : connections)
    if (!c->responding) c->stream.close();
  unlink_socket_file();
}

// Over the limit: a fixed 503 written without waiting (it fits in an empty socket buffer), then
// close. No coroutine, so a flood of connections costs nothing beyond the accept.
void ControlServer::Impl::reject(Local::socket& socket) noexcept {
  static constexpr std::string_view kBody = "{\"error\":\"too many connections\"}\n";
  if (rejected) rejected->inc();
  count_status(503);
  log.warn_limited("connection-limit", "control socket {}: connection limit {} reached, refusing",
                   options.path, options.limits.max_connections);
  try {
    const std::string response = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
        "Connection: close\r\n\r\n{}",
        json_content_type(), kBody.size(), kBody);
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    if (!ec) boost::asio::write(socket, boost::asio::buffer(response), ec);
    socket.shutdown(Local::socket::shutdown_both, ec);
    socket.close(ec);
  } catch (...) {
  }
}

boost::asio::awaitable<void> ControlServer::Impl::accept_loop(std::shared_ptr<Impl> self) {
  for (;;) {
    auto [ec, socket] = co_await self->acceptor->async_accept(kNoThrow);
    if (self->stopped || ec == boost::asio::error::operation_aborted) co_return;
    if (ec) {
      self->log.warn_limited("accept", "control socket {}: accept failed: {}", self->options.path,
                             ec.message());
      // Out of descriptors or memory: back off instead of spinning on the error.
      boost::asio::steady_timer pause{self->io, 100ms};
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (self->connections.size() >= self->options.limits.max_connections) {
      self->reject(socket);
      continue;
    }
    // Registered here, synchronously, so the limit check above sees every accepted connection.
    auto conn = std::make_shared<Connection>(self, std::move(socket));
    conn->self = self->connections.insert(self->connections.end(), conn.get());
    if (self->active) self->active->add(1);
    boost::asio::co_spawn(self->io, session(std::move(conn)), boost::asio::detached);
  }
}

boost::asio::awaitable<bool> ControlServer::Impl::send(Connection& conn, const Response& response,
                                                       unsigned version, bool keep_alive) {
  http::response<http::string_body> res;
  res.version(version);
  res.result(response.status);
  for (const auto& [name, value] : response.headers) res.set(name, value);
  const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
  if (!bodiless) {
    if (response.text) {
      res.set(http::field::content_type, response.content_type.empty()
                                             ? std::string_view{"text/plain; charset=utf-8"}
                                             : std::string_view{response.content_type});
      res.body() = *response.text;
    } else {
      res.set(http::field::content_type, json_content_type());
      res.body() = boost::json::serialize(response.body);
      res.body() += '\n';
    }
  }
  res.keep_alive(keep_alive);
  res.prepare_payload();
  conn.owner->count_status(response.status);
  conn.stream.expires_after(conn.owner->options.limits.write_timeout);
  auto [ec, n] = co_await http::async_write(conn.stream, res, kNoThrow);
  co_return !ec;
}

boost::asio::awaitable<void> ControlServer::Impl::session(std::shared_ptr<Connection> conn) {
  Impl& self = *conn->owner;
  Stream& stream = conn->stream;
  const ControlLimits& limits = self.options.limits;
  beast::flat_buffer buffer{limits.max_header_bytes + limits.max_body_bytes + kBufferSlack};

  for (;;) {
    // Idle: wait for the first byte of the next request (keep-alive).
    if (buffer.size() == 0) {
      stream.expires_after(limits.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(
          buffer.prepare(std::min(kReadChunk, buffer.max_size())), kNoThrow);
      buffer.commit(n);
      if (ec == beast::error::timeout) self.count_timeout();
      if (ec || self.stopped) co_return;
    }

    // A request is arriving: all of it within read_timeout.
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(limits.max_body_bytes);
    stream.expires_after(limits.read_timeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    if (!ec && !parser.is_done()) {
      const auto expect = parser.get()[http::field::expect];
      if (beast::iequals(expect, "100-continue")) {
        // The client waits for this before sending the body (curl does for larger bodies).
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        std::tie(ec, n) = co_await http::async_write(stream, cont, kNoThrow);
      }
      if (!ec) std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kNoThrow);
    }
    if (self.stopped) co_return;
    if (ec) {
      Response failure;
      if (ec == http::error::body_limit || ec == http::error::buffer_overflow) {
        failure = Response::error(
            413, fmt::format("request body larger than {} bytes", limits.max_body_bytes));
      } else if (ec == http::error::header_limit) {
        failure = Response::error(
            431, fmt::format("request header larger than {} bytes", limits.max_header_bytes));
      } else if (ec == beast::error::timeout) {
        self.count_timeout();
        co_return;
      } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        failure = Response::error(400, fmt::format("malformed HTTP request: {}", ec.message()));
      } else {
        co_return;  // end of stream, reset: nothing to answer
      }
      // The stream is out of sync with the peer: answer and close.
      conn->responding = true;
      co_await send(*conn, failure, 11, false);
      boost::system::error_code ignored;
      stream.socket().shutdown(Local::socket::shutdown_both, ignored);
      co_return;
    }

    auto request = parser.release();
    const std::string_view method = request.method_string();
    const std::string_view target = request.target();
    conn->responding = true;
    const Response response = self.router.handle(method, target, request.body());
    if (response.status >= 500) {
      self.log.warn_limited("handler-error", "{} {} -> {}: {}", method, target, response.status,
                            response.error_message());
    } else {
      self.log.debug("{} {} -> {}", method, target, response.status);
    }
    const bool keep_alive = request.keep_alive() && !self.stopped;
    const bool sent = co_await send(*conn, response, request.version(), keep_alive);
    conn->responding = false;
    if (!sent || !keep_alive || self.stopped) {
      boost::system::error_code ignored;
      stream.socket().shutdown(Local::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

ControlServer::ControlServer(boost::asio::io_context& io, Router router,
                             ControlServerOptions options) {
  if (Counters* counters = options.counters) {
    if (!router.has_route(Method::Get, "/metrics"))
      router.get("/metrics", [counters](const Request&) {
        return Response::plain(counters->to_prometheus(), kPrometheusContentType);
      });
    if (!router.has_route(Method::Get, "/counters"))
      router.get("/counters",
                 [counters](const Request&) { return Response::json(counters->to_json()); });
  }
  if (auto ring = log_ring(); ring && !router.has_route(Method::Get, "/logs"))
    router.get("/logs", [ring](const Request& r) { return serve_logs(*ring, r); });
  impl_ = std::make_shared<Impl>(io, std::move(router), std::move(options));
}

ControlServer::~ControlServer() {
  stop();
}
ControlServer::ControlServer(ControlServer&&) noexcept = default;
ControlServer& ControlServer::operator=(ControlServer&& other) noexcept {
  if (this != &other) {
    stop();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

boost::system::result<void> ControlServer::start() {
  return impl_->start();
}

void ControlServer::stop() noexcept {
  if (impl_) impl_->stop();
}

const std::string& ControlServer::path() const noexcept {
  return impl_->options.path;
}

std::size_t ControlServer::connection_count() const noexcept {
  return impl_->connections.size();
}

}  // namespace platform
