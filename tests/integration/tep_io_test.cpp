// Privileged tests of tep_io between lab namespaces: IPv4-in-IPv6 packets over raw IPv6 sockets
// across a veth (header rebuilt from ancillary data, batches, address filtering, sizes, refusals)
// and a TUN port carrying IPv4 both ways.
#include "tep_io/packet_io.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "core/udp.hpp"
#include "platform/bind.hpp"
#include "platform/netlink.hpp"
#include "support/lab.hpp"
#include "support/packet_builder.hpp"

namespace {

using test::await_readable;
using test::v4;
using test::v6;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Packet = std::vector<std::byte>;
using tep::io::PacketBatch;
using tep::io::TunnelPort;
using tep::io::TunPort;
namespace nl = platform::netlink;

constexpr const char* kA = "2001:db8:1::1";
constexpr const char* kB = "2001:db8:1::2";
constexpr const char* kB3 = "2001:db8:1::3";
constexpr std::uint8_t kEct0 = 2;
constexpr std::uint8_t kEct1 = 1;
constexpr std::uint8_t kCe = 3;

// An IPv4 UDP packet carrying `text`, the inner packet of the tunnel tests.
Packet inner(const std::string& text) {
  return test::PacketBuilder{}
      .ipv4("198.51.100.1", "192.0.2.9")
      .udp(5000, 53)
      .payload(text)
      .bytes();
}

// Copies of the packets receive() returns, with the number of receive() calls that returned any.
struct Received {
  std::vector<Packet> packets;
  std::vector<std::size_t> per_call;
};

// Receives from `port` until `count` packets came or the timeout passed.
Received receive_packets(TunnelPort& port, PacketBatch& batch, std::size_t count,
                         std::chrono::milliseconds timeout = 3s) {
  Received out;
  const auto deadline = Clock::now() + timeout;
  while (out.packets.size() < count && await_readable(port.receive_handle(), deadline)) {
    const auto n = port.receive(batch);
    REQUIRE(n);
    if (*n == 0) continue;
    REQUIRE(batch.size() == *n);
    out.per_call.push_back(*n);
    for (std::size_t i = 0; i < *n; ++i) {
      CHECK(batch.offset(i) == 0);
      const auto p = batch.packet(i);
      out.packets.emplace_back(p.begin(), p.end());
    }
  }
  return out;
}

// Two namespaces on one veth, with a tunnel port on each end.
struct VethLab {
  test::Lab lab{R"(
    netns a
    netns b
    veth a:eth0 b:eth0
    addr a eth0 2001:db8:1::1/64
    addr b eth0 2001:db8:1::2/64
  )"};
  TunnelPort a = lab.enter("a", [] { return TunnelPort::open({.local = v6(kA)}).value(); });
  TunnelPort b = lab.enter("b", [] { return TunnelPort::open({.local = v6(kB)}).value(); });
  PacketBatch batch{16};

  // One packet each way first, so that neighbour discovery is done before the tests' own
  // packets (an unresolved neighbour queues only a few of them).
  VethLab() {
    const auto ab = test::PacketBuilder{}.ipv6(kA, kB, 4).raw(inner("prime")).bytes();
    const auto ba = test::PacketBuilder{}.ipv6(kB, kA, 4).raw(inner("prime")).bytes();
    REQUIRE(a.send(ab));
    REQUIRE(receive_packets(b, batch, 1).packets == std::vector<Packet>{ab});
    REQUIRE(b.send(ba));
    REQUIRE(receive_packets(a, batch, 1).packets == std::vector<Packet>{ba});
  }
};

std::vector<core::Bytes> views(const std::vector<Packet>& packets) {
  return {packets.begin(), packets.end()};
}

// A UDP socket bound in the namespace the calling thread is in.
platform::Fd udp_socket(core::Ipv4Address address) {
  platform::Fd s{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  REQUIRE(s.valid());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(address.to_uint());
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0);
  return s;
}

std::uint16_t local_port(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  return ntohs(sa.sin_port);
}

}  // namespace

TEST_CASE("tep_io: the receiver rebuilds the IPv6 header as it was on the wire", "[tep_io]") {
  VethLab t;
  struct Row {
    std::uint8_t dscp;
    std::uint8_t ecn;
    std::uint8_t hop_limit;
  };
  const std::vector<Row> table{
      {46, kEct0, 64}, {0, kCe, 1}, {63, kEct1, 255}, {10, 0, 64}, {0, 0, 2}};

  std::vector<Packet> sent;
  std::vector<Packet> expected;
  for (std::size_t i = 0; i < table.size(); ++i) {
    const auto& row = table[i];
    const auto payload = inner("row " + std::to_string(i));
    // Sent with a flow label, which the receiver cannot see and rebuilds as 0.
    sent.push_back(test::PacketBuilder{}
                       .ipv6(kA, kB, 4)
                       .dscp(row.dscp)
                       .ecn(row.ecn)
                       .ttl(row.hop_limit)
                       .flow_label(0x12345)
                       .raw(payload)
                       .bytes());
    expected.push_back(test::PacketBuilder{}
                           .ipv6(kA, kB, 4)
                           .dscp(row.dscp)
                           .ecn(row.ecn)
                           .ttl(row.hop_limit)
                           .raw(payload)
                           .bytes());
  }
  const auto packets = views(sent);
  REQUIRE(t.a.send(packets).value() == sent.size());

  const auto got = receive_packets(t.b, t.batch, sent.size());
  REQUIRE(got.packets.size() == sent.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    INFO("row " << i);
    CHECK(got.packets[i] == expected[i]);
    const auto ip = core::parse_ipv6(got.packets[i]).value();
    CHECK(ip.header.src == v6(kA));
    CHECK(ip.header.dst == v6(kB));
    CHECK(ip.header.traffic_class == ((table[i].dscp << 2) | table[i].ecn));
    CHECK(ip.header.hop_limit == table[i].hop_limit);  // same link: not decremented
    CHECK(ip.header.flow_label == 0);
    CHECK(ip.header.next_header == 4);
    CHECK(ip.payload_length == got.packets[i].size() - 40);
    CHECK(core::parse_ipv4(ip.payload).value().checksum_ok());
  }
  CHECK(t.b.truncated() == 0);
  CHECK(t.b.receive(t.batch).value() == 0);  // nothing more
  CHECK(t.batch.size() == 0);
}

TEST_CASE("tep_io: a batch of 50 sent with one call arrives in order, several per receive",
          "[tep_io]") {
  VethLab t;
  std::vector<Packet> sent;
  for (int i = 0; i < 50; ++i)
    sent.push_back(test::PacketBuilder{}
                       .ipv6(kA, kB, 4)
                       .raw(inner("packet " + std::to_string(i) +
                                  std::string(static_cast<std::size_t>(i * 20), 'x')))
                       .bytes());
  const auto packets = views(sent);
  REQUIRE(t.a.send(packets).value() == sent.size());

  const auto got = receive_packets(t.b, t.batch, sent.size());
  CHECK(got.packets == sent);
  INFO("packets per receive call: " << Catch::Detail::stringify(got.per_call));
  CHECK(*std::max_element(got.per_call.begin(), got.per_call.end()) > 1);
  CHECK(*std::max_element(got.per_call.begin(), got.per_call.end()) <= t.batch.capacity());
  CHECK(t.b.truncated() == 0);
}

TEST_CASE("tep_io: a port receives only packets addressed to its bound address", "[tep_io]") {
  VethLab t;
  auto& netlink = t.lab.netlink("b");
  REQUIRE(netlink.add_address(t.lab.ifindex("b", "eth0"), v6(kB3), 64));
  t.lab.await_local_address("b", v6(kB3));

  // To ::3 first, then to ::2: b's port (bound to ::2) must see the second only, and first.
  const auto to3 = test::PacketBuilder{}.ipv6(kA, kB3, 4).raw(inner("to ::3")).bytes();
  const auto to2 = test::PacketBuilder{}.ipv6(kA, kB, 4).raw(inner("to ::2")).bytes();
  REQUIRE(t.a.send(to3));
  REQUIRE(t.a.send(to2));
  CHECK(receive_packets(t.b, t.batch, 1).packets == std::vector<Packet>{to2});
  CHECK(t.b.receive(t.batch).value() == 0);

  // A port bound to ::3 does get such packets, and b's port still does not.
  auto b3 = t.lab.enter("b", [] { return TunnelPort::open({.local = v6(kB3)}).value(); });
  REQUIRE(t.a.send(to3));
  CHECK(receive_packets(b3, t.batch, 1).packets == std::vector<Packet>{to3});
  CHECK(t.b.receive(t.batch).value() == 0);
}

TEST_CASE("tep_io: a port opens on an address still in duplicate address detection",
          "[tep_io]") {
  // A box's static address was just added when its TEP starts: bind() refuses it for a second or
  // two while it is tentative, and the TEP must not fail for that.
  VethLab t;
  constexpr const char* kFresh = "2001:db8:1::4";
  // The lab turns duplicate address detection off; a box has it on.
  const auto ns = t.lab.netns_name("b");
  const auto added = std::system(
      fmt::format("ip netns exec {0} sysctl -qw net.ipv6.conf.eth0.accept_dad=1 && "
                  "ip -n {0} addr add {1}/64 dev eth0",
                  ns, kFresh)
          .c_str());
  REQUIRE(added == 0);
  auto fresh = t.lab.enter("b", [&] {
    // The duplicate address detection takes at least a second: still running here.
    const auto fresh_address = v6(kFresh);
    platform::Ipv6Bytes bytes{};
    std::memcpy(bytes.data(), fresh_address.bytes().data(), bytes.size());
    REQUIRE(platform::ipv6_tentative(bytes));
    return TunnelPort::open({.local = v6(kFresh)});
  });
  REQUIRE(fresh);
  t.lab.await_local_address("b", v6(kFresh), 10s);
  const auto packet = test::PacketBuilder{}.ipv6(kA, kFresh, 4).raw(inner("fresh")).bytes();
  REQUIRE(t.a.send(packet));
  CHECK(receive_packets(*fresh, t.batch, 1).packets == std::vector<Packet>{packet});
}

TEST_CASE("tep_io: the kernel consumes extension headers and reassembles fragments", "[tep_io]") {
  VethLab t;
  const auto payload = inner(std::string(1200, 'f'));
  const auto plain = test::PacketBuilder{}.ipv6(kA, kB, 4).raw(payload).bytes();

  // A destination options header before the IPv4 packet: the raw socket gets what follows it,
  // so the rebuilt packet is the plain one.
  const auto with_options = test::PacketBuilder{}
                                .ipv6(kA, kB)
                                .destination_options()
                                .ipv4("198.51.100.1", "192.0.2.9")
                                .udp(5000, 53)
                                .payload(std::string(1200, 'f'))
                                .bytes();
  REQUIRE(with_options.size() == plain.size() + 8);
  REQUIRE(t.a.send(with_options));
  CHECK(receive_packets(t.b, t.batch, 1).packets == std::vector<Packet>{plain});

  // Two fragments (RFC 8200 §4.5) of one packet: the port gets it once, reassembled. The
  // builder gives a fragment header followed by raw bytes next header 59; byte 40 makes it 4.
  const auto fragment = [&](std::uint16_t offset_units, bool more, core::Bytes part) {
    auto p =
        test::PacketBuilder{}.ipv6(kA, kB).fragment(offset_units, more, 0x1234).raw(part).bytes();
    p[40] = std::byte{4};
    return p;
  };
  const auto all = core::Bytes{payload};
  const std::vector<Packet> fragments{fragment(0, true, all.first(1024)),
                                      fragment(1024 / 8, false, all.subspan(1024))};
  const auto packets = views(fragments);
  REQUIRE(t.a.send(packets).value() == 2);
  CHECK(receive_packets(t.b, t.batch, 1).packets == std::vector<Packet>{plain});
  CHECK(t.b.receive(t.batch).value() == 0);
}

TEST_CASE("tep_io: a packet of 65535 bytes arrives whole", "[tep_io]") {
  VethLab t;
  for (const char* ns : {"a", "b"})
    REQUIRE(t.lab.netlink(ns).set_mtu(t.lab.ifindex(ns, "eth0"), 65535));

  // An inner IPv4 packet of 65495 bytes: the outer one is the largest IPv6 packet there is
  // without a jumbogram, and frames are big enough for it.
  const auto big = test::PacketBuilder{}
                       .ipv6(kA, kB, 4)
                       .raw(test::PacketBuilder{}
                                .ipv4("198.51.100.1", "192.0.2.9")
                                .udp(5000, 53)
                                .payload(std::string(65495 - 28, 'z'))
                                .bytes())
                       .bytes();
  REQUIRE(big.size() == 65535);
  REQUIRE(t.a.send(big));
  const auto got = receive_packets(t.b, t.batch, 1);
  REQUIRE(got.packets.size() == 1);
  CHECK(got.packets[0] == big);
  CHECK(t.b.truncated() == 0);
}

TEST_CASE("tep_io: malformed and oversized packets are errors for themselves only", "[tep_io]") {
  VethLab t;
  const auto einval = platform::errno_code(EINVAL);
  const auto good = test::PacketBuilder{}.ipv6(kA, kB, 4).raw(inner("good")).bytes();
  auto wrong_version = good;
  wrong_version[0] = std::byte{0x45};
  const Packet short_packet(good.begin(), good.begin() + 39);
  const Packet empty;

  CHECK(t.a.send(core::Bytes{empty}).error() == einval);
  CHECK(t.a.send(core::Bytes{short_packet}).error() == einval);
  CHECK(t.a.send(core::Bytes{wrong_version}).error() == einval);

  // Over the veth's MTU (1500): the kernel refuses it.
  const auto too_big =
      test::PacketBuilder{}.ipv6(kA, kB, 4).raw(inner(std::string(1500, 'b'))).bytes();
  CHECK(t.a.send(core::Bytes{too_big}).error() == platform::errno_code(EMSGSIZE));

  // In a batch, a bad packet ends the call before it; retried from there, it is the error.
  const std::vector<core::Bytes> mixed{good, short_packet, good, too_big, good};
  auto rest = std::span<const core::Bytes>{mixed};
  CHECK(t.a.send(rest).value() == 1);
  rest = rest.subspan(1);
  CHECK(t.a.send(rest).error() == einval);
  rest = rest.subspan(1);
  CHECK(t.a.send(rest).value() == 1);  // sendmmsg stops at too_big and keeps its error to itself
  rest = rest.subspan(1);
  CHECK(t.a.send(rest).error() == platform::errno_code(EMSGSIZE));
  rest = rest.subspan(1);
  CHECK(t.a.send(rest).value() == 1);
  CHECK(t.a.send(std::span<const core::Bytes>{}).value() == 0);

  CHECK(receive_packets(t.b, t.batch, 3).packets == std::vector<Packet>{good, good, good});
  CHECK(t.b.receive(t.batch).value() == 0);
}

TEST_CASE("tep_io: tunnel ports refuse bad options and addresses that are not local", "[tep_io]") {
  test::Lab lab{"netns a\naddr a lo 2001:db8:1::1/128"};
  const auto einval = platform::errno_code(EINVAL);
  lab.enter("a", [&] {
    CHECK(TunnelPort::open({}).error() == einval);
    CHECK(TunnelPort::open({.local = v6("ff02::1")}).error() == einval);
    CHECK(TunnelPort::open({.local = v6("fe80::1")}).error() == einval);
    CHECK(TunnelPort::open({.local = v6(kA), .receive_buffer = 0}).error() == einval);
    CHECK(TunnelPort::open({.local = v6(kB)}).error() == platform::errno_code(EADDRNOTAVAIL));
    auto port = TunnelPort::open({.local = v6(kA)});
    REQUIRE(port);
    CHECK(port->local() == v6(kA));
    // As root (CAP_NET_ADMIN) the buffers are forced past net.core.rmem_max / wmem_max; the
    // kernel reports twice the size asked for (its bookkeeping overhead).
    for (const auto& [fd, option] : {std::pair{port->receive_handle(), SO_RCVBUF},
                                     std::pair{port->send_handle(), SO_SNDBUF}}) {
      int size = 0;
      socklen_t len = sizeof(size);
      REQUIRE(::getsockopt(fd, SOL_SOCKET, option, &size, &len) == 0);
      CHECK(size >= 4 * 1024 * 1024);
    }
    CHECK(port->receive_handle() != port->send_handle());
    PacketBatch empty{0};
    CHECK(port->receive(empty).value() == 0);
  });
}

TEST_CASE("tep_io: a TUN port carries IPv4 both ways", "[tep_io]") {
  // IPv6 off on new links: no router solicitations or MLD reports on the TUN device.
  test::Lab lab{"netns a\nsysctl a net.ipv6.conf.default.disable_ipv6=1"};
  auto tun = lab.enter("a", [] { return platform::TunDevice::open({.name = "tep0"}).value(); });
  auto& netlink = lab.netlink("a");
  REQUIRE(netlink.set_link_up(tun.ifindex()));
  REQUIRE(netlink.add_address(tun.ifindex(), v4("192.0.2.1"), 24));
  REQUIRE(netlink.add_route(
      nl::Ipv4Route{.destination = core::Ipv4Prefix::parse("198.51.100.0/24").value(),
                    .gateway = {},
                    .oif = tun.ifindex(),
                    .table = nl::kMainTable,
                    .metric = {}}));
  TunPort port{tun.release()};
  PacketBatch batch{8};
  CHECK(port.receive(batch).value() == 0);

  // Out of the namespace into the TUN device: three datagrams, received in one call.
  auto local = lab.enter("a", [] { return udp_socket(v4("192.0.2.1")); });
  const std::uint16_t port_number = local_port(local.get());
  sockaddr_in far{};
  far.sin_family = AF_INET;
  far.sin_port = htons(9);
  far.sin_addr.s_addr = htonl(v4("198.51.100.7").to_uint());
  const std::vector<std::string> texts{"one", "two", "three"};
  for (const auto& text : texts)
    REQUIRE(::sendto(local.get(), text.data(), text.size(), 0,
                     reinterpret_cast<const sockaddr*>(&far),
                     sizeof(far)) == static_cast<ssize_t>(text.size()));

  REQUIRE(await_readable(port.native_handle(), Clock::now() + 3s));
  REQUIRE(port.receive(batch).value() == texts.size());
  REQUIRE(batch.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    INFO("datagram " << i);
    CHECK(batch.offset(i) == tep::io::kHeadroom);
    const auto ip = core::parse_ipv4(batch.packet(i)).value();
    CHECK(ip.packet.size() == batch.length(i));
    CHECK(ip.checksum_ok());
    CHECK(ip.header.src == v4("192.0.2.1"));
    CHECK(ip.header.dst == v4("198.51.100.7"));
    REQUIRE(ip.header.protocol == 17);
    const auto udp = core::parse_udp(ip.payload).value();
    CHECK(core::udp_checksum_ok(udp, ip.header.src, ip.header.dst));
    CHECK(udp.header.src_port == port_number);
    CHECK(udp.header.dst_port == 9);
    CHECK(std::string(reinterpret_cast<const char*>(udp.payload.data()), udp.payload.size()) ==
          texts[i]);
  }
  CHECK(port.receive(batch).value() == 0);

  // From the TUN device into the namespace: the local socket gets the answer.
  const auto answer = test::PacketBuilder{}
                          .ipv4("198.51.100.7", "192.0.2.1")
                          .udp(9, port_number)
                          .payload("answer")
                          .bytes();
  REQUIRE(port.send(answer));
  REQUIRE(await_readable(local.get(), Clock::now() + 3s));
  std::array<char, 64> buf{};
  sockaddr_in from{};
  socklen_t from_len = sizeof(from);
  const ssize_t n = ::recvfrom(local.get(), buf.data(), buf.size(), 0,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
  REQUIRE(n == 6);
  CHECK(std::string(buf.data(), 6) == "answer");
  CHECK(ntohl(from.sin_addr.s_addr) == v4("198.51.100.7").to_uint());
  CHECK(ntohs(from.sin_port) == 9);

  // What the device refuses is an error for that packet.
  CHECK_FALSE(port.send(Packet{}));
  CHECK(port.send(test::bytes({0x00, 0x01, 0x02, 0x03})).error() == platform::errno_code(EINVAL));
  REQUIRE(port.send(answer));  // and the port still works
  REQUIRE(await_readable(local.get(), Clock::now() + 3s));
  CHECK(::recv(local.get(), buf.data(), buf.size(), 0) == 6);
}
