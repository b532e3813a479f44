// Privileged tests of platform::TunDevice and platform::NetlinkClient in a lab namespace: ping
// through a TUN device answered by the test itself, address/route/MTU changes seen by the kernel,
// and the kernel's extended-ack errors.
#include "platform/tun.hpp"

#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "platform/netlink.hpp"
#include "support/lab.hpp"
#include "support/packet_builder.hpp"

namespace {

using test::v4;
using test::v6;

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Packet = std::vector<std::byte>;
namespace nl = platform::netlink;

core::Ipv4Prefix p4(const char* s) {
  return core::Ipv4Prefix::parse(s).value();
}
core::Ipv6Prefix p6(const char* s) {
  return core::Ipv6Prefix::parse(s).value();
}

template <typename T>
void require_ok(const platform::NetlinkResult<T>& r) {
  INFO((r ? std::string{"ok"} : r.error().to_string()));
  REQUIRE(r.has_value());
}

// Reads TUN packets until one satisfies `wanted` or the timeout passes. Others (IPv6 router
// solicitations, MLD reports the kernel sends when the link comes up) are skipped, at most 64.
template <typename Wanted>
std::optional<Packet> await_packet(int fd, std::chrono::milliseconds timeout, Wanted wanted) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Packet buf(65536);
  for (int seen = 0; seen < 64;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      REQUIRE((errno == EAGAIN || errno == EINTR));
      continue;
    }
    ++seen;
    Packet packet(buf.begin(), buf.begin() + n);
    if (wanted(packet)) return packet;
  }
  return std::nullopt;
}

void write_packet(int fd, const Packet& p) {
  REQUIRE(::write(fd, p.data(), p.size()) == static_cast<ssize_t>(p.size()));
}

bool is_icmpv4_echo_request(const Packet& p) {
  auto ip = core::parse_ipv4(p);
  if (!ip || ip->header.protocol != 1) return false;
  auto icmp = core::parse_icmpv4(ip->payload);
  return icmp && icmp->type == core::icmpv4_type::kEchoRequest;
}

bool is_icmpv6_echo_request(const Packet& p) {
  auto ip = core::parse_ipv6(p);
  if (!ip || ip->upper_protocol != 58) return false;
  auto icmp = core::parse_icmpv6(ip->upper_layer());
  return icmp && icmp->type == core::icmpv6_type::kEchoRequest;
}

// A lab namespace holding an up TUN device named tun0.
struct TunLab {
  test::Lab lab{"netns a"};
  platform::TunDevice tun =
      lab.enter("a", [] { return platform::TunDevice::open({.name = "tun0"}).value(); });
  platform::NetlinkClient& netlink = lab.netlink("a");

  TunLab() { require_ok(netlink.set_link_up(tun.ifindex())); }
  std::string ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = lab.run("a", argv, 5s);
    INFO(r.output);
    REQUIRE(r.ok());
    return r.output;
  }
};

}  // namespace

TEST_CASE("tun: ping over IPv4 through the TUN device is answered by the test", "[tun]") {
  TunLab t;
  CHECK(t.tun.name() == "tun0");
  CHECK(t.netlink.link_index("tun0").value() == t.tun.ifindex());
  require_ok(t.netlink.add_address(t.tun.ifindex(), v4("192.0.2.1"), 24));
  require_ok(t.netlink.add_route(nl::Ipv4Route{.destination = p4("198.51.100.0/24"),
                                               .gateway = {},
                                               .oif = t.tun.ifindex(),
                                               .table = nl::kMainTable,
                                               .metric = {}}));

  auto ping = t.lab.spawn("a", {"ping", "-n", "-c", "1", "-W", "2", "198.51.100.7"});
  const auto request = await_packet(t.tun.native_handle(), 3s, is_icmpv4_echo_request);
  REQUIRE(request);
  const auto ip = core::parse_ipv4(*request).value();
  CHECK(ip.header.src == v4("192.0.2.1"));
  CHECK(ip.header.dst == v4("198.51.100.7"));
  CHECK(ip.checksum_ok());
  const auto icmp = core::parse_icmpv4(ip.payload).value();
  CHECK(core::icmpv4_checksum_ok(icmp));

  write_packet(t.tun.native_handle(),
               test::PacketBuilder{}
                   .ipv4("198.51.100.7", "192.0.2.1")
                   .icmpv4_echo(icmp.echo_id(), icmp.echo_sequence(), core::EchoKind::reply)
                   .payload(icmp.body)
                   .bytes());
  const auto result = ping.wait(5s);
  INFO(result.output);
  CHECK(result.ok());
  CHECK_THAT(result.output, Contains("1 received"));
}

TEST_CASE("tun: ping over IPv6 through the TUN device is answered by the test", "[tun]") {
  TunLab t;
  require_ok(t.netlink.add_address(t.tun.ifindex(), v6("2001:db8:1::1"), 64));
  require_ok(t.netlink.add_route(nl::Ipv6Route{.destination = p6("2001:db8:2::/64"),
                                               .gateway = {},
                                               .oif = t.tun.ifindex(),
                                               .table = nl::kMainTable,
                                               .metric = {}}));
  // The kernel installs an IPv6 address's local route after its ack; until then the reply below
  // would be dropped as not ours.
  t.lab.await_local_address("a", v6("2001:db8:1::1"));

  auto ping = t.lab.spawn("a", {"ping", "-6", "-n", "-c", "1", "-W", "2", "2001:db8:2::7"});
  const auto request = await_packet(t.tun.native_handle(), 3s, is_icmpv6_echo_request);
  REQUIRE(request);
  const auto ip = core::parse_ipv6(*request).value();
  CHECK(ip.header.src == v6("2001:db8:1::1"));
  CHECK(ip.header.dst == v6("2001:db8:2::7"));
  const auto icmp = core::parse_icmpv6(ip.upper_layer()).value();
  CHECK(core::icmpv6_checksum_ok(icmp, ip.header.src, ip.header.dst));

  write_packet(t.tun.native_handle(),
               test::PacketBuilder{}
                   .ipv6("2001:db8:2::7", "2001:db8:1::1")
                   .icmpv6_echo(icmp.echo_id(), icmp.echo_sequence(), core::EchoKind::reply)
                   .payload(icmp.body)
                   .bytes());
  const auto result = ping.wait(5s);
  INFO(result.output);
  CHECK(result.ok());
  CHECK_THAT(result.output, Contains("1 received"));
}

TEST_CASE("tun: requests naming a nonexistent interface fail with errno and kernel text", "[tun]") {
  test::Lab lab{"netns a\nnetns b\nveth a:eth0 b:eth0\naddr a eth0 192.0.2.1/24"};
  auto& netlink = lab.netlink("a");
  constexpr std::uint32_t kNoSuchIndex = 99999;

  // A device route via a missing ifindex: ENODEV. Kernel 6.18 attaches no text on this path
  // (fib_check_nh_nongw), so only the errno is checked; any text would be passed through.
  const auto direct = netlink.add_route(nl::Ipv4Route{.destination = p4("198.51.100.0/24"),
                                                      .gateway = {},
                                                      .oif = kNoSuchIndex,
                                                      .table = nl::kMainTable,
                                                      .metric = {}});
  REQUIRE_FALSE(direct);
  CHECK(direct.error().code == platform::errno_code(ENODEV));

  // Via a gateway and a missing ifindex: the kernel explains in its extended ack.
  const auto via = netlink.add_route(nl::Ipv4Route{.destination = p4("198.51.100.0/24"),
                                                   .gateway = v4("192.0.2.2"),
                                                   .oif = kNoSuchIndex,
                                                   .table = nl::kMainTable,
                                                   .metric = {}});
  REQUIRE_FALSE(via);
  CHECK(via.error().code == platform::errno_code(ENETUNREACH));
  CHECK_THAT(via.error().kernel_message, Contains("invalid gateway"));
  CHECK_THAT(via.error().to_string(), Contains("Network is unreachable: Nexthop"));

  const auto address = netlink.add_address(kNoSuchIndex, v4("192.0.2.9"), 24);
  REQUIRE_FALSE(address);
  CHECK(address.error().code == platform::errno_code(ENODEV));
  CHECK_THAT(address.error().kernel_message, Contains("Device not found"));

  const auto mtu = netlink.set_mtu(lab.ifindex("a", "eth0"), 10);
  REQUIRE_FALSE(mtu);
  CHECK(mtu.error().code == platform::errno_code(EINVAL));
  CHECK_THAT(mtu.error().kernel_message, Contains("mtu"));

  // The same socket keeps working after errors.
  CHECK(netlink.link_index("lo").value() == 1);
  const auto missing = netlink.link_index("nosuchlink0");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == platform::errno_code(ENODEV));
  CHECK(netlink.link_index("a-name-far-too-long").error().code == platform::Errc::NameTooLong);
}

TEST_CASE("tun: addresses, routes and MTU change as the kernel reports them", "[tun]") {
  TunLab t;
  const auto index = t.tun.ifindex();
  require_ok(t.netlink.set_mtu(index, 1280));
  CHECK_THAT(t.ip({"-o", "link", "show", "dev", "tun0"}), Contains("mtu 1280"));

  require_ok(t.netlink.add_address(index, v4("203.0.113.1"), 24));
  require_ok(t.netlink.add_address(index, v6("2001:db8:9::1"), 64));
  const auto again = t.netlink.add_address(index, v4("203.0.113.1"), 24);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == platform::errno_code(EEXIST));
  auto addresses = t.ip({"-o", "address", "show", "dev", "tun0"});
  CHECK_THAT(addresses, Contains("203.0.113.1/24") && Contains("2001:db8:9::1/64"));

  const nl::Ipv4Route route{.destination = p4("198.51.100.0/24"),
                            .gateway = {},
                            .oif = index,
                            .table = 1000,
                            .metric = 42};
  const nl::Ipv6Route route6{.destination = p6("2001:db8:7::/48"),
                             .gateway = v6("2001:db8:9::2"),
                             .oif = index,
                             .table = 100,
                             .metric = {}};
  require_ok(t.netlink.add_route(route));
  require_ok(t.netlink.add_route(route6));
  CHECK_THAT(t.ip({"route", "show", "table", "1000"}),
             Contains("198.51.100.0/24 dev tun0 proto static scope link metric 42"));
  CHECK_THAT(t.ip({"-6", "route", "show", "table", "100"}),
             Contains("2001:db8:7::/48 via 2001:db8:9::2 dev tun0 proto static"));

  require_ok(t.netlink.delete_route(route));
  require_ok(t.netlink.delete_route(route6));
  CHECK(t.ip({"route", "show", "table", "1000"}).empty());
  CHECK(t.netlink.delete_route(route).error().code == platform::errno_code(ESRCH));

  require_ok(t.netlink.delete_address(index, v4("203.0.113.1"), 24));
  require_ok(t.netlink.delete_address(index, v6("2001:db8:9::1"), 64));
  addresses = t.ip({"-o", "address", "show", "dev", "tun0"});
  CHECK_THAT(addresses, !Contains("203.0.113.1") && !Contains("2001:db8:9::1"));

  require_ok(t.netlink.set_link_down(index));
  CHECK_THAT(t.ip({"-o", "link", "show", "dev", "tun0"}), !Contains(",UP"));
}

TEST_CASE("tun: multi-queue with virtio-net headers opens one fd per queue", "[tun]") {
  test::Lab lab{"netns a"};
  auto tun = lab.enter("a", [] {
    return platform::TunDevice::open({.name = "mq%d", .vnet_hdr = true, .queues = 3}).value();
  });
  CHECK(tun.name() == "mq0");
  CHECK(tun.vnet_hdr());
  REQUIRE(tun.queue_count() == 3);
  CHECK(tun.native_handle(0) != tun.native_handle(1));
  CHECK(tun.native_handle(1) != tun.native_handle(2));
  CHECK(lab.netlink("a").link_index("mq0").value() == tun.ifindex());

  // A released queue belongs to the caller (an Asio descriptor, say).
  platform::Fd q2 = tun.release(2);
  CHECK(q2.valid());
  CHECK(tun.native_handle(2) == -1);
}

TEST_CASE("tun: the kernel picks a name when none is given, bad options fail early", "[tun]") {
  test::Lab lab{"netns a"};
  const auto tun = lab.enter("a", [] { return platform::TunDevice::open({}).value(); });
  CHECK(tun.name().starts_with("tun"));
  CHECK(tun.ifindex() > 1);

  CHECK(platform::TunDevice::open({.name = "sixteen-bytes-xx"}).error() ==
        platform::Errc::NameTooLong);
  CHECK(platform::TunDevice::open({.name = "q", .queues = 0}).error() ==
        platform::errno_code(EINVAL));
}
