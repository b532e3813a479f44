// The relay's TCP transport, unicast TCP with anycast initialisation
// (draft-gsenger-anycast-relay-00 section 1.1.2.2): SATP packets carried over TCP streams, each
// behind a 2-byte length (relay/stream_framer.hpp).
//
//   client                      anycast address (UDP)         the answering node's unicast TCP
//     |-- Locate (SATP control) ---->|                                    |
//     |<-------------- Located{tcp} -|                                    |
//     |-- connect ------------------------------------------------------->|
//     |== Locate, then SATP frames both ways (len16 | packet)... ========>|
//
// TcpTransport holds the streams, on either side: the relay's listener accepts them, a client
// connects one. Every stream has an id (from 1, never reused); a frame read from it reaches the
// handler as from relay::Peer{remote endpoint, id}, and the engine adopts that peer on the first
// authenticated packet, so that the connection's packets go back down the same stream.
// TcpClient is the client's side of the initialisation: Locate over UDP, connect, and back to
// Locate whenever the stream ends.
//
// Data path: a stream is read in chunks of up to 64 KiB (many frames per read); packets for it
// are queued and written with one non-blocking write per loop round (flush()), or at once when
// the queue is full; the kernel's socket buffer takes what it can, the queue holds the rest.
//
// Bounds: at most max_streams streams (one more is closed at once, counted); a stream buffers at
// most one read and one partial frame in, and at most send_queue_bytes out beyond the kernel's
// buffer (beyond: the packet is dropped, counted); a stream that has carried no authenticated
// packet for idle_timeout is closed. Single-threaded: everything on the io_context.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "core/bytes.hpp"
#include "relay/control.hpp"
#include "relay/endpoint.hpp"
#include "relay/engine.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
}  // namespace platform

namespace relay_daemon {

struct TcpOptions {
  std::size_t max_streams = 1024;
  std::size_t send_queue_bytes = 256 * 1024;  // per stream, frames with their lengths
  std::chrono::milliseconds idle_timeout{std::chrono::seconds{60}};
};

struct TcpCounters {
  std::uint64_t accepted = 0;          // streams accepted (relay side)
  std::uint64_t refused = 0;           // closed at once: max_streams were open
  std::uint64_t accept_errors = 0;     // accept() failed (out of descriptors, ...)
  std::uint64_t connects = 0;          // streams connected (client side)
  std::uint64_t connect_failures = 0;  // refused, unreachable or timed out
  std::uint64_t closed = 0;            // streams that ended, for any reason
  std::uint64_t framing_errors = 0;    // closed: a length of 0 or above the largest packet
  std::uint64_t idle_closed = 0;       // closed: no authenticated packet for idle_timeout
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t send_drops = 0;  // packets dropped: the stream's queue was full, or it is gone
};

class TcpTransport {
 public:
  // What the transport tells its owner. Calls come from the io_context, never after stop().
  class Handler {
   public:
    virtual ~Handler() = default;
    // One frame (an SATP packet, not yet opened) from a stream; the bytes may be opened in place
    // and stay valid until tcp_frames_done(). True when it authenticated: only such packets keep
    // a stream from idling out.
    virtual bool tcp_frame(const relay::Peer& from, core::MutableBytes packet) = 0;
    // The frames of one read were handed over: flush what they produced.
    virtual void tcp_frames_done() = 0;
    // A stream ended (end of stream, error, framing error, idle, close()).
    virtual void tcp_closed(const relay::Peer& peer) = 0;
  };

  TcpTransport(boost::asio::io_context& io, Handler& handler, TcpOptions options);
  ~TcpTransport();  // stop()
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // The relay's listener: binds (an IPv6 endpoint is IPv6 only, as the UDP sockets) and accepts.
  // Returns the bound endpoint (port 0: the kernel's choice).
  boost::system::result<relay::Endpoint> listen(const relay::Endpoint& bind);
  std::optional<relay::Endpoint> listening() const noexcept;

  // A client's stream: connects within `timeout`, then reads from it. `done` gets the stream's
  // peer, or the error; it is not called after stop().
  using ConnectDone = std::function<void(boost::system::result<relay::Peer>)>;
  void connect(const relay::Endpoint& to, std::chrono::milliseconds timeout, ConnectDone done);

  // Queues one packet, behind its 2-byte length, for the stream; written by the next flush(), or
  // now when the queue is full. False (counted in send_drops) when it still does not fit, or the
  // stream is gone. Never ends a stream itself (a failed write ends it from the loop).
  bool send(std::uint64_t stream, core::Bytes packet);
  // One write per stream with queued frames (unless it waits for the kernel's buffer).
  void flush();
  // Ends a stream (tcp_closed follows). Unknown ids are ignored.
  void close(std::uint64_t stream);
  // Closes the listener and every stream; no handler call follows. Idempotent.
  void stop() noexcept;

  std::size_t open_streams() const noexcept;
  const TcpCounters& counters() const noexcept;
  // {"listen", "open", "accepted", "refused", ...}
  boost::json::object status() const;
  // satp_tcp_* series labelled `role`.
  void register_metrics(platform::Counters& counters, const std::string& role);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// The client's side: Locate over UDP to the configured (anycast) server, SATP over TCP to the
// endpoint the answering node tells. The engine's peer for `mux` is what the transport has:
// none while locating or connecting (the tunnel's packets are dropped as no_peer rather than
// sent over UDP), the stream once connected. Locate is retransmitted with backoff (0.5 s doubling
// up to 16 s); a failed connect or a stream that ends goes back to Locate after a backoff (1 s
// doubling up to 30 s, back to 1 s after a stream that lasted). Once connected, the client sends a
// Locate down the stream at once (so that the relay adopts the stream before any data flows) and
// every 15 s (the relay's answers keep both ends from idling out).
class TcpClient {
 public:
  // `flush` sends what the engine queued (the Locate datagrams and frames it seals).
  TcpClient(boost::asio::io_context& io, relay::Engine& engine, relay::Sink& sink,
            TcpTransport& transport, std::uint16_t mux, relay::Endpoint server,
            std::function<void()> flush);
  ~TcpClient();  // stop()
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  void start();
  void stop() noexcept;

  // A control message on the connection (Sink::control): a Located that answers the current
  // Locate starts the connect.
  void control(const relay::control::Message& message);
  // The transport's tcp_closed.
  void closed(const relay::Peer& peer);
  // Whether a datagram may reach the engine: only while locating (the Located answer); later ones
  // are ignored and counted, so that a stray datagram cannot move the connection off its stream.
  bool admit_udp() noexcept;
  // Puts back the peer the transport wants (the engine adopts a datagram's sender as the peer):
  // after every batch of datagrams.
  void restore_peer() noexcept;

  // {"state", "endpoint", "locates", "located", "udp_ignored", ...}
  boost::json::object status() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace relay_daemon
