// The lease table: compact records in chunks, an open-addressing key index, lazy expiry heaps.
#include "dstm_server/lease_table.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>

namespace dstm_server {
namespace {

constexpr std::uint32_t kNoSlot = 0xffffffffu;
constexpr std::uint8_t kFreeSlot = 0;  // Record::state of an unused slot

// One lease in 48 bytes: strings are replaced by an interned TEP number and an owned identity
// buffer (null for the anonymous identity, which most deployments use for every lease).
struct Record {
  std::uint32_t ipv4 = 0;
  core::Ipv6Address client;
  std::uint8_t state = kFreeSlot;  // a LeaseState, or kFreeSlot
  std::uint8_t identity_len = 0;
  std::uint16_t tep = 0;
  Seconds granted_at = 0;
  Seconds expires_at = 0;
  std::unique_ptr<char[]> identity;

  std::string_view identity_view() const noexcept { return {identity.get(), identity_len}; }
};
static_assert(sizeof(Record) <= 48, "keep the lease record compact");

// Slot-addressed storage in fixed chunks: growing never moves records and never needs the
// old and the new array at once (a vector of 1M records would peak at 3x while reallocating).
class Records {
 public:
  static constexpr std::uint32_t kChunkBits = 12;
  static constexpr std::uint32_t kChunk = 1u << kChunkBits;

  Record& operator[](std::uint32_t slot) noexcept {
    return chunks_[slot >> kChunkBits][slot & (kChunk - 1)];
  }
  const Record& operator[](std::uint32_t slot) const noexcept {
    return chunks_[slot >> kChunkBits][slot & (kChunk - 1)];
  }
  std::uint32_t allocate() {
    if (!free_.empty()) {
      const auto slot = free_.back();
      free_.pop_back();
      return slot;
    }
    if ((end_ & (kChunk - 1)) == 0) chunks_.push_back(std::make_unique<Record[]>(kChunk));
    return end_++;
  }
  // The most recently freed slot is reused first, which keeps the used slots dense.
  void free(std::uint32_t slot) { free_.push_back(slot); }
  std::uint32_t end() const noexcept { return end_; }

 private:
  std::vector<std::unique_ptr<Record[]>> chunks_;
  std::vector<std::uint32_t> free_;
  std::uint32_t end_ = 0;  // slots ever handed out
};

struct KeyRef {
  const core::Ipv6Address& client;
  std::string_view identity;
};

std::size_t hash_key(const core::Ipv6Address& client, std::string_view identity) noexcept {
  std::size_t h = std::hash<core::Ipv6Address>{}(client);
  if (!identity.empty()) {
    h ^= std::hash<std::string_view>{}(identity) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return h;
}

// The key index stores slots (4 bytes each) and hashes/compares them through the records, so
// the key is not stored twice. Lookups by KeyRef are heterogeneous.
struct KeyHash {
  using is_transparent = void;
  const Records* records;
  std::size_t operator()(std::uint32_t slot) const noexcept {
    const auto& r = (*records)[slot];
    return hash_key(r.client, r.identity_view());
  }
  std::size_t operator()(const KeyRef& k) const noexcept { return hash_key(k.client, k.identity); }
};

struct KeyEq {
  using is_transparent = void;
  const Records* records;
  bool operator()(std::uint32_t a, std::uint32_t b) const noexcept {
    const auto& ra = (*records)[a];
    const auto& rb = (*records)[b];
    return ra.client == rb.client && ra.identity_view() == rb.identity_view();
  }
  bool operator()(const KeyRef& k, std::uint32_t slot) const noexcept {
    const auto& r = (*records)[slot];
    return r.client == k.client && r.identity_view() == k.identity;
  }
  bool operator()(std::uint32_t slot, const KeyRef& k) const noexcept { return (*this)(k, slot); }
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

// A min-heap of (deadline, slot) with lazy deletion: renewing or removing a lease leaves its old
// entry behind, and an entry is acted on only if the slot still holds a lease in the expected
// state with expires_at == deadline. Any entry that passes that check is genuinely due, even if
// the slot has since been reused, so stale entries are harmless; compact() bounds their number.
struct Deadline {
  Seconds at;
  std::uint32_t slot;
};
struct LaterFirst {
  bool operator()(const Deadline& a, const Deadline& b) const noexcept { return a.at > b.at; }
};

class DeadlineHeap {
 public:
  void push(Deadline d) {
    heap_.push_back(d);
    std::push_heap(heap_.begin(), heap_.end(), LaterFirst{});
  }
  bool empty() const noexcept { return heap_.empty(); }
  const Deadline& top() const noexcept { return heap_.front(); }
  Deadline pop() noexcept {
    std::pop_heap(heap_.begin(), heap_.end(), LaterFirst{});
    const auto d = heap_.back();
    heap_.pop_back();
    return d;
  }
  std::size_t size() const noexcept { return heap_.size(); }
  void clear() noexcept { heap_.clear(); }
  void add_unordered(Deadline d) { heap_.push_back(d); }
  void rebuild() { std::make_heap(heap_.begin(), heap_.end(), LaterFirst{}); }

 private:
  std::vector<Deadline> heap_;
};

}  // namespace

Lease LeaseView::to_lease() const {
  return Lease{.ipv4 = ipv4,
               .client = client,
               .identity = std::string{identity},
               .tep = std::string{tep},
               .granted_at = granted_at,
               .expires_at = expires_at,
               .state = state};
}

std::ostream& operator<<(std::ostream& os, const LeaseView& v) {
  return os << v.to_lease();
}

std::ostream& operator<<(std::ostream& os, const LeaseTable::Grant& g) {
  os << g.lease << (g.renewed ? " (renewed)" : "");
  if (g.evicted) os << " (evicted " << *g.evicted << ")";
  return os;
}

struct LeaseTable::Impl {
  Impl(Pool p, Seconds g)
      : pool{std::move(p)},
        grace{g},
        slot_by_index(pool.index_count(), kNoSlot),
        keys(0, KeyHash{&records}, KeyEq{&records}) {
    // There are never more leases than pool addresses: sizing the key index for all of them
    // up front means it never rehashes, so no acquire() ever stalls the event loop for a
    // rehash of a million entries (and a restart does not rehash 20 times). Cost: about 5 bytes
    // per pool address of address space, of which only the 1-byte-per-slot metadata is touched
    // until leases fill it.
    keys.reserve(pool.total());
  }

  Pool pool;
  Seconds grace;
  Records records;
  std::vector<std::uint32_t> slot_by_index;  // pool index -> slot
  boost::unordered_flat_set<std::uint32_t, KeyHash, KeyEq> keys;
  std::vector<std::string> teps;
  boost::unordered_flat_map<std::string, std::uint16_t, StringHash, std::equal_to<>> tep_ids;
  DeadlineHeap active_heap;  // active leases by expires_at
  DeadlineHeap held_heap;    // expired leases by expires_at (due at expires_at + grace)
  std::size_t active = 0;
  std::size_t held = 0;

  LeaseView view(const Record& r) const noexcept {
    return LeaseView{.ipv4 = core::Ipv4Address{r.ipv4},
                     .client = r.client,
                     .identity = r.identity_view(),
                     .tep = teps[r.tep],
                     .granted_at = r.granted_at,
                     .expires_at = r.expires_at,
                     .state = static_cast<LeaseState>(r.state)};
  }
  Lease lease(std::uint32_t slot) const { return view(records[slot]).to_lease(); }

  std::uint32_t find_key(const core::Ipv6Address& client, std::string_view identity) const {
    const auto it = keys.find(KeyRef{client, identity});
    return it == keys.end() ? kNoSlot : *it;
  }
  std::uint32_t find_address(core::Ipv4Address a) const noexcept {
    const auto i = pool.index_of(a);
    return i == Pool::kNoIndex ? kNoSlot : slot_by_index[i];
  }

  core::Result<std::uint16_t> intern_tep(std::string_view name) {
    if (const auto it = tep_ids.find(name); it != tep_ids.end()) return it->second;
    if (teps.size() > std::numeric_limits<std::uint16_t>::max()) {
      return make_error_code(Errc::TooManyTeps);
    }
    const auto id = static_cast<std::uint16_t>(teps.size());
    teps.emplace_back(name);
    tep_ids.emplace(std::string{name}, id);
    return id;
  }

  // Fills a fresh slot; the address must already be allocated in the pool and the key absent.
  std::uint32_t insert(core::Ipv4Address ipv4, const core::Ipv6Address& client,
                       std::string_view identity, std::uint16_t tep, Seconds granted_at,
                       Seconds expires_at, LeaseState state) {
    const auto slot = records.allocate();
    auto& r = records[slot];
    r.ipv4 = ipv4.to_uint();
    r.client = client;
    r.state = static_cast<std::uint8_t>(state);
    r.identity_len = static_cast<std::uint8_t>(identity.size());
    r.tep = tep;
    r.granted_at = granted_at;
    r.expires_at = expires_at;
    if (!identity.empty()) {
      r.identity = std::make_unique_for_overwrite<char[]>(identity.size());
      std::memcpy(r.identity.get(), identity.data(), identity.size());
    }
    const auto index = pool.index_of(ipv4);
    assert(index != Pool::kNoIndex && slot_by_index[index] == kNoSlot);
    slot_by_index[index] = slot;
    [[maybe_unused]] const bool inserted = keys.insert(slot).second;
    assert(inserted);
    if (state == LeaseState::active) {
      ++active;
      push_active(slot);
    } else {
      ++held;
      push_held(slot);
    }
    return slot;
  }

  // Forgets the lease in `slot`; its address stays allocated in the pool (the caller releases
  // it or hands it on).
  void remove(std::uint32_t slot) {
    auto& r = records[slot];
    [[maybe_unused]] const auto erased = keys.erase(slot);
    assert(erased == 1);
    slot_by_index[pool.index_of(core::Ipv4Address{r.ipv4})] = kNoSlot;
    if (r.state == static_cast<std::uint8_t>(LeaseState::active)) {
      --active;
    } else {
      --held;
    }
    r.state = kFreeSlot;
    r.identity.reset();
    r.identity_len = 0;
    records.free(slot);
  }

  bool due_entry(const Deadline& d, LeaseState state) const noexcept {
    if (d.slot >= records.end()) return false;
    const auto& r = records[d.slot];
    return r.state == static_cast<std::uint8_t>(state) && r.expires_at == d.at;
  }

  void push_active(std::uint32_t slot) {
    active_heap.push({records[slot].expires_at, slot});
    compact(active_heap, active, LeaseState::active);
  }
  void push_held(std::uint32_t slot) {
    held_heap.push({records[slot].expires_at, slot});
    compact(held_heap, held, LeaseState::expired);
  }
  // Renewals leave stale entries behind; once they outnumber the live ones, rebuild from the
  // records (O(n), amortised over at least n renewals).
  void compact(DeadlineHeap& heap, std::size_t live, LeaseState state) {
    if (heap.size() <= 2 * live + 1024) return;
    heap.clear();
    for (std::uint32_t slot = 0; slot < records.end(); ++slot) {
      const auto& r = records[slot];
      if (r.state == static_cast<std::uint8_t>(state)) heap.add_unordered({r.expires_at, slot});
    }
    heap.rebuild();
  }

  // The held lease that expired longest ago, taken off the held heap; kNoSlot when none.
  std::uint32_t oldest_held() {
    while (!held_heap.empty()) {
      const auto d = held_heap.pop();
      if (due_entry(d, LeaseState::expired)) return d.slot;
    }
    return kNoSlot;
  }

  // Shared by acquire() and renew() for an existing lease.
  void extend(std::uint32_t slot, std::uint16_t tep, Seconds now, Seconds lifetime) {
    auto& r = records[slot];
    if (r.state == static_cast<std::uint8_t>(LeaseState::expired)) {
      r.state = static_cast<std::uint8_t>(LeaseState::active);
      r.granted_at = now;
      --held;
      ++active;
    }
    r.tep = tep;
    r.expires_at = now + lifetime;
    push_active(slot);
  }
};

namespace {

bool bad_lifetime(Seconds now, Seconds lifetime) noexcept {
  return lifetime <= 0 || now > std::numeric_limits<Seconds>::max() - lifetime;
}

}  // namespace

LeaseTable::LeaseTable(Pool pool, Seconds grace)
    : impl_{std::make_unique<Impl>(std::move(pool), grace)} {
  assert(grace >= 0);
}
LeaseTable::~LeaseTable() = default;
LeaseTable::LeaseTable(LeaseTable&&) noexcept = default;
LeaseTable& LeaseTable::operator=(LeaseTable&&) noexcept = default;

core::Result<LeaseTable::Grant> LeaseTable::acquire(const core::Ipv6Address& client,
                                                    std::string_view identity, std::string_view tep,
                                                    Seconds now, Seconds lifetime) {
  auto& m = *impl_;
  if (bad_lifetime(now, lifetime)) return make_error_code(Errc::BadLifetime);
  if (identity.size() > kMaxIdentity) return make_error_code(Errc::IdentityTooLong);
  const auto tep_id = m.intern_tep(tep);
  if (!tep_id) return tep_id.error();

  if (const auto slot = m.find_key(client, identity); slot != kNoSlot) {
    m.extend(slot, *tep_id, now, lifetime);
    return Grant{.lease = m.lease(slot), .renewed = true, .evicted = std::nullopt};
  }

  Grant grant;
  core::Ipv4Address address;
  if (auto a = m.pool.allocate()) {
    address = *a;
  } else {
    // Exhausted: take the address of the lease that left its active period longest ago.
    const auto victim = m.oldest_held();
    if (victim == kNoSlot) return make_error_code(Errc::PoolExhausted);
    grant.evicted = m.lease(victim);
    address = core::Ipv4Address{m.records[victim].ipv4};
    m.remove(victim);  // the address stays allocated and passes to the new lease
  }
  const auto slot =
      m.insert(address, client, identity, *tep_id, now, now + lifetime, LeaseState::active);
  grant.lease = m.lease(slot);
  return grant;
}

core::Result<Lease> LeaseTable::renew(const core::Ipv6Address& client, std::string_view identity,
                                      Seconds now, Seconds lifetime) {
  auto& m = *impl_;
  const auto slot = m.find_key(client, identity);
  if (slot == kNoSlot) return make_error_code(Errc::LeaseNotFound);
  if (bad_lifetime(now, lifetime)) return make_error_code(Errc::BadLifetime);
  m.extend(slot, m.records[slot].tep, now, lifetime);
  return m.lease(slot);
}

core::Result<Lease> LeaseTable::release(core::Ipv4Address ipv4) {
  auto& m = *impl_;
  const auto slot = m.find_address(ipv4);
  if (slot == kNoSlot) return make_error_code(Errc::LeaseNotFound);
  auto out = m.lease(slot);
  m.remove(slot);
  [[maybe_unused]] const auto released = m.pool.release(ipv4);
  assert(released);
  return out;
}

core::Result<Lease> LeaseTable::release(const core::Ipv6Address& client,
                                        std::string_view identity) {
  const auto slot = impl_->find_key(client, identity);
  if (slot == kNoSlot) return make_error_code(Errc::LeaseNotFound);
  return release(core::Ipv4Address{impl_->records[slot].ipv4});
}

core::Result<void> LeaseTable::restore(const Lease& lease) {
  auto& m = *impl_;
  assert(lease.state == LeaseState::active || lease.state == LeaseState::expired);
  if (lease.identity.size() > kMaxIdentity) return make_error_code(Errc::IdentityTooLong);
  if (m.find_key(lease.client, lease.identity) != kNoSlot) {
    return make_error_code(Errc::LeaseConflict);
  }
  const auto tep_id = m.intern_tep(lease.tep);
  if (!tep_id) return tep_id.error();
  if (auto r = m.pool.allocate_specific(lease.ipv4); !r) return r.error();
  m.insert(lease.ipv4, lease.client, lease.identity, *tep_id, lease.granted_at, lease.expires_at,
           lease.state);
  return {};
}

LeaseTable::Reaped LeaseTable::reap(Seconds now) {
  auto& m = *impl_;
  Reaped out;
  while (!m.active_heap.empty() && m.active_heap.top().at <= now) {
    const auto d = m.active_heap.pop();
    if (!m.due_entry(d, LeaseState::active)) continue;
    m.records[d.slot].state = static_cast<std::uint8_t>(LeaseState::expired);
    --m.active;
    ++m.held;
    m.push_held(d.slot);
    out.expired.push_back(m.lease(d.slot));
  }
  // Due when expires_at + grace <= now, written so that it cannot overflow.
  while (!m.held_heap.empty() && m.held_heap.top().at <= now - m.grace) {
    const auto d = m.held_heap.pop();
    if (!m.due_entry(d, LeaseState::expired)) continue;
    const core::Ipv4Address address{m.records[d.slot].ipv4};
    out.removed.push_back(m.lease(d.slot));
    m.remove(d.slot);
    [[maybe_unused]] const auto released = m.pool.release(address);
    assert(released);
  }
  return out;
}

std::optional<Seconds> LeaseTable::next_deadline() const noexcept {
  const auto& m = *impl_;
  std::optional<Seconds> next;
  if (!m.active_heap.empty()) next = m.active_heap.top().at;
  if (!m.held_heap.empty()) {
    const auto at = m.held_heap.top().at;
    const auto end = at > std::numeric_limits<Seconds>::max() - m.grace
                         ? std::numeric_limits<Seconds>::max()
                         : at + m.grace;
    next = next ? std::min(*next, end) : end;
  }
  return next;
}

std::optional<LeaseView> LeaseTable::find(core::Ipv4Address ipv4) const noexcept {
  const auto slot = impl_->find_address(ipv4);
  if (slot == kNoSlot) return std::nullopt;
  return impl_->view(impl_->records[slot]);
}

std::optional<LeaseView> LeaseTable::find(const core::Ipv6Address& client,
                                          std::string_view identity) const noexcept {
  const auto slot = impl_->find_key(client, identity);
  if (slot == kNoSlot) return std::nullopt;
  return impl_->view(impl_->records[slot]);
}

void LeaseTable::for_each(const std::function<void(const LeaseView&)>& visit) const {
  const auto& m = *impl_;
  for (std::uint32_t slot = 0; slot < m.records.end(); ++slot) {
    const auto& r = m.records[slot];
    if (r.state != kFreeSlot) visit(m.view(r));
  }
}

std::size_t LeaseTable::size() const noexcept {
  return impl_->active + impl_->held;
}
std::size_t LeaseTable::active() const noexcept {
  return impl_->active;
}
std::size_t LeaseTable::held() const noexcept {
  return impl_->held;
}
Seconds LeaseTable::grace() const noexcept {
  return impl_->grace;
}
const Pool& LeaseTable::pool() const noexcept {
  return impl_->pool;
}

}  // namespace dstm_server
