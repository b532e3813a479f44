// Tests for platform/netlink.hpp: every request against hand-written bytes, and reply parsing
// (acks with and without extended-ack text, truncated and hostile replies).
#include "platform/netlink.hpp"

#include <bit>
#include <catch2/catch.hpp>
#include <cerrno>
#include <initializer_list>
#include <vector>

using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using core::Ipv6Prefix;
using platform::Errc;
namespace nl = platform::netlink;

// Netlink headers and attributes are in host byte order; the tables below are little-endian.
// Addresses inside attributes are in network order, as on the wire.
static_assert(std::endian::native == std::endian::little, "tables are written for little-endian");

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

// Concatenates tables (for a message whose text reads better as characters).
std::vector<std::byte> operator+(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Ipv4Address v4(const char* s) {
  return Ipv4Address::parse(s).value();
}
Ipv6Address v6(const char* s) {
  return Ipv6Address::parse(s).value();
}

nl::ParsedMessage parse(const std::vector<std::byte>& b) {
  return nl::parse_message(b).value();
}

}  // namespace

// Layouts used below (include/uapi/linux/netlink.h, rtnetlink.h, if_addr.h, if_link.h):
//   struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }             16 bytes
//   struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; } 16 bytes
//   struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }          8 bytes
//   struct rtmsg     { u8 family, dst_len, src_len, tos, table, protocol, scope, type;
//                      u32 flags; }                                                      12 bytes
//   struct rtattr    { u16 len; u16 type; } + payload, padded to 4 (len excludes padding)
// Types: RTM_NEWLINK 0x10, RTM_GETLINK 0x12, RTM_NEWADDR 0x14, RTM_DELADDR 0x15,
// RTM_NEWROUTE 0x18, RTM_DELROUTE 0x19. Flags: REQUEST 0x1 | ACK 0x4 = 0x0005;
// with EXCL 0x200 | CREATE 0x400 = 0x0605.

TEST_CASE("netlink: link set up is RTM_NEWLINK with IFF_UP in flags and change", "[netlink]") {
  const auto expected = bytes({
      0x20, 0x00, 0x00, 0x00,  // nlmsg_len 32
      0x10, 0x00, 0x05, 0x00,  // RTM_NEWLINK, REQUEST|ACK
      0x07, 0x00, 0x00, 0x00,  // seq 7
      0x00, 0x00, 0x00, 0x00,  // pid 0 (the kernel)
      0x00, 0x00, 0x00, 0x00,  // ifi_family AF_UNSPEC, pad, ifi_type
      0x05, 0x00, 0x00, 0x00,  // ifi_index 5
      0x01, 0x00, 0x00, 0x00,  // ifi_flags IFF_UP
      0x01, 0x00, 0x00, 0x00,  // ifi_change IFF_UP
  });
  CHECK(nl::link_set_up(7, 5) == expected);
}

TEST_CASE("netlink: link set down clears IFF_UP and changes only it", "[netlink]") {
  const auto expected = bytes({
      0x20, 0x00, 0x00, 0x00,  // nlmsg_len 32
      0x10, 0x00, 0x05, 0x00,  // RTM_NEWLINK, REQUEST|ACK
      0x08, 0x00, 0x00, 0x00,  // seq 8
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // AF_UNSPEC
      0x05, 0x00, 0x00, 0x00,  // ifi_index 5
      0x00, 0x00, 0x00, 0x00,  // ifi_flags 0
      0x01, 0x00, 0x00, 0x00,  // ifi_change IFF_UP
  });
  CHECK(nl::link_set_down(8, 5) == expected);
}

TEST_CASE("netlink: set MTU carries IFLA_MTU", "[netlink]") {
  const auto expected = bytes({
      0x28, 0x00, 0x00, 0x00,  // nlmsg_len 40
      0x10, 0x00, 0x05, 0x00,  // RTM_NEWLINK, REQUEST|ACK
      0x09, 0x00, 0x00, 0x00,  // seq 9
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // AF_UNSPEC
      0x05, 0x00, 0x00, 0x00,  // ifi_index 5
      0x00, 0x00, 0x00, 0x00,  // ifi_flags
      0x00, 0x00, 0x00, 0x00,  // ifi_change
      0x08, 0x00, 0x04, 0x00,  // rta_len 8, IFLA_MTU (4)
      0x00, 0x05, 0x00, 0x00,  // 1280
  });
  CHECK(nl::link_set_mtu(9, 5, 1280) == expected);
}

TEST_CASE("netlink: get link by name carries a NUL-terminated IFLA_IFNAME", "[netlink]") {
  const auto expected = bytes({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x12, 0x00, 0x05, 0x00,  // RTM_GETLINK, REQUEST|ACK
      0x0a, 0x00, 0x00, 0x00,  // seq 10
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // AF_UNSPEC
      0x00, 0x00, 0x00, 0x00,  // ifi_index 0: look up by name
      0x00, 0x00, 0x00, 0x00,  // ifi_flags
      0x00, 0x00, 0x00, 0x00,  // ifi_change
      0x09, 0x00, 0x03, 0x00,  // rta_len 9, IFLA_IFNAME (3)
      't',  'u',  'n',  '0',   //
      0x00, 0x00, 0x00, 0x00,  // NUL, 3 bytes padding
  });
  CHECK(nl::link_get_by_name(10, "tun0") == expected);
}

TEST_CASE("netlink: veth add nests the peer's ifinfomsg, name and namespace fd", "[netlink]") {
  const auto expected = bytes({
      0x68, 0x00, 0x00, 0x00,  // nlmsg_len 104
      0x10, 0x00, 0x05, 0x06,  // RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
      0x0b, 0x00, 0x00, 0x00,  // seq 11
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // ifinfomsg: AF_UNSPEC
      0x00, 0x00, 0x00, 0x00,  //   index 0: new link
      0x00, 0x00, 0x00, 0x00,  //   flags
      0x00, 0x00, 0x00, 0x00,  //   change
      0x0a, 0x00, 0x03, 0x00,  // rta_len 10, IFLA_IFNAME
      'v',  'e',  't',  'h',   //
      '0',  0x00, 0x00, 0x00,  // NUL, 2 bytes padding
      0x3c, 0x00, 0x12, 0x80,  // rta_len 60, IFLA_LINKINFO (18) | NLA_F_NESTED (0x8000)
      0x09, 0x00, 0x01, 0x00,  //   rta_len 9, IFLA_INFO_KIND (1)
      'v',  'e',  't',  'h',   //
      0x00, 0x00, 0x00, 0x00,  //   NUL, 3 bytes padding
      0x2c, 0x00, 0x02, 0x80,  //   rta_len 44, IFLA_INFO_DATA (2) | NLA_F_NESTED
      0x28, 0x00, 0x01, 0x80,  //     rta_len 40, VETH_INFO_PEER (1) | NLA_F_NESTED
      0x00, 0x00, 0x00, 0x00,  //     peer ifinfomsg: AF_UNSPEC
      0x00, 0x00, 0x00, 0x00,  //       index
      0x00, 0x00, 0x00, 0x00,  //       flags
      0x00, 0x00, 0x00, 0x00,  //       change
      0x0a, 0x00, 0x03, 0x00,  //     rta_len 10, IFLA_IFNAME
      'v',  'e',  't',  'h',   //
      '1',  0x00, 0x00, 0x00,  //     NUL, padding
      0x08, 0x00, 0x1c, 0x00,  //     rta_len 8, IFLA_NET_NS_FD (28)
      0x07, 0x00, 0x00, 0x00,  //     fd 7
  });
  CHECK(nl::veth_add(11, "veth0", "veth1", 7) == expected);
}

TEST_CASE("netlink: veth add without a namespace fd leaves the peer beside it", "[netlink]") {
  const auto msg = nl::veth_add(12, "a", "b", std::nullopt);
  // 16 header + 16 ifinfomsg + 8 IFLA_IFNAME "a" + linkinfo (4 + 12 kind + 4 data + 4 peer +
  // 16 ifinfomsg + 8 IFLA_IFNAME "b") = 88, and no IFLA_NET_NS_FD.
  REQUIRE(msg.size() == 88);
  CHECK(msg[0] == std::byte{88});
  CHECK(msg[84] == std::byte{'b'});
}

// Further layouts (include/uapi/linux/if_link.h, if_tunnel.h, ip6_tunnel.h): IFLA_IFNAME 3,
// IFLA_MTU 4, IFLA_LINKINFO 18 { IFLA_INFO_KIND 1, IFLA_INFO_DATA 2 }; IFLA_IPTUN_LINK 1 (u32),
// _LOCAL 2 (16 bytes), _REMOTE 3 (16 bytes), _TTL 4 (u8), _FLAGS 8 (u32), _PROTO 9 (u8);
// IP6_TNL_F_IGN_ENCAP_LIMIT 0x1, IP6_TNL_F_USE_ORIG_TCLASS 0x2; IPPROTO_IPIP 4; RTM_DELLINK 0x11.
namespace {

// IFLA_LINKINFO of an ipip6 tunnel from 2001:db8:c1::2 to 2001:db8:e1::2, link 0, hop limit 64:
// what `ip link add ... type ip6tnl mode ipip6 local .. remote .. ttl 64 encaplimit none tclass
// inherit` sends (iproute2 puts the same attributes in a different order).
std::vector<std::byte> ipip6_linkinfo() {
  return bytes({
      0x5c, 0x00, 0x12, 0x80,  // rta_len 92, IFLA_LINKINFO | NLA_F_NESTED
      0x0b, 0x00, 0x01, 0x00,  //   rta_len 11, IFLA_INFO_KIND
      'i',  'p',  '6',  't',   //
      'n',  'l',  0x00, 0x00,  //   "ip6tnl" NUL, 1 byte padding
      0x4c, 0x00, 0x02, 0x80,  //   rta_len 76, IFLA_INFO_DATA | NLA_F_NESTED
      0x08, 0x00, 0x01, 0x00,  //     rta_len 8, IFLA_IPTUN_LINK
      0x00, 0x00, 0x00, 0x00,  //     0: any device
      0x14, 0x00, 0x02, 0x00,  //     rta_len 20, IFLA_IPTUN_LOCAL
      0x20, 0x01, 0x0d, 0xb8,  //     2001:db8:c1::2
      0x00, 0xc1, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x02,  //
      0x14, 0x00, 0x03, 0x00,  //     rta_len 20, IFLA_IPTUN_REMOTE
      0x20, 0x01, 0x0d, 0xb8,  //     2001:db8:e1::2
      0x00, 0xe1, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x02,  //
      0x05, 0x00, 0x04, 0x00,  //     rta_len 5, IFLA_IPTUN_TTL
      0x40, 0x00, 0x00, 0x00,  //     64, 3 bytes padding
      0x08, 0x00, 0x08, 0x00,  //     rta_len 8, IFLA_IPTUN_FLAGS
      0x03, 0x00, 0x00, 0x00,  //     IGN_ENCAP_LIMIT | USE_ORIG_TCLASS
      0x05, 0x00, 0x09, 0x00,  //     rta_len 5, IFLA_IPTUN_PROTO
      0x04, 0x00, 0x00, 0x00,  //     IPPROTO_IPIP, 3 bytes padding
  });
}

nl::Ip6Tunnel client_tunnel() {
  return nl::Ip6Tunnel{.name = "dstm0",
                       .local = v6("2001:db8:c1::2"),
                       .remote = v6("2001:db8:e1::2"),
                       .link = 0,
                       .hop_limit = 64,
                       .mtu = 1460};
}

}  // namespace

TEST_CASE("netlink: ip6tnl add creates an ipip6 device with name, MTU and end points",
          "[netlink]") {
  const auto expected = bytes({
                            0x90, 0x00, 0x00, 0x00,  // nlmsg_len 144
                            0x10, 0x00, 0x05, 0x06,  // RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
                            0x15, 0x00, 0x00, 0x00,  // seq 21
                            0x00, 0x00, 0x00, 0x00,  // pid
                            0x00, 0x00, 0x00, 0x00,  // ifinfomsg: AF_UNSPEC
                            0x00, 0x00, 0x00, 0x00,  //   index 0: new link
                            0x00, 0x00, 0x00, 0x00,  //   flags: created down
                            0x00, 0x00, 0x00, 0x00,  //   change
                            0x0a, 0x00, 0x03, 0x00,  // rta_len 10, IFLA_IFNAME
                            'd',  's',  't',  'm',   //
                            '0',  0x00, 0x00, 0x00,  // NUL, 2 bytes padding
                            0x08, 0x00, 0x04, 0x00,  // rta_len 8, IFLA_MTU
                            0xb4, 0x05, 0x00, 0x00,  // 1460
                        }) +
                        ipip6_linkinfo();
  CHECK(nl::ip6_tunnel_add(21, client_tunnel()) == expected);
}

TEST_CASE("netlink: ip6tnl add without an MTU leaves IFLA_MTU out", "[netlink]") {
  auto t = client_tunnel();
  t.mtu.reset();
  const auto msg = nl::ip6_tunnel_add(22, t);
  REQUIRE(msg.size() == 136);
  CHECK(std::vector<std::byte>(msg.end() - 92, msg.end()) == ipip6_linkinfo());
}

TEST_CASE("netlink: ip6tnl change names the device by index and carries only the link info",
          "[netlink]") {
  const auto expected = bytes({
                            0x7c, 0x00, 0x00, 0x00,  // nlmsg_len 124
                            0x10, 0x00, 0x05, 0x00,  // RTM_NEWLINK, REQUEST|ACK: no create
                            0x17, 0x00, 0x00, 0x00,  // seq 23
                            0x00, 0x00, 0x00, 0x00,  // pid
                            0x00, 0x00, 0x00, 0x00,  // ifinfomsg: AF_UNSPEC
                            0x09, 0x00, 0x00, 0x00,  //   index 9
                            0x00, 0x00, 0x00, 0x00,  //   flags
                            0x00, 0x00, 0x00, 0x00,  //   change: flags untouched
                        }) +
                        ipip6_linkinfo();
  CHECK(nl::ip6_tunnel_change(23, 9, client_tunnel()) == expected);
}

TEST_CASE("netlink: link dump is RTM_GETLINK with NLM_F_DUMP", "[netlink]") {
  const auto expected = bytes({
      0x20, 0x00, 0x00, 0x00,  // nlmsg_len 32
      0x12, 0x00, 0x05, 0x03,  // RTM_GETLINK, REQUEST|ACK|DUMP (ROOT 0x100 | MATCH 0x200)
      0x19, 0x00, 0x00, 0x00,  // seq 25
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // AF_UNSPEC
      0x00, 0x00, 0x00, 0x00,  // index 0: all
      0x00, 0x00, 0x00, 0x00,  // flags
      0x00, 0x00, 0x00, 0x00,  // change
  });
  CHECK(nl::link_dump(25) == expected);
}

TEST_CASE("netlink: link delete is RTM_DELLINK by index", "[netlink]") {
  const auto expected = bytes({
      0x20, 0x00, 0x00, 0x00,  // nlmsg_len 32
      0x11, 0x00, 0x05, 0x00,  // RTM_DELLINK, REQUEST|ACK
      0x18, 0x00, 0x00, 0x00,  // seq 24
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x00, 0x00,  // AF_UNSPEC
      0x0c, 0x00, 0x00, 0x00,  // index 12
      0x00, 0x00, 0x00, 0x00,  // flags
      0x00, 0x00, 0x00, 0x00,  // change
  });
  CHECK(nl::link_delete(24, 12) == expected);
}

TEST_CASE("netlink: a link reply's IFLA_LINKINFO kind is read", "[netlink]") {
  const auto reply = bytes({
      0x30, 0x00, 0x00, 0x00,  // nlmsg_len 48
      0x10, 0x00, 0x00, 0x00,  // RTM_NEWLINK
      0x01, 0x00, 0x00, 0x00,  // seq
      0x00, 0x00, 0x00, 0x00,  // pid
      0x00, 0x00, 0x01, 0x03,  // AF_UNSPEC, type ARPHRD_TUNNEL6 (769)
      0x07, 0x00, 0x00, 0x00,  // index 7
      0x90, 0x00, 0x00, 0x00,  // IFF_NOARP | IFF_POINTOPOINT... (not read)
      0x00, 0x00, 0x00, 0x00,  // change
      0x10, 0x00, 0x12, 0x80,  // rta_len 16, IFLA_LINKINFO | NLA_F_NESTED
      0x0b, 0x00, 0x01, 0x00,  //   rta_len 11, IFLA_INFO_KIND
      'i',  'p',  '6',  't',   //
      'n',  'l',  0x00, 0x00,  //   "ip6tnl" NUL, padding
  });
  const auto link = nl::parse_link(parse(reply));
  REQUIRE(link);
  CHECK(link->index == 7);
  CHECK(link->kind == "ip6tnl");
}

TEST_CASE("netlink: IPv4 address add sets IFA_LOCAL and IFA_ADDRESS", "[netlink]") {
  const auto expected = bytes({
      0x28, 0x00, 0x00, 0x00,  // nlmsg_len 40
      0x14, 0x00, 0x05, 0x06,  // RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE
      0x0d, 0x00, 0x00, 0x00,  // seq 13
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x18, 0x00, 0x00,  // ifa_family AF_INET, prefixlen 24, flags 0, scope universe
      0x03, 0x00, 0x00, 0x00,  // ifa_index 3
      0x08, 0x00, 0x02, 0x00,  // rta_len 8, IFA_LOCAL (2)
      0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
      0x08, 0x00, 0x01, 0x00,  // rta_len 8, IFA_ADDRESS (1)
      0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
  });
  CHECK(nl::address_add(13, 3, v4("192.0.2.1"), 24) == expected);
}

TEST_CASE("netlink: IPv4 address delete is RTM_DELADDR without create flags", "[netlink]") {
  const auto expected = bytes({
      0x28, 0x00, 0x00, 0x00,  // nlmsg_len 40
      0x15, 0x00, 0x05, 0x00,  // RTM_DELADDR, REQUEST|ACK
      0x0e, 0x00, 0x00, 0x00,  // seq 14
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x18, 0x00, 0x00,  // AF_INET, /24
      0x03, 0x00, 0x00, 0x00,  // ifa_index 3
      0x08, 0x00, 0x02, 0x00,  // IFA_LOCAL
      0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
      0x08, 0x00, 0x01, 0x00,  // IFA_ADDRESS
      0xc0, 0x00, 0x02, 0x01,  // 192.0.2.1
  });
  CHECK(nl::address_delete(14, 3, v4("192.0.2.1"), 24) == expected);
}

TEST_CASE("netlink: IPv6 address add carries 16-byte addresses and skips DAD", "[netlink]") {
  const auto expected = bytes({
      0x40, 0x00, 0x00, 0x00,  // nlmsg_len 64
      0x14, 0x00, 0x05, 0x06,  // RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE
      0x0f, 0x00, 0x00, 0x00,  // seq 15
      0x00, 0x00, 0x00, 0x00,  // pid
      0x0a, 0x40, 0x02, 0x00,  // AF_INET6, prefixlen 64, IFA_F_NODAD (0x02), scope universe
      0x04, 0x00, 0x00, 0x00,  // ifa_index 4
      0x14, 0x00, 0x02, 0x00,  // rta_len 20, IFA_LOCAL
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:1::1
      0x00, 0x01, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x01,  //
      0x14, 0x00, 0x01, 0x00,  // rta_len 20, IFA_ADDRESS
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:1::1
      0x00, 0x01, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x01,  //
  });
  CHECK(nl::address_add(15, 4, v6("2001:db8:1::1"), 64) == expected);
}

TEST_CASE("netlink: IPv6 address delete", "[netlink]") {
  const auto expected = bytes({
      0x40, 0x00, 0x00, 0x00,  // nlmsg_len 64
      0x15, 0x00, 0x05, 0x00,  // RTM_DELADDR, REQUEST|ACK
      0x10, 0x00, 0x00, 0x00,  // seq 16
      0x00, 0x00, 0x00, 0x00,  // pid
      0x0a, 0x80, 0x00, 0x00,  // AF_INET6, prefixlen 128
      0x04, 0x00, 0x00, 0x00,  // ifa_index 4
      0x14, 0x00, 0x02, 0x00,  // IFA_LOCAL
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8::ff
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0xff,  //
      0x14, 0x00, 0x01, 0x00,  // IFA_ADDRESS
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8::ff
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0xff,  //
  });
  CHECK(nl::address_delete(16, 4, v6("2001:db8::ff"), 128) == expected);
}

TEST_CASE("netlink: IPv4 device route is static, scope link, main table", "[netlink]") {
  const auto expected = bytes({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x18, 0x00, 0x05, 0x06,  // RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
      0x11, 0x00, 0x00, 0x00,  // seq 17
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x18, 0x00, 0x00,  // AF_INET, dst_len 24, src_len 0, tos 0
      0xfe, 0x04, 0xfd, 0x01,  // table main (254), RTPROT_STATIC (4), RT_SCOPE_LINK (253),
                               // RTN_UNICAST (1)
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x01, 0x00,  // rta_len 8, RTA_DST (1)
      0xc6, 0x33, 0x64, 0x00,  // 198.51.100.0
      0x08, 0x00, 0x04, 0x00,  // rta_len 8, RTA_OIF (4)
      0x03, 0x00, 0x00, 0x00,  // ifindex 3
  });
  const nl::Ipv4Route route{.destination = Ipv4Prefix::parse("198.51.100.0/24").value(),
                            .gateway = {},
                            .oif = 3,
                            .table = nl::kMainTable,
                            .metric = {}};
  CHECK(nl::route_add(17, route) == expected);
}

TEST_CASE("netlink: IPv4 route via gateway, table above 255 in RTA_TABLE, metric", "[netlink]") {
  const auto expected = bytes({
      0x3c, 0x00, 0x00, 0x00,  // nlmsg_len 60
      0x18, 0x00, 0x05, 0x06,  // RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
      0x12, 0x00, 0x00, 0x00,  // seq 18
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x18, 0x00, 0x00,  // AF_INET, dst_len 24
      0x00, 0x04, 0x00, 0x01,  // table RT_TABLE_UNSPEC, static, scope universe, unicast
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x0f, 0x00,  // rta_len 8, RTA_TABLE (15)
      0xe8, 0x03, 0x00, 0x00,  // 1000
      0x08, 0x00, 0x01, 0x00,  // RTA_DST
      0xcb, 0x00, 0x71, 0x00,  // 203.0.113.0
      0x08, 0x00, 0x05, 0x00,  // rta_len 8, RTA_GATEWAY (5)
      0xc0, 0x00, 0x02, 0x02,  // 192.0.2.2
      0x08, 0x00, 0x06, 0x00,  // rta_len 8, RTA_PRIORITY (6)
      0x64, 0x00, 0x00, 0x00,  // metric 100
  });
  const nl::Ipv4Route route{.destination = Ipv4Prefix::parse("203.0.113.0/24").value(),
                            .gateway = v4("192.0.2.2"),
                            .oif = {},
                            .table = 1000,
                            .metric = 100};
  CHECK(nl::route_add(18, route) == expected);
}

TEST_CASE("netlink: IPv4 route delete matches any protocol, scope and type", "[netlink]") {
  const auto expected = bytes({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x19, 0x00, 0x05, 0x00,  // RTM_DELROUTE, REQUEST|ACK
      0x13, 0x00, 0x00, 0x00,  // seq 19
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x18, 0x00, 0x00,  // AF_INET, dst_len 24
      0xfe, 0x00, 0xff, 0x00,  // table main, protocol unspec, RT_SCOPE_NOWHERE (255), RTN_UNSPEC
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x01, 0x00,  // RTA_DST
      0xc6, 0x33, 0x64, 0x00,  // 198.51.100.0
      0x08, 0x00, 0x04, 0x00,  // RTA_OIF
      0x03, 0x00, 0x00, 0x00,  // 3
  });
  const nl::Ipv4Route route{.destination = Ipv4Prefix::parse("198.51.100.0/24").value(),
                            .gateway = {},
                            .oif = 3,
                            .table = nl::kMainTable,
                            .metric = {}};
  CHECK(nl::route_delete(19, route) == expected);
}

TEST_CASE("netlink: IPv6 route via gateway and device in a small table", "[netlink]") {
  const auto expected = bytes({
      0x4c, 0x00, 0x00, 0x00,  // nlmsg_len 76
      0x18, 0x00, 0x05, 0x06,  // RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE
      0x14, 0x00, 0x00, 0x00,  // seq 20
      0x00, 0x00, 0x00, 0x00,  // pid
      0x0a, 0x40, 0x00, 0x00,  // AF_INET6, dst_len 64
      0x64, 0x04, 0x00, 0x01,  // table 100, static, scope universe, unicast
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x14, 0x00, 0x01, 0x00,  // rta_len 20, RTA_DST
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:2::
      0x00, 0x02, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x14, 0x00, 0x05, 0x00,  // rta_len 20, RTA_GATEWAY
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:1::2
      0x00, 0x01, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x02,  //
      0x08, 0x00, 0x04, 0x00,  // RTA_OIF
      0x04, 0x00, 0x00, 0x00,  // 4
  });
  const nl::Ipv6Route route{.destination = Ipv6Prefix::parse("2001:db8:2::/64").value(),
                            .gateway = v6("2001:db8:1::2"),
                            .oif = 4,
                            .table = 100,
                            .metric = {}};
  CHECK(nl::route_add(20, route) == expected);
}

TEST_CASE("netlink: IPv6 route delete with metric", "[netlink]") {
  const auto expected = bytes({
      0x40, 0x00, 0x00, 0x00,  // nlmsg_len 64
      0x19, 0x00, 0x05, 0x00,  // RTM_DELROUTE, REQUEST|ACK
      0x15, 0x00, 0x00, 0x00,  // seq 21
      0x00, 0x00, 0x00, 0x00,  // pid
      0x0a, 0x30, 0x00, 0x00,  // AF_INET6, dst_len 48
      0xfe, 0x00, 0xff, 0x00,  // table main, protocol unspec, scope nowhere, type unspec
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x14, 0x00, 0x01, 0x00,  // RTA_DST
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:5::
      0x00, 0x05, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x04, 0x00,  // RTA_OIF
      0x09, 0x00, 0x00, 0x00,  // 9
      0x08, 0x00, 0x06, 0x00,  // RTA_PRIORITY
      0x00, 0x04, 0x00, 0x00,  // 1024
  });
  const nl::Ipv6Route route{.destination = Ipv6Prefix::parse("2001:db8:5::/48").value(),
                            .gateway = {},
                            .oif = 9,
                            .table = nl::kMainTable,
                            .metric = 1024};
  CHECK(nl::route_delete(21, route) == expected);
}

// --- Replies. NLMSG_ERROR is type 2; struct nlmsgerr { s32 error; struct nlmsghdr msg; }
// followed by the request's payload unless NLM_F_CAPPED (0x100), then, with NLM_F_ACK_TLVS
// (0x200), attributes: NLMSGERR_ATTR_MSG (1) string, NLMSGERR_ATTR_OFFS (2) u32.

TEST_CASE("netlink: a capped success ack parses as error 0", "[netlink]") {
  const auto ack = bytes({
      0x24, 0x00, 0x00, 0x00,  // nlmsg_len 36
      0x02, 0x00, 0x00, 0x01,  // NLMSG_ERROR, NLM_F_CAPPED
      0x07, 0x00, 0x00, 0x00,  // seq 7
      0x39, 0x30, 0x00, 0x00,  // port 12345
      0x00, 0x00, 0x00, 0x00,  // error 0
      0x20, 0x00, 0x00, 0x00,  // echoed request header: len 32
      0x10, 0x00, 0x05, 0x00,  //   RTM_NEWLINK, REQUEST|ACK
      0x07, 0x00, 0x00, 0x00,  //   seq 7
      0x39, 0x30, 0x00, 0x00,  //   port
  });
  const auto m = parse(ack);
  CHECK(m.header.length == 36);
  CHECK(m.header.type == 2);
  CHECK(m.header.seq == 7);
  CHECK(m.header.port == 12345);
  CHECK(m.payload.size() == 20);
  CHECK(m.size == 36);
  CHECK(nl::parse_ack(m).value() == nl::Ack{.error = 0, .message = ""});
}

TEST_CASE("netlink: an error ack carries errno and the extended-ack text", "[netlink]") {
  const auto
      ack = bytes({
                0x50, 0x00, 0x00, 0x00,  // nlmsg_len 80
                0x02, 0x00, 0x00, 0x03,  // NLMSG_ERROR, NLM_F_CAPPED|NLM_F_ACK_TLVS
                0x11, 0x00, 0x00, 0x00,  // seq 17
                0x39, 0x30, 0x00, 0x00,  // port
                0xed, 0xff, 0xff, 0xff,  // error -19 (-ENODEV)
                0x2c, 0x00, 0x00, 0x00,  // echoed header: len 44
                0x18, 0x00, 0x05, 0x06,  //   RTM_NEWROUTE
                0x11, 0x00, 0x00, 0x00,  //   seq 17
                0x39, 0x30, 0x00, 0x00,  //   port
                0x22, 0x00, 0x01, 0x00,  // rta_len 34, NLMSGERR_ATTR_MSG
            }) +
            bytes({'N', 'e', 'x', 't', 'h', 'o', 'p', ' ',  'd',  'e', 'v',
                   'i', 'c', 'e', ' ', 'd', 'o', 'e', 's',  ' ',  'n', 'o',
                   't', ' ', 'e', 'x', 'i', 's', 't', 0x00, 0x00, 0x00}) +  // 29 characters, NUL, 2
                                                                            // bytes padding
            bytes({
                0x08, 0x00, 0x02, 0x00,  // rta_len 8, NLMSGERR_ATTR_OFFS
                0x28, 0x00, 0x00, 0x00,  // offset 40 (the RTA_OIF attribute)
            });
  REQUIRE(ack.size() == 80);
  CHECK(nl::parse_ack(parse(ack)).value() ==
        nl::Ack{.error = ENODEV, .message = "Nexthop device does not exist"});
}

TEST_CASE("netlink: an error ack without extended ack has an empty text", "[netlink]") {
  const auto ack = bytes({
      0x24, 0x00, 0x00, 0x00,  // nlmsg_len 36
      0x02, 0x00, 0x00, 0x01,  // NLMSG_ERROR, NLM_F_CAPPED
      0x0d, 0x00, 0x00, 0x00,  // seq 13
      0x39, 0x30, 0x00, 0x00,  // port
      0xef, 0xff, 0xff, 0xff,  // error -17 (-EEXIST)
      0x28, 0x00, 0x00, 0x00,  // echoed header
      0x14, 0x00, 0x05, 0x06,  //
      0x0d, 0x00, 0x00, 0x00,  //
      0x39, 0x30, 0x00, 0x00,  //
  });
  CHECK(nl::parse_ack(parse(ack)).value() == nl::Ack{.error = EEXIST, .message = ""});
}

TEST_CASE("netlink: an uncapped error ack skips the echoed request before the TLVs", "[netlink]") {
  const auto ack = bytes({
      0x3c, 0x00, 0x00, 0x00,  // nlmsg_len 60
      0x02, 0x00, 0x00, 0x02,  // NLMSG_ERROR, NLM_F_ACK_TLVS (not capped)
      0x05, 0x00, 0x00, 0x00,  // seq 5
      0x39, 0x30, 0x00, 0x00,  // port
      0xea, 0xff, 0xff, 0xff,  // error -22 (-EINVAL)
      0x20, 0x00, 0x00, 0x00,  // echoed header: len 32, so 16 payload bytes follow it
      0x10, 0x00, 0x05, 0x00,  //
      0x05, 0x00, 0x00, 0x00,  //
      0x39, 0x30, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  // echoed ifinfomsg
      0x05, 0x00, 0x00, 0x00,  //
      0x01, 0x00, 0x00, 0x00,  //
      0x01, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x01, 0x00,  // rta_len 8, NLMSGERR_ATTR_MSG
      'b',  'a',  'd',  0x00,  // "bad"
  });
  CHECK(nl::parse_ack(parse(ack)).value() == nl::Ack{.error = EINVAL, .message = "bad"});
}

TEST_CASE("netlink: a message text without NUL ends at its attribute", "[netlink]") {
  const auto ack = bytes({
      0x2c, 0x00, 0x00, 0x00,  // nlmsg_len 44
      0x02, 0x00, 0x00, 0x03,  // NLMSG_ERROR, CAPPED|ACK_TLVS
      0x01, 0x00, 0x00, 0x00,  // seq
      0x00, 0x00, 0x00, 0x00,  // port
      0xff, 0xff, 0xff, 0xff,  // -EPERM
      0x10, 0x00, 0x00, 0x00,  // echoed header
      0x00, 0x00, 0x00, 0x00,  //
      0x01, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x08, 0x00, 0x01, 0x00,  // rta_len 8, NLMSGERR_ATTR_MSG
      'n',  'o',  'p',  'e',   // no terminator
  });
  CHECK(nl::parse_ack(parse(ack)).value() == nl::Ack{.error = EPERM, .message = "nope"});
}

TEST_CASE("netlink: two messages in one datagram are split at the padded length", "[netlink]") {
  const auto datagram = bytes({
      0x15, 0x00, 0x00, 0x00,  // nlmsg_len 21 (padded to 24)
      0x03, 0x00, 0x00, 0x00,  // NLMSG_DONE
      0x01, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0xaa, 0x00, 0x00, 0x00,  // 5 payload bytes, 3 padding
      0x00, 0x00, 0x00, 0x00,  //
      0x10, 0x00, 0x00, 0x00,  // second message: nlmsg_len 16, no payload
      0x01, 0x00, 0x00, 0x00,  // NLMSG_NOOP
      0x02, 0x00, 0x00, 0x00,  // seq 2
      0x00, 0x00, 0x00, 0x00,  //
  });
  const auto first = parse(datagram);
  CHECK(first.payload.size() == 5);
  CHECK(first.size == 24);
  const auto second = nl::parse_message(std::span{datagram}.subspan(first.size)).value();
  CHECK(second.header.seq == 2);
  CHECK(second.payload.empty());
  CHECK(second.size == 16);
}

TEST_CASE("netlink: a link reply gives index, flags, name, MTU and operational state",
          "[netlink]") {
  const auto reply = bytes({
      0x3c, 0x00, 0x00, 0x00,  // nlmsg_len 60
      0x10, 0x00, 0x00, 0x00,  // RTM_NEWLINK
      0x0a, 0x00, 0x00, 0x00,  // seq
      0x39, 0x30, 0x00, 0x00,  // port
      0x00, 0x00, 0xfe, 0xff,  // AF_UNSPEC, pad, ARPHRD_NONE (0xfffe)
      0x2a, 0x00, 0x00, 0x00,  // index 42
      0xd1, 0x10, 0x01, 0x00,  // flags UP|POINTOPOINT|RUNNING|NOARP|MULTICAST|LOWER_UP
      0x00, 0x00, 0x00, 0x00,  // change
      0x09, 0x00, 0x03, 0x00,  // rta_len 9, IFLA_IFNAME
      't',  'u',  'n',  '0',   //
      0x00, 0x00, 0x00, 0x00,  // NUL, padding
      0x08, 0x00, 0x04, 0x00,  // rta_len 8, IFLA_MTU
      0xdc, 0x05, 0x00, 0x00,  // 1500
      0x05, 0x00, 0x10, 0x00,  // rta_len 5, IFLA_OPERSTATE (16)
      0x06, 0x00, 0x00, 0x00,  // IF_OPER_UP, padding
  });
  const auto link = nl::parse_link(parse(reply)).value();
  CHECK(link.index == 42);
  CHECK(link.flags == 0x110d1);
  CHECK(link.name == "tun0");
  CHECK(link.mtu == 1500);
  CHECK(link.operstate == nl::kOperUp);
}

TEST_CASE("netlink: route get asks for one full-length destination", "[netlink]") {
  const auto expected4 = bytes({
      0x24, 0x00, 0x00, 0x00,  // nlmsg_len 36
      0x1a, 0x00, 0x05, 0x00,  // RTM_GETROUTE (26), REQUEST|ACK
      0x16, 0x00, 0x00, 0x00,  // seq 22
      0x00, 0x00, 0x00, 0x00,  // pid
      0x02, 0x20, 0x00, 0x00,  // AF_INET, dst_len 32
      0x00, 0x00, 0x00, 0x00,  // table, protocol, scope, type: unspecified
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x01, 0x00,  // RTA_DST
      0xc6, 0x33, 0x64, 0x07,  // 198.51.100.7
  });
  CHECK(nl::route_get(22, v4("198.51.100.7")) == expected4);
  const auto expected6 = bytes({
      0x30, 0x00, 0x00, 0x00,  // nlmsg_len 48
      0x1a, 0x00, 0x05, 0x00,  // RTM_GETROUTE, REQUEST|ACK
      0x17, 0x00, 0x00, 0x00,  // seq 23
      0x00, 0x00, 0x00, 0x00,  // pid
      0x0a, 0x80, 0x00, 0x00,  // AF_INET6, dst_len 128
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x14, 0x00, 0x01, 0x00,  // RTA_DST
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8::7
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x07,  //
  });
  CHECK(nl::route_get(23, v6("2001:db8::7")) == expected6);
}

TEST_CASE("netlink: a route message gives type, table, destination and device", "[netlink]") {
  const auto reply = bytes({
      0x40, 0x00, 0x00, 0x00,  // nlmsg_len 64
      0x18, 0x00, 0x00, 0x00,  // RTM_NEWROUTE (a notification: seq 0, port 0)
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x0a, 0x80, 0x00, 0x00,  // AF_INET6, dst_len 128
      0xff, 0x02, 0x00, 0x02,  // table local (255), RTPROT_KERNEL, universe, RTN_LOCAL (2)
      0x00, 0x00, 0x00, 0x00,  // rtm_flags
      0x08, 0x00, 0x0f, 0x00,  // RTA_TABLE
      0xff, 0x00, 0x00, 0x00,  // 255
      0x14, 0x00, 0x01, 0x00,  // RTA_DST
      0x20, 0x01, 0x0d, 0xb8,  // 2001:db8:1::1
      0x00, 0x01, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x00,  //
      0x00, 0x00, 0x00, 0x01,  //
      0x08, 0x00, 0x04, 0x00,  // RTA_OIF
      0x02, 0x00, 0x00, 0x00,  // 2
  });
  const auto route = nl::parse_route(parse(reply)).value();
  CHECK(route.family == 10);
  CHECK(route.dst_len == 128);
  CHECK(route.type == 2);
  CHECK(route.protocol == 2);
  CHECK(route.table == 255);
  CHECK(route.oif == std::optional<std::uint32_t>{2});
  const auto a = v6("2001:db8:1::1").bytes();
  CHECK(route.destination == std::vector<std::uint8_t>(a.begin(), a.end()));
}

TEST_CASE("netlink: attributes are split at their padded lengths, flags stripped", "[netlink]") {
  const auto area = bytes({
      0x05, 0x00, 0x10, 0x00,  // rta_len 5, type 16
      0x06, 0x00, 0x00, 0x00,  // 1 byte, padding
      0x0c, 0x00, 0x12, 0x80,  // rta_len 12, type 18 | NLA_F_NESTED
      0x01, 0x02, 0x03, 0x04,  //
      0x05, 0x06, 0x07, 0x08,  //
      0x04, 0x00, 0x01, 0x40,  // rta_len 4 (empty), type 1 | NLA_F_NET_BYTEORDER
  });
  const auto attributes = nl::parse_attributes(area).value();
  REQUIRE(attributes.size() == 3);
  CHECK(attributes[0].type == 16);
  CHECK(attributes[0].payload.size() == 1);
  CHECK(attributes[1].type == 18);
  CHECK(attributes[1].payload.size() == 8);
  CHECK(attributes[2].type == 1);
  CHECK(attributes[2].payload.empty());
  CHECK(nl::parse_attributes({}).value().empty());
}

// --- Hostile and truncated replies: each gives an error, never a read past the bytes.

TEST_CASE("netlink: hostile message headers give clean errors", "[netlink]") {
  // Fewer bytes than a header.
  CHECK(nl::parse_message(bytes({0x10, 0x00, 0x00, 0x00, 0x02, 0x00})).error() ==
        Errc::NetlinkTruncated);
  CHECK(nl::parse_message({}).error() == Errc::NetlinkTruncated);
  // A length smaller than the header itself (would loop forever if trusted).
  CHECK(nl::parse_message(bytes({0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00}))
            .error() == Errc::NetlinkMalformed);
  // A length beyond the datagram.
  CHECK(nl::parse_message(bytes({0xc8, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00}))
            .error() == Errc::NetlinkTruncated);
  CHECK(nl::parse_message(bytes({0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00}))
            .error() == Errc::NetlinkTruncated);
}

TEST_CASE("netlink: hostile acks give clean errors", "[netlink]") {
  // A header, then the given nlmsgerr bytes; flags as given.
  auto ack = [](int flags, std::vector<std::byte> body) {
    const auto len = static_cast<int>(16 + body.size());
    return bytes({len, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, flags, 0x01, 0x00, 0x00, 0x00, 0x00,
                  0x00, 0x00, 0x00}) +
           body;
  };
  const auto echoed = bytes({0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00});

  SECTION("nlmsgerr shorter than error + header") {
    CHECK(nl::parse_ack(parse(ack(0x01, bytes({0x00, 0x00, 0x00, 0x00, 0x10, 0x00})))).error() ==
          Errc::NetlinkTruncated);
  }
  SECTION("another message type is not an ack") {
    auto m = parse(ack(0x01, bytes({0, 0, 0, 0}) + echoed));
    m.header.type = 16;
    CHECK(nl::parse_ack(m).error() == Errc::NetlinkMalformed);
  }
  SECTION("a positive error") {
    CHECK(nl::parse_ack(parse(ack(0x01, bytes({0x05, 0x00, 0x00, 0x00}) + echoed))).error() ==
          Errc::NetlinkMalformed);
  }
  SECTION("an error beyond the errno range (INT_MIN must not be negated)") {
    CHECK(nl::parse_ack(parse(ack(0x01, bytes({0x00, 0x00, 0x00, 0x80}) + echoed))).error() ==
          Errc::NetlinkMalformed);
  }
  SECTION("an uncapped echo claiming more than is there") {
    CHECK(nl::parse_ack(
              parse(ack(0x00, bytes({0xea, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10, 0x00,
                                     0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}))))
              .error() == Errc::NetlinkTruncated);
  }
  SECTION("an uncapped echo shorter than a header") {
    CHECK(nl::parse_ack(
              parse(ack(0x00, bytes({0xea, 0xff, 0xff, 0xff, 0x04, 0x00, 0x00, 0x00, 0x10, 0x00,
                                     0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}))))
              .error() == Errc::NetlinkMalformed);
  }
  SECTION("an attribute longer than what is left") {
    CHECK(
        nl::parse_ack(parse(ack(0x03, bytes({0xea, 0xff, 0xff, 0xff}) + echoed +
                                          bytes({0x64, 0x00, 0x01, 0x00, 'x', 0x00, 0x00, 0x00}))))
            .error() == Errc::NetlinkMalformed);
  }
  SECTION("an attribute length below its own header") {
    CHECK(nl::parse_ack(parse(ack(0x03, bytes({0xea, 0xff, 0xff, 0xff}) + echoed +
                                            bytes({0x02, 0x00, 0x01, 0x00}))))
              .error() == Errc::NetlinkMalformed);
  }
  SECTION("stray bytes after the attributes") {
    CHECK(nl::parse_ack(parse(ack(0x03, bytes({0xea, 0xff, 0xff, 0xff}) + echoed +
                                            bytes({0x05, 0x00, 0x01, 0x00, 'x', 0x00, 0x00, 0x00,
                                                   0x01, 0x00}))))
              .error() == Errc::NetlinkMalformed);
  }
}

TEST_CASE("netlink: hostile link and route messages give clean errors", "[netlink]") {
  auto message = [](int type, std::vector<std::byte> body) {
    const auto len = static_cast<int>(16 + body.size());
    return bytes({len, 0x00, 0x00, 0x00, type, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                  0x00, 0x00}) +
           body;
  };
  const auto ifinfo = bytes({0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00});
  const auto rtm = bytes({0x02, 0x20, 0x00, 0x00, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00});

  // Too short for the family header.
  CHECK(nl::parse_link(parse(message(0x10, bytes({0x00, 0x00, 0x00, 0x00, 0x05, 0x00})))).error() ==
        Errc::NetlinkTruncated);
  CHECK(nl::parse_route(parse(message(0x18, bytes({0x02, 0x20})))).error() ==
        Errc::NetlinkTruncated);
  // The wrong message type.
  CHECK(nl::parse_link(parse(message(0x18, ifinfo))).error() == Errc::NetlinkMalformed);
  CHECK(nl::parse_route(parse(message(0x10, rtm))).error() == Errc::NetlinkMalformed);
  // A zero or negative interface index.
  CHECK(
      nl::parse_link(parse(message(0x10, bytes({0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
                                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}))))
          .error() == Errc::NetlinkMalformed);
  // An attribute running past the message.
  CHECK(nl::parse_link(
            parse(message(0x10, ifinfo + bytes({0x40, 0x00, 0x03, 0x00, 'x', 0x00, 0x00, 0x00}))))
            .error() == Errc::NetlinkMalformed);
  // Attributes of the wrong size for their type.
  CHECK(nl::parse_link(
            parse(message(0x10, ifinfo + bytes({0x06, 0x00, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00}))))
            .error() == Errc::NetlinkMalformed);
  CHECK(nl::parse_link(
            parse(message(0x10, ifinfo + bytes({0x08, 0x00, 0x10, 0x00, 0x06, 0x00, 0x00, 0x00}))))
            .error() == Errc::NetlinkMalformed);
  CHECK(nl::parse_route(
            parse(message(0x18, rtm + bytes({0x07, 0x00, 0x01, 0x00, 0xc6, 0x33, 0x64, 0x00}))))
            .error() == Errc::NetlinkMalformed);
  CHECK(nl::parse_route(
            parse(message(0x18, rtm + bytes({0x05, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00}))))
            .error() == Errc::NetlinkMalformed);
}

TEST_CASE("netlink: an error reads as errno plus the kernel's text", "[netlink]") {
  const platform::NetlinkError e{platform::errno_code(ENODEV), "Nexthop device does not exist"};
  CHECK(e.to_string() == "No such device: Nexthop device does not exist");
  const platform::NetlinkError bare{platform::make_error_code(Errc::AckTimeout), ""};
  CHECK(bare.to_string() == "no netlink ack before the deadline");
  platform::NetlinkResult<int> r{e};
  CHECK_THROWS_WITH(r.value(), Catch::Contains("Nexthop device does not exist") &&
                                   Catch::Contains("No such device"));
}
