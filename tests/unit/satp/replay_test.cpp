// Tests for satp/replay.hpp: anytun's window decisions as a table, the wrap at 2^32, bounded
// senders, and a randomized comparison with a shift-register model of anytun's SeqWindow.
#include "satp/replay.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

using satp::Errc;
using satp::ReplayWindow;

namespace {

struct Step {
  std::uint16_t sender;
  std::uint32_t seq;
  bool accepted;
};

void run(ReplayWindow& w, std::initializer_list<Step> steps) {
  int i = 0;
  for (const auto& s : steps) {
    INFO("step " << i++ << ": sender " << s.sender << " seq " << s.seq);
    const auto r = w.check_and_add(s.sender, s.seq);
    CHECK(r.has_value() == s.accepted);
    if (!r) CHECK((r.error() == Errc::Replay || r.error() == Errc::TooManySenders));
  }
}

// anytun's SeqWindow::checkAndAdd for one sender, written differently: a shift register of the
// last `size` sequence numbers below and at max (seen[d] = max - d was accepted).
class Model {
 public:
  explicit Model(std::uint32_t size) : size_{size}, seen_(size) {}

  bool accept(std::uint32_t seq) {
    if (size_ == 0) return true;
    if (!started_) {
      started_ = true;
      max_ = seq;
      seen_.assign(size_, false);
      seen_[0] = true;
      return true;
    }
    std::uint32_t m = max_, q = seq;
    constexpr std::uint32_t kShift = 0x7fffffff;
    if (m < size_) {
      m += kShift;
      q += kShift;
    } else if (m > 0xffffffffu - size_) {
      m -= kShift;
      q -= kShift;
    }
    if (q < m - size_ + 1 || q == m) return false;
    if (q > m) {
      const std::uint64_t diff = q - m;
      std::vector<bool> next(size_, false);
      for (std::uint64_t d = diff; d < size_; ++d) next[d] = seen_[d - diff];
      next[0] = true;
      seen_ = next;
      max_ = seq;
      return true;
    }
    const std::uint32_t d = m - q;
    if (seen_[d]) return false;
    seen_[d] = true;
    return true;
  }

 private:
  std::uint32_t size_;
  std::vector<bool> seen_;
  std::uint32_t max_ = 0;
  bool started_ = false;
};

}  // namespace

TEST_CASE("replay: window decisions follow anytun", "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {
             {1, 100, true},      // first packet of a sender sets max
             {1, 100, false},     // duplicate of max
             {1, 101, true},      // newer
             {1, 97, true},       // inside the window, not seen
             {1, 97, false},      // inside the window, seen
             {1, 93, false},      // older than max - size + 1 = 94
             {1, 94, true},       // the oldest slot of the window
             {1, 103, true},      // skips 102: its slot (which held 94) is cleared
             {1, 102, true},      // so 102 is new
             {1, 95, false},      // now below the window (96)
             {1, 1000000, true},  // far ahead: the whole window is cleared
             {1, 101, false},     // long gone
             {1, 999999, true},   // inside the new window
             {1, 999993, true},   // the oldest slot
             {1, 999992, false},  // just below
         });
}

TEST_CASE("replay: the window works across the 2^32 wrap", "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {
             {1, 0xfffffffd, true},
             {1, 0xfffffffe, true},
             {1, 0, true},  // after the wrap: newer
             {1, 1, true},
             {1, 0xffffffff, true},  // late but inside the window, across the wrap
             {1, 0xffffffff, false},
             {1, 0xfffffffd, false},  // seen before the wrap
             {1, 0xfffffff0, false},  // older than the window
             {1, 0, false},
         });
}

TEST_CASE("replay: a numerically higher seq is newer however far ahead", "[satp][replay]") {
  // anytun compares plainly away from the ends of the sequence space.
  ReplayWindow w{64};
  run(w, {
             {1, 1000, true},
             {1, 0x90000000, true},
             {1, 1001, false},
             {1, 0x8fffffff, true},
         });
}

TEST_CASE("replay: senders have separate windows", "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {
             {1, 100, true},
             {2, 100, true},
             {2, 50, false},  // sender 2 started at 100: 50 is old for it
             {1, 100, false},
         });
  CHECK(w.senders() == 2);
}

TEST_CASE("replay: a window of 1 accepts only rising numbers", "[satp][replay]") {
  ReplayWindow w{1};
  run(w, {{0, 5, true}, {0, 5, false}, {0, 4, false}, {0, 6, true}, {0, 8, true}, {0, 7, false}});
}

TEST_CASE("replay: size 0 turns the window off", "[satp][replay]") {
  ReplayWindow w{0};
  run(w, {{0, 5, true}, {0, 5, true}, {0, 4, true}});
  CHECK(w.senders() == 0);
}

TEST_CASE("replay: the window is on by default", "[satp][replay]") {
  ReplayWindow w;
  CHECK(w.size() == satp::kDefaultWindowSize);
  run(w, {{0, 5, true}, {0, 5, false}});
}

TEST_CASE("replay: senders are bounded and refused beyond the bound", "[satp][replay]") {
  ReplayWindow w{64, 2};
  run(w, {{1, 10, true}, {2, 10, true}, {3, 10, false}, {3, 11, false}});
  CHECK(w.check_and_add(3, 12).error() == Errc::TooManySenders);
  CHECK(w.check_and_add(1, 10).error() == Errc::Replay);
  CHECK(w.senders() == 2);
  w.clear(1);
  CHECK(w.senders() == 1);
  run(w, {{3, 10, true}, {2, 10, false}, {2, 11, true}, {1, 10, false}});
  w.clear();
  CHECK(w.senders() == 0);
  run(w, {{1, 10, true}, {2, 10, true}});
}

TEST_CASE("replay: clearing one sender keeps the others' windows", "[satp][replay]") {
  ReplayWindow w{100, 4};
  for (std::uint16_t s = 1; s <= 3; ++s)
    for (std::uint32_t q = 0; q < 150; q += 3) REQUIRE(w.check_and_add(s, q));
  w.clear(1);  // sender 3 moves into sender 1's slot
  for (std::uint16_t s = 2; s <= 3; ++s) {
    CHECK_FALSE(w.check_and_add(s, 147));
    CHECK(w.check_and_add(s, 146));
  }
}

TEST_CASE("replay: random sequences match a model of anytun's window", "[satp][replay]") {
  for (std::uint32_t size : {1u, 7u, 64u, 100u, 1024u}) {
    for (std::uint32_t base : {0u, 1000000u, 0xffffff00u}) {
      std::mt19937 rng{size ^ base};
      std::uniform_int_distribution<std::int64_t> step(-2 * std::int64_t{size} - 3,
                                                       std::int64_t{size} / 2 + 3);
      ReplayWindow w{size, 1};
      Model m{size};
      std::uint32_t seq = base;
      for (int i = 0; i < 5000; ++i) {
        seq = static_cast<std::uint32_t>(seq + static_cast<std::uint32_t>(step(rng)));
        if (i % 500 == 0) seq += size * 3;  // occasional jumps clear the window
        INFO("size " << size << " base " << base << " step " << i << " seq " << seq);
        REQUIRE(w.check_and_add(7, seq).has_value() == m.accept(seq));
      }
    }
  }
}
