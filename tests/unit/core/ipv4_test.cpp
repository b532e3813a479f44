// Tests for core/ipv4.hpp: field parsing, every truncation, lying lengths, the writer.
#include "core/ipv4.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "core/checksum.hpp"
#include "support/packet_builder.hpp"

using core::Errc;
using test::hex;
using test::PacketBuilder;

namespace {

const auto kSrc = *core::Ipv4Address::parse("192.0.2.1");
const auto kDst = *core::Ipv4Address::parse("198.51.100.7");

std::vector<std::byte> udp_packet() {
  return PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload("q").bytes();
}

void set16(std::vector<std::byte>& p, std::size_t at, std::uint16_t v) {
  core::store_be16(core::MutableBytes{p}.subspan(at, 2), v);
}

}  // namespace

TEST_CASE("ipv4: a real header parses field by field", "[core][ipv4]") {
  auto pkt = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7");
  pkt.resize(0x73);
  const auto p = core::parse_ipv4(pkt);
  REQUIRE(p.has_value());
  CHECK(p->header_length == 20);
  CHECK(p->total_length == 0x73);
  CHECK(p->header.dscp == 0);
  CHECK(p->header.ecn == 0);
  CHECK(p->header.id == 0);
  CHECK(p->header.dont_fragment);
  CHECK_FALSE(p->header.more_fragments);
  CHECK_FALSE(p->header.reserved_flag);
  CHECK(p->header.fragment_offset == 0);
  CHECK(p->header.ttl == 64);
  CHECK(p->header.protocol == core::ip_protocol::kUdp);
  CHECK(p->checksum == 0xb861);
  CHECK(p->header.src.to_string() == "192.168.0.1");
  CHECK(p->header.dst.to_string() == "192.168.0.199");
  CHECK(p->header.options.empty());
  CHECK(p->payload.size() == 0x73 - 20);
  CHECK(p->checksum_ok());
  CHECK_FALSE(p->is_fragment());
}

TEST_CASE("ipv4: DSCP, ECN, flags and fragment offset", "[core][ipv4]") {
  const auto pkt = PacketBuilder{}
                       .ipv4("192.0.2.1", "198.51.100.7")
                       .dscp(46)
                       .ecn(3)
                       .id(0xbeef)
                       .mf()
                       .fragment_offset(0x1abc)
                       .ttl(1)
                       .payload("xyz")
                       .bytes();
  const auto p = core::parse_ipv4(pkt);
  REQUIRE(p.has_value());
  CHECK(p->header.dscp == 46);
  CHECK(p->header.ecn == 3);
  CHECK(p->header.id == 0xbeef);
  CHECK_FALSE(p->header.dont_fragment);
  CHECK(p->header.more_fragments);
  CHECK(p->header.fragment_offset == 0x1abc);
  CHECK(p->header.ttl == 1);
  CHECK(p->is_fragment());
  CHECK_FALSE(p->is_first_fragment_or_whole());
  CHECK(p->checksum_ok());
}

TEST_CASE("ipv4: options are exposed as a span inside the header", "[core][ipv4]") {
  // NOP, NOP, NOP, End: a legal 4-byte options area; IHL becomes 6.
  const auto pkt = PacketBuilder{}
                       .ipv4("192.0.2.1", "198.51.100.7")
                       .ipv4_options({1, 1, 1, 0})
                       .payload("data")
                       .bytes();
  const auto p = core::parse_ipv4(pkt);
  REQUIRE(p.has_value());
  CHECK(p->header_length == 24);
  CHECK(std::vector<std::byte>(p->header.options.begin(), p->header.options.end()) ==
        test::bytes({1, 1, 1, 0}));
  CHECK(p->payload.size() == 4);
  CHECK(p->checksum_ok());
}

TEST_CASE("ipv4: bytes after total length are padding and left out of the view", "[core][ipv4]") {
  auto pkt = udp_packet();
  const std::size_t real = pkt.size();
  pkt.resize(60);  // an Ethernet minimum frame pads short packets
  const auto p = core::parse_ipv4(pkt);
  REQUIRE(p.has_value());
  CHECK(p->packet.size() == real);
  CHECK(p->payload.size() == real - 20);
}

TEST_CASE("ipv4: every truncation of a valid packet fails cleanly", "[core][ipv4]") {
  for (const auto& pkt : {udp_packet(), PacketBuilder{}
                                            .ipv4("192.0.2.1", "198.51.100.7")
                                            .ipv4_options({7, 7, 4, 0, 0, 0, 0, 0})
                                            .payload("abc")
                                            .bytes()}) {
    REQUIRE(core::parse_ipv4(pkt).has_value());
    for (std::size_t n = 0; n < pkt.size(); ++n) {
      INFO("length " << n);
      const auto p = core::parse_ipv4(core::Bytes{pkt}.first(n));
      REQUIRE_FALSE(p.has_value());
      CHECK((p.error() == Errc::Truncated || p.error() == Errc::BadLength));
      if (n < 20) CHECK(p.error() == Errc::Truncated);
    }
  }
}

TEST_CASE("ipv4: lying length fields are rejected with the reason", "[core][ipv4]") {
  struct Case {
    const char* name;
    std::uint8_t version_ihl;
    std::uint16_t total_length;
    Errc why;
  };
  // The base packet is 29 bytes: 20 header + 8 UDP + 1.
  const std::vector<Case> table{
      {"total length > buffer", 0x45, 30, Errc::BadLength},
      {"total length 65535", 0x45, 0xffff, Errc::BadLength},
      {"total length < header", 0x45, 19, Errc::BadLength},
      {"total length 0", 0x45, 0, Errc::BadLength},
      {"IHL 4", 0x44, 29, Errc::BadHeader},
      {"IHL 0", 0x40, 29, Errc::BadHeader},
      {"IHL > total length", 0x47, 24, Errc::BadLength},
      {"IHL 15 > total length", 0x4f, 29, Errc::BadLength},
      {"version 6", 0x65, 29, Errc::BadVersion},
      {"version 0", 0x05, 29, Errc::BadVersion},
  };
  for (const auto& c : table) {
    INFO(c.name);
    auto pkt = udp_packet();
    REQUIRE(pkt.size() == 29);
    pkt[0] = std::byte{c.version_ihl};
    set16(pkt, 2, c.total_length);
    const auto p = core::parse_ipv4(pkt);
    REQUIRE_FALSE(p.has_value());
    CHECK(p.error() == c.why);
  }
}

TEST_CASE("ipv4: total length equal to the header is an empty payload", "[core][ipv4]") {
  auto pkt = udp_packet();
  set16(pkt, 2, 20);
  const auto p = core::parse_ipv4(pkt);
  REQUIRE(p.has_value());
  CHECK(p->payload.empty());
  CHECK(p->packet.size() == 20);
}

TEST_CASE("ipv4: checksum_ok detects any flipped header bit", "[core][ipv4]") {
  const auto pkt = udp_packet();
  for (std::size_t byte = 0; byte < 20; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = pkt;
      bad[byte] ^= static_cast<std::byte>(1 << bit);
      const auto p = core::parse_ipv4(bad);
      if (!p) continue;  // the flip broke version/IHL/length: rejected anyway
      INFO("byte " << byte << " bit " << bit);
      CHECK_FALSE(p->checksum_ok());
    }
  }
}

TEST_CASE("ipv4: header checksum is computed with its field as zero", "[core][ipv4]") {
  const auto header = hex("4500 0073 0000 4000 4011 ffff c0a8 0001 c0a8 00c7");
  CHECK(core::ipv4_header_checksum(header) == 0xb861);
}

TEST_CASE("ipv4: writer output parses back to the same fields", "[core][ipv4]") {
  const auto options = test::bytes({0x94, 0x04, 0x00, 0x00});  // Router Alert (RFC 2113)
  const core::Ipv4Header h{.dscp = 10,
                           .ecn = 1,
                           .id = 0x1234,
                           .reserved_flag = false,
                           .dont_fragment = true,
                           .more_fragments = false,
                           .fragment_offset = 0,
                           .ttl = 17,
                           .protocol = core::ip_protocol::kTcp,
                           .src = kSrc,
                           .dst = kDst,
                           .options = options};
  const auto payload = test::bytes({1, 2, 3});
  const auto pkt = core::build_ipv4(h, payload);
  REQUIRE(pkt.has_value());
  REQUIRE(pkt->size() == 27);
  const auto p = core::parse_ipv4(*pkt);
  REQUIRE(p.has_value());
  CHECK(p->checksum_ok());
  CHECK(p->total_length == 27);
  CHECK(p->header.dscp == h.dscp);
  CHECK(p->header.ecn == h.ecn);
  CHECK(p->header.id == h.id);
  CHECK(p->header.dont_fragment);
  CHECK(p->header.ttl == h.ttl);
  CHECK(p->header.protocol == h.protocol);
  CHECK(p->header.src == kSrc);
  CHECK(p->header.dst == kDst);
  CHECK(std::vector<std::byte>(p->header.options.begin(), p->header.options.end()) == options);
  CHECK(std::vector<std::byte>(p->payload.begin(), p->payload.end()) == payload);
}

TEST_CASE("ipv4: writer rejects fields that do not fit", "[core][ipv4]") {
  struct Case {
    const char* name;
    core::Ipv4Header h;
    std::size_t payload;
    Errc why;
  };
  const auto three = test::bytes({1, 1, 1});
  const std::vector<std::byte> too_long(44, std::byte{1});
  const std::vector<Case> table{
      {"dscp 64", {.dscp = 64}, 0, Errc::BadHeader},
      {"ecn 4", {.ecn = 4}, 0, Errc::BadHeader},
      {"offset 8192", {.fragment_offset = 8192}, 0, Errc::BadHeader},
      {"options not a multiple of 4", {.options = three}, 0, Errc::BadHeader},
      {"options over 40 bytes", {.options = too_long}, 0, Errc::BadHeader},
      {"total over 65535", {}, 65516, Errc::BadLength},
  };
  for (const auto& c : table) {
    INFO(c.name);
    std::vector<std::byte> buf(64);
    core::ByteWriter out{buf};
    const auto r = core::write_ipv4_header(out, c.h, c.payload);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == c.why);
  }
  std::vector<std::byte> buf(64);
  core::ByteWriter out{buf};
  CHECK(core::write_ipv4_header(out, {}, 65515).has_value());  // exactly 65535 in all
}

TEST_CASE("ipv4: writer reports no_space for a short buffer", "[core][ipv4]") {
  for (std::size_t n = 0; n < 20; ++n) {
    std::vector<std::byte> buf(n);
    core::ByteWriter out{buf};
    const auto r = core::write_ipv4_header(out, {.src = kSrc, .dst = kDst}, 0);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == Errc::NoSpace);
    CHECK_FALSE(out.ok());
  }
}
