// Tests for anycast_member/rate_limit.hpp: the burst of twice the rate, refill over time, one
// bucket per source, and the bounded table forgetting the least recently seen source.
#include "anycast_member/rate_limit.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using anycast_member::SourceRateLimit;
using namespace std::chrono_literals;

namespace {

const auto kA = core::Ipv6Address::parse("2001:db8::a").value();
const auto kB = core::Ipv6Address::parse("2001:db8::b").value();
const auto kC = core::Ipv6Address::parse("2001:db8::c").value();
const anycast::Time kT0{std::chrono::hours{1}};

int admitted(SourceRateLimit& limit, const core::Ipv6Address& source, anycast::Time now, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) ok += limit.admit(source, now) ? 1 : 0;
  return ok;
}

}  // namespace

TEST_CASE("rate limit: a new source may send a burst of twice the rate", "[anycast_member]") {
  SourceRateLimit limit{5, 16};
  CHECK(admitted(limit, kA, kT0, 10) == 10);
  CHECK_FALSE(limit.admit(kA, kT0));
}

TEST_CASE("rate limit: tokens come back at the rate", "[anycast_member]") {
  SourceRateLimit limit{5, 16};
  REQUIRE(admitted(limit, kA, kT0, 11) == 10);
  CHECK_FALSE(limit.admit(kA, kT0 + 199ms));
  CHECK(limit.admit(kA, kT0 + 200ms));
  CHECK_FALSE(limit.admit(kA, kT0 + 200ms));
  // A full second gives the rate, never more than the burst.
  CHECK(admitted(limit, kA, kT0 + 1200ms, 10) == 5);
  CHECK(admitted(limit, kA, kT0 + 1h, 30) == 10);
}

TEST_CASE("rate limit: each source has its own bucket", "[anycast_member]") {
  SourceRateLimit limit{1, 16};
  CHECK(admitted(limit, kA, kT0, 3) == 2);
  CHECK(admitted(limit, kB, kT0, 3) == 2);
  CHECK(limit.sources() == 2);
}

TEST_CASE("rate limit: the least recently seen source is forgotten when the table is full",
          "[anycast_member]") {
  SourceRateLimit limit{1, 2};
  REQUIRE(admitted(limit, kA, kT0, 2) == 2);
  REQUIRE(admitted(limit, kB, kT0, 2) == 2);
  // A is seen again (and refused): B is now the least recently seen.
  CHECK_FALSE(limit.admit(kA, kT0));
  CHECK(limit.admit(kC, kT0));
  CHECK(limit.sources() == 2);
  // A was kept, so its bucket is still empty; B was forgotten, so it starts with a full one.
  CHECK_FALSE(limit.admit(kA, kT0));
  CHECK(admitted(limit, kB, kT0, 2) == 2);
  CHECK(limit.sources() == 2);
}

TEST_CASE("rate limit: the highest rate still refills", "[anycast_member]") {
  SourceRateLimit limit{1'000'000, 4};
  CHECK(admitted(limit, kA, kT0, 2'000'001) == 2'000'000);
  CHECK(limit.admit(kA, kT0 + 1us));
}
