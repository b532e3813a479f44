// anytun 0.3.8's own sync stream, served by a relay node (/anytun/relay/anytun_sync): a TCP
// listener that Debian anytun nodes started with `--sync-hosts` connect to, so that they learn
// this node's connections (MUX, role, master key and salt, window, TX sequence number, peer) and
// routes and serve its clients when anycast routing moves a client to them (satp-wire.md 11,
// docs/anytun.md "anytun's sync stream, emitted").
//
// What is sent when, to each connected anytun node:
//   on accept            every connection record, then every route (split with
//                        satp::sync::anytun_safe_split: never a route anytun 0.3.8 hangs on)
//   peer_changed(mux)    that connection's record (its new peer endpoint)
//   tick()               a connection that appeared or changed: its record and its routes
// The sequence number in a record is not pushed as it moves: anytun overwrites its own counter
// with it, so pushing ours would move a node that serves the client back over numbers it has
// sealed (keystream reuse, replay drops at the client). See next_seq() and docs/anytun.md.
// Records due are kept as a set of MUXes per node and encoded when written, from the engine's
// state at that moment: a node that reads slowly gets the latest values once, never a backlog,
// so the send queue is bounded by the table. A node that accepts no bytes for kWriteTimeout is
// closed and counted ("stalled").
//
// anytun's connector only reads (observed against 0.3.8: it writes nothing). Bytes that arrive
// anyway are cut with satp::sync::Framer and parsed, counted and logged at debug, and never
// applied: the stream is unauthenticated, and a record from it could redirect a client. Framing
// errors, over-long records and unparsable archives close that connection, counted by reason.
//
// The stream carries every master key in clear text (anytun's design): serve it on a trusted
// link only. Single-threaded: everything runs on the io_context's thread, like the engine.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "relay/endpoint.hpp"
#include "relay/engine.hpp"
#include "relay_daemon/config.hpp"

namespace boost::asio {
class io_context;
}

namespace relay_daemon {

struct AnytunSyncLimits {
  std::size_t max_nodes = 16;              // anytun connections at once; beyond: closed
  std::size_t batch_bytes = 64 * 1024;     // encoded per write
  std::chrono::seconds write_timeout{30};  // a node that takes no bytes for this long: closed
};

class AnytunSync {
 public:
  using Limits = AnytunSyncLimits;

  // Binds and listens on config.listen; logs the clear-text key warning. `engine` must outlive
  // the object (stop() ends every use of it).
  static boost::system::result<std::unique_ptr<AnytunSync>, std::string> start(
      boost::asio::io_context& io, const AnytunSyncConfig& config, const relay::Engine& engine,
      Limits limits = {});
  ~AnytunSync();  // stop()
  AnytunSync(const AnytunSync&) = delete;
  AnytunSync& operator=(const AnytunSync&) = delete;

  // The connection's peer moved: its record is pushed.
  void peer_changed(std::uint16_t mux);
  // Once a second: connections added or changed since the last look.
  void tick();
  // Closes the listener and every connection; pending handlers end without effect. Idempotent.
  void stop() noexcept;

  // "anytun_sync" in /status: listen, connections, records out and in, errors by reason.
  boost::json::object status() const;
  relay::Endpoint local() const;

  struct Impl;

 private:
  explicit AnytunSync(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace relay_daemon
