// The shared IPv4 pool: prefix validation, exclusions, and the free FIFO over dense indices.
#include "dstm_server/pool.hpp"

#include <algorithm>
#include <cassert>
#include <ostream>

#include <fmt/format.h>

namespace dstm_server {

Result<Pool> Pool::make(const PoolConfig& config) {
  if (config.prefixes.empty()) return Error{Errc::PoolNoPrefix, "no prefix configured"};

  Pool pool;
  pool.prefixes_ = config.prefixes;
  std::sort(pool.prefixes_.begin(), pool.prefixes_.end(),
            [](const auto& a, const auto& b) { return a.network() < b.network(); });

  // Sorted by network, a prefix overlaps an earlier one exactly when its network is not past
  // the end of the widest-reaching earlier prefix (CIDR blocks nest or are disjoint).
  std::uint64_t total = 0;
  const core::Ipv4Prefix* reach = nullptr;
  for (const auto& p : pool.prefixes_) {
    if (reach != nullptr && p.network() <= reach->last()) {
      return Error{Errc::PoolOverlap,
                   fmt::format("prefix {} overlaps {}", p.to_string(), reach->to_string())};
    }
    if (reach == nullptr || p.last() > reach->last()) reach = &p;
    total += p.size();
    if (total > kMaxAddresses) {
      return Error{Errc::PoolTooLarge, fmt::format("prefix {} takes the pool past {} addresses",
                                                   p.to_string(), kMaxAddresses)};
    }
  }

  pool.count_ = static_cast<std::uint32_t>(total);
  pool.base_.reserve(pool.prefixes_.size());
  std::uint32_t base = 0;
  for (const auto& p : pool.prefixes_) {
    pool.base_.push_back(base);
    base += static_cast<std::uint32_t>(p.size());
  }

  // Mark exclusions in next_ first, then thread every other index onto the free list in
  // ascending order.
  pool.next_.assign(std::size_t{pool.count_} + 1, 0);
  pool.prev_.assign(std::size_t{pool.count_} + 1, 0);
  std::uint32_t excluded = 0;
  const auto exclude = [&](std::uint32_t i) {
    if (pool.next_[i] != kExcluded) {
      pool.next_[i] = kExcluded;
      ++excluded;
    }
  };
  for (std::size_t k = 0; k < pool.prefixes_.size(); ++k) {
    const auto& p = pool.prefixes_[k];
    if (p.length() <= 30) {
      exclude(pool.base_[k]);
      exclude(pool.base_[k] + static_cast<std::uint32_t>(p.size() - 1));
    }
  }
  for (const auto a : config.tep_addresses) {
    if (const auto i = pool.index_of(a); i != kNoIndex) exclude(i);
  }
  for (const auto a : config.excluded) {
    const auto i = pool.index_of(a);
    if (i == kNoIndex) {
      return Error{Errc::ExclusionOutsidePool,
                   fmt::format("excluded address {} is in no pool prefix", a.to_string())};
    }
    exclude(i);
  }

  pool.usable_ = pool.count_ - excluded;
  if (pool.usable_ == 0) {
    std::string list;
    for (const auto& p : pool.prefixes_) list += (list.empty() ? "" : ", ") + p.to_string();
    return Error{Errc::PoolEmpty, fmt::format("every address of {} is excluded", list)};
  }

  const std::uint32_t sentinel = pool.count_;
  pool.next_[sentinel] = sentinel;
  pool.prev_[sentinel] = sentinel;
  for (std::uint32_t i = 0; i < pool.count_; ++i) {
    if (pool.next_[i] != kExcluded) pool.push_back(i);
  }
  return pool;
}

std::uint32_t Pool::index_of(core::Ipv4Address a) const noexcept {
  // The last prefix whose network is <= a.
  auto it = std::upper_bound(prefixes_.begin(), prefixes_.end(), a,
                             [](core::Ipv4Address x, const auto& p) { return x < p.network(); });
  if (it == prefixes_.begin()) return kNoIndex;
  --it;
  if (!it->contains(a)) return kNoIndex;
  const auto k = static_cast<std::size_t>(it - prefixes_.begin());
  return base_[k] + (a.to_uint() - it->network().to_uint());
}

core::Ipv4Address Pool::address_of(std::uint32_t index) const noexcept {
  assert(index < count_);
  const auto it = std::upper_bound(base_.begin(), base_.end(), index) - 1;
  const auto k = static_cast<std::size_t>(it - base_.begin());
  return core::Ipv4Address{prefixes_[k].network().to_uint() + (index - *it)};
}

void Pool::unlink(std::uint32_t i) noexcept {
  next_[prev_[i]] = next_[i];
  prev_[next_[i]] = prev_[i];
  next_[i] = kAllocated;
}

void Pool::push_back(std::uint32_t i) noexcept {
  const std::uint32_t sentinel = count_;
  const std::uint32_t tail = prev_[sentinel];
  next_[tail] = i;
  prev_[i] = tail;
  next_[i] = sentinel;
  prev_[sentinel] = i;
}

core::Result<core::Ipv4Address> Pool::allocate() noexcept {
  const std::uint32_t head = next_[count_];
  if (head == count_) return make_error_code(Errc::PoolExhausted);
  unlink(head);
  ++used_;
  return address_of(head);
}

core::Result<void> Pool::allocate_specific(core::Ipv4Address a) noexcept {
  const auto i = index_of(a);
  if (i == kNoIndex) return make_error_code(Errc::NotInPool);
  if (next_[i] == kExcluded) return make_error_code(Errc::AddressExcluded);
  if (next_[i] == kAllocated) return make_error_code(Errc::AddressInUse);
  unlink(i);
  ++used_;
  return {};
}

core::Result<void> Pool::release(core::Ipv4Address a) noexcept {
  const auto i = index_of(a);
  if (i == kNoIndex) return make_error_code(Errc::NotInPool);
  if (next_[i] == kExcluded) return make_error_code(Errc::AddressExcluded);
  if (next_[i] != kAllocated) return make_error_code(Errc::AddressNotAllocated);
  push_back(i);
  --used_;
  return {};
}

bool Pool::contains(core::Ipv4Address a) const noexcept {
  const auto i = index_of(a);
  return i != kNoIndex && next_[i] != kExcluded;
}

bool Pool::is_allocated(core::Ipv4Address a) const noexcept {
  const auto i = index_of(a);
  return i != kNoIndex && next_[i] == kAllocated;
}

std::ostream& operator<<(std::ostream& os, const Pool& pool) {
  const char* sep = "";
  for (const auto& p : pool.prefixes()) {
    os << sep << p;
    sep = " ";
  }
  return os << ": " << pool.used() << " of " << pool.total() << " used";
}

}  // namespace dstm_server
