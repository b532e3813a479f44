// The client's kernel data path: ip6tnl devices through netlink, keepalive through a raw socket.
#include "kernel_link.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "dstm_client/packets.hpp"
#include "platform/netlink.hpp"
#include "platform/sysctl.hpp"

namespace dstm_client::detail {

namespace asio = boost::asio;
namespace nl = platform::netlink;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint8_t kHopLimit = 64;
// Replies read per readiness wake-up before the loop yields.
constexpr int kRepliesPerWake = 64;
// ICMP_FILTER (a SOL_RAW option of raw ICMP sockets) from linux/icmp.h, which clashes with the
// net/if.h that Asio includes: a bitmap of the ICMP types to drop; echo reply is type 0.
constexpr int kIcmpFilter = 1;
constexpr std::uint32_t kOnlyEchoReplies = ~(std::uint32_t{1} << 0);

boost::system::error_code as_code(const platform::NetlinkError& e) {
  return e.code;
}

}  // namespace

struct KernelLink::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& i, std::string n, std::uint32_t mtu, std::uint16_t id, Metrics& me,
       platform::Logger& l, std::function<void(std::uint16_t)> reply)
      : io{i},
        name{std::move(n)},
        any_name{name.substr(0, 13) + "-a"},
        inner_mtu{mtu},
        echo_id{id},
        m{me},
        log{l},
        on_reply{std::move(reply)} {}

  asio::io_context& io;
  std::string name;      // carries the lease: local -> the TEP
  std::string any_name;  // receives from any other TEP
  std::uint32_t inner_mtu;
  std::uint16_t echo_id;
  Metrics& m;
  platform::Logger& log;
  std::function<void(std::uint16_t)> on_reply;

  std::optional<platform::NetlinkClient> netlink;
  std::uint32_t ifindex = 0;
  std::uint32_t any_ifindex = 0;
  std::optional<Path> devices_for;  // the end points the devices have
  std::optional<Path> path;
  std::optional<asio::posix::stream_descriptor> keepalive;  // raw ICMP, bound to `name`
  std::array<std::byte, kProbeSize> probe{};
  std::vector<std::byte> reply_buffer = std::vector<std::byte>(65536);
  std::uint16_t probe_ip_id = 0;
  bool closed = false;

  nl::Ip6Tunnel tunnel(const Path& p) const {
    return {.name = name,
            .local = p.local,
            .remote = p.tep,
            .link = 0,
            .hop_limit = kHopLimit,
            .mtu = inner_mtu};
  }
  nl::Ip6Tunnel any_tunnel(const Path& p) const {
    return {.name = any_name,
            .local = p.local,
            .remote = core::Ipv6Address{},
            .link = 0,
            .hop_limit = kHopLimit,
            .mtu = inner_mtu};
  }

  // Creates the device, replacing a leftover ip6tnl device of that name (a killed client's).
  platform::Result<std::uint32_t> create(const nl::Ip6Tunnel& t, std::string_view rp_filter) {
    auto index = netlink->add_ip6_tunnel(t);
    if (!index && index.error().code == boost::system::errc::file_exists) {
      auto existing = netlink->link(t.name);
      if (existing && existing->kind == "ip6tnl") {
        log.info("replacing the leftover ip6tnl device {}", t.name);
        (void)netlink->delete_link(existing->index);
        index = netlink->add_ip6_tunnel(t);
      }
    }
    if (!index) {
      log.error("creating the ip6tnl device {}: {}", t.name, index.error().to_string());
      return as_code(index.error());
    }
    // Replies to the lease come from anywhere on the IPv4 side, often from addresses that are
    // not routed into the tunnel (the keepalive address with --route): no reverse-path check.
    if (auto ok = platform::write_sysctl(
            platform::interface_sysctl_path("ipv4", t.name, "rp_filter"), rp_filter);
        !ok)
      log.warn("rp_filter on {}: {}", t.name, ok.error().message());
    // The devices carry IPv4 only: no link-local address, no router solicitations.
    (void)platform::write_sysctl(platform::interface_sysctl_path("ipv6", t.name, "disable_ipv6"),
                                 "1");
    return *index;
  }

  platform::Result<void> open_devices(const Path& p) {
    if (!netlink) {
      auto nlc = platform::NetlinkClient::open();
      if (!nlc) return nlc.error();
      netlink.emplace(std::move(*nlc));
    }
    auto index = create(tunnel(p), "0");
    if (!index) return index.error();
    ifindex = *index;
    auto any = create(any_tunnel(p), "0");
    if (!any) return any.error();
    any_ifindex = *any;
    // It only receives: up at once (the lease's device goes up with the lease).
    if (auto ok = netlink->set_link_up(any_ifindex); !ok) {
      log.error("bringing {} up: {}", any_name, ok.error().to_string());
      return as_code(ok.error());
    }
    if (auto ok = open_keepalive(); !ok) return ok;
    log.info("ip6tnl {} ({} -> {}, MTU {}) and {} (from any TEP)", name, p.local.to_string(),
             p.tep.to_string(), inner_mtu, any_name);
    return {};
  }

  // New end points on the existing devices (ip6_tnl_changelink), then the MTU again: the kernel
  // recomputes it from the route toward the new remote.
  platform::Result<void> move_devices(const Path& p) {
    if (p.local != devices_for->local || p.tep != devices_for->tep) {
      if (auto ok = netlink->change_ip6_tunnel(ifindex, tunnel(p)); !ok) {
        log.error("moving {} to {} -> {}: {}", name, p.local.to_string(), p.tep.to_string(),
                  ok.error().to_string());
        return as_code(ok.error());
      }
      if (auto ok = netlink->set_mtu(ifindex, inner_mtu); !ok) return as_code(ok.error());
    }
    if (p.local != devices_for->local) {
      if (auto ok = netlink->change_ip6_tunnel(any_ifindex, any_tunnel(p)); !ok)
        return as_code(ok.error());
      if (auto ok = netlink->set_mtu(any_ifindex, inner_mtu); !ok) return as_code(ok.error());
    }
    return {};
  }

  // A raw ICMP socket that writes whole IPv4 packets (the probe, from the lease) and receives
  // only echo replies, bound to the lease's device: probes leave through it whatever the routes
  // say, and only replies that came back through it are read.
  platform::Result<void> open_keepalive() {
    platform::Fd fd{::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP)};
    if (!fd) return platform::errno_code(errno);
    const int one = 1;
    const std::uint32_t filter = kOnlyEchoReplies;
    if (::setsockopt(fd.get(), IPPROTO_IP, IP_HDRINCL, &one, sizeof one) < 0 ||
        ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, name.c_str(),
                     static_cast<socklen_t>(name.size())) < 0 ||
        ::setsockopt(fd.get(), SOL_RAW, kIcmpFilter, &filter, sizeof filter) < 0)
      return platform::errno_code(errno);
    keepalive.emplace(io, fd.release());
    asio::co_spawn(io, replies(shared_from_this()), [&l = log](std::exception_ptr e) {
      if (e) l.error("keepalive reply loop ended");
    });
    return {};
  }

  // Reads replies until the socket has none left (Asio's reactor is edge-triggered: waiting
  // with replies unread could wait forever), at most kRepliesPerWake before yielding to other
  // work (`more`). False when the socket failed.
  bool drain_replies(bool& more) {
    more = false;
    for (int i = 0; i < kRepliesPerWake; ++i) {
      const ssize_t n = ::recv(keepalive->native_handle(), reply_buffer.data(), reply_buffer.size(),
                               MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;
        m.tunnel_read_errors.inc();
        return false;
      }
      if (!path) continue;
      const auto verdict =
          classify_inbound(core::Bytes{reply_buffer}.first(static_cast<std::size_t>(n)),
                           path->lease, path->keepalive, echo_id);
      if (verdict.kind != Inbound::Kind::KeepaliveReply) continue;
      m.keepalive_replies.inc();
      if (on_reply) on_reply(verdict.sequence);
      if (closed) return true;  // the callback closed us
    }
    more = true;
    return true;
  }

  static asio::awaitable<void> replies(std::shared_ptr<Impl> self) {
    auto& d = *self;
    bool more = false;
    while (!d.closed && d.keepalive) {
      if (more) {
        co_await asio::post(d.io, asio::use_awaitable);
      } else {
        auto [ec] =
            co_await d.keepalive->async_wait(asio::posix::descriptor_base::wait_read, kNoThrow);
        if (ec) co_return;
      }
      if (d.closed || !d.keepalive) co_return;
      if (!d.drain_replies(more)) co_return;
    }
  }

  void close() noexcept {
    if (closed) return;
    closed = true;
    path.reset();
    if (keepalive) {
      boost::system::error_code ignored;
      keepalive->close(ignored);
      keepalive.reset();
    }
    if (!netlink) return;
    for (const auto& [index, device] :
         {std::pair{ifindex, name}, std::pair{any_ifindex, any_name}}) {
      if (index == 0) continue;
      if (auto ok = netlink->delete_link(index); !ok)
        log.warn("deleting {}: {}", device, ok.error().to_string());
    }
    ifindex = any_ifindex = 0;
  }
};

KernelLink::KernelLink(asio::io_context& io, std::string name, std::uint32_t inner_mtu,
                       std::uint16_t echo_id, Metrics& metrics, platform::Logger& log,
                       std::function<void(std::uint16_t)> on_keepalive_reply)
    : impl_{std::make_shared<Impl>(io, std::move(name), inner_mtu, echo_id, metrics, log,
                                   std::move(on_keepalive_reply))} {}

KernelLink::~KernelLink() {
  close();
}

platform::Result<void> KernelLink::set_path(const Path& path) {
  auto& d = *impl_;
  if (d.closed) return boost::system::error_code{asio::error::bad_descriptor};
  auto ok = d.devices_for ? d.move_devices(path) : d.open_devices(path);
  if (!ok) {
    d.path.reset();
    return ok;
  }
  d.devices_for = path;
  d.path = path;
  return {};
}

void KernelLink::clear_path() noexcept {
  impl_->path.reset();
}

bool KernelLink::send_probe(std::uint16_t sequence) {
  auto& d = *impl_;
  if (d.closed || !d.path || !d.path->keepalive || !d.keepalive) return false;
  const auto packet = write_probe(d.probe, Probe{.lease = d.path->lease,
                                                 .keepalive = *d.path->keepalive,
                                                 .echo_id = d.echo_id,
                                                 .sequence = sequence,
                                                 .ip_id = d.probe_ip_id++});
  if (!packet) return false;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(d.path->keepalive->to_uint());
  if (::sendto(d.keepalive->native_handle(), packet->data(), packet->size(), MSG_DONTWAIT,
               reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) {
    d.m.tunnel_send_errors.inc();
    return false;
  }
  return true;
}

void KernelLink::close() noexcept {
  if (impl_) impl_->close();
}

std::vector<std::pair<std::string, std::uint64_t>> KernelLink::kernel_counters() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  if (impl_->ifindex == 0) return out;
  for (const char* key : {"tx_packets", "tx_bytes", "tx_errors", "tx_dropped", "rx_packets",
                          "rx_bytes", "rx_errors", "rx_dropped"}) {
    const auto value =
        platform::read_sysctl(fmt::format("/sys/class/net/{}/statistics/{}", impl_->name, key));
    if (!value) continue;
    try {
      out.emplace_back(key, std::stoull(*value));
    } catch (...) {
      // A statistic that is not a number is left out.
    }
  }
  return out;
}

std::uint32_t KernelLink::ifindex() const noexcept {
  return impl_->ifindex;
}

}  // namespace dstm_client::detail
