// Which descriptors the library rewrote, and to what: anycast <-> unicast per fd, for
// getpeername and for the source of received datagrams. A fixed array indexed by fd; fds at or
// beyond kMaxFds are never rewritten. Lock-free (a seqlock per fd with a writer token), so close,
// dup2 and dup3 stay async-signal-safe and nothing ever waits.
#pragma once

#include <optional>

#include "anycast/query.hpp"

namespace anycast::preload {

inline constexpr int kMaxFds = 65536;

struct Mapping {
  query::Address anycast;
  query::Address unicast;
};

constexpr bool in_fd_table(int fd) noexcept {
  return fd >= 0 && fd < kMaxFds;
}

// fd (in the table) now talks to mapping.unicast on behalf of mapping.anycast. When another
// thread is recording the same fd at this moment, that one wins.
void fd_record(int fd, const Mapping& mapping) noexcept;

// The cheap test on the receive paths: whether fd has a mapping at all.
bool fd_mapped(int fd) noexcept;

// The mapping of fd, if it has one (and no writer is busy with it).
std::optional<Mapping> fd_lookup(int fd) noexcept;

// fd was closed or replaced: it has no mapping any more.
void fd_clear(int fd) noexcept;

// `to` became a duplicate of `from`: it has the mapping of `from`, or none.
void fd_copy(int from, int to) noexcept;

}  // namespace anycast::preload
