// The per-fd table: a seqlock per descriptor. state is 0 (no mapping), odd (a writer holds its
// token and is writing) or even (published; the value is unique, so a reader notices any
// rewrite between its two loads).
#include "fd_table.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace anycast::preload {
namespace {

struct Slot {
  std::atomic<std::uint32_t> state{0};
  // anycast then unicast, as four 64-bit words so that every access is atomic.
  std::atomic<std::uint64_t> words[4]{};
};

// Zero-initialised static storage: pages are only touched for descriptors that get used.
Slot g_slots[kMaxFds];
std::atomic<std::uint32_t> g_generation{2};

std::uint32_t next_generation() noexcept {
  std::uint32_t g = 0;
  // Even and never 0; wraps after 2^31 records, long after any reader's two loads.
  while (g == 0) g = g_generation.fetch_add(2, std::memory_order_relaxed);
  return g;
}

std::uint64_t word(const query::Address& a, std::size_t half) noexcept {
  std::uint64_t w = 0;
  std::memcpy(&w, a.data() + half * 8, 8);
  return w;
}

void put_word(query::Address& a, std::size_t half, std::uint64_t w) noexcept {
  std::memcpy(a.data() + half * 8, &w, 8);
}

}  // namespace

void fd_record(int fd, const Mapping& mapping) noexcept {
  if (!in_fd_table(fd)) return;
  Slot& s = g_slots[fd];
  std::uint32_t seen = s.state.load(std::memory_order_relaxed);
  if ((seen & 1u) != 0) return;
  const std::uint32_t published = next_generation();
  const std::uint32_t token = published | 1u;
  if (!s.state.compare_exchange_strong(seen, token, std::memory_order_relaxed)) return;
  std::atomic_thread_fence(std::memory_order_release);
  s.words[0].store(word(mapping.anycast, 0), std::memory_order_relaxed);
  s.words[1].store(word(mapping.anycast, 1), std::memory_order_relaxed);
  s.words[2].store(word(mapping.unicast, 0), std::memory_order_relaxed);
  s.words[3].store(word(mapping.unicast, 1), std::memory_order_relaxed);
  // Fails when a close cleared the slot (or another writer took it) meanwhile: that one stands.
  std::uint32_t expected = token;
  s.state.compare_exchange_strong(expected, published, std::memory_order_release,
                                  std::memory_order_relaxed);
}

bool fd_mapped(int fd) noexcept {
  return in_fd_table(fd) && g_slots[fd].state.load(std::memory_order_relaxed) != 0;
}

std::optional<Mapping> fd_lookup(int fd) noexcept {
  if (!in_fd_table(fd)) return std::nullopt;
  const Slot& s = g_slots[fd];
  // A writer in the middle is rare and short; after a few tries the fd counts as unmapped.
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::uint32_t before = s.state.load(std::memory_order_acquire);
    if (before == 0) return std::nullopt;
    if ((before & 1u) != 0) continue;
    Mapping m{};
    put_word(m.anycast, 0, s.words[0].load(std::memory_order_relaxed));
    put_word(m.anycast, 1, s.words[1].load(std::memory_order_relaxed));
    put_word(m.unicast, 0, s.words[2].load(std::memory_order_relaxed));
    put_word(m.unicast, 1, s.words[3].load(std::memory_order_relaxed));
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.state.load(std::memory_order_relaxed) == before) return m;
  }
  return std::nullopt;
}

void fd_clear(int fd) noexcept {
  if (!in_fd_table(fd)) return;
  Slot& s = g_slots[fd];
  if (s.state.load(std::memory_order_relaxed) != 0) s.state.store(0, std::memory_order_release);
}

void fd_copy(int from, int to) noexcept {
  if (const auto m = fd_lookup(from)) {
    fd_record(to, *m);
  } else {
    fd_clear(to);
  }
}

}  // namespace anycast::preload
