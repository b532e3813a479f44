// Tests for dstm_server/lease_table.hpp: grants, sticky renewal, grace, reap, restore, limits.
#include "dstm_server/lease_table.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using dstm_server::Errc;
using dstm_server::Lease;
using dstm_server::LeaseState;
using dstm_server::LeaseTable;
using dstm_server::LeaseView;
using dstm_server::Pool;
using dstm_server::PoolConfig;
using dstm_server::Seconds;

namespace {

Ipv4Address ip(const char* text) {
  return Ipv4Address::parse(text).value();
}
Ipv6Address ip6(const char* text) {
  return Ipv6Address::parse(text).value();
}

// 192.0.2.0/29: six usable addresses, .1 to .6.
LeaseTable small_table(Seconds grace) {
  return LeaseTable{
      Pool::make(PoolConfig{.prefixes = {Ipv4Prefix::parse("192.0.2.0/29").value()}}).value(),
      grace};
}

// The table's invariants: no IPv4 is held by two leases, no key has two leases, both indexes
// agree with the records, and the pool's used count is exactly the table's leases.
void check_invariants(const LeaseTable& t) {
  std::set<std::uint32_t> addresses;
  std::set<std::pair<Ipv6Address, std::string>> keys;
  std::size_t active = 0;
  std::size_t held = 0;
  t.for_each([&](const LeaseView& v) {
    INFO(v.ipv4 << " " << v.client << " '" << v.identity << "'");
    CHECK(addresses.insert(v.ipv4.to_uint()).second);
    CHECK(keys.emplace(v.client, std::string{v.identity}).second);
    CHECK(t.pool().is_allocated(v.ipv4));
    const auto by_address = t.find(v.ipv4);
    REQUIRE(by_address);
    CHECK(by_address->client == v.client);
    CHECK(by_address->identity == v.identity);
    const auto by_key = t.find(v.client, v.identity);
    REQUIRE(by_key);
    CHECK(by_key->ipv4 == v.ipv4);
    (v.state == LeaseState::active ? active : held) += 1;
  });
  CHECK(addresses.size() == t.size());
  CHECK(active == t.active());
  CHECK(held == t.held());
  CHECK(t.pool().used() == t.size());
}

std::vector<Lease> snapshot(const LeaseTable& t) {
  std::vector<Lease> out;
  t.for_each([&](const LeaseView& v) { out.push_back(v.to_lease()); });
  std::sort(out.begin(), out.end(), [](const Lease& a, const Lease& b) { return a.ipv4 < b.ipv4; });
  return out;
}

}  // namespace

TEST_CASE("lease table: acquire grants an address with its times and TEP", "[dstm_server][lease]") {
  auto t = small_table(60);
  auto g = t.acquire(ip6("2001:db8::1"), "alice", "tep-a", 1000, 3600);
  REQUIRE(g);
  CHECK_FALSE(g->renewed);
  CHECK_FALSE(g->evicted);
  CHECK(g->lease == Lease{.ipv4 = ip("192.0.2.1"),
                          .client = ip6("2001:db8::1"),
                          .identity = "alice",
                          .tep = "tep-a",
                          .granted_at = 1000,
                          .expires_at = 4600,
                          .state = LeaseState::active});
  CHECK(t.find(ip("192.0.2.1"))->to_lease() == g->lease);
  CHECK(t.find(ip6("2001:db8::1"), "alice")->to_lease() == g->lease);
  CHECK_FALSE(t.find(ip6("2001:db8::1"), ""));
  CHECK_FALSE(t.find(ip("192.0.2.2")));
  CHECK(t.size() == 1);
  CHECK(t.active() == 1);
  check_invariants(t);
}

TEST_CASE("lease table: the same (ipv6, identity) gets the same address back while active",
          "[dstm_server][lease]") {
  auto t = small_table(60);
  const auto first = t.acquire(ip6("2001:db8::1"), "", "tep-a", 0, 100).value().lease;
  // Another identity on the same IPv6, and the same identity on another IPv6, are other clients.
  const auto other_identity = t.acquire(ip6("2001:db8::1"), "bob", "tep-a", 0, 100).value();
  const auto other_ipv6 = t.acquire(ip6("2001:db8::2"), "", "tep-a", 0, 100).value();
  CHECK(other_identity.lease.ipv4 != first.ipv4);
  CHECK(other_ipv6.lease.ipv4 != first.ipv4);

  auto again = t.acquire(ip6("2001:db8::1"), "", "tep-b", 50, 100);
  REQUIRE(again);
  CHECK(again->renewed);
  CHECK(again->lease.ipv4 == first.ipv4);
  CHECK(again->lease.granted_at == 0);  // still the same active period
  CHECK(again->lease.expires_at == 150);
  CHECK(again->lease.tep == "tep-b");
  CHECK(t.size() == 3);
  check_invariants(t);
}

TEST_CASE("lease table: renew extends an existing lease and never allocates",
          "[dstm_server][lease]") {
  auto t = small_table(60);
  const auto granted = t.acquire(ip6("2001:db8::1"), "alice", "tep-a", 0, 100).value().lease;
  auto renewed = t.renew(ip6("2001:db8::1"), "alice", 90, 100);
  REQUIRE(renewed);
  CHECK(renewed->ipv4 == granted.ipv4);
  CHECK(renewed->expires_at == 190);
  CHECK(renewed->tep == "tep-a");
  // The old expiry no longer ends it.
  CHECK(t.reap(150).expired.empty());
  CHECK(t.reap(190).expired.size() == 1);

  auto unknown = t.renew(ip6("2001:db8::9"), "alice", 90, 100);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == Errc::LeaseNotFound);
  CHECK(t.size() == 1);
  check_invariants(t);
}

TEST_CASE("lease table: reap expires leases and holds their address for the grace period",
          "[dstm_server][lease]") {
  auto t = small_table(/*grace=*/50);
  const auto a = t.acquire(ip6("2001:db8::a"), "", "tep-a", 0, 100).value().lease;
  const auto b = t.acquire(ip6("2001:db8::b"), "", "tep-a", 0, 200).value().lease;
  CHECK(t.next_deadline() == 100);

  auto none = t.reap(99);
  CHECK(none.expired.empty());
  CHECK(none.removed.empty());

  auto r = t.reap(100);
  REQUIRE(r.expired.size() == 1);
  CHECK(r.removed.empty());
  auto expected = a;
  expected.state = LeaseState::expired;
  CHECK(r.expired[0] == expected);
  CHECK(t.find(a.ipv4)->state == LeaseState::expired);
  CHECK(t.active() == 1);
  CHECK(t.held() == 1);
  CHECK(t.pool().is_allocated(a.ipv4));  // held, not free
  check_invariants(t);

  // A new client does not get the held address while others are free.
  const auto c = t.acquire(ip6("2001:db8::c"), "", "tep-a", 110, 100).value().lease;
  CHECK(c.ipv4 != a.ipv4);

  // Within the grace period the client gets the same address back, as a new active period.
  auto back = t.acquire(ip6("2001:db8::a"), "", "tep-b", 120, 100);
  REQUIRE(back);
  CHECK(back->renewed);
  CHECK(back->lease.ipv4 == a.ipv4);
  CHECK(back->lease.state == LeaseState::active);
  CHECK(back->lease.granted_at == 120);
  CHECK(back->lease.expires_at == 220);
  CHECK(t.held() == 0);
  // Its old grace deadline (150) no longer applies.
  auto later = t.reap(160);
  CHECK(later.expired.empty());
  CHECK(later.removed.empty());
  CHECK(t.size() == 3);
  check_invariants(t);
  (void)b;
}

TEST_CASE("lease table: after the grace period the lease is removed and its address freed",
          "[dstm_server][lease]") {
  auto t = small_table(/*grace=*/50);
  const auto a = t.acquire(ip6("2001:db8::a"), "alice", "tep-a", 0, 100).value().lease;
  CHECK(t.reap(100).expired.size() == 1);
  CHECK(t.next_deadline() == 150);
  CHECK(t.reap(149).removed.empty());

  auto r = t.reap(150);
  CHECK(r.expired.empty());
  REQUIRE(r.removed.size() == 1);
  CHECK(r.removed[0].ipv4 == a.ipv4);
  CHECK(r.removed[0].identity == "alice");
  CHECK(t.size() == 0);
  CHECK_FALSE(t.find(a.ipv4));
  CHECK_FALSE(t.find(ip6("2001:db8::a"), "alice"));
  CHECK_FALSE(t.pool().is_allocated(a.ipv4));
  CHECK(t.next_deadline() == std::nullopt);
  check_invariants(t);

  // The address went to the back of the free queue: the returning client gets another one.
  const auto again = t.acquire(ip6("2001:db8::a"), "alice", "tep-a", 200, 100).value();
  CHECK_FALSE(again.renewed);
  CHECK(again.lease.ipv4 != a.ipv4);
}

TEST_CASE("lease table: a lease past expiry and grace in one reap is in both lists",
          "[dstm_server][lease]") {
  SECTION("grace 0") {
    auto t = small_table(0);
    const auto a = t.acquire(ip6("2001:db8::a"), "", "tep-a", 0, 100).value().lease;
    auto r = t.reap(100);
    REQUIRE(r.expired.size() == 1);
    REQUIRE(r.removed.size() == 1);
    CHECK(r.expired[0].ipv4 == a.ipv4);
    CHECK(r.removed[0].ipv4 == a.ipv4);
    CHECK(t.size() == 0);
    CHECK(t.pool().used() == 0);
  }
  SECTION("a long pause") {
    auto t = small_table(50);
    t.acquire(ip6("2001:db8::a"), "", "tep-a", 0, 100).value();
    t.acquire(ip6("2001:db8::b"), "", "tep-a", 0, 1000).value();
    auto r = t.reap(500);
    CHECK(r.expired.size() == 1);
    CHECK(r.removed.size() == 1);
    CHECK(t.size() == 1);
    check_invariants(t);
  }
}

TEST_CASE("lease table: an exhausted pool takes the address of the lease expired longest ago",
          "[dstm_server][lease]") {
  auto t = small_table(/*grace=*/1000);
  std::vector<Lease> granted;
  for (int i = 1; i <= 6; ++i) {
    const auto client = ip6(("2001:db8::" + std::to_string(i)).c_str());
    granted.push_back(t.acquire(client, "", "tep-a", 0, 100 + 2 * i).value().lease);
  }
  // Expiries 102, 104, ..., 112; client 1 renews to 107. At 107: 2 (104), 3 (106), 1 (107).
  t.renew(ip6("2001:db8::1"), "", 10, 97).value();
  auto r = t.reap(107);
  REQUIRE(r.expired.size() == 3);
  CHECK(t.held() == 3);
  CHECK(t.pool().free() == 0);
  check_invariants(t);

  auto g = t.acquire(ip6("2001:db8::7"), "", "tep-a", 110, 100);
  REQUIRE(g);
  REQUIRE(g->evicted);
  CHECK(g->evicted->client == ip6("2001:db8::2"));
  CHECK(g->evicted->state == LeaseState::expired);
  CHECK(g->lease.ipv4 == granted[1].ipv4);
  CHECK_FALSE(t.find(ip6("2001:db8::2"), ""));
  check_invariants(t);

  const auto next = t.acquire(ip6("2001:db8::8"), "", "tep-a", 110, 100).value();
  REQUIRE(next.evicted);
  CHECK(next.evicted->client == ip6("2001:db8::3"));
  CHECK(next.lease.ipv4 == granted[2].ipv4);
  // A held client still within grace keeps its address.
  const auto back = t.acquire(ip6("2001:db8::1"), "", "tep-a", 111, 100).value();
  CHECK(back.renewed);
  CHECK_FALSE(back.evicted);
  CHECK(back.lease.ipv4 == granted[0].ipv4);
  CHECK(t.held() == 0);
  check_invariants(t);

  // Nothing held any more: a new client is refused and nothing changes.
  const auto before = snapshot(t);
  const auto used = t.pool().used();
  auto refused = t.acquire(ip6("2001:db8::10"), "", "tep-new", 113, 100);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == Errc::PoolExhausted);
  CHECK(snapshot(t) == before);
  CHECK(t.pool().used() == used);
  CHECK(t.pool().free() == 0);
  check_invariants(t);
}

TEST_CASE("lease table: release frees the address at once", "[dstm_server][lease]") {
  auto t = small_table(1000);
  const auto a = t.acquire(ip6("2001:db8::a"), "alice", "tep-a", 0, 100).value().lease;
  const auto b = t.acquire(ip6("2001:db8::b"), "", "tep-a", 0, 100).value().lease;

  auto gone = t.release(a.ipv4);
  REQUIRE(gone);
  CHECK(*gone == a);
  CHECK_FALSE(t.find(a.ipv4));
  CHECK_FALSE(t.pool().is_allocated(a.ipv4));

  auto gone_b = t.release(ip6("2001:db8::b"), "");
  REQUIRE(gone_b);
  CHECK(gone_b->ipv4 == b.ipv4);
  CHECK(t.size() == 0);
  CHECK(t.pool().used() == 0);

  for (auto r :
       {t.release(a.ipv4), t.release(ip("203.0.113.1")), t.release(ip6("2001:db8::a"), "alice")}) {
    REQUIRE_FALSE(r);
    CHECK(r.error() == Errc::LeaseNotFound);
  }
  check_invariants(t);
}

TEST_CASE("lease table: restore puts back stored leases and rejects conflicts",
          "[dstm_server][lease]") {
  auto t = small_table(50);
  const Lease active{.ipv4 = ip("192.0.2.4"),
                     .client = ip6("2001:db8::4"),
                     .identity = "dave",
                     .tep = "tep-a",
                     .granted_at = 10,
                     .expires_at = 200,
                     .state = LeaseState::active};
  const Lease held{.ipv4 = ip("192.0.2.2"),
                   .client = ip6("2001:db8::2"),
                   .identity = "",
                   .tep = "tep-b",
                   .granted_at = 0,
                   .expires_at = 90,
                   .state = LeaseState::expired};
  REQUIRE(t.restore(active));
  REQUIRE(t.restore(held));
  CHECK(t.find(active.ipv4)->to_lease() == active);
  CHECK(t.find(held.ipv4)->to_lease() == held);
  CHECK(t.active() == 1);
  CHECK(t.held() == 1);
  check_invariants(t);

  struct Bad {
    const char* what;
    Lease lease;
    Errc why;
  };
  auto with = [](Lease l, auto change) {
    change(l);
    return l;
  };
  const std::vector<Bad> table{
      {"address taken", with(active, [](Lease& l) { l.client = ip6("2001:db8::99"); }),
       Errc::AddressInUse},
      {"key holds another address", with(active, [](Lease& l) { l.ipv4 = ip("192.0.2.5"); }),
       Errc::LeaseConflict},
      {"excluded",
       with(active,
            [](Lease& l) {
              l.ipv4 = ip("192.0.2.7");
              l.identity = "x";
            }),
       Errc::AddressExcluded},
      {"not in pool",
       with(active,
            [](Lease& l) {
              l.ipv4 = ip("198.51.100.1");
              l.identity = "x";
            }),
       Errc::NotInPool},
      {"identity too long",
       with(active,
            [](Lease& l) {
              l.ipv4 = ip("192.0.2.5");
              l.identity = std::string(256, 'u');
            }),
       Errc::IdentityTooLong},
  };
  const auto before = snapshot(t);
  for (const auto& bad : table) {
    INFO(bad.what);
    auto r = t.restore(bad.lease);
    REQUIRE_FALSE(r);
    CHECK(r.error() == bad.why);
    CHECK(snapshot(t) == before);
    CHECK(t.pool().used() == 2);
  }

  // New grants skip restored addresses; reap continues from the stored state.
  CHECK(t.acquire(ip6("2001:db8::9"), "", "tep-a", 100, 100).value().lease.ipv4 == ip("192.0.2.1"));
  CHECK(t.acquire(ip6("2001:db8::10"), "", "tep-a", 100, 100).value().lease.ipv4 ==
        ip("192.0.2.3"));
  auto r = t.reap(140);
  CHECK(r.expired.empty());
  REQUIRE(r.removed.size() == 1);
  CHECK(r.removed[0].ipv4 == held.ipv4);
  check_invariants(t);
}

TEST_CASE("lease table: invalid arguments are refused and change nothing", "[dstm_server][lease]") {
  auto t = small_table(50);
  t.acquire(ip6("2001:db8::1"), "", "tep-a", 0, 100).value();
  const auto before = snapshot(t);
  struct Bad {
    const char* what;
    std::string identity;
    Seconds now;
    Seconds lifetime;
    Errc why;
  };
  const std::vector<Bad> table{
      {"zero lifetime", "", 0, 0, Errc::BadLifetime},
      {"negative lifetime", "", 0, -5, Errc::BadLifetime},
      {"expiry overflows", "", std::numeric_limits<Seconds>::max() - 10, 11, Errc::BadLifetime},
      {"identity too long", std::string(LeaseTable::kMaxIdentity + 1, 'u'), 0, 100,
       Errc::IdentityTooLong},
  };
  for (const auto& bad : table) {
    INFO(bad.what);
    for (const char* client : {"2001:db8::1", "2001:db8::2"}) {
      auto r = t.acquire(ip6(client), bad.identity, "tep-a", bad.now, bad.lifetime);
      REQUIRE_FALSE(r);
      CHECK(r.error() == bad.why);
    }
    CHECK(snapshot(t) == before);
  }
  auto renew = t.renew(ip6("2001:db8::1"), "", 0, 0);
  REQUIRE_FALSE(renew);
  CHECK(renew.error() == Errc::BadLifetime);
  // The longest identity allowed is fine.
  CHECK(t.acquire(ip6("2001:db8::3"), std::string(LeaseTable::kMaxIdentity, 'u'), "tep-a", 0, 1));
  check_invariants(t);
}

TEST_CASE("lease table: random operations keep every invariant and every sticky promise",
          "[dstm_server][lease]") {
  // 40 clients over 30 addresses, 6000 steps: grants, renewals (enough to compact the expiry
  // heaps), releases, reaps, exhaustion and eviction. A model remembers which address each
  // client holds, to check stickiness.
  LeaseTable t{
      Pool::make(PoolConfig{.prefixes = {Ipv4Prefix::parse("198.51.100.0/27").value()}}).value(),
      /*grace=*/30};
  std::mt19937 rng{12345};
  std::map<int, Ipv4Address> holds;  // client number -> address, while the table has its lease
  const auto client = [](int n) {
    return Ipv6Address::parse("2001:db8::" + std::to_string(n + 1)).value();
  };
  const auto identity = [](int n) {
    return n % 3 == 0 ? std::string{} : "user" + std::to_string(n);
  };
  const auto forget = [&](const Lease& l) {
    for (auto it = holds.begin(); it != holds.end(); ++it) {
      if (it->second == l.ipv4) {
        holds.erase(it);
        return;
      }
    }
    FAIL("the model did not know " << l.ipv4);
  };

  Seconds now = 0;
  for (int step = 0; step < 6000; ++step) {
    const int n = static_cast<int>(rng() % 40);
    switch (rng() % 10) {
      case 0: {
        if (auto r = t.release(client(n), identity(n))) {
          holds.erase(n);
        } else {
          CHECK(holds.count(n) == 0);
        }
        break;
      }
      case 1:
      case 2: {
        now += static_cast<Seconds>(rng() % 20);
        auto r = t.reap(now);
        for (const auto& l : r.expired) CHECK(l.expires_at <= now);
        for (const auto& l : r.removed) forget(l);
        break;
      }
      default: {
        auto g =
            t.acquire(client(n), identity(n), "tep", now, 10 + static_cast<Seconds>(rng() % 50));
        if (!g) {
          CHECK(g.error() == Errc::PoolExhausted);
          CHECK(t.pool().free() == 0);
          CHECK(t.held() == 0);
          break;
        }
        if (g->evicted) forget(*g->evicted);
        if (auto it = holds.find(n); it != holds.end()) {
          CHECK(g->renewed);
          CHECK(g->lease.ipv4 == it->second);  // sticky
        } else {
          CHECK_FALSE(g->renewed);
          holds[n] = g->lease.ipv4;
        }
        break;
      }
    }
    if (step % 50 == 0) check_invariants(t);
    CHECK(t.size() == holds.size());
  }
  check_invariants(t);
}
