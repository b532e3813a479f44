// Tests for core/ipv6.hpp: fixed header, extension-header walk, truncations, lying lengths.
#include "core/ipv6.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "support/packet_builder.hpp"

using core::Errc;
using test::hex;
using test::PacketBuilder;
namespace ipp = core::ip_protocol;

namespace {

constexpr const char* kSrc = "2001:db8::1";
constexpr const char* kDst = "2001:db8::2";

void set16(std::vector<std::byte>& p, std::size_t at, std::uint16_t v) {
  core::store_be16(core::MutableBytes{p}.subspan(at, 2), v);
}

// An Authentication Header (RFC 4302) with a 4-byte ICV: 16 bytes, payload length field 2.
std::vector<std::byte> ah(std::uint8_t next_header) {
  return test::bytes({next_header, 2, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xa, 0xb, 0xc, 0xd});
}

}  // namespace

TEST_CASE("ipv6: fixed header parses field by field", "[core][ipv6]") {
  const auto pkt = PacketBuilder{}
                       .ipv6(kSrc, kDst)
                       .dscp(46)
                       .ecn(1)
                       .flow_label(0xabcde)
                       .ttl(7)
                       .udp(5000, 53)
                       .payload("q")
                       .bytes();
  REQUIRE(pkt.size() == 49);
  CHECK(pkt[0] == std::byte{0x6b});  // version 6, traffic class high nibble 0xb (46 << 2 | 1)
  const auto p = core::parse_ipv6(pkt);
  REQUIRE(p.has_value());
  CHECK(p->header.traffic_class == (46 << 2 | 1));
  CHECK(p->header.flow_label == 0xabcde);
  CHECK(p->header.next_header == ipp::kUdp);
  CHECK(p->header.hop_limit == 7);
  CHECK(p->header.src.to_string() == kSrc);
  CHECK(p->header.dst.to_string() == kDst);
  CHECK(p->payload_length == 9);
  CHECK(p->packet.size() == 49);
  CHECK(p->payload.size() == 9);
  CHECK(p->upper_protocol == ipp::kUdp);
  CHECK(p->upper_offset == 40);
  CHECK(p->upper_layer().size() == 9);
  CHECK(p->extension_count == 0);
  CHECK_FALSE(p->fragment);
}

TEST_CASE("ipv6: a known header's bytes", "[core][ipv6]") {
  const auto pkt = PacketBuilder{}.ipv6(kSrc, kDst, 4).ttl(64).raw(hex("4500")).bytes();
  CHECK(pkt == hex("6000 0000 0002 0440"
                   "2001 0db8 0000 0000 0000 0000 0000 0001"
                   "2001 0db8 0000 0000 0000 0000 0000 0002"
                   "4500"));
}

TEST_CASE("ipv6: extension headers are walked to the upper layer", "[core][ipv6]") {
  struct Case {
    const char* name;
    std::vector<std::byte> pkt;
    std::uint8_t upper;
    std::size_t offset;
    std::size_t count;
  };
  const std::vector<Case> table{
      {"hop-by-hop then UDP", PacketBuilder{}.ipv6(kSrc, kDst).hop_by_hop().udp(1, 2).bytes(),
       ipp::kUdp, 48, 1},
      {"hbh, dest opts, routing, fragment, TCP",
       PacketBuilder{}
           .ipv6(kSrc, kDst)
           .hop_by_hop()
           .destination_options()
           .extension(ipp::kRouting, test::bytes({0, 0, 0, 0, 0, 0}))
           .fragment(0, true, 0x12345678)
           .tcp(1, 2)
           .bytes(),
       ipp::kTcp, 72, 4},
      {"AH then ICMPv6",
       PacketBuilder{}.ipv6(kSrc, kDst, ipp::kAh).raw(ah(ipp::kIcmpv6)).icmpv6_echo(1, 1).bytes(),
       ipp::kIcmpv6, 56, 1},
      {"longer routing header",
       PacketBuilder{}
           .ipv6(kSrc, kDst)
           .extension(ipp::kRouting, std::vector<std::byte>(22))
           .udp(1, 2)
           .bytes(),
       ipp::kUdp, 64, 1},
      {"no next header", PacketBuilder{}.ipv6(kSrc, kDst, ipp::kNoNextHeader).bytes(),
       ipp::kNoNextHeader, 40, 0},
      {"ESP is not walked",
       PacketBuilder{}.ipv6(kSrc, kDst, ipp::kEsp).raw(hex("0000 0001")).bytes(), ipp::kEsp, 40, 0},
      {"IPv4 inside (4over6)",
       PacketBuilder{}.ipv6(kSrc, kDst).ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).bytes(),
       ipp::kIpv4, 40, 0},
      {"destination options as the last header",
       PacketBuilder{}.ipv6(kSrc, kDst).destination_options().bytes(), ipp::kNoNextHeader, 48, 1},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto p = core::parse_ipv6(c.pkt);
    REQUIRE(p.has_value());
    CHECK(p->upper_protocol == c.upper);
    CHECK(p->upper_offset == c.offset);
    CHECK(p->extension_count == c.count);
    CHECK(p->upper_layer().size() == c.pkt.size() - c.offset);
  }
}

TEST_CASE("ipv6: first and atomic fragments report the fragment header", "[core][ipv6]") {
  const auto first =
      PacketBuilder{}.ipv6(kSrc, kDst).fragment(0, true, 0xdeadbeef).udp(1, 2).bytes();
  const auto p = core::parse_ipv6(first);
  REQUIRE(p.has_value());
  REQUIRE(p->fragment);
  CHECK(p->fragment->offset == 0);
  CHECK(p->fragment->more_fragments);
  CHECK(p->fragment->id == 0xdeadbeef);
  CHECK(p->upper_protocol == ipp::kUdp);

  const auto atomic = PacketBuilder{}.ipv6(kSrc, kDst).fragment(0, false, 7).udp(1, 2).bytes();
  const auto a = core::parse_ipv6(atomic);
  REQUIRE(a.has_value());
  REQUIRE(a->fragment);
  CHECK_FALSE(a->fragment->more_fragments);
}

TEST_CASE("ipv6: a non-first fragment is unsupported", "[core][ipv6]") {
  for (const bool more : {true, false}) {
    const auto pkt =
        PacketBuilder{}.ipv6(kSrc, kDst).fragment(185, more, 1).raw(hex("0102 0304")).bytes();
    const auto p = core::parse_ipv6(pkt);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == Errc::Unsupported);
  }
}

TEST_CASE("ipv6: bytes after the payload length are ignored", "[core][ipv6]") {
  auto pkt = PacketBuilder{}.ipv6(kSrc, kDst).udp(1, 2).bytes();
  const std::size_t real = pkt.size();
  pkt.resize(real + 10);
  const auto p = core::parse_ipv6(pkt);
  REQUIRE(p.has_value());
  CHECK(p->packet.size() == real);
  CHECK(p->upper_layer().size() == 8);
}

TEST_CASE("ipv6: every truncation of a valid packet fails cleanly", "[core][ipv6]") {
  const std::vector<std::vector<std::byte>> packets{
      PacketBuilder{}.ipv6(kSrc, kDst).udp(5000, 53).payload("q").bytes(),
      PacketBuilder{}.ipv6(kSrc, kDst).hop_by_hop().fragment(0, true, 1).tcp(1, 2).bytes(),
      PacketBuilder{}.ipv6(kSrc, kDst, ipp::kAh).raw(ah(ipp::kUdp)).udp(1, 2).bytes(),
  };
  for (const auto& pkt : packets) {
    REQUIRE(core::parse_ipv6(pkt).has_value());
    for (std::size_t n = 0; n < pkt.size(); ++n) {
      INFO("length " << n);
      const auto p = core::parse_ipv6(core::Bytes{pkt}.first(n));
      REQUIRE_FALSE(p.has_value());
      CHECK(p.error() == (n < 40 ? Errc::Truncated : Errc::BadLength));
    }
  }
}

TEST_CASE("ipv6: lying lengths and malformed chains are rejected with the reason", "[core][ipv6]") {
  struct Case {
    const char* name;
    std::vector<std::byte> pkt;
    Errc why;
  };
  auto too_long = PacketBuilder{}.ipv6(kSrc, kDst).udp(1, 2).bytes();
  set16(too_long, 4, 9);  // payload length 9 > 8 bytes present
  auto hbh_runs_past = PacketBuilder{}.ipv6(kSrc, kDst).hop_by_hop().udp(1, 2).bytes();
  hbh_runs_past[41] = std::byte{2};  // 24 bytes claimed, 16 in the payload
  auto ext_past_payload_length = PacketBuilder{}.ipv6(kSrc, kDst).hop_by_hop().bytes();
  ext_past_payload_length.resize(ext_past_payload_length.size() + 16);  // bytes exist in the
  ext_past_payload_length[41] = std::byte{1};  // buffer but past the payload length: still a lie
  auto ah_runs_past = PacketBuilder{}.ipv6(kSrc, kDst, ipp::kAh).raw(ah(ipp::kUdp)).bytes();
  ah_runs_past[41] = std::byte{3};  // (3 + 2) * 4 = 20 > 16
  auto ext_header_cut =
      PacketBuilder{}.ipv6(kSrc, kDst, ipp::kDestinationOptions).raw(hex("3b")).bytes();
  auto frag_cut = PacketBuilder{}.ipv6(kSrc, kDst, ipp::kFragment).raw(hex("1100 0000")).bytes();
  auto jumbo = PacketBuilder{}.ipv6(kSrc, kDst).hop_by_hop().bytes();
  set16(jumbo, 4, 0);
  PacketBuilder chain;
  chain.ipv6(kSrc, kDst);
  for (std::size_t i = 0; i <= core::kIpv6MaxExtensionHeaders; ++i) chain.destination_options();
  auto bad_version = PacketBuilder{}.ipv6(kSrc, kDst).bytes();
  bad_version[0] = std::byte{0x40};

  const std::vector<Case> table{
      {"payload length > buffer", too_long, Errc::BadLength},
      {"hop-by-hop length past the end", hbh_runs_past, Errc::BadLength},
      {"extension past the payload length", ext_past_payload_length, Errc::BadLength},
      {"AH length past the end", ah_runs_past, Errc::BadLength},
      {"extension header cut before its length byte", ext_header_cut, Errc::Truncated},
      {"fragment header cut short", frag_cut, Errc::Truncated},
      {"hop-by-hop after another header",
       PacketBuilder{}.ipv6(kSrc, kDst).destination_options().hop_by_hop().bytes(),
       Errc::BadHeader},
      {"jumbogram", jumbo, Errc::Unsupported},
      {"too many extension headers", chain.bytes(), Errc::TooManyHeaders},
      {"version 4", bad_version, Errc::BadVersion},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto p = core::parse_ipv6(c.pkt);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == c.why);
  }
}

TEST_CASE("ipv6: the most extension headers we walk is accepted", "[core][ipv6]") {
  PacketBuilder chain;
  chain.ipv6(kSrc, kDst);
  for (std::size_t i = 0; i < core::kIpv6MaxExtensionHeaders; ++i) chain.destination_options();
  const auto p = core::parse_ipv6(chain.udp(1, 2).bytes());
  REQUIRE(p.has_value());
  CHECK(p->extension_count == core::kIpv6MaxExtensionHeaders);
  CHECK(p->upper_protocol == ipp::kUdp);
}

TEST_CASE("ipv6: writers reject what the format cannot carry", "[core][ipv6]") {
  std::vector<std::byte> buf(128);
  core::ByteWriter out{buf};
  core::Ipv6Header h;
  h.flow_label = 0x100000;
  CHECK(core::write_ipv6_header(out, h, 0).error() == Errc::BadHeader);
  h.flow_label = 0;
  CHECK(core::write_ipv6_header(out, h, 65536).error() == Errc::BadLength);
  CHECK(core::write_ipv6_extension_header(out, 17, std::vector<std::byte>(5)).error() ==
        Errc::BadLength);
  CHECK(core::write_ipv6_extension_header(out, 17, std::vector<std::byte>(2048 + 6)).error() ==
        Errc::BadLength);
  CHECK(
      core::write_ipv6_fragment_header(out, 17, {.offset = 8192, .more_fragments = false, .id = 0})
          .error() == Errc::BadHeader);
  CHECK(out.size() == 0);  // nothing was written by a rejected call

  std::vector<std::byte> small(39);
  core::ByteWriter tight{small};
  CHECK(core::write_ipv6_header(tight, {}, 0).error() == Errc::NoSpace);
}

TEST_CASE("ipv6: writer output parses back to the same fields", "[core][ipv6]") {
  const core::Ipv6Header h{.traffic_class = 0xb8,
                           .flow_label = 0x12345,
                           .next_header = ipp::kNoNextHeader,
                           .hop_limit = 255,
                           .src = *core::Ipv6Address::parse(kSrc),
                           .dst = *core::Ipv6Address::parse(kDst)};
  const auto pkt = core::build_ipv6(h, hex("0102 0304"));
  REQUIRE(pkt.has_value());
  const auto p = core::parse_ipv6(*pkt);
  REQUIRE(p.has_value());
  CHECK(p->header.traffic_class == h.traffic_class);
  CHECK(p->header.flow_label == h.flow_label);
  CHECK(p->header.next_header == h.next_header);
  CHECK(p->header.hop_limit == h.hop_limit);
  CHECK(p->header.src == h.src);
  CHECK(p->header.dst == h.dst);
  CHECK(p->payload_length == 4);
}
