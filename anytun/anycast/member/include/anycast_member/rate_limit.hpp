// Per-source probe budget of the member: a token bucket per source address (GCRA form) with a
// burst of twice the rate, in a bounded table that forgets the least recently seen source.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <utility>

#include "anycast/rr.hpp"
#include "core/address.hpp"

namespace anycast_member {

class SourceRateLimit {
 public:
  // per_second >= 1; max_sources >= 1.
  SourceRateLimit(std::uint32_t per_second, std::size_t max_sources);

  // Takes one token from the source's bucket: false when it is empty. A source not in the table
  // (new, or evicted) starts with a full bucket of 2 * per_second tokens. Time must not go back.
  bool admit(const core::Ipv6Address& source, anycast::Time now);

  std::size_t sources() const noexcept { return order_.size(); }

 private:
  // The "theoretical arrival time" of the source's next token: the bucket is full when it is
  // in the past, and empty when it is `window_` ahead of now.
  using Entry = std::pair<core::Ipv6Address, anycast::Time>;
  std::chrono::nanoseconds interval_;  // one token's worth of time
  std::chrono::nanoseconds window_;    // the whole bucket's worth
  std::size_t max_sources_;
  std::list<Entry> order_;  // most recently seen first
  std::unordered_map<core::Ipv6Address, std::list<Entry>::iterator> index_;
};

}  // namespace anycast_member
