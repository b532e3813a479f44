// When dstm-client renews its lease and how it backs off between failed attempts. Pure: time is
// passed in (steady_clock time points), nothing here reads a clock.
#pragma once

#include <chrono>
#include <cstdint>

namespace dstm_client {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;

// A lease's times, from the moment the offer arrived and the lifetime it gave (seconds).
struct LeaseSchedule {
  TimePoint granted{};
  TimePoint renew_at{};    // granted + 2/3 of the lifetime: the first renewal attempt
  TimePoint expires_at{};  // granted + lifetime

  bool operator==(const LeaseSchedule&) const = default;
};

LeaseSchedule schedule_lease(TimePoint granted, std::uint32_t lifetime_seconds) noexcept;

// The next attempt after a failed one at `now`: now + delay, but never later than `limit` (the
// lease's end, after which the client must act anyway).
TimePoint retry_at(TimePoint now, Duration delay, TimePoint limit) noexcept;

// Exponential backoff between attempts: min, 2 min, 4 min... capped at max (1 s .. 10 s by
// default: 1, 2, 4, 8, 10, 10...). reset() after a success.
class Backoff {
 public:
  explicit Backoff(Duration min = std::chrono::seconds{1},
                   Duration max = std::chrono::seconds{10}) noexcept;

  // The delay before the next attempt; each call doubles the following one, up to max.
  Duration next() noexcept;
  void reset() noexcept { next_ = min_; }

 private:
  Duration min_;
  Duration max_;
  Duration next_;
};

}  // namespace dstm_client
