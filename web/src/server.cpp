// The HTTPS server: one coroutine per connection on the daemon's io_context, every wait with a
// deadline, limits from ServerLimits, and the HTTP listener that only redirects.
#include "web/server.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <list>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/file_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "core/address.hpp"
#include "platform/bind.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "web/tls.hpp"

namespace web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<TcpStream>;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kReadChunk = 4096;
// The buffer also holds bytes of a pipelined next request; keep room for one chunk of those.
constexpr std::size_t kBufferSlack = kReadChunk;

std::string endpoint_text(const tcp::endpoint& ep) {
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A request's head as the upload policy sees it (no body); nullopt for a target the handler
// would refuse anyway.
std::optional<HttpRequest> head_of(const http::request<http::string_body>& m,
                                   const tcp::endpoint& remote) {
  auto target = parse_target(m.target());
  if (!target) return std::nullopt;
  HttpRequest r;
  r.method = std::string{m.method_string()};
  r.target = std::string{m.target()};
  r.path = std::move(target->path);
  r.query = std::move(target->query);
  for (const auto& field : m)
    r.headers.emplace_back(lower(field.name_string()), std::string{field.value()});
  r.remote = remote.address().to_string();
  return r;
}

// Removes an upload's file when the request is done (the handler may have renamed it away).
struct RemoveFile {
  std::filesystem::path path;
  RemoveFile() = default;
  RemoveFile(const RemoveFile&) = delete;
  RemoveFile& operator=(const RemoveFile&) = delete;
  ~RemoveFile() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};

// A header the handler set that cannot go on the wire as it is (a CR or LF would end the field
// early and let the rest be read as another header or a body).
bool unsafe_field(std::string_view s) {
  return s.find_first_of(std::string_view{"\r\n\0", 3}) != std::string_view::npos;
}

// What the log shows of a target: the path only, since a query string may carry what the user
// typed.
std::string_view request_path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

bool bodiless(unsigned status) {
  return status < 200 || status == 204 || status == 304;
}

bool is_hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
  });
}

bool is_port(std::string_view s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The host of a Host header ("name", "name:port", "192.0.2.1:80", "[2001:db8::1]:80") in the
// form it takes in a URL, or nullopt when it is none of these.
std::optional<std::string> url_host(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const auto rest = host.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && is_port(rest.substr(1)))) return std::nullopt;
    auto v6 = core::Ipv6Address::parse(host.substr(1, close - 1));
    if (!v6) return std::nullopt;
    return fmt::format("[{}]", v6->to_string());
  }
  if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    if (!is_port(host.substr(colon + 1))) return std::nullopt;
    host = host.substr(0, colon);
  }
  if (auto v4 = core::Ipv4Address::parse(host)) return v4->to_string();
  if (is_hostname(host)) return std::string{host};
  return std::nullopt;
}

}  // namespace

std::string redirect_location(std::string_view host_header, std::string_view target,
                              const asio::ip::address& fallback, std::uint16_t https_port) {
  auto host = url_host(host_header);
  if (!host)
    host = fallback.is_v6() ? fmt::format("[{}]", fallback.to_string()) : fallback.to_string();
  if (target.empty() || target.front() != '/') target = "/";
  return fmt::format("https://{}:{}{}", *host, https_port, target);
}

ServerOptions server_options(const WebConfig& config, Tls& tls, platform::Counters* counters) {
  ServerOptions o;
  o.listen = config.listen;
  o.https_port = config.https_port;
  if (config.http_port != 0)
    o.http_port = config.http_port;
  else
    o.http_port.reset();
  o.limits.max_connections = config.max_connections;
  o.limits.max_connections_per_source = config.max_connections_per_source;
  o.hsts = config.hsts;
  o.tls = &tls;
  o.counters = counters;
  return o;
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  struct Connection {
    Connection(std::shared_ptr<Impl> o, tcp::endpoint r) : owner{std::move(o)}, remote{r} {}
    ~Connection() {
      owner->connections.erase(self);
      if (auto it = owner->per_source.find(remote.address()); it != owner->per_source.end())
        if (--it->second == 0) owner->per_source.erase(it);
      if (owner->active) owner->active->sub(1);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    TcpStream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
    void close() noexcept {
      boost::system::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().close();
    }

    std::shared_ptr<Impl> owner;
    tcp::endpoint remote;
    std::shared_ptr<ssl::context> context;  // the one this connection started with
    std::optional<TlsStream> tls;
    std::optional<TcpStream> plain;
    std::list<Connection*>::iterator self;
    bool responding = false;              // from the handler call to the end of the write
    std::shared_ptr<EventStream> stream;  // while an event stream is being sent
  };

  struct Listener {
    tcp::acceptor acceptor;
    bool https;
  };

  Impl(asio::io_context& io_context, ServerOptions o, HttpHandler h)
      : io{io_context}, options{std::move(o)}, handler{std::move(h)} {}

  asio::io_context& io;
  ServerOptions options;
  HttpHandler handler;
  platform::Logger log{"web"};
  std::vector<std::unique_ptr<Listener>> listeners;
  std::vector<tcp::endpoint> https_bound;
  std::vector<tcp::endpoint> http_bound;
  std::list<Connection*> connections;
  std::map<asio::ip::address, std::size_t> per_source;
  bool started = false;
  bool stopped = false;

  platform::Counter* rejected = nullptr;
  platform::Counter* timeouts = nullptr;
  platform::Counter* handshake_failures = nullptr;
  platform::Gauge* active = nullptr;

  void count_status(unsigned status) noexcept {
    if (!options.counters) return;
    try {
      options.counters
          ->counter("web_requests_total", "Dashboard HTTP responses, by status code",
                    {{"code", std::to_string(status)}})
          .inc();
    } catch (...) {  // allocation failure: a lost count is better than a lost response
    }
  }
  // The HTTPS port to redirect to: the one bound on the same address (they differ only when
  // the options asked for ephemeral ports).
  std::uint16_t https_port_for(const asio::ip::address& address) const {
    for (const auto& ep : https_bound)
      if (ep.address() == address) return ep.port();
    return https_bound.empty() ? options.https_port : https_bound.front().port();
  }
  void count_timeout() noexcept {
    if (timeouts) timeouts->inc();
  }

  boost::system::result<void, std::string> start();
  void stop() noexcept;
  void add_security_headers(http::response_header<>& h, bool https) const;

  static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self, Listener& listener);
  static asio::awaitable<void> https_session(std::shared_ptr<Connection> conn);
  static asio::awaitable<void> http_session(std::shared_ptr<Connection> conn);
  template <typename Stream>
  static asio::awaitable<void> serve(std::shared_ptr<Connection> conn, Stream& stream, bool https);
  template <typename Stream>
  static asio::awaitable<bool> send(Connection& conn, Stream& stream, HttpResponse response,
                                    unsigned version, bool keep_alive, bool head, bool https);
  template <typename Stream>
  static asio::awaitable<void> send_stream(Connection& conn, Stream& stream,
                                           http::response_header<> head,
                                           std::shared_ptr<EventStream> events);
  template <typename Stream>
  static asio::awaitable<void> finish(Connection& conn, Stream& stream);
};

boost::system::result<void, std::string> Server::Impl::start() {
  if (started || stopped) return std::string{"the server was started before"};
  if (!options.tls) return std::string{"no TLS certificate"};
  std::vector<std::unique_ptr<Listener>> bound;
  std::vector<tcp::endpoint> https_eps;
  std::vector<tcp::endpoint> http_eps;
  for (const auto& text : options.listen) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(text, ec);
    if (ec) return fmt::format("cannot listen on {}: not an IP address", text);
    for (const bool https : {true, false}) {
      if (!https && !options.http_port) continue;
      const tcp::endpoint ep{address, https ? options.https_port : *options.http_port};
      tcp::acceptor a{io};
      auto failed = [&] {
        return fmt::format("cannot listen on {}: {}", endpoint_text(ep), ec.message());
      };
      a.open(ep.protocol(), ec);
      if (ec) return failed();
      // "::" must not take the IPv4 port as well: "0.0.0.0" may be listed beside it.
      if (address.is_v6()) a.set_option(asio::ip::v6_only{true}, ec);
      if (!ec) a.set_option(tcp::acceptor::reuse_address{true}, ec);
      if (!ec) platform::bind_local(a, ep, ec);
      if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return failed();
      const auto local = a.local_endpoint(ec);
      if (ec) return failed();
      (https ? https_eps : http_eps).push_back(local);
      bound.push_back(std::make_unique<Listener>(Listener{std::move(a), https}));
    }
  }
  listeners = std::move(bound);
  https_bound = std::move(https_eps);
  http_bound = std::move(http_eps);
  started = true;
  if (auto* c = options.counters) {
    rejected = &c->counter("web_connections_rejected_total",
                           "Dashboard connections closed at accept by the connection limits");
    timeouts = &c->counter("web_timeouts_total",
                           "Dashboard connections closed by a deadline (handshake, read, idle, "
                           "write)");
    handshake_failures = &c->counter("web_tls_handshake_failures_total",
                                     "Dashboard TLS handshakes that failed or timed out");
    active = &c->gauge("web_connections", "Open dashboard connections");
  }
  for (auto& l : listeners) asio::co_spawn(io, accept_loop(shared_from_this(), *l), asio::detached);
  for (const auto& ep : https_bound) log.info("serving https://{}/", endpoint_text(ep));
  for (const auto& ep : http_bound) log.info("redirecting http://{}/ to HTTPS", endpoint_text(ep));
  return {};
}

void Server::Impl::stop() noexcept {
  if (stopped) return;
  stopped = true;
  boost::system::error_code ignored;
  for (auto& l : listeners) l->acceptor.close(ignored);
  // Copy first: a connection may leave the list while we walk it.
  const std::vector<Connection*> open{connections.begin(), connections.end()};
  for (Connection* c : open) {
    if (c->stream)
      c->stream->cancel();  // its coroutine ends the stream and closes
    else if (!c->responding)
      c->close();
  }
}

asio::awaitable<void> Server::Impl::accept_loop(std::shared_ptr<Impl> self, Listener& listener) {
  for (;;) {
    auto [ec, socket] = co_await listener.acceptor.async_accept(kNoThrow);
    if (self->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      self->log.warn_limited("accept", "accept failed: {}", ec.message());
      // Out of descriptors or memory: back off instead of spinning on the error.
      asio::steady_timer pause{self->io, 100ms};
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    boost::system::error_code rec;
    const auto remote = socket.remote_endpoint(rec);
    if (rec) continue;  // already gone; the socket closes here
    // A response leaves as TLS records; with Nagle, a short last segment waits for the ACK of
    // the previous one, which the client delays by 40 ms (measured: a 100-lease page took 48 ms
    // instead of 8).
    socket.set_option(asio::ip::tcp::no_delay{true}, rec);
    const auto& limits = self->options.limits;
    const std::size_t from_source =
        self->per_source.contains(remote.address()) ? self->per_source[remote.address()] : 0;
    if (self->connections.size() >= limits.max_connections ||
        from_source >= limits.max_connections_per_source) {
      // Closed without a byte: a TLS client cannot be told why before a handshake, and a
      // handshake is what the limit is there to save.
      if (self->rejected) self->rejected->inc();
      self->log.warn_limited("connection-limit", "connection limit reached ({} in all, {} from {})",
                             self->connections.size(), from_source, remote.address().to_string());
      socket.close(rec);
      continue;
    }
    // Registered here, synchronously, so the next accept's limit check sees this connection.
    auto conn = std::make_shared<Connection>(self, remote);
    conn->self = self->connections.insert(self->connections.end(), conn.get());
    ++self->per_source[remote.address()];
    if (self->active) self->active->add(1);
    if (listener.https) {
      conn->context = self->options.tls->context();
      conn->tls.emplace(std::move(socket), *conn->context);
      asio::co_spawn(self->io, https_session(std::move(conn)), asio::detached);
    } else {
      conn->plain.emplace(std::move(socket));
      asio::co_spawn(self->io, http_session(std::move(conn)), asio::detached);
    }
  }
}

asio::awaitable<void> Server::Impl::https_session(std::shared_ptr<Connection> conn) {
  Impl& self = *conn->owner;
  conn->lowest().expires_after(self.options.limits.handshake_timeout);
  auto [ec] = co_await conn->tls->async_handshake(ssl::stream_base::server, kNoThrow);
  if (ec) {
    if (self.handshake_failures) self.handshake_failures->inc();
    if (ec == beast::error::timeout) self.count_timeout();
    self.log.debug("TLS handshake with {} failed: {}", conn->remote.address().to_string(),
                   ec.message());
    co_return;
  }
  if (self.stopped) co_return;
  co_await serve(conn, *conn->tls, true);
}

asio::awaitable<void> Server::Impl::http_session(std::shared_ptr<Connection> conn) {
  co_await serve(conn, *conn->plain, false);
}

void Server::Impl::add_security_headers(http::response_header<>& h, bool https) const {
  // Set unless the handler chose its own value.
  auto set = [&h](std::string_view name, std::string_view value) {
    if (h.find(name) == h.end()) h.set(name, value);
  };
  set("X-Content-Type-Options", "nosniff");
  set("X-Frame-Options", "DENY");
  set("Referrer-Policy", "no-referrer");
  set("Content-Security-Policy", kContentSecurityPolicy);
  // The API's answers are per user and change all the time: no cache keeps them unless the
  // handler says so (the assets say no-cache and send an ETag).
  set("Cache-Control", "no-store");
  // RFC 6797 section 7.2: never over plain HTTP.
  if (https && options.hsts) set("Strict-Transport-Security", kStrictTransportSecurity);
}

template <typename Stream>
asio::awaitable<void> Server::Impl::serve(std::shared_ptr<Connection> conn, Stream& stream,
                                          bool https) {
  Impl& self = *conn->owner;
  TcpStream& tcp_layer = conn->lowest();
  const ServerLimits& limits = self.options.limits;
  beast::flat_buffer buffer{limits.max_header_bytes + limits.max_body_bytes + kBufferSlack};

  for (;;) {
    // Idle: wait for the first byte of the next request (keep-alive).
    if (buffer.size() == 0) {
      tcp_layer.expires_after(limits.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(
          buffer.prepare(std::min(kReadChunk, buffer.max_size())), kNoThrow);
      buffer.commit(n);
      if (ec == beast::error::timeout) self.count_timeout();
      if (ec || self.stopped) co_return;
    }

    // A request is arriving: all of it within read_timeout (an upload: its own timeout once the
    // head is in). Beast's parser enforces the header limit; the body limit depends on the head
    // (an upload has its own), so a Content-Length over it is refused here, with the head, before
    // any of the body is read.
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(limits.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(boost::none);
    tcp_layer.expires_after(limits.read_timeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    const bool header_done = parser.is_header_done();
    std::optional<Upload> upload;
    if (!ec && https && self.options.upload)
      if (auto head = head_of(parser.get(), conn->remote)) upload = self.options.upload(*head);
    const std::uint64_t body_limit = upload ? upload->max_bytes : limits.max_body_bytes;
    if (!ec && parser.content_length() && *parser.content_length() > body_limit)
      ec = http::error::body_limit;
    // The head of an upload's message (its body went to the file), and the file removed after
    // the handler unless the handler moved it.
    std::optional<http::request<http::string_body>> uploaded;
    RemoveFile uploaded_file;
    if (!ec && !parser.is_done()) {
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        // The client waits for this before sending the body (curl does for larger bodies).
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        std::tie(ec, n) = co_await http::async_write(stream, cont, kNoThrow);
      }
      if (!ec && upload) {
        http::request_parser<http::file_body> file_parser{std::move(parser)};
        file_parser.body_limit(body_limit);
        beast::error_code open_ec;
        file_parser.get().body().open(upload->file.c_str(), beast::file_mode::write_new, open_ec);
        if (open_ec) {
          self.log.error_limited("upload-file", "{}: {}", upload->file.string(), open_ec.message());
          conn->responding = true;
          co_await send(*conn, stream, HttpResponse::error(500, "internal error"), 11, false, false,
                        https);
          co_await finish(*conn, stream);
          co_return;
        }
        uploaded_file.path = upload->file;
        tcp_layer.expires_after(upload->timeout);
        std::tie(ec, n) = co_await http::async_read(stream, buffer, file_parser, kNoThrow);
        file_parser.get().body().close();
        uploaded.emplace(std::move(file_parser.release().base()));
      } else if (!ec) {
        parser.body_limit(body_limit);
        std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kNoThrow);
      }
    }
    if (self.stopped) co_return;
    if (ec) {
      std::optional<HttpResponse> failure;
      if (ec == http::error::body_limit) {
        failure =
            HttpResponse::error(413, fmt::format("request body larger than {} bytes", body_limit));
      } else if (ec == http::error::header_limit ||
                 (ec == http::error::buffer_overflow && !header_done)) {
        failure = HttpResponse::error(
            431, fmt::format("request header larger than {} bytes", limits.max_header_bytes));
      } else if (ec == http::error::buffer_overflow) {
        failure =
            HttpResponse::error(413, fmt::format("request body larger than {} bytes", body_limit));
      } else if (ec == beast::error::timeout) {
        self.count_timeout();
        co_return;
      } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        failure = HttpResponse::error(400, fmt::format("malformed HTTP request: {}", ec.message()));
      } else {
        co_return;  // end of stream, reset, TLS failure: nobody to answer
      }
      // The stream is out of step with the peer: answer and close.
      conn->responding = true;
      co_await send(*conn, stream, std::move(*failure), 11, false, false, https);
      co_await finish(*conn, stream);
      co_return;
    }

    auto message = uploaded ? std::move(*uploaded) : parser.release();
    const unsigned version = message.version();
    const bool head = message.method() == http::verb::head;
    bool keep_alive = message.keep_alive();
    conn->responding = true;

    HttpResponse response;
    if (!https) {
      // The HTTP listener serves nothing: every request is sent to the same place over HTTPS.
      const auto local = conn->lowest().socket().local_endpoint(ec);
      const auto address = ec ? asio::ip::address{} : local.address();
      response.status = 308;
      response.content_type.clear();
      response.with_header("Location",
                           redirect_location(message[http::field::host], message.target(), address,
                                             self.https_port_for(address)));
      keep_alive = false;
    } else if (auto target = parse_target(message.target()); !target) {
      response = HttpResponse::error(400, "invalid request target");
    } else {
      HttpRequest request;
      request.method = std::string{message.method_string()};
      request.target = std::string{message.target()};
      request.path = std::move(target->path);
      request.query = std::move(target->query);
      for (const auto& field : message)
        request.headers.emplace_back(lower(field.name_string()), std::string{field.value()});
      request.body = std::move(message.body());
      request.body_file = uploaded_file.path;
      request.remote = conn->remote.address().to_string();
      std::optional<std::string> failure;
      try {
        response = co_await self.handler(std::move(request));
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "unknown exception";
      }
      if (failure) {
        self.log.error_limited("handler-exception", "{} {}: handler failed: {}",
                               message.method_string(), request_path(message.target()), *failure);
        response = HttpResponse::error(500, "internal error");
      }
      if (response.status < 100 || response.status > 599) {
        self.log.error_limited("handler-status", "{} {}: handler returned status {}",
                               message.method_string(), request_path(message.target()),
                               response.status);
        response = HttpResponse::error(500, "internal error");
      }
    }
    if (response.status >= 500) {
      self.log.warn_limited("server-error", "{} {} -> {}", message.method_string(),
                            request_path(message.target()), response.status);
    }

    if (response.stream && !head && response.status == 200) {
      auto events = std::move(response.stream);
      http::response_header<> h;
      h.version(version);
      h.result(http::status::ok);
      for (const auto& [name, value] : response.headers)
        if (!unsafe_field(name) && !unsafe_field(value)) h.insert(name, value);
      h.set(http::field::content_type, "text/event-stream");
      h.set(http::field::cache_control, "no-store");
      self.add_security_headers(h, https);
      self.count_status(200);
      co_await send_stream(*conn, stream, std::move(h), std::move(events));
      co_await finish(*conn, stream);
      co_return;
    }
    if (response.stream) response.stream->cancel();  // not sent: let its owner forget it
    keep_alive = keep_alive && !self.stopped;
    const bool sent =
        co_await send(*conn, stream, std::move(response), version, keep_alive, head, https);
    conn->responding = false;
    if (!sent || !keep_alive || self.stopped) {
      if (sent) co_await finish(*conn, stream);
      co_return;
    }
  }
}

template <typename Stream>
asio::awaitable<bool> Server::Impl::send(Connection& conn, Stream& stream, HttpResponse response,
                                         unsigned version, bool keep_alive, bool head, bool https) {
  Impl& self = *conn.owner;
  http::response_header<> h;
  h.version(version);
  h.result(response.status);
  for (const auto& [name, value] : response.headers) {
    if (unsafe_field(name) || unsafe_field(value) || name.empty()) {
      self.log.error_limited("bad-header", "dropped a response header with CR, LF or NUL");
      continue;
    }
    h.insert(name, value);
  }
  const bool no_body = bodiless(response.status);
  if (!no_body && !response.content_type.empty() && !unsafe_field(response.content_type))
    h.set(http::field::content_type, response.content_type);
  self.add_security_headers(h, https);
  self.count_status(response.status);
  conn.lowest().expires_after(self.options.limits.write_timeout);
  boost::system::error_code ec;
  if (no_body || head) {
    // HEAD: the length the GET would have, and no body.
    http::response<http::empty_body> m{std::move(h)};
    if (!no_body) m.content_length(response.body.size());
    m.keep_alive(keep_alive);
    std::tie(ec, std::ignore) = co_await http::async_write(stream, m, kNoThrow);
  } else {
    http::response<http::string_body> m{std::move(h), std::move(response.body)};
    m.keep_alive(keep_alive);
    m.prepare_payload();
    std::tie(ec, std::ignore) = co_await http::async_write(stream, m, kNoThrow);
  }
  if (ec == beast::error::timeout) self.count_timeout();
  co_return !ec;
}

// Server-Sent Events: the head, then each string the stream gives as one chunk, as it comes. No
// deadline while waiting for the next event (the stream decides the pace); the write deadline
// applies to each chunk, so a peer that stops reading is dropped.
template <typename Stream>
asio::awaitable<void> Server::Impl::send_stream(Connection& conn, Stream& stream,
                                                http::response_header<> head,
                                                std::shared_ptr<EventStream> events) {
  Impl& self = *conn.owner;
  TcpStream& tcp_layer = conn.lowest();
  http::response<http::empty_body> m{std::move(head)};
  m.chunked(true);
  m.keep_alive(false);
  http::response_serializer<http::empty_body> sr{m};
  conn.stream = events;
  conn.responding = false;
  tcp_layer.expires_after(self.options.limits.write_timeout);
  auto [ec, n] = co_await http::async_write_header(stream, sr, kNoThrow);
  bool peer_gone = static_cast<bool>(ec);
  while (!peer_gone && !self.stopped) {
    tcp_layer.expires_never();
    std::optional<std::string> chunk;
    try {
      chunk = co_await events->next();
    } catch (...) {  // a broken stream ends like a finished one
      chunk.reset();
    }
    if (!chunk || self.stopped) break;
    if (chunk->empty()) continue;  // an empty chunk would mean the end
    tcp_layer.expires_after(self.options.limits.write_timeout);
    std::tie(ec, n) =
        co_await asio::async_write(stream, http::make_chunk(asio::buffer(*chunk)), kNoThrow);
    peer_gone = static_cast<bool>(ec);
  }
  if (ec == beast::error::timeout) self.count_timeout();
  // Tell the stream's owner it is over (idempotent when it ended by itself or by stop()).
  events->cancel();
  conn.stream.reset();
  conn.responding = true;
  if (!peer_gone) {
    tcp_layer.expires_after(self.options.limits.write_timeout);
    std::tie(ec, n) = co_await asio::async_write(stream, http::make_chunk_last(), kNoThrow);
  }
}

// The end of a connection after a response that closes it: TLS close_notify (so the client can
// tell the end from a truncation), or a TCP half-close, both bounded by the write deadline.
template <typename Stream>
asio::awaitable<void> Server::Impl::finish(Connection& conn, Stream& stream) {
  conn.responding = false;             // nothing left to deliver: stop() may cut this wait short
  if (conn.owner->stopped) co_return;  // no waiting for the peer's close_notify on the way out
  conn.lowest().expires_after(conn.owner->options.limits.write_timeout);
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    auto [ec] = co_await stream.async_shutdown(kNoThrow);
  } else {
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  co_return;
}

Server::Server(asio::io_context& io, ServerOptions options, HttpHandler handler)
    : impl_{std::make_shared<Impl>(io, std::move(options), std::move(handler))} {}

Server::~Server() {
  stop();
}

boost::system::result<void, std::string> Server::start() {
  return impl_->start();
}

void Server::stop() noexcept {
  impl_->stop();
}

std::vector<tcp::endpoint> Server::https_endpoints() const {
  return impl_->https_bound;
}

std::vector<tcp::endpoint> Server::http_endpoints() const {
  return impl_->http_bound;
}

std::size_t Server::connection_count() const noexcept {
  return impl_->connections.size();
}

}  // namespace web
