// The per-process cache of the resolver's answers: each answer is reused for its ttl_ms.
// A fixed set-associative table behind an rwlock that is only ever try-locked, so a hook never
// waits on it (not even in a signal handler) and no lock is held across a query.
#pragma once

#include <cstdint>
#include <optional>

#include "anycast/query.hpp"

namespace anycast::preload {

struct CachedAnswer {
  query::Status status;  // Unicast or PassThrough: nothing else is cached
  query::Address unicast;
};

// Registers the fork handlers (the child gets a consistent table and a free lock).
void cache_set_up() noexcept;

// The answer for `address` if one is stored and fresh at `now_ns`. A busy lock is a miss.
std::optional<CachedAnswer> cache_find(const query::Address& address,
                                       std::uint64_t now_ns) noexcept;

// Keeps a Unicast or PassThrough answer for its ttl_ms (0: not kept). A busy lock drops it.
void cache_store(const query::Address& address, const query::Answer& answer,
                 std::uint64_t now_ns) noexcept;

// Drops the answer for `address` (its unicast failed: the next connect asks again). A busy lock
// leaves it to expire.
void cache_forget(const query::Address& address) noexcept;

}  // namespace anycast::preload
