// The member's per-source token buckets.
#include "anycast_member/rate_limit.hpp"

#include <algorithm>

namespace anycast_member {

SourceRateLimit::SourceRateLimit(std::uint32_t per_second, std::size_t max_sources)
    : interval_{std::chrono::nanoseconds{std::chrono::seconds{1}} / std::max(per_second, 1u)},
      window_{interval_ * 2 * std::max(per_second, 1u)},
      max_sources_{std::max<std::size_t>(max_sources, 1)} {}

bool SourceRateLimit::admit(const core::Ipv6Address& source, anycast::Time now) {
  auto it = index_.find(source);
  if (it == index_.end()) {
    if (order_.size() >= max_sources_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(source, now);
    it = index_.emplace(source, order_.begin()).first;
  } else {
    order_.splice(order_.begin(), order_, it->second);
  }
  auto& next = it->second->second;
  const auto after = std::max(next, now) + interval_;
  if (after - now > window_) return false;
  next = after;
  return true;
}

}  // namespace anycast_member
