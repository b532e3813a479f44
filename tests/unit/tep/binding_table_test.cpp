// Tests for tep/binding_table.hpp: expiry at the boundary, updates, limits, the negative cache and
// the bounded sweep, on fake time points.
#include "tep/binding_table.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using tep::BindingOrigin;
using Installed = tep::BindingTable::Installed;

namespace {

const tep::TimePoint t0{1h};  // any fixed point: the table never reads a clock
constexpr auto kTick = tep::Clock::duration{1};

// 198.51.100.0/24 and beyond: documentation addresses, n-th from 198.51.100.0.
core::Ipv4Address v4(std::uint32_t n) {
  return core::Ipv4Address{0xC6336400u + n};
}
core::Ipv6Address v6(std::uint8_t n) {
  return core::Ipv6Address{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n}};
}

}  // namespace

TEST_CASE("binding_table: a binding is live until its expiry and gone at it",
          "[tep][binding_table]") {
  tep::BindingTable t;
  CHECK(t.install(v4(1), v6(1), 10s, t0, BindingOrigin::Traffic) == Installed::New);
  CHECK(t.size() == 1);

  const tep::Binding* b = t.find(v4(1), t0 + 10s - kTick);
  REQUIRE(b != nullptr);
  CHECK(b->client == v6(1));
  CHECK(b->expires == t0 + 10s);
  CHECK(b->learned == t0);
  CHECK(b->origin == BindingOrigin::Traffic);

  CHECK(t.find(v4(1), t0 + 10s) == nullptr);
  CHECK(t.size() == 0);  // erased by the lookup, not only hidden
  CHECK(t.find(v4(2), t0) == nullptr);
}

TEST_CASE("binding_table: a lifetime of 0 erases the binding and installs nothing",
          "[tep][binding_table]") {
  tep::BindingTable t;
  REQUIRE(t.install(v4(1), v6(1), 60s, t0, BindingOrigin::Query) == Installed::New);
  t.install_negative(v4(2), t0);

  CHECK(t.install(v4(1), v6(1), 0s, t0 + 1s, BindingOrigin::Traffic) == Installed::Updated);
  CHECK(t.find(v4(1), t0 + 1s) == nullptr);
  CHECK(t.size() == 0);

  CHECK(t.install(v4(3), v6(3), 0s, t0, BindingOrigin::Traffic) == Installed::Updated);
  CHECK(t.install(v4(3), v6(3), -5s, t0, BindingOrigin::Traffic) == Installed::Updated);
  CHECK(t.size() == 0);
  // Nothing learned about v4(2): its negative entry stays.
  CHECK(t.install(v4(2), v6(2), 0s, t0, BindingOrigin::Query) == Installed::Updated);
  CHECK(t.is_negative(v4(2), t0 + 1s));
}

TEST_CASE("binding_table: an update keeps counters and learned time, origin only upgrades",
          "[tep][binding_table]") {
  tep::BindingTable t;
  REQUIRE(t.install(v4(1), v6(1), 10s, t0, BindingOrigin::Query) == Installed::New);
  tep::Binding* b = t.find(v4(1), t0);
  REQUIRE(b != nullptr);
  b->packets_to_client = 3;
  b->bytes_to_client = 300;
  b->packets_from_client = 2;
  b->bytes_from_client = 200;

  CHECK(t.install(v4(1), v6(9), 30s, t0 + 5s, BindingOrigin::Traffic) == Installed::Updated);
  b = t.find(v4(1), t0 + 34s);
  REQUIRE(b != nullptr);
  CHECK(b->client == v6(9));
  CHECK(b->expires == t0 + 35s);
  CHECK(b->learned == t0);
  CHECK(b->origin == BindingOrigin::Traffic);
  CHECK(b->packets_to_client == 3);
  CHECK(b->bytes_to_client == 300);
  CHECK(b->packets_from_client == 2);
  CHECK(b->bytes_from_client == 200);

  // A Query answer does not downgrade a Traffic binding; a shorter lifetime is taken as is.
  CHECK(t.install(v4(1), v6(9), 2s, t0 + 6s, BindingOrigin::Query) == Installed::Updated);
  b = t.find(v4(1), t0 + 6s);
  REQUIRE(b != nullptr);
  CHECK(b->origin == BindingOrigin::Traffic);
  CHECK(b->expires == t0 + 8s);
  CHECK(t.find(v4(1), t0 + 8s) == nullptr);
  CHECK(t.size() == 0);
}

TEST_CASE("binding_table: installing over an expired binding starts a new one",
          "[tep][binding_table]") {
  tep::BindingTable t;
  REQUIRE(t.install(v4(1), v6(1), 10s, t0, BindingOrigin::Traffic) == Installed::New);
  t.find(v4(1), t0)->packets_to_client = 7;

  CHECK(t.install(v4(1), v6(2), 10s, t0 + 10s, BindingOrigin::Query) == Installed::New);
  const tep::Binding* b = t.find(v4(1), t0 + 10s);
  REQUIRE(b != nullptr);
  CHECK(b->client == v6(2));
  CHECK(b->learned == t0 + 10s);
  CHECK(b->origin == BindingOrigin::Query);
  CHECK(b->packets_to_client == 0);
  CHECK(t.size() == 1);
}

TEST_CASE("binding_table: Full while every binding is live, an expired one makes room",
          "[tep][binding_table]") {
  tep::BindingTable t{{.max_bindings = 3}};
  REQUIRE(t.install(v4(1), v6(1), 30s, t0, BindingOrigin::Traffic) == Installed::New);
  REQUIRE(t.install(v4(2), v6(2), 10s, t0, BindingOrigin::Traffic) == Installed::New);
  REQUIRE(t.install(v4(3), v6(3), 20s, t0, BindingOrigin::Traffic) == Installed::New);

  CHECK(t.install(v4(4), v6(4), 60s, t0 + 10s - kTick, BindingOrigin::Traffic) == Installed::Full);
  CHECK(t.size() == 3);
  CHECK(t.find(v4(4), t0 + 1s) == nullptr);
  // Updating an address already there needs no room.
  CHECK(t.install(v4(3), v6(3), 25s, t0 + 1s, BindingOrigin::Traffic) == Installed::Updated);

  // At t0 + 10s the binding of v4(2) is expired (not swept): it is the one evicted.
  CHECK(t.install(v4(4), v6(4), 60s, t0 + 10s, BindingOrigin::Traffic) == Installed::New);
  CHECK(t.size() == 3);
  CHECK(t.find(v4(1), t0 + 10s) != nullptr);
  CHECK(t.find(v4(3), t0 + 10s) != nullptr);
  CHECK(t.find(v4(4), t0 + 10s) != nullptr);
  CHECK(t.install(v4(5), v6(5), 60s, t0 + 10s, BindingOrigin::Traffic) == Installed::Full);
}

TEST_CASE("binding_table: a table of 0 bindings is always full", "[tep][binding_table]") {
  tep::BindingTable t{{.max_bindings = 0}};
  CHECK(t.install(v4(1), v6(1), 30s, t0, BindingOrigin::Traffic) == Installed::Full);
  CHECK(t.size() == 0);
}

TEST_CASE("binding_table: a huge lifetime saturates instead of overflowing",
          "[tep][binding_table]") {
  tep::BindingTable t{{.negative_ttl = std::chrono::seconds::max()}};
  CHECK(t.install(v4(1), v6(1), std::chrono::seconds::max(), t0, BindingOrigin::Query) ==
        Installed::New);
  CHECK(t.find(v4(1), tep::TimePoint::max() - kTick) != nullptr);
  t.install_negative(v4(2), t0);
  CHECK(t.is_negative(v4(2), tep::TimePoint::max() - kTick));
}

TEST_CASE("binding_table: a negative entry lasts negative_ttl", "[tep][binding_table]") {
  tep::BindingTable t{{.negative_ttl = 5s}};
  t.install_negative(v4(1), t0);
  CHECK(t.negative_size() == 1);
  CHECK(t.is_negative(v4(1), t0));
  CHECK(t.is_negative(v4(1), t0 + 5s - kTick));
  CHECK_FALSE(t.is_negative(v4(1), t0 + 5s));
  CHECK(t.negative_size() == 0);
  CHECK_FALSE(t.is_negative(v4(2), t0));

  // Entered again: the new entry counts from then.
  t.install_negative(v4(1), t0 + 10s);
  t.install_negative(v4(1), t0 + 12s);
  CHECK(t.negative_size() == 1);
  CHECK(t.is_negative(v4(1), t0 + 17s - kTick));
  CHECK_FALSE(t.is_negative(v4(1), t0 + 17s));
}

TEST_CASE("binding_table: negative entries and bindings exclude each other",
          "[tep][binding_table]") {
  tep::BindingTable t;
  REQUIRE(t.install(v4(1), v6(1), 60s, t0, BindingOrigin::Traffic) == Installed::New);
  t.install_negative(v4(1), t0 + 1s);
  CHECK(t.find(v4(1), t0 + 1s) == nullptr);
  CHECK(t.size() == 0);
  CHECK(t.is_negative(v4(1), t0 + 1s));

  CHECK(t.install(v4(1), v6(1), 60s, t0 + 2s, BindingOrigin::Query) == Installed::New);
  CHECK_FALSE(t.is_negative(v4(1), t0 + 2s));
  CHECK(t.negative_size() == 0);
  CHECK(t.find(v4(1), t0 + 2s) != nullptr);
}

TEST_CASE("binding_table: a full negative cache replaces the entry that expires first",
          "[tep][binding_table]") {
  tep::BindingTable t{{.max_negative = 3, .negative_ttl = 5s}};
  t.install_negative(v4(1), t0);
  t.install_negative(v4(2), t0 + 1s);
  t.install_negative(v4(3), t0 + 2s);
  t.install_negative(v4(1), t0 + 3s);  // v4(1) now expires last

  t.install_negative(v4(4), t0 + 3s);  // replaces v4(2), which expires first
  CHECK(t.negative_size() == 3);
  CHECK_FALSE(t.is_negative(v4(2), t0 + 3s));
  CHECK(t.is_negative(v4(1), t0 + 3s));
  CHECK(t.is_negative(v4(3), t0 + 3s));
  CHECK(t.is_negative(v4(4), t0 + 3s));

  t.install_negative(v4(5), t0 + 4s);  // replaces v4(3)
  CHECK_FALSE(t.is_negative(v4(3), t0 + 4s));
  CHECK(t.is_negative(v4(1), t0 + 4s));
  CHECK(t.is_negative(v4(4), t0 + 4s));
  CHECK(t.is_negative(v4(5), t0 + 4s));
  CHECK(t.negative_size() == 3);
}

TEST_CASE("binding_table: max_negative 0 keeps no negative entries", "[tep][binding_table]") {
  tep::BindingTable t{{.max_negative = 0}};
  REQUIRE(t.install(v4(1), v6(1), 60s, t0, BindingOrigin::Traffic) == Installed::New);
  t.install_negative(v4(1), t0);
  CHECK(t.negative_size() == 0);
  CHECK_FALSE(t.is_negative(v4(1), t0));
  CHECK(t.size() == 0);  // the binding still goes: the server said it is not leased
}

TEST_CASE("binding_table: erase and clear", "[tep][binding_table]") {
  tep::BindingTable t;
  REQUIRE(t.install(v4(1), v6(1), 60s, t0, BindingOrigin::Traffic) == Installed::New);
  REQUIRE(t.install(v4(2), v6(2), 60s, t0, BindingOrigin::Query) == Installed::New);
  t.install_negative(v4(3), t0);

  CHECK(t.erase(v4(1)));
  CHECK_FALSE(t.erase(v4(1)));
  CHECK(t.find(v4(1), t0) == nullptr);
  CHECK(t.find(v4(2), t0) != nullptr);
  CHECK_FALSE(t.erase(v4(3)));  // no binding, but the negative entry goes
  CHECK_FALSE(t.is_negative(v4(3), t0));

  REQUIRE(t.install(v4(4), v6(4), 60s, t0, BindingOrigin::Query) == Installed::New);
  t.install_negative(v4(5), t0);
  CHECK(t.clear() == 2);
  CHECK(t.size() == 0);
  CHECK(t.negative_size() == 0);
  CHECK(t.find(v4(2), t0) == nullptr);
  CHECK_FALSE(t.is_negative(v4(5), t0));
  CHECK(t.clear() == 0);

  // Still usable, limits included.
  tep::BindingTable small{{.max_bindings = 1}};
  REQUIRE(small.install(v4(1), v6(1), 60s, t0, BindingOrigin::Query) == Installed::New);
  CHECK(small.clear() == 1);
  CHECK(small.install(v4(2), v6(2), 60s, t0, BindingOrigin::Query) == Installed::New);
  CHECK(small.install(v4(3), v6(3), 60s, t0, BindingOrigin::Query) == Installed::Full);
}

TEST_CASE("binding_table: for_each and addresses list every binding", "[tep][binding_table]") {
  tep::BindingTable t;
  for (std::uint32_t i = 1; i <= 5; ++i)
    REQUIRE(t.install(v4(i), v6(static_cast<std::uint8_t>(i)), std::chrono::seconds{i}, t0,
                      BindingOrigin::Query) == Installed::New);
  t.install_negative(v4(9), t0);

  auto addresses = t.addresses();
  std::sort(addresses.begin(), addresses.end());
  CHECK(addresses == std::vector{v4(1), v4(2), v4(3), v4(4), v4(5)});

  std::map<core::Ipv4Address, core::Ipv6Address> seen;
  t.for_each([&](core::Ipv4Address a, const tep::Binding& b) { seen.emplace(a, b.client); });
  CHECK(seen.size() == 5);
  CHECK(seen.at(v4(4)) == v6(4));
}

TEST_CASE("binding_table: expire erases due entries in bounded steps until all are gone",
          "[tep][binding_table]") {
  constexpr std::uint32_t kBindings = 1000;
  constexpr std::uint32_t kNegative = 100;
  tep::BindingTable t{{.negative_ttl = 5s}};
  // Lifetimes 1..10 s, interleaved so that expiry order is not insertion order.
  for (std::uint32_t i = 0; i < kBindings; ++i)
    REQUIRE(t.install(v4(i), v6(1), std::chrono::seconds{1 + (i * 7) % 10}, t0,
                      BindingOrigin::Traffic) == Installed::New);
  for (std::uint32_t i = 0; i < kNegative; ++i) t.install_negative(v4(5000 + i), t0);

  CHECK(t.expire(t0 + 100s, 0) == 0);
  CHECK(t.size() == kBindings);

  SECTION("only due entries go") {
    // 1000 bindings, 100 of each lifetime: 500 have a lifetime of at most 5 s.
    std::size_t erased = 0;
    int calls = 0;
    for (bool progress = true; progress && calls < 1000; ++calls) {
      const std::size_t before = t.size() + t.negative_size();
      const std::size_t n = t.expire(t0 + 5s, 64);
      const std::size_t after = t.size() + t.negative_size();
      CHECK(before - after <= 64);  // bindings and negative entries share the budget
      erased += n;
      progress = after != before;
    }
    CHECK(erased == 500);
    CHECK(calls >= 10);  // 600 due entries, 64 per call, plus the call that finds none
    CHECK(t.size() == 500);
    CHECK(t.negative_size() == 0);  // due at t0 + 5s too, swept with what the bindings left
    for (std::uint32_t i = 0; i < kBindings; ++i) {
      const auto lifetime = std::chrono::seconds{1 + (i * 7) % 10};
      CAPTURE(i);
      CHECK((t.find(v4(i), t0 + 5s) != nullptr) == (lifetime > 5s));
    }
  }

  SECTION("every entry is reached over several calls") {
    std::size_t erased = 0;
    int calls = 0;
    std::size_t negative_before = t.negative_size();
    while ((t.size() != 0 || t.negative_size() != 0) && calls < 1000) {
      const std::size_t size_before = t.size();
      const std::size_t n = t.expire(t0 + 10s, 100);
      // At most 100 entries examined: bindings and negative entries together.
      CHECK(n == size_before - t.size());
      CHECK(n + (negative_before - t.negative_size()) <= 100);
      negative_before = t.negative_size();
      erased += n;
      ++calls;
    }
    CHECK(erased == kBindings);
    CHECK(calls == 11);  // 1100 entries, 100 per call
    CHECK(t.expire(t0 + 10s, 100) == 0);
  }
}

TEST_CASE("binding_table: random operations agree with a simple model", "[tep][binding_table]") {
  // The model: address -> binding, scanned in full for every decision. The table must agree on
  // every lookup, on New/Updated/Full and on its size. Both evict and sweep in expiry order;
  // time advances by 100.001 ms a step, so that no two expiries (whole seconds after a step)
  // ever tie and "the one that expires first" is one entry.
  constexpr std::size_t kMax = 16;
  constexpr std::size_t kMaxNegative = 8;
  tep::BindingTable t{{.max_bindings = kMax, .max_negative = kMaxNegative, .negative_ttl = 3s}};
  std::map<core::Ipv4Address, tep::Binding> model;
  std::map<core::Ipv4Address, tep::TimePoint> model_negative;
  const auto earliest = [](auto& m) {
    return std::min_element(m.begin(), m.end(), [](const auto& x, const auto& y) {
      if constexpr (std::is_same_v<std::decay_t<decltype(x.second)>, tep::Binding>)
        return x.second.expires < y.second.expires;
      else
        return x.second < y.second;
    });
  };

  std::mt19937 rng{12345};
  auto pick = [&](std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>{0, n}(rng);
  };
  tep::TimePoint now = t0;
  std::size_t full = 0;
  for (int step = 0; step < 20000; ++step) {
    now += 100001us;
    const auto a = v4(pick(47));
    const auto op = pick(5);
    CAPTURE(step, a, op);
    switch (op) {
      case 0:
      case 1: {
        const auto lifetime = std::chrono::seconds{pick(12)};
        const auto origin = pick(1) == 0 ? BindingOrigin::Query : BindingOrigin::Traffic;
        const auto got = t.install(a, v6(1), lifetime, now, origin);
        Installed want = Installed::Updated;
        if (lifetime == 0s) {
          model.erase(a);
        } else {
          model_negative.erase(a);
          auto it = model.find(a);
          if (it != model.end() && it->second.expires <= now) {
            model.erase(it);
            it = model.end();
          }
          if (it != model.end()) {
            it->second.expires = now + lifetime;
            if (origin == BindingOrigin::Traffic) it->second.origin = origin;
          } else if (model.size() >= kMax && earliest(model)->second.expires > now) {
            want = Installed::Full;
            ++full;
          } else {
            if (model.size() >= kMax) model.erase(earliest(model));
            model[a] = tep::Binding{.expires = now + lifetime, .origin = origin};
            want = Installed::New;
          }
        }
        CHECK(got == want);
        break;
      }
      case 2: {
        const tep::Binding* b = t.find(a, now);
        const auto it = model.find(a);
        const bool live = it != model.end() && it->second.expires > now;
        REQUIRE((b != nullptr) == live);
        if (b != nullptr) {
          CHECK(b->expires == it->second.expires);
          CHECK(b->origin == it->second.origin);
        } else if (it != model.end()) {
          model.erase(it);
        }
        break;
      }
      case 3:
        t.install_negative(a, now);
        model.erase(a);
        if (!model_negative.contains(a) && model_negative.size() >= kMaxNegative)
          model_negative.erase(earliest(model_negative));
        model_negative[a] = now + 3s;
        break;
      case 4: {
        const auto it = model_negative.find(a);
        const bool negative = it != model_negative.end() && it->second > now;
        CHECK(t.is_negative(a, now) == negative);
        if (it != model_negative.end() && !negative) model_negative.erase(it);
        break;
      }
      default: {
        const std::size_t budget = pick(4);
        std::size_t work = 0;
        std::size_t want = 0;
        for (; work < budget && !model.empty(); ++work) {
          const auto first = earliest(model);
          if (first->second.expires > now) {
            ++work;
            break;
          }
          model.erase(first);
          ++want;
        }
        for (; work < budget && !model_negative.empty(); ++work) {
          const auto first = earliest(model_negative);
          if (first->second > now) break;
          model_negative.erase(first);
        }
        CHECK(t.expire(now, budget) == want);
        break;
      }
    }
    REQUIRE(t.size() == model.size());
    REQUIRE(t.negative_size() == model_negative.size());
  }
  CHECK(full > 100);  // the limit was exercised
}
