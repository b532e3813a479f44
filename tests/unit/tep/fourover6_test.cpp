// Tests for tep/fourover6.hpp: encapsulation, decapsulation drops, RFC 6040 ECN, MTU handling.
#include "tep/fourover6.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "core/checksum.hpp"
#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "support/packet_builder.hpp"

using tep::DropReason;
using tep::Errc;
using test::PacketBuilder;

namespace {

constexpr const char* kLocal = "2001:db8::1";
constexpr const char* kRemote = "2001:db8:1::2";
const tep::Endpoints kEndpoints{.src = *core::Ipv6Address::parse(kLocal),
                                .dst = *core::Ipv6Address::parse(kRemote)};
const auto kRouter = *core::Ipv4Address::parse("203.0.113.1");

std::vector<std::byte> to_vector(core::Bytes b) {
  return {b.begin(), b.end()};
}

std::vector<std::byte> udp_packet(std::size_t n = 4) {
  return PacketBuilder{}
      .ipv4("192.0.2.1", "198.51.100.7")
      .id(0x1234)
      .udp(5000, 53)
      .payload(std::string(n, 'q'))
      .bytes();
}

// The inner packet behind `headroom` bytes, as a caller's receive buffer holds it.
std::vector<std::byte> with_headroom(const std::vector<std::byte>& inner,
                                     std::size_t headroom = 64) {
  std::vector<std::byte> frame(headroom, std::byte{0xee});
  frame.insert(frame.end(), inner.begin(), inner.end());
  return frame;
}

std::vector<std::byte> encap(const std::vector<std::byte>& inner, const tep::EncapOptions& o = {}) {
  auto frame = with_headroom(inner);
  return to_vector(tep::encapsulate(frame, 64, kEndpoints, o).value());
}

// An IPv6 packet from kRemote to kLocal carrying `inner` with next header 4.
std::vector<std::byte> tunnelled(const std::vector<std::byte>& inner, std::uint8_t tc = 0) {
  return PacketBuilder{}
      .ipv6(kRemote, kLocal, core::ip_protocol::kIpv4)
      .dscp(static_cast<std::uint8_t>(tc >> 2))
      .ecn(tc & 3)
      .raw(inner)
      .bytes();
}

DropReason drop_of(std::vector<std::byte> pkt) {
  const auto before = pkt;
  const auto r = tep::decapsulate(pkt);
  REQUIRE_FALSE(r.has_value());
  CHECK(pkt == before);  // a drop leaves the packet alone
  return r.error();
}

}  // namespace

TEST_CASE("encap: IPv4 packet is wrapped in IPv6 with next header 4", "[tep]") {
  const auto inner = udp_packet();
  CHECK(encap(inner) == PacketBuilder{}.ipv6(kLocal, kRemote, 4).raw(inner).bytes());
}

TEST_CASE("encap: the header goes into the headroom and the inner bytes are not touched", "[tep]") {
  const auto inner = udp_packet(100);
  auto frame = with_headroom(inner, 48);
  const auto out = tep::encapsulate(frame, 48, kEndpoints).value();
  CHECK(out.data() == frame.data() + 8);
  CHECK(out.size() == 40 + inner.size());
  CHECK(to_vector(core::Bytes{frame}.first(8)) == std::vector<std::byte>(8, std::byte{0xee}));
  CHECK(to_vector(core::Bytes{frame}.subspan(48)) == inner);
}

TEST_CASE("encap: trailing padding after the inner total length is not encapsulated", "[tep]") {
  auto inner = udp_packet();
  const auto expected = PacketBuilder{}.ipv6(kLocal, kRemote, 4).raw(inner).bytes();
  inner.resize(inner.size() + 6);
  auto frame = with_headroom(inner);
  CHECK(to_vector(tep::encapsulate(frame, 64, kEndpoints).value()) == expected);
}

TEST_CASE("encap: hop limit option and its validation", "[tep]") {
  const auto inner = udp_packet();
  CHECK(encap(inner, {.hop_limit = 7}) ==
        PacketBuilder{}.ipv6(kLocal, kRemote, 4).ttl(7).raw(inner).bytes());
  auto frame = with_headroom(inner);
  CHECK(tep::encapsulate(frame, 64, kEndpoints, {.hop_limit = 0}).error() ==
        make_error_code(Errc::BadHopLimit));
}

TEST_CASE("encap: DSCP and ECN are copied from the inner TOS (RFC 6040 normal mode)", "[tep]") {
  const auto [dscp, ecn] = GENERATE(table<std::uint8_t, std::uint8_t>(
      {{0, 0}, {46, 0}, {46, 1}, {10, 2}, {63, 3}, {0, 3}, {8, 1}}));
  CAPTURE(dscp, ecn);
  const auto inner =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").dscp(dscp).ecn(ecn).payload("x").bytes();
  CHECK(encap(inner) ==
        PacketBuilder{}.ipv6(kLocal, kRemote, 4).dscp(dscp).ecn(ecn).raw(inner).bytes());
}

TEST_CASE("encap: inner-hash flow label is stable per flow, non-zero, 20 bits", "[tep]") {
  const auto a = udp_packet(4);
  const auto a_longer = udp_packet(40);  // same 5-tuple
  const auto b = PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5001, 53).bytes();
  const auto la = tep::inner_flow_label(a);
  CHECK(la != 0);
  CHECK(la <= 0xfffffu);
  CHECK(tep::inner_flow_label(a_longer) == la);
  CHECK(tep::inner_flow_label(b) != la);
  const auto out = encap(a, {.flow_label = tep::FlowLabel::InnerHash});
  CHECK(out == PacketBuilder{}.ipv6(kLocal, kRemote, 4).flow_label(la).raw(a).bytes());
  CHECK(core::parse_ipv6(encap(a)).value().header.flow_label == 0);
}

TEST_CASE("encap: fragments of one packet share the flow label", "[tep]") {
  const auto first =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").id(9).mf().udp(5000, 53).bytes();
  const auto later = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7", core::ip_protocol::kUdp)
                         .id(9)
                         .fragment_offset(1)
                         .payload("xxxxxxxx")
                         .bytes();
  CHECK(tep::inner_flow_label(first) == tep::inner_flow_label(later));
}

TEST_CASE("encap: invalid inner packets are refused", "[tep]") {
  const auto good = udp_packet();
  auto bad_version = good;
  bad_version[0] = std::byte{0x65};
  auto bad_ihl = good;
  bad_ihl[0] = std::byte{0x44};
  auto long_total = good;
  long_total[3] = static_cast<std::byte>(std::to_integer<int>(long_total[3]) + 1);
  const auto [inner, err] = GENERATE_COPY(table<std::vector<std::byte>, Errc>({
      {std::vector<std::byte>(good.begin(), good.begin() + 19), Errc::InnerTruncated},
      {bad_version, Errc::InnerBadVersion},
      {bad_ihl, Errc::InnerBadHeader},
      {long_total, Errc::InnerBadTotalLength},
  }));
  auto frame = with_headroom(inner);
  CHECK(tep::encapsulate(frame, 64, kEndpoints).error() == make_error_code(err));
}

TEST_CASE("encap: fewer than 40 bytes of headroom is refused", "[tep]") {
  auto frame = with_headroom(udp_packet(), 39);
  CHECK(tep::encapsulate(frame, 39, kEndpoints).error() == make_error_code(Errc::NoHeadroom));
  CHECK(tep::encapsulate(frame, frame.size() + 1, kEndpoints).error() ==
        make_error_code(Errc::NoHeadroom));
}

TEST_CASE("decap: round trip gives the inner bytes unchanged", "[tep]") {
  const auto inner =
      GENERATE(udp_packet(0), udp_packet(1), udp_packet(1400),
               PacketBuilder{}
                   .ipv4("192.0.2.9", "198.51.100.1")
                   .ipv4_options({0x94, 0x04, 0x00, 0x00})
                   .tcp(80, 4000)
                   .payload("hello")
                   .bytes(),
               PacketBuilder{}.ipv4("192.0.2.9", "198.51.100.1").icmpv4_echo(1, 2).bytes());
  auto frame = with_headroom(inner);
  auto outer = tep::encapsulate(frame, 64, kEndpoints).value();
  const auto d = tep::decapsulate(outer).value();
  CHECK(to_vector(d.inner) == inner);
  CHECK(d.inner.data() == frame.data() + 64);
  CHECK(d.outer.src == kEndpoints.src);
  CHECK(d.outer.dst == kEndpoints.dst);
  CHECK(d.outer.hop_limit == 64);
  CHECK_FALSE(d.ecn_rewritten);
}

TEST_CASE("decap: link padding after the outer payload is ignored", "[tep]") {
  const auto inner = udp_packet();
  auto pkt = tunnelled(inner);
  pkt.resize(pkt.size() + 5);
  CHECK(to_vector(tep::decapsulate(pkt).value().inner) == inner);
}

TEST_CASE("decap: each drop reason", "[tep]") {
  const auto inner = udp_packet();
  const auto good = tunnelled(inner);
  auto v4 = good;
  v4[0] = std::byte{0x45};
  auto long_payload = good;
  long_payload[5] = static_cast<std::byte>(std::to_integer<int>(long_payload[5]) + 1);
  auto inner_bad_version = inner;
  inner_bad_version[0] = std::byte{0x55};
  auto inner_bad_ihl = inner;
  inner_bad_ihl[0] = std::byte{0x43};
  auto inner_short_total = inner;  // total length one less than the payload carries
  inner_short_total[3] = static_cast<std::byte>(std::to_integer<int>(inner[3]) - 1);
  inner_short_total[11] = static_cast<std::byte>(std::to_integer<int>(inner[11]) + 1);
  auto inner_bad_sum = inner;
  inner_bad_sum[11] ^= std::byte{0x01};

  const auto [pkt, reason] = GENERATE_COPY(table<std::vector<std::byte>, DropReason>({
      {std::vector<std::byte>{}, DropReason::Truncated},
      {std::vector<std::byte>(good.begin(), good.begin() + 39), DropReason::Truncated},
      {v4, DropReason::NotIpv6},
      {long_payload, DropReason::BadPayloadLength},
      {PacketBuilder{}.ipv6(kRemote, kLocal).udp(1, 2).bytes(), DropReason::NotIpip},
      {PacketBuilder{}.ipv6(kRemote, kLocal, 41).raw(inner).bytes(), DropReason::NotIpip},
      {PacketBuilder{}.ipv6(kRemote, kLocal).destination_options().raw(inner).bytes(),
       DropReason::ExtensionHeaders},
      {PacketBuilder{}.ipv6(kRemote, kLocal).fragment(0, false, 7).raw(inner).bytes(),
       DropReason::ExtensionHeaders},
      {tunnelled({}), DropReason::InnerTruncated},
      {tunnelled(std::vector<std::byte>(inner.begin(), inner.begin() + 19)),
       DropReason::InnerTruncated},
      {tunnelled(inner_bad_version), DropReason::InnerBadVersion},
      {tunnelled(inner_bad_ihl), DropReason::InnerBadHeader},
      {tunnelled(inner_short_total), DropReason::InnerBadTotalLength},
      {tunnelled(std::vector<std::byte>(inner.begin(), inner.end() - 1)),
       DropReason::InnerBadTotalLength},
      {tunnelled(inner_bad_sum), DropReason::InnerBadChecksum},
      {tunnelled(inner, 3), DropReason::EcnNotEctCe},
  }));
  CAPTURE(tep::drop_reason_name(reason));
  CHECK(drop_of(pkt) == reason);
}

TEST_CASE("decap: drop reasons have distinct counter names", "[tep]") {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < tep::kDropReasonCount; ++i) {
    const auto name = tep::drop_reason_name(static_cast<DropReason>(i));
    CHECK(name != "unknown");
    names.insert(name);
  }
  CHECK(names.size() == tep::kDropReasonCount);
  CHECK(tep::drop_reason_name(DropReason::EcnNotEctCe) == "ecn_not_ect_ce");
  CHECK(make_error_code(DropReason::NotIpip).message() == "not_ipip");
  CHECK(make_error_code(Errc::NoSpace).category().name() == std::string{"tep"});
}

TEST_CASE("decap: RFC 6040 ECN combinations", "[tep]") {
  // Not-ECT 0, ECT(1) 1, ECT(0) 2, CE 3. Figure 4 of RFC 6040; CE over Not-ECT is a drop.
  const auto [inner_ecn, outer_ecn, result, anomaly] =
      GENERATE(table<std::uint8_t, std::uint8_t, std::uint8_t, bool>({
          {0, 0, 0, false},
          {0, 2, 0, true},
          {0, 1, 0, true},
          {2, 0, 2, false},
          {2, 2, 2, false},
          {2, 1, 1, false},
          {2, 3, 3, false},
          {1, 0, 1, false},
          {1, 2, 1, false},
          {1, 1, 1, false},
          {1, 3, 3, false},
          {3, 0, 3, false},
          {3, 2, 3, false},
          {3, 1, 3, true},
          {3, 3, 3, false},
      }));
  CAPTURE(inner_ecn, outer_ecn);
  const auto inner = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7")
                         .dscp(26)
                         .ecn(inner_ecn)
                         .udp(5000, 53)
                         .payload("data")
                         .bytes();
  auto pkt = tunnelled(inner, static_cast<std::uint8_t>(26 << 2 | outer_ecn));
  const auto d = tep::decapsulate(pkt).value();
  const auto expected = PacketBuilder{}
                            .ipv4("192.0.2.1", "198.51.100.7")
                            .dscp(26)
                            .ecn(result)
                            .udp(5000, 53)
                            .payload("data")
                            .bytes();
  // The incremental checksum update gives the same bytes as building the packet afresh.
  CHECK(to_vector(d.inner) == expected);
  CHECK(d.ecn_rewritten == (result != inner_ecn));
  CHECK(d.ecn_anomaly == anomaly);
  CHECK(core::parse_ipv4(d.inner).value().checksum_ok());
}

TEST_CASE("decap: incremental ECN checksum update verifies across many headers", "[tep]") {
  for (std::uint16_t id = 0; id < 2000; id += 7) {
    for (const std::uint8_t ttl : {std::uint8_t{1}, std::uint8_t{64}, std::uint8_t{255}}) {
      const auto inner = PacketBuilder{}
                             .ipv4("192.0.2.1", "198.51.100.7")
                             .id(id)
                             .ttl(ttl)
                             .ecn(2)
                             .payload("p")
                             .bytes();
      auto pkt = tunnelled(inner, 3);
      const auto d = tep::decapsulate(pkt).value();
      REQUIRE(d.ecn_rewritten);
      REQUIRE(core::internet_checksum(d.inner.first(20)) == 0);
    }
  }
}

TEST_CASE("mtu: verdicts", "[tep]") {
  const auto fits = udp_packet(1240 - 28);  // exactly 1240 bytes
  const auto big = udp_packet(1241 - 28);
  const auto big_df = PacketBuilder{}
                          .ipv4("192.0.2.1", "198.51.100.7")
                          .df()
                          .udp(5000, 53)
                          .payload(std::string(1241 - 28, 'z'))
                          .bytes();
  CHECK(tep::check_mtu(fits, 1280).value() == tep::MtuVerdict::Fits);
  CHECK(tep::check_mtu(big, 1280).value() == tep::MtuVerdict::NeedsFragmentation);
  CHECK(tep::check_mtu(big_df, 1280).value() == tep::MtuVerdict::TooBigDontFragment);
  CHECK(tep::check_mtu(big_df, 1281).value() == tep::MtuVerdict::Fits);
  CHECK(tep::check_mtu(fits, 1279).error() == make_error_code(Errc::BadMtu));
  CHECK(tep::check_mtu(std::vector<std::byte>(10), 1500).error() ==
        make_error_code(Errc::InnerTruncated));
  CHECK(tep::inner_mtu(1500).value() == 1460);
  CHECK(tep::inner_mtu(100000).value() == 65535);
}

TEST_CASE("mtu: ICMP fragmentation needed, field by field", "[tep]") {
  const auto inner = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7")
                         .df()
                         .id(0x4242)
                         .udp(5000, 53)
                         .payload(std::string(1400, 'z'))
                         .bytes();
  std::vector<std::byte> out(600, std::byte{0xaa});
  const auto msg = tep::write_fragmentation_needed(out, kRouter, inner, 1280).value();
  REQUIRE(msg.data() == out.data());
  REQUIRE(msg.size() == 20 + 8 + 28);
  const auto ip = core::parse_ipv4(msg).value();
  CHECK(ip.checksum_ok());
  CHECK(ip.header.src == kRouter);
  CHECK(ip.header.dst == *core::Ipv4Address::parse("192.0.2.1"));
  CHECK(ip.header.protocol == core::ip_protocol::kIcmp);
  CHECK(ip.header.ttl == 64);
  CHECK_FALSE(ip.header.dont_fragment);
  const auto m = core::parse_icmpv4(ip.payload).value();
  CHECK(m.type == 3);
  CHECK(m.code == 4);
  CHECK(m.next_hop_mtu() == 1240);
  CHECK((m.rest_of_header >> 16) == 0);  // unused half is zero (RFC 1191 §4)
  CHECK(core::icmpv4_checksum_ok(m));
  CHECK(to_vector(m.body) == to_vector(core::Bytes{inner}.first(28)));
  // Independently: the same bytes as core's allocating builder.
  CHECK(to_vector(msg) == core::build_icmpv4_fragmentation_needed(kRouter, 1240, inner).value());

  std::vector<std::byte> small(55);
  CHECK(tep::write_fragmentation_needed(small, kRouter, inner, 1280).error() ==
        make_error_code(Errc::NoSpace));
  CHECK(tep::write_fragmentation_needed(out, kRouter, inner, 1000).error() ==
        make_error_code(Errc::BadMtu));
}

namespace {

// Reassembles fragments (RFC 815 in miniature) and checks each one on the way.
std::vector<std::byte> reassemble(const std::vector<std::vector<std::byte>>& frags,
                                  std::size_t max_size) {
  std::vector<std::byte> data;
  std::vector<std::byte> first_header;
  std::size_t expected_offset = 0;
  for (std::size_t i = 0; i < frags.size(); ++i) {
    const auto p = core::parse_ipv4(frags[i]).value();
    CHECK(p.checksum_ok());
    CHECK(frags[i].size() <= max_size);
    CHECK(p.header.fragment_offset * 8u == expected_offset);
    CHECK(p.header.more_fragments == (i + 1 < frags.size()));
    if (i + 1 < frags.size()) CHECK(p.payload.size() % 8 == 0);
    if (i == 0) first_header = to_vector(p.header_bytes);
    data.insert(data.end(), p.payload.begin(), p.payload.end());
    expected_offset += p.payload.size();
  }
  // The first fragment's header with MF clear and the whole length is the original header.
  auto h = core::parse_ipv4(frags[0]).value().header;
  h.more_fragments = false;
  return core::build_ipv4(h, data).value();
}

std::vector<std::vector<std::byte>> fragments(const std::vector<std::byte>& inner,
                                              std::size_t mtu) {
  std::vector<std::vector<std::byte>> out;
  const std::size_t n = tep::fragment_count(inner, mtu).value();
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::byte> buf(mtu - 40);
    out.push_back(to_vector(tep::write_fragment(inner, mtu, i, buf).value()));
  }
  return out;
}

}  // namespace

TEST_CASE("fragment: fragments reassemble to the original", "[tep]") {
  const auto [payload, mtu, count] = GENERATE(table<std::size_t, std::size_t, std::size_t>({
      {1213, 1280, 2},  // 1241 bytes: one byte too many
      {1400, 1280, 2},
      {3000, 1280, 3},
      {9000, 1500, 7},
      {65000, 1280, 54},  // 65008 payload bytes in 1216-byte pieces
  }));
  CAPTURE(payload, mtu);
  const auto inner = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7")
                         .id(0x7777)
                         .ttl(33)
                         .dscp(10)
                         .udp(5000, 53)
                         .payload(std::string(payload, 'f'))
                         .bytes();
  const auto frags = fragments(inner, mtu);
  CHECK(frags.size() == count);
  CHECK(reassemble(frags, mtu - 40) == inner);
  for (const auto& f : frags) {
    const auto p = core::parse_ipv4(f).value();
    CHECK(p.header.id == 0x7777);
    CHECK(p.header.ttl == 33);
    CHECK(p.header.dscp == 10);
  }
}

TEST_CASE("fragment: options are copied only when their copy flag is set", "[tep]") {
  // Security (0x82, copied, 11 bytes), NOP, Record Route (0x07, not copied, 7 bytes), EOL.
  const auto inner =
      PacketBuilder{}
          .ipv4("192.0.2.1", "198.51.100.7")
          .ipv4_options({0x82, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x01, 0x07, 7, 4, 0, 0, 0, 0, 0})
          .udp(5000, 53)
          .payload(std::string(2000, 'o'))
          .bytes();
  const auto frags = fragments(inner, 1280);
  REQUIRE(frags.size() == 2);
  const auto first = core::parse_ipv4(frags[0]).value();
  const auto second = core::parse_ipv4(frags[1]).value();
  CHECK(first.header_length == 40);
  CHECK(second.header_length == 32);
  CHECK(to_vector(second.header.options) == test::bytes({0x82, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0}));
  CHECK(first.payload.size() == 1200);
  CHECK(second.header.fragment_offset == 150);
  std::vector<std::byte> data{first.payload.begin(), first.payload.end()};
  data.insert(data.end(), second.payload.begin(), second.payload.end());
  CHECK(data == to_vector(core::parse_ipv4(inner).value().payload));
}

TEST_CASE("fragment: a fragment is fragmented further, keeping its offset and MF", "[tep]") {
  const auto inner = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7", core::ip_protocol::kUdp)
                         .id(5)
                         .mf()
                         .fragment_offset(100)
                         .payload(std::string(2000, 'm'))
                         .bytes();
  const auto frags = fragments(inner, 1280);
  REQUIRE(frags.size() == 2);
  const auto a = core::parse_ipv4(frags[0]).value();
  const auto b = core::parse_ipv4(frags[1]).value();
  CHECK(a.header.fragment_offset == 100);
  CHECK(a.header.more_fragments);
  CHECK(b.header.fragment_offset == 100 + a.payload.size() / 8);
  CHECK(b.header.more_fragments);
}

TEST_CASE("fragment: errors and the one-fragment case", "[tep]") {
  const auto small = udp_packet();
  CHECK(tep::fragment_count(small, 1280).value() == 1);
  std::vector<std::byte> buf(1240);
  CHECK(to_vector(tep::write_fragment(small, 1280, 0, buf).value()) == small);
  CHECK(tep::write_fragment(small, 1280, 1, buf).error() ==
        make_error_code(Errc::BadFragmentIndex));

  const auto big_df = PacketBuilder{}
                          .ipv4("192.0.2.1", "198.51.100.7")
                          .df()
                          .udp(5000, 53)
                          .payload(std::string(2000, 'z'))
                          .bytes();
  CHECK(tep::fragment_count(big_df, 1280).error() == make_error_code(Errc::DontFragment));
  const auto big = udp_packet(2000);
  std::vector<std::byte> tiny(100);
  CHECK(tep::write_fragment(big, 1280, 0, tiny).error() == make_error_code(Errc::NoSpace));
  auto bad_options = PacketBuilder{}
                         .ipv4("192.0.2.1", "198.51.100.7")
                         .ipv4_options({0x82, 9, 0, 0})
                         .payload(std::string(2000, 'z'))
                         .bytes();
  bad_options[11] = std::byte{0};  // checksum is not what is wrong here
  CHECK(tep::fragment_count(bad_options, 1280).error() == make_error_code(Errc::InnerBadHeader));
}
