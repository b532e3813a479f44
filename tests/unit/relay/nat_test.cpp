// Tests for relay/nat.hpp: translation both ways with exact bytes and checksums recomputed from
// scratch, mappings per client, filtering, timeouts, bounds, ICMP errors and hostile packets.
#include "relay/nat.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/checksum.hpp"
#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "core/tcp.hpp"
#include "support/packet_builder.hpp"

using relay::Errc;
using relay::NatConfig;
using relay::SourceNat;
using test::v4;
using test::v6;
namespace flag = core::tcp_flag;
namespace ipp = core::ip_protocol;
using Packet = std::vector<std::byte>;

namespace {

// Inner (client) addresses, the remote hosts and the NAT addresses: documentation ranges.
constexpr std::string_view kInner4 = "192.0.2.10";
constexpr std::string_view kRemote4 = "198.51.100.7";
constexpr std::string_view kOther4 = "198.51.100.99";
constexpr std::string_view kRouter4 = "198.51.100.254";
constexpr std::string_view kNat4 = "203.0.113.1";
constexpr std::string_view kInner6 = "2001:db8:1::10";
constexpr std::string_view kRemote6 = "2001:db8:2::7";
constexpr std::string_view kOther6 = "2001:db8:2::99";
constexpr std::string_view kRouter6 = "2001:db8:2::fe";
constexpr std::string_view kNat6 = "2001:db8:ffff::1";

SourceNat::Clock::time_point at(int seconds) {
  return SourceNat::Clock::time_point{} + std::chrono::seconds{seconds};
}

NatConfig config() {
  NatConfig c;
  c.address4 = v4(kNat4);
  c.address6 = v6(kNat6);
  return c;
}

bool is_v6(std::string_view address) {
  return address.find(':') != std::string_view::npos;
}

core::Ipv6Address mapped(std::string_view address) {
  return is_v6(address) ? v6(address) : v6("::ffff:" + std::string{address});
}

enum class Kind { Tcp, Udp, EchoRequest, EchoReply };

Kind reply_to(Kind k) {
  return k == Kind::EchoRequest ? Kind::EchoReply : k;
}

std::uint8_t protocol_of(Kind k, bool v6) {
  if (k == Kind::Tcp) return ipp::kTcp;
  if (k == Kind::Udp) return ipp::kUdp;
  return v6 ? ipp::kIcmpv6 : ipp::kIcmp;
}

// A packet of `kind` from src to dst, the family following the addresses. An echo request
// carries id src_port, an echo reply id dst_port: the id takes the place of the port that the
// NAT rewrites in each direction.
Packet make(Kind kind, std::string_view src, std::string_view dst, std::uint16_t src_port,
            std::uint16_t dst_port, std::uint8_t flags = flag::kAck) {
  test::PacketBuilder b;
  const bool v6 = is_v6(src);
  if (v6) {
    b.ipv6(src, dst);
  } else {
    b.ipv4(src, dst).id(0x1234).df();
  }
  switch (kind) {
    case Kind::Tcp:
      b.tcp(src_port, dst_port, flags, 1000, 2000);
      break;
    case Kind::Udp:
      b.udp(src_port, dst_port);
      break;
    case Kind::EchoRequest:
      if (v6) {
        b.icmpv6_echo(src_port, 7);
      } else {
        b.icmpv4_echo(src_port, 7);
      }
      break;
    case Kind::EchoReply:
      if (v6) {
        b.icmpv6_echo(dst_port, 7, core::EchoKind::reply);
      } else {
        b.icmpv4_echo(dst_port, 7, core::EchoKind::reply);
      }
      break;
  }
  return b.payload("hello").bytes();
}

// The one's-complement residue of a transport checksum, recomputed from scratch over the
// pseudo-header (none for ICMPv4) and the whole transport message: 0 when the checksum is valid.
std::uint16_t transport_residue(core::Bytes packet) {
  if ((std::to_integer<unsigned>(packet[0]) >> 4) == 4) {
    const auto ip = core::parse_ipv4(packet).value();
    const auto l4 = ip.payload;
    if (ip.header.protocol == ipp::kIcmp) return core::internet_checksum(l4);
    return core::ipv4_pseudo_header(ip.header.src, ip.header.dst, ip.header.protocol,
                                    static_cast<std::uint16_t>(l4.size()))
        .add(l4)
        .finish();
  }
  const auto ip = core::parse_ipv6(packet).value();
  const auto l4 = ip.upper_layer();
  return core::ipv6_pseudo_header(ip.header.src, ip.header.dst, ip.upper_protocol,
                                  static_cast<std::uint32_t>(l4.size()))
      .add(l4)
      .finish();
}

// Whether every checksum of a whole packet verifies, recomputed from scratch. A UDP checksum
// of 0 on IPv4 is "none" (RFC 768).
bool checksums_ok(core::Bytes packet) {
  if ((std::to_integer<unsigned>(packet[0]) >> 4) == 4) {
    const auto ip = core::parse_ipv4(packet);
    if (!ip || core::internet_checksum(ip->header_bytes) != 0) return false;
    if (ip->header.protocol == ipp::kUdp && core::load_be16(ip->payload.subspan(6, 2)) == 0) {
      return true;
    }
  }
  return transport_residue(packet) == 0;
}

// The external port of the only mapping.
std::uint16_t only_port(const SourceNat& nat) {
  const auto m = nat.mappings();
  REQUIRE(m.size() == 1);
  return m[0].external_port;
}

// An ICMP error from `from` to `to` quoting exactly `quote` (build_icmpv4_error quotes only 8
// bytes of payload; these tests need longer and shorter quotes too).
Packet icmp_error(std::string_view from, std::string_view to, std::uint8_t type, std::uint8_t code,
                  std::uint32_t rest, core::Bytes quote) {
  Packet msg(8 + quote.size());
  msg[0] = std::byte{type};
  msg[1] = std::byte{code};
  core::store_be32(core::MutableBytes{msg}.subspan(4, 4), rest);
  std::copy(quote.begin(), quote.end(), msg.begin() + 8);
  const bool v6 = is_v6(from);
  core::store_be16(
      core::MutableBytes{msg}.subspan(2, 2),
      v6 ? core::icmpv6_checksum(msg, test::v6(from), test::v6(to)) : core::icmpv4_checksum(msg));
  test::PacketBuilder b;
  if (v6) {
    b.ipv6(from, to, ipp::kIcmpv6);
  } else {
    b.ipv4(from, to, ipp::kIcmp);
  }
  return b.payload(msg).bytes();
}

// Runs outbound and checks that a refused packet is left as it was.
relay::Result<void> out(SourceNat& nat, std::uint16_t mux, Packet& p, int seconds) {
  const Packet before = p;
  auto r = nat.outbound(mux, p, at(seconds));
  if (!r) CHECK(p == before);
  return r;
}

relay::Result<std::uint16_t> in(SourceNat& nat, Packet& p, int seconds) {
  const Packet before = p;
  auto r = nat.inbound(p, at(seconds));
  if (!r) CHECK(p == before);
  return r;
}

}  // namespace

TEST_CASE("nat: IPv4 UDP is rewritten byte for byte both ways", "[relay][nat]") {
  auto c = config();
  c.port_first = 40000;
  c.port_last = 40000;
  SourceNat nat{c, 1};
  // 192.0.2.10:5000 -> 198.51.100.7:53, DF, id 0x1234, "abcd".
  Packet p = test::hex(
      "4500 0020 1234 4000 4011 3c54 c000 020a c633 6407"  // IPv4, checksum 0x3c54
      "1388 0035 000c 3b0d 61626364");                     // UDP, checksum 0x3b0d
  REQUIRE(out(nat, 9, p, 0));
  // Source 203.0.113.1:40000 (0x9c40); both checksums follow.
  CHECK(p == test::hex("4500 0020 1234 4000 4011 c25c cb00 7101 c633 6407"
                       "9c40 0035 000c 385d 61626364"));

  Packet reply = test::hex(
      "4500 0020 1234 4000 4011 c25c c633 6407 cb00 7101"
      "0035 9c40 000c 385d 61626364");
  const auto mux = in(nat, reply, 1);
  REQUIRE(mux);
  CHECK(*mux == 9);
  CHECK(reply == test::hex("4500 0020 1234 4000 4011 3c54 c633 6407 c000 020a"
                           "0035 1388 000c 3b0d 61626364"));
}

TEST_CASE("nat: each protocol and family is translated both ways with valid checksums",
          "[relay][nat]") {
  struct Case {
    Kind kind;
    std::string_view inner, remote, nat;
  };
  const std::array cases{
      Case{Kind::Tcp, kInner4, kRemote4, kNat4},
      Case{Kind::Udp, kInner4, kRemote4, kNat4},
      Case{Kind::EchoRequest, kInner4, kRemote4, kNat4},
      Case{Kind::Tcp, kInner6, kRemote6, kNat6},
      Case{Kind::Udp, kInner6, kRemote6, kNat6},
      Case{Kind::EchoRequest, kInner6, kRemote6, kNat6},
  };
  for (const auto& k : cases) {
    INFO("kind " << static_cast<int>(k.kind) << " inner " << k.inner);
    SourceNat nat{config(), 42};
    Packet p = make(k.kind, k.inner, k.remote, 5000, 443, flag::kSyn);
    REQUIRE(out(nat, 7, p, 0));
    const std::uint16_t ext = only_port(nat);
    CHECK(ext >= 20000);
    CHECK(ext <= 59999);
    CHECK(p == make(k.kind, k.nat, k.remote, ext, 443, flag::kSyn));
    CHECK(checksums_ok(p));
    CHECK(nat.is_inbound(make(reply_to(k.kind), k.remote, k.nat, 443, ext)));

    Packet r = make(reply_to(k.kind), k.remote, k.nat, 443, ext, flag::kSyn | flag::kAck);
    const auto mux = in(nat, r, 1);
    REQUIRE(mux);
    CHECK(*mux == 7);
    CHECK(r == make(reply_to(k.kind), k.remote, k.inner, 443, 5000, flag::kSyn | flag::kAck));
    CHECK(checksums_ok(r));

    const auto m = nat.mappings().at(0);
    CHECK(m.mux == 7);
    CHECK(m.protocol == protocol_of(k.kind, is_v6(k.inner)));
    CHECK(m.inner == mapped(k.inner));
    CHECK(m.inner_port == 5000);
    CHECK(m.packets_out == 1);
    CHECK(m.packets_in == 1);
  }
}

TEST_CASE("nat: IPv4 options are kept and skipped over", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const auto build = [](std::string_view src, std::string_view dst, std::uint16_t sport,
                        std::uint16_t dport) {
    return test::PacketBuilder{}
        .ipv4(src, dst)
        .ipv4_options({1, 1, 1, 0})
        .udp(sport, dport)
        .payload("x")
        .bytes();
  };
  Packet p = build(kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  CHECK(p == build(kNat4, kRemote4, ext, 53));
  Packet r = build(kRemote4, kNat4, 53, ext);
  REQUIRE(in(nat, r, 0));
  CHECK(r == build(kRemote4, kInner4, 53, 5000));
}

TEST_CASE("nat: the flow keeps its external port and counts its packets", "[relay][nat]") {
  SourceNat nat{config(), 1};
  for (int i = 0; i < 3; ++i) {
    Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
    REQUIRE(out(nat, 1, p, i));
  }
  CHECK(nat.size() == 1);
  CHECK(nat.mappings().at(0).packets_out == 3);
  // Another inner port, another protocol, another family: three more mappings.
  Packet a = make(Kind::Udp, kInner4, kRemote4, 5001, 53);
  Packet b = make(Kind::Tcp, kInner4, kRemote4, 5000, 53);
  Packet c = make(Kind::Udp, kInner6, kRemote6, 5000, 53);
  REQUIRE(out(nat, 1, a, 3));
  REQUIRE(out(nat, 1, b, 3));
  REQUIRE(out(nat, 1, c, 3));
  CHECK(nat.size() == 4);
  CHECK(nat.size_of(1) == 4);
}

TEST_CASE("nat: two clients with the same inner flow get their own ports and replies",
          "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet a = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  Packet b = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, a, 0));
  REQUIRE(out(nat, 2, b, 0));
  const auto port_a = core::load_be16(core::Bytes{a}.subspan(20, 2));
  const auto port_b = core::load_be16(core::Bytes{b}.subspan(20, 2));
  CHECK(port_a != port_b);
  CHECK(nat.size_of(1) == 1);
  CHECK(nat.size_of(2) == 1);

  Packet ra = make(Kind::Udp, kRemote4, kNat4, 53, port_a);
  Packet rb = make(Kind::Udp, kRemote4, kNat4, 53, port_b);
  CHECK(in(nat, rb, 1).value() == 2);
  CHECK(in(nat, ra, 1).value() == 1);
  CHECK(ra == make(Kind::Udp, kRemote4, kInner4, 53, 5000));
  CHECK(rb == make(Kind::Udp, kRemote4, kInner4, 53, 5000));
}

TEST_CASE("nat: mapping is endpoint independent and filtering address dependent", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);

  // A host the client never sent to is filtered, on any port.
  Packet stranger = make(Kind::Udp, kOther4, kNat4, 53, ext);
  CHECK(in(nat, stranger, 1).error() == Errc::UnknownMapping);

  // The contacted host may answer from another port.
  Packet other_port = make(Kind::Udp, kRemote4, kNat4, 3478, ext);
  CHECK(in(nat, other_port, 1).value() == 1);

  // Sending to the stranger uses the same external port and opens the filter for it.
  Packet q = make(Kind::Udp, kInner4, kOther4, 5000, 53);
  REQUIRE(out(nat, 1, q, 2));
  CHECK(q == make(Kind::Udp, kNat4, kOther4, ext, 53));
  CHECK(nat.size() == 1);
  stranger = make(Kind::Udp, kOther4, kNat4, 53, ext);
  CHECK(in(nat, stranger, 3).value() == 1);
}

TEST_CASE("nat: a mapping remembers its last eight remote addresses", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner6, kRemote6, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  // Seven more remotes: the first is still remembered.
  for (int i = 1; i < 8; ++i) {
    const std::string remote = "2001:db8:3::" + std::to_string(i);
    Packet q = make(Kind::Udp, kInner6, remote, 5000, 53);
    REQUIRE(out(nat, 1, q, 0));
  }
  Packet r = make(Kind::Udp, kRemote6, kNat6, 53, ext);
  CHECK(in(nat, r, 0).value() == 1);
  // A ninth replaces the oldest, the first one.
  Packet ninth = make(Kind::Udp, kInner6, "2001:db8:3::9", 5000, 53);
  REQUIRE(out(nat, 1, ninth, 0));
  r = make(Kind::Udp, kRemote6, kNat6, 53, ext);
  CHECK(in(nat, r, 0).error() == Errc::UnknownMapping);
  Packet second = make(Kind::Udp, "2001:db8:3::1", kNat6, 53, ext);
  CHECK(in(nat, second, 0).value() == 1);
}

TEST_CASE("nat: inbound without a mapping is refused", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  // The wrong port, the wrong protocol, the wrong family, not to the NAT address.
  Packet wrong_port = make(Kind::Udp, kRemote4, kNat4, 53, static_cast<std::uint16_t>(ext + 1));
  Packet wrong_protocol = make(Kind::Tcp, kRemote4, kNat4, 53, ext);
  Packet wrong_family = make(Kind::Udp, kRemote6, kNat6, 53, ext);
  Packet not_nat = make(Kind::Udp, kRemote4, kOther4, 53, ext);
  Packet echo = make(Kind::EchoReply, kRemote4, kNat4, 0, ext);
  for (Packet* q : {&wrong_port, &wrong_protocol, &wrong_family, &not_nat, &echo}) {
    CHECK(in(nat, *q, 1).error() == Errc::UnknownMapping);
  }
  CHECK(nat.mappings().at(0).packets_in == 0);
}

TEST_CASE("nat: UDP and ICMP mappings expire after their idle timeout", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet udp = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  Packet echo = make(Kind::EchoRequest, kInner6, kRemote6, 77, 0);
  REQUIRE(out(nat, 1, udp, 0));
  REQUIRE(out(nat, 1, echo, 0));
  CHECK(nat.expire(at(60)) == 0);
  CHECK(nat.expire(at(61)) == 1);  // ICMP: 60 s
  CHECK(nat.mappings().at(0).protocol == ipp::kUdp);
  CHECK(nat.expire(at(120)) == 0);
  CHECK(nat.expire(at(121)) == 1);  // UDP: 120 s
  CHECK(nat.size() == 0);
  CHECK(nat.size_of(1) == 0);
}

TEST_CASE("nat: traffic either way refreshes a mapping", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 100));
  CHECK(nat.expire(at(220)) == 0);
  Packet r = make(Kind::Udp, kRemote4, kNat4, 53, ext);
  REQUIRE(in(nat, r, 220));
  CHECK(nat.expire(at(340)) == 0);
  CHECK(nat.expire(at(341)) == 1);
}

TEST_CASE("nat: a mapping past its timeout is dead before expire runs", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  Packet r = make(Kind::Udp, kRemote4, kNat4, 53, ext);
  CHECK(in(nat, r, 121).error() == Errc::UnknownMapping);
  CHECK(nat.size() == 0);
  // The flow starts again with a fresh mapping.
  p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 122));
  CHECK(nat.size() == 1);
  CHECK(nat.mappings().at(0).packets_out == 1);
}

TEST_CASE("nat: TCP is transitory until an inbound ACK follows an outbound SYN", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const auto send = [&](std::uint8_t flags, int t) {
    Packet p = make(Kind::Tcp, kInner4, kRemote4, 5000, 443, flags);
    REQUIRE(out(nat, 1, p, t));
  };
  const auto receive = [&](std::uint8_t flags, int t) {
    Packet r = make(Kind::Tcp, kRemote4, kNat4, 443, only_port(nat), flags);
    REQUIRE(in(nat, r, t));
  };

  SECTION("a SYN without answer is transitory: 240 s") {
    send(flag::kSyn, 0);
    CHECK(nat.expire(at(240)) == 0);
    CHECK(nat.expire(at(241)) == 1);
  }
  SECTION("SYN out then SYN-ACK in is established: 7440 s") {
    send(flag::kSyn, 0);
    receive(flag::kSyn | flag::kAck, 1);
    CHECK(nat.expire(at(1 + 7440)) == 0);
    CHECK(nat.expire(at(1 + 7441)) == 1);
  }
  SECTION("FIN out makes it transitory again") {
    send(flag::kSyn, 0);
    receive(flag::kSyn | flag::kAck, 1);
    send(flag::kFin | flag::kAck, 2);
    // An ACK of the FIN does not re-establish it.
    receive(flag::kAck, 3);
    CHECK(nat.expire(at(3 + 240)) == 0);
    CHECK(nat.expire(at(3 + 241)) == 1);
  }
  SECTION("RST in makes it transitory again") {
    send(flag::kSyn, 0);
    receive(flag::kSyn | flag::kAck, 1);
    receive(flag::kRst, 2);
    CHECK(nat.expire(at(2 + 241)) == 1);
  }
  SECTION("an inbound ACK without an outbound SYN does not establish it") {
    send(flag::kAck, 0);
    receive(flag::kAck, 1);
    CHECK(nat.expire(at(1 + 241)) == 1);
  }
  SECTION("a new SYN after a FIN can establish it again") {
    send(flag::kSyn, 0);
    send(flag::kFin, 1);
    send(flag::kSyn, 2);
    receive(flag::kSyn | flag::kAck, 3);
    CHECK(nat.expire(at(3 + 7440)) == 0);
    CHECK(nat.size() == 1);
  }
}

TEST_CASE("nat: configured timeouts apply per protocol", "[relay][nat]") {
  auto c = config();
  c.udp_timeout = std::chrono::seconds{5};
  c.icmp_timeout = std::chrono::seconds{3};
  c.tcp_transitory_timeout = std::chrono::seconds{7};
  SourceNat nat{c, 1};
  Packet udp = make(Kind::Udp, kInner4, kRemote4, 1, 2);
  Packet echo = make(Kind::EchoRequest, kInner4, kRemote4, 1, 0);
  Packet tcp = make(Kind::Tcp, kInner4, kRemote4, 1, 2, flag::kSyn);
  REQUIRE(out(nat, 1, udp, 0));
  REQUIRE(out(nat, 1, echo, 0));
  REQUIRE(out(nat, 1, tcp, 0));
  CHECK(nat.expire(at(4)) == 1);
  CHECK(nat.expire(at(6)) == 1);
  CHECK(nat.expire(at(7)) == 0);
  CHECK(nat.expire(at(8)) == 1);
}

TEST_CASE("nat: an earlier time point counts as the latest seen", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 1000));
  p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 10));  // stamped 1000, not 10
  CHECK(nat.expire(at(1120)) == 0);
  CHECK(nat.expire(at(1121)) == 1);
}

TEST_CASE("nat: the table is bounded in total and per client", "[relay][nat]") {
  auto c = config();
  c.max_mappings = 3;
  c.max_mappings_per_client = 2;
  SourceNat nat{c, 1};
  Packet a = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  Packet b = make(Kind::Tcp, kInner4, kRemote4, 1, 53);
  Packet c1 = make(Kind::Udp, kInner4, kRemote4, 2, 53);
  REQUIRE(out(nat, 1, a, 0));
  REQUIRE(out(nat, 1, b, 0));
  CHECK(out(nat, 1, c1, 0).error() == Errc::TableFull);
  CHECK(nat.size_of(1) == 2);

  Packet d = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  REQUIRE(out(nat, 2, d, 0));
  Packet e = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  CHECK(out(nat, 3, e, 0).error() == Errc::TableFull);
  CHECK(nat.size() == 3);

  // Existing flows go on; nothing was evicted.
  a = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  REQUIRE(out(nat, 1, a, 1));
  CHECK(nat.forget(1) == 2);
  e = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  REQUIRE(out(nat, 3, e, 2));
  CHECK(nat.size() == 2);
}

TEST_CASE("nat: stats count translations, mappings and refusals by reason", "[relay][nat]") {
  auto c = config();
  c.max_mappings = 1;
  SourceNat nat{c, 1};
  Packet a = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  REQUIRE(out(nat, 1, a, 0));
  Packet reply = make(Kind::Udp, kRemote4, kNat4, 53, only_port(nat));
  REQUIRE(in(nat, reply, 0));
  Packet full = make(Kind::Udp, kInner4, kRemote4, 2, 53);
  CHECK(out(nat, 1, full, 0).error() == Errc::TableFull);
  Packet stray = make(Kind::Udp, kOther4, kNat4, 53, only_port(nat));
  CHECK(in(nat, stray, 0).error() == Errc::UnknownMapping);
  CHECK(nat.expire(at(121)) == 1);

  const auto& s = nat.stats();
  CHECK(s.outbound == 1);
  CHECK(s.inbound == 1);
  CHECK(s.created == 1);
  CHECK(s.expired == 1);
  CHECK(s.refused_outbound == std::map<std::string_view, std::uint64_t>{{"table_full", 1}});
  CHECK(s.refused_inbound == std::map<std::string_view, std::uint64_t>{{"unknown_mapping", 1}});
}

TEST_CASE("nat: ports run out per protocol and family", "[relay][nat]") {
  auto c = config();
  c.port_first = 1000;
  c.port_last = 1001;
  SourceNat nat{c, 1};
  for (std::uint16_t port = 1; port <= 2; ++port) {
    Packet p = make(Kind::Udp, kInner4, kRemote4, port, 53);
    REQUIRE(out(nat, 1, p, 0));
  }
  Packet third = make(Kind::Udp, kInner4, kRemote4, 3, 53);
  CHECK(out(nat, 1, third, 0).error() == Errc::PortsExhausted);
  std::set<std::uint16_t> used;
  for (const auto& m : nat.mappings()) used.insert(m.external_port);
  CHECK(used == std::set<std::uint16_t>{1000, 1001});

  // TCP, echo and UDP over IPv6 have their own ports.
  Packet tcp = make(Kind::Tcp, kInner4, kRemote4, 3, 53);
  Packet echo = make(Kind::EchoRequest, kInner4, kRemote4, 3, 0);
  Packet udp6 = make(Kind::Udp, kInner6, kRemote6, 3, 53);
  REQUIRE(out(nat, 1, tcp, 0));
  REQUIRE(out(nat, 1, echo, 0));
  REQUIRE(out(nat, 1, udp6, 0));

  // A port comes free when its mapping goes.
  CHECK(nat.expire(at(121)) == 4);  // all but the TCP one
  third = make(Kind::Udp, kInner4, kRemote4, 3, 53);
  REQUIRE(out(nat, 1, third, 122));
}

TEST_CASE("nat: the last free port of a range is found", "[relay][nat]") {
  auto c = config();
  c.port_first = 1000;
  c.port_last = 1063;
  SourceNat nat{c, 7};
  std::set<std::uint16_t> used;
  for (std::uint16_t port = 1; port <= 64; ++port) {
    Packet p = make(Kind::Udp, kInner4, kRemote4, port, 53);
    REQUIRE(out(nat, 1, p, 0));
    used.insert(core::load_be16(core::Bytes{p}.subspan(20, 2)));
  }
  CHECK(used.size() == 64);
  CHECK(*used.begin() == 1000);
  CHECK(*used.rbegin() == 1063);
  Packet p = make(Kind::Udp, kInner4, kRemote4, 65, 53);
  CHECK(out(nat, 1, p, 0).error() == Errc::PortsExhausted);
}

TEST_CASE("nat: external ports are random and follow the seed", "[relay][nat]") {
  const auto ports = [](std::uint64_t seed) {
    SourceNat nat{config(), seed};
    std::vector<std::uint16_t> out_ports;
    for (std::uint16_t port = 1; port <= 50; ++port) {
      Packet p = make(Kind::Udp, kInner4, kRemote4, port, 53);
      REQUIRE(out(nat, 1, p, 0));
      out_ports.push_back(core::load_be16(core::Bytes{p}.subspan(20, 2)));
    }
    return out_ports;
  };
  const auto a = ports(1);
  CHECK(ports(1) == a);
  CHECK(ports(2) != a);
  CHECK(std::set<std::uint16_t>(a.begin(), a.end()).size() == a.size());
  CHECK(std::ranges::all_of(a, [](std::uint16_t p) { return p >= 20000 && p <= 59999; }));
  CHECK_FALSE(std::ranges::is_sorted(a));
}

TEST_CASE("nat: forget drops every mapping of one client", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet a = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  Packet b = make(Kind::Tcp, kInner6, kRemote6, 1, 53, flag::kSyn);
  Packet e = make(Kind::EchoRequest, kInner4, kRemote4, 1, 0);
  Packet other = make(Kind::Udp, kInner4, kRemote4, 1, 53);
  REQUIRE(out(nat, 1, a, 0));
  REQUIRE(out(nat, 1, b, 0));
  REQUIRE(out(nat, 1, e, 0));
  REQUIRE(out(nat, 2, other, 0));
  const auto port_a = core::load_be16(core::Bytes{a}.subspan(20, 2));
  const auto port_other = core::load_be16(core::Bytes{other}.subspan(20, 2));

  CHECK(nat.forget(1) == 3);
  CHECK(nat.size() == 1);
  CHECK(nat.size_of(1) == 0);
  CHECK(nat.forget(1) == 0);
  CHECK(nat.forget(9) == 0);
  Packet r = make(Kind::Udp, kRemote4, kNat4, 53, port_a);
  CHECK(in(nat, r, 1).error() == Errc::UnknownMapping);
  r = make(Kind::Udp, kRemote4, kNat4, 53, port_other);
  CHECK(in(nat, r, 1).value() == 2);
}

TEST_CASE("nat: a moved NAT keeps its mappings", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  SourceNat moved{std::move(nat)};
  CHECK(moved.size() == 1);
  SourceNat assigned{config(), 2};
  assigned = std::move(moved);
  CHECK(assigned.size() == 1);
  CHECK(assigned.config().address4 == v4(kNat4));
}

TEST_CASE("nat: IPv4 fragmentation needed reaches the client with its own packet quoted",
          "[relay][nat]") {
  SourceNat nat{config(), 1};
  const Packet original = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  Packet p = original;
  REQUIRE(out(nat, 4, p, 0));
  // The router's error quotes the translated header and 8 bytes: the whole UDP header,
  // checksum included.
  Packet err = core::build_icmpv4_fragmentation_needed(v4(kRouter4), 1400, p).value();
  CHECK(nat.is_inbound(err));
  const auto mux = in(nat, err, 1);
  REQUIRE(mux);
  CHECK(*mux == 4);
  CHECK(err == core::build_icmpv4_fragmentation_needed(v4(kRouter4), 1400, original).value());
  CHECK(checksums_ok(err));
  CHECK(core::internet_checksum(core::Bytes{err}.subspan(28, 20)) == 0);  // quoted header
  CHECK(nat.mappings().at(0).packets_in == 1);
}

TEST_CASE("nat: an IPv4 error quoting the TCP checksum fixes it too", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const Packet original = make(Kind::Tcp, kInner4, kRemote4, 5000, 443, flag::kSyn);
  Packet p = original;
  REQUIRE(out(nat, 4, p, 0));
  // IP header, TCP header (40 bytes): the quoted TCP segment checksum is complete and valid.
  Packet err = icmp_error(kRouter4, kNat4, 11, 0, 0, core::Bytes{p}.first(40));
  REQUIRE(in(nat, err, 1));
  CHECK(err == icmp_error(kRouter4, kInner4, 11, 0, 0, core::Bytes{original}.first(40)));
  CHECK(checksums_ok(err));
}

TEST_CASE("nat: time exceeded for an echo request is translated", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const Packet original = make(Kind::EchoRequest, kInner4, kRemote4, 321, 0);
  Packet p = original;
  REQUIRE(out(nat, 5, p, 0));
  Packet err =
      core::build_icmpv4_error(v4(kRouter4), core::icmpv4_type::kTimeExceeded, 0, 0, p).value();
  CHECK(in(nat, err, 1).value() == 5);
  CHECK(err ==
        core::build_icmpv4_error(v4(kRouter4), core::icmpv4_type::kTimeExceeded, 0, 0, original)
            .value());
  CHECK(checksums_ok(err));
}

TEST_CASE("nat: IPv6 packet too big reaches the client with its own packet quoted",
          "[relay][nat]") {
  for (const Kind kind : {Kind::Tcp, Kind::Udp, Kind::EchoRequest}) {
    INFO("kind " << static_cast<int>(kind));
    SourceNat nat{config(), 1};
    const Packet original = make(kind, kInner6, kRemote6, 5000, 443, flag::kSyn);
    Packet p = original;
    REQUIRE(out(nat, 6, p, 0));
    Packet err = core::build_icmpv6_packet_too_big(v6(kRouter6), 1280, p).value();
    CHECK(in(nat, err, 1).value() == 6);
    CHECK(err == core::build_icmpv6_packet_too_big(v6(kRouter6), 1280, original).value());
    CHECK(checksums_ok(err));
    // The whole packet is quoted: its own checksums verify as well.
    CHECK(checksums_ok(core::Bytes{err}.subspan(48)));
  }
}

TEST_CASE("nat: ICMP errors that match no mapping are refused", "[relay][nat]") {
  SourceNat nat{config(), 1};
  Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  REQUIRE(out(nat, 1, p, 0));
  const auto ext = only_port(nat);
  const auto error_about = [](const Packet& quoted) {
    return icmp_error(kRouter4, kNat4, 3, 4, 1400, quoted);
  };

  SECTION("a remote the mapping never sent to") {
    Packet err = error_about(make(Kind::Udp, kNat4, kOther4, ext, 53));
    CHECK(in(nat, err, 1).error() == Errc::UnknownMapping);
  }
  SECTION("a port with no mapping") {
    Packet err =
        error_about(make(Kind::Udp, kNat4, kRemote4, static_cast<std::uint16_t>(ext + 1), 53));
    CHECK(in(nat, err, 1).error() == Errc::UnknownMapping);
  }
  SECTION("a quoted source that is not the NAT address") {
    Packet err = error_about(make(Kind::Udp, kOther4, kRemote4, ext, 53));
    CHECK(in(nat, err, 1).error() == Errc::UnknownMapping);
  }
  SECTION("a quote too short for the ports") {
    Packet err = error_about(Packet(p.begin(), p.begin() + 23));
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
    err = error_about(Packet(p.begin(), p.begin() + 19));
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
    err = error_about({});
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
  }
  SECTION("a quoted IPv6 packet in an ICMPv4 error") {
    Packet err = error_about(make(Kind::Udp, kNat6, kRemote6, ext, 53));
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
  }
  SECTION("a quoted non-first fragment") {
    Packet frag = p;
    frag[6] = std::byte{0x00};
    frag[7] = std::byte{0x10};
    Packet err = error_about(frag);
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
  }
  SECTION("a quoted protocol the NAT does not map") {
    Packet err =
        error_about(test::PacketBuilder{}.ipv4(kNat4, kRemote4, 47).payload("gre!").bytes());
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
  }
  SECTION("an ICMP type that is not one of the errors handled") {
    Packet err = icmp_error(kRouter4, kNat4, core::icmpv4_type::kRedirect, 0, 0, p);
    CHECK(in(nat, err, 1).error() == Errc::Unsupported);
  }
  SECTION("an error does not refresh the mapping") {
    Packet err = error_about(p);
    REQUIRE(in(nat, err, 100));
    CHECK(nat.expire(at(121)) == 1);
  }
}

TEST_CASE("nat: checksums stay as invalid as they were", "[relay][nat]") {
  SourceNat nat{config(), 1};
  SECTION("a UDP IPv4 checksum of 0 stays 0") {
    Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
    p[26] = p[27] = std::byte{0};
    REQUIRE(out(nat, 1, p, 0));
    Packet expected = make(Kind::Udp, kNat4, kRemote4, only_port(nat), 53);
    expected[26] = expected[27] = std::byte{0};
    CHECK(p == expected);
    CHECK(checksums_ok(p));
  }
  SECTION("a wrong TCP checksum is as wrong after translation") {
    for (const auto inner : {kInner4, kInner6}) {
      Packet p = make(Kind::Tcp, inner, is_v6(inner) ? kRemote6 : kRemote4, 5000, 53);
      const std::size_t l4 = is_v6(inner) ? 40 : 20;
      p[l4 + 17] ^= std::byte{0x5a};
      const auto residue = transport_residue(p);
      REQUIRE(residue != 0);
      REQUIRE(out(nat, 1, p, 0));
      CHECK(transport_residue(p) == residue);
    }
  }
  SECTION("a wrong IPv4 header checksum is as wrong after translation") {
    Packet p = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
    p[11] ^= std::byte{0x01};
    const auto residue = core::internet_checksum(core::Bytes{p}.first(20));
    REQUIRE(out(nat, 1, p, 0));
    CHECK(core::internet_checksum(core::Bytes{p}.first(20)) == residue);
    CHECK(transport_residue(p) == 0);
  }
}

TEST_CASE("nat: every truncation of a packet is NotIp and leaves it unchanged", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const std::array outbound_packets{
      make(Kind::Tcp, kInner4, kRemote4, 5000, 443),
      make(Kind::Udp, kInner6, kRemote6, 5000, 53),
      make(Kind::EchoRequest, kInner4, kRemote4, 1, 0),
      make(Kind::EchoRequest, kInner6, kRemote6, 1, 0),
  };
  for (const auto& whole : outbound_packets) {
    for (std::size_t n = 0; n < whole.size(); ++n) {
      INFO("length " << n << " of " << whole.size());
      Packet cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
      CHECK(out(nat, 1, cut, 0).error() == Errc::NotIp);
      cut = Packet(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
      CHECK(in(nat, cut, 0).error() == Errc::NotIp);
    }
  }
  CHECK(nat.size() == 0);
}

TEST_CASE("nat: bad lengths and incomplete transport headers are NotIp", "[relay][nat]") {
  SourceNat nat{config(), 1};
  const auto raw4 = [](std::uint8_t protocol, const Packet& payload) {
    return test::PacketBuilder{}.ipv4(kInner4, kRemote4, protocol).payload(payload).bytes();
  };
  const auto raw6 = [](std::uint8_t protocol, const Packet& payload) {
    return test::PacketBuilder{}.ipv6(kInner6, kRemote6, protocol).payload(payload).bytes();
  };
  const Packet udp = make(Kind::Udp, kInner4, kRemote4, 5000, 53);
  const Packet tcp6 = make(Kind::Tcp, kInner6, kRemote6, 5000, 53);

  std::vector<Packet> bad;
  bad.push_back(udp);
  bad.back().push_back(std::byte{0});  // a byte after the total length
  bad.push_back(udp);
  bad.back()[3] = std::byte{0xff};  // total length beyond the packet
  bad.push_back(udp);
  bad.back()[0] = std::byte{0x44};  // IHL 4
  bad.push_back(udp);
  bad.back()[0] = std::byte{0x55};  // version 5
  bad.push_back(udp);
  bad.back()[25] = std::byte{0x20};  // UDP length beyond the datagram
  bad.push_back(udp);
  bad.back()[25] = std::byte{0x07};  // UDP length below its header
  bad.push_back(udp);
  bad.back()[25] = std::byte{0x0c};  // UDP length short of the datagram
  bad.push_back(tcp6);
  bad.back().push_back(std::byte{0});  // a byte after the payload length
  bad.push_back(tcp6);
  bad.back()[52] = std::byte{0xf0};  // TCP data offset 60 in a 25-byte segment
  bad.push_back(tcp6);
  bad.back()[52] = std::byte{0x40};  // TCP data offset 16
  bad.push_back(raw4(ipp::kTcp, Packet(19)));
  bad.push_back(raw4(ipp::kUdp, Packet(7)));
  bad.push_back(raw4(ipp::kIcmp, Packet(7)));
  bad.push_back(raw6(ipp::kIcmpv6, Packet(7)));
  bad.push_back(raw6(ipp::kTcp, {}));
  bad.push_back(Packet{std::byte{0x60}});
  for (std::size_t i = 0; i < bad.size(); ++i) {
    INFO("case " << i);
    Packet p = bad[i];
    CHECK(out(nat, 1, p, 0).error() == Errc::NotIp);
    p = bad[i];
    CHECK(in(nat, p, 0).error() == Errc::NotIp);
  }
  CHECK(nat.size() == 0);
}

TEST_CASE("nat: fragments and other protocols are Unsupported", "[relay][nat]") {
  SourceNat nat{config(), 1};
  std::vector<Packet> unsupported{
      test::PacketBuilder{}.ipv4(kInner4, kRemote4).mf().udp(5000, 53).payload("x").bytes(),
      test::PacketBuilder{}
          .ipv4(kInner4, kRemote4, ipp::kUdp)
          .fragment_offset(8)
          .payload("x")
          .bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6).fragment(0, true, 1).udp(5000, 53).bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6).fragment(0, false, 1).udp(5000, 53).bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6).hop_by_hop().udp(5000, 53).bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6).destination_options().tcp(1, 2).bytes(),
      test::PacketBuilder{}.ipv4(kInner4, kRemote4, 47).payload("gre payload").bytes(),
      test::PacketBuilder{}.ipv4(kInner4, kRemote4, ipp::kIcmpv6).payload("12345678").bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6, ipp::kIcmp).payload("12345678").bytes(),
      test::PacketBuilder{}.ipv6(kInner6, kRemote6, ipp::kNoNextHeader).bytes(),
      // A client's echo replies and errors have no mapping to go out through.
      make(Kind::EchoReply, kInner4, kRemote4, 0, 1),
      make(Kind::EchoReply, kInner6, kRemote6, 0, 1),
      core::build_icmpv4_error(v4(kInner4), 3, 3, 0, make(Kind::Udp, kRemote4, kInner4, 53, 5000))
          .value(),
  };
  for (std::size_t i = 0; i < unsupported.size(); ++i) {
    INFO("case " << i);
    Packet p = unsupported[i];
    CHECK(out(nat, 1, p, 0).error() == Errc::Unsupported);
  }
  CHECK(nat.size() == 0);

  // Inbound: an echo request to the NAT address, a fragment to it.
  Packet ping = make(Kind::EchoRequest, kRemote4, kNat4, 1, 0);
  CHECK(in(nat, ping, 0).error() == Errc::Unsupported);
  Packet ping6 = make(Kind::EchoRequest, kRemote6, kNat6, 1, 0);
  CHECK(in(nat, ping6, 0).error() == Errc::Unsupported);
  Packet frag =
      test::PacketBuilder{}.ipv4(kRemote4, kNat4).mf().udp(53, 20000).payload("x").bytes();
  CHECK(in(nat, frag, 0).error() == Errc::Unsupported);
}

TEST_CASE("nat: a family without NAT address and hairpins are NotAllowed", "[relay][nat]") {
  auto c = config();
  c.address6.reset();
  SourceNat nat{c, 1};
  Packet p6 = make(Kind::Udp, kInner6, kRemote6, 5000, 53);
  CHECK(out(nat, 1, p6, 0).error() == Errc::NotAllowed);
  Packet hairpin = make(Kind::Udp, kInner4, kNat4, 5000, 53);
  CHECK(out(nat, 1, hairpin, 0).error() == Errc::NotAllowed);
  CHECK(nat.size() == 0);

  SourceNat both{config(), 1};
  Packet hairpin6 = make(Kind::EchoRequest, kInner6, kNat6, 1, 0);
  CHECK(out(both, 1, hairpin6, 0).error() == Errc::NotAllowed);
  // An IPv6 packet to an absent IPv6 NAT address matches nothing.
  Packet r6 = make(Kind::Udp, kRemote6, kNat6, 53, 20000);
  CHECK(in(nat, r6, 0).error() == Errc::UnknownMapping);
}

TEST_CASE("nat: is_inbound looks at the destination only", "[relay][nat]") {
  SourceNat nat{config(), 1};
  CHECK(nat.is_inbound(make(Kind::Udp, kRemote4, kNat4, 1, 2)));
  CHECK(nat.is_inbound(make(Kind::Tcp, kRemote6, kNat6, 1, 2)));
  CHECK_FALSE(nat.is_inbound(make(Kind::Udp, kNat4, kRemote4, 1, 2)));
  CHECK_FALSE(nat.is_inbound(make(Kind::Udp, kNat6, kRemote6, 1, 2)));
  CHECK_FALSE(nat.is_inbound(make(Kind::Udp, kRemote4, kInner4, 1, 2)));
  CHECK_FALSE(nat.is_inbound({}));
  const Packet p = make(Kind::Udp, kRemote4, kNat4, 1, 2);
  CHECK_FALSE(nat.is_inbound(core::Bytes{p}.first(19)));
  const Packet q = make(Kind::Udp, kRemote6, kNat6, 1, 2);
  CHECK_FALSE(nat.is_inbound(core::Bytes{q}.first(39)));

  auto c = config();
  c.address4.reset();
  SourceNat v6_only{c, 1};
  CHECK_FALSE(v6_only.is_inbound(p));
  CHECK(v6_only.is_inbound(q));
}
