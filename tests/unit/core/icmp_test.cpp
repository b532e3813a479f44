// Tests for core/icmp.hpp: echo messages, checksums, and ICMP errors checked field by field.
#include "core/icmp.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/checksum.hpp"
#include "support/packet_builder.hpp"

using core::Errc;
using test::hex;
using test::PacketBuilder;

namespace {

const auto kSrc6 = *core::Ipv6Address::parse("2001:db8::1");
const auto kDst6 = *core::Ipv6Address::parse("2001:db8::2");
const auto kRouter4 = *core::Ipv4Address::parse("203.0.113.1");
const auto kRouter6 = *core::Ipv6Address::parse("2001:db8:ffff::1");

// Echo request id 0x1234 seq 1 "ping"; checksums from an independent implementation.
const auto kEchoV4 = hex("0800 06fa 1234 0001 7069 6e67");
const auto kEchoV6 = hex("8000 333e 1234 0001 7069 6e67");

std::vector<std::byte> to_vector(core::Bytes b) {
  return {b.begin(), b.end()};
}

// An IPv4 UDP packet from 192.0.2.1 with a payload of `n` bytes, DF set.
std::vector<std::byte> offending_v4(std::size_t n) {
  return PacketBuilder{}
      .ipv4("192.0.2.1", "198.51.100.7")
      .df()
      .id(0x4242)
      .udp(5000, 53)
      .payload(std::string(n, 'z'))
      .bytes();
}

std::vector<std::byte> offending_v6(std::size_t n) {
  return PacketBuilder{}
      .ipv6("2001:db8::1", "2001:db8::2")
      .udp(5000, 53)
      .payload(std::string(n, 'z'))
      .bytes();
}

}  // namespace

TEST_CASE("icmp: an ICMPv4 echo request parses field by field", "[core][icmp]") {
  const auto m = core::parse_icmpv4(kEchoV4);
  REQUIRE(m.has_value());
  CHECK(m->type == core::icmpv4_type::kEchoRequest);
  CHECK(m->code == 0);
  CHECK(m->checksum == 0x06fa);
  CHECK(m->echo_id() == 0x1234);
  CHECK(m->echo_sequence() == 1);
  CHECK(to_vector(m->body) == to_vector(core::as_bytes("ping")));
  CHECK(core::icmpv4_checksum_ok(*m));
  CHECK(core::icmpv4_checksum(kEchoV4) == 0x06fa);
}

TEST_CASE("icmp: an ICMPv6 echo request checksums over the pseudo-header", "[core][icmp]") {
  const auto m = core::parse_icmpv6(kEchoV6);
  REQUIRE(m.has_value());
  CHECK(m->type == core::icmpv6_type::kEchoRequest);
  CHECK(m->echo_id() == 0x1234);
  CHECK(m->echo_sequence() == 1);
  CHECK(core::icmpv6_checksum_ok(*m, kSrc6, kDst6));
  CHECK_FALSE(core::icmpv6_checksum_ok(*m, kSrc6, kSrc6));
  CHECK(core::icmpv6_checksum(kEchoV6, kSrc6, kDst6) == 0x333e);
}

TEST_CASE("icmp: echo writers produce the known messages", "[core][icmp]") {
  const core::IcmpEcho echo{.id = 0x1234, .sequence = 1, .data = core::as_bytes("ping")};
  std::vector<std::byte> buf(12);
  core::ByteWriter out{buf};
  REQUIRE(core::write_icmpv4_echo(out, core::EchoKind::request, echo).has_value());
  CHECK(buf == kEchoV4);
  core::ByteWriter out6{buf};
  REQUIRE(core::write_icmpv6_echo(out6, core::EchoKind::request, echo, kSrc6, kDst6).has_value());
  CHECK(buf == kEchoV6);

  // Replies differ in type and checksum only.
  core::ByteWriter reply{buf};
  REQUIRE(core::write_icmpv4_echo(reply, core::EchoKind::reply, echo).has_value());
  const auto m = core::parse_icmpv4(buf);
  REQUIRE(m.has_value());
  CHECK(m->type == core::icmpv4_type::kEchoReply);
  CHECK(core::icmpv4_checksum_ok(*m));
  core::ByteWriter reply6{buf};
  REQUIRE(core::write_icmpv6_echo(reply6, core::EchoKind::reply, echo, kSrc6, kDst6).has_value());
  const auto m6 = core::parse_icmpv6(buf);
  REQUIRE(m6.has_value());
  CHECK(m6->type == core::icmpv6_type::kEchoReply);
  CHECK(core::icmpv6_checksum_ok(*m6, kSrc6, kDst6));

  std::vector<std::byte> small(11);
  core::ByteWriter tight{small};
  CHECK(core::write_icmpv4_echo(tight, core::EchoKind::request, echo).error() == Errc::NoSpace);
}

TEST_CASE("icmp: every truncation of the header fails cleanly", "[core][icmp]") {
  for (std::size_t n = 0; n < core::kIcmpHeaderLength; ++n) {
    INFO("length " << n);
    CHECK(core::parse_icmpv4(core::Bytes{kEchoV4}.first(n)).error() == Errc::Truncated);
    CHECK(core::parse_icmpv6(core::Bytes{kEchoV6}.first(n)).error() == Errc::Truncated);
  }
  const auto bare = core::parse_icmpv4(core::Bytes{kEchoV4}.first(8));
  REQUIRE(bare.has_value());
  CHECK(bare->body.empty());
}

TEST_CASE("icmp: fragmentation needed is built field by field (RFC 1191)", "[core][icmp]") {
  const auto offending = offending_v4(1400);
  const auto pkt = core::build_icmpv4_fragmentation_needed(kRouter4, 1280, offending);
  REQUIRE(pkt.has_value());
  REQUIRE(pkt->size() == 20 + 8 + 28);

  const auto ip = core::parse_ipv4(*pkt);
  REQUIRE(ip.has_value());
  CHECK(ip->checksum_ok());
  CHECK(ip->header.src == kRouter4);
  CHECK(ip->header.dst.to_string() == "192.0.2.1");  // back to the offending source
  CHECK(ip->header.protocol == core::ip_protocol::kIcmp);
  CHECK(ip->header.ttl == 64);
  CHECK_FALSE(ip->header.dont_fragment);
  CHECK(ip->total_length == 56);

  const auto m = core::parse_icmpv4(ip->payload);
  REQUIRE(m.has_value());
  CHECK(m->type == core::icmpv4_type::kDestinationUnreachable);
  CHECK(m->code == core::icmpv4_unreachable::kFragmentationNeeded);
  CHECK(core::icmpv4_checksum_ok(*m));
  CHECK((m->rest_of_header >> 16) == 0);  // unused
  CHECK(m->next_hop_mtu() == 1280);
  // The quote: the offending IP header and the first 8 bytes of its payload (the UDP header).
  CHECK(to_vector(m->body) == to_vector(core::Bytes{offending}.first(28)));
}

TEST_CASE("icmp: ICMPv4 error quotes header options and stops at short payloads", "[core][icmp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> offending;
    std::size_t quoted;
  };
  auto padded = offending_v4(100);
  const std::size_t padded_real = padded.size();
  padded.resize(padded_real + 20);
  const std::vector<Case> table{
      {"IHL 6 header + 8",
       PacketBuilder{}
           .ipv4("192.0.2.1", "198.51.100.7")
           .ipv4_options({1, 1, 1, 0})
           .udp(1, 2)
           .payload("abcdefgh")
           .bytes(),
       32},
      {"payload shorter than 8 bytes",
       PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").payload("abc").bytes(), 23},
      {"no payload", PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").bytes(), 20},
      {"trailing padding is not quoted", padded, 28},
  };
  for (const auto& c : table) {
    INFO(c.name);
    std::vector<std::byte> buf(128);
    core::ByteWriter out{buf};
    REQUIRE(core::write_icmpv4_destination_unreachable(out, core::icmpv4_unreachable::kHost,
                                                       c.offending)
                .has_value());
    CHECK(out.size() == 8 + c.quoted);
    const auto m = core::parse_icmpv4(out.written());
    REQUIRE(m.has_value());
    CHECK(m->code == core::icmpv4_unreachable::kHost);
    CHECK(m->rest_of_header == 0);
    CHECK(core::icmpv4_checksum_ok(*m));
    CHECK(to_vector(m->body) == to_vector(core::Bytes{c.offending}.first(c.quoted)));
  }
}

TEST_CASE("icmp: an ICMPv4 error about garbage is refused", "[core][icmp]") {
  std::vector<std::byte> buf(128);
  core::ByteWriter out{buf};
  CHECK(core::write_icmpv4_error(out, 3, 1, 0, hex("4500 00")).error() == Errc::Truncated);
  CHECK(core::build_icmpv4_fragmentation_needed(kRouter4, 1280, hex("6000")).error() ==
        Errc::Truncated);
  auto lying = offending_v4(10);
  lying[3] = std::byte{0xff};  // total length past the buffer
  CHECK(core::build_icmpv4_error(kRouter4, 11, 0, 0, lying).error() == Errc::BadLength);
}

TEST_CASE("icmp: packet too big is built field by field (RFC 4443)", "[core][icmp]") {
  const auto offending = offending_v6(1452);  // 1500 bytes
  REQUIRE(offending.size() == 1500);
  const auto pkt = core::build_icmpv6_packet_too_big(kRouter6, 1480, offending);
  REQUIRE(pkt.has_value());
  CHECK(pkt->size() == 1280);  // as much of the packet as fits the minimum MTU

  const auto ip = core::parse_ipv6(*pkt);
  REQUIRE(ip.has_value());
  CHECK(ip->header.src == kRouter6);
  CHECK(ip->header.dst == kSrc6);
  CHECK(ip->header.next_header == core::ip_protocol::kIcmpv6);
  CHECK(ip->header.hop_limit == 64);
  CHECK(ip->payload_length == 1240);

  const auto m = core::parse_icmpv6(ip->upper_layer());
  REQUIRE(m.has_value());
  CHECK(m->type == core::icmpv6_type::kPacketTooBig);
  CHECK(m->code == 0);
  CHECK(m->mtu() == 1480);
  CHECK(core::icmpv6_checksum_ok(*m, kRouter6, kSrc6));
  CHECK(to_vector(m->body) == to_vector(core::Bytes{offending}.first(1232)));
}

TEST_CASE("icmp: ICMPv6 errors quote small packets whole", "[core][icmp]") {
  struct Case {
    const char* name;
    std::size_t payload;
  };
  for (const auto& c :
       std::vector<Case>{{"tiny", 0}, {"just fits", 1232 - 48}, {"one over", 1232 - 47}}) {
    INFO(c.name);
    auto offending = offending_v6(c.payload);
    const std::size_t real = offending.size();
    offending.resize(real + 7);  // bytes past the payload length are not part of the packet
    const auto pkt = core::build_icmpv6_error(kRouter6, core::icmpv6_type::kDestinationUnreachable,
                                              4, 0, offending);
    REQUIRE(pkt.has_value());
    const std::size_t quoted = std::min<std::size_t>(real, 1232);
    CHECK(pkt->size() == 48 + quoted);
    const auto ip = core::parse_ipv6(*pkt);
    REQUIRE(ip.has_value());
    const auto m = core::parse_icmpv6(ip->upper_layer());
    REQUIRE(m.has_value());
    CHECK(m->type == core::icmpv6_type::kDestinationUnreachable);
    CHECK(m->code == 4);
    CHECK(core::icmpv6_checksum_ok(*m, ip->header.src, ip->header.dst));
    CHECK(to_vector(m->body) == to_vector(core::Bytes{offending}.first(quoted)));
  }
}

TEST_CASE("icmp: ICMPv6 errors about non-first fragments can be built", "[core][icmp]") {
  const auto frag = PacketBuilder{}
                        .ipv6("2001:db8::1", "2001:db8::2")
                        .fragment(100, false, 9)
                        .raw(hex("0102"))
                        .bytes();
  REQUIRE(core::parse_ipv6(frag).error() == Errc::Unsupported);
  const auto pkt = core::build_icmpv6_packet_too_big(kRouter6, 1280, frag);
  REQUIRE(pkt.has_value());
  CHECK(pkt->size() == 48 + frag.size());
  CHECK(core::icmpv6_error_allowed(frag, core::icmpv6_type::kPacketTooBig, 0));
  CHECK(core::build_icmpv6_packet_too_big(kRouter6, 1280, hex("4500")).error() == Errc::Truncated);
}

TEST_CASE("icmp: the write_icmpv6_error quote is capped at 1232 bytes", "[core][icmp]") {
  const std::vector<std::byte> big(2000, std::byte{0xab});
  std::vector<std::byte> buf(1500);
  core::ByteWriter out{buf};
  REQUIRE(core::write_icmpv6_packet_too_big(out, 1400, big, kRouter6, kSrc6).has_value());
  CHECK(out.size() == 8 + 1232);
}

TEST_CASE("icmp: which ICMPv4 messages are errors", "[core][icmp]") {
  for (const int t : {0, 8, 9, 10, 13, 14, 15, 16, 17, 18})
    CHECK_FALSE(core::icmpv4_is_error(static_cast<std::uint8_t>(t)));
  for (const int t : {3, 4, 5, 11, 12, 19, 42, 255})
    CHECK(core::icmpv4_is_error(static_cast<std::uint8_t>(t)));
  CHECK(core::icmpv6_is_error(1));
  CHECK(core::icmpv6_is_error(127));
  CHECK_FALSE(core::icmpv6_is_error(128));
}

TEST_CASE("icmp: when an ICMPv4 error may be sent", "[core][icmp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> offending;
    bool allowed;
  };
  const auto from = [](const char* src, const char* dst,
                       std::optional<std::uint8_t> protocol = std::nullopt) {
    return PacketBuilder{}.ipv4(src, dst, protocol);
  };
  const std::vector<Case> table{
      {"unicast UDP", from("192.0.2.1", "198.51.100.7").udp(1, 2).bytes(), true},
      {"echo request", from("192.0.2.1", "198.51.100.7").icmpv4_echo(1, 1).bytes(), true},
      {"first fragment", from("192.0.2.1", "198.51.100.7").mf().udp(1, 2).bytes(), true},
      {"non-first fragment",
       from("192.0.2.1", "198.51.100.7").fragment_offset(3).payload("x").bytes(), false},
      {"about an ICMP error",
       from("192.0.2.1", "198.51.100.7", core::ip_protocol::kIcmp)
           .raw(hex("0304 0000 0000 0000"))
           .bytes(),
       false},
      {"about an empty ICMP message",
       from("192.0.2.1", "198.51.100.7", core::ip_protocol::kIcmp).bytes(), false},
      {"to the limited broadcast", from("192.0.2.1", "255.255.255.255").udp(1, 2).bytes(), false},
      {"to a multicast group", from("192.0.2.1", "224.0.0.251").udp(1, 2).bytes(), false},
      {"from 0.0.0.0", from("0.0.0.0", "198.51.100.7").udp(1, 2).bytes(), false},
      {"from loopback", from("127.0.0.1", "198.51.100.7").udp(1, 2).bytes(), false},
      {"from multicast", from("224.0.0.1", "198.51.100.7").udp(1, 2).bytes(), false},
      {"from 240/4", from("240.0.0.1", "198.51.100.7").udp(1, 2).bytes(), false},
      {"garbage", hex("4500"), false},
  };
  for (const auto& c : table) {
    INFO(c.name);
    CHECK(core::icmpv4_error_allowed(c.offending) == c.allowed);
  }
}

TEST_CASE("icmp: when an ICMPv6 error may be sent", "[core][icmp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> offending;
    std::uint8_t type;
    std::uint8_t code;
    bool allowed;
  };
  using namespace core::icmpv6_type;
  const auto from = [](const char* src, const char* dst,
                       std::optional<std::uint8_t> next_header = std::nullopt) {
    return PacketBuilder{}.ipv6(src, dst, next_header);
  };
  const auto unicast = from("2001:db8::1", "2001:db8::2").udp(1, 2).bytes();
  const auto to_group = from("2001:db8::1", "ff02::1").udp(1, 2).bytes();
  const std::vector<Case> table{
      {"unicast UDP", unicast, kDestinationUnreachable, 0, true},
      {"echo request", from("2001:db8::1", "2001:db8::2").icmpv6_echo(1, 1).bytes(), kTimeExceeded,
       0, true},
      {"about an ICMPv6 error",
       from("2001:db8::1", "2001:db8::2", core::ip_protocol::kIcmpv6)
           .raw(hex("0100 0000 0000 0000"))
           .bytes(),
       kDestinationUnreachable, 0, false},
      {"about an ICMPv6 error behind a destination options header",
       from("2001:db8::1", "2001:db8::2", core::ip_protocol::kDestinationOptions)
           .raw(hex("3a00 0104 0000 0000  0300 0000 0000 0000"))
           .bytes(),
       kPacketTooBig, 0, false},
      {"multicast destination", to_group, kDestinationUnreachable, 0, false},
      {"multicast destination, packet too big", to_group, kPacketTooBig, 0, true},
      {"multicast destination, parameter problem code 2", to_group, kParameterProblem, 2, true},
      {"multicast destination, parameter problem code 1", to_group, kParameterProblem, 1, false},
      {"unspecified source", from("::", "2001:db8::2").udp(1, 2).bytes(), kDestinationUnreachable,
       0, false},
      {"multicast source", from("ff02::1", "2001:db8::2").udp(1, 2).bytes(), kPacketTooBig, 0,
       false},
      {"garbage", hex("6000"), kPacketTooBig, 0, false},
  };
  for (const auto& c : table) {
    INFO(c.name);
    CHECK(core::icmpv6_error_allowed(c.offending, c.type, c.code) == c.allowed);
  }
}
