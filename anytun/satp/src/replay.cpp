// The per-sender replay window: anytun 0.3.8's src/seqWindow.cpp decisions over a bit ring.
#include "satp/replay.hpp"

#include <algorithm>
#include <cassert>

namespace satp {
namespace {

// anytun shifts by SEQ_NR_MAX / 2 = 0x7fffffff (not 2^31) near the ends of the sequence space.
constexpr std::uint32_t kShift = 0xffffffffu / 2;

}  // namespace

ReplayWindow::ReplayWindow(std::uint32_t size, std::size_t max_senders)
    : size_{size}, max_senders_{max_senders} {
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

void ReplayWindow::clear_bit(std::size_t slot, std::uint32_t bit) noexcept {
  bits_[slot * words() + bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
}

Result<void> ReplayWindow::check_and_add(std::uint16_t sender_id, std::uint32_t seq) noexcept {
  if (size_ == 0) return {};
  const auto it = std::ranges::find(senders_, sender_id, &Sender::id);
  if (it == senders_.end()) {
    if (senders_.size() >= max_senders_) return Errc::TooManySenders;
    senders_.push_back(Sender{.id = sender_id, .max = seq, .pos = 0});
    bits_.resize(senders_.size() * words(), 0);
    test_and_set(senders_.size() - 1, 0);
    return {};
  }
  const std::size_t slot = static_cast<std::size_t>(it - senders_.begin());
  Sender& s = *it;

  // Compare in a space where the window does not straddle 0 (anytun's shifted = 1 / 2).
  std::uint32_t max = s.max;
  std::uint32_t q = seq;
  if (max < size_) {
    max += kShift;
    q += kShift;
  } else if (max > 0xffffffffu - size_) {
    max -= kShift;
    q -= kShift;
  }
  const std::uint32_t min = max - size_ + 1;
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
    return {};
  }

  // Inside the window, max - size < q < max.
  const std::uint32_t back = max - q;
  const std::uint32_t bit = (s.pos + size_ - back) % size_;
  if (test_and_set(slot, bit)) return Errc::Replay;
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
