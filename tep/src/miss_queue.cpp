// The miss queue (packets waiting for the DSTM server's answer) and the token-bucket rate limiter.
#include "tep/miss_queue.hpp"

#include <algorithm>
#include <utility>

namespace tep {

namespace {

// Stale order_ items tolerated beyond the live ones before a compaction; the slack keeps a
// nearly empty queue from compacting on every push.
constexpr std::size_t kOrderSlack = 16;

// now + d without overflowing the clock's representation (the timeout is a config value).
TimePoint deadline_after(TimePoint now, std::chrono::milliseconds d) noexcept {
  if (d <= std::chrono::milliseconds::zero()) return now;
  constexpr auto kMax =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max());
  if (d >= kMax) return TimePoint::max();
  const auto dd = std::chrono::duration_cast<Clock::duration>(d);
  if (now.time_since_epoch() >= Clock::duration::zero() && dd > TimePoint::max() - now)
    return TimePoint::max();
  return now + dd;
}

}  // namespace

MissQueue::MissQueue(MissQueueLimits limits) : limits_{limits} {}

bool MissQueue::live(const Due& due) const noexcept {
  const auto it = entries_.find(due.address);
  return it != entries_.end() && it->second.id == due.id;
}

void MissQueue::drop_stale_front() noexcept {
  while (!order_.empty() && !live(order_.front())) order_.pop_front();
}

MissQueue::Pushed MissQueue::push(core::Ipv4Address address, Direction direction,
                                  const core::Ipv6Address& outer_source, core::Bytes packet,
                                  TimePoint now) {
  auto it = entries_.find(address);
  const bool first = it == entries_.end();
  if (!first && it->second.packets.size() >= limits_.per_address) return Pushed::AddressFull;
  if (first && limits_.per_address == 0) return Pushed::AddressFull;
  // bytes_ <= max_bytes always holds, so the subtraction cannot wrap.
  if (packets_ >= limits_.max_packets || packet.size() > limits_.max_bytes - bytes_)
    return Pushed::QueueFull;
  if (first && entries_.size() >= limits_.max_addresses) return Pushed::QueueFull;

  PendingPacket pending{.direction = direction,
                        .outer_source = outer_source,
                        .packet = std::vector<std::byte>(packet.begin(), packet.end())};
  if (first) {
    const Due due{
        .deadline = deadline_after(now, limits_.timeout), .address = address, .id = next_id_++};
    order_.push_back(due);
    it = entries_.try_emplace(address, Entry{.id = due.id, .packets = {}}).first;
  }
  it->second.packets.push_back(std::move(pending));
  ++packets_;
  bytes_ += packet.size();

  // Every live entry has exactly one item in order_; the rest are stale ones take() left.
  // Compacting when they outnumber the live ones removes at least half the deque, so its cost
  // is paid for by the pushes that made those items, and the deque stays within about twice
  // max_addresses.
  if (first && order_.size() > 2 * entries_.size() + kOrderSlack)
    std::erase_if(order_, [this](const Due& due) { return !live(due); });
  return first ? Pushed::FirstForAddress : Pushed::Queued;
}

bool MissQueue::waiting(core::Ipv4Address address) const noexcept {
  return entries_.contains(address);
}

std::vector<PendingPacket> MissQueue::take(core::Ipv4Address address) {
  const auto it = entries_.find(address);
  if (it == entries_.end()) return {};
  std::vector<PendingPacket> packets = std::move(it->second.packets);
  entries_.erase(it);
  packets_ -= packets.size();
  for (const auto& p : packets) bytes_ -= p.packet.size();
  drop_stale_front();
  return packets;
}

std::vector<MissQueue::Expired> MissQueue::expire(TimePoint now) {
  std::vector<Expired> out;
  while (!order_.empty() && order_.front().deadline <= now) {
    const Due due = order_.front();
    order_.pop_front();
    const auto it = entries_.find(due.address);
    if (it == entries_.end() || it->second.id != due.id) continue;
    Expired e{.address = due.address, .packets = std::move(it->second.packets)};
    entries_.erase(it);
    packets_ -= e.packets.size();
    for (const auto& p : e.packets) bytes_ -= p.packet.size();
    out.push_back(std::move(e));
  }
  drop_stale_front();
  return out;
}

std::optional<TimePoint> MissQueue::next_deadline() const noexcept {
  // The front is live (drop_stale_front() after every removal), and the earliest.
  if (order_.empty()) return std::nullopt;
  return order_.front().deadline;
}

namespace {

double non_negative(double v) noexcept {
  return v >= 0 ? v : 0;  // NaN compares false
}

}  // namespace

RateLimiter::RateLimiter(double rate, double burst) noexcept
    : rate_{non_negative(rate)}, burst_{non_negative(burst)}, tokens_{burst_} {}

bool RateLimiter::allow(TimePoint now) noexcept {
  if (!started_) {
    started_ = true;
    last_ = now;
  } else if (now > last_) {
    // From integral nanoseconds, so that whole tokens come out whole (10/s after 100 ms is
    // exactly 1). last_ only moves forward: after a clock step back, the time until the clock
    // is past last_ again adds nothing.
    const auto ns = static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count());
    tokens_ = std::min(burst_, tokens_ + ns * rate_ / 1e9);
    last_ = now;
  }
  // Refills in many small steps add up to a hair under a whole token (ten 0.1 steps make
  // 0.9999999999999999): a billionth of a token is not worth waiting for.
  if (tokens_ < 1.0 - 1e-9) return false;
  tokens_ -= 1.0;
  return true;
}

}  // namespace tep
