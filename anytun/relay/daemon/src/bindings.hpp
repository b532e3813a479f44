// Relay mode on the relay node (draft-gsenger-anycast-relay-00 section 1.1.1.3): a client with
// relay_mode allocates a binding through the relay's control messages (relay/control.hpp); the
// relay then holds one UDP socket on a relay address and port for it, repeats the datagrams that
// come from the client's endpoint to the peer, and the peer's datagrams to the client, changing
// only addresses and ports. Anything else reaching that socket is dropped and counted.
//
// BindingTable is the pure part (ids, lifetimes, limits, ownership, the filtering decision, the
// choice of candidate relay endpoints); RelayBindings adds the sockets on an io_context.
//
// Rules (docs/anytun.md, "Relay mode"):
//  - the client endpoint is the Allocate's client address, or the source address of the SATP
//    packet that carried it, with its client port; client and peer are of one family (one socket
//    talks to both), and neither may be a relay address of this node (no binding feeds another);
//  - the lifetime granted is min(asked, max_lifetime), asked 0 meaning max_lifetime; a binding
//    is dropped strictly after it runs out, unless refreshed;
//  - an Allocate retransmitted with the same request id, peer and client endpoint gets the
//    binding it already made, so a lost answer does not cost a second binding;
//  - at most max_bindings in all and max_bindings_per_client per connection (Exhausted).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "relay/control.hpp"
#include "relay/endpoint.hpp"
#include "relay_daemon/config.hpp"

namespace boost::asio {
class io_context;
}

namespace relay_daemon {

struct BindingCounters {
  std::uint64_t to_peer_packets = 0;  // from the client, repeated to the peer
  std::uint64_t to_peer_bytes = 0;
  std::uint64_t to_client_packets = 0;  // from the peer, repeated to the client
  std::uint64_t to_client_bytes = 0;
  std::uint64_t filtered = 0;     // from anyone else: dropped
  std::uint64_t send_errors = 0;  // the kernel would not take the repeated datagram
  BindingCounters& operator+=(const BindingCounters& o) noexcept;
};

struct Binding {
  using Clock = std::chrono::steady_clock;
  std::uint32_t id = 0;
  std::uint16_t mux = 0;
  std::uint32_t request = 0;  // the request id of the Allocate that made it
  relay::Endpoint client;
  relay::Endpoint peer;
  relay::Endpoint relay;
  std::uint32_t lifetime = 0;  // seconds, as last granted
  Clock::time_point expires;
  BindingCounters counters;
};

// Where a datagram that reached a binding's socket from `from` goes.
enum class Direction { ToPeer, ToClient, Filtered };
Direction direction(const Binding& binding, const relay::Endpoint& from) noexcept;

class BindingTable {
 public:
  using Clock = Binding::Clock;
  using Answer = boost::system::result<Binding*, relay::control::Error>;

  // Precondition: config as validated (port_first <= port_last, limits >= 1).
  BindingTable(RelayModeConfig config, std::uint64_t seed);

  // An Allocate from connection `mux` (allowed: the connection has relay_mode), carried by a
  // SATP packet from `from`: the checked request (the client endpoint resolved, the lifetime
  // granted), or the Error to answer. Then retransmitted() finds the binding an earlier copy of
  // the same request made, and full() tells whether a new one is refused.
  struct Request {
    std::uint16_t mux = 0;
    std::uint32_t id = 0;  // request id
    relay::Endpoint client;
    relay::Endpoint peer;
    std::uint32_t lifetime = 0;  // granted
  };
  boost::system::result<Request, relay::control::Error> check(
      std::uint16_t mux, bool allowed, const relay::Endpoint& from, std::uint32_t request,
      const relay::control::Allocate& allocate) const;
  Binding* retransmitted(const Request& request) noexcept;
  // Exhausted when the table, or connection `mux`, holds its most bindings.
  std::optional<relay::control::Error> full(std::uint16_t mux) const;

  // A relay endpoint to try for `request`: a random relay address of the peer's family and a
  // random port of the range that no binding of the table holds; nullopt when the table holds
  // the whole range on every such address, or after a bounded number of probes.
  std::optional<relay::Endpoint> candidate(const Request& request);

  // Adds the binding (relay endpoint bound by the caller) with a random unique non-zero id.
  // Exhausted if no free id is found in a bounded number of draws (a table near 2^32).
  Answer insert(const Request& request, const relay::Endpoint& relay, Clock::time_point now);

  // Refresh and Release of a binding that connection `mux` holds; UnknownBinding otherwise.
  Answer refresh(std::uint16_t mux, std::uint32_t id, std::uint32_t lifetime,
                 Clock::time_point now);
  boost::system::result<void, relay::control::Error> release(std::uint16_t mux, std::uint32_t id);

  // Bindings past their lifetime (strictly), and bindings of connections that are gone or may
  // no longer use relay mode: removed; their ids returned.
  std::vector<std::uint32_t> expire(Clock::time_point now,
                                    const std::function<bool(std::uint16_t)>& allowed);

  Binding* find(std::uint32_t id) noexcept;
  const std::map<std::uint32_t, Binding>& bindings() const noexcept { return bindings_; }
  std::size_t size_of(std::uint16_t mux) const noexcept;
  // Lifetime granted for an ask (0 = the longest).
  std::uint32_t grant(std::uint32_t asked) const noexcept;

  // Totals: counters of bindings gone, and what happened to requests.
  struct Totals {
    std::uint64_t allocated = 0;
    std::uint64_t refreshed = 0;
    std::uint64_t released = 0;
    std::uint64_t expired = 0;
    BindingCounters gone;  // counters of removed bindings
  };
  const Totals& totals() const noexcept { return totals_; }

 private:
  void erase(std::map<std::uint32_t, Binding>::iterator it) noexcept;

  RelayModeConfig config_;
  std::mt19937_64 rng_;
  std::map<std::uint32_t, Binding> bindings_;
  std::map<std::uint16_t, std::size_t> per_client_;
  std::map<relay::Endpoint, std::uint32_t> by_relay_;  // relay endpoint -> id
  Totals totals_;
};

// The table plus one non-blocking UDP socket per binding, read in batches on readiness.
// Single-threaded: everything runs on the io_context's thread.
class RelayBindings {
 public:
  using Clock = BindingTable::Clock;

  RelayBindings(boost::asio::io_context& io, RelayModeConfig config, std::uint64_t seed,
                platform::Logger& log);
  ~RelayBindings();  // stop()
  RelayBindings(const RelayBindings&) = delete;
  RelayBindings& operator=(const RelayBindings&) = delete;

  // Whether this body is a request of relay mode (Allocate, Refresh, Release).
  static bool handles(const relay::control::Body& body) noexcept;
  // The answer to such a request of connection `mux` (allowed: it has relay_mode), carried by a
  // SATP packet from `from`.
  relay::control::Body answer(std::uint16_t mux, bool allowed, const relay::Endpoint& from,
                              const relay::control::Message& message, Clock::time_point now);
  // Periodic: expiry, and bindings of connections gone or no longer allowed (closes sockets).
  void tick(Clock::time_point now, const std::function<bool(std::uint16_t)>& allowed);
  // Closes every socket. Idempotent.
  void stop() noexcept;

  // GET /bindings: every binding with its counters; /status: totals.
  boost::json::array list(Clock::time_point now) const;
  boost::json::object status() const;
  // Totals in /metrics (satp_relay_binding*); this object must outlive their reads.
  void register_metrics(platform::Counters& counters) const;

 private:
  struct Socket;
  void arm(const std::shared_ptr<Socket>& socket);
  void drain(Socket& socket);
  void close(std::uint32_t id) noexcept;
  BindingCounters sum() const;

  boost::asio::io_context& io_;
  platform::Logger& log_;
  BindingTable table_;
  std::map<std::uint32_t, std::shared_ptr<Socket>> sockets_;
  std::map<std::string_view, std::uint64_t> refused_;  // by Error code name
  std::uint64_t bind_errors_ = 0;
  std::vector<std::byte> buffer_;  // receive slots, shared by all sockets
};

}  // namespace relay_daemon
