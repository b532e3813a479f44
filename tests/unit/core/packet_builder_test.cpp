// Tests for tests/support/packet_builder.hpp: layers nest, lengths and checksums come out right.
#include "support/packet_builder.hpp"

#include <catch2/catch.hpp>
#include <stdexcept>

#include "core/checksum.hpp"

using test::hex;
using test::PacketBuilder;

TEST_CASE("packet builder: IPv4/UDP packet has derived protocol, lengths and checksums",
          "[support]") {
  const auto pkt =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload("q").bytes();
  CHECK(pkt == hex("4500 001d 0000 0000 4011 8e94 c000 0201 c633 6407"
                   "1388 0035 0009 8ee2 71"));
}

TEST_CASE("packet builder: IPv4 in IPv6 is the inner packet behind a fixed header", "[support]") {
  const auto inner =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload("q").bytes();
  const auto outer = PacketBuilder{}.ipv6("2001:db8::1", "2001:db8::2", 4).raw(inner).bytes();
  const auto nested = PacketBuilder{}
                          .ipv6("2001:db8::1", "2001:db8::2")
                          .ipv4("192.0.2.1", "198.51.100.7")
                          .udp(5000, 53)
                          .payload("q")
                          .bytes();
  CHECK(outer == nested);
  const auto p = core::parse_ipv6(outer);
  REQUIRE(p.has_value());
  CHECK(p->upper_protocol == core::ip_protocol::kIpv4);
  CHECK(std::vector<std::byte>(p->upper_layer().begin(), p->upper_layer().end()) == inner);
}

TEST_CASE("packet builder: modifiers apply to the right layer", "[support]") {
  const auto pkt = PacketBuilder{}
                       .ipv6("2001:db8::1", "2001:db8::2")
                       .ttl(9)
                       .ipv4("192.0.2.1", "198.51.100.7")
                       .ttl(3)
                       .df()
                       .id(77)
                       .bytes();
  const auto outer = core::parse_ipv6(pkt);
  REQUIRE(outer.has_value());
  CHECK(outer->header.hop_limit == 9);
  const auto inner = core::parse_ipv4(outer->upper_layer());
  REQUIRE(inner.has_value());
  CHECK(inner->header.ttl == 3);
  CHECK(inner->header.dont_fragment);
  CHECK(inner->header.id == 77);
  CHECK(inner->header.protocol == 253);
  CHECK(inner->checksum_ok());
}

TEST_CASE("packet builder: misuse throws with a reason", "[support]") {
  CHECK_THROWS_AS(PacketBuilder{}.ipv4("192.0.2.256", "198.51.100.7"), std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.ipv6("2001:db8::1", "nope"), std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.ttl(3), std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.udp(1, 2).bytes(), std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").mss(1400),
                  std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").ipv4_options({1}).bytes(),
                  std::invalid_argument);
  CHECK_THROWS_AS(PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").icmpv6_echo(1, 1).bytes(),
                  std::invalid_argument);
  CHECK_THROWS_AS(test::hex("abc"), std::invalid_argument);
  CHECK_THROWS_AS(test::bytes({256}), std::invalid_argument);
}
