// Tests for the relay's UDP sockets (anytun/relay/daemon/src/udp.hpp) on loopback: batches keep
// every datagram's bytes, order and source whether the kernel segments them (GSO) and coalesces
// them (GRO) or not, and runs to one destination leave as one message.
#include "udp.hpp"

#include <poll.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "tep_io/packet_io.hpp"

using relay_daemon::UdpSocket;

namespace {

constexpr int kBuffer = 1 << 20;

UdpSocket open_on(const relay::Endpoint& e) {
  auto s = UdpSocket::open(e, kBuffer);
  REQUIRE(s);
  return std::move(*s);
}

relay::Endpoint loopback6() {
  return relay::Endpoint{*core::Ipv6Address::parse("::1"), 0};
}

// Datagram `n` of `size` bytes: its number in the first two bytes, then a pattern.
std::vector<std::byte> datagram(std::uint16_t n, std::size_t size) {
  std::vector<std::byte> d(size);
  for (std::size_t i = 0; i < size; ++i) d[i] = static_cast<std::byte>((n * 7 + i) & 0xff);
  d[0] = static_cast<std::byte>(n >> 8);
  d[1] = static_cast<std::byte>(n & 0xff);
  return d;
}

struct Received {
  std::vector<std::byte> bytes;
  relay::Endpoint source;
};

// Receives until `count` datagrams arrived (each wait bounded; the test fails on a timeout).
std::vector<Received> receive(UdpSocket& s, std::size_t count, std::size_t batch_size = 64) {
  tep::io::PacketBatch batch{batch_size};
  std::vector<relay::Endpoint> sources;
  std::vector<Received> out;
  for (int tries = 0; out.size() < count && tries < 1000; ++tries) {
    auto n = s.receive(batch, sources);
    REQUIRE(n);
    if (*n == 0) {
      pollfd p{s.native_handle(), POLLIN, 0};
      REQUIRE(::poll(&p, 1, 2000) == 1);
      continue;
    }
    REQUIRE(*n <= batch_size);
    for (std::size_t i = 0; i < *n; ++i) {
      CHECK(batch.offset(i) == 0);
      const auto p = batch.packet(i);
      out.push_back(Received{{p.begin(), p.end()}, sources[i]});
    }
  }
  REQUIRE(out.size() == count);
  return out;
}

}  // namespace

TEST_CASE("udp socket: a run of equal datagrams leaves as one message and arrives whole",
          "[relay-daemon][udp]") {
  auto rx = open_on(loopback6());
  auto tx = open_on(loopback6());
  constexpr std::uint16_t kCount = 40;
  for (std::uint16_t n = 0; n < kCount; ++n) tx.queue(rx.local(), datagram(n, 1000));
  tx.flush();
  CHECK(tx.sent() == kCount);
  CHECK(tx.send_drops() == 0);
  if (tx.gso()) CHECK(tx.send_messages() == 1);

  const auto got = receive(rx, kCount);
  for (std::uint16_t n = 0; n < kCount; ++n) {
    CHECK(got[n].bytes == datagram(n, 1000));
    CHECK(got[n].source == tx.local());
  }
  // Loopback hands a GSO message to a GRO socket as it is: fewer messages than datagrams.
  if (tx.gso() && rx.gro()) CHECK(rx.receive_messages() < kCount);
}

TEST_CASE("udp socket: sizes and destinations end runs and keep their order",
          "[relay-daemon][udp]") {
  auto a = open_on(loopback6());
  auto b = open_on(loopback6());
  auto tx = open_on(loopback6());
  // To a: 1000 1000 500 (a shorter one ends the run) | 1000 | to b: 1000 | to a: 1000.
  const std::vector<std::pair<UdpSocket*, std::size_t>> plan{{&a, 1000}, {&a, 1000}, {&a, 500},
                                                             {&a, 1000}, {&b, 1000}, {&a, 1000}};
  for (std::uint16_t n = 0; n < plan.size(); ++n)
    tx.queue(plan[n].first->local(), datagram(n, plan[n].second));
  tx.flush();
  CHECK(tx.sent() == plan.size());
  if (tx.gso()) CHECK(tx.send_messages() == 4);

  const auto at_a = receive(a, 5);
  const std::vector<std::uint16_t> a_numbers{0, 1, 2, 3, 5};
  for (std::size_t i = 0; i < a_numbers.size(); ++i)
    CHECK(at_a[i].bytes == datagram(a_numbers[i], plan[a_numbers[i]].second));
  const auto at_b = receive(b, 1);
  CHECK(at_b[0].bytes == datagram(4, 1000));
}

TEST_CASE("udp socket: a coalesced message larger than the batch is delivered over several calls",
          "[relay-daemon][udp]") {
  auto rx = open_on(relay::Endpoint::v4(*core::Ipv4Address::parse("127.0.0.1"), 0));
  auto tx = open_on(relay::Endpoint::v4(*core::Ipv4Address::parse("127.0.0.1"), 0));
  constexpr std::uint16_t kCount = 45;
  for (std::uint16_t n = 0; n < kCount; ++n) tx.queue(rx.local(), datagram(n, 1400));
  tx.flush();
  CHECK(tx.sent() == kCount);
  const auto got = receive(rx, kCount, /*batch_size=*/8);
  for (std::uint16_t n = 0; n < kCount; ++n) {
    CHECK(got[n].bytes == datagram(n, 1400));
    CHECK(got[n].source == tx.local());
  }
}

TEST_CASE("udp socket: more datagrams than the queue holds are all sent", "[relay-daemon][udp]") {
  auto rx = open_on(loopback6());
  auto tx = open_on(loopback6());
  constexpr std::uint16_t kCount = 300;
  for (std::uint16_t n = 0; n < kCount; ++n) tx.queue(rx.local(), datagram(n, 200));
  tx.flush();
  CHECK(tx.sent() == kCount);
  const auto got = receive(rx, kCount);
  for (std::uint16_t n = 0; n < kCount; ++n) CHECK(got[n].bytes == datagram(n, 200));
}
