// Tests for dstm_server/tep_registry.hpp: liveness, weighted assignment, withdrawal queues.
#include "dstm_server/tep_registry.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <random>
#include <string>
#include <vector>

using core::Ipv4Address;
using dstm_server::Seconds;
using dstm_server::TepConfig;
using dstm_server::TepId;
using dstm_server::TepRegistry;

namespace {

constexpr Seconds kTimeout = 30;

TepConfig tep(std::string name, std::uint32_t weight = 1, bool heartbeat = true) {
  TepConfig t;
  t.name = name;
  t.weight = weight;
  t.heartbeat = heartbeat;
  if (heartbeat) t.user = "user-" + name;
  return t;
}

Ipv4Address ip(std::uint32_t n) {
  return Ipv4Address{0xC6336400u + n};  // 198.51.100.0 + n
}

// Every TEP heard at `now`.
void hear_all(TepRegistry& r, Seconds now) {
  for (TepId id = 0; id < r.size(); ++id) r.heard(id, now);
}

// pick() then add_lease() n times; the counts per TEP.
std::vector<std::uint64_t> assign_new_clients(TepRegistry& r, int n, Seconds now) {
  for (int i = 0; i < n; ++i) {
    const auto id = r.pick(now);
    REQUIRE(id.has_value());
    r.add_lease(*id);
  }
  std::vector<std::uint64_t> out;
  for (TepId id = 0; id < r.size(); ++id) out.push_back(r.leases(id));
  return out;
}

}  // namespace

TEST_CASE("tep registry: lookups by name and by user", "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a"), tep("b"), tep("static", 1, false)}, kTimeout};
  CHECK(r.size() == 3);
  CHECK(r.config(1).name == "b");
  CHECK(r.find_by_name("b") == std::optional<TepId>{1});
  CHECK(r.find_by_name("static") == std::optional<TepId>{2});
  CHECK_FALSE(r.find_by_name("c").has_value());
  CHECK(r.find_by_user("user-a") == std::optional<TepId>{0});
  CHECK_FALSE(r.find_by_user("a").has_value());
  CHECK_FALSE(r.find_by_user("").has_value());
}

TEST_CASE("tep registry: weights 1:2:1 share 400 new clients 100/200/100",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a", 1), tep("b", 2), tep("c", 1)}, kTimeout};
  hear_all(r, 0);
  CHECK(assign_new_clients(r, 400, 1) == std::vector<std::uint64_t>{100, 200, 100});
}

TEST_CASE("tep registry: the least loaded by weight wins, ties go to the TEP listed first",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a", 3), tep("b", 1), tep("c", 1000)}, kTimeout};
  hear_all(r, 0);
  // Empty: all tie at 0, the first wins.
  CHECK(r.pick(1) == std::optional<TepId>{0});
  // a: 3/3 = 1, b: 1/1 = 1, c: 1000/1000 = 1: a tie, the first wins.
  for (int i = 0; i < 3; ++i) r.add_lease(0);
  r.add_lease(1);
  for (int i = 0; i < 1000; ++i) r.add_lease(2);
  CHECK(r.pick(1) == std::optional<TepId>{0});
  // c: 999/1000 < 1.
  r.remove_lease(2);
  CHECK(r.leases(2) == 999);
  CHECK(r.pick(1) == std::optional<TepId>{2});
  // b: 0/1 beats everything.
  r.remove_lease(1);
  CHECK(r.pick(1) == std::optional<TepId>{1});
}

TEST_CASE("tep registry: dead TEPs are skipped, none alive gives nullopt",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a"), tep("b")}, kTimeout};
  CHECK_FALSE(r.pick(0).has_value());  // never heard from
  r.heard(1, 0);
  CHECK(r.pick(0) == std::optional<TepId>{1});
  r.heard(0, 0);
  r.add_lease(0);
  r.add_lease(0);
  CHECK(r.pick(1) == std::optional<TepId>{1});
  // Only a is heard again: b times out and a gets the client despite its load.
  r.heard(0, 20);
  CHECK(r.pick(30) == std::optional<TepId>{0});
  CHECK_FALSE(r.pick(50).has_value());
  CHECK_FALSE(TepRegistry({}, kTimeout).pick(0).has_value());
}

TEST_CASE("tep registry: a heartbeat TEP is alive for exactly `timeout` seconds after it is heard",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a")}, kTimeout};
  CHECK_FALSE(r.alive(0, 0));
  CHECK_FALSE(r.last_heard(0).has_value());
  r.heard(0, 100);
  CHECK(r.last_heard(0) == std::optional<Seconds>{100});
  CHECK(r.alive(0, 100));
  CHECK(r.alive(0, 100 + kTimeout - 1));
  CHECK_FALSE(r.alive(0, 100 + kTimeout));
  // A query or heartbeat later extends it.
  r.heard(0, 120);
  CHECK(r.alive(0, 120 + kTimeout - 1));
  CHECK_FALSE(r.alive(0, 120 + kTimeout));
}

TEST_CASE("tep registry: a TEP without heartbeat is always alive", "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("static", 1, false)}, kTimeout};
  CHECK(r.alive(0, 0));
  CHECK(r.alive(0, 1'000'000));
  CHECK(r.pick(1'000'000) == std::optional<TepId>{0});
  r.session_opened(0, 5);
  r.session_closed(0, 6);
  CHECK(r.alive(0, 6));
}

TEST_CASE("tep registry: the last TCP session closing kills a TEP at once",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a"), tep("b")}, kTimeout};
  r.heard(1, 0);
  r.session_opened(0, 10);  // opening counts as being heard
  CHECK(r.alive(0, 10));
  CHECK(r.last_heard(0) == std::optional<Seconds>{10});
  r.session_opened(0, 11);
  CHECK(r.sessions(0) == 2);
  r.session_closed(0, 12);
  CHECK(r.sessions(0) == 1);
  CHECK(r.alive(0, 12));  // one session is left
  r.session_closed(0, 13);
  CHECK(r.sessions(0) == 0);
  CHECK_FALSE(r.alive(0, 13));  // well within the timeout, yet dead
  CHECK(r.pick(13) == std::optional<TepId>{1});
  // Heard again (a UDP heartbeat), or a new session: alive again.
  r.heard(0, 14);
  CHECK(r.alive(0, 14));
  r.session_opened(0, 15);
  r.session_closed(0, 16);
  CHECK_FALSE(r.alive(0, 16));
  r.session_opened(0, 17);
  CHECK(r.alive(0, 17));
}

TEST_CASE("tep registry: assign keeps a live current TEP and moves a client off a dead one",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a"), tep("b", 5)}, kTimeout};
  hear_all(r, 0);
  r.add_lease(1);
  // b carries 1/5 per weight, a 0/1: a new client goes to a, a renewing client stays on b.
  CHECK(r.assign(std::nullopt, 1) == std::optional<TepId>{0});
  CHECK(r.assign(TepId{1}, 1) == std::optional<TepId>{1});
  // An id that is not a TEP (the config shrank): a new client.
  CHECK(r.assign(TepId{7}, 1) == std::optional<TepId>{0});
  // b is dead: moved to pick().
  r.heard(0, 20);
  CHECK(r.assign(TepId{1}, 40) == std::optional<TepId>{0});
  CHECK_FALSE(r.assign(TepId{1}, 60).has_value());
}

TEST_CASE("tep registry: withdrawals are queued for heartbeat TEPs, oldest first",
          "[dstm_server][tep_registry]") {
  TepRegistry r{{tep("a"), tep("static", 1, false), tep("c")}, kTimeout};
  for (std::uint32_t n = 1; n <= 5; ++n) r.withdraw(ip(n));
  CHECK(r.pending_withdrawals(0) == 5);
  CHECK(r.pending_withdrawals(1) == 0);
  CHECK(r.pending_withdrawals(2) == 5);

  auto first = r.take_withdrawals(0, 2);
  CHECK(first.addresses == std::vector{ip(1), ip(2)});
  CHECK_FALSE(first.flush);
  CHECK(r.pending_withdrawals(0) == 3);
  r.withdraw(ip(6));
  auto rest = r.take_withdrawals(0, 100);
  CHECK(rest.addresses == std::vector{ip(3), ip(4), ip(5), ip(6)});
  CHECK(r.pending_withdrawals(0) == 0);
  CHECK(r.take_withdrawals(0, 100).addresses.empty());

  // Each TEP has its own queue.
  CHECK(r.take_withdrawals(2, 100).addresses ==
        std::vector{ip(1), ip(2), ip(3), ip(4), ip(5), ip(6)});
  const auto none = r.take_withdrawals(1, 100);
  CHECK(none.addresses.empty());
  CHECK_FALSE(none.flush);
}

TEST_CASE("tep registry: an overflowing queue becomes a flush, then a fresh queue starts",
          "[dstm_server][tep_registry]") {
  constexpr auto kMax = TepRegistry::kMaxWithdrawals;
  TepRegistry r{{tep("a"), tep("b")}, kTimeout};
  for (std::uint32_t n = 0; n < kMax; ++n) r.withdraw(ip(n));
  CHECK(r.pending_withdrawals(0) == kMax);  // full, not yet overflowed

  r.withdraw(ip(100000));
  CHECK(r.pending_withdrawals(0) == 0);
  r.withdraw(ip(100001));  // covered by the pending flush
  CHECK(r.pending_withdrawals(0) == 0);

  auto taken = r.take_withdrawals(0, 64);
  CHECK(taken.flush);
  CHECK(taken.addresses.empty());

  r.withdraw(ip(7));
  taken = r.take_withdrawals(0, 64);
  CHECK_FALSE(taken.flush);
  CHECK(taken.addresses == std::vector{ip(7)});

  // b overflowed as well and keeps its own flag until it takes it; 198.51.100.7 came while
  // b's flush was pending, so the flush covers it.
  taken = r.take_withdrawals(1, 64);
  CHECK(taken.flush);
  CHECK(taken.addresses.empty());
  r.withdraw(ip(8));
  CHECK(r.take_withdrawals(1, 64).addresses == std::vector{ip(8)});
  CHECK(r.take_withdrawals(0, 64).addresses == std::vector{ip(8)});
}

TEST_CASE("tep registry: queues keep order across any interleaving of withdraw and take",
          "[dstm_server][tep_registry]") {
  constexpr auto kMax = TepRegistry::kMaxWithdrawals;
  TepRegistry r{{tep("a")}, kTimeout};
  // Model: a deque and a flag, dropped and set on overflow.
  std::deque<Ipv4Address> model;
  bool model_flush = false;
  std::mt19937 rng{7};
  std::uint32_t next = 0;
  for (int step = 0; step < 5000; ++step) {
    // Bursts a little larger than takes on average: the queue fills, overflows and drains.
    const auto burst = std::uniform_int_distribution<int>{0, 800}(rng);
    for (int i = 0; i < burst; ++i) {
      const auto a = ip(next++ % 60000);
      r.withdraw(a);
      if (model_flush) continue;
      if (model.size() >= kMax) {
        model.clear();
        model_flush = true;
      } else {
        model.push_back(a);
      }
    }
    const auto max = std::uniform_int_distribution<std::size_t>{0, 700}(rng);
    const auto got = r.take_withdrawals(0, max);
    std::vector<Ipv4Address> want;
    while (want.size() < max && !model.empty()) {
      want.push_back(model.front());
      model.pop_front();
    }
    REQUIRE(got.addresses == want);
    REQUIRE(got.flush == model_flush);
    model_flush = false;
    REQUIRE(r.pending_withdrawals(0) == model.size());
  }
}
