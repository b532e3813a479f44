// The lease table: who holds which pool address, sticky renewal, expiry with a grace period.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/error.hpp"
#include "dstm_server/lease.hpp"
#include "dstm_server/pool.hpp"

namespace dstm_server {

// A lease as stored in the table, without copying its strings. Valid until the next
// non-const call on the table.
struct LeaseView {
  core::Ipv4Address ipv4;
  core::Ipv6Address client;
  std::string_view identity;
  std::string_view tep;
  Seconds granted_at = 0;
  Seconds expires_at = 0;
  LeaseState state = LeaseState::active;

  Lease to_lease() const;
};

std::ostream& operator<<(std::ostream& os, const LeaseView& v);

// Leases over a Pool. A client is the key (client IPv6 address, identity); an address belongs
// to at most one lease, and a key to at most one lease.
//
// Stickiness: acquire() for a key that already holds a lease renews it and returns the same
// address, whether the lease is active or expired within the grace period. After expiry
// (reap()) the address stays reserved for its client for `grace` seconds; it is handed to
// another client earlier only when the pool has no free address at all, and then the lease
// that expired longest ago gives up its address (Grant::evicted). So the grace period never
// causes a refusal while addresses sit reserved.
//
// The table holds no clock: every call that needs the time takes `now`. It does no I/O: the
// daemon persists what the calls return (put a granted/renewed/expired lease, erase a released,
// evicted or removed one) through a LeaseStore.
//
// Costs: lookups by address and by key are O(1) (plus the pool's O(log prefixes) address
// translation); acquire/renew/release O(1) amortised plus O(log n) for the expiry heap; reap
// O(k log n) for the k leases it returns. Memory per lease: a 48-byte record, a 4-byte entry in
// the key index (open addressing), 16-32 bytes of expiry-heap entries, and the identity string
// on the heap when it is not empty; plus 4 bytes per pool address for the address index and the
// pool's own 8.
//
// Not thread-safe: owned by the daemon's event-loop thread.
class LeaseTable {
 public:
  static constexpr std::size_t kMaxIdentity = 255;

  // grace: seconds an expired lease keeps its address for its client; 0 frees it at expiry.
  LeaseTable(Pool pool, Seconds grace);
  ~LeaseTable();
  LeaseTable(LeaseTable&&) noexcept;
  LeaseTable& operator=(LeaseTable&&) noexcept;

  struct Grant {
    Lease lease;
    // The key already held this address (active, or expired within the grace period).
    bool renewed = false;
    // A lease in its grace period whose address went to this client because the pool was
    // exhausted; it no longer exists (erase it from the store).
    std::optional<Lease> evicted;
  };
  // The TSP create: renews the key's lease (same address, new expiry, this TEP) or grants a new
  // one expiring at now + lifetime. A renewal keeps granted_at while the lease is active and
  // restarts it when the lease had expired. Errors (table unchanged): bad_lifetime,
  // identity_too_long, too_many_teps, pool_exhausted.
  core::Result<Grant> acquire(const core::Ipv6Address& client, std::string_view identity,
                              std::string_view tep, Seconds now, Seconds lifetime);
  // Extends the key's existing lease (reactivating it if it expired within the grace period);
  // never allocates. Errors (table unchanged): lease_not_found, bad_lifetime.
  core::Result<Lease> renew(const core::Ipv6Address& client, std::string_view identity, Seconds now,
                            Seconds lifetime);
  // Ends a lease and returns its address to the pool at once (no grace). Returns the lease as
  // it was. Errc::LeaseNotFound.
  core::Result<Lease> release(core::Ipv4Address ipv4);
  core::Result<Lease> release(const core::Ipv6Address& client, std::string_view identity);

  // Puts back a lease read from the store at start-up, in whatever state it was stored; call
  // reap(now) once everything is restored. Errors (table unchanged): not_in_pool,
  // address_excluded (the pool configuration changed), address_in_use, lease_conflict,
  // identity_too_long, too_many_teps.
  core::Result<void> restore(const Lease& lease);

  struct Reaped {
    // Leases that were active and have expired (expires_at <= now), now in state expired:
    // withdraw their mappings from the TEPs and put them to the store.
    std::vector<Lease> expired;
    // Leases whose grace period is over (expires_at + grace <= now): gone, address back in the
    // pool; erase them from the store. With grace 0, or after a long pause, a lease can appear
    // in both lists; apply the store operations in this order (put, then erase).
    std::vector<Lease> removed;
  };
  Reaped reap(Seconds now);

  // A time no later than the next expiry or end of grace (reap() has nothing to do before it);
  // nullopt when the table is empty.
  std::optional<Seconds> next_deadline() const noexcept;

  std::optional<LeaseView> find(core::Ipv4Address ipv4) const noexcept;
  std::optional<LeaseView> find(const core::Ipv6Address& client,
                                std::string_view identity) const noexcept;
  // Visits every lease, in no particular order. The visitor must not modify the table.
  void for_each(const std::function<void(const LeaseView&)>& visit) const;

  std::size_t size() const noexcept;  // active + expired (held)
  std::size_t active() const noexcept;
  std::size_t held() const noexcept;  // expired, address reserved for the grace period
  Seconds grace() const noexcept;
  const Pool& pool() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const LeaseTable::Grant& g);

}  // namespace dstm_server
