// The relay cluster's links (docs/anytun.md, "The relay cluster"): a TCP listener and a
// connection to every configured peer node, each carrying the sealed sync records of
// relay/cluster.hpp. On every link: nonce frames, then a Hello, then a full dump of this node's
// connections and routes, then live pushes (a client that moved here, once-a-tick progress of
// sequence numbers and replay marks, keepalives). What the other nodes' records do to the engine
// is ClusterApplier's business.
//
// Any error on a link (framing, a bad tag, a frame out of sequence, an undecodable record, a
// second node with our sender id, a full send queue, silence) closes that link and is counted by
// reason; the connecting side reconnects with bounded backoff and sends a new dump.
// Single-threaded: everything runs on the io_context of the relay service.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "cluster_apply.hpp"
#include "relay/endpoint.hpp"
#include "relay/engine.hpp"
#include "relay_daemon/config.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
}

namespace relay_daemon {

class ClusterNode {
 public:
  struct Identity {
    std::string name;  // in our Hello
    std::uint16_t sender_id = 0;
  };

  // Binds the listener (the error names it) and starts connecting to the peers. `engine` must
  // outlive the node's use: after stop() nothing touches it. Metrics (satp_cluster_*) are
  // registered in `counters`.
  static boost::system::result<std::unique_ptr<ClusterNode>, std::string> start(
      boost::asio::io_context& io, const ClusterConfig& config, Identity identity,
      relay::Engine& engine, ClusterApplier::TxStart tx_start, platform::Counters& counters);
  ~ClusterNode();  // stop()
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Closes the listener and every link; pending handlers finish without effect. Idempotent.
  void stop() noexcept;

  // Relay::Sink::peer_changed: the client's packets reach this node now; told to every node.
  void peer_changed(std::uint16_t mux, const relay::Peer& peer);
  // Once a second: progress records, keepalives, closing links that went silent.
  void tick();

  // "cluster" in /status and GET /cluster: the listener, the links (direction, state, the peer
  // node's name and sender id, records each way), record totals, link errors and ignored records
  // by reason, learned connections.
  boost::json::object status() const;
  relay::Endpoint listen_endpoint() const;

 private:
  struct Impl;
  explicit ClusterNode(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace relay_daemon
