// Tests for core/udp.hpp: length checks, checksums over both pseudo-headers, the writer.
#include "core/udp.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "support/packet_builder.hpp"

using core::Errc;
using test::hex;
using test::PacketBuilder;

namespace {

const auto kSrc4 = *core::Ipv4Address::parse("192.0.2.1");
const auto kDst4 = *core::Ipv4Address::parse("198.51.100.7");
const auto kSrc6 = *core::Ipv6Address::parse("2001:db8::1");
const auto kDst6 = *core::Ipv6Address::parse("2001:db8::2");

// UDP 5000 -> 53, payload "q"; checksums from an independent implementation.
const auto kDatagramV4 = hex("1388 0035 0009 8ee2 71");
const auto kDatagramV6 = hex("1388 0035 0009 1faa 71");

void set16(std::vector<std::byte>& p, std::size_t at, std::uint16_t v) {
  core::store_be16(core::MutableBytes{p}.subspan(at, 2), v);
}

}  // namespace

TEST_CASE("udp: a datagram parses field by field", "[core][udp]") {
  const auto d = core::parse_udp(kDatagramV4);
  REQUIRE(d.has_value());
  CHECK(d->header.src_port == 5000);
  CHECK(d->header.dst_port == 53);
  CHECK(d->length == 9);
  CHECK(d->checksum == 0x8ee2);
  CHECK(d->datagram.size() == 9);
  REQUIRE(d->payload.size() == 1);
  CHECK(d->payload[0] == std::byte{'q'});
}

TEST_CASE("udp: known checksums over IPv4 and IPv6 pseudo-headers", "[core][udp]") {
  const auto d4 = core::parse_udp(kDatagramV4);
  const auto d6 = core::parse_udp(kDatagramV6);
  REQUIRE(d4.has_value());
  REQUIRE(d6.has_value());
  CHECK(core::udp_checksum_ok(*d4, kSrc4, kDst4));
  CHECK(core::udp_checksum_ok(*d6, kSrc6, kDst6));
  CHECK(core::udp_checksum(kDatagramV4, kSrc4, kDst4) == 0x8ee2);
  CHECK(core::udp_checksum(kDatagramV6, kSrc6, kDst6) == 0x1faa);
  // The wrong pseudo-header fails.
  CHECK_FALSE(core::udp_checksum_ok(*d4, kDst4, core::Ipv4Address{0xc0000202}));
  CHECK_FALSE(core::udp_checksum_ok(*d6, kSrc6, kSrc6));
}

TEST_CASE("udp: the builder writes the same bytes as the known vectors", "[core][udp]") {
  CHECK(core::build_udp({.src_port = 5000, .dst_port = 53}, core::as_bytes("q"), kSrc4, kDst4)
            .value() == kDatagramV4);
  CHECK(core::build_udp({.src_port = 5000, .dst_port = 53}, core::as_bytes("q"), kSrc6, kDst6)
            .value() == kDatagramV6);
}

TEST_CASE("udp: zero checksum means none on IPv4 and is invalid on IPv6", "[core][udp]") {
  auto none = kDatagramV4;
  set16(none, 6, 0);
  const auto d = core::parse_udp(none);
  REQUIRE(d.has_value());
  CHECK(core::udp_checksum_ok(*d, kSrc4, kDst4));
  CHECK_FALSE(core::udp_checksum_ok(*d, kSrc6, kDst6));
}

TEST_CASE("udp: a computed zero checksum is sent as 0xffff", "[core][udp]") {
  // Choose two payload bytes that make the one's-complement sum 0xffff, so ~sum == 0.
  auto datagram = hex("1388 0035 000a 0000 0000");
  const std::uint16_t rest =
      core::ipv4_pseudo_header(kSrc4, kDst4, core::ip_protocol::kUdp, 10).add(datagram).sum();
  set16(datagram, 8, static_cast<std::uint16_t>(~rest & 0xffff));
  CHECK(core::udp_checksum(datagram, kSrc4, kDst4) == 0xffff);
  set16(datagram, 6, 0xffff);
  const auto d = core::parse_udp(datagram);
  REQUIRE(d.has_value());
  CHECK(core::udp_checksum_ok(*d, kSrc4, kDst4));
}

TEST_CASE("udp: a corrupted datagram fails the checksum", "[core][udp]") {
  for (std::size_t byte = 0; byte < kDatagramV4.size(); ++byte) {
    auto bad = kDatagramV4;
    bad[byte] ^= std::byte{0x10};
    const auto d = core::parse_udp(bad);
    if (!d) continue;  // the length changed: rejected anyway
    INFO("byte " << byte);
    CHECK_FALSE(core::udp_checksum_ok(*d, kSrc4, kDst4));
  }
}

TEST_CASE("udp: every truncation fails cleanly", "[core][udp]") {
  for (std::size_t n = 0; n < kDatagramV4.size(); ++n) {
    INFO("length " << n);
    const auto d = core::parse_udp(core::Bytes{kDatagramV4}.first(n));
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error() == (n < 8 ? Errc::Truncated : Errc::BadLength));
  }
}

TEST_CASE("udp: lying length fields are rejected", "[core][udp]") {
  struct Case {
    const char* name;
    std::uint16_t length;
    Errc why;
  };
  const std::vector<Case> table{
      {"length > IP payload", 10, Errc::BadLength},
      {"length 65535", 0xffff, Errc::BadLength},
      {"length < header", 7, Errc::BadLength},
      {"length 0 (IPv6 jumbogram form)", 0, Errc::BadLength},
  };
  for (const auto& c : table) {
    INFO(c.name);
    auto bad = kDatagramV4;
    set16(bad, 4, c.length);
    const auto d = core::parse_udp(bad);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error() == c.why);
  }
}

TEST_CASE("udp: UDP length > IP payload inside a full packet", "[core][udp]") {
  auto pkt = PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload("q").bytes();
  set16(pkt, 20 + 4, 10);
  const auto ip = core::parse_ipv4(pkt);
  REQUIRE(ip.has_value());
  const auto d = core::parse_udp(ip->payload);
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error() == Errc::BadLength);
}

TEST_CASE("udp: bytes after the UDP length are left out", "[core][udp]") {
  auto longer = kDatagramV4;
  longer.push_back(std::byte{0xee});
  const auto d = core::parse_udp(longer);
  REQUIRE(d.has_value());
  CHECK(d->datagram.size() == 9);
  CHECK(d->payload.size() == 1);
  CHECK(core::udp_checksum_ok(*d, kSrc4, kDst4));
}

TEST_CASE("udp: packets from the builder verify over both families", "[core][udp]") {
  const std::string big(1000, 'x');
  for (const auto& payload : {std::string{}, std::string{"a"}, std::string{"ab"}, big}) {
    INFO("payload " << payload.size());
    const auto p4 =
        PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).payload(payload).bytes();
    const auto ip4 = core::parse_ipv4(p4);
    REQUIRE(ip4.has_value());
    const auto d4 = core::parse_udp(ip4->payload);
    REQUIRE(d4.has_value());
    CHECK(core::udp_checksum_ok(*d4, ip4->header.src, ip4->header.dst));

    const auto p6 =
        PacketBuilder{}.ipv6("2001:db8::1", "2001:db8::2").udp(1, 2).payload(payload).bytes();
    const auto ip6 = core::parse_ipv6(p6);
    REQUIRE(ip6.has_value());
    const auto d6 = core::parse_udp(ip6->upper_layer());
    REQUIRE(d6.has_value());
    CHECK(d6->checksum != 0);
    CHECK(core::udp_checksum_ok(*d6, ip6->header.src, ip6->header.dst));
  }
}

TEST_CASE("udp: the writer rejects oversize datagrams and short buffers", "[core][udp]") {
  const std::vector<std::byte> huge(65528);
  std::vector<std::byte> buf(16);
  core::ByteWriter out{buf};
  CHECK(core::write_udp(out, {}, huge, kSrc4, kDst4).error() == Errc::BadLength);
  CHECK(core::write_udp(out, {}, hex("0102 0304 0506 0708 09"), kSrc4, kDst4).error() ==
        Errc::NoSpace);
}
