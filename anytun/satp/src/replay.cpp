// The per-sender replay window: anytun 0.3.8's src/seqWindow.cpp decisions over a bit ring.
#include "satp/replay.hpp"

#include <algorithm>
#include <cassert>

namespace satp {
namespace {

// anytun shifts by SEQ_NR_MAX / 2 = 0x7fffffff (not 2^31) near the ends of the sequence space.
constexpr std::uint32_t kShift = 0xffffffffu / 2;

struct Shifted {
  std::uint32_t max;
  std::uint32_t seq;
};

// `max` and `seq` moved into a space where a window of `size` below max does not straddle 0
// (anytun's shifted = 1 / 2). There max >= size, so max - size + 1 does not wrap.
constexpr Shifted shift(std::uint32_t max, std::uint32_t seq, std::uint32_t size) noexcept {
  if (max < size) return {max + kShift, seq + kShift};
  if (max > 0xffffffffu - size) return {max - kShift, seq - kShift};
  return {max, seq};
}

}  // namespace

ReplayWindow::ReplayWindow(std::uint32_t size, std::size_t max_senders, std::uint32_t restart_after)
    : size_{size}, max_senders_{max_senders}, restart_after_{restart_after} {
  assert(size <= kMaxWindowSize);
  assert(max_senders >= 1 && max_senders <= kMaxSenders);
}

bool ReplayWindow::test_and_set(std::size_t slot, std::uint32_t bit) noexcept {
  auto& w = bits_[slot * words() + bit / 64];
  const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
  const bool was = (w & mask) != 0;
  w |= mask;
  return was;
}

void ReplayWindow::set_all(std::size_t slot) noexcept {
  // Only the size_ bits of the ring: the rest of the last word stays zero, as elsewhere.
  const auto first = bits_.begin() + static_cast<std::ptrdiff_t>(slot * words());
  std::fill_n(first, size_ / 64, ~std::uint64_t{0});
  if (size_ % 64 != 0) first[size_ / 64] = (std::uint64_t{1} << (size_ % 64)) - 1;
}

void ReplayWindow::clear_bit(std::size_t slot, std::uint32_t bit) noexcept {
  bits_[slot * words() + bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
}

Result<void> ReplayWindow::check_and_add(std::uint16_t sender_id, std::uint32_t seq) noexcept {
  if (size_ == 0) return {};
  const auto it = std::ranges::find(senders_, sender_id, &Sender::id);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_) return Errc::TooManySenders;
    senders_.push_back(Sender{.id = sender_id, .max = seq, .pos = 0, .old_seq = 0, .old_run = 0});
    bits_.resize(senders_.size() * words(), 0);
    test_and_set(senders_.size() - 1, 0);
    return {};
  }
  const std::size_t slot = static_cast<std::size_t>(it - senders_.begin());
  Sender& s = *it;

  const auto [max, q] = shift(s.max, seq, size_);
  const std::uint32_t min = max - size_ + 1;
  if (q < min && restart_after_ != 0) {
    // Older than the window: part of a run of a restarted counter?
    const std::uint32_t step = seq - s.old_seq;  // mod 2^32, as the counter runs
    s.old_run = s.old_run != 0 && step >= 1 && step <= size_ ? s.old_run + 1 : 1;
    s.old_seq = seq;
    if (s.old_run < restart_after_) return Errc::Replay;
    restart(slot, seq);
    return {};
  }
  if (q < min || q == max) return Errc::Replay;

  if (q > max) {
    // Newer: clear the slots skipped over, then mark the new max. A jump of a whole window or
    // more clears everything.
    const std::uint32_t diff = std::min(q - max, size_);
    if (diff == size_) {
      std::fill_n(bits_.begin() + static_cast<std::ptrdiff_t>(slot * words()), words(), 0);
    } else {
      for (std::uint32_t i = 1; i <= diff; ++i) clear_bit(slot, (s.pos + i) % size_);
    }
    s.pos = (s.pos + diff) % size_;
    test_and_set(slot, s.pos);
    s.max = seq;
    s.old_run = 0;
    return {};
  }

  // Inside the window, max - size < q < max.
  const std::uint32_t back = max - q;
  const std::uint32_t bit = (s.pos + size_ - back) % size_;
  if (test_and_set(slot, bit)) return Errc::Replay;
  s.old_run = 0;
  return {};
}

void ReplayWindow::restart(std::size_t slot, std::uint32_t seq) noexcept {
  Sender& s = senders_[slot];
  std::fill_n(bits_.begin() + static_cast<std::ptrdiff_t>(slot * words()), words(), 0);
  s.max = seq;
  s.pos = 0;
  s.old_run = 0;
  test_and_set(slot, 0);
  ++restarts_;
}

std::optional<std::uint32_t> ReplayWindow::high_water(std::uint16_t sender_id) const noexcept {
  const auto it = std::ranges::find(senders_, sender_id, &Sender::id);
  if (it == senders_.end()) return std::nullopt;
  return it->max;
}

Result<void> ReplayWindow::raise_to(std::uint16_t sender_id, std::uint32_t max) noexcept {
  if (size_ == 0) return {};
  const auto it = std::ranges::find(senders_, sender_id, &Sender::id);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_) return Errc::TooManySenders;
    senders_.push_back(Sender{.id = sender_id, .max = max, .pos = 0, .old_seq = 0, .old_run = 0});
    bits_.resize(senders_.size() * words(), 0);
    set_all(senders_.size() - 1);
    return {};
  }
  const std::size_t slot = static_cast<std::size_t>(it - senders_.begin());
  Sender& s = *it;
  const auto [m, q] = shift(s.max, max, size_);
  if (q > m) {
    // Newer: the window moves there with every slot seen (so where max's slot is does not
    // matter; pos stays).
    s.max = max;
    set_all(slot);
    return {};
  }
  // At or below the current max: the slots from `max` down to the window's oldest. Anything
  // older than the window is a replay already.
  const std::uint32_t min = m - size_ + 1;
  if (q < min) return {};
  for (std::uint32_t back = m - q; back < size_; ++back)
    test_and_set(slot, (s.pos + size_ - back) % size_);
  return {};
}

void ReplayWindow::clear(std::uint16_t sender_id) noexcept {
  const auto it = std::ranges::find(senders_, sender_id, &Sender::id);
  if (it == senders_.end()) return;
  // Move the last sender (and its bits) into the freed slot.
  const std::size_t slot = static_cast<std::size_t>(it - senders_.begin());
  const std::size_t last = senders_.size() - 1;
  const auto w = static_cast<std::ptrdiff_t>(words());
  if (slot != last) {
    senders_[slot] = senders_[last];
    std::copy_n(bits_.begin() + static_cast<std::ptrdiff_t>(last) * w, w,
                bits_.begin() + static_cast<std::ptrdiff_t>(slot) * w);
  }
  senders_.pop_back();
  bits_.resize(senders_.size() * words());
}

void ReplayWindow::clear() noexcept {
  senders_.clear();
  bits_.clear();
}

}  // namespace satp
