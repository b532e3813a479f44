// The TEP registry: liveness, least-loaded-by-weight assignment and bounded withdrawal queues.
#include "dstm_server/tep_registry.hpp"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <utility>

namespace dstm_server {

TepRegistry::TepRegistry(std::vector<TepConfig> teps, Seconds timeout) : timeout_{timeout} {
  assert(timeout > 0);
  teps_.reserve(teps.size());
  for (auto& t : teps) {
    assert(t.weight >= 1);
    teps_.push_back(State{.config = std::move(t)});
  }
}

std::size_t TepRegistry::size() const noexcept {
  return teps_.size();
}

const TepConfig& TepRegistry::config(TepId id) const {
  assert(id < teps_.size());
  return teps_[id].config;
}

std::optional<TepId> TepRegistry::find_by_name(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < teps_.size(); ++i)
    if (teps_[i].config.name == name) return static_cast<TepId>(i);
  return std::nullopt;
}

std::optional<TepId> TepRegistry::find_by_user(std::string_view user) const noexcept {
  for (std::size_t i = 0; i < teps_.size(); ++i)
    if (teps_[i].config.user == user) return static_cast<TepId>(i);
  return std::nullopt;
}

void TepRegistry::session_opened(TepId id, Seconds now) {
  assert(id < teps_.size());
  auto& t = teps_[id];
  ++t.sessions;
  t.last_heard = now;
  t.closed = false;
}

void TepRegistry::session_closed(TepId id, Seconds /*now*/) {
  assert(id < teps_.size());
  auto& t = teps_[id];
  assert(t.sessions > 0);
  if (t.sessions == 0) return;  // a close without an open: a daemon bug, ignored without asserts
  // The last TCP session going away is the clearest sign a TEP has gone (restart, crash, link
  // down): waiting out the timeout would keep handing it new clients it cannot serve.
  if (--t.sessions == 0) t.closed = true;
}

void TepRegistry::heard(TepId id, Seconds now) {
  assert(id < teps_.size());
  auto& t = teps_[id];
  t.last_heard = now;
  t.closed = false;
}

bool TepRegistry::alive(TepId id, Seconds now) const noexcept {
  assert(id < teps_.size());
  const auto& t = teps_[id];
  if (!t.config.heartbeat) return true;
  if (t.closed || !t.last_heard) return false;
  return now - *t.last_heard < timeout_;
}

std::size_t TepRegistry::sessions(TepId id) const noexcept {
  assert(id < teps_.size());
  return teps_[id].sessions;
}

std::optional<Seconds> TepRegistry::last_heard(TepId id) const noexcept {
  assert(id < teps_.size());
  return teps_[id].last_heard;
}

void TepRegistry::add_lease(TepId id) noexcept {
  assert(id < teps_.size());
  ++teps_[id].leases;
}

void TepRegistry::remove_lease(TepId id) noexcept {
  assert(id < teps_.size());
  auto& t = teps_[id];
  assert(t.leases > 0);
  if (t.leases > 0) --t.leases;
}

std::uint64_t TepRegistry::leases(TepId id) const noexcept {
  assert(id < teps_.size());
  return teps_[id].leases;
}

std::optional<TepId> TepRegistry::pick(Seconds now) const noexcept {
  // leases_a / weight_a < leases_b / weight_b  <=>  leases_a * weight_b < leases_b * weight_a.
  // 128-bit products: exact whatever the counts (leases are bounded by the pool, 2^24, and
  // weights by the config, 1000, so 64 bits would do; 128 bits makes that not matter).
  __extension__ typedef unsigned __int128 Wide;
  std::optional<TepId> best;
  for (std::size_t i = 0; i < teps_.size(); ++i) {
    const auto id = static_cast<TepId>(i);
    if (!alive(id, now)) continue;
    if (best) {
      const auto& b = teps_[*best];
      const auto& t = teps_[i];
      // Strictly less: on a tie the TEP listed first keeps the client.
      if (Wide{t.leases} * b.config.weight >= Wide{b.leases} * t.config.weight) continue;
    }
    best = id;
  }
  return best;
}

std::optional<TepId> TepRegistry::assign(std::optional<TepId> current, Seconds now) const noexcept {
  if (current && *current < teps_.size() && alive(*current, now)) return current;
  return pick(now);
}

void TepRegistry::withdraw(core::Ipv4Address ipv4) {
  for (auto& t : teps_) {
    if (!t.config.heartbeat) continue;  // never told anything: it does not heartbeat
    // A pending flush covers this mapping already: the TEP drops its whole cache.
    if (t.flush) continue;
    if (t.withdrawals.size() - t.head >= kMaxWithdrawals) {
      t.withdrawals.clear();
      t.withdrawals.shrink_to_fit();
      t.head = 0;
      t.flush = true;
      continue;
    }
    t.withdrawals.push_back(ipv4);
  }
}

TepRegistry::Withdrawals TepRegistry::take_withdrawals(TepId id, std::size_t max) {
  assert(id < teps_.size());
  auto& t = teps_[id];
  Withdrawals out;
  out.flush = std::exchange(t.flush, false);
  const std::size_t n = std::min(max, t.withdrawals.size() - t.head);
  const auto first = t.withdrawals.begin() + static_cast<std::ptrdiff_t>(t.head);
  out.addresses.assign(first, first + static_cast<std::ptrdiff_t>(n));
  t.head += n;
  // Compact once the taken part is at least half of the storage: the vector then never holds
  // more than twice kMaxWithdrawals, and each address is moved O(1) times on average.
  if (t.head == t.withdrawals.size()) {
    t.withdrawals.clear();
    t.head = 0;
  } else if (2 * t.head >= t.withdrawals.size()) {
    t.withdrawals.erase(t.withdrawals.begin(),
                        t.withdrawals.begin() + static_cast<std::ptrdiff_t>(t.head));
    t.head = 0;
  }
  return out;
}

std::size_t TepRegistry::pending_withdrawals(TepId id) const noexcept {
  assert(id < teps_.size());
  const auto& t = teps_[id];
  return t.withdrawals.size() - t.head;
}

}  // namespace dstm_server
