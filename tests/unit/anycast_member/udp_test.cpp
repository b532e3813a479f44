// Tests for anycast_net/udp.hpp on loopback: the destination address of each datagram, sending
// from a chosen source, truncation, errors as values, closing, and random bytes.
#include "anycast_net/udp.hpp"
#include "platform/random.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "run.hpp"

namespace asio = boost::asio;
using anycast::Endpoint;
using anycast::Outgoing;
using anycast::net::DatagramSocket;

namespace {

const auto kLoopback = core::Ipv6Address::parse("::1").value();
const auto kAny = core::Ipv6Address{};
const auto kForeign = core::Ipv6Address::parse("2001:db8::77").value();

std::vector<std::byte> bytes(std::size_t n, std::uint8_t fill) {
  return std::vector<std::byte>(n, std::byte{fill});
}

DatagramSocket open(asio::io_context& io, const core::Ipv6Address& address) {
  auto s = DatagramSocket::open(io.get_executor(), address, 0);
  REQUIRE(s);
  return std::move(*s);
}

// Starts a receive and closes the socket while it waits.
asio::awaitable<boost::system::result<DatagramSocket::Received>> receive_then_close(
    asio::io_context& io, DatagramSocket& socket, std::span<std::byte> buffer) {
  asio::post(io, [&socket] { socket.close(); });
  co_return co_await socket.receive(buffer);
}

}  // namespace

TEST_CASE("udp socket: a datagram reports its source and the address it was sent to",
          "[anycast_member][udp]") {
  asio::io_context io;
  auto sender = open(io, kLoopback);
  // Bound to :: as the member is: only IPV6_PKTINFO tells which address a datagram was for.
  auto receiver = open(io, kAny);
  REQUIRE(sender.local_port() != 0);
  REQUIRE(receiver.local_port() != 0);

  REQUIRE_FALSE(sender.send(Outgoing{.source = {},
                                     .destination = Endpoint{kLoopback, receiver.local_port()},
                                     .bytes = bytes(40, 0xab)}));
  std::array<std::byte, 100> buffer{};
  auto got = test::run(io, receiver.receive(buffer));
  REQUIRE(got);
  CHECK(got->from == Endpoint{kLoopback, sender.local_port()});
  CHECK(got->to == kLoopback);
  CHECK(got->size == 40);
  CHECK_FALSE(got->truncated);
  CHECK(std::vector<std::byte>(buffer.begin(), buffer.begin() + 40) == bytes(40, 0xab));
}

TEST_CASE("udp socket: a datagram is sent from the chosen source address",
          "[anycast_member][udp]") {
  asio::io_context io;
  auto sender = open(io, kAny);
  auto receiver = open(io, kAny);
  REQUIRE_FALSE(sender.send(Outgoing{.source = kLoopback,
                                     .destination = Endpoint{kLoopback, receiver.local_port()},
                                     .bytes = bytes(8, 1)}));
  std::array<std::byte, 16> buffer{};
  auto got = test::run(io, receiver.receive(buffer));
  REQUIRE(got);
  CHECK(got->from == Endpoint{kLoopback, sender.local_port()});
  CHECK(got->size == 8);

  SECTION("a source the host does not have is refused, as a value") {
    const auto ec = sender.send(Outgoing{.source = kForeign,
                                         .destination = Endpoint{kLoopback, receiver.local_port()},
                                         .bytes = bytes(8, 1)});
    CHECK(ec);
  }
}

TEST_CASE("udp socket: a datagram larger than the buffer is cut and reported truncated",
          "[anycast_member][udp]") {
  asio::io_context io;
  auto sender = open(io, kLoopback);
  auto receiver = open(io, kLoopback);
  const Endpoint to{kLoopback, receiver.local_port()};
  REQUIRE_FALSE(sender.send(Outgoing{.source = {}, .destination = to, .bytes = bytes(300, 7)}));
  REQUIRE_FALSE(sender.send(Outgoing{.source = {}, .destination = to, .bytes = bytes(10, 8)}));
  std::array<std::byte, 100> buffer{};
  auto big = test::run(io, receiver.receive(buffer));
  REQUIRE(big);
  CHECK(big->size == 100);
  CHECK(big->truncated);
  // The rest of the cut datagram is gone; the next one is whole.
  auto small = test::run(io, receiver.receive(buffer));
  REQUIRE(small);
  CHECK(small->size == 10);
  CHECK_FALSE(small->truncated);
  CHECK(buffer[0] == std::byte{8});
}

TEST_CASE("udp socket: open errors are the system's", "[anycast_member][udp]") {
  asio::io_context io;
  auto first = open(io, kLoopback);
  auto in_use = DatagramSocket::open(io.get_executor(), kLoopback, first.local_port());
  REQUIRE_FALSE(in_use);
  CHECK(in_use.error().value() == EADDRINUSE);
  auto foreign = DatagramSocket::open(io.get_executor(), kForeign, 0);
  REQUIRE_FALSE(foreign);
  CHECK(foreign.error().value() == EADDRNOTAVAIL);
}

TEST_CASE("udp socket: close() ends a waiting receive with operation_aborted",
          "[anycast_member][udp]") {
  asio::io_context io;
  auto socket = open(io, kLoopback);
  std::array<std::byte, 16> buffer{};
  auto got = test::run(io, receive_then_close(io, socket, buffer));
  REQUIRE_FALSE(got);
  CHECK(got.error() == asio::error::operation_aborted);
}

TEST_CASE("udp socket: joining an anycast address on a missing interface fails as a value",
          "[anycast_member][udp]") {
  asio::io_context io;
  auto socket = open(io, kAny);
  CHECK(socket.join_anycast(kForeign, 0x7fffffff));
}

TEST_CASE("udp socket: random_bytes fills the whole span", "[anycast_member][udp]") {
  std::array<std::uint8_t, 4096> a{};
  std::array<std::uint8_t, 4096> b{};
  platform::random_bytes(a);
  platform::random_bytes(b);
  CHECK(a != b);
  // 4096 random bytes with no zero at all, or all in the first half, would be a broken source.
  CHECK(std::count(a.begin(), a.end(), std::uint8_t{0}) < 100);
  CHECK(std::count_if(a.begin(), a.end(), [](std::uint8_t x) { return x >= 128; }) > 1000);
  platform::random_bytes(std::span<std::uint8_t>{});
}
