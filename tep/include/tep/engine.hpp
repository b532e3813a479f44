// The TEP's data path as a pure state machine: packets and the DSTM server's answers in, packets
// and queries out. The daemon feeds it what its TUN device and tunnel socket read, and carries
// out what it asks through a Sink; no I/O, no clock (callers pass `now`), one thread.
//
// Tunnel -> IPv4 (a client's packet): decapsulate (each failure counted by DropReason); an echo
// request to the keepalive address is answered in the tunnel; otherwise the inner source must
// be bound to the outer source (anti-spoofing). Unknown sources wait in the miss queue while the
// server is asked; a binding is learned only once the server confirms the lease.
//
// IPv4 -> tunnel (return traffic to a pool address): a binding sends it to the client (MTU:
// fragmented when DF is clear, ICMP "fragmentation needed" when set); a negative entry draws an
// ICMP host unreachable; a miss waits in the queue while the server is asked. ICMP errors are
// rate-limited by one token bucket.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "tep/binding_table.hpp"
#include "tep/fourover6.hpp"
#include "tep/miss_queue.hpp"

namespace tep {

struct EngineConfig {
  core::Ipv6Address local{};                   // the tunnel end point (outer source)
  core::Ipv4Address router{};                  // the TEP's IPv4: source of its ICMP errors
  std::optional<core::Ipv4Address> keepalive;  // answers echo requests to it in the tunnel
  std::vector<core::Ipv4Prefix> pool;          // the shared pool (at least one prefix)
  std::size_t tunnel_mtu = 1500;               // IPv6 MTU toward clients, >= 1280
  EncapOptions encap{.hop_limit = 64, .flow_label = FlowLabel::InnerHash};
  BindingLimits bindings{};
  MissQueueLimits queue{};
  double icmp_rate = 100;  // ICMP errors per second
  double icmp_burst = 50;
};

// Every packet handed to the engine ends in exactly one outcome counter (a delivered or queued
// packet counts again when it leaves the queue). Names are stable: they appear in /metrics as
// tep_<name>_total.
#define TEP_ENGINE_COUNTERS(X)                                                                     \
  X(decapsulated, "client packets decapsulated and forwarded to IPv4")                             \
  X(decapsulated_bytes, "inner bytes of decapsulated packets")                                     \
  X(encapsulated, "IPv4 packets encapsulated toward clients (fragments count one each)")           \
  X(encapsulated_bytes, "outer bytes of encapsulated packets")                                     \
  X(spoofed, "decapsulated packets whose inner source is leased to another client")                \
  X(source_not_leased, "decapsulated packets whose inner source is a pool address not leased")     \
  X(source_outside_pool, "decapsulated packets whose inner source is outside the pool")            \
  X(destination_outside_pool, "IPv4 packets to an address outside the pool")                       \
  X(destination_not_leased, "IPv4 packets to a pool address that is not leased")                   \
  X(ipv4_invalid, "packets from the IPv4 side that are not valid IPv4")                            \
  X(queued, "packets queued while the server was asked")                                           \
  X(queue_address_full, "packets dropped: too many already wait for the same address")             \
  X(queue_full, "packets dropped: the miss queue is full")                                         \
  X(queue_timeout, "queued packets dropped because the server did not answer in time")             \
  X(query_failed, "queued packets dropped because the query failed")                               \
  X(queries, "queries asked of the DSTM server")                                                   \
  X(answers_leased, "answers: the address is leased")                                              \
  X(answers_not_leased, "answers: the address is not leased")                                      \
  X(answers_failed, "queries that failed (server unreachable, error, timeout)")                    \
  X(unreachable_sent, "ICMP host unreachable sent")                                                \
  X(frag_needed_sent, "ICMP fragmentation needed sent")                                            \
  X(icmp_rate_limited, "ICMP errors not sent because of the rate limit or RFC 1812 rules")         \
  X(fragmented, "IPv4 packets fragmented before encapsulation")                                    \
  X(keepalive_replies, "echo replies sent from the keepalive address")                             \
  X(bindings_learned_traffic, "bindings learned from a client's traffic, confirmed by the server") \
  X(bindings_learned_query, "bindings learned for return traffic from the server")                 \
  X(bindings_table_full, "bindings not installed because the table is full")                       \
  X(withdrawn, "bindings withdrawn by the server")                                                 \
  X(flushes, "whole-table flushes")

struct EngineCounters {
#define TEP_COUNTER_FIELD(name, help) std::uint64_t name = 0;
  TEP_ENGINE_COUNTERS(TEP_COUNTER_FIELD)
#undef TEP_COUNTER_FIELD
  std::array<std::uint64_t, kDropReasonCount> decap_drops{};  // by DropReason

  // Calls fn(name, help, value) for every named counter above (not decap_drops); value is the
  // member itself, so fn may keep a reference to it.
  template <typename F>
  void for_each(F&& fn) const {
#define TEP_COUNTER_VISIT(name, help) fn(std::string_view{#name}, std::string_view{help}, name);
    TEP_ENGINE_COUNTERS(TEP_COUNTER_VISIT)
#undef TEP_COUNTER_VISIT
  }
};

class Engine {
 public:
  // Where the engine's output goes. Called synchronously from the engine's functions; the bytes
  // are valid only during the call.
  class Sink {
   public:
    virtual ~Sink() = default;
    virtual void to_ipv4(core::Bytes ipv4_packet) = 0;    // for the TUN device
    virtual void to_tunnel(core::Bytes ipv6_packet) = 0;  // for the tunnel socket
    virtual void query(core::Ipv4Address address) = 0;    // ask the server who holds address
    // An ICMPv4 error this TEP originates (source: config.router): sent from the host's own
    // stack, as a router sends its errors, not forwarded in from the TUN device (where the
    // kernel would take the TEP's own source address for a martian).
    virtual void icmp_error(core::Bytes ipv4_packet) = 0;
  };

  // config.pool non-empty and tunnel_mtu >= 1280 are preconditions (the config reader checks).
  Engine(EngineConfig config, Sink& sink);

  // One packet from the tunnel socket: the whole IPv6 packet. Modified in place (ECN).
  void from_tunnel(core::MutableBytes ipv6_packet, TimePoint now);
  // One packet from the TUN device: the IPv4 packet starts at frame[headroom], headroom >= 40,
  // and extends to the end of frame. Encapsulated in place when possible.
  void from_ipv4(core::MutableBytes frame, std::size_t headroom, TimePoint now);

  // The server's answers to query(address).
  void answer_leased(core::Ipv4Address address, const core::Ipv6Address& client,
                     std::chrono::seconds lifetime, TimePoint now);
  void answer_not_leased(core::Ipv4Address address, TimePoint now);
  // The query could not be answered (server away, error): queued packets are dropped (ICMP
  // unreachable for return traffic), nothing is cached.
  void answer_failed(core::Ipv4Address address, TimePoint now);

  // The server withdrew a mapping (lease ended) or asked for a flush.
  void withdraw(core::Ipv4Address address);
  void flush();

  // Expires bindings, negative entries and queued packets past their deadline; call at least
  // every 100 ms or at next_deadline().
  void tick(TimePoint now);
  std::optional<TimePoint> next_deadline() const noexcept { return queue_.next_deadline(); }

  const EngineCounters& counters() const noexcept { return counters_; }
  const BindingTable& bindings() const noexcept { return bindings_; }
  BindingTable& bindings() noexcept { return bindings_; }
  const MissQueue& queue() const noexcept { return queue_; }
  const EngineConfig& config() const noexcept { return config_; }
  bool in_pool(core::Ipv4Address a) const noexcept;

 private:
  void deliver_from_client(core::Bytes inner, const core::Ipv6Address& outer_source,
                           Binding& binding, TimePoint now);
  void send_to_client(core::MutableBytes frame, std::size_t headroom, core::Bytes inner,
                      Binding& binding, TimePoint now);
  void answer_keepalive(core::Bytes inner, const core::Ipv6Address& client);
  void send_unreachable(core::Bytes offending, TimePoint now);
  void send_icmp(std::vector<std::byte> packet, TimePoint now);
  void enqueue(core::Ipv4Address address, Direction direction, const core::Ipv6Address& outer,
               core::Bytes packet, TimePoint now);
  void drain(core::Ipv4Address address, TimePoint now);

  EngineConfig config_;
  Sink& sink_;
  BindingTable bindings_;
  MissQueue queue_;
  RateLimiter icmp_;
  EngineCounters counters_{};
  std::vector<std::byte> scratch_;  // headroom + one packet: queued packets, fragments, replies
  std::vector<std::byte> fragment_;
};

}  // namespace tep
