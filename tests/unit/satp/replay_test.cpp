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

TEST_CASE("replay: restart detection is off by default as in anytun", "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {{1, 1000000, true},
          {1, 0, false},
          {1, 1, false},
          {1, 2, false},
          {1, 3, false},
          {1, 4, false},
          {1, 5, false}});
  CHECK(w.restarts() == 0);
}

TEST_CASE("replay: a sender whose counter starts again is recognised at the kth packet",
          "[satp][replay]") {
  ReplayWindow w{8, satp::kDefaultMaxSenders, /*restart_after=*/4};
  run(w, {
             {1, 1000000, true},  // the sender's old run
             {1, 0, false},       // restarted: refused, a run of 1
             {1, 1, false},       // 2
             {1, 3, false},       // 3 (a step within the window size: lost packets are fine)
             {1, 4, true},        // 4: the window starts afresh here
             {1, 4, false},       // and is a window again
             {1, 5, true},
             {1, 2, true},  // never accepted, inside the new window
             {1, 3, true},  // refused during the run, so never delivered: once now
             {1, 3, false},
             {2, 50, true},  // other senders are untouched
         });
  CHECK(w.restarts() == 1);
  CHECK(w.high_water(1) == 5u);
}

TEST_CASE("replay: old packets that do not run on like a counter never restart a window",
          "[satp][replay]") {
  ReplayWindow w{8, satp::kDefaultMaxSenders, /*restart_after=*/3};
  run(w, {
             {1, 1000000, true},
             {1, 10, false},      // run of 1
             {1, 5000, false},    // a step larger than the window: a new run of 1
             {1, 4000, false},    // backwards: 1
             {1, 4001, false},    // 2
             {1, 1000001, true},  // accepted as usual: the run ends
             {1, 4002, false},    // 1 again
             {1, 4003, false},    // 2
             {1, 999999, true},   // inside the window, accepted: the run ends
             {1, 4004, false},    // 1
             {1, 4005, false},    // 2
             {1, 4006, true},     // 3: restarted
         });
  CHECK(w.restarts() == 1);
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

TEST_CASE("replay: high_water is the highest seq accepted per sender", "[satp][replay]") {
  ReplayWindow w{8};
  CHECK_FALSE(w.high_water(1));
  run(w, {{1, 100, true}, {1, 97, true}, {2, 5, true}});
  CHECK(w.high_water(1) == 100u);
  CHECK(w.high_water(2) == 5u);
  run(w, {{1, 103, true}, {1, 101, true}});
  CHECK(w.high_water(1) == 103u);
  run(w, {{3, 0xfffffffe, true}, {3, 0xffffffff, true}, {3, 0, true}});  // 0 is newer there
  CHECK(w.high_water(3) == 0u);
  w.clear(1);
  CHECK_FALSE(w.high_water(1));
  ReplayWindow off{0};
  run(off, {{1, 100, true}});
  CHECK_FALSE(off.high_water(1));
}

TEST_CASE("replay: raise_to on a new sender makes everything up to max a replay",
          "[satp][replay]") {
  for (std::uint32_t size : {1u, 7u, 8u, 64u, 100u}) {
    INFO("size " << size);
    ReplayWindow w{size};
    REQUIRE(w.raise_to(3, 1000));
    CHECK(w.high_water(3) == 1000u);
    for (std::uint32_t seq = 1000 - size - 2; seq <= 1000; ++seq) {
      INFO("seq " << seq);
      CHECK(w.check_and_add(3, seq).error() == Errc::Replay);
    }
    run(w, {{3, 1001, true}, {3, 1001, false}, {3, 1000, false}});
  }
}

TEST_CASE("replay: raise_to ahead of the window slides it with every slot seen", "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {{1, 100, true}, {1, 96, true}});  // 97..99 open
  REQUIRE(w.raise_to(1, 103));
  CHECK(w.high_water(1) == 103u);
  run(w, {
             {1, 103, false},
             {1, 102, false},
             {1, 99, false},  // was open: the other node may have accepted it
             {1, 96, false},
             {1, 104, true},
             {1, 97, false},  // now the oldest slot of the window, still marked
         });
}

TEST_CASE("replay: raise_to below the max keeps the max and closes open slots up to it",
          "[satp][replay]") {
  ReplayWindow w{8};
  run(w, {{1, 100, true}, {1, 105, true}});  // 98..99 and 101..104 open
  REQUIRE(w.raise_to(1, 102));
  CHECK(w.high_water(1) == 105u);
  run(w, {
             {1, 98, false},
             {1, 101, false},
             {1, 102, false},
             {1, 103, true},  // above the raised max: still open
             {1, 104, true},
             {1, 105, false},
             {1, 106, true},
         });
  // At the max itself: the slots below it close.
  ReplayWindow v{8};
  run(v, {{1, 100, true}});
  REQUIRE(v.raise_to(1, 100));
  CHECK(v.high_water(1) == 100u);
  run(v, {{1, 99, false}, {1, 93, false}, {1, 101, true}});
  // Far below the window: nothing to do, nothing changes.
  REQUIRE(v.raise_to(1, 5));
  CHECK(v.high_water(1) == 101u);
  run(v, {{1, 100, false}, {1, 102, true}});
}

TEST_CASE("replay: raise_to works across the 2^32 wrap", "[satp][replay]") {
  // A new sender just after the wrap: the numbers just below 2^32 are behind it.
  ReplayWindow w{8};
  REQUIRE(w.raise_to(1, 1));
  run(w, {{1, 0, false}, {1, 0xffffffff, false}, {1, 0xfffffffa, false}, {1, 2, true}});
  // Just before the wrap: 0 is ahead.
  ReplayWindow v{8};
  REQUIRE(v.raise_to(1, 0xfffffffe));
  run(v, {{1, 0xfffffffd, false}, {1, 0xffffffff, true}, {1, 0, true}, {1, 0xfffffffe, false}});
  // A known sender before the wrap raised past it: 2 is newer than 0xfffffffc.
  ReplayWindow u{8};
  run(u, {{1, 0xfffffffc, true}});
  REQUIRE(u.raise_to(1, 2));
  CHECK(u.high_water(1) == 2u);
  run(u, {{1, 0xfffffffd, false}, {1, 0xffffffff, false}, {1, 0, false}, {1, 3, true}});
  // And the other way: raised to just before the wrap while the max is past it.
  ReplayWindow t{8};
  run(t, {{1, 2, true}});
  REQUIRE(t.raise_to(1, 0xffffffff));
  CHECK(t.high_water(1) == 2u);
  run(t, {{1, 0xffffffff, false}, {1, 0xfffffffe, false}, {1, 0, true}, {1, 1, true}});
}

TEST_CASE("replay: raise_to refuses a new sender beyond the bound", "[satp][replay]") {
  ReplayWindow w{64, 1};
  run(w, {{1, 10, true}});
  CHECK(w.raise_to(2, 50).error() == Errc::TooManySenders);
  CHECK_FALSE(w.high_water(2));
  CHECK(w.raise_to(1, 50));
  CHECK(w.senders() == 1);
  ReplayWindow off{0};
  CHECK(off.raise_to(1, 50));
  run(off, {{1, 50, true}, {1, 50, true}});
  CHECK(off.senders() == 0);
}

TEST_CASE("replay: after raise_to nothing at or below the raised max is accepted",
          "[satp][replay]") {
  for (std::uint32_t size : {1u, 7u, 64u, 100u}) {
    for (std::uint32_t base : {0u, 1000000u, 0xffffff00u}) {
      std::mt19937 rng{size * 31 + base};
      std::uniform_int_distribution<std::int64_t> step(-std::int64_t{size}, std::int64_t{size});
      for (int round = 0; round < 50; ++round) {
        ReplayWindow w{size, 1};
        std::uint32_t seq = base;
        for (int i = 0; i < 20; ++i) {
          seq = static_cast<std::uint32_t>(seq + static_cast<std::uint32_t>(step(rng)));
          (void)w.check_and_add(9, seq);
        }
        const std::uint32_t before = w.high_water(9).value();
        const auto raised =
            static_cast<std::uint32_t>(before + static_cast<std::uint32_t>(2 * step(rng)));
        INFO("size " << size << " base " << base << " max " << before << " raised " << raised);
        REQUIRE(w.raise_to(9, raised));
        const std::uint32_t after = w.high_water(9).value();
        CHECK((after == before || after == raised));
        // Down to below the window, but not across 0 unless the window itself straddles it:
        // anytun's compare is shifted only while max is within `size` of an end, so with a max
        // of 14 and a window of 7, 0xffffffff is newer.
        for (std::uint32_t back = 0; back < size + 3 && (back <= raised || after < size); ++back)
          REQUIRE(w.check_and_add(9, raised - back).error() == Errc::Replay);
        CHECK(w.high_water(9) == after);
      }
    }
  }
}
