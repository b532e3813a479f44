// Tests for tep/miss_queue.hpp: the miss queue's limits, order and deadlines, and the rate limiter,
// on fake time points.
#include "tep/miss_queue.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

using namespace std::chrono_literals;
using tep::Direction;
using Pushed = tep::MissQueue::Pushed;

namespace {

const tep::TimePoint t0{1h};
constexpr auto kTick = tep::Clock::duration{1};

core::Ipv4Address v4(std::uint32_t n) {
  return core::Ipv4Address{0xC6336400u + n};  // 198.51.100.n
}
core::Ipv6Address v6(std::uint8_t n) {
  return core::Ipv6Address{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n}};
}

// A packet of `size` bytes, each `mark`: tells packets apart after they come back.
std::vector<std::byte> packet(std::uint8_t mark, std::size_t size = 20) {
  return std::vector<std::byte>(size, std::byte{mark});
}

Pushed push(tep::MissQueue& q, std::uint32_t address, std::uint8_t mark, tep::TimePoint now,
            std::size_t size = 20) {
  return q.push(v4(address), Direction::ToClient, {}, packet(mark, size), now);
}

std::vector<std::uint8_t> marks(const std::vector<tep::PendingPacket>& packets) {
  std::vector<std::uint8_t> out;
  for (const auto& p : packets) out.push_back(std::to_integer<std::uint8_t>(p.packet.at(0)));
  return out;
}

std::vector<core::Ipv4Address> addresses(const std::vector<tep::MissQueue::Expired>& expired) {
  std::vector<core::Ipv4Address> out;
  for (const auto& e : expired) out.push_back(e.address);
  return out;
}

}  // namespace

TEST_CASE("miss_queue: the first packet for an address starts a query, later ones queue",
          "[tep][miss_queue]") {
  tep::MissQueue q;
  CHECK_FALSE(q.waiting(v4(1)));
  CHECK(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  CHECK(q.waiting(v4(1)));
  CHECK(push(q, 1, 2, t0 + 1ms) == Pushed::Queued);
  CHECK(push(q, 2, 3, t0 + 2ms) == Pushed::FirstForAddress);
  CHECK(q.addresses() == 2);
  CHECK(q.packets() == 3);
  CHECK(q.bytes() == 60);
}

TEST_CASE("miss_queue: take returns an address's packets in arrival order and frees them",
          "[tep][miss_queue]") {
  tep::MissQueue q;
  const auto p1 = packet(1, 28);
  const auto p2 = packet(2, 40);
  REQUIRE(q.push(v4(1), Direction::FromClient, v6(7), p1, t0) == Pushed::FirstForAddress);
  REQUIRE(push(q, 2, 9, t0) == Pushed::FirstForAddress);
  REQUIRE(q.push(v4(1), Direction::ToClient, {}, p2, t0 + 1ms) == Pushed::Queued);

  const auto got = q.take(v4(1));
  REQUIRE(got.size() == 2);
  CHECK(got[0].direction == Direction::FromClient);
  CHECK(got[0].outer_source == v6(7));
  CHECK(got[0].packet == p1);
  CHECK(got[1].direction == Direction::ToClient);
  CHECK(got[1].packet == p2);

  CHECK_FALSE(q.waiting(v4(1)));
  CHECK(q.waiting(v4(2)));
  CHECK(q.addresses() == 1);
  CHECK(q.packets() == 1);
  CHECK(q.bytes() == 20);
  CHECK(q.take(v4(1)).empty());
  CHECK(push(q, 1, 3, t0 + 2ms) == Pushed::FirstForAddress);  // a new query
}

TEST_CASE("miss_queue: per-address cap", "[tep][miss_queue]") {
  tep::MissQueue q{{.per_address = 2}};
  CHECK(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  CHECK(push(q, 1, 2, t0) == Pushed::Queued);
  CHECK(push(q, 1, 3, t0) == Pushed::AddressFull);
  CHECK(push(q, 2, 4, t0) == Pushed::FirstForAddress);
  CHECK(q.packets() == 3);
  CHECK(marks(q.take(v4(1))) == std::vector<std::uint8_t>{1, 2});
}

TEST_CASE("miss_queue: total packet cap", "[tep][miss_queue]") {
  tep::MissQueue q{{.max_packets = 3}};
  CHECK(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  CHECK(push(q, 1, 2, t0) == Pushed::Queued);
  CHECK(push(q, 2, 3, t0) == Pushed::FirstForAddress);
  CHECK(push(q, 2, 4, t0) == Pushed::QueueFull);
  CHECK(push(q, 3, 5, t0) == Pushed::QueueFull);
  CHECK_FALSE(q.waiting(v4(3)));
  CHECK(q.packets() == 3);
  q.take(v4(1));
  CHECK(push(q, 3, 5, t0) == Pushed::FirstForAddress);
}

TEST_CASE("miss_queue: total byte cap", "[tep][miss_queue]") {
  tep::MissQueue q{{.max_bytes = 100}};
  CHECK(push(q, 1, 1, t0, 60) == Pushed::FirstForAddress);
  CHECK(push(q, 2, 2, t0, 41) == Pushed::QueueFull);
  CHECK(push(q, 1, 2, t0, 41) == Pushed::QueueFull);
  CHECK_FALSE(q.waiting(v4(2)));
  CHECK(push(q, 2, 2, t0, 40) == Pushed::FirstForAddress);  // exactly full is allowed
  CHECK(q.bytes() == 100);
  CHECK(push(q, 3, 3, t0, 1) == Pushed::QueueFull);
  CHECK(push(q, 3, 3, t0, 0) == Pushed::FirstForAddress);
  q.take(v4(1));
  CHECK(q.bytes() == 40);
  CHECK(push(q, 1, 4, t0, 60) == Pushed::FirstForAddress);
  CHECK(push(q, 4, 5, t0, 101) == Pushed::QueueFull);  // bigger than the whole queue
}

TEST_CASE("miss_queue: address cap", "[tep][miss_queue]") {
  tep::MissQueue q{{.max_addresses = 2}};
  CHECK(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  CHECK(push(q, 2, 2, t0) == Pushed::FirstForAddress);
  CHECK(push(q, 3, 3, t0) == Pushed::QueueFull);
  CHECK(push(q, 2, 4, t0) == Pushed::Queued);  // addresses already waiting still take packets
  CHECK(q.addresses() == 2);
  q.take(v4(1));
  CHECK(push(q, 3, 3, t0) == Pushed::FirstForAddress);
}

TEST_CASE("miss_queue: an address expires at its first push + timeout, oldest first",
          "[tep][miss_queue]") {
  tep::MissQueue q{{.timeout = 3s}};
  REQUIRE(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  REQUIRE(push(q, 2, 2, t0 + 1s) == Pushed::FirstForAddress);
  REQUIRE(push(q, 3, 3, t0 + 2s) == Pushed::FirstForAddress);
  REQUIRE(push(q, 1, 4, t0 + 2500ms) == Pushed::Queued);  // does not move the deadline
  CHECK(q.next_deadline() == t0 + 3s);

  CHECK(q.expire(t0 + 3s - kTick).empty());
  CHECK(q.addresses() == 3);

  const auto first = q.expire(t0 + 3s);  // exactly at the deadline
  REQUIRE(addresses(first) == std::vector{v4(1)});
  CHECK(marks(first[0].packets) == std::vector<std::uint8_t>{1, 4});
  CHECK_FALSE(q.waiting(v4(1)));

  REQUIRE(push(q, 4, 5, t0 + 3s) == Pushed::FirstForAddress);
  const auto later = q.expire(t0 + 5500ms);
  CHECK(addresses(later) == std::vector{v4(2), v4(3)});
  CHECK(q.addresses() == 1);
  CHECK(q.packets() == 1);
  CHECK(q.bytes() == 20);
  CHECK(q.next_deadline() == t0 + 6s);
  CHECK(addresses(q.expire(t0 + 1h)) == std::vector{v4(4)});
  CHECK(q.packets() == 0);
  CHECK(q.bytes() == 0);
  CHECK(q.next_deadline() == std::nullopt);
}

TEST_CASE("miss_queue: an address taken and queued again has its new deadline",
          "[tep][miss_queue]") {
  tep::MissQueue q{{.timeout = 3s}};
  REQUIRE(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  REQUIRE(push(q, 2, 2, t0 + 1s) == Pushed::FirstForAddress);
  CHECK(marks(q.take(v4(1))) == std::vector<std::uint8_t>{1});
  CHECK(q.next_deadline() == t0 + 4s);  // the taken address no longer counts

  REQUIRE(push(q, 1, 3, t0 + 2s) == Pushed::FirstForAddress);
  CHECK(q.expire(t0 + 3s).empty());  // the old deadline of v4(1) is void
  CHECK(q.waiting(v4(1)));

  const auto expired = q.expire(t0 + 5s);
  REQUIRE(addresses(expired) == std::vector{v4(2), v4(1)});
  CHECK(marks(expired[1].packets) == std::vector<std::uint8_t>{3});
  CHECK(q.next_deadline() == std::nullopt);
}

TEST_CASE("miss_queue: taken and queued again at the same instant", "[tep][miss_queue]") {
  tep::MissQueue q{{.timeout = 3s}};
  REQUIRE(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  q.take(v4(1));
  REQUIRE(push(q, 1, 2, t0) == Pushed::FirstForAddress);
  q.take(v4(1));
  REQUIRE(push(q, 1, 3, t0) == Pushed::FirstForAddress);
  const auto expired = q.expire(t0 + 3s);
  REQUIRE(expired.size() == 1);
  CHECK(marks(expired[0].packets) == std::vector<std::uint8_t>{3});
  CHECK(q.addresses() == 0);
}

TEST_CASE("miss_queue: next_deadline is the earliest waiting address's", "[tep][miss_queue]") {
  tep::MissQueue q{{.timeout = 2s}};
  CHECK(q.next_deadline() == std::nullopt);
  REQUIRE(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  REQUIRE(push(q, 2, 2, t0 + 1s) == Pushed::FirstForAddress);
  REQUIRE(push(q, 3, 3, t0 + 1500ms) == Pushed::FirstForAddress);
  CHECK(q.next_deadline() == t0 + 2s);
  q.take(v4(2));  // from the middle: the front stays
  CHECK(q.next_deadline() == t0 + 2s);
  q.take(v4(1));  // the front: skips the taken v4(2) too
  CHECK(q.next_deadline() == t0 + 3500ms);
  q.take(v4(3));
  CHECK(q.next_deadline() == std::nullopt);
}

TEST_CASE("miss_queue: many takes and pushes keep the order right", "[tep][miss_queue]") {
  // One address waits from the start while thousands of others come and go (their order
  // bookkeeping is compacted along the way); expiry still finds the right addresses in order.
  tep::MissQueue q{{.max_addresses = 64, .timeout = 3s}};
  REQUIRE(push(q, 1, 1, t0) == Pushed::FirstForAddress);
  for (std::uint32_t i = 0; i < 10000; ++i) {
    const auto now = t0 + std::chrono::microseconds{i};
    REQUIRE(push(q, 100 + i % 50, 2, now) == Pushed::FirstForAddress);
    REQUIRE(push(q, 100 + i % 50, 2, now) == Pushed::Queued);
    REQUIRE(q.take(v4(100 + i % 50)).size() == 2);
  }
  REQUIRE(push(q, 2, 3, t0 + 1s) == Pushed::FirstForAddress);
  CHECK(q.addresses() == 2);
  CHECK(q.packets() == 2);
  CHECK(q.next_deadline() == t0 + 3s);
  CHECK(addresses(q.expire(t0 + 3s)) == std::vector{v4(1)});
  CHECK(q.next_deadline() == t0 + 4s);
  CHECK(addresses(q.expire(t0 + 4s)) == std::vector{v4(2)});
  CHECK(q.next_deadline() == std::nullopt);
}

TEST_CASE("rate_limiter: starts full, allows a burst, then refills at the rate",
          "[tep][rate_limiter]") {
  tep::RateLimiter r{10.0, 3.0};  // 10 per second, burst 3
  CHECK(r.allow(t0));
  CHECK(r.allow(t0));
  CHECK(r.allow(t0));
  CHECK_FALSE(r.allow(t0));
  CHECK_FALSE(r.allow(t0 + 100ms - kTick));
  CHECK(r.allow(t0 + 100ms));  // one token per 100 ms
  CHECK_FALSE(r.allow(t0 + 100ms));
  CHECK(r.allow(t0 + 200ms));

  // A long pause refills only up to the burst.
  CHECK(r.allow(t0 + 1h));
  CHECK(r.allow(t0 + 1h));
  CHECK(r.allow(t0 + 1h));
  CHECK_FALSE(r.allow(t0 + 1h));
}

TEST_CASE("rate_limiter: tokens accumulate across many small steps", "[tep][rate_limiter]") {
  tep::RateLimiter r{1.0, 1.0};
  CHECK(r.allow(t0));
  for (int i = 1; i < 10; ++i) CHECK_FALSE(r.allow(t0 + i * 100ms));
  CHECK(r.allow(t0 + 1s));  // ten refills of 0.1 make a whole token, rounding or not
  CHECK_FALSE(r.allow(t0 + 1s));
}

TEST_CASE("rate_limiter: a clock that goes backwards adds no tokens", "[tep][rate_limiter]") {
  tep::RateLimiter r{1.0, 1.0};
  CHECK(r.allow(t0));
  CHECK_FALSE(r.allow(t0 - 10s));
  CHECK_FALSE(r.allow(t0 + 500ms));  // had the step back counted, 10.5 s would have passed
  CHECK(r.allow(t0 + 1s));
  CHECK_FALSE(r.allow(t0 + 1s));
}

TEST_CASE("rate_limiter: a zero, negative or NaN rate allows the burst only",
          "[tep][rate_limiter]") {
  const double rate = GENERATE(0.0, -1.0, std::numeric_limits<double>::quiet_NaN());
  tep::RateLimiter r{rate, 2.0};
  CHECK(r.allow(t0));
  CHECK(r.allow(t0));
  CHECK_FALSE(r.allow(t0));
  CHECK_FALSE(r.allow(t0 + 24h));
}

TEST_CASE("rate_limiter: a burst below one allows nothing", "[tep][rate_limiter]") {
  const double burst = GENERATE(0.0, 0.5, -3.0, std::numeric_limits<double>::quiet_NaN());
  tep::RateLimiter r{100.0, burst};
  CHECK_FALSE(r.allow(t0));
  CHECK_FALSE(r.allow(t0 + 1h));
}
