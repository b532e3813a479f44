// The binding table and negative cache: hash maps for lookups, expiry-ordered heaps for eviction.
#include "tep/binding_table.hpp"

#include <algorithm>
#include <cassert>
#include <utility>

namespace tep {

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

// The heaps: a binary min-heap on HeapItem::expires whose items point at map nodes, each node
// holding its item's position (node->second.heap_index). Every move goes through place() so the
// positions stay right. Item is BindingTable::HeapItem<Node>.

template <class Item>
void place(std::vector<Item>& heap, std::size_t i, const Item& item) noexcept {
  heap[i] = item;
  item.node->second.heap_index = i;
}

template <class Item>
void sift_up(std::vector<Item>& heap, std::size_t i) noexcept {
  const Item item = heap[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!(item.expires < heap[parent].expires)) break;
    place(heap, i, heap[parent]);
    i = parent;
  }
  place(heap, i, item);
}

template <class Item>
void sift_down(std::vector<Item>& heap, std::size_t i) noexcept {
  const Item item = heap[i];
  const std::size_t n = heap.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap[child + 1].expires < heap[child].expires) ++child;
    if (!(heap[child].expires < item.expires)) break;
    place(heap, i, heap[child]);
    i = child;
  }
  place(heap, i, item);
}

// Restores the order around i after its key changed either way.
template <class Item>
void fix(std::vector<Item>& heap, std::size_t i) noexcept {
  if (i > 0 && heap[i].expires < heap[(i - 1) / 2].expires)
    sift_up(heap, i);
  else
    sift_down(heap, i);
}

// Makes room for one more item before the map insert, so that the push_back after it cannot
// throw and leave a map node without a heap item. Grows geometrically but never past `limit`.
template <class Item>
void reserve_one(std::vector<Item>& heap, std::size_t limit) {
  if (heap.size() < heap.capacity()) return;
  heap.reserve(
      std::max(heap.size() + 1, std::min(std::max<std::size_t>(16, 2 * heap.capacity()), limit)));
}

template <class Item>
void push(std::vector<Item>& heap, const Item& item) noexcept {
  assert(heap.size() < heap.capacity());
  heap.push_back(item);
  sift_up(heap, heap.size() - 1);
}

template <class Item>
void remove(std::vector<Item>& heap, std::size_t i) noexcept {
  assert(i < heap.size());
  const std::size_t last = heap.size() - 1;
  if (i != last) {
    place(heap, i, heap[last]);
    heap.pop_back();
    fix(heap, i);
  } else {
    heap.pop_back();
  }
}

}  // namespace

BindingTable::BindingTable(BindingLimits limits) : limits_{limits} {}

void BindingTable::erase_binding(Map::iterator it) noexcept {
  remove(heap_, it->second.heap_index);
  bindings_.erase(it);
}

void BindingTable::erase_negative(NegativeMap::iterator it) noexcept {
  remove(negative_heap_, it->second.heap_index);
  negative_.erase(it);
}

Binding* BindingTable::find(core::Ipv4Address ipv4, TimePoint now) {
  const auto it = bindings_.find(ipv4);
  if (it == bindings_.end()) return nullptr;
  if (it->second.binding.expires <= now) {
    erase_binding(it);
    return nullptr;
  }
  return &it->second.binding;
}

bool BindingTable::is_negative(core::Ipv4Address ipv4, TimePoint now) {
  const auto it = negative_.find(ipv4);
  if (it == negative_.end()) return false;
  if (it->second.expires <= now) {
    erase_negative(it);
    return false;
  }
  return true;
}

BindingTable::Installed BindingTable::install(core::Ipv4Address ipv4,
                                              const core::Ipv6Address& client,
                                              std::chrono::seconds lifetime, TimePoint now,
                                              BindingOrigin origin) {
  auto it = bindings_.find(ipv4);
  if (lifetime <= std::chrono::seconds::zero()) {
    if (it != bindings_.end()) erase_binding(it);
    return Installed::Updated;
  }
  if (const auto neg = negative_.find(ipv4); neg != negative_.end()) erase_negative(neg);

  const TimePoint expires = expiry_after(now, lifetime);
  if (it != bindings_.end() && it->second.binding.expires <= now) {
    // Expired but not swept yet: the lease it recorded is over, so this is a new binding.
    erase_binding(it);
    it = bindings_.end();
  }
  if (it != bindings_.end()) {
    Binding& b = it->second.binding;
    b.client = client;
    b.expires = expires;
    if (origin == BindingOrigin::Traffic) b.origin = BindingOrigin::Traffic;
    const std::size_t i = it->second.heap_index;
    heap_[i].expires = expires;
    fix(heap_, i);
    return Installed::Updated;
  }

  if (bindings_.size() >= limits_.max_bindings) {
    // The heap's top is the binding that expires first: if even it is live, all are.
    if (heap_.empty() || heap_.front().expires > now) return Installed::Full;
    erase_binding(bindings_.find(heap_.front().node->first));
  }
  reserve_one(heap_, limits_.max_bindings);
  auto [node, inserted] = bindings_.try_emplace(
      ipv4, Slot{.binding = Binding{
                     .client = client, .expires = expires, .learned = now, .origin = origin}});
  assert(inserted);
  (void)inserted;
  push(heap_, HeapItem<Map::value_type>{.expires = expires, .node = &*node});
  return Installed::New;
}

void BindingTable::install_negative(core::Ipv4Address ipv4, TimePoint now) {
  if (const auto b = bindings_.find(ipv4); b != bindings_.end()) erase_binding(b);
  if (limits_.max_negative == 0) return;

  const TimePoint expires = expiry_after(now, limits_.negative_ttl);
  if (const auto it = negative_.find(ipv4); it != negative_.end()) {
    it->second.expires = expires;
    const std::size_t i = it->second.heap_index;
    negative_heap_[i].expires = expires;
    fix(negative_heap_, i);
    return;
  }
  if (negative_.size() >= limits_.max_negative) {
    // The top expires first (and is expired if any entry is).
    erase_negative(negative_.find(negative_heap_.front().node->first));
  }
  reserve_one(negative_heap_, limits_.max_negative);
  auto [node, inserted] = negative_.try_emplace(ipv4, NegativeSlot{.expires = expires});
  assert(inserted);
  (void)inserted;
  push(negative_heap_, HeapItem<NegativeMap::value_type>{.expires = expires, .node = &*node});
}

bool BindingTable::erase(core::Ipv4Address ipv4) {
  if (const auto neg = negative_.find(ipv4); neg != negative_.end()) erase_negative(neg);
  const auto it = bindings_.find(ipv4);
  if (it == bindings_.end()) return false;
  erase_binding(it);
  return true;
}

std::size_t BindingTable::clear() {
  const std::size_t n = bindings_.size();
  bindings_.clear();
  heap_.clear();
  negative_.clear();
  negative_heap_.clear();
  return n;
}

std::size_t BindingTable::expire(TimePoint now, std::size_t max_work) {
  // Every step examines the top of a heap: due entries are erased, the first live one ends
  // that heap's share. So a call costs O(max_work log n) and never looks at live entries beyond
  // one per heap; whatever is still due is the next call's top.
  std::size_t work = 0;
  std::size_t erased = 0;
  for (; work < max_work && !heap_.empty(); ++work) {
    if (heap_.front().expires > now) {
      ++work;
      break;
    }
    erase_binding(bindings_.find(heap_.front().node->first));
    ++erased;
  }
  for (; work < max_work && !negative_heap_.empty(); ++work) {
    if (negative_heap_.front().expires > now) break;
    erase_negative(negative_.find(negative_heap_.front().node->first));
  }
  return erased;
}

void BindingTable::for_each(
    const std::function<void(core::Ipv4Address, const Binding&)>& fn) const {
  for (const auto& [address, slot] : bindings_) fn(address, slot.binding);
}

std::vector<core::Ipv4Address> BindingTable::addresses() const {
  std::vector<core::Ipv4Address> out;
  out.reserve(bindings_.size());
  for (const auto& [address, slot] : bindings_) out.push_back(address);
  return out;
}

}  // namespace tep
