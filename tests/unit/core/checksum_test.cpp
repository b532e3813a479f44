// Tests for core/checksum.hpp: RFC 1071 vectors, piecewise sums, RFC 1624 incremental update.
#include "core/checksum.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "support/packet_builder.hpp"

using core::Checksum;
using test::hex;

namespace {

// The IPv4 header of a real UDP packet, checksum field 0xb861 included.
const auto kIpv4Header = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");

// Deterministic pseudo-random bytes: mt19937 output is specified by the standard, unlike the
// distributions, so the test sees the same data everywhere.
std::vector<std::byte> random_bytes(std::mt19937& rng, std::size_t n) {
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xff);
  return out;
}

}  // namespace

TEST_CASE("checksum: RFC 1071 section 3 example", "[core][checksum]") {
  // 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2 (the RFC's worked example).
  const auto data = hex("0001 f203 f4f5 f6f7");
  CHECK(Checksum{}.add(data).sum() == 0xddf2);
  CHECK(core::internet_checksum(data) == 0x220d);
}

TEST_CASE("checksum: a real IPv4 header verifies and recomputes", "[core][checksum]") {
  CHECK(core::internet_checksum(kIpv4Header) == 0);
  auto zeroed = kIpv4Header;
  zeroed[10] = zeroed[11] = std::byte{0};
  CHECK(core::internet_checksum(zeroed) == 0xb861);
  CHECK(Checksum{}.add_except(kIpv4Header, 10).finish() == 0xb861);
}

TEST_CASE("checksum: pieces split at every offset sum like the whole", "[core][checksum]") {
  const auto data = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7 ab");  // odd length
  const std::uint16_t whole = core::internet_checksum(data);
  const core::Bytes all{data};
  for (std::size_t i = 0; i <= data.size(); ++i) {
    for (std::size_t j = i; j <= data.size(); ++j) {
      INFO("split at " << i << " and " << j);
      Checksum c;
      c.add(all.first(i)).add(all.subspan(i, j - i)).add(all.subspan(j));
      CHECK(c.finish() == whole);
      CHECK(c.odd() == (data.size() % 2 == 1));
    }
  }
}

TEST_CASE("checksum: an odd trailing byte is padded with zero", "[core][checksum]") {
  CHECK(Checksum{}.add(hex("01")).sum() == 0x0100);
  CHECK(Checksum{}.add(hex("0102 03")).sum() == 0x0402);
  CHECK(Checksum{}.add_u8(1).add_u16(0x0203).sum() == 0x0402);  // 0102 + 0300
}

TEST_CASE("checksum: carries wrap around", "[core][checksum]") {
  CHECK(Checksum{}.add(hex("ffff ffff")).sum() == 0xffff);
  CHECK(Checksum{}.add(hex("ffff 0001")).sum() == 0x0001);
  CHECK(Checksum{}.add(hex("8000 8000")).sum() == 0x0001);
  // Many words: no overflow of the accumulator.
  std::vector<std::byte> big(65536, std::byte{0xff});
  CHECK(Checksum{}.add(big).sum() == 0xffff);
}

TEST_CASE("checksum: fields add as their big-endian bytes", "[core][checksum]") {
  const auto data = hex("1234 5678 9a");
  CHECK(Checksum{}.add_u32(0x12345678).add_u8(0x9a).sum() == Checksum{}.add(data).sum());
  CHECK(Checksum{}.add(core::Ipv4Address{0xc0000201}).sum() ==
        Checksum{}.add(hex("c000 0201")).sum());
}

TEST_CASE("checksum: add_except zeroes only the overlapping part of the field",
          "[core][checksum]") {
  const auto data = hex("1111 2222 3333");
  CHECK(Checksum{}.add_except(data, 2).sum() == Checksum{}.add(hex("1111 0000 3333")).sum());
  CHECK(Checksum{}.add_except(data, 5).sum() == Checksum{}.add(hex("1111 2222 33")).sum());
  CHECK(Checksum{}.add_except(data, 9).sum() == Checksum{}.add(data).sum());
}

TEST_CASE("checksum: IPv4 pseudo-header layout", "[core][checksum]") {
  const auto src = *core::Ipv4Address::parse("192.0.2.1");
  const auto dst = *core::Ipv4Address::parse("198.51.100.7");
  CHECK(core::ipv4_pseudo_header(src, dst, 17, 9).sum() ==
        Checksum{}.add(hex("c000 0201 c633 6407 0011 0009")).sum());
}

TEST_CASE("checksum: IPv6 pseudo-header layout", "[core][checksum]") {
  const auto src = *core::Ipv6Address::parse("2001:db8::1");
  const auto dst = *core::Ipv6Address::parse("2001:db8::2");
  CHECK(core::ipv6_pseudo_header(src, dst, 58, 0x10203).sum() ==
        Checksum{}
            .add(hex("2001 0db8 0000 0000 0000 0000 0000 0001"
                     "2001 0db8 0000 0000 0000 0000 0000 0002"
                     "0001 0203 0000 003a"))
            .sum());
}

TEST_CASE("checksum: RFC 1624 section 4 example", "[core][checksum]") {
  // HC = 0xdd2f, m = 0x5555, m' = 0x3285: eqn. 3 gives 0x0000 (eqn. 2 would give 0xffff).
  CHECK(core::checksum_update16(0xdd2f, 0x5555, 0x3285) == 0x0000);
}

TEST_CASE("checksum: incremental update of a real header equals recomputation",
          "[core][checksum]") {
  auto header = kIpv4Header;
  const core::MutableBytes h{header};
  // Decrement TTL (the word at offset 8 is TTL|protocol).
  const std::uint16_t old_word = core::load_be16(h.subspan(8, 2));
  const auto new_word = static_cast<std::uint16_t>(old_word - 0x0100);
  core::store_be16(h.subspan(8, 2), new_word);
  const std::uint16_t updated = core::checksum_update16(0xb861, old_word, new_word);
  core::store_be16(h.subspan(10, 2), updated);
  CHECK(core::internet_checksum(header) == 0);
  CHECK(updated == 0xb961);  // TTL down by one: checksum up by 0x0100 (RFC 1141)
}

TEST_CASE("checksum: incremental update equals full recomputation (random property)",
          "[core][checksum]") {
  std::mt19937 rng{20240601};
  for (int round = 0; round < 5000; ++round) {
    const std::size_t words = 8 + rng() % 60;
    auto data = random_bytes(rng, words * 2);
    const core::MutableBytes d{data};
    const std::uint16_t before = core::internet_checksum(data);
    std::uint16_t after = 0;
    switch (rng() % 3) {
      case 0: {  // a 16-bit field at an even offset
        const std::size_t at = (rng() % words) * 2;
        const std::uint16_t old_value = core::load_be16(d.subspan(at, 2));
        const auto new_value = static_cast<std::uint16_t>(rng() & 0xffff);
        core::store_be16(d.subspan(at, 2), new_value);
        after = core::checksum_update16(before, old_value, new_value);
        break;
      }
      case 1: {  // a 32-bit field (an address) at an even offset
        const std::size_t at = (rng() % (words - 1)) * 2;
        const std::uint32_t old_value = core::load_be32(d.subspan(at, 4));
        const auto new_value = static_cast<std::uint32_t>(rng());
        core::store_be32(d.subspan(at, 4), new_value);
        after = core::checksum_update32(before, old_value, new_value);
        break;
      }
      default: {                                 // any length at any offset, odd ones included
        const std::size_t len = 1 + rng() % 16;  // data is at least 16 bytes
        const std::size_t at = rng() % (data.size() - len + 1);
        const auto field = d.subspan(at, len);
        const std::vector<std::byte> old_field{field.begin(), field.end()};
        const auto new_field = random_bytes(rng, len);
        for (std::size_t i = 0; i < len; ++i) field[i] = new_field[i];
        after = core::checksum_replace(before, at, old_field, new_field);
        break;
      }
    }
    INFO("round " << round);
    REQUIRE(after == core::internet_checksum(data));
  }
}
