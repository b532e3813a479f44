// The SATP replay window (satp-wire.md section 7): anytun 0.3.8's per-sender sliding window,
// decision for decision, with a bitmap instead of a byte per slot and a bound on senders.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "satp/error.hpp"

namespace satp {

// On by default in our relay (anytun defaults to off). 0 turns the window off.
inline constexpr std::uint32_t kDefaultWindowSize = 1024;
inline constexpr std::uint32_t kMaxWindowSize = 1u << 16;
// Sender ids are per anycast node; a cluster has a handful.
inline constexpr std::size_t kDefaultMaxSenders = 16;
inline constexpr std::size_t kMaxSenders = 4096;

// The replay state of one connection (MUX): one window per sender id.
//
// Semantics (anytun's SeqWindow::checkAndAdd): the first packet of a sender is accepted and sets
// max = seq. Then seq == max, or seq < max - size + 1, is a replay; seq > max is accepted and
// slides the window (however far ahead); a seq inside the window is a replay if its slot is set,
// else accepted and marked. Near the ends of the 32-bit space (max < size or max > 2^32 - 1 -
// size) both max and seq are shifted by 2^31 - 1 first, so a window straddling 0 works.
//
// Restart detection (off by default, so the decisions stay anytun's): a sender that restarts its
// counter (anytun starts at 0 on every start) would otherwise be refused until its new numbers
// pass the old max, which can take days. With restart_after = k, k authenticated packets in a
// row that are all older than the window, each 1..size above the previous one (a counter
// running again), restart that sender's window at the k-th, which is accepted; the k - 1 before
// it are refused. Any packet accepted the usual way in between ends such a run. The price: while
// the real sender is silent, someone who recorded k consecutive packets of it can replay them
// once (never the recent ones, which the window still refuses) -- what anytun, whose window is
// off, accepts all the time.
//
// Call only for packets whose tag verified, so that forged packets cannot move a window.
// Not thread-safe. Allocates only when a sender id is first seen.
class ReplayWindow {
 public:
  // size 0 = off (everything is accepted). Preconditions: size <= kMaxWindowSize,
  // 1 <= max_senders <= kMaxSenders (asserted; check configs against these constants).
  explicit ReplayWindow(std::uint32_t size = kDefaultWindowSize,
                        std::size_t max_senders = kDefaultMaxSenders,
                        std::uint32_t restart_after = 0);

  // Accepts and records (sender_id, seq); Errc::Replay when seen or too old; TooManySenders for
  // a new sender while max_senders() are already tracked (new senders are refused rather than
  // evicting a window, which would reopen that sender to replays).
  Result<void> check_and_add(std::uint16_t sender_id, std::uint32_t seq) noexcept;

  // The highest sequence number accepted from `sender_id` (anytun's max), nullopt for a sender
  // not tracked (never seen, cleared, or the window is off).
  std::optional<std::uint32_t> high_water(std::uint16_t sender_id) const noexcept;

  // For a node taking over a connection from another (relay cluster sync): afterwards every seq
  // up to and including `max` from `sender_id` is a replay, as if `max` had just been accepted
  // with everything below it seen. The window's max never moves back: if the sender's max is
  // already beyond `max`, it stays, but the slots at and below `max` that are still open are
  // marked seen (the other node may have accepted them). "Beyond" and "below" are meant as in
  // check_and_add, shifted near the ends of the 32-bit space. TooManySenders for a new sender as
  // in check_and_add; nothing to do when the window is off.
  Result<void> raise_to(std::uint16_t sender_id, std::uint32_t max) noexcept;

  // Forgets one sender or all (e.g. after rekeying or a sync takeover).
  void clear(std::uint16_t sender_id) noexcept;
  void clear() noexcept;

  std::uint32_t size() const noexcept { return size_; }
  std::size_t max_senders() const noexcept { return max_senders_; }
  std::size_t senders() const noexcept { return senders_.size(); }
  // Windows restarted by restart detection, over all senders.
  std::uint64_t restarts() const noexcept { return restarts_; }

 private:
  struct Sender {
    std::uint16_t id;
    std::uint32_t max;  // the highest seq accepted, unshifted
    std::uint32_t pos;  // the ring slot of max
    // Restart detection: the last packet older than the window and the length of the run.
    std::uint32_t old_seq;
    std::uint32_t old_run;
  };

  std::size_t words() const noexcept { return (size_ + 63) / 64; }
  bool test_and_set(std::size_t slot, std::uint32_t bit) noexcept;
  void set_all(std::size_t slot) noexcept;
  void clear_bit(std::size_t slot, std::uint32_t bit) noexcept;

  // A sender's window starting afresh at seq.
  void restart(std::size_t slot, std::uint32_t seq) noexcept;

  std::uint32_t size_;
  std::size_t max_senders_;
  std::uint32_t restart_after_;
  std::uint64_t restarts_ = 0;
  std::vector<Sender> senders_;
  std::vector<std::uint64_t> bits_;  // words() per sender, in the order of senders_
};

}  // namespace satp
