// ip6tnl-check: run inside a guest whose kernel has ip6tnl (tests/kernel/ip6tnl_qemu.sh boots
// Debian's 6.1 kernel with it as the guest's only program). It proves on a real kernel that the
// netlink messages of platform::netlink create working ip6tnl devices, and that the kernel
// backend's TEP side (tep::io::KernelTunnels) and client side (the device KernelLink makes)
// carry IPv4 in IPv6 between two network namespaces joined by a veth pair:
//   this namespace ("tep", 2001:db8:1::1)  <-- veth -->  a new one ("client", 2001:db8:1::2)
// Each check prints "KCHECK <name>=ok|fail <detail>" on stdout; the last line is
// "KCHECK result=pass" or "KCHECK result=fail". Exit status 0 when every check passed.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/icmp.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "dstm_client/packets.hpp"
#include "platform/fd.hpp"
#include "platform/netlink.hpp"
#include "platform/sysctl.hpp"
#include "tep_io/backend.hpp"
#include "tep_io/kernel_tunnels.hpp"

namespace nl = platform::netlink;
using namespace std::chrono_literals;

namespace {

int failures = 0;

void check(std::string_view name, bool ok, std::string_view detail = {}) {
  std::printf("KCHECK %.*s=%s %.*s\n", static_cast<int>(name.size()), name.data(),
              ok ? "ok" : "fail", static_cast<int>(detail.size()), detail.data());
  std::fflush(stdout);
  if (!ok) ++failures;
}

core::Ipv4Address v4(const char* s) {
  return core::Ipv4Address::parse(s).value();
}
core::Ipv6Address v6(const char* s) {
  return core::Ipv6Address::parse(s).value();
}

template <typename T>
std::string text(const platform::NetlinkResult<T>& r) {
  return r ? std::string{"ok"} : r.error().to_string();
}

void enter(int netns) {
  if (::setns(netns, CLONE_NEWNET) < 0) {
    std::printf("KCHECK setns=fail %s\n", std::strerror(errno));
    std::exit(1);
  }
}

// The kernel's count of packets its reverse-path filter dropped (TcpExt IPReversePathFilter in
// /proc/net/netstat: a header line of names, then one of values), in the current namespace.
std::uint64_t rp_filter_drops() {
  std::ifstream f{"/proc/net/netstat"};
  std::string names, values;
  while (std::getline(f, names) && std::getline(f, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n{names}, v{values};
    std::string name, value;
    while (n >> name && v >> value)
      if (name == "IPReversePathFilter") return std::stoull(value);
  }
  return 0;
}

// One echo request from `source` to `target` through the device the socket is bound to; true
// when its reply comes back within the timeout (tried `attempts` times: the veth's carrier and
// the neighbour entry take a moment).
bool ping(const char* device, core::Ipv4Address source, core::Ipv4Address target, int attempts) {
  platform::Fd fd{::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP)};
  const int one = 1;
  const icmp_filter filter{.data = ~(1u << ICMP_ECHOREPLY)};
  if (!fd || ::setsockopt(fd.get(), IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device,
                   static_cast<socklen_t>(std::strlen(device))) < 0 ||
      ::setsockopt(fd.get(), SOL_RAW, ICMP_FILTER, &filter, sizeof filter) < 0)
    return false;
  std::array<std::byte, dstm_client::kProbeSize> probe{};
  std::array<std::byte, 2048> reply{};
  for (int i = 0; i < attempts; ++i) {
    const auto sequence = static_cast<std::uint16_t>(i + 1);
    const auto packet = dstm_client::write_probe(probe, dstm_client::Probe{.lease = source,
                                                                           .keepalive = target,
                                                                           .echo_id = 0x6b6b,
                                                                           .sequence = sequence,
                                                                           .ip_id = sequence});
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(target.to_uint());
    if (!packet || ::sendto(fd.get(), packet->data(), packet->size(), 0,
                            reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
      return false;
    const auto deadline = std::chrono::steady_clock::now() + 500ms;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{.fd = fd.get(), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd.get(), reply.data(), reply.size(), 0);
      if (n <= 0) continue;
      const auto verdict = dstm_client::classify_inbound(
          core::Bytes{reply}.first(static_cast<std::size_t>(n)), source, target, 0x6b6b);
      if (verdict.kind == dstm_client::Inbound::Kind::KeepaliveReply &&
          verdict.sequence == sequence)
        return true;
    }
  }
  return false;
}

}  // namespace

int main() {
  // 1. The probe the backends' "auto" runs.
  const auto support = tep::io::probe_kernel_tunnels();
  check("probe", support.available, support.reason);

  // 2. Two namespaces joined by a veth pair.
  const int tep_ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (::unshare(CLONE_NEWNET) < 0) {
    check("unshare", false, std::strerror(errno));
    return 1;
  }
  const int client_ns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  {
    auto c = platform::NetlinkClient::open().value();
    (void)c.set_link_up(1);  // lo
  }
  enter(tep_ns);
  auto tep = platform::NetlinkClient::open().value();
  (void)tep.set_link_up(1);
  const auto veth = tep.call(nl::veth_add(tep.next_sequence(), "veth0", "veth1", client_ns));
  check("veth", veth.has_value(), text(veth));
  const auto veth0 = tep.link_index("veth0").value();
  (void)tep.add_address(veth0, v6("2001:db8:1::1"), 64);
  (void)tep.set_link_up(veth0);

  enter(client_ns);
  auto client = platform::NetlinkClient::open().value();
  const auto veth1 = client.link_index("veth1").value();
  (void)client.add_address(veth1, v6("2001:db8:1::2"), 64);
  (void)client.set_link_up(veth1);

  // 3. The TEP side: the catch-all device with the keepalive address, and one device for the
  // client with its lease routed into it. A device named like a client's, left by a killed
  // daemon, is swept first.
  enter(tep_ns);
  const auto leftover = tep.add_ip6_tunnel(
      nl::Ip6Tunnel{.name = tep::io::kernel_device_name("tep0", v6("2001:db8:1::9")),
                    .local = v6("2001:db8:1::1"),
                    .remote = v6("2001:db8:1::9"),
                    .link = 0,
                    .hop_limit = 64,
                    .mtu = std::nullopt});
  check("tep_leftover", leftover.has_value(), text(leftover));
  auto tunnels =
      tep::io::KernelTunnels::open(tep::io::KernelTunnelsConfig{.prefix = "tep0",
                                                                .local = v6("2001:db8:1::1"),
                                                                .inner_mtu = 1460,
                                                                .hop_limit = 64,
                                                                .keepalive = v4("192.0.2.201"),
                                                                .max_devices = 16});
  check("tep_catch_all", tunnels.has_value(), tunnels ? "" : tunnels.error());
  if (!tunnels) return 1;
  check("tep_sweep",
        leftover && !tep.link(tep::io::kernel_device_name("tep0", v6("2001:db8:1::9"))));
  auto& k = **tunnels;
  const bool bound = k.bind(v4("198.51.100.7"), v6("2001:db8:1::2"));
  check("tep_bind", bound && k.devices() == 1, k.last_error());
  const auto catch_all = tep.link("tep0-a");
  check("tep_catch_all_kind", catch_all && catch_all->kind == "ip6tnl" && catch_all->mtu == 1460,
        catch_all ? catch_all->kind : text(catch_all));

  // 4. The client side: the device KernelLink creates (same parameters), lease and routes.
  enter(client_ns);
  nl::Ip6Tunnel device{.name = "dstm0",
                       .local = v6("2001:db8:1::2"),
                       .remote = v6("2001:db8:1::1"),
                       .link = 0,
                       .hop_limit = 64,
                       .mtu = 1460};
  const auto dstm0 = client.add_ip6_tunnel(device);
  check("client_create", dstm0.has_value(), text(dstm0));
  if (!dstm0) return 1;
  const auto info = client.link("dstm0");
  check("client_kind_mtu", info && info->kind == "ip6tnl" && info->mtu == 1460,
        info ? fmt::format("{} mtu {}", info->kind, info->mtu) : text(info));
  (void)platform::write_sysctl("/proc/sys/net/ipv4/conf/dstm0/rp_filter", "0");
  (void)client.add_address(*dstm0, v4("198.51.100.7"), 32);
  (void)client.add_address(*dstm0, v4("198.51.100.8"), 32);  // a lease the TEP has not bound
  (void)client.set_link_up(*dstm0);
  (void)client.add_route(
      nl::Ipv4Route{.destination = core::Ipv4Prefix::parse("192.0.2.0/24").value(),
                    .gateway = std::nullopt,
                    .oif = *dstm0,
                    .metric = std::nullopt});

  // 5. IPv4 in IPv6 both ways: the TEP's kernel answers the keepalive address through the
  // client's device.
  check("ping_bound", ping("dstm0", v4("198.51.100.7"), v4("192.0.2.201"), 10));

  // 6. Anti-spoofing: a source the TEP has not routed into this client's device is dropped by
  // the device's strict reverse-path filter.
  enter(tep_ns);
  const auto drops_before = rp_filter_drops();
  enter(client_ns);
  const bool spoof_answered = ping("dstm0", v4("198.51.100.8"), v4("192.0.2.201"), 2);
  enter(tep_ns);
  const auto drops_after = rp_filter_drops();
  check("spoof_dropped", !spoof_answered && drops_after > drops_before,
        fmt::format("rp_filter drops {} -> {}", drops_before, drops_after));

  // 7. Moving the client's device (RTM_NEWLINK change) away and back, then the MTU again.
  enter(client_ns);
  device.remote = v6("2001:db8:1::3");
  const auto away = client.change_ip6_tunnel(*dstm0, device);
  const bool lost = !ping("dstm0", v4("198.51.100.7"), v4("192.0.2.201"), 1);
  device.remote = v6("2001:db8:1::1");
  const auto back = client.change_ip6_tunnel(*dstm0, device);
  (void)client.set_mtu(*dstm0, 1460);
  check("client_change", away && lost && back, text(away) + " / " + text(back));
  check("ping_after_change", ping("dstm0", v4("198.51.100.7"), v4("192.0.2.201"), 10));

  // 8. Unbinding deletes the TEP's device: the client is no longer answered.
  enter(tep_ns);
  k.unbind(v4("198.51.100.7"));
  check("tep_unbind", k.devices() == 0 && k.counters().devices_deleted == 1, k.last_error());
  enter(client_ns);
  check("ping_unbound", !ping("dstm0", v4("198.51.100.7"), v4("192.0.2.201"), 1));

  // 9. Cleanup: the catch-all goes with KernelTunnels, the client's device by RTM_DELLINK.
  enter(tep_ns);
  tunnels->reset();
  check("tep_cleanup", !tep.link("tep0-a").has_value());
  enter(client_ns);
  const auto deleted = client.delete_link(*dstm0);
  check("client_delete", deleted && !client.link("dstm0").has_value(), text(deleted));

  std::printf("KCHECK result=%s\n", failures == 0 ? "pass" : "fail");
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}
