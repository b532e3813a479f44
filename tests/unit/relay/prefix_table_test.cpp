// Tests for relay/prefix_table.hpp: longest-prefix match over both families, replace, erase,
// dumps, lookups by packet destination, and a randomised check against a linear scan.
#include "relay/prefix_table.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string_view>
#include <vector>

#include "support/packet_builder.hpp"

using relay::Prefix;
using relay::PrefixTable;
using relay::Route;
using test::v4;
using test::v6;

namespace {

Prefix p4(std::string_view text) {
  return core::Ipv4Prefix::parse(text).value();
}
Prefix p6(std::string_view text) {
  return core::Ipv6Prefix::parse(text).value();
}

// Nested IPv4 routes, /0 to /32, inserted out of order.
PrefixTable nested4() {
  PrefixTable t;
  t.insert(p4("192.0.2.128/25"), 3);
  t.insert(p4("0.0.0.0/0"), 9);
  t.insert(p4("192.0.2.200/32"), 4);
  t.insert(p4("192.0.0.0/8"), 1);
  t.insert(p4("192.0.2.0/24"), 2);
  return t;
}

// Nested IPv6 routes, /0 to /128, with lengths off byte boundaries.
PrefixTable nested6() {
  PrefixTable t;
  t.insert(p6("2001:db8:1:2::1/128"), 15);
  t.insert(p6("::/0"), 10);
  t.insert(p6("2001:db8::/32"), 11);
  t.insert(p6("2001:db8:8000::/33"), 12);
  t.insert(p6("2001:db8:1::/48"), 13);
  t.insert(p6("2001:db8:1:2::/64"), 14);
  t.insert(p6("2001:db8:1:2::/127"), 16);
  return t;
}

}  // namespace

TEST_CASE("prefix table: an empty table matches nothing", "[relay][prefix_table]") {
  const PrefixTable t;
  CHECK(t.size() == 0);
  CHECK(t.lookup(v4("192.0.2.1")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8::1")) == std::nullopt);
  CHECK(t.routes().empty());
}

TEST_CASE("prefix table: IPv4 takes the longest of nested prefixes", "[relay][prefix_table]") {
  const auto t = nested4();
  CHECK(t.size() == 5);
  struct Case {
    std::string_view address;
    std::uint16_t mux;
  };
  const auto c = GENERATE(Case{"192.0.2.200", 4},      // the /32
                          Case{"192.0.2.201", 3},      // its /25
                          Case{"192.0.2.128", 3},      // first of the /25
                          Case{"192.0.2.255", 3},      // last of the /25
                          Case{"192.0.2.127", 2},      // the /24 below the /25
                          Case{"192.0.2.0", 2},        // first of the /24
                          Case{"192.0.3.0", 1},        // the /8
                          Case{"192.255.255.255", 1},  // last of the /8
                          Case{"191.255.255.255", 9},  // just below the /8: the /0
                          Case{"198.51.100.7", 9}, Case{"0.0.0.0", 9}, Case{"255.255.255.255", 9});
  CAPTURE(c.address);
  CHECK(t.lookup(v4(c.address)) == c.mux);
}

TEST_CASE("prefix table: IPv6 takes the longest of nested prefixes", "[relay][prefix_table]") {
  const auto t = nested6();
  struct Case {
    std::string_view address;
    std::uint16_t mux;
  };
  const auto c =
      GENERATE(Case{"2001:db8:1:2::1", 15},  // the /128
               Case{"2001:db8:1:2::", 16},   // the /127 beside it
               Case{"2001:db8:1:2::2", 14},  // past the /127: the /64
               Case{"2001:db8:1:2:ffff:ffff:ffff:ffff", 14}, Case{"2001:db8:1:3::", 13},  // the /48
               Case{"2001:db8:2::", 11},                                                  // the /32
               Case{"2001:db8:7fff:ffff::", 11},   // below the /33
               Case{"2001:db8:8000::", 12},        // first of the /33
               Case{"2001:db8:ffff:ffff::1", 12},  // in the /33
               Case{"2001:db9::", 10},             // the /0
               Case{"::", 10}, Case{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 10});
  CAPTURE(c.address);
  CHECK(t.lookup(v6(c.address)) == c.mux);
}

TEST_CASE("prefix table: without a default route a miss is nullopt", "[relay][prefix_table]") {
  PrefixTable t;
  t.insert(p4("192.0.2.0/24"), 1);
  t.insert(p6("2001:db8::/32"), 2);
  CHECK(t.lookup(v4("192.0.3.0")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db9::")) == std::nullopt);
}

TEST_CASE("prefix table: /32 and /128 match their one address only", "[relay][prefix_table]") {
  PrefixTable t;
  t.insert(p4("203.0.113.7/32"), 1);
  t.insert(p6("2001:db8::7/128"), 2);
  CHECK(t.lookup(v4("203.0.113.7")) == 1);
  CHECK(t.lookup(v4("203.0.113.6")) == std::nullopt);
  CHECK(t.lookup(v4("203.0.113.8")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8::7")) == 2);
  CHECK(t.lookup(v6("2001:db8::6")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8::7:0")) == std::nullopt);
}

TEST_CASE("prefix table: the families are separate tables", "[relay][prefix_table]") {
  PrefixTable t;
  t.insert(p4("0.0.0.0/0"), 1);
  CHECK(t.lookup(v6("::ffff:192.0.2.1")) == std::nullopt);
  CHECK(t.lookup(v6("::")) == std::nullopt);
  t.insert(p6("::ffff:0:0/96"), 2);
  CHECK(t.lookup(v4("192.0.2.1")) == 1);
  CHECK(t.lookup(v6("::ffff:192.0.2.1")) == 2);
}

TEST_CASE("prefix table: insert replaces the MUX of a prefix", "[relay][prefix_table]") {
  auto t = nested4();
  t.insert(p4("192.0.2.0/24"), 7);
  CHECK(t.size() == 5);
  CHECK(t.lookup(v4("192.0.2.1")) == 7);
  CHECK(t.lookup(v4("192.0.2.200")) == 4);
  auto u = nested6();
  u.insert(p6("::/0"), 70);
  CHECK(u.size() == 7);
  CHECK(u.lookup(v6("2001:db9::")) == 70);
  // Replacing does not count the length twice: erasing the one route leaves the length unused.
  u.erase(p6("::/0"));
  CHECK(u.lookup(v6("2001:db9::")) == std::nullopt);
}

TEST_CASE("prefix table: erase falls back to the next shorter prefix", "[relay][prefix_table]") {
  auto t = nested4();
  CHECK(t.erase(p4("192.0.2.200/32")));
  CHECK(t.lookup(v4("192.0.2.200")) == 3);
  CHECK_FALSE(t.erase(p4("192.0.2.200/32")));
  // Present length, absent network; present network, absent length.
  CHECK_FALSE(t.erase(p4("198.51.100.0/24")));
  CHECK_FALSE(t.erase(p4("192.0.2.0/23")));
  CHECK(t.erase(p4("192.0.2.128/25")));
  CHECK(t.lookup(v4("192.0.2.200")) == 2);
  CHECK(t.erase(p4("0.0.0.0/0")));
  CHECK(t.lookup(v4("198.51.100.7")) == std::nullopt);
  CHECK(t.size() == 2);

  auto u = nested6();
  CHECK(u.erase(p6("2001:db8:1:2::1/128")));
  CHECK(u.lookup(v6("2001:db8:1:2::1")) == 16);
  CHECK(u.erase(p6("2001:db8:1:2::/127")));
  CHECK(u.lookup(v6("2001:db8:1:2::1")) == 14);
  CHECK_FALSE(u.erase(p6("2001:db8:1:2::/127")));
  CHECK(u.size() == 5);
}

TEST_CASE("prefix table: erase_mux removes every route of a MUX in both families",
          "[relay][prefix_table]") {
  PrefixTable t;
  t.insert(p4("192.0.2.0/24"), 5);
  t.insert(p4("198.51.100.0/24"), 5);
  t.insert(p4("198.51.100.0/25"), 6);
  t.insert(p6("2001:db8::/32"), 5);
  t.insert(p6("2001:db8:1::/48"), 6);
  CHECK(t.erase_mux(5) == 3);
  CHECK(t.size() == 2);
  CHECK(t.lookup(v4("192.0.2.1")) == std::nullopt);
  CHECK(t.lookup(v4("198.51.100.1")) == 6);
  CHECK(t.lookup(v4("198.51.100.129")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8::1")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8:1::1")) == 6);
  CHECK(t.erase_mux(5) == 0);
  CHECK(t.routes() == std::vector<Route>{{p4("198.51.100.0/25"), 6}, {p6("2001:db8:1::/48"), 6}});
}

TEST_CASE("prefix table: clear empties both families", "[relay][prefix_table]") {
  auto t = nested6();
  t.insert(p4("0.0.0.0/0"), 1);
  t.clear();
  CHECK(t.size() == 0);
  CHECK(t.lookup(v4("192.0.2.1")) == std::nullopt);
  CHECK(t.lookup(v6("2001:db8:1:2::1")) == std::nullopt);
  t.insert(p4("192.0.2.0/24"), 2);
  CHECK(t.lookup(v4("192.0.2.1")) == 2);
}

TEST_CASE("prefix table: routes lists IPv4 first and each family by prefix",
          "[relay][prefix_table]") {
  auto t = nested4();
  t.insert(p6("2001:db8::/32"), 11);
  t.insert(p6("::/0"), 10);
  CHECK(t.routes() == std::vector<Route>{
                          {p4("0.0.0.0/0"), 9},
                          {p4("192.0.0.0/8"), 1},
                          {p4("192.0.2.0/24"), 2},
                          {p4("192.0.2.128/25"), 3},
                          {p4("192.0.2.200/32"), 4},
                          {p6("::/0"), 10},
                          {p6("2001:db8::/32"), 11},
                      });
  CHECK(t.routes_of(2) == std::vector<Route>{{p4("192.0.2.0/24"), 2}});
  CHECK(t.routes_of(11) == std::vector<Route>{{p6("2001:db8::/32"), 11}});
  CHECK(t.routes_of(12).empty());
}

TEST_CASE("prefix table: a packet is looked up by its destination", "[relay][prefix_table]") {
  auto t = nested4();
  t.insert(p6("2001:db8::/32"), 11);
  const auto ip4 = test::PacketBuilder{}.ipv4("198.51.100.7", "192.0.2.200").udp(1, 2).bytes();
  const auto ip6 = test::PacketBuilder{}.ipv6("2001:db8:ff::1", "2001:db8::1").udp(1, 2).bytes();
  CHECK(t.lookup_destination(ip4) == 4);
  CHECK(t.lookup_destination(ip6) == 11);
  // The fixed headers alone are enough.
  CHECK(t.lookup_destination(core::Bytes{ip4}.first(20)) == 4);
  CHECK(t.lookup_destination(core::Bytes{ip6}.first(40)) == 11);
}

TEST_CASE("prefix table: a packet too short for its destination or of no IP version is refused",
          "[relay][prefix_table]") {
  PrefixTable t;
  t.insert(p4("0.0.0.0/0"), 1);
  t.insert(p6("::/0"), 2);
  const auto ip4 = test::PacketBuilder{}.ipv4("198.51.100.7", "192.0.2.1").bytes();
  const auto ip6 = test::PacketBuilder{}.ipv6("2001:db8::2", "2001:db8::1").bytes();
  CHECK(t.lookup_destination({}) == std::nullopt);
  CHECK(t.lookup_destination(core::Bytes{ip4}.first(19)) == std::nullopt);
  CHECK(t.lookup_destination(core::Bytes{ip6}.first(39)) == std::nullopt);
  // An IPv6 header's worth of bytes with version 4 is read as IPv4, and the reverse is too short.
  auto as4 = ip6;
  as4[0] = std::byte{0x45};
  CHECK(t.lookup_destination(as4) == 1);
  auto as6 = ip4;
  as6[0] = std::byte{0x60};
  CHECK(t.lookup_destination(as6) == std::nullopt);
  for (int version : {0, 5, 7, 15}) {
    auto other = ip6;
    other[0] = std::byte{static_cast<unsigned char>(version << 4)};
    CAPTURE(version);
    CHECK(t.lookup_destination(other) == std::nullopt);
  }
}

TEST_CASE("prefix table: copies and moves are independent values", "[relay][prefix_table]") {
  auto t = nested4();
  auto copy = t;
  copy.insert(p4("192.0.2.200/32"), 40);
  copy.erase(p4("0.0.0.0/0"));
  CHECK(t.lookup(v4("192.0.2.200")) == 4);
  CHECK(t.lookup(v4("198.51.100.7")) == 9);
  CHECK(copy.lookup(v4("192.0.2.200")) == 40);
  CHECK(copy.lookup(v4("198.51.100.7")) == std::nullopt);
  PrefixTable moved = std::move(copy);
  CHECK(moved.lookup(v4("192.0.2.200")) == 40);
  CHECK(moved.size() == 4);
}

TEST_CASE("prefix table: random routes match a linear scan for the longest prefix",
          "[relay][prefix_table]") {
  // Few distinct leading bits so that prefixes nest often; a fixed seed keeps it reproducible.
  std::mt19937 rng{8};
  auto bits = [&] { return static_cast<std::uint32_t>(rng()); };
  auto random4 = [&] { return core::Ipv4Address{(bits() & 0xC0C0C0C0u) | 0x0A000000u}; };
  auto random6 = [&] {
    core::Ipv6Address::Octets b{0x20, 0x01, 0x0d, 0xb8};
    for (std::size_t i = 4; i < b.size(); ++i)
      b[i] = static_cast<std::uint8_t>(bits() & (i % 3 == 0 ? 0x81 : 0x00));
    return core::Ipv6Address{b};
  };
  auto mask4 = [](core::Ipv4Address a, unsigned length) {
    const std::uint32_t m = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
    return core::Ipv4Address{a.to_uint() & m};
  };
  auto mask6 = [](core::Ipv6Address a, unsigned length) {
    auto b = a.bytes();
    for (std::size_t i = 0; i < 16; ++i) {
      const unsigned first = static_cast<unsigned>(i) * 8;
      if (first >= length)
        b[i] = 0;
      else if (length - first < 8)
        b[i] = static_cast<std::uint8_t>(b[i] & (0xff << (8 - (length - first))));
    }
    return core::Ipv6Address{b};
  };
  auto scan = [](const std::vector<Route>& routes, const auto& a) -> std::optional<std::uint16_t> {
    std::optional<std::uint16_t> best;
    unsigned best_length = 0;
    for (const auto& r : routes) {
      using P = std::conditional_t<std::is_same_v<std::decay_t<decltype(a)>, core::Ipv4Address>,
                                   core::Ipv4Prefix, core::Ipv6Prefix>;
      const auto* p = std::get_if<P>(&r.prefix);
      if (p && p->contains(a) && (!best || p->length() > best_length)) {
        best = r.mux;
        best_length = p->length();
      }
    }
    return best;
  };

  PrefixTable t;
  for (int round = 0; round < 2000; ++round) {
    const auto op = bits() % 4;
    const auto mux = static_cast<std::uint16_t>(bits() % 8);
    const unsigned len4 = bits() % 33;
    const unsigned len6 = bits() % 129;
    const Prefix a = core::Ipv4Prefix::make(mask4(random4(), len4), len4).value();
    const Prefix b = core::Ipv6Prefix::make(mask6(random6(), len6), len6).value();
    if (op == 0) {
      t.erase(a);
      t.erase(b);
    } else if (op == 1 && round % 50 == 0) {
      t.erase_mux(mux);
    } else {
      t.insert(a, mux);
      t.insert(b, mux);
    }
    const auto routes = t.routes();
    REQUIRE(routes.size() == t.size());
    for (int probe = 0; probe < 8; ++probe) {
      const auto x = random4();
      const auto y = random6();
      REQUIRE(t.lookup(x) == scan(routes, x));
      REQUIRE(t.lookup(y) == scan(routes, y));
    }
  }
}
