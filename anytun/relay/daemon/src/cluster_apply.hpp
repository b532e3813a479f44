// What the relay cluster's sync records (relay/cluster.hpp) do to this node's engine, and the
// records that tell the other nodes about it. No I/O: the cluster node (cluster_node.hpp) moves
// the records over its links, and tests drive this with a real relay::Engine.
//
// Connections are "configured" (from this node's config: the cluster never replaces their keys,
// routes or flags, nor removes them) or "learned" (added from another node's Connection record).
// For both, the other nodes' Peer and Progress records move the peer, the sequence number and the
// replay windows' high-water marks, so that a node the routing moves a client to continues the
// session: it answers the client where it is, and refuses what the client's former node accepted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "relay/cluster.hpp"
#include "relay/engine.hpp"

namespace relay_daemon {

class ClusterApplier {
 public:
  // Where a learned connection's transmit sequence numbers start (the node's state file or a
  // random point, as for configured connections).
  using TxStart = std::function<std::uint32_t(std::uint16_t mux)>;
  struct Limits {
    std::size_t max_connections = 4096;  // in the engine, configured and learned together
    std::size_t max_routes = 1024;       // per learned connection
  };

  // `engine` must outlive the applier; every call happens on the engine's thread.
  ClusterApplier(relay::Engine& engine, TxStart tx_start, Limits limits);

  // Applies one record from another node. Returns "" when it was applied, else why it was left
  // alone (counted by the caller; none of these is an error of the link):
  //   "configured"   a Remove or a route record for a connection configured here
  //   "conflict"     a Connection record whose keys or settings differ from a configured one
  //   "unknown_mux"  a record for a connection this node does not have
  //   "table_full"   a new connection or route beyond the limits
  //   "route_taken"  a route that another connection has here
  //   "bad_connection" keys or settings the engine refuses
  //   "no_peer"      a Peer record without an endpoint (nothing to adopt)
  // Hello and Keepalive are the link's business and do nothing here.
  std::string_view apply(const relay::cluster::Record& record);

  // Everything a node that just linked up needs: a Connection record for every connection (its
  // peer when that is a UDP endpoint, the next sequence number, the high-water marks), each
  // followed by its routes.
  std::vector<relay::cluster::Record> dump() const;
  // A Progress record for every connection whose sequence number or marks moved since the last
  // call (or since it appeared).
  std::vector<relay::cluster::Record> progress();
  // The Peer record for a client that moved to this node; nullopt for a TCP peer, which the
  // other nodes could not reach.
  static std::optional<relay::cluster::Record> peer_record(std::uint16_t mux,
                                                           const relay::Peer& peer);

  bool is_learned(std::uint16_t mux) const noexcept { return learned_.contains(mux); }
  std::size_t learned() const noexcept { return learned_.size(); }

 private:
  using Marks = std::vector<relay::cluster::SenderMark>;
  Marks marks_of(std::uint16_t mux) const;
  std::string_view connection(const relay::cluster::Connection& r);
  std::string_view route(const relay::Route& route, bool add);
  void raise(std::uint16_t mux, std::uint32_t tx_seq, const Marks& rx);
  // Re-adds a learned connection with other routes, keeping its peer, counters and window.
  bool replace_routes(std::uint16_t mux, std::vector<relay::Prefix> routes);

  relay::Engine& engine_;
  TxStart tx_start_;
  Limits limits_;
  std::set<std::uint16_t> learned_;
  std::map<std::uint16_t, std::pair<std::uint32_t, Marks>> reported_;  // what progress() told
};

}  // namespace relay_daemon
