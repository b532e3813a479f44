// Lease renewal times and retry backoff.
#include "dstm_client/schedule.hpp"

#include <algorithm>
#include <cassert>

namespace dstm_client {

LeaseSchedule schedule_lease(TimePoint granted, std::uint32_t lifetime_seconds) noexcept {
  // In milliseconds so that short lab lifetimes (2 s) still renew before the end.
  const Duration lifetime{std::int64_t{lifetime_seconds} * 1000};
  return LeaseSchedule{
      .granted = granted, .renew_at = granted + lifetime * 2 / 3, .expires_at = granted + lifetime};
}

TimePoint retry_at(TimePoint now, Duration delay, TimePoint limit) noexcept {
  return std::min(now + delay, std::max(now, limit));
}

Backoff::Backoff(Duration min, Duration max) noexcept : min_{min}, max_{max}, next_{min} {
  assert(min.count() > 0 && min <= max);
}

Duration Backoff::next() noexcept {
  const Duration out = next_;
  next_ = std::min(next_ * 2, max_);
  return out;
}

}  // namespace dstm_client
