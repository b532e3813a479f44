// Durable lease storage: the small interface the daemon writes through (SQLite today; a
// distributed store such as etcd can implement it later).
#pragma once

#include <cstddef>
#include <functional>

#include "core/address.hpp"
#include "dstm_server/error.hpp"
#include "dstm_server/lease.hpp"

namespace dstm_server {

// Group commit. put() and erase() only queue an operation; commit() writes everything queued
// in one transaction. Each operation's completion runs once the transaction holding it has
// committed (success) or failed (the error; nothing of that transaction is stored), never
// before. A reply that promises a lease to a client is sent from the completion.
//
// The daemon calls commit() once per turn of its event loop: every request that arrived in
// that turn shares one transaction and one flush, and a busy loop makes bigger batches by
// itself. Operations on the same address apply in the order they were queued.
//
// Completions may be empty (nothing to tell, e.g. erasing a reaped lease). A completion may
// queue more operations; they go into the next commit(). Implementations decide where
// completions run: SqliteLeaseStore runs them inside commit(), on the caller's thread.
// Completions must not throw. Operations still queued when a store is destroyed are dropped
// without running their completions: commit() before shutting down.
class LeaseStore {
 public:
  using Completion = std::function<void(const Result<void>&)>;

  virtual ~LeaseStore() = default;

  // Insert or replace the lease stored for lease.ipv4.
  virtual void put(const Lease& lease, Completion done) = 0;
  // Remove the lease stored for ipv4 (no error if there is none).
  virtual void erase(core::Ipv4Address ipv4, Completion done) = 0;
  // Number of operations queued and not yet committed.
  virtual std::size_t pending() const noexcept = 0;
  // Commits every queued operation in one transaction and runs their completions. Returns how
  // many operations were committed (0 when nothing was queued), or the error every completion of
  // the batch also received.
  virtual Result<std::size_t> commit() = 0;

  // Calls visit for every stored lease (start-up; before any put/erase), in no particular
  // order, and returns how many there were. An unreadable row stops the scan with
  // Errc::StoreBadRow; the leases visited before it stay visited.
  virtual Result<std::size_t> load_all(const std::function<void(const Lease&)>& visit) = 0;
};

}  // namespace dstm_server
