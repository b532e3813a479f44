// Tests for dstm_client/schedule.hpp: renewal at 2/3 of the lifetime, retries bounded by the
// lease's end, exponential backoff 1..10 s.
#include "dstm_client/schedule.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

using namespace std::chrono_literals;
using dstm_client::Duration;
using dstm_client::TimePoint;

namespace {
const TimePoint kT0{std::chrono::hours{1000}};
}  // namespace

TEST_CASE("schedule: renewal at two thirds of the lifetime, expiry at its end", "[client]") {
  const auto s = dstm_client::schedule_lease(kT0, 1440);
  CHECK(s.granted == kT0);
  CHECK(s.renew_at == kT0 + 960s);
  CHECK(s.expires_at == kT0 + 1440s);
}

TEST_CASE("schedule: short lab lifetimes keep millisecond precision", "[client]") {
  const auto two = dstm_client::schedule_lease(kT0, 2);
  CHECK(two.renew_at == kT0 + 1333ms);
  CHECK(two.expires_at == kT0 + 2s);
  const auto zero = dstm_client::schedule_lease(kT0, 0);
  CHECK(zero.renew_at == kT0);
  CHECK(zero.expires_at == kT0);
  // The largest lifetime TSP can carry does not overflow.
  const auto huge = dstm_client::schedule_lease(kT0, 0xffffffffu);
  CHECK(huge.expires_at - kT0 == std::chrono::seconds{0xffffffffLL});
  CHECK(huge.renew_at < huge.expires_at);
}

TEST_CASE("schedule: a retry never lands after the lease's end", "[client]") {
  const TimePoint end = kT0 + 10s;
  CHECK(dstm_client::retry_at(kT0, 4s, end) == kT0 + 4s);
  CHECK(dstm_client::retry_at(kT0 + 8s, 4s, end) == end);
  // Already past the end: now (the caller handles the expiry).
  CHECK(dstm_client::retry_at(kT0 + 12s, 4s, end) == kT0 + 12s);
}

TEST_CASE("schedule: backoff doubles from 1 s to at most 10 s and resets", "[client]") {
  dstm_client::Backoff b;
  std::vector<Duration> seen;
  for (int i = 0; i < 7; ++i) seen.push_back(b.next());
  CHECK(seen == std::vector<Duration>{1s, 2s, 4s, 8s, 10s, 10s, 10s});
  b.reset();
  CHECK(b.next() == 1s);
  CHECK(b.next() == 2s);

  dstm_client::Backoff fast{100ms, 250ms};
  CHECK(fast.next() == 100ms);
  CHECK(fast.next() == 200ms);
  CHECK(fast.next() == 250ms);
}
