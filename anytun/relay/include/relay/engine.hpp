// The relay's forwarding engine (draft-gsenger-anycast-relay-00 section 1.1.1): the table of SATP
// connections (one per client MUX) and the decisions for every packet, without I/O. The daemon
// moves bytes between its sockets, its TUN device and this engine; the engine opens and seals
// SATP packets, routes inner packets and tells a Sink where each one goes.
//
// From the network (a client's SATP packet):
//   look up the connection by MUX, open it (tag, replay window), adopt the sender's endpoint as
//   the connection's peer when it moved (anytun's roaming and anycast hook), then by payload type:
//   - IPv4/IPv6: the inner destination decides (tunnel mode):
//       a route of another client        -> sealed again toward that client
//       multicast or broadcast           -> sealed toward every other client with a peer, and
//                                           to the TUN
//       otherwise, open tunnel allowed   -> source NAT, then the TUN (the kernel forwards it)
//       otherwise                        -> the TUN (the node itself, or what its kernel routes)
//   - the relay's control type (control.hpp) -> Sink::control
// From the TUN (what the node's kernel routes into the tunnel):
//   to a NAT address -> reverse translation -> that client; a client route -> that client;
//   multicast/broadcast -> every client; else the default connection (a client node) or a drop.
//
// A node that is itself a client (of a relay) is the same engine with one connection and that
// connection as the default.
//
// Every refused packet is counted by reason, per connection where one is known. Single-threaded:
// one engine per event loop; opening and sealing never allocate.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.hpp"
#include "relay/control.hpp"
#include "relay/endpoint.hpp"
#include "relay/error.hpp"
#include "relay/nat.hpp"
#include "relay/prefix_table.hpp"
#include "satp/error.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"
#include "satp/replay.hpp"

namespace relay {

// Where a connection's peer is: a UDP endpoint, or (stream != 0) a TCP connection of the
// daemon's, with the endpoint it came from.
struct Peer {
  Endpoint endpoint;
  std::uint64_t stream = 0;
  auto operator<=>(const Peer&) const noexcept = default;
};

struct ConnectionSpec {
  std::uint16_t mux = 0;
  satp::Settings settings;  // role: this node's end
  satp::MasterKey key;
  satp::MasterSalt salt{};
  std::uint32_t window = satp::kDefaultWindowSize;
  std::optional<Peer> peer;  // known in advance (a client's server), else learned
  std::vector<Prefix> routes;
  bool open_tunnel = false;
  bool relay_mode = false;
  bool operator==(const ConnectionSpec&) const = default;
};

// Why packets were dropped: satp::Errc and relay::Errc values side by side.
// The keys are the static names of satp::to_string / relay::to_string, or "no_peer" (a connection
// whose peer is not known yet), "loop" (a client's packet to its own routes) and "seq_exhausted"
// (a connection that used its last sequence number, 2^32 - 2: SATP cannot rekey, so it sends
// nothing more until it is configured with new keys).
struct DropCounts {
  std::map<std::string_view, std::uint64_t> by_reason;
  void add(std::string_view reason) { ++by_reason[reason]; }
  std::uint64_t total() const noexcept;
};

struct ConnectionStats {
  std::uint64_t rx_packets = 0;  // opened SATP packets from the peer
  std::uint64_t rx_bytes = 0;    // their inner bytes
  std::uint64_t tx_packets = 0;  // sealed toward the peer
  std::uint64_t tx_bytes = 0;
  std::uint64_t control = 0;  // control messages received
  std::uint64_t peer_changes = 0;
  // Replay windows restarted because a sender's counter started again (satp/replay.hpp).
  std::uint64_t sender_restarts = 0;
  DropCounts drops;
};

// What the engine asks of the daemon. Calls happen during from_network/from_tun/send_control;
// the bytes are valid only during the call (copy or send them before returning).
class Sink {
 public:
  virtual ~Sink() = default;
  // A sealed SATP packet for a peer.
  virtual void to_peer(const Peer& peer, core::Bytes packet) = 0;
  // An inner packet for the TUN device: frame[offset, offset + length), which the sink may keep
  // until the end of the current batch when the caller said the frame lives that long.
  virtual void to_tun(core::MutableBytes frame, std::size_t offset, std::size_t length) = 0;
  // A control message from a client's connection (relay mode, TCP initialisation).
  virtual void control(std::uint16_t mux, const Peer& from, const control::Message& message) = 0;
  // The connection's peer moved (a cluster pushes this to the other nodes).
  virtual void peer_changed(std::uint16_t mux, const Peer& peer) { (void)mux, (void)peer; }
};

struct EngineOptions {
  std::uint16_t sender_id = 0;
  // Source NAT for open tunnel mode; none: connections with open_tunnel fall back to the TUN.
  std::optional<NatConfig> nat;
  // The connection that gets TUN packets no route claims (a client node's only connection).
  std::optional<std::uint16_t> default_mux;
  std::uint64_t seed = 0;  // for the NAT's port choice
};

class Engine {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Engine(EngineOptions options);
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Adds or replaces the connection of spec.mux, starting its sequence numbers at tx_seq (the
  // caller keeps these from ever repeating under one key: state file or random start). Replacing
  // keeps the counters and, when the keys are unchanged, the replay window. Errors from
  // satp::Codec::create (keys and settings). Its routes replace the MUX's former ones.
  satp::Result<void> add(const ConnectionSpec& spec, std::uint32_t tx_seq);
  bool remove(std::uint16_t mux);
  bool contains(std::uint16_t mux) const noexcept;
  std::vector<std::uint16_t> muxes() const;
  const ConnectionSpec* spec(std::uint16_t mux) const noexcept;
  const ConnectionStats* stats(std::uint16_t mux) const noexcept;
  std::optional<Peer> peer(std::uint16_t mux) const noexcept;
  // Sets the peer (cluster sync, or a client that moved to its TCP connection).
  void set_peer(std::uint16_t mux, const std::optional<Peer>& peer) noexcept;
  std::uint32_t tx_seq(std::uint16_t mux) const noexcept;
  // Raises the next sequence number to at least `seq` (cluster sync).
  void raise_tx_seq(std::uint16_t mux, std::uint32_t seq) noexcept;
  // The replay window's high-water marks, and raising them (cluster takeover: afterwards every
  // packet at or below a mark is a replay here too).
  std::vector<std::pair<std::uint16_t, std::uint32_t>> rx_marks(std::uint16_t mux) const;
  void raise_rx(std::uint16_t mux, std::uint16_t sender_id, std::uint32_t max) noexcept;

  // One SATP packet from the network at frame[offset, offset + length); it is opened in place,
  // and the inner packet handed to the sink as a part of `frame`.
  void from_network(const Peer& from, core::MutableBytes frame, std::size_t offset,
                    std::size_t length, Sink& sink, Clock::time_point now);
  // One inner packet read from the TUN, at frame[offset, offset + length) (the NAT rewrites it
  // in place).
  void from_tun(core::MutableBytes frame, std::size_t offset, std::size_t length, Sink& sink,
                Clock::time_point now);
  // Seals a control message toward a connection's peer. UnknownMux; NoRoute when it has no peer.
  Result<void> send_control(std::uint16_t mux, const control::Message& message, Sink& sink);

  const PrefixTable& routes() const noexcept;
  SourceNat* nat() noexcept;
  const SourceNat* nat() const noexcept;
  // Drops not tied to a connection (unknown MUX, truncated headers, TUN packets without route).
  const DropCounts& drops() const noexcept;
  // Periodic work: NAT expiry.
  void tick(Clock::time_point now);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay
