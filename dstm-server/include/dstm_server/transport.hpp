// The TSP transport of the dstm-server: TCP and UDP listeners on port 3653 (IPv6 and IPv4),
// one tsp::ServerSession per TCP connection or UDP peer, the session's timers and writes, and
// the per-source limits that keep a hostile or broken peer's cost bounded. What a session asks
// of the DSTM logic (leases, mappings, heartbeats) goes to a SessionHandler.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dstm_server/config.hpp"
#include "dstm_server/error.hpp"
#include "tsp/server_session.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
}

namespace dstm_server {

struct SessionInfo {
  std::uint64_t id = 0;  // unique for the daemon's lifetime
  tsp::Transport transport = tsp::Transport::Tcp;
  tsp::PeerAddress peer;  // IPv4-mapped sources are given as IPv4
  std::uint16_t peer_port = 0;
  std::optional<tsp::Identity> identity;  // set once the session has authenticated
};

// Feeds an event back to the session that asked. Returns false (and does nothing) when the
// session no longer exists. Call on the io_context's thread; may be called later, from a
// commit completion. The event is posted: the session handles it after the caller returns, so
// calling the sink from inside on_action (or from any handler code) never re-enters the handler.
// An event whose session ends before it is handled is dropped.
using EventSink = std::function<bool(tsp::ServerEvent)>;

// The DSTM logic behind the sessions; every call on the io_context's thread.
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // The session has just authenticated (info.identity is set).
  virtual void on_authenticated(const SessionInfo& info) = 0;
  // The session is gone (TCP closed or dropped, UDP session dropped after its linger, or the
  // transport stopped). Called once per session, including unauthenticated ones.
  virtual void on_closed(const SessionInfo& info) = 0;
  // A backend action (AllocateLease, ConfirmLease, ReleaseLease, LookupMapping, Heartbeat),
  // in the order the session emitted it. Answers (LeaseAllocated, MappingFound, ...) go to
  // `reply`, now or later.
  virtual void on_action(const SessionInfo& info, const tsp::ServerAction& action,
                         EventSink reply) = 0;
};

struct TransportOptions {
  ListenConfig listen{};
  LimitsConfig limits{};
  // Shared by every session; required (the Transport constructor throws std::invalid_argument
  // without it).
  std::shared_ptr<const tsp::ServerConfig> session;
  platform::Counters* counters = nullptr;  // optional; must outlive the transport
  // TCP: a write that does not complete within this time drops the connection (a peer that
  // stopped reading); also bounds the final flush after Close.
  std::chrono::milliseconds write_timeout{std::chrono::seconds{10}};
  // TCP: bytes queued for one connection and not yet written; a Send beyond it drops the
  // connection.
  std::size_t max_write_queue = 256 * 1024;
  // TCP: SO_SNDBUF of each connection, which bounds the kernel memory a peer that does not read
  // can hold (loopback autotuning would otherwise grow it to megabytes). TSP replies are a few
  // KiB. 0 keeps the system default and its autotuning.
  std::size_t tcp_send_buffer = 64 * 1024;
};

struct BoundEndpoint {
  tsp::Transport transport = tsp::Transport::Tcp;
  std::string address;  // "::", "127.0.0.1"
  std::uint16_t port = 0;
};

// Limits (LimitsConfig): TCP connections in total and per source (beyond them a connection is
// accepted and closed at once, counted); UDP sessions in total and per source (a datagram that
// would open one more is dropped, counted); new sessions per source (TCP and UDP together)
// through a token bucket of new_sessions_burst tokens refilled at new_sessions_per_second (the
// buckets are bounded in number: full ones are forgotten, and beyond 16384 sources the least
// recently seen is); every session phase has the session's deadline; a TCP write that does not
// complete within write_timeout, or more than max_write_queue bytes waiting for a peer that does
// not read, drops the connection. A datagram from an unknown peer that does not start with the
// 8-byte TSP header (signalling nibble 0xF) is dropped and counted without creating a session.
// Sources are compared as addresses (IPv4-mapped IPv6 as IPv4), UDP sessions by address and port.
//
// Counters (when set, registered by the constructor): tsp_sessions_total{transport},
// tsp_sessions{transport} (gauge), tsp_rejected_total{transport,reason} (new sessions refused;
// reason: max_connections, per_source, rate; for UDP max_connections is max_udp_sessions),
// tsp_datagrams_dropped_total{reason} (reason: malformed, limit, rate for received datagrams;
// send_error for replies the socket refused), tsp_timeouts_total (sessions closed by their phase
// deadline, TCP writes stuck past write_timeout), tsp_write_overflows_total (TCP connections
// dropped at max_write_queue), tsp_bytes_received_total{transport},
// tsp_bytes_sent_total{transport}. transport is "tcp" or "udp".
//
// Thread: everything on the io_context's thread (one thread). Sessions end with on_closed:
// TCP after Close once the queued writes are flushed, our FIN is sent and the peer's has come
// (waited for at most 2 s), or at once when the connection breaks; UDP after Close's linger.
class Transport {
 public:
  Transport(boost::asio::io_context& io, SessionHandler& handler, TransportOptions options);
  ~Transport();  // stop()
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Binds every configured listener (port 0: TCP picks a port and UDP binds the same number;
  // if that number is taken for UDP, everything is released and tried again, a few times).
  // An error carries the socket error as code and names the listener as detail
  // (Error{address_in_use, "tcp [2001:db8::1]:3653"}, message() "Address already in use: tcp
  // [2001:db8::1]:3653"); nothing stays bound then. Only once: a second start (or a start after
  // stop) fails with errc::already_connected.
  Result<void> start();
  // Closes the listeners and every session at once (on_closed for each, before stop returns);
  // no handler is called afterwards. Idempotent.
  void stop() noexcept;

  // The bound listeners, TCP then UDP, each in configuration order (ipv6 then ipv4), with the
  // actual port; empty before start and after stop.
  std::vector<BoundEndpoint> endpoints() const;
  // Open sessions: TCP connections (including those flushing their last writes after Close),
  // UDP sessions (including lingering ones).
  std::size_t tcp_sessions() const noexcept;
  std::size_t udp_sessions() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dstm_server
