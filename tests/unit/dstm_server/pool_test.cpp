// Tests for dstm_server/pool.hpp: exclusions, construction errors, FIFO reuse, exhaustion.
#include "dstm_server/pool.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using core::Ipv4Address;
using core::Ipv4Prefix;
using dstm_server::Errc;
using dstm_server::Pool;
using dstm_server::PoolConfig;

namespace {

Ipv4Address ip(const char* text) {
  return Ipv4Address::parse(text).value();
}
Ipv4Prefix net(const char* text) {
  return Ipv4Prefix::parse(text).value();
}

// Allocates until exhaustion; returns every address handed out, in order.
std::vector<Ipv4Address> drain(Pool& pool) {
  std::vector<Ipv4Address> out;
  for (;;) {
    auto a = pool.allocate();
    if (!a) {
      REQUIRE(a.error() == Errc::PoolExhausted);
      return out;
    }
    out.push_back(*a);
  }
}

}  // namespace

TEST_CASE("pool: network, broadcast, TEP and operator exclusions are never allocated",
          "[dstm_server][pool]") {
  auto pool = Pool::make(PoolConfig{.prefixes = {net("192.0.2.0/29")},
                                    .tep_addresses = {ip("192.0.2.3"), ip("198.51.100.1")},
                                    .excluded = {ip("192.0.2.5")}})
                  .value();
  CHECK(pool.total() == 4);
  CHECK(pool.free() == 4);
  CHECK(pool.used() == 0);
  for (const char* a : {"192.0.2.0", "192.0.2.7", "192.0.2.3", "192.0.2.5"}) {
    INFO(a);
    CHECK_FALSE(pool.contains(ip(a)));
  }
  CHECK_FALSE(pool.contains(ip("198.51.100.1")));

  const auto got = drain(pool);
  CHECK(got == std::vector{ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.4"), ip("192.0.2.6")});
  CHECK(pool.used() == 4);
  CHECK(pool.free() == 0);
}

TEST_CASE("pool: /31 and /32 prefixes have no network or broadcast address (RFC 3021)",
          "[dstm_server][pool]") {
  auto pool =
      Pool::make(PoolConfig{.prefixes = {net("192.0.2.10/32"), net("192.0.2.8/31")}}).value();
  CHECK(pool.total() == 3);
  CHECK(drain(pool) == std::vector{ip("192.0.2.8"), ip("192.0.2.9"), ip("192.0.2.10")});
}

TEST_CASE("pool: prefixes are used in ascending order whatever the config order",
          "[dstm_server][pool]") {
  auto pool =
      Pool::make(PoolConfig{.prefixes = {net("203.0.113.0/30"), net("192.0.2.0/30")}}).value();
  CHECK(pool.total() == 4);
  CHECK(drain(pool) ==
        std::vector{ip("192.0.2.1"), ip("192.0.2.2"), ip("203.0.113.1"), ip("203.0.113.2")});
}

TEST_CASE("pool: bad configurations are errors that name the offending prefix or address",
          "[dstm_server][pool]") {
  struct Bad {
    const char* what;
    PoolConfig config;
    Errc why;
    std::vector<std::string> named;
  };
  const std::vector<Bad> table{
      {"no prefix", PoolConfig{}, Errc::PoolNoPrefix, {}},
      {"nested",
       PoolConfig{.prefixes = {net("192.0.2.0/24"), net("192.0.2.128/25")}},
       Errc::PoolOverlap,
       {"192.0.2.128/25", "192.0.2.0/24"}},
      {"duplicate",
       PoolConfig{.prefixes = {net("198.51.100.0/24"), net("198.51.100.0/24")}},
       Errc::PoolOverlap,
       {"198.51.100.0/24"}},
      {"nested behind a neighbour",
       PoolConfig{.prefixes = {net("192.0.2.0/24"), net("192.0.2.64/26"), net("192.0.2.8/29")}},
       Errc::PoolOverlap,
       {"192.0.2.8/29", "192.0.2.0/24"}},
      {"everything excluded",
       PoolConfig{.prefixes = {net("192.0.2.0/30")},
                  .tep_addresses = {ip("192.0.2.1")},
                  .excluded = {ip("192.0.2.2")}},
       Errc::PoolEmpty,
       {"192.0.2.0/30"}},
      {"exclusion outside the pool",
       PoolConfig{.prefixes = {net("192.0.2.0/24")}, .excluded = {ip("203.0.113.5")}},
       Errc::ExclusionOutsidePool,
       {"203.0.113.5"}},
      // Data only: a /7 is never configured, it just exceeds the limit.
      {"too large",
       PoolConfig{.prefixes = {net("192.0.2.0/24"), net("0.0.0.0/7")}},
       Errc::PoolTooLarge,
       {"0.0.0.0/7"}},
  };
  for (const auto& bad : table) {
    INFO(bad.what);
    auto pool = Pool::make(bad.config);
    REQUIRE_FALSE(pool);
    CHECK(pool.error() == bad.why);
    for (const auto& name : bad.named) {
      INFO(pool.error().message());
      CHECK(pool.error().detail.find(name) != std::string::npos);
    }
  }
}

TEST_CASE("pool: a released address goes to the back of the queue", "[dstm_server][pool]") {
  auto pool = Pool::make(PoolConfig{.prefixes = {net("192.0.2.0/29")}}).value();
  REQUIRE(pool.allocate().value() == ip("192.0.2.1"));
  REQUIRE(pool.release(ip("192.0.2.1")));
  CHECK(pool.used() == 0);
  // Every other free address comes first; the released one last.
  CHECK(drain(pool) == std::vector{ip("192.0.2.2"), ip("192.0.2.3"), ip("192.0.2.4"),
                                   ip("192.0.2.5"), ip("192.0.2.6"), ip("192.0.2.1")});
  // Released in some order, reused in that order.
  for (const char* a : {"192.0.2.4", "192.0.2.2", "192.0.2.6"}) REQUIRE(pool.release(ip(a)));
  CHECK(drain(pool) == std::vector{ip("192.0.2.4"), ip("192.0.2.2"), ip("192.0.2.6")});
}

TEST_CASE("pool: allocate_specific takes one address out of the free queue",
          "[dstm_server][pool]") {
  auto pool =
      Pool::make(PoolConfig{.prefixes = {net("192.0.2.0/29")}, .excluded = {ip("192.0.2.6")}})
          .value();
  REQUIRE(pool.allocate_specific(ip("192.0.2.3")));
  CHECK(pool.is_allocated(ip("192.0.2.3")));
  CHECK(pool.used() == 1);

  struct Bad {
    const char* address;
    Errc why;
  };
  for (const auto& [address, why] : std::vector<Bad>{{"192.0.2.3", Errc::AddressInUse},
                                                     {"192.0.2.6", Errc::AddressExcluded},
                                                     {"192.0.2.0", Errc::AddressExcluded},
                                                     {"192.0.2.7", Errc::AddressExcluded},
                                                     {"198.51.100.1", Errc::NotInPool}}) {
    INFO(address);
    auto r = pool.allocate_specific(ip(address));
    REQUIRE_FALSE(r);
    CHECK(r.error() == why);
    CHECK(pool.used() == 1);
  }
  CHECK(drain(pool) ==
        std::vector{ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.4"), ip("192.0.2.5")});
}

TEST_CASE("pool: releasing what is not allocated is an error and changes nothing",
          "[dstm_server][pool]") {
  auto pool = Pool::make(PoolConfig{.prefixes = {net("192.0.2.0/29")}}).value();
  REQUIRE(pool.allocate());
  struct Bad {
    const char* address;
    Errc why;
  };
  for (const auto& [address, why] : std::vector<Bad>{{"192.0.2.2", Errc::AddressNotAllocated},
                                                     {"192.0.2.0", Errc::AddressExcluded},
                                                     {"203.0.113.1", Errc::NotInPool}}) {
    INFO(address);
    auto r = pool.release(ip(address));
    REQUIRE_FALSE(r);
    CHECK(r.error() == why);
    CHECK(pool.used() == 1);
    CHECK(pool.free() == 5);
  }
}

namespace {

// Allocates the whole pool, checks every address is distinct, in the pool and not excluded,
// then that exhaustion changes nothing, then releases and reallocates everything.
void exhaust_and_refill(Pool& pool, const std::vector<Ipv4Address>& excluded) {
  const auto total = pool.total();
  std::set<std::uint32_t> seen;
  std::uint32_t failed = 0;
  std::uint32_t twice = 0;
  for (std::uint32_t n = 0; n < total; ++n) {
    auto a = pool.allocate();
    if (!a) {
      ++failed;
    } else if (!seen.insert(a->to_uint()).second) {
      ++twice;
    }
  }
  CHECK(failed == 0);
  CHECK(twice == 0);
  CHECK(seen.size() == total);
  CHECK(pool.used() == total);
  CHECK(pool.free() == 0);
  for (const auto& x : excluded) CHECK(seen.count(x.to_uint()) == 0);

  for (int attempt = 0; attempt < 3; ++attempt) {
    auto a = pool.allocate();
    REQUIRE_FALSE(a);
    CHECK(a.error() == Errc::PoolExhausted);
  }
  CHECK(pool.used() == total);
  CHECK(pool.free() == 0);

  std::uint32_t not_released = 0;
  for (const auto a : seen) not_released += pool.release(Ipv4Address{a}) ? 0u : 1u;
  CHECK(not_released == 0);
  CHECK(pool.used() == 0);
  CHECK(pool.free() == total);
  std::uint32_t again = 0;
  while (pool.allocate()) ++again;
  CHECK(again == total);
}

}  // namespace

TEST_CASE("pool: the benchmark /15 plus documentation /24s allocate every usable address",
          "[dstm_server][pool]") {
  const std::vector excluded{ip("198.18.0.0"), ip("198.19.255.255"), ip("198.18.7.7"),
                             ip("192.0.2.0"),  ip("192.0.2.255"),    ip("203.0.113.9")};
  auto pool = Pool::make(PoolConfig{.prefixes = {net("198.18.0.0/15"), net("192.0.2.0/24"),
                                                 net("203.0.113.0/24")},
                                    .tep_addresses = {ip("203.0.113.9")},
                                    .excluded = {ip("198.18.7.7")}})
                  .value();
  CHECK(pool.total() == (131072 - 3) + (256 - 2) + (256 - 3));
  exhaust_and_refill(pool, excluded);
}

// A /12 (2^20 addresses) does not fit in the documentation or benchmark ranges. 240.0.0.0/4 is
// reserved (RFC 1112 section 4, RFC 6890) and unusable on any network; here it is only data:
// no packet is ever sent.
TEST_CASE("pool: a /12 allocates all 2^20 minus exclusions, then exhaustion changes nothing",
          "[dstm_server][pool][scale]") {
  const std::vector excluded{ip("240.0.0.0"), ip("240.15.255.255"), ip("240.1.2.3")};
  auto pool =
      Pool::make(PoolConfig{.prefixes = {net("240.0.0.0/12")}, .tep_addresses = {ip("240.1.2.3")}})
          .value();
  REQUIRE(pool.total() == (1u << 20) - 3);

  // One assertion per property rather than per address keeps this quick under ASan.
  std::vector<bool> seen(std::size_t{1} << 20);
  std::uint32_t failed = 0;
  std::uint32_t outside = 0;
  std::uint32_t twice = 0;
  for (std::uint32_t n = 0; n < pool.total(); ++n) {
    auto a = pool.allocate();
    if (!a) {
      ++failed;
      continue;
    }
    const auto offset = a->to_uint() - ip("240.0.0.0").to_uint();
    if (offset >= seen.size()) {
      ++outside;
    } else if (seen[offset]) {
      ++twice;
    } else {
      seen[offset] = true;
    }
  }
  CHECK(failed == 0);
  CHECK(outside == 0);
  CHECK(twice == 0);
  for (const auto& x : excluded) CHECK_FALSE(seen[x.to_uint() - ip("240.0.0.0").to_uint()]);
  auto more = pool.allocate();
  REQUIRE_FALSE(more);
  CHECK(more.error() == Errc::PoolExhausted);
  CHECK(pool.used() == pool.total());
  CHECK(pool.free() == 0);

  // Release/reuse at scale: what is released comes back, in release order.
  for (const char* a : {"240.9.8.7", "240.0.0.1", "240.15.255.254"}) REQUIRE(pool.release(ip(a)));
  CHECK(pool.allocate().value() == ip("240.9.8.7"));
  CHECK(pool.allocate().value() == ip("240.0.0.1"));
  CHECK(pool.allocate().value() == ip("240.15.255.254"));
  CHECK_FALSE(pool.allocate());
}
