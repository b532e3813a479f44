// Tests for tep/binding_table.hpp: expiry at the boundary, updates, limits, the negative cache and
// the bounded sweep, on fake time points.
#include "tep/binding_table.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <type_traits>
#include <utility>
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

// ---- the observer ----

namespace {

struct Event {
  enum Kind { Bound, Unbound, Cleared } kind;
  core::Ipv4Address address{};
  core::Ipv6Address client{};
  bool operator==(const Event&) const = default;
};

Event bound(core::Ipv4Address a, const core::Ipv6Address& c) {
  return {Event::Bound, a, c};
}
Event unbound(core::Ipv4Address a) {
  return {Event::Unbound, a, {}};
}
Event cleared() {
  return {Event::Cleared, {}, {}};
}

[[maybe_unused]] std::ostream& operator<<(std::ostream& os, const Event& e) {
  static constexpr const char* kNames[] = {"bound", "unbound", "cleared"};
  return os << kNames[e.kind] << ' ' << e.address.to_string() << ' ' << e.client.to_string();
}

// Records what it hears; take() hands over what came since the last take().
class Recorder final : public tep::BindingObserver {
 public:
  void bound(core::Ipv4Address a, const core::Ipv6Address& c) override {
    events_.push_back(::bound(a, c));
  }
  void unbound(core::Ipv4Address a) override { events_.push_back(::unbound(a)); }
  void cleared() override { events_.push_back(::cleared()); }
  std::vector<Event> take() { return std::exchange(events_, {}); }

 private:
  std::vector<Event> events_;
};

using Events = std::vector<Event>;

}  // namespace

TEST_CASE("binding_table: the observer hears of new bindings and of changed clients only",
          "[tep][binding_table]") {
  tep::BindingTable t{{.max_bindings = 2}};
  Recorder r;
  t.set_observer(&r);

  REQUIRE(t.install(v4(1), v6(1), 60s, t0, BindingOrigin::Query) == Installed::New);
  CHECK(r.take() == Events{bound(v4(1), v6(1))});
  // A refresh (lifetime, origin) changes nothing a mirror keeps.
  REQUIRE(t.install(v4(1), v6(1), 90s, t0 + 1s, BindingOrigin::Traffic) == Installed::Updated);
  CHECK(r.take().empty());
  // The lease moved to another client.
  REQUIRE(t.install(v4(1), v6(7), 90s, t0 + 2s, BindingOrigin::Traffic) == Installed::Updated);
  CHECK(r.take() == Events{bound(v4(1), v6(7))});

  REQUIRE(t.install(v4(2), v6(2), 60s, t0, BindingOrigin::Query) == Installed::New);
  CHECK(r.take() == Events{bound(v4(2), v6(2))});
  REQUIRE(t.install(v4(3), v6(3), 60s, t0 + 3s, BindingOrigin::Query) == Installed::Full);
  CHECK(r.take().empty());

  // Lookups of live bindings, negative entries and sweeps with nothing due are silent.
  CHECK(t.find(v4(1), t0 + 3s) != nullptr);
  CHECK(t.find(v4(3), t0 + 3s) == nullptr);
  t.install_negative(v4(4), t0 + 3s);
  CHECK(t.is_negative(v4(4), t0 + 3s));
  CHECK_FALSE(t.is_negative(v4(4), t0 + 9s));
  CHECK(t.expire(t0 + 3s) == 0);
  CHECK(r.take().empty());
}

TEST_CASE("binding_table: the observer hears of every binding that leaves",
          "[tep][binding_table]") {
  tep::BindingTable t{{.max_bindings = 3}};
  Recorder r;
  t.set_observer(&r);
  const auto install = [&](std::uint32_t n, std::chrono::seconds lifetime, tep::TimePoint now) {
    const auto got =
        t.install(v4(n), v6(static_cast<std::uint8_t>(n)), lifetime, now, BindingOrigin::Query);
    r.take();
    return got;
  };

  SECTION("erase") {
    REQUIRE(install(1, 60s, t0) == Installed::New);
    CHECK(t.erase(v4(1)));
    CHECK(r.take() == Events{unbound(v4(1))});
    t.install_negative(v4(2), t0);
    CHECK_FALSE(t.erase(v4(1)));
    CHECK_FALSE(t.erase(v4(2)));  // a negative entry only: no binding left
    CHECK(r.take().empty());
  }

  SECTION("expiry seen by find") {
    REQUIRE(install(1, 10s, t0) == Installed::New);
    CHECK(t.find(v4(1), t0 + 10s - kTick) != nullptr);
    CHECK(r.take().empty());
    CHECK(t.find(v4(1), t0 + 10s) == nullptr);
    CHECK(r.take() == Events{unbound(v4(1))});
    CHECK(t.find(v4(1), t0 + 10s) == nullptr);
    CHECK(r.take().empty());
  }

  SECTION("expiry swept by expire, in expiry order") {
    REQUIRE(install(1, 30s, t0) == Installed::New);
    REQUIRE(install(2, 10s, t0) == Installed::New);
    REQUIRE(install(3, 20s, t0) == Installed::New);
    CHECK(t.expire(t0 + 20s, 1) == 1);
    CHECK(r.take() == Events{unbound(v4(2))});
    CHECK(t.expire(t0 + 30s) == 2);
    CHECK(r.take() == Events{unbound(v4(3)), unbound(v4(1))});
  }

  SECTION("eviction of an expired binding by a full table") {
    REQUIRE(install(1, 30s, t0) == Installed::New);
    REQUIRE(install(2, 10s, t0) == Installed::New);
    REQUIRE(install(3, 20s, t0) == Installed::New);
    CHECK(t.install(v4(4), v6(4), 60s, t0 + 10s, BindingOrigin::Query) == Installed::New);
    CHECK(r.take() == Events{unbound(v4(2)), bound(v4(4), v6(4))});
  }

  SECTION("installing over an expired binding") {
    REQUIRE(install(1, 10s, t0) == Installed::New);
    CHECK(t.install(v4(1), v6(1), 10s, t0 + 10s, BindingOrigin::Query) == Installed::New);
    CHECK(r.take() == Events{unbound(v4(1)), bound(v4(1), v6(1))});
  }

  SECTION("a lifetime of 0") {
    REQUIRE(install(1, 60s, t0) == Installed::New);
    CHECK(t.install(v4(1), v6(1), 0s, t0 + 1s, BindingOrigin::Query) == Installed::Updated);
    CHECK(r.take() == Events{unbound(v4(1))});
    CHECK(t.install(v4(1), v6(1), 0s, t0 + 1s, BindingOrigin::Query) == Installed::Updated);
    CHECK(r.take().empty());
    // Also for a binding that expired unseen: the mirror still holds it.
    REQUIRE(install(2, 10s, t0) == Installed::New);
    CHECK(t.install(v4(2), v6(2), 0s, t0 + 20s, BindingOrigin::Query) == Installed::Updated);
    CHECK(r.take() == Events{unbound(v4(2))});
  }

  SECTION("a negative answer") {
    REQUIRE(install(1, 60s, t0) == Installed::New);
    t.install_negative(v4(1), t0 + 1s);
    CHECK(r.take() == Events{unbound(v4(1))});
    t.install_negative(v4(1), t0 + 2s);
    t.install_negative(v4(2), t0 + 2s);
    CHECK(r.take().empty());
    REQUIRE(install(3, 10s, t0) == Installed::New);
    t.install_negative(v4(3), t0 + 20s);  // expired, not swept: it goes too
    CHECK(r.take() == Events{unbound(v4(3))});
  }

  SECTION("max_negative 0 still erases the binding") {
    tep::BindingTable z{{.max_negative = 0}};
    z.set_observer(&r);
    REQUIRE(z.install(v4(1), v6(1), 60s, t0, BindingOrigin::Query) == Installed::New);
    z.install_negative(v4(1), t0);
    CHECK(r.take() == Events{bound(v4(1), v6(1)), unbound(v4(1))});
  }

  SECTION("clear tells cleared, not unbound for each") {
    REQUIRE(install(1, 60s, t0) == Installed::New);
    REQUIRE(install(2, 60s, t0) == Installed::New);
    CHECK(t.clear() == 2);
    CHECK(r.take() == Events{cleared()});
    CHECK(t.clear() == 0);
    CHECK(r.take() == Events{cleared()});
  }

  SECTION("no observer, or another one") {
    REQUIRE(install(1, 60s, t0) == Installed::New);
    t.set_observer(nullptr);
    CHECK(t.erase(v4(1)));
    REQUIRE(t.install(v4(2), v6(2), 60s, t0, BindingOrigin::Query) == Installed::New);
    CHECK(t.clear() == 1);
    CHECK(r.take().empty());
    Recorder other;
    t.set_observer(&other);
    REQUIRE(t.install(v4(3), v6(3), 60s, t0, BindingOrigin::Query) == Installed::New);
    CHECK(other.take() == Events{bound(v4(3), v6(3))});
    CHECK(r.take().empty());
  }
}

TEST_CASE("binding_table: a moved table keeps its bindings and its observer",
          "[tep][binding_table]") {
  Recorder r;
  tep::BindingTable a{{.max_bindings = 100}};
  a.set_observer(&r);
  for (std::uint32_t i = 0; i < 50; ++i)
    REQUIRE(a.install(v4(i), v6(1), std::chrono::seconds{10 + i}, t0, BindingOrigin::Query) ==
            Installed::New);
  r.take();
  tep::BindingTable b{std::move(a)};
  CHECK(b.size() == 50);
  CHECK(b.find(v4(49), t0) != nullptr);
  CHECK(b.expire(t0 + 10s) == 1);
  CHECK(r.take() == Events{unbound(v4(0))});
  tep::BindingTable c;
  c = std::move(b);
  CHECK(c.size() == 49);
  CHECK(c.limits().max_bindings == 100);
  CHECK(c.erase(v4(7)));
  CHECK(r.take() == Events{unbound(v4(7))});
}

// ---- large tables ----

TEST_CASE("binding_table: bindings keep their data through growth, erases and reuse",
          "[tep][binding_table]") {
  // Sequential pool addresses, and strides that a weak hash would pile into a few slots.
  const std::uint32_t stride = GENERATE(1u, 2u, 256u, 1u << 12, 1u << 15);
  CAPTURE(stride);
  constexpr std::uint32_t kCount = 100'000;
  const auto address = [&](std::uint32_t i) { return core::Ipv4Address{0x0A000000u + i * stride}; };
  tep::BindingTable t{{.max_bindings = kCount}};
  // Lifetimes spread over 1000 s, so the heap is not in insertion order either.
  const auto lifetime = [](std::uint32_t i) { return std::chrono::seconds{1 + (i * 7919) % 1000}; };
  for (std::uint32_t i = 0; i < kCount; ++i) {
    REQUIRE(t.install(address(i), v6(static_cast<std::uint8_t>(i)), lifetime(i), t0,
                      BindingOrigin::Query) == Installed::New);
    t.find(address(i), t0)->packets_to_client = i;  // a mark that must travel with the binding
  }
  CHECK(t.size() == kCount);
  CHECK(t.install(address(kCount), v6(0), 10s, t0, BindingOrigin::Query) == Installed::Full);

  // Erase every third (index entries shift back over the holes), check, then refill the holes
  // with other addresses and check again.
  const auto check = [&](std::uint32_t erased_from) {
    for (std::uint32_t i = 0; i < kCount; ++i) {
      const tep::Binding* b = t.find(address(i), t0);
      if (i % 3 == 0 && i >= erased_from) {
        REQUIRE(b == nullptr);
        continue;
      }
      REQUIRE(b != nullptr);
      REQUIRE(b->packets_to_client == i);
      REQUIRE(b->client == v6(static_cast<std::uint8_t>(i)));
      REQUIRE(b->expires == t0 + lifetime(i));
    }
  };
  for (std::uint32_t i = 0; i < kCount; i += 3) REQUIRE(t.erase(address(i)));
  check(0);
  for (std::uint32_t i = 0; i < kCount / 2; i += 3) {
    REQUIRE(t.install(address(i), v6(static_cast<std::uint8_t>(i)), lifetime(i), t0,
                      BindingOrigin::Query) == Installed::New);
    t.find(address(i), t0)->packets_to_client = i;
  }
  check(kCount / 2);
  for (std::uint32_t i = 0; i < kCount / 2; i += 3) REQUIRE(t.erase(address(i)));
  check(0);
  // Misses: addresses never installed.
  for (std::uint32_t i = kCount; i < kCount + 10'000; ++i)
    REQUIRE(t.find(address(i), t0) == nullptr);

  auto listed = t.addresses();
  std::sort(listed.begin(), listed.end());
  std::vector<core::Ipv4Address> want;
  for (std::uint32_t i = 0; i < kCount; ++i)
    if (i % 3 != 0) want.push_back(address(i));
  std::sort(want.begin(), want.end());
  CHECK(listed == want);

  // The sweep takes them in expiry order: by lifetime, every binding of one second before the
  // next.
  Recorder r;
  t.set_observer(&r);
  std::size_t swept = 0;
  for (std::uint32_t s = 1; s <= 1000; s += 97) {
    swept += t.expire(t0 + std::chrono::seconds{s}, kCount);
    for (const auto& e : r.take()) {
      REQUIRE(e.kind == Event::Unbound);
      const std::uint32_t i = (e.address.to_uint() - 0x0A000000u) / stride;
      REQUIRE(lifetime(i) <= std::chrono::seconds{s});
      REQUIRE(lifetime(i) > std::chrono::seconds{s} - 97s);
    }
    REQUIRE(t.size() == want.size() - swept);
  }
  CHECK(t.expire(t0 + 1000s, kCount) == want.size() - swept);
  CHECK(t.size() == 0);
}

TEST_CASE("binding_table: random churn on a large table agrees with a model, events included",
          "[tep][binding_table]") {
  // The model: an ordered map per kind of entry plus a set in expiry order, so that "the first
  // to expire" is exact. Time advances 1 ms + 3 ns a step and lifetimes are whole seconds: no
  // two expiries ever tie (1'000'003 is prime to 10^9), so expiry order is one order. Every
  // operation's observer events are checked against what the model says left or came; a
  // mirror built from the events alone must equal the table.
  constexpr std::size_t kMax = 10'000;
  constexpr std::size_t kMaxNegative = 1'000;
  constexpr std::uint32_t kAddresses = 30'000;
  constexpr auto kTtl = 3s;
  constexpr int kSteps = 150'000;
  tep::BindingTable t{{.max_bindings = kMax, .max_negative = kMaxNegative, .negative_ttl = kTtl}};
  Recorder r;
  t.set_observer(&r);

  std::map<core::Ipv4Address, tep::Binding> model;
  std::set<std::pair<tep::TimePoint, core::Ipv4Address>> order;
  std::map<core::Ipv4Address, tep::TimePoint> negative;
  std::set<std::pair<tep::TimePoint, core::Ipv4Address>> negative_order;
  std::map<core::Ipv4Address, core::Ipv6Address> mirror;  // from the events only

  const auto drop = [&](std::map<core::Ipv4Address, tep::Binding>::iterator it) {
    order.erase({it->second.expires, it->first});
    model.erase(it);
  };
  const auto drop_negative = [&](std::map<core::Ipv4Address, tep::TimePoint>::iterator it) {
    negative_order.erase({it->second, it->first});
    negative.erase(it);
  };
  const auto apply = [&](const Events& events) {
    for (const auto& e : events) {
      switch (e.kind) {
        case Event::Bound:
          mirror[e.address] = e.client;
          break;
        case Event::Unbound:
          REQUIRE(mirror.erase(e.address) == 1);
          break;
        case Event::Cleared:
          mirror.clear();
          break;
      }
    }
  };

  std::mt19937 rng{2024};
  const auto pick = [&](std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>{0, n}(rng);
  };
  tep::TimePoint now = t0;
  std::size_t full = 0;
  std::size_t evicted = 0;
  std::size_t swept = 0;
  std::size_t peak = 0;
  for (int step = 0; step < kSteps; ++step) {
    now += 1'000'003ns;
    const auto a = core::Ipv4Address{0x64400000u + pick(kAddresses - 1)};  // 100.64.0.0/10
    const auto op = pick(99);
    CAPTURE(step, a, op);
    Events want;
    if (step == kSteps / 2) {  // a flush, once
      CHECK(t.clear() == model.size());
      model.clear();
      order.clear();
      negative.clear();
      negative_order.clear();
      want.push_back(cleared());
    } else if (op < 45) {  // install, now and then with a lifetime of 0
      const auto lifetime = op < 2 ? 0s : std::chrono::seconds{1 + pick(199)};
      const auto client = v6(static_cast<std::uint8_t>(pick(3)));
      const auto origin = pick(1) == 0 ? BindingOrigin::Query : BindingOrigin::Traffic;
      const auto got = t.install(a, client, lifetime, now, origin);
      auto it = model.find(a);
      Installed expected = Installed::Updated;
      if (lifetime == 0s) {
        if (it != model.end()) {
          drop(it);
          want.push_back(unbound(a));
        }
      } else {
        if (const auto n = negative.find(a); n != negative.end()) drop_negative(n);
        if (it != model.end() && it->second.expires <= now) {
          drop(it);
          want.push_back(unbound(a));
          it = model.end();
        }
        if (it != model.end()) {
          if (it->second.client != client) want.push_back(bound(a, client));
          order.erase({it->second.expires, a});
          it->second.client = client;
          it->second.expires = now + lifetime;
          if (origin == BindingOrigin::Traffic) it->second.origin = origin;
          order.emplace(it->second.expires, a);
        } else if (model.size() >= kMax && order.begin()->first > now) {
          expected = Installed::Full;
          ++full;
        } else {
          if (model.size() >= kMax) {
            const auto first = order.begin()->second;
            want.push_back(unbound(first));
            drop(model.find(first));
            ++evicted;
          }
          model[a] = tep::Binding{
              .client = client, .expires = now + lifetime, .learned = now, .origin = origin};
          order.emplace(now + lifetime, a);
          want.push_back(bound(a, client));
          expected = Installed::New;
        }
      }
      REQUIRE(got == expected);
    } else if (op < 75) {  // a lookup; a hit counts a packet, which must stay with the binding
      tep::Binding* b = t.find(a, now);
      const auto it = model.find(a);
      const bool live = it != model.end() && it->second.expires > now;
      REQUIRE((b != nullptr) == live);
      if (live) {
        REQUIRE(b->client == it->second.client);
        REQUIRE(b->expires == it->second.expires);
        REQUIRE(b->learned == it->second.learned);
        REQUIRE(b->origin == it->second.origin);
        REQUIRE(b->packets_to_client == it->second.packets_to_client);
        ++b->packets_to_client;
        ++it->second.packets_to_client;
      } else if (it != model.end()) {
        drop(it);
        want.push_back(unbound(a));
      }
    } else if (op < 80) {
      t.install_negative(a, now);
      if (const auto it = model.find(a); it != model.end()) {
        drop(it);
        want.push_back(unbound(a));
      }
      if (const auto n = negative.find(a); n != negative.end()) {
        drop_negative(n);
      } else if (negative.size() >= kMaxNegative) {
        drop_negative(negative.find(negative_order.begin()->second));
      }
      negative[a] = now + kTtl;
      negative_order.emplace(now + kTtl, a);
    } else if (op < 85) {
      const auto n = negative.find(a);
      const bool is = n != negative.end() && n->second > now;
      REQUIRE(t.is_negative(a, now) == is);
      if (n != negative.end() && !is) drop_negative(n);
    } else if (op < 90) {
      const auto it = model.find(a);
      if (const auto n = negative.find(a); n != negative.end()) drop_negative(n);
      REQUIRE(t.erase(a) == (it != model.end()));
      if (it != model.end()) {
        drop(it);
        want.push_back(unbound(a));
      }
    } else {  // a sweep with a small budget: exactly the first due entries, in expiry order
      const std::size_t budget = pick(64);
      std::size_t work = 0;
      std::size_t erased = 0;
      for (; work < budget && !order.empty(); ++work) {
        const auto [expires, first] = *order.begin();
        if (expires > now) {
          ++work;
          break;
        }
        want.push_back(unbound(first));
        drop(model.find(first));
        ++erased;
      }
      for (; work < budget && !negative_order.empty(); ++work) {
        const auto [expires, first] = *negative_order.begin();
        if (expires > now) break;
        drop_negative(negative.find(first));
      }
      REQUIRE(t.expire(now, budget) == erased);
      swept += erased;
    }
    const auto events = r.take();
    REQUIRE(events == want);
    apply(events);
    REQUIRE(t.size() == model.size());
    REQUIRE(t.negative_size() == negative.size());
    peak = std::max(peak, model.size());

    if (step % 25'000 == 0 || step == kSteps - 1) {
      std::map<core::Ipv4Address, core::Ipv6Address> listed;
      t.for_each([&](core::Ipv4Address x, const tep::Binding& b) { listed.emplace(x, b.client); });
      std::map<core::Ipv4Address, core::Ipv6Address> modelled;
      for (const auto& [x, b] : model) modelled.emplace(x, b.client);
      REQUIRE(listed == modelled);
      REQUIRE(mirror == modelled);
    }
  }
  CAPTURE(full, evicted, swept);
  CHECK(peak == kMax);  // the table filled
  CHECK(full > 1000);
  CHECK(evicted > 1000);
  CHECK(swept > 1000);
}
