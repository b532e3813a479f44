// Tests for dstm_client/packets.hpp: the data-path decisions as packet tables, the keepalive
// probe byte for byte, and hostile bytes that must never crash.
#include "dstm_client/packets.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <string>
#include <vector>

#include "core/icmp.hpp"
#include "core/ipv4.hpp"
#include "support/packet_builder.hpp"
#include "tep/fourover6.hpp"

using dstm_client::Inbound;
using dstm_client::Outbound;
using test::PacketBuilder;

namespace {

constexpr const char* kLease = "198.51.100.1";
constexpr const char* kKeepalive = "192.0.2.201";
constexpr const char* kHost = "203.0.113.10";
constexpr std::uint16_t kEchoId = 0x4d53;
constexpr std::size_t kTunnelMtu = 1500;  // inner MTU 1460
const auto kLeaseAddress = *core::Ipv4Address::parse(kLease);
const auto kKeepaliveAddress = *core::Ipv4Address::parse(kKeepalive);

std::vector<std::byte> udp_from(const char* src, std::size_t total, bool df = false) {
  const std::size_t payload = total - 20 - 8;
  return PacketBuilder{}
      .ipv4(src, kHost)
      .df(df)
      .udp(40000, 53)
      .payload(std::string(payload, 'x'))
      .bytes();
}

Outbound out(const std::vector<std::byte>& p) {
  return dstm_client::classify_outbound(p, kLeaseAddress, kTunnelMtu);
}

Inbound in(const std::vector<std::byte>& p,
           std::optional<core::Ipv4Address> keepalive = kKeepaliveAddress) {
  return dstm_client::classify_inbound(p, kLeaseAddress, keepalive, kEchoId);
}

const Inbound kDeliver{};
const Inbound kNotOurs{.kind = Inbound::Kind::NotOurs};
Inbound reply(std::uint16_t seq) {
  return Inbound{.kind = Inbound::Kind::KeepaliveReply, .sequence = seq};
}

}  // namespace

TEST_CASE("packets: TUN packets are encapsulated, fragmented, refused or dropped", "[client]") {
  struct Row {
    const char* what;
    std::vector<std::byte> packet;
    Outbound verdict;
  };
  auto bad_ihl = udp_from(kLease, 100);
  bad_ihl[0] = std::byte{0x44};
  auto long_total = udp_from(kLease, 100);
  long_total[2] = std::byte{0x01};  // total length 356 > 100 bytes present
  const std::vector<Row> rows{
      {"UDP from the lease", udp_from(kLease, 100), Outbound::Encapsulate},
      {"exactly the inner MTU", udp_from(kLease, 1460, true), Outbound::Encapsulate},
      {"one byte over, DF clear", udp_from(kLease, 1461), Outbound::Fragment},
      {"one byte over, DF set", udp_from(kLease, 1461, true), Outbound::FragmentationNeeded},
      {"from another IPv4", udp_from("198.51.100.2", 100), Outbound::SourceNotLeased},
      {"from 0.0.0.0 (DHCP-like)", udp_from("0.0.0.0", 100), Outbound::SourceNotLeased},
      {"IPv6 router solicitation",
       PacketBuilder{}.ipv6("fe80::1", "ff02::2").icmpv6_echo(1, 1).bytes(), Outbound::NotIpv4},
      {"empty", {}, Outbound::NotIpv4},
      {"version 4, truncated", test::bytes({0x45, 0, 0, 20, 0, 0}), Outbound::Malformed},
      {"IHL 4", bad_ihl, Outbound::Malformed},
      {"total length past the bytes", long_total, Outbound::Malformed},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CHECK(out(row.packet) == row.verdict);
  }
}

TEST_CASE("packets: tunnel packets for the lease are delivered from any source", "[client]") {
  struct Row {
    const char* what;
    std::vector<std::byte> inner;
    std::optional<core::Ipv4Address> keepalive;
    Inbound verdict;
  };
  auto bad_checksum = PacketBuilder{}
                          .ipv4(kKeepalive, kLease)
                          .icmpv4_echo(kEchoId, 9, core::EchoKind::reply)
                          .payload("dstm-ka")
                          .bytes();
  bad_checksum.back() ^= std::byte{0xff};
  const std::vector<Row> rows{
      {"UDP reply from the host",
       PacketBuilder{}.ipv4(kHost, kLease).udp(53, 40000).payload("a").bytes(), kKeepaliveAddress,
       kDeliver},
      {"to another address",
       PacketBuilder{}.ipv4(kHost, "198.51.100.2").udp(53, 40000).payload("a").bytes(),
       kKeepaliveAddress, kNotOurs},
      {"our keepalive reply",
       PacketBuilder{}
           .ipv4(kKeepalive, kLease)
           .icmpv4_echo(kEchoId, 9, core::EchoKind::reply)
           .payload("dstm-ka")
           .bytes(),
       kKeepaliveAddress, reply(9)},
      {"a reply to the host's own ping (another identifier)",
       PacketBuilder{}.ipv4(kKeepalive, kLease).icmpv4_echo(1234, 9, core::EchoKind::reply).bytes(),
       kKeepaliveAddress, kDeliver},
      {"an echo request from the keepalive address",
       PacketBuilder{}.ipv4(kKeepalive, kLease).icmpv4_echo(kEchoId, 9).bytes(), kKeepaliveAddress,
       kDeliver},
      {"our identifier from another source",
       PacketBuilder{}.ipv4(kHost, kLease).icmpv4_echo(kEchoId, 9, core::EchoKind::reply).bytes(),
       kKeepaliveAddress, kDeliver},
      {"a bad ICMP checksum", bad_checksum, kKeepaliveAddress, kDeliver},
      {"a fragment of a reply",
       PacketBuilder{}
           .ipv4(kKeepalive, kLease)
           .mf()
           .icmpv4_echo(kEchoId, 9, core::EchoKind::reply)
           .payload("12345678")
           .bytes(),
       kKeepaliveAddress, kDeliver},
      {"a reply when the offer had no keepalive",
       PacketBuilder{}
           .ipv4(kKeepalive, kLease)
           .icmpv4_echo(kEchoId, 9, core::EchoKind::reply)
           .bytes(),
       std::nullopt, kDeliver},
      {"a truncated ICMP header",
       PacketBuilder{}.ipv4(kKeepalive, kLease, 1).payload("abc").bytes(), kKeepaliveAddress,
       kDeliver},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    CHECK(in(row.inner, row.keepalive) == row.verdict);
  }
}

TEST_CASE("packets: the keepalive probe is an ICMP echo request from the lease", "[client]") {
  std::vector<std::byte> buffer(100, std::byte{0xee});
  const auto probe = dstm_client::write_probe(buffer, {.lease = kLeaseAddress,
                                                       .keepalive = kKeepaliveAddress,
                                                       .echo_id = kEchoId,
                                                       .sequence = 513,
                                                       .ip_id = 77});
  REQUIRE(probe);
  CHECK(probe->size() == dstm_client::kProbeSize);
  const auto expected = PacketBuilder{}
                            .ipv4(kLease, kKeepalive)
                            .id(77)
                            .icmpv4_echo(kEchoId, 513)
                            .payload(test::bytes({'d', 's', 't', 'm', '-', 'k', 'a', 0}))
                            .bytes();
  CHECK(std::vector<std::byte>(probe->begin(), probe->end()) == expected);

  const auto ip = core::parse_ipv4(*probe);
  REQUIRE(ip);
  CHECK(ip->checksum_ok());
  CHECK(ip->header.ttl == 64);
  CHECK_FALSE(ip->header.dont_fragment);
  const auto icmp = core::parse_icmpv4(ip->payload);
  REQUIRE(icmp);
  CHECK(core::icmpv4_checksum_ok(*icmp));
  CHECK(icmp->type == core::icmpv4_type::kEchoRequest);

  // It fits any tunnel and goes out as is.
  CHECK(dstm_client::classify_outbound(*probe, kLeaseAddress, 1280) == Outbound::Encapsulate);

  std::vector<std::byte> small(dstm_client::kProbeSize - 1);
  CHECK(dstm_client::write_probe(small, {}).error() == core::Errc::NoSpace);
}

TEST_CASE("packets: a probe survives the tunnel and its reply is recognised", "[client]") {
  const tep::Endpoints ends{.src = *core::Ipv6Address::parse("2001:db8:c1::2"),
                            .dst = *core::Ipv6Address::parse("2001:db8:e1::2")};
  std::vector<std::byte> frame(40 + dstm_client::kProbeSize);
  const auto probe = dstm_client::write_probe(
      core::MutableBytes{frame}.subspan(40),
      {.lease = kLeaseAddress, .keepalive = kKeepaliveAddress, .echo_id = kEchoId, .sequence = 3});
  REQUIRE(probe);
  const auto outer = tep::encapsulate(frame, 40, ends);
  REQUIRE(outer);
  std::vector<std::byte> wire(outer->begin(), outer->end());
  const auto d = tep::decapsulate(wire);
  REQUIRE(d);
  CHECK(std::vector<std::byte>(d->inner.begin(), d->inner.end()) ==
        std::vector<std::byte>(probe->begin(), probe->end()));
  // The TEP answers with source and destination swapped.
  const auto answer = PacketBuilder{}
                          .ipv4(kKeepalive, kLease)
                          .icmpv4_echo(kEchoId, 3, core::EchoKind::reply)
                          .payload(test::bytes({'d', 's', 't', 'm', '-', 'k', 'a', 0}))
                          .bytes();
  CHECK(in(answer) == reply(3));
}

TEST_CASE("packets: hostile bytes never crash the decisions", "[client]") {
  // Every truncation of valid packets, then pseudo-random bytes with an IPv4 version nibble.
  const std::vector<std::vector<std::byte>> valid{
      udp_from(kLease, 100),
      PacketBuilder{}
          .ipv4(kKeepalive, kLease)
          .icmpv4_echo(kEchoId, 1, core::EchoKind::reply)
          .bytes(),
      PacketBuilder{}.ipv4(kLease, kHost).ipv4_options({1, 1, 1, 0}).udp(1, 2).bytes()};
  for (const auto& p : valid) {
    for (std::size_t n = 0; n <= p.size(); ++n) {
      const std::vector<std::byte> cut(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
      (void)out(cut);
      (void)in(cut);
    }
  }
  std::uint32_t x = 2463534242u;
  std::vector<std::byte> junk(128);
  for (int i = 0; i < 20000; ++i) {
    for (auto& b : junk) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      b = static_cast<std::byte>(x & 0xff);
    }
    junk[0] = static_cast<std::byte>(0x40 | (x & 0x0f));
    const auto n = static_cast<std::size_t>(x % junk.size());
    const std::vector<std::byte> p(junk.begin(), junk.begin() + static_cast<std::ptrdiff_t>(n));
    const auto o = out(p);
    CHECK((o != Outbound::Encapsulate || n >= 20));
    (void)in(p);
  }
}
