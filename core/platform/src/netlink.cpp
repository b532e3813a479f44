// rtnetlink request builders (libmnl), reply parsing, NetlinkClient and NetlinkMonitor.
#include "platform/netlink.hpp"

// glibc's netinet/in.h first: the uapi headers below (linux/in6.h) then leave out what it defines.
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tunnel.h>
#include <linux/ip6_tunnel.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ostream>

#include <boost/throw_exception.hpp>

namespace platform {

std::string NetlinkError::to_string() const {
  if (kernel_message.empty()) return code.message();
  return code.message() + ": " + kernel_message;
}

std::ostream& operator<<(std::ostream& os, const NetlinkError& e) {
  return os << e.to_string();
}

void throw_exception_from_error(const NetlinkError& e, const boost::source_location& loc) {
  boost::throw_with_location(boost::system::system_error(e.code, e.kernel_message), loc);
}

namespace netlink {
namespace {

constexpr std::size_t kHeaderSize = 16;  // sizeof(struct nlmsghdr)
static_assert(sizeof(nlmsghdr) == kHeaderSize);

constexpr std::size_t align4(std::size_t n) noexcept {
  return (n + 3) & ~std::size_t{3};
}

// Netlink is host byte order; memcpy reads any alignment, so hostile offsets are harmless.
std::uint16_t load_u16(Bytes b) noexcept {
  assert(b.size() >= 2);
  std::uint16_t v = 0;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}
std::uint32_t load_u32(Bytes b) noexcept {
  assert(b.size() >= 4);
  std::uint32_t v = 0;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

// One request under construction in an aligned scratch buffer (libmnl writes through struct
// pointers). Every message here is well under kCapacity; the *_check puts refuse to overflow it
// regardless, and the asserts catch a builder that would have needed more.
class Builder {
 public:
  static constexpr std::size_t kCapacity = 512;

  Builder(std::uint16_t type, std::uint16_t extra_flags, std::uint32_t seq) noexcept
      : nlh_{mnl_nlmsg_put_header(buf_.data())} {
    nlh_->nlmsg_type = type;
    nlh_->nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | extra_flags);
    nlh_->nlmsg_seq = seq;
  }

  template <typename T>
  T& family_header() noexcept {
    return *static_cast<T*>(mnl_nlmsg_put_extra_header(nlh_, sizeof(T)));
  }
  void u32(std::uint16_t type, std::uint32_t v) noexcept {
    check(mnl_attr_put_u32_check(nlh_, kCapacity, type, v));
  }
  void strz(std::uint16_t type, std::string_view s) noexcept {
    assert(s.size() < IFNAMSIZ);
    std::array<char, IFNAMSIZ> z{};
    std::memcpy(z.data(), s.data(), std::min(s.size(), z.size() - 1));
    check(mnl_attr_put_strz_check(nlh_, kCapacity, type, z.data()));
  }
  void u8(std::uint16_t type, std::uint8_t v) noexcept {
    check(mnl_attr_put_check(nlh_, kCapacity, type, sizeof v, &v));
  }
  template <std::size_t N>
  void raw(std::uint16_t type, const std::array<std::uint8_t, N>& v) noexcept {
    check(mnl_attr_put_check(nlh_, kCapacity, type, N, v.data()));
  }
  nlattr* nest_start(std::uint16_t type) noexcept {
    auto* nest = mnl_attr_nest_start_check(nlh_, kCapacity, type);
    check(nest != nullptr);
    return nest;
  }
  void nest_end(nlattr* nest) noexcept {
    if (nest != nullptr) mnl_attr_nest_end(nlh_, nest);
  }

  Message finish() const {
    const auto* first = reinterpret_cast<const std::byte*>(buf_.data());
    return Message(first, first + nlh_->nlmsg_len);
  }

 private:
  static void check([[maybe_unused]] bool fits) noexcept { assert(fits); }

  alignas(nlmsghdr) std::array<unsigned char, kCapacity> buf_{};
  nlmsghdr* nlh_;
};

Message link_change(std::uint32_t seq, std::uint32_t ifindex, unsigned flags, unsigned change) {
  Builder b{RTM_NEWLINK, 0, seq};
  auto& ifi = b.family_header<ifinfomsg>();
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  ifi.ifi_flags = flags;
  ifi.ifi_change = change;
  return b.finish();
}

static_assert(kIp6TunnelFlags == (IP6_TNL_F_IGN_ENCAP_LIMIT | IP6_TNL_F_USE_ORIG_TCLASS));

// IFLA_LINKINFO of an ip6tnl device in mode ipip6 (ip6_tnl_netlink_parms reads these).
void ip6_tunnel_linkinfo(Builder& b, const Ip6Tunnel& t) {
  auto* linkinfo = b.nest_start(IFLA_LINKINFO);
  b.strz(IFLA_INFO_KIND, "ip6tnl");
  auto* data = b.nest_start(IFLA_INFO_DATA);
  b.u32(IFLA_IPTUN_LINK, t.link);
  b.raw(IFLA_IPTUN_LOCAL, t.local.bytes());
  b.raw(IFLA_IPTUN_REMOTE, t.remote.bytes());
  b.u8(IFLA_IPTUN_TTL, t.hop_limit);
  b.u32(IFLA_IPTUN_FLAGS, kIp6TunnelFlags);
  b.u8(IFLA_IPTUN_PROTO, IPPROTO_IPIP);
  b.nest_end(data);
  b.nest_end(linkinfo);
}

template <std::size_t N>
Message address_message(std::uint16_t type, std::uint16_t flags, std::uint32_t seq,
                        std::uint8_t family, std::uint32_t ifindex,
                        const std::array<std::uint8_t, N>& address, std::uint8_t prefix_len,
                        std::uint8_t address_flags) {
  Builder b{type, flags, seq};
  auto& ifa = b.family_header<ifaddrmsg>();
  ifa.ifa_family = family;
  ifa.ifa_prefixlen = prefix_len;
  ifa.ifa_flags = address_flags;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = ifindex;
  b.raw(IFA_LOCAL, address);
  b.raw(IFA_ADDRESS, address);
  return b.finish();
}

// Both families' routes, with the address bytes already taken out of the core types.
template <std::size_t N>
struct RouteFields {
  std::uint8_t family;
  std::array<std::uint8_t, N> destination;
  unsigned prefix_len;
  std::optional<std::array<std::uint8_t, N>> gateway;
  std::optional<std::uint32_t> oif;
  std::uint32_t table;
  std::optional<std::uint32_t> metric;
};

template <std::size_t N>
Message route_message(bool add, std::uint32_t seq, const RouteFields<N>& r) {
  Builder b{add ? std::uint16_t{RTM_NEWROUTE} : std::uint16_t{RTM_DELROUTE},
            add ? std::uint16_t{NLM_F_CREATE | NLM_F_EXCL} : std::uint16_t{0}, seq};
  auto& rtm = b.family_header<rtmsg>();
  rtm.rtm_family = r.family;
  rtm.rtm_dst_len = static_cast<std::uint8_t>(r.prefix_len);
  // rtm_table is 8 bits; larger ids travel in RTA_TABLE with rtm_table "unspecified".
  const bool small_table = r.table < 256;
  rtm.rtm_table = small_table ? static_cast<std::uint8_t>(r.table) : std::uint8_t{RT_TABLE_UNSPEC};
  if (add) {
    rtm.rtm_protocol = RTPROT_STATIC;
    rtm.rtm_scope = r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    rtm.rtm_type = RTN_UNICAST;
  } else {
    rtm.rtm_scope = RT_SCOPE_NOWHERE;
  }
  if (!small_table) b.u32(RTA_TABLE, r.table);
  b.raw(RTA_DST, r.destination);
  if (r.gateway) b.raw(RTA_GATEWAY, *r.gateway);
  if (r.oif) b.u32(RTA_OIF, *r.oif);
  if (r.metric) b.u32(RTA_PRIORITY, *r.metric);
  return b.finish();
}

RouteFields<4> fields(const Ipv4Route& r) {
  std::optional<std::array<std::uint8_t, 4>> gw;
  if (r.gateway) gw = r.gateway->bytes();
  return {AF_INET, r.destination.network().bytes(), r.destination.length(), gw, r.oif, r.table,
          r.metric};
}

RouteFields<16> fields(const Ipv6Route& r) {
  std::optional<std::array<std::uint8_t, 16>> gw;
  if (r.gateway) gw = r.gateway->bytes();
  return {AF_INET6, r.destination.network().bytes(), r.destination.length(), gw, r.oif, r.table,
          r.metric};
}

}  // namespace

Message link_set_up(std::uint32_t seq, std::uint32_t ifindex) {
  return link_change(seq, ifindex, IFF_UP, IFF_UP);
}

Message link_set_down(std::uint32_t seq, std::uint32_t ifindex) {
  return link_change(seq, ifindex, 0, IFF_UP);
}

Message link_set_mtu(std::uint32_t seq, std::uint32_t ifindex, std::uint32_t mtu) {
  Builder b{RTM_NEWLINK, 0, seq};
  auto& ifi = b.family_header<ifinfomsg>();
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  b.u32(IFLA_MTU, mtu);
  return b.finish();
}

Message link_get_by_name(std::uint32_t seq, std::string_view name) {
  Builder b{RTM_GETLINK, 0, seq};
  b.family_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  b.strz(IFLA_IFNAME, name);
  return b.finish();
}

Message veth_add(std::uint32_t seq, std::string_view name, std::string_view peer_name,
                 std::optional<int> peer_netns_fd) {
  Builder b{RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq};
  b.family_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  b.strz(IFLA_IFNAME, name);
  auto* linkinfo = b.nest_start(IFLA_LINKINFO);
  b.strz(IFLA_INFO_KIND, "veth");
  auto* data = b.nest_start(IFLA_INFO_DATA);
  // The peer is described like a link of its own: an ifinfomsg, then its attributes.
  auto* peer = b.nest_start(VETH_INFO_PEER);
  b.family_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  b.strz(IFLA_IFNAME, peer_name);
  if (peer_netns_fd) b.u32(IFLA_NET_NS_FD, static_cast<std::uint32_t>(*peer_netns_fd));
  b.nest_end(peer);
  b.nest_end(data);
  b.nest_end(linkinfo);
  return b.finish();
}

Message link_dump(std::uint32_t seq) {
  Builder b{RTM_GETLINK, NLM_F_DUMP, seq};
  b.family_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  return b.finish();
}

Message link_delete(std::uint32_t seq, std::uint32_t ifindex) {
  Builder b{RTM_DELLINK, 0, seq};
  auto& ifi = b.family_header<ifinfomsg>();
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  return b.finish();
}

Message ip6_tunnel_add(std::uint32_t seq, const Ip6Tunnel& tunnel) {
  Builder b{RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq};
  b.family_header<ifinfomsg>().ifi_family = AF_UNSPEC;
  b.strz(IFLA_IFNAME, tunnel.name);
  if (tunnel.mtu) b.u32(IFLA_MTU, *tunnel.mtu);
  ip6_tunnel_linkinfo(b, tunnel);
  return b.finish();
}

Message ip6_tunnel_change(std::uint32_t seq, std::uint32_t ifindex, const Ip6Tunnel& tunnel) {
  Builder b{RTM_NEWLINK, 0, seq};
  auto& ifi = b.family_header<ifinfomsg>();
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(ifindex);
  ip6_tunnel_linkinfo(b, tunnel);
  return b.finish();
}

Message address_add(std::uint32_t seq, std::uint32_t ifindex, core::Ipv4Address address,
                    std::uint8_t prefix_len) {
  return address_message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, AF_INET, ifindex,
                         address.bytes(), prefix_len, 0);
}

Message address_add(std::uint32_t seq, std::uint32_t ifindex, const core::Ipv6Address& address,
                    std::uint8_t prefix_len) {
  // Without IFA_F_NODAD the address stays tentative until the kernel's DAD work runs (even where
  // DAD is skipped), so a packet sent right after the ack could get another source address.
  return address_message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, AF_INET6, ifindex,
                         address.bytes(), prefix_len, IFA_F_NODAD);
}

Message address_delete(std::uint32_t seq, std::uint32_t ifindex, core::Ipv4Address address,
                       std::uint8_t prefix_len) {
  return address_message(RTM_DELADDR, 0, seq, AF_INET, ifindex, address.bytes(), prefix_len, 0);
}

Message address_delete(std::uint32_t seq, std::uint32_t ifindex, const core::Ipv6Address& address,
                       std::uint8_t prefix_len) {
  return address_message(RTM_DELADDR, 0, seq, AF_INET6, ifindex, address.bytes(), prefix_len, 0);
}

Message route_add(std::uint32_t seq, const Ipv4Route& route) {
  return route_message(true, seq, fields(route));
}
Message route_add(std::uint32_t seq, const Ipv6Route& route) {
  return route_message(true, seq, fields(route));
}
Message route_delete(std::uint32_t seq, const Ipv4Route& route) {
  return route_message(false, seq, fields(route));
}
Message route_delete(std::uint32_t seq, const Ipv6Route& route) {
  return route_message(false, seq, fields(route));
}

template <std::size_t N>
Message route_get_message(std::uint32_t seq, std::uint8_t family,
                          const std::array<std::uint8_t, N>& destination) {
  Builder b{RTM_GETROUTE, 0, seq};
  auto& rtm = b.family_header<rtmsg>();
  rtm.rtm_family = family;
  rtm.rtm_dst_len = static_cast<std::uint8_t>(N * 8);
  b.raw(RTA_DST, destination);
  return b.finish();
}

Message route_get(std::uint32_t seq, core::Ipv4Address destination) {
  return route_get_message(seq, AF_INET, destination.bytes());
}
Message route_get(std::uint32_t seq, const core::Ipv6Address& destination) {
  return route_get_message(seq, AF_INET6, destination.bytes());
}

Result<ParsedMessage> parse_message(Bytes bytes) noexcept {
  if (bytes.size() < kHeaderSize) return Errc::NetlinkTruncated;
  ParsedMessage m;
  m.header = {.length = load_u32(bytes.subspan(0, 4)),
              .type = load_u16(bytes.subspan(4, 2)),
              .flags = load_u16(bytes.subspan(6, 2)),
              .seq = load_u32(bytes.subspan(8, 4)),
              .port = load_u32(bytes.subspan(12, 4))};
  if (m.header.length < kHeaderSize) return Errc::NetlinkMalformed;
  if (m.header.length > bytes.size()) return Errc::NetlinkTruncated;
  m.payload = bytes.subspan(kHeaderSize, m.header.length - kHeaderSize);
  // The last message of a datagram may omit its padding.
  m.size = std::min(align4(m.header.length), bytes.size());
  return m;
}

Result<std::vector<Attribute>> parse_attributes(Bytes bytes) {
  std::vector<Attribute> out;
  // Each step consumes at least 4 bytes, so the loop ends within bytes.size() / 4 rounds.
  while (!bytes.empty()) {
    if (bytes.size() < 4) return Errc::NetlinkMalformed;
    const std::uint16_t len = load_u16(bytes.subspan(0, 2));
    if (len < 4 || len > bytes.size()) return Errc::NetlinkMalformed;
    // Strip NLA_F_NESTED (0x8000) and NLA_F_NET_BYTEORDER (0x4000): NLA_TYPE_MASK.
    const auto type = static_cast<std::uint16_t>(load_u16(bytes.subspan(2, 2)) & 0x3fffu);
    out.push_back({type, bytes.subspan(4, len - 4u)});
    bytes = bytes.subspan(std::min(align4(len), bytes.size()));
  }
  return out;
}

Result<Ack> parse_ack(const ParsedMessage& message) {
  if (message.header.type != NLMSG_ERROR) return Errc::NetlinkMalformed;
  // struct nlmsgerr: int error, then the request's header (and its payload unless capped).
  const Bytes p = message.payload;
  constexpr std::size_t kErrSize = 4 + kHeaderSize;
  if (p.size() < kErrSize) return Errc::NetlinkTruncated;
  const auto error = static_cast<std::int32_t>(load_u32(p.subspan(0, 4)));
  // The kernel sends 0 or -errno; anything else would make our errno a lie.
  if (error > 0 || error < -4095) return Errc::NetlinkMalformed;
  std::size_t offset = kErrSize;
  if ((message.header.flags & NLM_F_CAPPED) == 0) {
    const std::uint32_t echoed = load_u32(p.subspan(4, 4));
    if (echoed < kHeaderSize) return Errc::NetlinkMalformed;
    offset += align4(echoed - kHeaderSize);
    if (offset > p.size()) return Errc::NetlinkTruncated;
  }
  Ack ack{.error = -error, .message = {}};
  if ((message.header.flags & NLM_F_ACK_TLVS) == 0) return ack;

  auto attributes = parse_attributes(p.subspan(offset));
  if (!attributes) return attributes.error();
  for (const auto& a : *attributes) {
    if (a.type != NLMSGERR_ATTR_MSG) continue;
    // A NUL-terminated string; stop at the first NUL, or at the end if it has none.
    const auto nul = std::find(a.payload.begin(), a.payload.end(), std::byte{0});
    ack.message.clear();
    for (auto it = a.payload.begin(); it != nul; ++it)
      ack.message.push_back(static_cast<char>(*it));
  }
  return ack;
}

Result<LinkInfo> parse_link(const ParsedMessage& message) {
  // struct ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32.
  if (message.header.type != RTM_NEWLINK && message.header.type != RTM_DELLINK) {
    return Errc::NetlinkMalformed;
  }
  if (message.payload.size() < sizeof(ifinfomsg)) return Errc::NetlinkTruncated;
  const auto index = static_cast<std::int32_t>(load_u32(message.payload.subspan(4, 4)));
  if (index <= 0) return Errc::NetlinkMalformed;
  LinkInfo link{.index = static_cast<std::uint32_t>(index),
                .flags = load_u32(message.payload.subspan(8, 4)),
                .name = {},
                .mtu = 0,
                .operstate = 0,
                .kind = {}};
  auto attributes = parse_attributes(message.payload.subspan(sizeof(ifinfomsg)));
  if (!attributes) return attributes.error();
  for (const auto& a : *attributes) {
    if (a.type == IFLA_IFNAME) {
      const auto nul = std::find(a.payload.begin(), a.payload.end(), std::byte{0});
      for (auto it = a.payload.begin(); it != nul; ++it)
        link.name.push_back(static_cast<char>(*it));
    } else if (a.type == IFLA_MTU) {
      if (a.payload.size() != 4) return Errc::NetlinkMalformed;
      link.mtu = load_u32(a.payload);
    } else if (a.type == IFLA_OPERSTATE) {
      if (a.payload.size() != 1) return Errc::NetlinkMalformed;
      link.operstate = std::to_integer<std::uint8_t>(a.payload[0]);
    } else if (a.type == IFLA_LINKINFO) {
      auto info = parse_attributes(a.payload);
      if (!info) return info.error();
      for (const auto& i : *info) {
        if (i.type != IFLA_INFO_KIND) continue;
        const auto nul = std::find(i.payload.begin(), i.payload.end(), std::byte{0});
        for (auto it = i.payload.begin(); it != nul; ++it)
          link.kind.push_back(static_cast<char>(*it));
      }
    }
  }
  return link;
}

Result<RouteInfo> parse_route(const ParsedMessage& message) {
  if (message.header.type != RTM_NEWROUTE && message.header.type != RTM_DELROUTE) {
    return Errc::NetlinkMalformed;
  }
  // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags.
  const Bytes p = message.payload;
  if (p.size() < sizeof(rtmsg)) return Errc::NetlinkTruncated;
  const auto u8 = [&](std::size_t i) { return std::to_integer<std::uint8_t>(p[i]); };
  RouteInfo route{.family = u8(0),
                  .dst_len = u8(1),
                  .protocol = u8(5),
                  .scope = u8(6),
                  .type = u8(7),
                  .table = u8(4),
                  .destination = {},
                  .oif = {}};
  auto attributes = parse_attributes(p.subspan(sizeof(rtmsg)));
  if (!attributes) return attributes.error();
  for (const auto& a : *attributes) {
    if (a.type == RTA_TABLE) {
      if (a.payload.size() != 4) return Errc::NetlinkMalformed;
      route.table = load_u32(a.payload);
    } else if (a.type == RTA_OIF) {
      if (a.payload.size() != 4) return Errc::NetlinkMalformed;
      route.oif = load_u32(a.payload);
    } else if (a.type == RTA_DST) {
      if (a.payload.size() != 4 && a.payload.size() != 16) return Errc::NetlinkMalformed;
      for (auto b : a.payload) route.destination.push_back(std::to_integer<std::uint8_t>(b));
    }
  }
  return route;
}

}  // namespace netlink

namespace {

// Bounds on one exchange or wait, on top of the deadline: no reply we ask for comes near them.
constexpr int kMaxDatagrams = 1024;
// A dump of every link: thousands of ip6tnl devices are possible with the kernel backend.
constexpr std::size_t kMaxReplies = 16384;
constexpr std::size_t kReceiveBuffer = 64 * 1024;

NetlinkError error_of(boost::system::error_code code) {
  return {code, {}};
}

// The next datagram, waiting until the deadline: its size, or 0 at the deadline.
NetlinkResult<std::size_t> receive(int fd, std::vector<std::byte>& buffer,
                                   std::chrono::steady_clock::time_point deadline) {
  for (int attempt = 0; attempt < kMaxDatagrams; ++attempt) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::size_t{0};
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return error_of(errno_code(errno));
    if (ready <= 0) continue;  // EINTR or timeout: the deadline check above decides
    // MSG_TRUNC makes recv return the real datagram length, so a cut datagram is detectable.
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return error_of(errno_code(errno));  // ENOBUFS: the socket overran and lost messages
    }
    if (static_cast<std::size_t>(n) > buffer.size()) return error_of(Errc::NetlinkTruncated);
    if (n > 0) return static_cast<std::size_t>(n);
  }
  return std::size_t{0};
}

// A NETLINK_ROUTE socket in the calling thread's namespace, bound to a kernel-assigned port and
// the given multicast groups; returns the port.
Result<std::pair<Fd, std::uint32_t>> open_route_socket(std::span<const unsigned> groups) {
  Fd fd{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)};
  if (!fd) return errno_code(errno);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;  // port 0: the kernel assigns a unique one
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    return errno_code(errno);
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    return errno_code(errno);
  }
  // NETLINK_ADD_MEMBERSHIP takes group numbers beyond the 32 that nl_groups can express.
  for (const unsigned group : groups) {
    if (::setsockopt(fd.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
      return errno_code(errno);
    }
  }
  return std::pair{std::move(fd), addr.nl_pid};
}

}  // namespace

Result<NetlinkClient> NetlinkClient::open(std::chrono::milliseconds timeout) {
  auto socket = open_route_socket({});
  if (!socket) return socket.error();
  auto& [fd, port] = *socket;
  const int one = 1;
  // EXT_ACK: the kernel explains errors in text. CAP_ACK: it does not echo our request back.
  if (::setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) < 0 ||
      ::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one) < 0) {
    return errno_code(errno);
  }
  return NetlinkClient{std::move(fd), port, timeout};
}

NetlinkClient::NetlinkClient(Fd fd, std::uint32_t port, std::chrono::milliseconds timeout)
    : fd_{std::move(fd)}, port_{port}, timeout_{timeout}, buffer_(kReceiveBuffer) {}

NetlinkResult<void> NetlinkClient::call(netlink::Bytes request) {
  return exchange(request, nullptr);
}

NetlinkResult<std::vector<netlink::Message>> NetlinkClient::query(netlink::Bytes request) {
  std::vector<netlink::Message> replies;
  if (auto r = exchange(request, &replies); !r) return r.error();
  return replies;
}

NetlinkResult<void> NetlinkClient::exchange(netlink::Bytes request,
                                            std::vector<netlink::Message>* replies) {
  auto header = netlink::parse_message(request);
  if (!header) return error_of(header.error());
  const std::uint32_t seq = header->header.seq;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent = -1;
  for (int attempt = 0; attempt < 3 && sent < 0; ++attempt) {
    sent = ::sendto(fd_.get(), request.data(), request.size(), 0,
                    reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
    if (sent < 0 && errno != EINTR) return error_of(errno_code(errno));
  }
  if (sent < 0) return error_of(errno_code(EINTR));
  if (static_cast<std::size_t>(sent) != request.size()) {
    return error_of(Errc::NetlinkTruncated);
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::size_t matched = 0;
  for (int datagram = 0; datagram < kMaxDatagrams; ++datagram) {
    auto n = receive(fd_.get(), buffer_, deadline);
    if (!n) return n.error();
    if (*n == 0) return error_of(Errc::AckTimeout);
    netlink::Bytes rest{buffer_.data(), *n};
    while (!rest.empty()) {
      auto m = netlink::parse_message(rest);
      if (!m) return error_of(m.error());
      const netlink::Bytes whole = rest.first(m->header.length);
      rest = rest.subspan(m->size);
      if (m->header.seq != seq || m->header.port != port_) continue;  // a leftover
      if (++matched > kMaxReplies) return error_of(Errc::TooManyReplies);
      if (m->header.type == NLMSG_ERROR) {
        auto ack = netlink::parse_ack(*m);
        if (!ack) return error_of(ack.error());
        if (ack->error != 0) return NetlinkError{errno_code(ack->error), std::move(ack->message)};
        return {};
      }
      if (m->header.type == NLMSG_DONE) {
        // The end of a dump: an int, 0 or -errno (extended-ack text after it is not read).
        if (m->payload.size() >= 4) {
          const auto error = static_cast<std::int32_t>(netlink::load_u32(m->payload.first(4)));
          if (error < 0 && error >= -4095) return error_of(errno_code(-error));
        }
        return {};
      }
      if (m->header.type == NLMSG_NOOP) continue;
      if (replies != nullptr) replies->emplace_back(whole.begin(), whole.end());
    }
  }
  return error_of(Errc::TooManyReplies);
}

NetlinkResult<netlink::Message> NetlinkClient::query_one(netlink::Bytes request,
                                                         std::uint16_t type) {
  auto replies = query(request);
  if (!replies) return replies.error();
  for (auto& reply : *replies) {
    auto m = netlink::parse_message(reply);
    if (m && m->header.type == type) return std::move(reply);
  }
  return error_of(Errc::MissingReply);
}

NetlinkResult<netlink::LinkInfo> NetlinkClient::link(std::string_view name) {
  if (name.size() >= IFNAMSIZ) return error_of(Errc::NameTooLong);
  auto reply = query_one(netlink::link_get_by_name(next_sequence(), name), RTM_NEWLINK);
  if (!reply) return reply.error();
  auto link = netlink::parse_link(netlink::parse_message(*reply).value());
  if (!link) return error_of(link.error());
  return std::move(*link);
}

NetlinkResult<std::uint32_t> NetlinkClient::link_index(std::string_view name) {
  auto l = link(name);
  if (!l) return l.error();
  return l->index;
}

NetlinkResult<netlink::RouteInfo> NetlinkClient::route_to(core::Ipv4Address destination) {
  auto reply = query_one(netlink::route_get(next_sequence(), destination), RTM_NEWROUTE);
  if (!reply) return reply.error();
  auto route = netlink::parse_route(netlink::parse_message(*reply).value());
  if (!route) return error_of(route.error());
  return std::move(*route);
}

NetlinkResult<netlink::RouteInfo> NetlinkClient::route_to(const core::Ipv6Address& destination) {
  auto reply = query_one(netlink::route_get(next_sequence(), destination), RTM_NEWROUTE);
  if (!reply) return reply.error();
  auto route = netlink::parse_route(netlink::parse_message(*reply).value());
  if (!route) return error_of(route.error());
  return std::move(*route);
}

NetlinkResult<void> NetlinkClient::set_link_up(std::uint32_t ifindex) {
  return call(netlink::link_set_up(next_sequence(), ifindex));
}
NetlinkResult<void> NetlinkClient::set_link_down(std::uint32_t ifindex) {
  return call(netlink::link_set_down(next_sequence(), ifindex));
}
NetlinkResult<void> NetlinkClient::set_mtu(std::uint32_t ifindex, std::uint32_t mtu) {
  return call(netlink::link_set_mtu(next_sequence(), ifindex, mtu));
}
NetlinkResult<void> NetlinkClient::add_address(std::uint32_t ifindex, core::Ipv4Address address,
                                               std::uint8_t prefix_len) {
  return call(netlink::address_add(next_sequence(), ifindex, address, prefix_len));
}
NetlinkResult<void> NetlinkClient::add_address(std::uint32_t ifindex,
                                               const core::Ipv6Address& address,
                                               std::uint8_t prefix_len) {
  return call(netlink::address_add(next_sequence(), ifindex, address, prefix_len));
}
NetlinkResult<void> NetlinkClient::delete_address(std::uint32_t ifindex, core::Ipv4Address address,
                                                  std::uint8_t prefix_len) {
  return call(netlink::address_delete(next_sequence(), ifindex, address, prefix_len));
}
NetlinkResult<void> NetlinkClient::delete_address(std::uint32_t ifindex,
                                                  const core::Ipv6Address& address,
                                                  std::uint8_t prefix_len) {
  return call(netlink::address_delete(next_sequence(), ifindex, address, prefix_len));
}
NetlinkResult<std::vector<netlink::LinkInfo>> NetlinkClient::links() {
  auto replies = query(netlink::link_dump(next_sequence()));
  if (!replies) return replies.error();
  std::vector<netlink::LinkInfo> out;
  for (const auto& reply : *replies) {
    auto m = netlink::parse_message(reply);
    if (!m || m->header.type != RTM_NEWLINK) continue;
    auto link = netlink::parse_link(*m);
    if (!link) return error_of(link.error());
    out.push_back(std::move(*link));
  }
  return out;
}

NetlinkResult<void> NetlinkClient::delete_link(std::uint32_t ifindex) {
  return call(netlink::link_delete(next_sequence(), ifindex));
}
NetlinkResult<std::uint32_t> NetlinkClient::add_ip6_tunnel(const netlink::Ip6Tunnel& tunnel) {
  if (tunnel.name.size() >= IFNAMSIZ) return error_of(Errc::NameTooLong);
  if (auto r = call(netlink::ip6_tunnel_add(next_sequence(), tunnel)); !r) return r.error();
  return link_index(tunnel.name);
}
NetlinkResult<void> NetlinkClient::change_ip6_tunnel(std::uint32_t ifindex,
                                                     const netlink::Ip6Tunnel& tunnel) {
  return call(netlink::ip6_tunnel_change(next_sequence(), ifindex, tunnel));
}
NetlinkResult<void> NetlinkClient::add_route(const netlink::Ipv4Route& route) {
  return call(netlink::route_add(next_sequence(), route));
}
NetlinkResult<void> NetlinkClient::add_route(const netlink::Ipv6Route& route) {
  return call(netlink::route_add(next_sequence(), route));
}
NetlinkResult<void> NetlinkClient::delete_route(const netlink::Ipv4Route& route) {
  return call(netlink::route_delete(next_sequence(), route));
}
NetlinkResult<void> NetlinkClient::delete_route(const netlink::Ipv6Route& route) {
  return call(netlink::route_delete(next_sequence(), route));
}

Result<NetlinkMonitor> NetlinkMonitor::open(std::span<const unsigned> groups) {
  auto socket = open_route_socket(groups);
  if (!socket) return socket.error();
  return NetlinkMonitor{std::move(socket->first)};
}

NetlinkMonitor::NetlinkMonitor(Fd fd) : fd_{std::move(fd)}, buffer_(kReceiveBuffer) {}

NetlinkResult<void> NetlinkMonitor::wait_for(
    const std::function<bool(const netlink::ParsedMessage&)>& match,
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int datagram = 0; datagram < kMaxDatagrams; ++datagram) {
    auto n = receive(fd_.get(), buffer_, deadline);
    if (!n) return n.error();
    if (*n == 0) return error_of(Errc::NotificationTimeout);
    netlink::Bytes rest{buffer_.data(), *n};
    while (!rest.empty()) {
      auto m = netlink::parse_message(rest);
      if (!m) return error_of(m.error());
      rest = rest.subspan(m->size);
      if (match(*m)) return {};
    }
  }
  return error_of(Errc::TooManyReplies);
}

}  // namespace platform
