// The per-process answer cache: 64 sets of 4 entries, keyed by the anycast address.
#include "answer_cache.hpp"

#include <pthread.h>

#include <array>
#include <cstddef>

namespace anycast::preload {
namespace {

constexpr std::size_t kSets = 64;
constexpr std::size_t kWays = 4;

struct Entry {
  query::Address address{};
  query::Address unicast{};
  std::uint64_t expires_ns = 0;  // 0: empty
  query::Status status = query::Status::PassThrough;
};

pthread_rwlock_t g_lock = PTHREAD_RWLOCK_INITIALIZER;
std::array<std::array<Entry, kWays>, kSets> g_sets{};

// FNV-1a over the address bytes.
std::size_t set_of(const query::Address& address) noexcept {
  std::uint32_t hash = 2166136261u;
  for (const std::uint8_t byte : address) hash = (hash ^ byte) * 16777619u;
  return hash % kSets;
}

// fork() while another thread stores would give the child a half-written entry and a lock
// nobody releases: fork waits for the writer, the child starts with a fresh lock.
void before_fork() {
  ::pthread_rwlock_wrlock(&g_lock);
}
void after_fork_in_parent() {
  ::pthread_rwlock_unlock(&g_lock);
}
void after_fork_in_child() {
  ::pthread_rwlock_init(&g_lock, nullptr);
}

}  // namespace

void cache_set_up() noexcept {
  ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

std::optional<CachedAnswer> cache_find(const query::Address& address,
                                       std::uint64_t now_ns) noexcept {
  if (::pthread_rwlock_tryrdlock(&g_lock) != 0) return std::nullopt;
  std::optional<CachedAnswer> found;
  for (const Entry& e : g_sets[set_of(address)]) {
    if (e.expires_ns > now_ns && e.address == address) {
      found = CachedAnswer{e.status, e.unicast};
      break;
    }
  }
  ::pthread_rwlock_unlock(&g_lock);
  return found;
}

void cache_store(const query::Address& address, const query::Answer& answer,
                 std::uint64_t now_ns) noexcept {
  if (answer.ttl_ms == 0) return;
  if (answer.status != query::Status::Unicast && answer.status != query::Status::PassThrough)
    return;
  if (::pthread_rwlock_trywrlock(&g_lock) != 0) return;
  auto& set = g_sets[set_of(address)];
  // The same address, else the entry that expires first (an empty or stale one expired long ago).
  Entry* slot = &set[0];
  for (Entry& e : set) {
    if (e.expires_ns != 0 && e.address == address) {
      slot = &e;
      break;
    }
    if (e.expires_ns < slot->expires_ns) slot = &e;
  }
  slot->address = address;
  slot->unicast = answer.unicast;
  slot->status = answer.status;
  slot->expires_ns = now_ns + std::uint64_t{answer.ttl_ms} * 1'000'000u;
  ::pthread_rwlock_unlock(&g_lock);
}

void cache_forget(const query::Address& address) noexcept {
  // Busy: the answer stays until its ttl_ms ends (a second at the resolver's default); waiting
  // could deadlock a signal handler that connects while its thread holds the lock.
  if (::pthread_rwlock_trywrlock(&g_lock) != 0) return;
  for (Entry& e : g_sets[set_of(address)]) {
    if (e.address == address) e.expires_ns = 0;
  }
  ::pthread_rwlock_unlock(&g_lock);
}

}  // namespace anycast::preload
