// The dashboard's HTTPS server (Boost.Beast over OpenSSL): serves an HttpHandler on the
// management addresses, with limits and deadlines on every connection, security headers on every
// response, Server-Sent Events through EventStream, and an HTTP listener that only redirects to
// HTTPS. The only part of the dashboard that touches the network.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/result.hpp>

#include "web/config.hpp"
#include "web/http.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
}

namespace web {

class Tls;

struct ServerLimits {
  std::size_t max_header_bytes = 16 * 1024;  // request line + headers; more -> 431
  // Request body; more -> 413, refused from Content-Length before any of the body is read.
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds handshake_timeout{10'000};  // TCP accept to TLS established
  // Once the first byte of a request arrived, the whole request must arrive within this.
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive: no request in progress
  // To write one response (for an event stream: each chunk).
  std::chrono::milliseconds write_timeout{30'000};
  // Open connections (HTTPS and HTTP together), in all and per source address. Beyond them a
  // new connection is closed at accept, without a byte (and counted).
  std::size_t max_connections = 256;
  std::size_t max_connections_per_source = 32;
};

// Where the body of an upload goes: a new file (created 0600 by the server; its directory must
// exist), at most max_bytes (more: 413, refused from Content-Length before any of the body is
// read), the whole request within timeout instead of read_timeout.
struct Upload {
  std::filesystem::path file;
  std::uint64_t max_bytes = 0;
  std::chrono::milliseconds timeout{300'000};
};
// Decides from a request's head (everything but the body): nullopt for an ordinary request.
using UploadPolicy = std::function<std::optional<Upload>(const HttpRequest& head)>;

struct ServerOptions {
  std::vector<std::string> listen{"127.0.0.1"};  // IP literals; each gets both listeners
  std::uint16_t https_port = 443;                // 0: an ephemeral port (tests)
  std::optional<std::uint16_t> http_port = 80;   // nullopt: no HTTP listener; 0: ephemeral
  ServerLimits limits;
  bool hsts = false;  // Strict-Transport-Security on HTTPS responses
  // Required; must outlive the server. Each connection takes the context current at its accept.
  Tls* tls = nullptr;
  // Optional; must outlive the server. web_requests_total{code}, web_connections,
  // web_connections_rejected_total, web_timeouts_total, web_tls_handshake_failures_total.
  platform::Counters* counters = nullptr;
  // Optional: requests whose body is streamed to a file (HttpRequest::body_file).
  UploadPolicy upload;
};

// The options a WebConfig asks for (limits not in the web section keep their defaults).
ServerOptions server_options(const WebConfig& config, Tls& tls, platform::Counters* counters);

// Runs on the io_context passed in (one thread); every member function must be called on that
// thread or before it runs. Destroy before the io_context.
class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options, HttpHandler handler);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener (HTTPS, then HTTP, for each address) and starts accepting. All or
  // nothing: on an error nothing stays bound, and the message names the address and port
  // ("cannot listen on [2001:db8::1]:443: Address already in use"). Call once.
  boost::system::result<void, std::string> start();

  // Closes the listeners and every connection and cancels every event stream. A response being
  // written finishes first (bounded by write_timeout). Idempotent; no handler is called after it.
  void stop() noexcept;

  // The bound endpoints (with the real port when the options asked for port 0), in the order of
  // the listen addresses. Empty before start().
  std::vector<boost::asio::ip::tcp::endpoint> https_endpoints() const;
  std::vector<boost::asio::ip::tcp::endpoint> http_endpoints() const;
  std::size_t connection_count() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The security headers every response carries (HSTS only over HTTPS, when asked for).
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
inline constexpr std::string_view kStrictTransportSecurity = "max-age=31536000";

// The Location of the HTTP listener's redirect: https://<host>:<https_port><target>. The host is
// the Host header's host when it is an IP literal or a name of [A-Za-z0-9.-], else `fallback`
// (the address the connection came in on); a target that is not origin-form becomes "/".
std::string redirect_location(std::string_view host_header, std::string_view target,
                              const boost::asio::ip::address& fallback, std::uint16_t https_port);

}  // namespace web
