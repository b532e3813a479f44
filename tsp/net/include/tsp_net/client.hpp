// Asio drivers that run a pure tsp::ClientSession over real sockets (TCP or UDP, IPv4 or IPv6):
// tunnel creation and deletion for DSTM clients, and pipelined query sessions for TEPs.
//
// Each driver owns one socket and the session: Send actions become one write (TCP) or one
// datagram (UDP) each, in order; ArmTimer/CancelTimer run one steady_timer per TimerKind whose
// expiry is fed back as TimerExpired; Close closes the socket once the writes before it are done.
// TCP connect and every TCP write are bounded by ClientDeadlines::reply; every other wait is
// bounded by the session's own deadlines (reply deadline, UDP retransmissions).
//
// Threads: the awaitables run on the caller's executor (one io_context thread); the session
// objects must be used on that thread only. The awaitables own what they need, so a session
// object may be destroyed while calls on it are still suspended: they then fail with
// Errc::Closed. Per-operation cancellation (e.g. awaitable operators) ends a call with
// boost::asio::error::operation_aborted; a cancelled open/create closes its connection.
//
// Errors: Result<T> carries an Error (tsp_net/error.hpp): the session's tsp::Errc with the
// server's status line when it answered an error, a driver Errc, or a socket error (a broken TCP
// stream reports e.g. connection_reset rather than PeerClosed; over UDP an ICMP error such as
// connection_refused ends the session at once instead of after the retransmissions).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "core/address.hpp"
#include "tsp/client_session.hpp"
#include "tsp/message.hpp"
#include "tsp/protocol.hpp"
#include "tsp_net/error.hpp"

namespace tsp_net {

inline constexpr std::uint16_t kTspPort = 3653;

// Where to connect. Numeric addresses only (the core's servers are configured by address; no
// DNS): "192.0.2.1", "2001:db8::1", "::1", "fe80::1%eth0".
struct Target {
  std::string address;
  std::uint16_t port = kTspPort;
  tsp::Transport transport = tsp::Transport::Tcp;
  // Local address to bind before connecting; empty: the kernel picks. Must be of the same
  // family as `address`.
  std::string source_address;
  // IP_FREEBIND: bind source_address although no interface holds it, for a prefix made local
  // with `ip -6 route add local PREFIX dev lo` (the load tool gives each client its own IPv6).
  bool freebind = false;
};

// One end of a session's socket. address: IPv4 or IPv6 (IPv4-mapped IPv6 is given as IPv4).
struct SocketAddress {
  tsp::PeerAddress address;
  std::uint16_t port = 0;
  // "192.0.2.1:3653", "[2001:db8::1]:3653"
  std::string to_string() const;
  bool operator==(const SocketAddress&) const = default;
};

// An accepted (2.0.x) or received (1.0.x) offer and the socket it came over.
struct TunnelResult {
  tsp::Tunnel offer;
  tsp::Mechanism mechanism = tsp::Mechanism::Anonymous;
  SocketAddress local;
  SocketAddress peer;
};

// The answer to one query: mapping set on 200; otherwise the server's status (501: not leased).
struct QueryAnswer {
  core::Ipv4Address ipv4;
  std::optional<tsp::Mapping> mapping;
  tsp::StatusLine status;
  bool operator==(const QueryAnswer&) const = default;
};

// The answer to one heartbeat (extension, docs/tsp.md). On 200: interval is when the server
// wants the next heartbeat (seconds), withdrawn the IPv4 mappings to drop from the TEP's cache,
// flush whether to drop all of them. Another status (300: not a TEP) leaves them empty.
struct HeartbeatAnswer {
  tsp::StatusLine status;
  std::uint32_t interval = 0;
  std::vector<core::Ipv4Address> withdrawn;
  bool flush = false;
  bool operator==(const HeartbeatAnswer&) const = default;
};

namespace detail {
class Driver;
}

// A created tunnel whose session stays open: over TCP the server keeps it until lifetime +
// grace; over UDP the socket stays bound so that the tunnel can be deleted on it.
class TunnelSession {
 public:
  // Connects, authenticates, sends config.request (required: a create) and accepts the offer.
  // config.transport is taken from target.transport.
  static boost::asio::awaitable<Result<TunnelSession>> open(Target target,
                                                            tsp::ClientConfig config);

  TunnelSession(TunnelSession&&) noexcept;
  TunnelSession& operator=(TunnelSession&&) noexcept;
  ~TunnelSession();  // close()

  const TunnelResult& result() const noexcept { return result_; }

  // Sends delete and waits for the server's acknowledgement (it releases the lease); the session
  // then ends. Errors as for open().
  boost::asio::awaitable<Result<void>> async_delete();
  // Completes when the session ends: the server closed it (tsp::Errc::PeerClosed), it failed, or
  // close() was called (Errc::Closed).
  boost::asio::awaitable<Error> wait_closed();
  // Closes the socket once pending writes are done (bounded by the write deadline). Idempotent.
  void close() noexcept;
  bool is_open() const noexcept;

 private:
  TunnelSession(std::shared_ptr<detail::Driver> driver, TunnelResult result);
  std::shared_ptr<detail::Driver> driver_;
  TunnelResult result_;
};

// An authenticated query session (TEP -> DSTM server). query() and heartbeat() may be called
// from many coroutines at once: over TCP they are pipelined, at most ClientConfig::max_in_flight
// on the wire (the server holds 64; the rest wait in the session), and answered in order; over
// UDP they go one datagram at a time. After a failure every call fails with the session's error.
class QuerySession {
 public:
  // Connects and authenticates; config.request must be nullopt. config.transport is taken from
  // target.transport.
  static boost::asio::awaitable<Result<QuerySession>> open(Target target, tsp::ClientConfig config);

  QuerySession(QuerySession&&) noexcept;
  QuerySession& operator=(QuerySession&&) noexcept;
  ~QuerySession();  // close()

  // Who holds ipv4. A 501 (not leased) is an answer, not an error.
  boost::asio::awaitable<Result<QueryAnswer>> query(core::Ipv4Address ipv4);
  // A TEP heartbeat. A non-200 status (300: the identity is not a TEP) is an answer.
  boost::asio::awaitable<Result<HeartbeatAnswer>> heartbeat();

  // Queries and heartbeats submitted and not yet answered (on the wire or waiting to be sent).
  std::size_t in_flight() const noexcept;
  tsp::Mechanism mechanism() const noexcept;
  SocketAddress local() const;
  SocketAddress peer() const;
  // Completes when the session ends (server close, failure or close()).
  boost::asio::awaitable<Error> wait_closed();
  void close() noexcept;
  bool is_open() const noexcept;

 private:
  explicit QuerySession(std::shared_ptr<detail::Driver> driver);
  std::shared_ptr<detail::Driver> driver_;
};

// Creates a tunnel and closes the session after the accept (the lease stays until it expires or
// is deleted). What a load test or a one-shot client does.
boost::asio::awaitable<Result<TunnelResult>> create_tunnel(Target target, tsp::ClientConfig config);

// Releases the caller's lease from a new session: authenticates, sends delete (the server finds
// the lease by identity and source IPv6) and waits for the acknowledgement. config.request must
// be nullopt.
boost::asio::awaitable<Result<void>> delete_tunnel(Target target, tsp::ClientConfig config);

// Blocking forms for tests and tools: each runs a private io_context on the calling thread until
// the call completes or `deadline` passes (Errc::Deadline). Not for use on an io_context thread.
Result<TunnelResult> create_tunnel_blocking(Target target, tsp::ClientConfig config,
                                            std::chrono::milliseconds deadline);
Result<void> delete_tunnel_blocking(Target target, tsp::ClientConfig config,
                                    std::chrono::milliseconds deadline);
// Opens a query session, asks all addresses (pipelined over TCP) and closes. The answers are in
// the order of `addresses`.
Result<std::vector<QueryAnswer>> query_blocking(Target target, tsp::ClientConfig config,
                                                std::vector<core::Ipv4Address> addresses,
                                                std::chrono::milliseconds deadline);

}  // namespace tsp_net
