// The TEP's binding table: leased IPv4 -> client IPv6, learned from the DSTM server's answers,
// each entry living for the lease's remaining lifetime; and a negative cache of addresses the
// server said are not leased. Pure: no clock (callers pass `now`), no I/O, one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/address.hpp"
#include "core/hash.hpp"

namespace tep {

namespace detail {
// Large arrays of the binding table: at 2 MiB and more, aligned to 2 MiB and marked for
// transparent huge pages (madvise), so that random lookups in a table of a million bindings do
// not miss the TLB on every access. Smaller ones come from operator new.
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;
void* allocate_large(std::size_t bytes);  // throws std::bad_alloc
void free_large(void* p) noexcept;

template <class T>
struct LargeArrayAllocator {
  using value_type = T;
  LargeArrayAllocator() noexcept = default;
  template <class U>
  LargeArrayAllocator(const LargeArrayAllocator<U>&) noexcept {}  // implicit: rebinding
  T* allocate(std::size_t n) {
    if (n * sizeof(T) < kHugePage) return std::allocator<T>{}.allocate(n);
    return static_cast<T*>(allocate_large(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePage)
      std::allocator<T>{}.deallocate(p, n);
    else
      free_large(p);
  }
  template <class U>
  bool operator==(const LargeArrayAllocator<U>&) const noexcept {
    return true;
  }
};
template <class T>
using LargeArray = std::vector<T, LargeArrayAllocator<T>>;
}  // namespace detail

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

// Told about every change to the set of bindings, so that a copy of the table (the BPF fast
// path's binding map) can mirror it. Called synchronously once the table is consistent again, on
// the table's thread; an observer must not throw and must not call the table's non-const members.
class BindingObserver {
 public:
  virtual ~BindingObserver() = default;
  // A new binding, or a binding whose client changed (not a refresh of its lifetime only).
  virtual void bound(core::Ipv4Address address, const core::Ipv6Address& client) = 0;
  // A binding left the table for any reason except clear(): erase(), expiry (seen by find(),
  // install(), expire() or evicted by install() when full), an install() with a lifetime of 0,
  // install_negative(). Installing over an expired, unswept binding gives unbound() then bound().
  virtual void unbound(core::Ipv4Address address) = 0;
  // clear(): every binding is gone (no unbound() for each).
  virtual void cleared() = 0;
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
  // Inline: the data path calls it for every packet.
  Binding* find(core::Ipv4Address ipv4, TimePoint now) {
    const auto p = bindings_.find(ipv4);
    if (p == Bindings::kNone) return nullptr;
    Binding& b = bindings_.value(p);
    if (b.expires <= now) [[unlikely]] {
      erase_binding(p);
      return nullptr;
    }
    return &b;
  }
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
  // Keeps the memory it has (a table refills after a flush).
  std::size_t clear();

  // Erases bindings and negative entries that expired at or before now, at most `max_work`
  // entries examined per call (so a sweep never stalls the data path; bindings first, the
  // negative cache with what is left); call it periodically. Entries are examined in expiry
  // order, so a call looks only at due entries (and one that is not) and the next call resumes
  // with what is still due. Returns the number of bindings erased.
  std::size_t expire(TimePoint now, std::size_t max_work = 4096);

  // The observer told about every change to the bindings from now on (nullptr: none). Not
  // owned: it must outlive the table or be replaced first. The negative cache is not reported.
  void set_observer(BindingObserver* observer) noexcept { observer_ = observer; }

  std::size_t size() const noexcept { return bindings_.size(); }
  std::size_t negative_size() const noexcept { return negative_.size(); }
  const BindingLimits& limits() const noexcept { return limits_; }

  // Every binding (expired ones not yet swept included: check `expires`), unordered.
  void for_each(const std::function<void(core::Ipv4Address, const Binding&)>& fn) const;
  // The addresses that have a binding (for revalidation after the server was away).
  std::vector<core::Ipv4Address> addresses() const;

 private:
  // What the negative cache keeps per address.
  struct NegativeEntry {
    TimePoint expires{};
  };

  // One expiring map (the bindings and the negative cache are two of them): IPv4 -> Value, where
  // Value has a `TimePoint expires`, in three flat arrays and no per-entry allocation.
  //  - index_: an open-addressed Robin Hood hash table (linear probing, backward-shift deletion,
  //    power-of-two capacity, at most half full) of 8-byte slots {hash, entry position}. The hash
  //    is a bijective mix of the key, so it stands for the key (no entry is read to reject a
  //    slot) and gives the home slot. A lookup that misses stops at the first slot closer to its
  //    home than the probe is to the key's.
  //  - entries_: the entries, each with its key and its heap position. An entry never moves
  //    (until the array grows): an erased one becomes a hole on a free list that the next insert
  //    takes. So Binding pointers stay put, and an erase only repoints what moves in the heap.
  //  - heap_: a binary min-heap of {expires, entry position} giving the entry that expires first
  //    in O(1) and letting any entry be re-keyed or removed in O(log n); every item that moves
  //    writes its new position into its entry.
  // Index slots move (Robin Hood insertion, backward shift, rehash) without touching entries or
  // the heap. Why not the entries in the hash table itself: an 80-byte Binding slot at a load
  // that keeps probes short costs ~1.7x the memory, and probing over 80-byte slots reads more
  // lines than over 8-byte ones (measured: see docs/benchmarks.md).
  // Positions are 32-bit: at most kMaxEntries entries whatever the limit says.
  template <class Value>
  class ExpiringMap {
   public:
    using Position = std::uint32_t;
    static constexpr Position kNone = ~Position{0};
    static constexpr std::size_t kMaxEntries = std::size_t{1} << 31;

    explicit ExpiringMap(std::size_t limit) noexcept;

    // The entry of `key`, kNone when there is none.
    Position find(core::Ipv4Address key) const noexcept {
      if (heap_.empty()) return kNone;  // also: no index allocated yet
      const std::uint32_t h = hash(key);
      std::size_t i = h & mask_;
      for (std::size_t distance = 0;; ++distance, i = (i + 1) & mask_) {
        const Slot s = index_[i];
        if (s.hash == h && s.entry != kNone) return s.entry;
        if (s.entry == kNone || ((i - s.hash) & mask_) < distance) return kNone;
      }
    }
    // Adds an entry for a key that has none (precondition: !full()). Throws only bad_alloc, and
    // then changes nothing. Returns its position.
    Position insert(core::Ipv4Address key, const Value& value);
    void erase(Position p) noexcept;
    // value.expires = expires, keeping the heap in order.
    void set_expires(Position p, TimePoint expires) noexcept;
    void clear() noexcept;

    // The entry that expires first; kNone when empty.
    Position first() const noexcept { return heap_.empty() ? kNone : heap_.front().entry; }
    Value& value(Position p) noexcept { return entries_[p].value; }
    core::Ipv4Address key(Position p) const noexcept { return entries_[p].key; }
    std::size_t size() const noexcept { return heap_.size(); }  // one heap item per entry
    bool full() const noexcept { return heap_.size() >= limit_; }
    template <class F>
    void for_each(F&& fn) const {
      for (const Entry& e : entries_)
        if (e.heap_index != kNone) fn(e.key, e.value);
    }

   private:
    struct Slot {
      std::uint32_t hash = 0;
      Position entry = kNone;  // kNone: empty
    };
    struct Entry {
      Value value;
      // A hole (heap_index kNone) keeps the next hole's position here (kNone: the last).
      core::Ipv4Address key;
      Position heap_index;
    };
    struct HeapItem {
      TimePoint expires;  // a copy of the entry's expiry: comparisons stay in the heap's memory
      Position entry;
    };

    // MurmurHash3's 32-bit finalizer over the salted key: every input bit reaches every output
    // bit, so sequential pool addresses spread over the whole index; and it is a bijection
    // (xor-shifts and odd multipliers are invertible), so equal hashes mean equal keys.
    std::uint32_t hash(core::Ipv4Address key) const noexcept {
      return core::mix32(key.to_uint() ^ seed_);
    }
    std::size_t slot_of(std::uint32_t h) const noexcept;  // the index slot holding h
    void index_insert(Slot slot) noexcept;
    void index_erase(std::size_t i) noexcept;
    void grow(std::size_t capacity);
    void place(std::size_t i, const HeapItem& item) noexcept;
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    void heap_fix(std::size_t i) noexcept;
    void heap_remove(std::size_t i) noexcept;

    std::size_t limit_;
    std::uint32_t seed_;
    std::size_t mask_ = 0;   // index_.size() - 1 (index_ is empty or a power of two)
    Position free_ = kNone;  // the first hole in entries_
    detail::LargeArray<Slot> index_;
    detail::LargeArray<Entry> entries_;
    detail::LargeArray<HeapItem> heap_;
  };
  using Bindings = ExpiringMap<Binding>;
  using Negatives = ExpiringMap<NegativeEntry>;

  // Every binding leaves through here: the observer hears of it.
  void erase_binding(Bindings::Position p) noexcept;

  BindingLimits limits_;
  Bindings bindings_;
  Negatives negative_;
  BindingObserver* observer_ = nullptr;
};

}  // namespace tep
