// The binding table and negative cache: flat Robin Hood hash indexes over entry arrays, with
// expiry-ordered heaps for eviction and the bounded sweep.
#include "tep/binding_table.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>
#include <utility>

namespace tep {

void* detail::allocate_large(std::size_t bytes) {
  const std::size_t rounded = (bytes + kHugePage - 1) & ~(kHugePage - 1);
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc{};
  // Before the first touch, so that the kernel can fault in whole huge pages. Only a hint: where
  // transparent huge pages are off this fails harmlessly.
  (void)::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void detail::free_large(void* p) noexcept {
  std::free(p);
}

namespace {

// now + d without overflowing the clock's representation (a lease lifetime is a server's word
// and a TTL a config value: neither may turn into undefined behaviour). d <= 0 gives now.
TimePoint expiry_after(TimePoint now, std::chrono::seconds d) noexcept {
  if (d <= std::chrono::seconds::zero()) return now;
  constexpr auto kMaxSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max());
  if (d >= kMaxSeconds) return TimePoint::max();
  const auto dd = std::chrono::duration_cast<Clock::duration>(d);
  // Only a non-negative now can overflow upwards.
  if (now.time_since_epoch() >= Clock::duration::zero() && dd > TimePoint::max() - now)
    return TimePoint::max();
  return now + dd;
}

// A per-process salt for the hash, taken like Abseil's from the address of a static object
// (randomised by ASLR): which pool addresses share a probe sequence then cannot be worked out
// from outside, so traffic to chosen addresses cannot pile entries into one long cluster. It
// changes only where entries sit in the index: nothing the table reports depends on it.
std::uint32_t process_seed() noexcept {
  static const char anchor = 0;
  std::uint64_t a = reinterpret_cast<std::uintptr_t>(&anchor);
  a ^= a >> 31;
  a *= 0xbf58476d1ce4e5b9ull;
  a ^= a >> 32;
  return static_cast<std::uint32_t>(a);
}

// Makes room for one more element before anything changes, so that the push_back after it
// cannot throw. Grows geometrically but never past `limit`.
template <class T, class A>
void reserve_one(std::vector<T, A>& v, std::size_t limit) {
  if (v.size() < v.capacity()) return;
  v.reserve(std::max(v.size() + 1, std::min(std::max<std::size_t>(16, 2 * v.capacity()), limit)));
}

// The index's smallest capacity: 16 slots, 128 bytes, for up to 8 entries.
constexpr std::size_t kMinIndex = 16;

}  // namespace

// ---- ExpiringMap ----

template <class Value>
BindingTable::ExpiringMap<Value>::ExpiringMap(std::size_t limit) noexcept
    : limit_{std::min(limit, kMaxEntries)}, seed_{process_seed()} {}

template <class Value>
std::size_t BindingTable::ExpiringMap<Value>::slot_of(std::uint32_t h) const noexcept {
  std::size_t i = h & mask_;
  while (index_[i].hash != h || index_[i].entry == kNone) {
    assert(index_[i].entry != kNone);
    i = (i + 1) & mask_;
  }
  return i;
}

template <class Value>
void BindingTable::ExpiringMap<Value>::index_insert(Slot slot) noexcept {
  // The entry being placed takes the slot of any entry closer to its own home ("robs the rich")
  // and that entry moves on, so probe lengths stay short and even.
  std::size_t i = slot.hash & mask_;
  for (std::size_t distance = 0;; ++distance, i = (i + 1) & mask_) {
    Slot& s = index_[i];
    if (s.entry == kNone) {
      s = slot;
      return;
    }
    const std::size_t theirs = (i - s.hash) & mask_;
    if (theirs < distance) {
      std::swap(s, slot);
      distance = theirs;
    }
  }
}

template <class Value>
void BindingTable::ExpiringMap<Value>::index_erase(std::size_t i) noexcept {
  // Backward shift: the entries after the hole that are not at home move back one slot, so the
  // index stays as if the erased entry had never been inserted (no tombstones).
  for (;;) {
    const std::size_t next = (i + 1) & mask_;
    const Slot s = index_[next];
    if (s.entry == kNone || ((next - s.hash) & mask_) == 0) break;
    index_[i] = s;
    i = next;
  }
  index_[i] = Slot{};
}

template <class Value>
void BindingTable::ExpiringMap<Value>::grow(std::size_t capacity) {
  assert((capacity & (capacity - 1)) == 0 && capacity > 2 * size());
  detail::LargeArray<Slot> index(capacity);  // the only step that can throw: nothing changed yet
  index_.swap(index);
  mask_ = capacity - 1;
  // Rebuilt from the entries: the entries and the heap do not move.
  for (std::size_t p = 0; p < entries_.size(); ++p) {
    if (entries_[p].heap_index == kNone) continue;
    index_insert(Slot{.hash = hash(entries_[p].key), .entry = static_cast<Position>(p)});
  }
}

template <class Value>
auto BindingTable::ExpiringMap<Value>::insert(core::Ipv4Address key, const Value& value)
    -> Position {
  assert(!full() && find(key) == kNone);
  // Every allocation first, so that a bad_alloc leaves the map as it was. At most half full: a
  // hit then probes 1.5 slots on average (8 bytes each, mostly one cache line), a miss fewer.
  if ((size() + 1) * 2 > index_.size()) grow(std::max(kMinIndex, 2 * index_.size()));
  if (free_ == kNone) reserve_one(entries_, limit_);
  reserve_one(heap_, limit_);

  Position p = free_;
  const auto item = static_cast<Position>(heap_.size());
  if (p != kNone) {
    free_ = entries_[p].key.to_uint();
    entries_[p] = Entry{.value = value, .key = key, .heap_index = item};
  } else {
    // Entries fill up to size() before there are holes: no more than limit_ of them.
    p = static_cast<Position>(entries_.size());
    entries_.push_back(Entry{.value = value, .key = key, .heap_index = item});
  }
  index_insert(Slot{.hash = hash(key), .entry = p});
  heap_.push_back(HeapItem{.expires = value.expires, .entry = p});
  sift_up(item);
  return p;
}

template <class Value>
void BindingTable::ExpiringMap<Value>::erase(Position p) noexcept {
  assert(p < entries_.size() && entries_[p].heap_index != kNone);
  heap_remove(entries_[p].heap_index);
  index_erase(slot_of(hash(entries_[p].key)));
  entries_[p].heap_index = kNone;
  entries_[p].key = core::Ipv4Address{free_};
  free_ = p;
}

template <class Value>
void BindingTable::ExpiringMap<Value>::set_expires(Position p, TimePoint expires) noexcept {
  entries_[p].value.expires = expires;
  const std::size_t i = entries_[p].heap_index;
  heap_[i].expires = expires;
  heap_fix(i);
}

template <class Value>
void BindingTable::ExpiringMap<Value>::clear() noexcept {
  entries_.clear();
  free_ = kNone;
  heap_.clear();
  std::fill(index_.begin(), index_.end(), Slot{});
}

// The heap: every move of an item goes through place(), which records the item's position in its
// entry, so that an entry can always find its own item.

template <class Value>
void BindingTable::ExpiringMap<Value>::place(std::size_t i, const HeapItem& item) noexcept {
  heap_[i] = item;
  entries_[item.entry].heap_index = static_cast<Position>(i);
}

template <class Value>
void BindingTable::ExpiringMap<Value>::sift_up(std::size_t i) noexcept {
  const HeapItem item = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(item.expires < heap_[parent].expires)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, item);
}

template <class Value>
void BindingTable::ExpiringMap<Value>::sift_down(std::size_t i) noexcept {
  const HeapItem item = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1].expires < heap_[child].expires) ++child;
    if (!(heap_[child].expires < item.expires)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, item);
}

// Restores the order around i after its key changed either way.
template <class Value>
void BindingTable::ExpiringMap<Value>::heap_fix(std::size_t i) noexcept {
  if (i > 0 && heap_[i].expires < heap_[(i - 1) / 2].expires)
    sift_up(i);
  else
    sift_down(i);
}

template <class Value>
void BindingTable::ExpiringMap<Value>::heap_remove(std::size_t i) noexcept {
  assert(i < heap_.size());
  const std::size_t last = heap_.size() - 1;
  if (i != last) {
    place(i, heap_[last]);
    heap_.pop_back();
    heap_fix(i);
  } else {
    heap_.pop_back();
  }
}

template class BindingTable::ExpiringMap<Binding>;
template class BindingTable::ExpiringMap<BindingTable::NegativeEntry>;

// ---- BindingTable ----

BindingTable::BindingTable(BindingLimits limits)
    : limits_{limits}, bindings_{limits.max_bindings}, negative_{limits.max_negative} {}

void BindingTable::erase_binding(Bindings::Position p) noexcept {
  const core::Ipv4Address address = bindings_.key(p);
  bindings_.erase(p);
  if (observer_ != nullptr) observer_->unbound(address);
}

bool BindingTable::is_negative(core::Ipv4Address ipv4, TimePoint now) {
  const auto p = negative_.find(ipv4);
  if (p == Negatives::kNone) return false;
  if (negative_.value(p).expires <= now) {
    negative_.erase(p);
    return false;
  }
  return true;
}

BindingTable::Installed BindingTable::install(core::Ipv4Address ipv4,
                                              const core::Ipv6Address& client,
                                              std::chrono::seconds lifetime, TimePoint now,
                                              BindingOrigin origin) {
  auto p = bindings_.find(ipv4);
  if (lifetime <= std::chrono::seconds::zero()) {
    if (p != Bindings::kNone) erase_binding(p);
    return Installed::Updated;
  }
  if (const auto n = negative_.find(ipv4); n != Negatives::kNone) negative_.erase(n);

  const TimePoint expires = expiry_after(now, lifetime);
  if (p != Bindings::kNone && bindings_.value(p).expires <= now) {
    // Expired but not swept yet: the lease it recorded is over, so this is a new binding.
    erase_binding(p);
    p = Bindings::kNone;
  }
  if (p != Bindings::kNone) {
    Binding& b = bindings_.value(p);
    const bool moved = b.client != client;
    b.client = client;
    if (origin == BindingOrigin::Traffic) b.origin = BindingOrigin::Traffic;
    bindings_.set_expires(p, expires);
    if (moved && observer_ != nullptr) observer_->bound(ipv4, client);
    return Installed::Updated;
  }

  if (bindings_.full()) {
    // The first to expire: if even it is live, all are.
    const auto first = bindings_.first();
    if (first == Bindings::kNone || bindings_.value(first).expires > now) return Installed::Full;
    erase_binding(first);
  }
  bindings_.insert(ipv4,
                   Binding{.client = client, .expires = expires, .learned = now, .origin = origin});
  if (observer_ != nullptr) observer_->bound(ipv4, client);
  return Installed::New;
}

void BindingTable::install_negative(core::Ipv4Address ipv4, TimePoint now) {
  if (const auto b = bindings_.find(ipv4); b != Bindings::kNone) erase_binding(b);
  if (limits_.max_negative == 0) return;

  const TimePoint expires = expiry_after(now, limits_.negative_ttl);
  if (const auto p = negative_.find(ipv4); p != Negatives::kNone) {
    negative_.set_expires(p, expires);
    return;
  }
  if (negative_.full()) negative_.erase(negative_.first());  // the first to expire
  negative_.insert(ipv4, NegativeEntry{.expires = expires});
}

bool BindingTable::erase(core::Ipv4Address ipv4) {
  if (const auto n = negative_.find(ipv4); n != Negatives::kNone) negative_.erase(n);
  const auto p = bindings_.find(ipv4);
  if (p == Bindings::kNone) return false;
  erase_binding(p);
  return true;
}

std::size_t BindingTable::clear() {
  const std::size_t n = bindings_.size();
  bindings_.clear();
  negative_.clear();
  if (observer_ != nullptr) observer_->cleared();
  return n;
}

std::size_t BindingTable::expire(TimePoint now, std::size_t max_work) {
  // Every step examines the entry that expires first: due entries are erased, the first live one
  // ends that map's share. So a call costs O(max_work log n) and never looks at live entries
  // beyond one per map; whatever is still due is the next call's first.
  std::size_t work = 0;
  std::size_t erased = 0;
  for (; work < max_work; ++work) {
    const auto p = bindings_.first();
    if (p == Bindings::kNone) break;
    if (bindings_.value(p).expires > now) {
      ++work;
      break;
    }
    erase_binding(p);
    ++erased;
  }
  for (; work < max_work; ++work) {
    const auto p = negative_.first();
    if (p == Negatives::kNone || negative_.value(p).expires > now) break;
    negative_.erase(p);
  }
  return erased;
}

void BindingTable::for_each(
    const std::function<void(core::Ipv4Address, const Binding&)>& fn) const {
  bindings_.for_each(fn);
}

std::vector<core::Ipv4Address> BindingTable::addresses() const {
  std::vector<core::Ipv4Address> out;
  out.reserve(bindings_.size());
  bindings_.for_each([&](core::Ipv4Address a, const Binding&) { out.push_back(a); });
  return out;
}

}  // namespace tep
