// The shared IPv4 pool: prefixes minus exclusions, O(1) allocate/release, least-recently-freed
// reuse.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <span>
#include <vector>

#include "core/address.hpp"
#include "core/error.hpp"
#include "dstm_server/error.hpp"

namespace dstm_server {

struct PoolConfig {
  // The pool (draft-jaehwoon-dstm-multitep-02 section 3: one pool for the domain, announced by
  // every TEP). Must not overlap; order does not matter.
  std::vector<core::Ipv4Prefix> prefixes{};
  // The TEPs' own IPv4 addresses. Excluded when inside a prefix; ignored when outside (the usual
  // case: a TEP's address is on its IPv4 side, not in the pool).
  std::vector<core::Ipv4Address> tep_addresses{};
  // Operator exclusions. Each must lie inside a prefix (an exclusion outside the pool is a
  // mistake in the config and is reported).
  std::vector<core::Ipv4Address> excluded{};
};

// A set of IPv4 addresses handed out one at a time.
//
// Always excluded: the network and broadcast address of each prefix of length /30 or shorter
// (a /31 or /32 has neither, RFC 3021), the TEP addresses inside the pool, and the operator's
// exclusions.
//
// Free structure: every address of every prefix has a dense index (prefixes in ascending
// order, concatenated). Two uint32 arrays over those indices form an intrusive circular
// doubly-linked FIFO of the free addresses: allocate() takes the head, release() appends to the
// tail, allocate_specific() unlinks from the middle, all O(1); an index -> address (or back)
// translation is a binary search over the prefixes, O(log P) for P prefixes. Cost: 8 bytes per
// address (8 MiB for a /12), whatever the utilisation.
//
// Reuse order: a released address goes to the back of the queue, so it is handed out again only
// after every other free address has been handed out once. That keeps a just-released address
// away from a new client as long as possible (stale mappings in TEP caches, remote peers still
// sending to the old client). The order lives in memory only: after a restart the free queue is
// rebuilt in ascending address order.
//
// Not thread-safe: owned by the daemon's event-loop thread.
class Pool {
 public:
  // Upper bound on the addresses of all prefixes together (a /8): indices stay well clear of
  // the list markers and the arrays stay under 128 MiB.
  static constexpr std::uint64_t kMaxAddresses = std::uint64_t{1} << 24;

  // Errors (detail names the offending prefix or address): pool_no_prefix, pool_overlap,
  // pool_too_large, exclusion_outside_pool, pool_empty.
  static Result<Pool> make(const PoolConfig& config);

  // The next free address, least recently freed first. Errc::PoolExhausted, pool unchanged.
  core::Result<core::Ipv4Address> allocate() noexcept;
  // Takes this address out of the free set (sticky renewal, restoring leases from disk).
  // Errc::NotInPool, address_excluded, address_in_use; pool unchanged on error.
  core::Result<void> allocate_specific(core::Ipv4Address a) noexcept;
  // Returns an allocated address to the back of the free queue. Errc::NotInPool,
  // address_excluded, address_not_allocated; pool unchanged on error.
  core::Result<void> release(core::Ipv4Address a) noexcept;

  // In some prefix and not excluded.
  bool contains(core::Ipv4Address a) const noexcept;
  bool is_allocated(core::Ipv4Address a) const noexcept;

  // Utilisation. total() counts usable addresses (exclusions left out); used() + free() ==
  // total().
  std::uint32_t total() const noexcept { return usable_; }
  std::uint32_t used() const noexcept { return used_; }
  std::uint32_t free() const noexcept { return usable_ - used_; }

  // The prefixes in ascending order.
  std::span<const core::Ipv4Prefix> prefixes() const noexcept { return prefixes_; }

  // Dense index of an address in [0, index_count()), for tables kept alongside the pool; the
  // address must be in a prefix (excluded addresses have an index too).
  static constexpr std::uint32_t kNoIndex = 0xffffffffu;
  std::uint32_t index_of(core::Ipv4Address a) const noexcept;  // kNoIndex when in no prefix
  std::uint32_t index_count() const noexcept { return count_; }

 private:
  Pool() = default;
  core::Ipv4Address address_of(std::uint32_t index) const noexcept;
  void unlink(std::uint32_t i) noexcept;
  void push_back(std::uint32_t i) noexcept;

  // next_[i] for an index not on the free list.
  static constexpr std::uint32_t kAllocated = 0xffffffffu;
  static constexpr std::uint32_t kExcluded = 0xfffffffeu;

  std::vector<core::Ipv4Prefix> prefixes_;  // ascending
  std::vector<std::uint32_t> base_;         // base_[k]: index of prefixes_[k].network()
  // Free list: circular, sentinel node at index count_.
  std::vector<std::uint32_t> next_;
  std::vector<std::uint32_t> prev_;
  std::uint32_t count_ = 0;   // addresses in all prefixes
  std::uint32_t usable_ = 0;  // count_ minus exclusions
  std::uint32_t used_ = 0;
};

// "192.0.2.0/24 198.51.100.0/24: 5 of 506 used", for logs and test output.
std::ostream& operator<<(std::ostream& os, const Pool& pool);

}  // namespace dstm_server
