// Deciding that the TEP is lost from keepalive probes (ICMP echo through the tunnel to the TEP's
// keepalive address). Pure: the caller sends the probes, feeds the replies and the time.
//
//   normal:  a probe every `interval`; each must be answered within min(interval, 2 s)
//   a miss:  probes every second instead, to decide fast
//   lost:    `max_misses` consecutive probes unanswered
//   a reply: answers its probe and every older outstanding one; back to normal
//
// With interval 30 s and 3 misses, a TEP that dies right after an answered probe is declared
// lost about 30 + 2 + 1 + 2 = 35 s later; one that is already dead at the first probe, 5 s.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

#include "dstm_client/schedule.hpp"

namespace dstm_client {

struct KeepaliveConfig {
  Duration interval{std::chrono::seconds{30}};  // from the offer; > 0
  unsigned max_misses = 3;                      // >= 1
  Duration fast_interval{std::chrono::seconds{1}};
  Duration max_wait{std::chrono::seconds{2}};  // the answer window is min(interval, max_wait)
  // Probes awaiting an answer at most (memory bound; more can only happen with a window longer
  // than the probe cadence, which the defaults exclude). The oldest beyond it counts as a miss.
  std::size_t max_outstanding = 8;
};

class KeepaliveMonitor {
 public:
  // The first probe is due at `start`; sequence numbers count up from first_sequence (wrapping).
  KeepaliveMonitor(KeepaliveConfig config, TimePoint start, std::uint16_t first_sequence = 1);

  struct Step {
    std::optional<std::uint16_t> probe;  // send an echo request with this sequence number now
    bool lost = false;                   // the TEP is lost (stays so; make a new monitor)
    bool operator==(const Step&) const = default;
  };

  // Expires unanswered probes, decides on loss, and says whether a probe is due. Call at
  // next_wakeup() (calling earlier or more often is harmless).
  Step poll(TimePoint now);
  // An echo reply carrying `sequence`: true when it answers an outstanding probe in time.
  bool on_reply(std::uint16_t sequence);

  // When poll() has something to do next.
  TimePoint next_wakeup() const noexcept;

  bool lost() const noexcept { return lost_; }
  unsigned consecutive_misses() const noexcept { return misses_; }
  std::size_t outstanding() const noexcept { return outstanding_.size(); }
  // Totals over this monitor's life.
  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t answered() const noexcept { return answered_; }
  std::uint64_t missed() const noexcept { return missed_; }

 private:
  struct Probe {
    std::uint16_t sequence = 0;
    TimePoint deadline{};
  };
  void miss() noexcept;
  TimePoint next_probe() const noexcept;
  Duration window() const noexcept;

  KeepaliveConfig config_;
  TimePoint start_;
  std::optional<TimePoint> last_sent_;
  std::uint16_t next_sequence_;
  std::deque<Probe> outstanding_;  // in send order
  unsigned misses_ = 0;
  bool lost_ = false;
  std::uint64_t sent_ = 0;
  std::uint64_t answered_ = 0;
  std::uint64_t missed_ = 0;
};

}  // namespace dstm_client
