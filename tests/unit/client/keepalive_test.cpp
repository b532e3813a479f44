// Tests for dstm_client/keepalive.hpp: probe cadence, answer window, fast probing after a miss,
// loss after consecutive misses, replies out of order, bounded state.
#include "dstm_client/keepalive.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <vector>

using namespace std::chrono_literals;
using dstm_client::KeepaliveConfig;
using dstm_client::KeepaliveMonitor;
using dstm_client::TimePoint;

namespace {

const TimePoint kT0{std::chrono::hours{1000}};

KeepaliveConfig config(std::chrono::milliseconds interval, unsigned misses = 3) {
  return KeepaliveConfig{.interval = interval, .max_misses = misses};
}

// Drives the monitor like the daemon does: poll at each wakeup until `until` (or the loss) and
// returns the (time since kT0, sequence) of every probe sent. `answer(seq, t)` decides whether
// a probe sent at t is answered, which happens 10 ms later.
struct Run {
  std::vector<std::pair<std::chrono::milliseconds, std::uint16_t>> probes;
  std::optional<std::chrono::milliseconds> lost_at;
};
template <typename Answer>
Run drive(KeepaliveMonitor& m, std::chrono::milliseconds until, Answer answer) {
  Run run;
  std::vector<std::pair<TimePoint, std::uint16_t>> replies;  // due replies
  TimePoint now = kT0;
  for (int steps = 0; steps < 10000 && now <= kT0 + until; ++steps) {
    const auto step = m.poll(now);
    if (step.probe) {
      run.probes.emplace_back(std::chrono::duration_cast<std::chrono::milliseconds>(now - kT0),
                              *step.probe);
      if (answer(*step.probe, now - kT0)) replies.emplace_back(now + 10ms, *step.probe);
    }
    if (step.lost) {
      run.lost_at = std::chrono::duration_cast<std::chrono::milliseconds>(now - kT0);
      break;
    }
    TimePoint next = m.next_wakeup();
    for (const auto& r : replies) next = std::min(next, r.first);
    now = next;
    for (auto it = replies.begin(); it != replies.end();) {
      if (it->first <= now) {
        m.on_reply(it->second);
        it = replies.erase(it);
      } else {
        ++it;
      }
    }
  }
  return run;
}

}  // namespace

TEST_CASE("keepalive: answered probes go out every interval, never lost", "[client]") {
  KeepaliveMonitor m{config(30s), kT0, 7};
  const auto run = drive(m, 100s, [](auto, auto) { return true; });
  CHECK_FALSE(run.lost_at);
  REQUIRE(run.probes.size() == 4);
  CHECK(run.probes[0] == std::pair{0ms, std::uint16_t{7}});
  CHECK(run.probes[1] == std::pair{std::chrono::milliseconds{30s}, std::uint16_t{8}});
  CHECK(run.probes[2] == std::pair{std::chrono::milliseconds{60s}, std::uint16_t{9}});
  CHECK(run.probes[3] == std::pair{std::chrono::milliseconds{90s}, std::uint16_t{10}});
  CHECK(m.sent() == 4);
  CHECK(m.answered() == 4);
  CHECK(m.missed() == 0);
  CHECK(m.consecutive_misses() == 0);
}

TEST_CASE("keepalive: a dead TEP is lost after three misses, probing every second", "[client]") {
  KeepaliveMonitor m{config(30s), kT0};
  const auto run = drive(m, 100s, [](auto, auto) { return false; });
  // Probe at 0 (window 2 s) misses at 2; then probes at 2, 3, 4 (every second); 2's miss at 4,
  // 3's at 5: three consecutive misses.
  REQUIRE(run.lost_at);
  CHECK(*run.lost_at == 5s);
  std::vector<std::chrono::milliseconds> times;
  for (const auto& p : run.probes) times.push_back(p.first);
  CHECK(times == std::vector<std::chrono::milliseconds>{0s, 2s, 3s, 4s});
  CHECK(m.lost());
  CHECK(m.missed() == 3);
  CHECK(m.outstanding() == 0);
  // Lost stays lost: no more probes, replies are ignored.
  CHECK(m.poll(kT0 + 60s) == KeepaliveMonitor::Step{.probe = std::nullopt, .lost = true});
  CHECK_FALSE(m.on_reply(4));
}

TEST_CASE("keepalive: the TEP dies after answering: lost about interval + 5 s later", "[client]") {
  KeepaliveMonitor m{config(30s), kT0};
  const auto run = drive(m, 200s, [](auto, auto sent) { return sent < 10s; });
  REQUIRE(run.lost_at);
  CHECK(*run.lost_at == 35s);
}

TEST_CASE("keepalive: one miss then an answer returns to the normal interval", "[client]") {
  KeepaliveMonitor m{config(10s), kT0};
  // Only the probe sent at 10 s goes unanswered.
  const auto run = drive(m, 45s, [](auto, auto sent) { return sent != 10s; });
  CHECK_FALSE(run.lost_at);
  std::vector<std::chrono::milliseconds> times;
  for (const auto& p : run.probes) times.push_back(p.first);
  // 10 s misses at 12 s; the fast probe at 12 s is answered; then every 10 s again.
  CHECK(times == std::vector<std::chrono::milliseconds>{0s, 10s, 12s, 22s, 32s, 42s});
  CHECK(m.missed() == 1);
  CHECK(m.consecutive_misses() == 0);
}

TEST_CASE("keepalive: the answer window is min(interval, 2 s)", "[client]") {
  KeepaliveMonitor m{config(1s, 2), kT0};
  auto step = m.poll(kT0);
  REQUIRE(step.probe);
  // With a 1 s interval the window is 1 s: the probe is missed at 1 s.
  CHECK(m.next_wakeup() == kT0 + 1s);
  step = m.poll(kT0 + 1s);
  CHECK(m.consecutive_misses() == 1);
  REQUIRE(step.probe);  // the next probe is due at once
  step = m.poll(kT0 + 2s);
  CHECK(step.lost);
}

TEST_CASE("keepalive: late, unknown and duplicate replies do not count", "[client]") {
  KeepaliveMonitor m{config(30s), kT0, 100};
  REQUIRE(m.poll(kT0).probe == std::uint16_t{100});
  CHECK_FALSE(m.on_reply(99));         // never sent
  CHECK_FALSE(m.on_reply(101));        // not sent yet
  const auto next = m.poll(kT0 + 2s);  // 100 missed; 101 goes out at once (fast probing)
  CHECK(m.consecutive_misses() == 1);
  REQUIRE(next.probe == std::uint16_t{101});
  CHECK_FALSE(m.on_reply(100));  // too late
  CHECK(m.consecutive_misses() == 1);
  CHECK(m.on_reply(101));
  CHECK_FALSE(m.on_reply(101));  // duplicate
  CHECK(m.answered() == 1);
  CHECK(m.consecutive_misses() == 0);
}

TEST_CASE("keepalive: a reply answers its probe and the older ones", "[client]") {
  KeepaliveMonitor m{config(30s, 5), kT0, 1};
  m.poll(kT0);       // 1, window to 2 s
  m.poll(kT0 + 2s);  // 1 missed, 2 sent
  m.poll(kT0 + 3s);  // 3 sent; 2 and 3 outstanding
  CHECK(m.outstanding() == 2);
  CHECK(m.on_reply(3));
  CHECK(m.outstanding() == 0);
  CHECK(m.consecutive_misses() == 0);
  CHECK_FALSE(m.on_reply(2));
  // Back to the normal interval after the last probe (sent at 3 s).
  CHECK(m.next_wakeup() == kT0 + 33s);
}

TEST_CASE("keepalive: sequence numbers wrap around", "[client]") {
  KeepaliveMonitor m{config(5s), kT0, 0xffff};
  REQUIRE(m.poll(kT0).probe == std::uint16_t{0xffff});
  CHECK(m.on_reply(0xffff));
  REQUIRE(m.poll(kT0 + 5s).probe == std::uint16_t{0});
  CHECK(m.on_reply(0));
}

TEST_CASE("keepalive: outstanding probes stay bounded", "[client]") {
  // A window longer than the fast cadence (3 s against 1 s) with many misses allowed: the
  // monitor never holds more than max_outstanding probes.
  KeepaliveConfig c{.interval = 10s, .max_misses = 20, .max_wait = 3s, .max_outstanding = 2};
  KeepaliveMonitor m{c, kT0};
  TimePoint now = kT0;
  for (int i = 0; i < 200 && !m.lost(); ++i) {
    m.poll(now);
    CHECK(m.outstanding() <= 2);
    now = m.next_wakeup();
  }
  CHECK(m.lost());
}
