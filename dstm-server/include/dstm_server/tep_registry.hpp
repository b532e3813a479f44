// The TEP registry: which TEPs exist (from config), which are alive, how many clients each
// serves, which one a new client gets, and which mappings each must still be told to withdraw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "dstm_server/config.hpp"
#include "dstm_server/lease.hpp"

namespace dstm_server {

using TepId = std::uint32_t;  // index into the configured TEPs, in config order

// Liveness. A TEP with heartbeat=false is always alive. Otherwise it is alive while it has
// been heard from (an authenticated session opened, a query or a heartbeat) within `timeout`
// seconds: heard at t, it is alive at t + timeout - 1 and dead at t + timeout. When its last
// TCP session closes it is dead at once, whatever it sent before, until it is heard from again.
//
// Assignment policy (docs/dstm-server.md): a new client goes to the live TEP with the fewest
// active leases per unit of weight (leases_a / weight_a < leases_b / weight_b, compared by
// cross-multiplication, so no rounding); ties go to the TEP listed first. A client renewing
// keeps its TEP while that TEP is alive, and is moved to pick() otherwise.
//
// Withdrawals: every mapping that ends (lease expired, released, evicted) is queued for every
// heartbeat TEP, dead or alive, up to kMaxWithdrawals per TEP; past that the queue is dropped
// and the TEP is told to flush its whole cache instead, so memory stays bounded whatever a TEP's
// silence. While a flush is pending nothing more is queued (the flush covers it); the next
// take_withdrawals() returns the flush and a fresh queue starts.
//
// Pure (no clock, no I/O); owned by the daemon's loop thread.
class TepRegistry {
 public:
  static constexpr std::size_t kMaxWithdrawals = 4096;

  TepRegistry(std::vector<TepConfig> teps, Seconds timeout);

  std::size_t size() const noexcept;
  const TepConfig& config(TepId id) const;
  std::optional<TepId> find_by_name(std::string_view name) const noexcept;
  std::optional<TepId> find_by_user(std::string_view user) const noexcept;

  // Liveness events (now: the daemon's clock, seconds). session_opened() and session_closed()
  // come in pairs, one per authenticated TCP session of the TEP (a UDP session has no close the
  // TEP controls: report its traffic with heard()). An unknown id is a caller bug (asserted).
  void session_opened(TepId id, Seconds now);
  void session_closed(TepId id, Seconds now);  // a TCP session of this TEP ended
  void heard(TepId id, Seconds now);           // a query or heartbeat from this TEP
  bool alive(TepId id, Seconds now) const noexcept;
  std::size_t sessions(TepId id) const noexcept;
  std::optional<Seconds> last_heard(TepId id) const noexcept;

  // Load: active leases assigned to each TEP (the daemon keeps these in step with the table).
  void add_lease(TepId id) noexcept;
  void remove_lease(TepId id) noexcept;
  std::uint64_t leases(TepId id) const noexcept;

  // The TEP for a new client; nullopt when none is alive.
  std::optional<TepId> pick(Seconds now) const noexcept;
  // The TEP for a client whose lease names `current` (nullopt or unknown: a new client).
  std::optional<TepId> assign(std::optional<TepId> current, Seconds now) const noexcept;

  // Queues a withdrawal for every heartbeat TEP.
  void withdraw(core::Ipv4Address ipv4);
  struct Withdrawals {
    std::vector<core::Ipv4Address> addresses;  // oldest first, at most `max`
    bool flush = false;  // the queue overflowed since the last take: drop every cached mapping
  };
  // Takes up to `max` queued withdrawals for this TEP, oldest first, and the flush flag (which
  // it clears). A heartbeat=false TEP never has any.
  Withdrawals take_withdrawals(TepId id, std::size_t max);
  std::size_t pending_withdrawals(TepId id) const noexcept;

 private:
  struct State {
    TepConfig config;
    std::size_t sessions = 0;
    std::optional<Seconds> last_heard{};
    bool closed = false;  // the last TCP session closed after last_heard
    std::uint64_t leases = 0;
    std::vector<core::Ipv4Address> withdrawals{};  // a queue: [head, end)
    std::size_t head = 0;
    bool flush = false;
  };
  std::vector<State> teps_;
  Seconds timeout_;
};

}  // namespace dstm_server
