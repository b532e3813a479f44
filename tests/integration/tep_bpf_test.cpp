// Privileged tests of the tc-BPF 4over6 fast path (tep_bpf) between three lab namespaces: a
// DSTM client C (its TUN device holds the lease), a TEP T (the pool routed into its TUN device)
// and an IPv4 host H. Real packets both ways. The test plays user space: it holds both TUN
// devices and tunnel ports, so it sees every packet the programs leave to user space.
#include "tep_bpf/fast_path.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "platform/netlink.hpp"
#include "platform/tun.hpp"
#include "support/lab.hpp"
#include "support/packet_builder.hpp"
#include "tep/fourover6.hpp"
#include "tep_io/packet_io.hpp"

namespace {

using test::await_readable;
using test::v4;
using test::v6;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Packet = std::vector<std::byte>;
using tep::bpf::Attach;
using tep::bpf::BindingTraffic;
using tep::bpf::Counters;
using tep::bpf::FastPath;
using tep::bpf::FastPathConfig;
using tep::bpf::Role;
using tep::io::TunnelPort;
namespace nl = platform::netlink;

constexpr const char* kTepV6 = "2001:db8:1::1";
constexpr const char* kClientV6 = "2001:db8:1::2";
constexpr const char* kOtherClientV6 = "2001:db8:1::3";
constexpr const char* kLease = "192.0.2.10";
constexpr const char* kOtherLease = "192.0.2.11";
constexpr const char* kUnbound = "192.0.2.12";
constexpr const char* kKeepalive = "192.0.2.1";
constexpr const char* kHost = "203.0.113.2";
constexpr std::uint16_t kHostPort = 7000;
constexpr std::uint16_t kClientPort = 7001;
constexpr std::uint16_t kTcpPort = 7100;
constexpr std::uint8_t kEct0 = 2;
constexpr std::uint8_t kEct1 = 1;
constexpr std::uint8_t kCe = 3;

// Reads every packet waiting on a non-blocking fd (a TUN queue, a packet socket).
std::vector<Packet> drain(int fd) {
  std::vector<Packet> out;
  std::vector<std::byte> buffer(70000);
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) break;
    out.emplace_back(buffer.begin(), buffer.begin() + n);
  }
  return out;
}

// Waits for the first packet on a non-blocking fd, then takes what else is waiting.
std::vector<Packet> await_packets(int fd, std::chrono::milliseconds timeout = 3s) {
  if (!await_readable(fd, Clock::now() + timeout)) return {};
  return drain(fd);
}

sockaddr_in socket_address(core::Ipv4Address address, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(address.to_uint());
  return sa;
}

// A non-blocking socket of `type` bound to address:port, in the namespace of the calling thread.
platform::Fd inet_socket(int type, core::Ipv4Address address, std::uint16_t port) {
  platform::Fd s{::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  REQUIRE(s.valid());
  const int on = 1;
  REQUIRE(::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0);
  const auto sa = socket_address(address, port);
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0);
  return s;
}

void send_to(int fd, core::Ipv4Address address, std::uint16_t port, const std::string& text) {
  const auto sa = socket_address(address, port);
  REQUIRE(::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<const sockaddr*>(&sa),
                   sizeof(sa)) == static_cast<ssize_t>(text.size()));
}

// A datagram and the TOS byte it arrived with (IP_RECVTOS).
struct Datagram {
  std::string text;
  int tos = -1;
};

// Receives one datagram within the timeout.
std::optional<Datagram> receive(int fd, std::chrono::milliseconds timeout = 3s) {
  if (!await_readable(fd, Clock::now() + timeout)) return std::nullopt;
  std::vector<char> buffer(70000);
  iovec iov{.iov_base = buffer.data(), .iov_len = buffer.size()};
  alignas(cmsghdr) std::array<char, 64> control{};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control.data();
  m.msg_controllen = control.size();
  const ssize_t n = ::recvmsg(fd, &m, 0);
  if (n < 0) return std::nullopt;
  Datagram d{.text = std::string(buffer.data(), static_cast<std::size_t>(n))};
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
      d.tos = *reinterpret_cast<const unsigned char*>(CMSG_DATA(c));
    }
  }
  return d;
}

std::optional<std::string> receive_text(int fd, std::chrono::milliseconds timeout = 3s) {
  auto d = receive(fd, timeout);
  if (!d) return std::nullopt;
  return d->text;
}

// "name=value ..." of the non-zero counters, for failure messages.
std::string describe(const Counters& counters) {
  std::string out;
  counters.for_each([&](std::string_view name, std::string_view, std::uint64_t value) {
    if (value != 0) out += std::string{name} + "=" + std::to_string(value) + " ";
  });
  return out.empty() ? "all zero" : out;
}

// The number of tcx programs on a device's hook (BPF_PROG_QUERY, Linux >= 6.6), asked in the
// namespace of the calling thread. The kernel writes fields newer than Debian 12's union bpf_attr
// (revision), so the attribute lives in a larger zeroed buffer.
std::uint32_t tcx_programs(std::uint32_t ifindex, bool ingress) {
  alignas(8) std::array<std::byte, 256> buffer{};
  bpf_attr attr{};
  attr.query.target_fd = ifindex;                // target_ifindex for tcx
  attr.query.attach_type = ingress ? 46u : 47u;  // BPF_TCX_INGRESS / BPF_TCX_EGRESS
  std::memcpy(buffer.data(), &attr, sizeof(attr));
  const long r = ::syscall(SYS_bpf, BPF_PROG_QUERY, buffer.data(), sizeof(attr));
  REQUIRE(r == 0);
  std::memcpy(&attr, buffer.data(), sizeof(attr));
  return attr.query.prog_cnt;
}

// A packet socket on ifindex that sees every frame both ways (SOCK_DGRAM: without the MAC
// header). ETH_P_ALL taps see incoming frames before tc ingress (a tap for one protocol would
// only see them after), outgoing ones as they leave.
platform::Fd tap(std::uint32_t ifindex) {
  platform::Fd s{::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL))};
  REQUIRE(s.valid());
  sockaddr_ll sa{};
  sa.sll_family = AF_PACKET;
  sa.sll_protocol = htons(ETH_P_ALL);
  sa.sll_ifindex = static_cast<int>(ifindex);
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0);
  return s;
}

// The tunnel packets (next header 4) among `packets` from src.
std::vector<Packet> tunnel_packets_from(const std::vector<Packet>& packets, const char* src) {
  std::vector<Packet> out;
  for (const auto& p : packets) {
    const auto ip = core::parse_ipv6(p);
    if (ip && ip->header.next_header == 4 && ip->header.src == v6(src)) out.push_back(p);
  }
  return out;
}

// An inner UDP packet, as a client (or a spoofer) would put in the tunnel.
Packet inner_udp(const char* src, const char* dst, const std::string& text, std::uint8_t ecn = 0) {
  return test::PacketBuilder{}
      .ipv4(src, dst)
      .ecn(ecn)
      .udp(kClientPort, kHostPort)
      .payload(text)
      .bytes();
}

Packet tunnel(const char* src, const char* dst, const Packet& inner, std::uint8_t ecn = 0) {
  return test::PacketBuilder{}.ipv6(src, dst, 4).ecn(ecn).raw(inner).bytes();
}

// The three namespaces and both TUN devices (opened here: the test is user space).
//
//   C  dstm0 (TUN) 192.0.2.10/32     up0 ------------- cli0    T  tep0 (TUN, 192.0.2.0/24
//      203.0.113.0/24 -> dstm0       2001:db8:1::2     2001:db8:1::1   routed into it)
//                                                      out0 203.0.113.1 ---- eth0 203.0.113.2  H
//
// The client's TUN device has the MTU a client gives it (tunnel MTU 1500 - 40), the TEP's the
// tunnel MTU, as the daemons do. IPv6 is off on both, so nothing but IPv4 reaches their fds.
struct BpfLab {
  test::Lab lab{R"(
    netns c
    netns t
    netns h
    veth c:up0 t:cli0
    veth t:out0 h:eth0
    addr c up0 2001:db8:1::2/64
    addr t cli0 2001:db8:1::1/64
    addr t out0 203.0.113.1/24
    addr h eth0 203.0.113.2/24
    route h 192.0.2.0/24 via 203.0.113.1
    sysctl t net.ipv4.ip_forward=1
    sysctl c net.ipv6.conf.default.disable_ipv6=1
    sysctl t net.ipv6.conf.default.disable_ipv6=1
  )"};
  platform::TunDevice client_tun =
      lab.enter("c", [] { return platform::TunDevice::open({.name = "dstm0"}).value(); });
  platform::TunDevice tep_tun =
      lab.enter("t", [] { return platform::TunDevice::open({.name = "tep0"}).value(); });
  platform::Fd host_socket;
  platform::Fd client_socket;

  BpfLab() {
    auto& c = lab.netlink("c");
    REQUIRE(c.set_mtu(client_tun.ifindex(), 1460));
    REQUIRE(c.set_link_up(client_tun.ifindex()));
    REQUIRE(c.add_address(client_tun.ifindex(), v4(kLease), 32));
    REQUIRE(
        c.add_route(nl::Ipv4Route{.destination = core::Ipv4Prefix::parse("203.0.113.0/24").value(),
                                  .gateway = {},
                                  .oif = client_tun.ifindex(),
                                  .table = nl::kMainTable,
                                  .metric = {}}));
    auto& t = lab.netlink("t");
    REQUIRE(t.set_link_up(tep_tun.ifindex()));
    REQUIRE(
        t.add_route(nl::Ipv4Route{.destination = core::Ipv4Prefix::parse("192.0.2.0/24").value(),
                                  .gateway = {},
                                  .oif = tep_tun.ifindex(),
                                  .table = nl::kMainTable,
                                  .metric = {}}));
    host_socket = lab.enter("h", [] { return inet_socket(SOCK_DGRAM, v4(kHost), kHostPort); });
    client_socket = lab.enter("c", [] { return inet_socket(SOCK_DGRAM, v4(kLease), kClientPort); });
    const int on = 1;
    for (const int fd : {host_socket.get(), client_socket.get()})
      REQUIRE(::setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &on, sizeof(on)) == 0);
  }

  FastPathConfig tep_config() const {
    return {.role = Role::Tep,
            .tun_ifindex = tep_tun.ifindex(),
            .uplinks = {},
            .local = v6(kTepV6),
            .tunnel_mtu = 1500,
            .hop_limit = 64,
            .flow_label = true,
            .keepalive = v4(kKeepalive),
            .max_bindings = 1024,
            .attach = Attach::Auto};
  }
  FastPathConfig client_config() const {
    auto c = tep_config();
    c.role = Role::Client;
    c.tun_ifindex = client_tun.ifindex();
    c.local = v6(kClientV6);
    return c;
  }

  // Opens a FastPath in the namespace; fails the test (with the reason) when it cannot.
  std::unique_ptr<FastPath> open(std::string_view ns, const FastPathConfig& config) {
    return lab.enter(ns, [&] {
      std::string why;
      auto r = FastPath::open(config, &why);
      INFO(why);
      REQUIRE(r);
      return std::move(*r);
    });
  }
  // Both roles, with the lease bound and the client's path set.
  std::pair<std::unique_ptr<FastPath>, std::unique_ptr<FastPath>> open_both(
      Attach attach = Attach::Auto) {
    auto tc = tep_config();
    tc.attach = attach;
    auto cc = client_config();
    cc.attach = attach;
    auto tep = open("t", tc);
    auto client = open("c", cc);
    REQUIRE(tep->bind(v4(kLease), v6(kClientV6)));
    REQUIRE(client->set_client_path(v4(kLease), v6(kTepV6)));
    return {std::move(tep), std::move(client)};
  }

  TunnelPort tunnel_port(std::string_view ns, const char* local) {
    return lab.enter(ns, [&] { return TunnelPort::open({.local = v6(local)}).value(); });
  }

  // What reached user space on each TUN device since the last call.
  std::vector<Packet> client_tun_packets() { return drain(client_tun.native_handle()); }
  std::vector<Packet> tep_tun_packets() { return drain(tep_tun.native_handle()); }

  // One datagram host -> client and one back, each expected to arrive.
  void exchange(const std::string& tag) {
    send_to(host_socket.get(), v4(kLease), kClientPort, "to client " + tag);
    CHECK(receive_text(client_socket.get()) == "to client " + tag);
    send_to(client_socket.get(), v4(kHost), kHostPort, "to host " + tag);
    CHECK(receive_text(host_socket.get()) == "to host " + tag);
  }

  // The sysctl the FastPath turns on for bpf_fib_lookup.
  std::string forwarding(std::string_view ns, const std::string& ifname) {
    const auto r = lab.run(ns, {"cat", "/proc/sys/net/ipv6/conf/" + ifname + "/forwarding"});
    REQUIRE(r.ok());
    return r.output.substr(0, r.output.find('\n'));
  }
  std::string tc(std::string_view ns, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"tc"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = lab.run(ns, argv);
    INFO(r.output);
    REQUIRE(r.ok());
    return r.output;
  }
};

// A repeating pseudo-random byte stream: byte i is block[i % kSize], kSize a prime so that it
// lines up with no segment size.
class Pattern {
 public:
  static constexpr std::size_t kSize = 1'000'003;
  explicit Pattern(std::uint32_t seed) : block_(kSize) {
    std::uint32_t x = seed;
    for (auto& b : block_) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      b = static_cast<std::byte>(x);
    }
  }
  // Up to n bytes of the stream from offset, contiguous.
  std::span<const std::byte> at(std::uint64_t offset, std::size_t n) const {
    const auto start = static_cast<std::size_t>(offset % kSize);
    return {block_.data() + start, std::min(n, kSize - start)};
  }

 private:
  std::vector<std::byte> block_;
};

struct Transfer {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  bool intact = true;  // every byte received matched the pattern
  bool finished = false;
  std::string error;
};

// Sends `total` bytes of `out` while receiving `total` bytes that must be `in`, on a connected
// non-blocking TCP socket; half-closes after sending and reads to the end. Bounded by deadline.
// Runs on its own thread: no Catch2 assertions in here.
Transfer duplex(int fd, const Pattern& out, const Pattern& in, std::uint64_t total,
                Clock::time_point deadline) {
  Transfer t;
  std::vector<std::byte> buffer(1 << 18);
  bool shut = false;
  bool eof = false;
  while (!shut || !eof) {
    if (!shut && t.sent == total) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
      continue;
    }
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      t.error = "timed out";
      return t;
    }
    pollfd p{.fd = fd, .events = static_cast<short>(POLLIN | (shut ? 0 : POLLOUT)), .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      t.error = std::string{"poll: "} + std::strerror(errno);
      return t;
    }
    if (!shut && (p.revents & POLLOUT) != 0) {
      const auto chunk = out.at(
          t.sent, static_cast<std::size_t>(std::min<std::uint64_t>(total - t.sent, buffer.size())));
      const ssize_t n = ::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) {
        t.sent += static_cast<std::uint64_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        t.error = std::string{"send: "} + std::strerror(errno);
        return t;
      }
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n == 0) {
        eof = true;
      } else if (n > 0) {
        std::size_t done = 0;
        while (done < static_cast<std::size_t>(n)) {
          const auto expected = in.at(t.received + done, static_cast<std::size_t>(n) - done);
          if (std::memcmp(expected.data(), buffer.data() + done, expected.size()) != 0) {
            t.intact = false;
          }
          done += expected.size();
        }
        t.received += static_cast<std::uint64_t>(n);
      } else if (errno != EAGAIN && errno != EINTR) {
        t.error = std::string{"recv: "} + std::strerror(errno);
        return t;
      }
    }
  }
  t.finished = true;
  return t;
}

// A TCP connection host <-> from, carrying `total` bytes each way at once; returns both ends'
// transfers and the seconds it took.
struct BulkResult {
  Transfer host;
  Transfer client;
  double seconds = 0;
};

BulkResult bulk_transfer(test::Lab& lab, std::string_view client_ns, const char* client_address,
                         const char* host_address, std::uint64_t total) {
  auto listener = lab.enter("h", [&] {
    auto s = inet_socket(SOCK_STREAM, v4(host_address), kTcpPort);
    REQUIRE(::listen(s.get(), 1) == 0);
    return s;
  });
  auto client = lab.enter(client_ns, [&] {
    auto s = inet_socket(SOCK_STREAM, v4(client_address), 0);
    const auto sa = socket_address(v4(host_address), kTcpPort);
    const int r = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
    REQUIRE((r == 0 || errno == EINPROGRESS));
    return s;
  });
  REQUIRE(await_readable(listener.get(), Clock::now() + 5s));
  platform::Fd host{::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)};
  REQUIRE(host.valid());

  const Pattern to_host{0x12345678u};
  const Pattern to_client{0x9abcdef1u};
  const auto deadline = Clock::now() + 60s;
  BulkResult result;
  const auto start = Clock::now();
  std::thread host_side{
      [&] { result.host = duplex(host.get(), to_client, to_host, total, deadline); }};
  result.client = duplex(client.get(), to_host, to_client, total, deadline);
  host_side.join();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace

TEST_CASE("bpf fast path: UDP both ways is carried in the kernel, not through the TUN devices",
          "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  CHECK(tep->attached() == Attach::Tcx);
  CHECK(tep->uplinks() ==
        std::vector<std::uint32_t>{t.lab.ifindex("t", "cli0"), t.lab.ifindex("t", "out0")});
  CHECK(client->uplinks() == std::vector<std::uint32_t>{t.lab.ifindex("c", "up0")});

  std::uint64_t to_client_bytes = 0;
  std::uint64_t to_host_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    t.exchange(std::to_string(i));
    to_client_bytes += 28 + std::string{"to client 0"}.size();
    to_host_bytes += 28 + std::string{"to host 0"}.size();
  }
  CHECK(t.client_tun_packets().empty());
  CHECK(t.tep_tun_packets().empty());

  const auto tc = tep->counters();
  const auto cc = client->counters();
  INFO("tep: " << describe(tc) << "\nclient: " << describe(cc));
  CHECK(tc == Counters{.encapsulated = 3,
                       .encapsulated_bytes = to_client_bytes + 3 * 40,
                       .decapsulated = 3,
                       .decapsulated_bytes = to_host_bytes});
  CHECK(cc == Counters{.encapsulated = 3,
                       .encapsulated_bytes = to_host_bytes + 3 * 40,
                       .decapsulated = 3,
                       .decapsulated_bytes = to_client_bytes});
  CHECK(tep->traffic(v4(kLease)) == BindingTraffic{.packets_to_client = 3,
                                                   .bytes_to_client = to_client_bytes,
                                                   .packets_from_client = 3,
                                                   .bytes_from_client = to_host_bytes});
  CHECK(client->traffic(v4(kLease)) == std::nullopt);  // no bindings in the client role
}

TEST_CASE("bpf fast path: encapsulated packets are what the user-space codec builds", "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  auto client_tap = t.lab.enter("c", [&] { return tap(t.lab.ifindex("c", "up0")); });
  auto tep_tap = t.lab.enter("t", [&] { return tap(t.lab.ifindex("t", "cli0")); });

  // DSCP and ECN both ways: the traffic class is the inner TOS byte; the inner ECN arrives as
  // it was sent (no CE outside).
  struct Row {
    int tos;
  };
  for (const Row row : {Row{0}, Row{46 << 2 | kEct0}, Row{10 << 2 | kEct1}}) {
    INFO("TOS " << row.tos);
    for (const int fd : {t.host_socket.get(), t.client_socket.get()})
      REQUIRE(::setsockopt(fd, IPPROTO_IP, IP_TOS, &row.tos, sizeof(row.tos)) == 0);
    send_to(t.host_socket.get(), v4(kLease), kClientPort, "down");
    const auto down = receive(t.client_socket.get());
    REQUIRE(down);
    CHECK(down->tos == row.tos);
    send_to(t.client_socket.get(), v4(kHost), kHostPort, "up");
    const auto up = receive(t.host_socket.get());
    REQUIRE(up);
    CHECK(up->tos == row.tos);

    const auto from_tep = tunnel_packets_from(drain(client_tap.get()), kTepV6);
    const auto from_client = tunnel_packets_from(drain(tep_tap.get()), kClientV6);
    REQUIRE(from_tep.size() == 1);
    REQUIRE(from_client.size() == 1);
    for (const auto& [outer, ends] :
         {std::pair{from_tep[0], tep::Endpoints{.src = v6(kTepV6), .dst = v6(kClientV6)}},
          std::pair{from_client[0], tep::Endpoints{.src = v6(kClientV6), .dst = v6(kTepV6)}}}) {
      // Re-encapsulate the inner packet with the codec: byte for byte the same packet.
      Packet frame = outer;
      const auto expected =
          tep::encapsulate(frame, tep::kEncapOverhead, ends,
                           {.hop_limit = 64, .flow_label = tep::FlowLabel::InnerHash});
      REQUIRE(expected);
      CHECK(Packet(expected->begin(), expected->end()) == outer);
      const auto ip = core::parse_ipv6(outer).value();
      CHECK(ip.header.traffic_class == row.tos);
      CHECK(ip.header.flow_label != 0);
    }
  }
  CHECK(t.client_tun_packets().empty());
  CHECK(t.tep_tun_packets().empty());
}

TEST_CASE("bpf fast path: an unbound address and an unset client path go to the TUN devices",
          "[tep_bpf]") {
  BpfLab t;
  auto tep = t.open("t", t.tep_config());
  auto client = t.open("c", t.client_config());

  // The TEP has no binding for the pool address: its user space gets the packet.
  send_to(t.host_socket.get(), v4(kUnbound), kClientPort, "unbound");
  auto packets = await_packets(t.tep_tun.native_handle());
  REQUIRE(packets.size() == 1);
  auto ip = core::parse_ipv4(packets[0]).value();
  CHECK(ip.header.dst == v4(kUnbound));
  CHECK(tep->counters() == Counters{.passed_no_binding = 1});

  // The client has no path: its user space gets the packet.
  send_to(t.client_socket.get(), v4(kHost), kHostPort, "no path");
  packets = await_packets(t.client_tun.native_handle());
  REQUIRE(packets.size() == 1);
  ip = core::parse_ipv4(packets[0]).value();
  CHECK(ip.header.src == v4(kLease));
  CHECK(client->counters() == Counters{.passed_no_path = 1});

  // A path for another lease does not take the lease's packets either.
  REQUIRE(client->set_client_path(v4(kOtherLease), v6(kTepV6)));
  send_to(t.client_socket.get(), v4(kHost), kHostPort, "other lease");
  CHECK(await_packets(t.client_tun.native_handle()).size() == 1);
  CHECK(client->counters() == Counters{.passed_no_path = 2});
}

TEST_CASE("bpf fast path: spoofed and unknown inner sources are left to user space", "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  REQUIRE(tep->bind(v4(kOtherLease), v6(kOtherClientV6)));
  auto sender = t.tunnel_port("c", kClientV6);
  auto tep_port = t.tunnel_port("t", kTepV6);
  tep::io::PacketBatch batch{8};

  // From the client's address: an inner source leased to another client, then one with no
  // binding, then a genuine one. The host gets only the last (packets keep their order on this
  // path, so the first two would have arrived before it).
  const auto spoofed = tunnel(kClientV6, kTepV6, inner_udp(kOtherLease, kHost, "spoofed"));
  const auto unknown = tunnel(kClientV6, kTepV6, inner_udp(kUnbound, kHost, "unknown"));
  const auto genuine = tunnel(kClientV6, kTepV6, inner_udp(kLease, kHost, "genuine"));
  for (const auto& p : {spoofed, unknown, genuine}) REQUIRE(sender.send(core::Bytes{p}));
  CHECK(receive_text(t.host_socket.get()) == "genuine");
  CHECK_FALSE(receive_text(t.host_socket.get(), 0ms));

  // User space (the TEP's tunnel socket) got the two it must judge, as they were sent.
  REQUIRE(await_readable(tep_port.receive_handle(), Clock::now() + 3s));
  REQUIRE(tep_port.receive(batch).value() == 2);
  CHECK(Packet(batch.packet(0).begin(), batch.packet(0).end()) == spoofed);
  CHECK(Packet(batch.packet(1).begin(), batch.packet(1).end()) == unknown);
  const auto c = tep->counters();
  INFO(describe(c));
  CHECK(c.passed_spoofed == 1);
  CHECK(c.passed_no_binding == 1);
  CHECK(c.decapsulated == 1);
  CHECK(tep->traffic(v4(kOtherLease))->packets_from_client == 0);
  CHECK(t.tep_tun_packets().empty());
}

TEST_CASE("bpf fast path: invalid tunnel packets go to user space, CE marks ECT packets (RFC 6040)",
          "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  auto sender = t.tunnel_port("c", kClientV6);
  auto tep_port = t.tunnel_port("t", kTepV6);
  tep::io::PacketBatch batch{16};

  auto bad_checksum = inner_udp(kLease, kHost, "bad checksum");
  bad_checksum[10] ^= std::byte{0xff};
  auto trailing = tunnel(kClientV6, kTepV6, inner_udp(kLease, kHost, "trailing"));
  trailing.push_back(std::byte{0});  // payload length one more than the inner packet
  trailing[5] = static_cast<std::byte>(static_cast<int>(trailing[5]) + 1);
  auto bad_version = inner_udp(kLease, kHost, "version 5");
  bad_version[0] = std::byte{0x55};
  const std::vector<Packet> refused{
      tunnel(kClientV6, kTepV6, bad_checksum),
      trailing,
      tunnel(kClientV6, kTepV6, bad_version),
      tunnel(kClientV6, kTepV6, inner_udp(kLease, kHost, "CE over Not-ECT"), kCe),
  };
  // An extension header before the inner packet: not recognised as a tunnel packet at all.
  const auto with_options = test::PacketBuilder{}
                                .ipv6(kClientV6, kTepV6)
                                .destination_options()
                                .ipv4(kLease, kHost)
                                .udp(kClientPort, kHostPort)
                                .payload("options")
                                .bytes();
  for (const auto& p : refused) REQUIRE(sender.send(core::Bytes{p}));
  REQUIRE(sender.send(core::Bytes{with_options}));

  // Decapsulated: CE over ECT(0) and ECT(1) makes the inner CE (header checksum fixed, or the
  // host would drop them); ECT(1) over ECT(0) leaves ECT(0).
  struct Row {
    std::uint8_t outer;
    std::uint8_t inner;
    int arrives;
  };
  for (const Row row : {Row{kCe, kEct0, kCe}, Row{kCe, kEct1, kCe}, Row{kEct1, kEct0, kEct0},
                        Row{kCe, kCe, kCe}, Row{0, kEct1, kEct1}}) {
    INFO("outer ECN " << int{row.outer} << ", inner " << int{row.inner});
    const auto p = tunnel(kClientV6, kTepV6, inner_udp(kLease, kHost, "ecn", row.inner), row.outer);
    REQUIRE(sender.send(core::Bytes{p}));
    const auto d = receive(t.host_socket.get());
    REQUIRE(d);
    CHECK(d->text == "ecn");
    CHECK((d->tos & 3) == row.arrives);
  }

  REQUIRE(await_readable(tep_port.receive_handle(), Clock::now() + 3s));
  std::vector<Packet> got;
  for (int i = 0; i < 10 && got.size() < refused.size() + 1; ++i) {
    if (!await_readable(tep_port.receive_handle(), Clock::now() + 1s)) break;
    const auto n = tep_port.receive(batch).value();
    for (std::size_t k = 0; k < n; ++k)
      got.emplace_back(batch.packet(k).begin(), batch.packet(k).end());
  }
  // The raw socket rebuilds the header (tep_io) and gives what follows the extension headers:
  // the inner packets are what was sent.
  REQUIRE(got.size() == refused.size() + 1);
  for (std::size_t i = 0; i < refused.size(); ++i) {
    INFO("refused packet " << i);
    CHECK(core::Bytes{got[i]}.subspan(40).size() == refused[i].size() - 40);
    CHECK(std::equal(got[i].begin() + 40, got[i].end(), refused[i].begin() + 40));
  }
  CHECK(std::equal(got.back().begin() + 40, got.back().end(), with_options.begin() + 48));
  const auto c = tep->counters();
  INFO(describe(c));
  CHECK(c.passed_invalid == refused.size());
  CHECK(c.decapsulated == 5);
  CHECK(c.passed_other == 0);
  CHECK(t.tep_tun_packets().empty());
}

TEST_CASE("bpf fast path: ICMP of the keepalive address goes to user space", "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  auto client_port = t.tunnel_port("c", kClientV6);
  auto tep_port = t.tunnel_port("t", kTepV6);
  tep::io::PacketBatch batch{4};

  // The client's keepalive: an echo request to the keepalive address, for the TEP's user space.
  const auto request = tunnel(
      kClientV6, kTepV6, test::PacketBuilder{}.ipv4(kLease, kKeepalive).icmpv4_echo(7, 1).bytes());
  REQUIRE(client_port.send(core::Bytes{request}));
  REQUIRE(await_readable(tep_port.receive_handle(), Clock::now() + 3s));
  REQUIRE(tep_port.receive(batch).value() == 1);
  CHECK(Packet(batch.packet(0).begin(), batch.packet(0).end()) == request);
  CHECK(tep->counters() == Counters{.passed_keepalive = 1});

  // Its answer, for the client's user space.
  const auto reply = tunnel(kTepV6, kClientV6,
                            test::PacketBuilder{}
                                .ipv4(kKeepalive, kLease)
                                .icmpv4_echo(7, 1, core::EchoKind::reply)
                                .bytes());
  REQUIRE(tep_port.send(core::Bytes{reply}));
  REQUIRE(await_readable(client_port.receive_handle(), Clock::now() + 3s));
  REQUIRE(client_port.receive(batch).value() == 1);
  CHECK(Packet(batch.packet(0).begin(), batch.packet(0).end()) == reply);
  CHECK(client->counters() == Counters{.passed_keepalive = 1});
}

TEST_CASE("bpf fast path: unbind, clear and clear_client_path send traffic to user space again",
          "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  t.exchange("bound");
  const auto traffic = tep->traffic(v4(kLease));
  REQUIRE(traffic);
  CHECK(traffic->packets_to_client == 1);

  // Binding the same client again keeps the counts; another client starts them anew.
  REQUIRE(tep->bind(v4(kLease), v6(kClientV6)));
  CHECK(tep->traffic(v4(kLease)) == traffic);
  REQUIRE(tep->bind(v4(kLease), v6(kOtherClientV6)));
  CHECK(tep->traffic(v4(kLease)) == BindingTraffic{});
  REQUIRE(tep->bind(v4(kLease), v6(kClientV6)));

  REQUIRE(tep->unbind(v4(kLease)));
  CHECK(tep->traffic(v4(kLease)) == std::nullopt);
  REQUIRE(tep->unbind(v4(kLease)));  // nothing to do
  send_to(t.host_socket.get(), v4(kLease), kClientPort, "unbound");
  CHECK(await_packets(t.tep_tun.native_handle()).size() == 1);
  CHECK(tep->counters().passed_no_binding == 1);

  REQUIRE(tep->bind(v4(kLease), v6(kClientV6)));
  t.exchange("bound again");
  CHECK(t.tep_tun_packets().empty());

  // clear() empties a full table.
  for (std::uint32_t i = 0; i < 1024; ++i) {
    const auto address = core::Ipv4Address{v4(kLease).to_uint() + i};
    REQUIRE(tep->bind(address, v6(kClientV6)));
  }
  CHECK(tep->bind(v4("198.51.100.1"), v6(kClientV6)).error() == platform::errno_code(E2BIG));
  REQUIRE(tep->clear());
  CHECK(tep->traffic(v4(kLease)) == std::nullopt);
  CHECK(tep->traffic(core::Ipv4Address{v4(kLease).to_uint() + 1023}) == std::nullopt);
  send_to(t.host_socket.get(), v4(kLease), kClientPort, "cleared");
  CHECK(await_packets(t.tep_tun.native_handle()).size() == 1);
  CHECK(tep->counters().passed_no_binding == 2);

  REQUIRE(client->clear_client_path());
  REQUIRE(client->clear_client_path());  // nothing to do
  send_to(t.client_socket.get(), v4(kHost), kHostPort, "no path");
  CHECK(await_packets(t.client_tun.native_handle()).size() == 1);
  CHECK(client->counters().passed_no_path == 1);

  // Each role refuses the other's calls.
  const auto einval = platform::errno_code(EINVAL);
  CHECK(tep->set_client_path(v4(kLease), v6(kTepV6)).error() == einval);
  CHECK(tep->clear_client_path().error() == einval);
  CHECK(client->bind(v4(kLease), v6(kClientV6)).error() == einval);
  CHECK(client->unbind(v4(kLease)).error() == einval);
  CHECK(client->clear().error() == einval);
}

TEST_CASE("bpf fast path: a packet over the tunnel MTU goes to user space", "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  // 1460 bytes of IPv4 make 1500 of IPv6: carried. 1461 would make 1501: the TEP's user space
  // gets it (to fragment or answer "fragmentation needed").
  send_to(t.host_socket.get(), v4(kLease), kClientPort, std::string(1460 - 28, 'a'));
  CHECK(receive_text(t.client_socket.get())->size() == 1460 - 28);
  send_to(t.host_socket.get(), v4(kLease), kClientPort, std::string(1461 - 28, 'b'));
  const auto packets = await_packets(t.tep_tun.native_handle());
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].size() == 1461);
  CHECK(tep->counters().passed_mtu == 1);
  CHECK(tep->counters().encapsulated == 1);

  // A client with a smaller tunnel MTU than its TUN device allows.
  client.reset();
  auto config = t.client_config();
  config.tunnel_mtu = 1400;
  client = t.open("c", config);
  REQUIRE(client->set_client_path(v4(kLease), v6(kTepV6)));
  send_to(t.client_socket.get(), v4(kHost), kHostPort, std::string(1360 - 28, 'c'));
  CHECK(receive_text(t.host_socket.get())->size() == 1360 - 28);
  send_to(t.client_socket.get(), v4(kHost), kHostPort, std::string(1361 - 28, 'd'));
  CHECK(await_packets(t.client_tun.native_handle()).size() == 1);
  CHECK(client->counters() ==
        Counters{.encapsulated = 1, .encapsulated_bytes = 1400, .passed_mtu = 1});
}

TEST_CASE("bpf fast path: a TCP bulk transfer both ways over one connection arrives intact",
          "[tep_bpf]") {
  BpfLab t;
  auto [tep, client] = t.open_both();
  constexpr std::uint64_t kTotal = 64ull << 20;
  const auto r = bulk_transfer(t.lab, "c", kLease, kHost, kTotal);
  INFO("host: " << r.host.error << ", client: " << r.client.error);
  CHECK(r.host.finished);
  CHECK(r.client.finished);
  CHECK(r.host.sent == kTotal);
  CHECK(r.host.received == kTotal);
  CHECK(r.client.sent == kTotal);
  CHECK(r.client.received == kTotal);
  CHECK(r.host.intact);
  CHECK(r.client.intact);
  INFO("64 MiB each way in " << r.seconds << " s");

  CHECK(t.client_tun_packets().empty());
  CHECK(t.tep_tun_packets().empty());
  const auto traffic = tep->traffic(v4(kLease)).value();
  CHECK(traffic.bytes_to_client > kTotal);
  CHECK(traffic.bytes_from_client > kTotal);
  // GSO on (the kernel's default on veth and TUN devices): the programs handled super-packets
  // both ways, at both ends.
  const auto c = tep->counters();
  const auto cc = client->counters();
  INFO("tep: " << describe(c) << "\nclient: " << describe(cc));
  CHECK(c.encapsulated_gso > 0);
  CHECK(c.decapsulated_gso > 0);
  CHECK(cc.encapsulated_gso > 0);
  CHECK(cc.decapsulated_gso > 0);
  CHECK(c.encapsulated > c.encapsulated_gso);
  for (const auto& counters : {c, cc}) {
    CHECK(counters.passed_mtu == 0);
    CHECK(counters.passed_other == 0);
    CHECK(counters.dropped == 0);
  }
}

TEST_CASE("bpf fast path: when destroyed it leaves nothing attached and traffic reaches the TUNs",
          "[tep_bpf]") {
  BpfLab t;
  const std::vector<std::pair<std::string, std::string>> devices{
      {"c", "dstm0"}, {"c", "up0"}, {"t", "tep0"}, {"t", "cli0"}, {"t", "out0"}};
  const auto programs = [&](const std::string& ns, const std::string& ifname, bool ingress) {
    return t.lab.enter(ns, [&] { return tcx_programs(t.lab.ifindex(ns, ifname), ingress); });
  };
  {
    auto [tep, client] = t.open_both();
    CHECK(programs("c", "dstm0", false) == 1);
    CHECK(programs("c", "up0", true) == 1);
    CHECK(programs("t", "tep0", false) == 1);
    CHECK(programs("t", "cli0", true) == 1);
    CHECK(programs("t", "out0", true) == 1);
    CHECK(t.forwarding("c", "dstm0") == "1");
    CHECK(t.forwarding("t", "tep0") == "1");
    t.exchange("attached");
    // Destroyed here, on the test's thread, in another namespace than the devices.
  }
  for (const auto& [ns, ifname] : devices) {
    INFO(ns << " " << ifname);
    CHECK(programs(ns, ifname, true) == 0);
    CHECK(programs(ns, ifname, false) == 0);
    CHECK(t.tc(ns, {"qdisc", "show", "dev", ifname}).find("clsact") == std::string::npos);
  }
  CHECK(t.forwarding("c", "dstm0") == "0");
  CHECK(t.forwarding("t", "tep0") == "0");

  send_to(t.host_socket.get(), v4(kLease), kClientPort, "user space");
  CHECK(await_packets(t.tep_tun.native_handle()).size() == 1);
  send_to(t.client_socket.get(), v4(kHost), kHostPort, "user space");
  CHECK(await_packets(t.client_tun.native_handle()).size() == 1);
}

TEST_CASE("bpf fast path: cls_bpf filters carry traffic and are removed with the qdisc we added",
          "[tep_bpf]") {
  BpfLab t;
  // A clsact qdisc that was there before stays; ours go.
  t.tc("t", {"qdisc", "add", "dev", "out0", "clsact"});
  {
    auto [tep, client] = t.open_both(Attach::Tc);
    CHECK(tep->attached() == Attach::Tc);
    CHECK(client->attached() == Attach::Tc);
    const auto filters = t.tc("t", {"filter", "show", "dev", "cli0", "ingress"});
    CHECK(filters.find("tep_decap") != std::string::npos);
    CHECK(filters.find("direct-action") != std::string::npos);
    CHECK(t.tc("t", {"filter", "show", "dev", "tep0", "egress"}).find("tep_encap") !=
          std::string::npos);
    CHECK(t.tc("c", {"filter", "show", "dev", "up0", "ingress"}).find("tep_decap") !=
          std::string::npos);
    t.exchange("cls_bpf");
    CHECK(t.client_tun_packets().empty());
    CHECK(t.tep_tun_packets().empty());
    CHECK(tep->counters().encapsulated == 1);
    CHECK(tep->counters().decapsulated == 1);
  }
  for (const auto& [ns, ifname] : std::vector<std::pair<std::string, std::string>>{
           {"c", "dstm0"}, {"c", "up0"}, {"t", "tep0"}, {"t", "cli0"}}) {
    INFO(ns << " " << ifname);
    CHECK(t.tc(ns, {"qdisc", "show", "dev", ifname}).find("clsact") == std::string::npos);
  }
  CHECK(t.tc("t", {"qdisc", "show", "dev", "out0"}).find("clsact") != std::string::npos);
  CHECK(t.tc("t", {"filter", "show", "dev", "out0", "ingress"}).empty());
  send_to(t.host_socket.get(), v4(kLease), kClientPort, "user space");
  CHECK(await_packets(t.tep_tun.native_handle()).size() == 1);
}

TEST_CASE("bpf fast path: a killed process leaves no program attached", "[tep_bpf]") {
  BpfLab t;
  const auto config = t.client_config();
  std::array<int, 2> ready{-1, -1};
  REQUIRE(::pipe2(ready.data(), O_CLOEXEC) == 0);
  platform::Fd ready_read{ready[0]};
  platform::Fd ready_write{ready[1]};
  // A child in the client's namespace opens a FastPath, says so, and waits to be killed (at
  // most a minute, should the test die first).
  const pid_t pid = t.lab.enter("c", [&] {
    const pid_t p = ::fork();
    if (p == 0) {
      ::alarm(60);
      auto fast_path = FastPath::open(config);
      const char answer = fast_path ? 'y' : 'n';
      (void)!::write(ready_write.get(), &answer, 1);
      for (;;) ::pause();
    }
    return p;
  });
  REQUIRE(pid > 0);
  // Kills and reaps the child if the test ends early. Only a positive pid: kill(-1) would
  // signal every process we may signal.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{pid};
  ready_write.reset();
  REQUIRE(await_readable(ready_read.get(), Clock::now() + 10s));
  char answer = 0;
  REQUIRE(::read(ready_read.get(), &answer, 1) == 1);
  REQUIRE(answer == 'y');
  const auto up0 = t.lab.ifindex("c", "up0");
  const auto dstm0 = t.client_tun.ifindex();
  CHECK(t.lab.enter("c", [&] { return tcx_programs(up0, true); }) == 1);
  CHECK(t.lab.enter("c", [&] { return tcx_programs(dstm0, false); }) == 1);

  reaper.pid = 0;
  REQUIRE(::kill(pid, SIGKILL) == 0);
  REQUIRE(::waitpid(pid, nullptr, 0) == pid);
  // The links went with the process's last fds.
  CHECK(t.lab.enter("c", [&] { return tcx_programs(up0, true); }) == 0);
  CHECK(t.lab.enter("c", [&] { return tcx_programs(dstm0, false); }) == 0);
  send_to(t.client_socket.get(), v4(kHost), kHostPort, "user space");
  CHECK(await_packets(t.client_tun.native_handle()).size() == 1);
}

TEST_CASE("bpf fast path: open refuses bad configurations and missing privileges", "[tep_bpf]") {
  BpfLab t;
  const auto tun = t.tep_tun.ifindex();
  const auto cli0 = t.lab.ifindex("t", "cli0");
  struct Row {
    const char* what;
    FastPathConfig config;
    int error;
  };
  auto base = t.tep_config();
  auto with = [&](auto change) {
    auto c = base;
    change(c);
    return c;
  };
  const std::vector<Row> rows{
      {"no TUN device", with([](auto& c) { c.tun_ifindex = 0; }), EINVAL},
      {"missing TUN device", with([](auto& c) { c.tun_ifindex = 99999; }), ENODEV},
      {"Ethernet as the TUN device", with([&](auto& c) { c.tun_ifindex = cli0; }), EINVAL},
      {"TUN device as an uplink", with([&](auto& c) { c.uplinks = {tun}; }), EINVAL},
      {"missing uplink", with([](auto& c) { c.uplinks = {99999}; }), ENODEV},
      {"unspecified local address", with([](auto& c) { c.local = {}; }), EINVAL},
      {"tunnel MTU too small", with([](auto& c) { c.tunnel_mtu = 1279; }), EINVAL},
      {"hop limit 0", with([](auto& c) { c.hop_limit = 0; }), EINVAL},
      {"no bindings", with([](auto& c) { c.max_bindings = 0; }), EINVAL},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    std::string why;
    const auto r = t.lab.enter("t", [&] { return FastPath::open(row.config, &why); });
    REQUIRE_FALSE(r);
    CHECK(r.error() == platform::errno_code(row.error));
    CHECK_FALSE(why.empty());
  }

  // Without capabilities (dropped on this thread only) the programs cannot be loaded.
  std::string why;
  std::optional<boost::system::error_code> error;
  test::Lab::run_in_netns(t.lab.netns_fd("t"), [&] {
    __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    std::array<__user_cap_data_struct, 2> none{};
    REQUIRE(::syscall(SYS_capset, &header, none.data()) == 0);
    auto r = FastPath::open(base, &why);
    if (!r) error = r.error();
  });
  CHECK(error == platform::errno_code(EPERM));
  INFO(why);
  CHECK(why.find("loading") != std::string::npos);
  CHECK(t.forwarding("t", "tep0") == "0");
}
