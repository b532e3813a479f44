// Tests for core/tcp.hpp: data offset checks, options walk, checksums, MSS clamping.
#include "core/tcp.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "support/packet_builder.hpp"

using core::Errc;
using test::hex;
using test::PacketBuilder;
namespace flag = core::tcp_flag;

namespace {

const auto kSrc4 = *core::Ipv4Address::parse("192.0.2.1");
const auto kDst4 = *core::Ipv4Address::parse("198.51.100.7");
const auto kSrc6 = *core::Ipv6Address::parse("2001:db8::1");
const auto kDst6 = *core::Ipv6Address::parse("2001:db8::2");

// SYN 40000 -> 80, seq 1, window 65535, MSS 1460; checksum from an independent implementation.
const auto kSyn = hex("9c40 0050 0000 0001 0000 0000 6002 ffff 0f59 0000 0204 05b4");

std::vector<std::byte> segment_of_v4(const std::vector<std::byte>& pkt) {
  const auto ip = core::parse_ipv4(pkt);
  REQUIRE(ip.has_value());
  return {ip->payload.begin(), ip->payload.end()};
}

}  // namespace

TEST_CASE("tcp: a SYN parses field by field", "[core][tcp]") {
  const auto s = core::parse_tcp(kSyn);
  REQUIRE(s.has_value());
  CHECK(s->header.src_port == 40000);
  CHECK(s->header.dst_port == 80);
  CHECK(s->header.seq == 1);
  CHECK(s->header.ack == 0);
  CHECK(s->header_length == 24);
  CHECK(s->header.reserved == 0);
  CHECK(s->header.flags == flag::kSyn);
  CHECK(s->has(flag::kSyn));
  CHECK_FALSE(s->has(flag::kAck));
  CHECK(s->header.window == 0xffff);
  CHECK(s->checksum == 0x0f59);
  CHECK(s->header.urgent_pointer == 0);
  CHECK(s->header.options.size() == 4);
  CHECK(s->payload.empty());
  CHECK(core::tcp_mss(*s).value() == std::optional<std::uint16_t>{1460});
  CHECK(core::tcp_checksum_ok(*s, kSrc4, kDst4));
  CHECK(core::tcp_checksum(kSyn, kSrc4, kDst4) == 0x0f59);
}

TEST_CASE("tcp: the builder writes the known SYN", "[core][tcp]") {
  const auto pkt = PacketBuilder{}
                       .ipv4("192.0.2.1", "198.51.100.7")
                       .tcp(40000, 80, flag::kSyn, 1)
                       .mss(1460)
                       .bytes();
  CHECK(segment_of_v4(pkt) == kSyn);
}

TEST_CASE("tcp: all control bits and the reserved nibble are read", "[core][tcp]") {
  auto seg = kSyn;
  seg[12] = std::byte{0x6f};  // data offset 6, reserved 0xf
  seg[13] = std::byte{0xff};
  const auto s = core::parse_tcp(seg);
  REQUIRE(s.has_value());
  CHECK(s->header.reserved == 0x0f);
  for (const auto f : {flag::kFin, flag::kSyn, flag::kRst, flag::kPsh, flag::kAck, flag::kUrg,
                       flag::kEce, flag::kCwr}) {
    CHECK(s->has(f));
  }
}

TEST_CASE("tcp: checksums verify over both families", "[core][tcp]") {
  const auto p4 = PacketBuilder{}
                      .ipv4("192.0.2.1", "198.51.100.7")
                      .tcp(1, 2, flag::kAck | flag::kPsh, 1000, 2000)
                      .payload("hello")
                      .bytes();
  const auto ip4 = core::parse_ipv4(p4);
  REQUIRE(ip4.has_value());
  const auto s4 = core::parse_tcp(ip4->payload);
  REQUIRE(s4.has_value());
  CHECK(core::tcp_checksum_ok(*s4, kSrc4, kDst4));
  CHECK_FALSE(core::tcp_checksum_ok(*s4, kSrc4, kSrc4));
  // Swapping source and destination keeps the sum: the pseudo-header cannot tell direction.
  CHECK(core::tcp_checksum_ok(*s4, kDst4, kSrc4));

  const auto p6 =
      PacketBuilder{}.ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2).payload("odd").bytes();
  const auto ip6 = core::parse_ipv6(p6);
  REQUIRE(ip6.has_value());
  const auto s6 = core::parse_tcp(ip6->upper_layer());
  REQUIRE(s6.has_value());
  CHECK(core::tcp_checksum_ok(*s6, kSrc6, kDst6));
  CHECK_FALSE(core::tcp_checksum_ok(*s6, kSrc6, kSrc6));
  auto bad = std::vector<std::byte>(ip6->upper_layer().begin(), ip6->upper_layer().end());
  bad.back() ^= std::byte{1};
  CHECK_FALSE(core::tcp_checksum_ok(core::parse_tcp(bad).value(), kSrc6, kDst6));
}

TEST_CASE("tcp: every truncation fails cleanly", "[core][tcp]") {
  for (std::size_t n = 0; n < kSyn.size(); ++n) {
    INFO("length " << n);
    const auto s = core::parse_tcp(core::Bytes{kSyn}.first(n));
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error() == (n < 20 ? Errc::Truncated : Errc::BadLength));
  }
}

TEST_CASE("tcp: lying data offsets are rejected", "[core][tcp]") {
  struct Case {
    const char* name;
    std::uint8_t offset_byte;
    Errc why;
  };
  const std::vector<Case> table{
      {"data offset 0", 0x00, Errc::BadHeader},
      {"data offset 4", 0x40, Errc::BadHeader},
      {"data offset 7, past the end", 0x70, Errc::BadLength},
      {"data offset 15, past the end", 0xf0, Errc::BadLength},
  };
  for (const auto& c : table) {
    INFO(c.name);
    auto seg = kSyn;
    seg[12] = std::byte{c.offset_byte};
    const auto s = core::parse_tcp(seg);
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error() == c.why);
  }
}

TEST_CASE("tcp: options walk finds MSS among others", "[core][tcp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> options;
    std::optional<std::uint16_t> mss;
  };
  const std::vector<Case> table{
      {"MSS first", hex("0204 05b4"), 1460},
      {"after NOPs and SACK-permitted", hex("0101 0402 0204 0578 0000"), 1400},
      {"after window scale and timestamps", hex("0303 0701 080a 0000 0001 0000 0000 0204 0218"),
       536},
      {"none", hex("0101 0402"), std::nullopt},
      {"after End: not seen", hex("0000 0204 05b4"), std::nullopt},
      {"empty", {}, std::nullopt},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto found = core::find_tcp_option(c.options, core::tcp_option::kMss);
    REQUIRE(found.has_value());
    CHECK(found->has_value() == c.mss.has_value());
    if (*found) {
      CHECK((*found)->kind == core::tcp_option::kMss);
      CHECK(core::load_be16((*found)->data) == *c.mss);
    }
  }
}

TEST_CASE("tcp: malformed options are rejected", "[core][tcp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> options;
    Errc why;
  };
  const std::vector<Case> table{
      {"length 0", hex("0800 0000"), Errc::BadHeader},
      {"length 1", hex("0801 0000"), Errc::BadHeader},
      {"length past the end", hex("0101 080a 0000"), Errc::BadLength},
      {"kind without length at the end", hex("0101 0108"), Errc::BadLength},
  };
  for (const auto& c : table) {
    INFO(c.name);
    const auto found = core::find_tcp_option(c.options, core::tcp_option::kMss);
    REQUIRE_FALSE(found.has_value());
    CHECK(found.error() == c.why);
  }
  // An MSS option of the wrong size.
  const auto seg = segment_of_v4(PacketBuilder{}
                                     .ipv4("192.0.2.1", "198.51.100.7")
                                     .tcp(1, 2, flag::kSyn)
                                     .tcp_options({2, 3, 5, 1})
                                     .bytes());
  const auto s = core::parse_tcp(seg);
  REQUIRE(s.has_value());
  CHECK(core::tcp_mss(*s).error() == Errc::BadHeader);
}

TEST_CASE("tcp: MSS clamping", "[core][tcp]") {
  struct Case {
    const char* name;
    std::vector<std::byte> segment;
    std::uint16_t max_mss;
    bool changed;
    std::uint16_t mss_after;
  };
  const auto v4 = [](PacketBuilder b) { return segment_of_v4(b.bytes()); };
  const auto base = [] { return PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7"); };
  const std::vector<Case> table{
      {"SYN above the limit", kSyn, 1400, true, 1400},
      {"SYN at the limit", kSyn, 1460, false, 1460},
      {"SYN below the limit", kSyn, 1500, false, 1460},
      {"SYN-ACK at an odd offset",
       v4(base()
              .tcp(80, 40000, flag::kSyn | flag::kAck, 7, 2)
              .tcp_options({1, 2, 4, 0x05, 0xb4, 1, 1, 1})),
       1380, true, 1380},
      {"SYN with payload, odd length", v4(base().tcp(1, 2, flag::kSyn).mss(9000).payload("abc")),
       1220, true, 1220},
      {"ACK is left alone", v4(base().tcp(1, 2, flag::kAck).mss(1460)), 1400, false, 1460},
      {"SYN without MSS", v4(base().tcp(1, 2, flag::kSyn)), 1400, false, 0},
  };
  for (const auto& c : table) {
    INFO(c.name);
    auto seg = c.segment;
    REQUIRE(core::tcp_checksum_ok(core::parse_tcp(seg).value(), kSrc4, kDst4));
    const auto r = core::clamp_tcp_mss(seg, c.max_mss);
    REQUIRE(r.has_value());
    CHECK(*r == c.changed);
    const auto s = core::parse_tcp(seg);
    REQUIRE(s.has_value());
    CHECK(core::tcp_mss(*s).value().value_or(0) == c.mss_after);
    CHECK(core::tcp_checksum_ok(*s, kSrc4, kDst4));
    if (!c.changed) CHECK(seg == c.segment);
  }
}

TEST_CASE("tcp: MSS clamping of malformed segments fails and changes nothing", "[core][tcp]") {
  auto short_seg = kSyn;
  short_seg.resize(10);
  auto bad_offset = kSyn;
  bad_offset[12] = std::byte{0x40};
  auto bad_option = kSyn;
  bad_option[21] = std::byte{1};  // MSS option length 1
  auto wrong_size = kSyn;
  wrong_size[21] = std::byte{3};  // MSS option length 3
  for (const auto& seg : {short_seg, bad_offset, bad_option, wrong_size}) {
    auto copy = seg;
    const auto r = core::clamp_tcp_mss(copy, 1000);
    CHECK_FALSE(r.has_value());
    CHECK(copy == seg);
  }
}

TEST_CASE("tcp: MSS clamping inside an IPv4 packet", "[core][tcp]") {
  auto syn =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").tcp(1, 2, flag::kSyn).mss(1460).bytes();
  const auto r = core::clamp_ipv4_tcp_mss(syn, 1400);
  REQUIRE(r.has_value());
  CHECK(*r);
  const auto ip = core::parse_ipv4(syn);
  REQUIRE(ip.has_value());
  CHECK(ip->checksum_ok());
  const auto s = core::parse_tcp(ip->payload);
  REQUIRE(s.has_value());
  CHECK(core::tcp_mss(*s).value() == std::optional<std::uint16_t>{1400});
  CHECK(core::tcp_checksum_ok(*s, ip->header.src, ip->header.dst));

  // Not TCP, or a non-first fragment: untouched.
  auto udp =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).payload("abcdefghijkl").bytes();
  const auto udp_copy = udp;
  CHECK(core::clamp_ipv4_tcp_mss(udp, 1400).value() == false);
  CHECK(udp == udp_copy);
  auto later = PacketBuilder{}
                   .ipv4("192.0.2.1", "198.51.100.7", core::ip_protocol::kTcp)
                   .fragment_offset(10)
                   .raw(kSyn)
                   .bytes();
  const auto later_copy = later;
  CHECK(core::clamp_ipv4_tcp_mss(later, 1400).value() == false);
  CHECK(later == later_copy);
  // A broken IPv4 header is an error.
  auto broken = syn;
  broken[0] = std::byte{0x44};
  CHECK(core::clamp_ipv4_tcp_mss(broken, 1400).error() == Errc::BadHeader);
}

TEST_CASE("tcp: writer output parses back to the same fields", "[core][tcp]") {
  const auto options = hex("0204 05b4 0103 0307");
  const core::TcpHeader h{.src_port = 443,
                          .dst_port = 51000,
                          .seq = 0xdeadbeef,
                          .ack = 0x01020304,
                          .reserved = 0,
                          .flags = flag::kSyn | flag::kAck | flag::kEce,
                          .window = 29200,
                          .urgent_pointer = 0,
                          .options = options};
  const auto seg = core::build_tcp(h, core::as_bytes("data"), kSrc6, kDst6);
  REQUIRE(seg.has_value());
  const auto s = core::parse_tcp(*seg);
  REQUIRE(s.has_value());
  CHECK(s->header.src_port == h.src_port);
  CHECK(s->header.dst_port == h.dst_port);
  CHECK(s->header.seq == h.seq);
  CHECK(s->header.ack == h.ack);
  CHECK(s->header.flags == h.flags);
  CHECK(s->header.window == h.window);
  CHECK(s->header_length == 28);
  CHECK(std::vector<std::byte>(s->header.options.begin(), s->header.options.end()) == options);
  CHECK(s->payload.size() == 4);
  CHECK(core::tcp_checksum_ok(*s, kSrc6, kDst6));
}

TEST_CASE("tcp: the writer rejects bad options and reserved bits", "[core][tcp]") {
  std::vector<std::byte> buf(128);
  core::ByteWriter out{buf};
  core::TcpHeader h;
  const auto three = hex("0101 01");
  h.options = three;
  CHECK(core::write_tcp(out, h, {}, kSrc4, kDst4).error() == Errc::BadHeader);
  const std::vector<std::byte> too_long(44, std::byte{1});
  h.options = too_long;
  CHECK(core::write_tcp(out, h, {}, kSrc4, kDst4).error() == Errc::BadHeader);
  h.options = {};
  h.reserved = 0x10;
  CHECK(core::write_tcp(out, h, {}, kSrc4, kDst4).error() == Errc::BadHeader);
  h.reserved = 0;
  const std::vector<std::byte> huge(65516);
  CHECK(core::write_tcp(out, h, huge, kSrc4, kDst4).error() == Errc::BadLength);
  CHECK(out.size() == 0);
}
