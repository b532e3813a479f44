// Keepalive miss tracking (see the header for the timeline).
#include "dstm_client/keepalive.hpp"

#include <algorithm>
#include <cassert>

namespace dstm_client {

KeepaliveMonitor::KeepaliveMonitor(KeepaliveConfig config, TimePoint start,
                                   std::uint16_t first_sequence)
    : config_{config}, start_{start}, next_sequence_{first_sequence} {
  assert(config_.interval.count() > 0 && config_.max_misses >= 1 &&
         config_.fast_interval.count() > 0 && config_.max_outstanding >= 1);
}

Duration KeepaliveMonitor::window() const noexcept {
  return std::min(config_.interval, config_.max_wait);
}

TimePoint KeepaliveMonitor::next_probe() const noexcept {
  if (!last_sent_) return start_;
  return *last_sent_ + (misses_ > 0 ? config_.fast_interval : config_.interval);
}

void KeepaliveMonitor::miss() noexcept {
  ++misses_;
  ++missed_;
  if (misses_ >= config_.max_misses) lost_ = true;
}

KeepaliveMonitor::Step KeepaliveMonitor::poll(TimePoint now) {
  if (lost_) return Step{.probe = std::nullopt, .lost = true};
  while (!outstanding_.empty() && outstanding_.front().deadline <= now) {
    outstanding_.pop_front();
    miss();
  }
  if (lost_) {
    outstanding_.clear();
    return Step{.probe = std::nullopt, .lost = true};
  }
  if (now < next_probe()) return {};
  if (outstanding_.size() >= config_.max_outstanding) {
    outstanding_.pop_front();
    miss();
    if (lost_) {
      outstanding_.clear();
      return Step{.probe = std::nullopt, .lost = true};
    }
  }
  const std::uint16_t sequence = next_sequence_++;
  outstanding_.push_back(Probe{.sequence = sequence, .deadline = now + window()});
  last_sent_ = now;
  ++sent_;
  return Step{.probe = sequence, .lost = false};
}

bool KeepaliveMonitor::on_reply(std::uint16_t sequence) {
  if (lost_) return false;
  const auto it = std::find_if(outstanding_.begin(), outstanding_.end(),
                               [&](const Probe& p) { return p.sequence == sequence; });
  if (it == outstanding_.end()) return false;  // late, duplicated or not ours
  // The path works: the older probes still outstanding are not misses.
  outstanding_.erase(outstanding_.begin(), std::next(it));
  misses_ = 0;
  ++answered_;
  return true;
}

TimePoint KeepaliveMonitor::next_wakeup() const noexcept {
  TimePoint t = next_probe();
  if (!outstanding_.empty()) t = std::min(t, outstanding_.front().deadline);
  return t;
}

}  // namespace dstm_client
