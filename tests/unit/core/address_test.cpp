// Tests for core/address.hpp: strict parsing, RFC 5952 formatting, prefixes.
#include "core/address.hpp"

#include <catch2/catch.hpp>
#include <unordered_set>
#include <vector>

using core::Errc;
using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using core::Ipv6Prefix;

TEST_CASE("ipv4: valid dotted quads parse and format back", "[core][address]") {
  for (const char* text : {"0.0.0.0", "192.0.2.1", "255.255.255.255", "198.51.100.7", "1.2.3.4"}) {
    auto a = Ipv4Address::parse(text);
    REQUIRE(a);
    CHECK(a->to_string() == text);
  }
  CHECK(Ipv4Address::parse("192.0.2.1")->to_uint() == 0xC0000201u);
  CHECK(Ipv4Address{0xC0000201u}.bytes() == std::array<std::uint8_t, 4>{192, 0, 2, 1});
}

TEST_CASE("ipv4: garbage is rejected with the reason", "[core][address]") {
  struct Bad {
    const char* text;
    Errc why;
  };
  const std::vector<Bad> table{
      {"", Errc::Empty},
      {"1.2.3", Errc::BadFieldCount},
      {"1.2.3.4.5", Errc::BadFieldCount},
      {"1.2.3.", Errc::BadFieldCount},
      {".1.2.3", Errc::BadFieldCount},
      {"1..2.3", Errc::BadFieldCount},
      {"256.0.0.1", Errc::FieldOutOfRange},
      {"1.2.3.999999999999", Errc::FieldOutOfRange},
      {"01.2.3.4", Errc::LeadingZero},
      {"1.2.3.00", Errc::LeadingZero},
      {"1.2.3.4 ", Errc::BadCharacter},
      {" 1.2.3.4", Errc::BadCharacter},
      {"1.2.3.4/24", Errc::BadCharacter},
      {"1.2.3.-4", Errc::BadCharacter},
      {"0x1.2.3.4", Errc::BadCharacter},
  };
  for (const auto& [text, why] : table) {
    INFO(text);
    auto a = Ipv4Address::parse(text);
    REQUIRE_FALSE(a);
    CHECK(a.error() == why);
  }
  auto nul = Ipv4Address::parse(std::string_view{"1.2.3.4\0", 8});
  REQUIRE_FALSE(nul);
  CHECK(nul.error() == Errc::BadCharacter);
  CHECK(core::make_error_code(Errc::LeadingZero).message() == "leading zero in a decimal field");
}

TEST_CASE("ipv6: RFC 5952 canonical text", "[core][address]") {
  struct Case {
    const char* in;
    const char* canonical;
  };
  const std::vector<Case> table{
      {"::", "::"},
      {"::1", "::1"},
      {"2001:DB8::1", "2001:db8::1"},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // 4.2.3: first of equal runs
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // 4.2.2: one zero group stays
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // 4.2.3: longest run wins
      {"2001:db8::", "2001:db8::"},
      {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},  // 5: mapped keeps dotted quad
      {"::ffff:c000:0201", "::ffff:192.0.2.1"},
      {"2001:db8::192.0.2.33", "2001:db8::c000:221"},
      {"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
      {"fe80::abcd", "fe80::abcd"},
      {"1::", "1::"},
      {"1:2:3:4:5:6::8", "1:2:3:4:5:6:0:8"},
      // The longest texts, which fill to_chars' buffer furthest.
      {"FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"::ffff:255.255.255.255", "::ffff:255.255.255.255"},
      {"2001:db8:1000:100:10:1:a0:f00", "2001:db8:1000:100:10:1:a0:f00"},
  };
  for (const auto& [in, canonical] : table) {
    INFO(in);
    auto a = Ipv6Address::parse(in);
    REQUIRE(a);
    CHECK(a->to_string() == canonical);
    CHECK(Ipv6Address::parse(canonical).value() == *a);
  }
}

TEST_CASE("ipv6: garbage is rejected with the reason", "[core][address]") {
  struct Bad {
    const char* text;
    Errc why;
  };
  const std::vector<Bad> table{
      {"", Errc::Empty},
      {":", Errc::BadCompression},
      {":1", Errc::BadCompression},
      {"1:", Errc::BadCompression},
      {":::", Errc::BadCompression},
      {"1::2::3", Errc::BadCompression},
      {"1:::2", Errc::BadCompression},
      {"1:2:3:4:5:6:7", Errc::BadFieldCount},
      {"1:2:3:4:5:6:7:8:9", Errc::BadFieldCount},
      {"1:2:3:4:5:6:7::8", Errc::BadCompression},
      {"12345::", Errc::FieldOutOfRange},
      {"g::1", Errc::BadCharacter},
      {"fe80::1%eth0", Errc::BadCharacter},
      {"2001:db8::/32", Errc::BadCharacter},
      {"::1.2.3", Errc::BadFieldCount},
      {"::256.0.0.1", Errc::FieldOutOfRange},
      {"1:2:3:4:5:6:7:1.2.3.4", Errc::BadFieldCount},
      {"1.2.3.4::", Errc::BadCharacter},
      {" ::1", Errc::BadCharacter},
      {"2001:db8:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1", Errc::BadFieldCount},
  };
  for (const auto& [text, why] : table) {
    INFO(text);
    auto a = Ipv6Address::parse(text);
    REQUIRE_FALSE(a);
    CHECK(a.error() == why);
  }
}

TEST_CASE("addresses: ordering and hashing", "[core][address]") {
  auto a = Ipv4Address::parse("192.0.2.1").value();
  auto b = Ipv4Address::parse("192.0.2.2").value();
  CHECK(a < b);
  CHECK(Ipv6Address::parse("2001:db8::1").value() < Ipv6Address::parse("2001:db8::2").value());
  std::unordered_set<Ipv6Address> set{Ipv6Address::parse("2001:db8::1").value(),
                                      Ipv6Address::parse("2001:db8::1").value(),
                                      Ipv6Address::parse("2001:db8::2").value()};
  CHECK(set.size() == 2);
  std::unordered_set<Ipv4Address> set4{a, a, b};
  CHECK(set4.size() == 2);
  CHECK(Ipv6Address::parse("::ffff:192.0.2.1")->is_v4_mapped());
  CHECK(Ipv6Address::parse("fe80::1")->is_link_local());
  CHECK(Ipv4Address::parse("224.0.0.1")->is_multicast());
}

TEST_CASE("ipv4 prefix: parse, contain, iterate", "[core][address]") {
  auto p = Ipv4Prefix::parse("192.0.2.0/30").value();
  CHECK(p.to_string() == "192.0.2.0/30");
  CHECK(p.size() == 4);
  CHECK(p.last().to_string() == "192.0.2.3");
  CHECK(p.contains(Ipv4Address::parse("192.0.2.3").value()));
  CHECK_FALSE(p.contains(Ipv4Address::parse("192.0.2.4").value()));
  std::vector<std::string> seen;
  for (auto a : p) seen.push_back(a.to_string());
  CHECK(seen == std::vector<std::string>{"192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"});

  auto all = Ipv4Prefix::parse("0.0.0.0/0").value();
  CHECK(all.size() == (std::uint64_t{1} << 32));
  CHECK(all.contains(p));
  CHECK_FALSE(p.contains(all));
  auto top = Ipv4Prefix::parse("255.255.255.255/32").value();
  CHECK(std::distance(top.begin(), top.end()) == 1);

  CHECK(Ipv4Prefix::parse("192.0.2.1/24").error() == Errc::HostBitsSet);
  CHECK(Ipv4Prefix::parse("192.0.2.0/33").error() == Errc::BadPrefixLength);
  CHECK(Ipv4Prefix::parse("192.0.2.0").error() == Errc::BadPrefixLength);
  CHECK(Ipv4Prefix::parse("192.0.2.0/").error() == Errc::BadPrefixLength);
  CHECK(Ipv4Prefix::parse("192.0.2.0/024").error() == Errc::BadPrefixLength);
  CHECK(Ipv4Prefix::parse("192.0.2.0/+4").error() == Errc::BadPrefixLength);
  CHECK(Ipv4Prefix::parse("192.0.2/24").error() == Errc::BadFieldCount);
}

TEST_CASE("ipv6 prefix: parse, contain, iterate", "[core][address]") {
  auto p = Ipv6Prefix::parse("2001:db8::/126").value();
  std::vector<std::string> seen;
  for (auto a : p) seen.push_back(a.to_string());
  CHECK(seen ==
        std::vector<std::string>{"2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"});
  auto doc = Ipv6Prefix::parse("2001:db8::/32").value();
  CHECK(doc.contains(Ipv6Address::parse("2001:db8:ffff::1").value()));
  CHECK_FALSE(doc.contains(Ipv6Address::parse("2001:db9::1").value()));
  CHECK(doc.contains(p));
  CHECK(Ipv6Prefix::parse("2001:db8::/28").error() == Errc::HostBitsSet);
  CHECK(Ipv6Prefix::parse("2001:db8::/129").error() == Errc::BadPrefixLength);
  auto odd = Ipv6Prefix::parse("2001:db8:8000::/33").value();
  CHECK(odd.contains(Ipv6Address::parse("2001:db8:ffff::").value()));
  CHECK_FALSE(odd.contains(Ipv6Address::parse("2001:db8:7fff::").value()));
  auto host = Ipv6Prefix::parse("::1/128").value();
  CHECK(std::distance(host.begin(), host.end()) == 1);
  // Walking past the last address of a short prefix ends instead of wrapping around.
  auto it = Ipv6Prefix::parse("2001:db8::/127").value().begin();
  ++it;
  ++it;
  CHECK(it == Ipv6Prefix::parse("2001:db8::/127").value().end());
}
