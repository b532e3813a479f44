// The TEP's binding table: leased IPv4 -> client IPv6, learned from the DSTM server's answers,
// each entry living for the lease's remaining lifetime; and a negative cache of addresses the
// server said are not leased. Pure: no clock (callers pass `now`), no I/O, one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/address.hpp"

namespace tep {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Where a binding came from (for the operator: a TEP that only ever sees return traffic has
// only Query bindings).
enum class BindingOrigin : std::uint8_t {
  Traffic,  // a client's packet arrived here and the server confirmed its lease
  Query,    // return traffic to the address arrived here and the server told us who holds it
};

struct Binding {
  core::Ipv6Address client{};
  TimePoint expires{};
  TimePoint learned{};
  BindingOrigin origin = BindingOrigin::Query;
  // Traffic through this TEP for the binding: to_client = encapsulated toward the client,
  // from_client = decapsulated from it.
  std::uint64_t packets_to_client = 0;
  std::uint64_t bytes_to_client = 0;
  std::uint64_t packets_from_client = 0;
  std::uint64_t bytes_from_client = 0;
};

struct BindingLimits {
  std::size_t max_bindings = 1 << 20;
  std::size_t max_negative = 1 << 16;
  std::chrono::seconds negative_ttl{5};
};

class BindingTable {
 public:
  explicit BindingTable(BindingLimits limits = {});
  BindingTable(const BindingTable&) = delete;
  BindingTable& operator=(const BindingTable&) = delete;
  BindingTable(BindingTable&&) = default;
  BindingTable& operator=(BindingTable&&) = default;
  ~BindingTable() = default;

  // The live binding of `ipv4`: nullptr when there is none or it expired at or before `now`
  // (an expired one is erased here). The pointer stays valid until the next non-const call.
  Binding* find(core::Ipv4Address ipv4, TimePoint now);
  // Whether `ipv4` is in the negative cache (entered before now - negative_ttl is gone).
  bool is_negative(core::Ipv4Address ipv4, TimePoint now);

  enum class Installed { New, Updated, Full };
  // Binds ipv4 to client until now + lifetime. An existing live binding keeps its counters and
  // learned time (Updated); its client and expiry are replaced, and its origin only upgraded from
  // Query to Traffic. A binding that expired at or before now counts as gone: New, counters reset.
  // The address leaves the negative cache. Full: the table holds max_bindings live bindings
  // (an expired one is evicted first when there is one) and nothing was installed.
  // A lifetime of 0 (or less) installs nothing and erases any binding: the lease is over. It
  // returns Updated (nothing was learned, nothing dropped) and leaves the negative cache alone.
  Installed install(core::Ipv4Address ipv4, const core::Ipv6Address& client,
                    std::chrono::seconds lifetime, TimePoint now, BindingOrigin origin);
  // Enters ipv4 in the negative cache until now + negative_ttl (and erases its binding); an
  // address already there gets the new expiry. When the cache is full the entry that expires
  // first (an expired one if any) is replaced. max_negative 0 disables the cache.
  void install_negative(core::Ipv4Address ipv4, TimePoint now);

  // A withdrawal: erases the binding (and any negative entry). True if there was a binding.
  bool erase(core::Ipv4Address ipv4);
  // A flush: erases every binding and negative entry. Returns how many bindings there were.
  std::size_t clear();

  // Erases bindings and negative entries that expired at or before now, at most `max_work`
  // entries examined per call (so a sweep never stalls the data path; bindings first, the
  // negative cache with what is left); call it periodically. Entries are examined in expiry
  // order, so a call looks only at due entries (and one that is not) and the next call resumes
  // with what is still due. Returns the number of bindings erased.
  std::size_t expire(TimePoint now, std::size_t max_work = 4096);

  std::size_t size() const noexcept { return bindings_.size(); }
  std::size_t negative_size() const noexcept { return negative_.size(); }
  const BindingLimits& limits() const noexcept { return limits_; }

  // Every binding (expired ones not yet swept included: check `expires`), unordered.
  void for_each(const std::function<void(core::Ipv4Address, const Binding&)>& fn) const;
  // The addresses that have a binding (for revalidation after the server was away).
  std::vector<core::Ipv4Address> addresses() const;

 private:
  // Each table is a hash map for lookups plus a binary min-heap of its entries ordered by expiry,
  // each entry recording its own heap position. The heap gives the exact "entry that expires
  // first" in O(1) and lets any entry be re-keyed or removed in O(log n), so a full table evicts
  // an expired binding (or the negative cache its oldest entry) without scanning, and expire()
  // looks only at entries that are due. Heap items point at map nodes, which stay put when the
  // map rehashes: that is why the table cannot be copied.
  struct Slot {
    Binding binding;
    std::size_t heap_index = 0;
  };
  struct NegativeSlot {
    TimePoint expires{};
    std::size_t heap_index = 0;
  };
  using Map = std::unordered_map<core::Ipv4Address, Slot>;
  using NegativeMap = std::unordered_map<core::Ipv4Address, NegativeSlot>;
  template <class Node>
  struct HeapItem {
    TimePoint expires;  // a copy of the node's expiry: comparisons stay in the heap's memory
    Node* node;
  };

  void erase_binding(Map::iterator it) noexcept;
  void erase_negative(NegativeMap::iterator it) noexcept;

  BindingLimits limits_;
  Map bindings_;
  std::vector<HeapItem<Map::value_type>> heap_;
  NegativeMap negative_;
  std::vector<HeapItem<NegativeMap::value_type>> negative_heap_;
};

}  // namespace tep
