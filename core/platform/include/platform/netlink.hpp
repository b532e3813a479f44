// rtnetlink: requests built as values by pure functions, reply parsing with checked lengths, and
// the one client that sends a request and waits for its ack.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "core/address.hpp"
#include "platform/error.hpp"
#include "platform/fd.hpp"

namespace platform {

// A netlink error: the errno (system_category) or a platform::Errc, and the kernel's extended-ack
// text (NLMSGERR_ATTR_MSG) when it sent one, e.g. {ENETUNREACH, "Nexthop has invalid gateway"}.
struct NetlinkError {
  boost::system::error_code code;
  std::string kernel_message;

  // "Network is unreachable: Nexthop has invalid gateway", or just the code's message.
  std::string to_string() const;
  friend bool operator==(const NetlinkError&, const NetlinkError&) = default;
};

// to_string() on a stream (for diagnostics and test output).
std::ostream& operator<<(std::ostream& os, const NetlinkError& e);

// Lets result<T, NetlinkError>::value() throw a boost::system::system_error carrying both parts.
[[noreturn]] void throw_exception_from_error(const NetlinkError& e,
                                             const boost::source_location& loc);

template <typename T>
using NetlinkResult = boost::system::result<T, NetlinkError>;

namespace netlink {

// One whole netlink message, header included, in host byte order as the kernel wants it.
using Message = std::vector<std::byte>;
using Bytes = std::span<const std::byte>;

inline constexpr std::uint32_t kMainTable = 254;  // RT_TABLE_MAIN

struct Ipv4Route {
  core::Ipv4Prefix destination;
  std::optional<core::Ipv4Address> gateway;
  std::optional<std::uint32_t> oif;     // output interface index
  std::uint32_t table = kMainTable;     // > 255 goes in RTA_TABLE
  std::optional<std::uint32_t> metric;  // RTA_PRIORITY
};

struct Ipv6Route {
  core::Ipv6Prefix destination;
  std::optional<core::Ipv6Address> gateway;
  std::optional<std::uint32_t> oif;
  std::uint32_t table = kMainTable;
  std::optional<std::uint32_t> metric;
};

// --- Requests. Each is a complete message with NLM_F_REQUEST | NLM_F_ACK, sequence number seq
// and port id 0. Adds use NLM_F_CREATE | NLM_F_EXCL, so adding what exists fails with EEXIST.
// Values are written as given; the kernel is the one that validates them (and says why in its
// extended ack).

// RTM_NEWLINK changing only IFF_UP.
Message link_set_up(std::uint32_t seq, std::uint32_t ifindex);
Message link_set_down(std::uint32_t seq, std::uint32_t ifindex);
// RTM_NEWLINK with IFLA_MTU (bytes).
Message link_set_mtu(std::uint32_t seq, std::uint32_t ifindex, std::uint32_t mtu);
// RTM_GETLINK with IFLA_IFNAME; the kernel answers with one RTM_NEWLINK, then the ack.
// Precondition: name.size() < 16 (IFNAMSIZ).
Message link_get_by_name(std::uint32_t seq, std::string_view name);
// RTM_NEWLINK creating a veth pair: `name` in the socket's namespace, `peer_name` in the
// namespace open as peer_netns_fd (IFLA_NET_NS_FD), or beside `name` when absent.
// Preconditions: both names < 16 bytes.
Message veth_add(std::uint32_t seq, std::string_view name, std::string_view peer_name,
                 std::optional<int> peer_netns_fd);

// RTM_GETLINK with NLM_F_DUMP: every link of the namespace, one RTM_NEWLINK each, then
// NLMSG_DONE (a dump has no ack).
Message link_dump(std::uint32_t seq);
// RTM_DELLINK for ifindex (`ip link del`).
Message link_delete(std::uint32_t seq, std::uint32_t ifindex);

// An ip6tnl device (net/ipv6/ip6_tunnel.c) in mode ipip6: IPv4 carried in IPv6 with next header
// 4, as `ip link add NAME type ip6tnl mode ipip6 local L remote R ttl H encaplimit none
// tclass inherit` makes it. Every IFLA_IPTUN_* attribute the kernel reads is written, because a
// change starts from zeroed parameters rather than the device's current ones.
struct Ip6Tunnel {
  std::string name;                  // IFLA_IFNAME, < 16 bytes
  core::Ipv6Address local;           // IFLA_IPTUN_LOCAL; :: matches any local address
  core::Ipv6Address remote;          // IFLA_IPTUN_REMOTE; :: receives from anyone (cannot send)
  std::uint32_t link = 0;            // IFLA_IPTUN_LINK: the underlying device, 0 for any
  std::uint8_t hop_limit = 64;       // IFLA_IPTUN_TTL
  std::optional<std::uint32_t> mtu;  // IFLA_MTU of the device (the inner packets' MTU)
};

// The flags every Ip6Tunnel carries in IFLA_IPTUN_FLAGS (linux/ip6_tunnel.h):
// IP6_TNL_F_IGN_ENCAP_LIMIT, so no destination-options header sits between the outer header and
// the inner packet (RFC 2473 section 4.1.1 makes it optional; the user-space codec and the BPF
// path read next header 4 right after the fixed header), and IP6_TNL_F_USE_ORIG_TCLASS, so the
// traffic class is the inner TOS (as tep::encapsulate does). The flow label is left to the
// kernel's automatic one (a hash of the inner flow, like RFC 6438).
inline constexpr std::uint32_t kIp6TunnelFlags = 0x1 | 0x2;

// RTM_NEWLINK with NLM_F_CREATE | NLM_F_EXCL creating `tunnel`:
//   ifinfomsg, IFLA_IFNAME, [IFLA_MTU], IFLA_LINKINFO { IFLA_INFO_KIND "ip6tnl",
//   IFLA_INFO_DATA { IFLA_IPTUN_LINK, _LOCAL, _REMOTE, _TTL, _FLAGS, _PROTO (IPPROTO_IPIP) } }.
// The device is created down. Precondition: tunnel.name.size() < 16.
Message ip6_tunnel_add(std::uint32_t seq, const Ip6Tunnel& tunnel);
// RTM_NEWLINK on ifindex (no create flags) with the same IFLA_LINKINFO: new end points for an
// existing device (ip6_tnl_changelink). Name and MTU are not part of it: the kernel resets the
// MTU from the route toward the new remote, so set it again afterwards.
Message ip6_tunnel_change(std::uint32_t seq, std::uint32_t ifindex, const Ip6Tunnel& tunnel);

// RTM_NEWADDR / RTM_DELADDR: address/prefix_len on ifindex (IFA_LOCAL and IFA_ADDRESS both set,
// as `ip address add` does for a non-point-to-point address). IPv6 addresses are added with
// IFA_F_NODAD, so they are never tentative: the appliance adds addresses to its own TUN and tunnel
// links, where duplicate detection would only delay them. The kernel still installs an IPv6
// address's local route just after the ack (see NetlinkMonitor).
Message address_add(std::uint32_t seq, std::uint32_t ifindex, core::Ipv4Address address,
                    std::uint8_t prefix_len);
Message address_add(std::uint32_t seq, std::uint32_t ifindex, const core::Ipv6Address& address,
                    std::uint8_t prefix_len);
Message address_delete(std::uint32_t seq, std::uint32_t ifindex, core::Ipv4Address address,
                       std::uint8_t prefix_len);
Message address_delete(std::uint32_t seq, std::uint32_t ifindex, const core::Ipv6Address& address,
                       std::uint8_t prefix_len);

// RTM_NEWROUTE: unicast, protocol static, scope link when there is no gateway (a device route)
// and universe otherwise. RTM_DELROUTE: scope "nowhere", protocol and type unspecified, which
// the kernel reads as "any", as `ip route del` does.
Message route_add(std::uint32_t seq, const Ipv4Route& route);
Message route_add(std::uint32_t seq, const Ipv6Route& route);
Message route_delete(std::uint32_t seq, const Ipv4Route& route);
Message route_delete(std::uint32_t seq, const Ipv6Route& route);

// RTM_GETROUTE for one destination (RTA_DST, full length): the kernel answers with the route it
// would use, e.g. type RTN_LOCAL once the address is this host's, then the ack.
Message route_get(std::uint32_t seq, core::Ipv4Address destination);
Message route_get(std::uint32_t seq, const core::Ipv6Address& destination);

// --- Replies. Pure parsing with every length checked against the bytes present; used by
// NetlinkClient, public so that tests can feed hand-written and hostile bytes.

struct MessageHeader {
  std::uint32_t length = 0;  // nlmsg_len: header plus payload
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t port = 0;
};

struct ParsedMessage {
  MessageHeader header;
  Bytes payload;         // the length - 16 bytes after the header
  std::size_t size = 0;  // bytes this message occupies in its datagram, alignment included
};

// The first message in `bytes` (a datagram or what is left of one). Errc::NetlinkTruncated when
// fewer than 16 bytes remain; Errc::NetlinkMalformed when nlmsg_len is below 16 or beyond them.
Result<ParsedMessage> parse_message(Bytes bytes) noexcept;

// What an NLMSG_ERROR message says: error 0 is an ack, otherwise the positive errno. message is
// NLMSGERR_ATTR_MSG (also possible on success, as a warning), empty when absent.
struct Ack {
  int error = 0;
  std::string message;
  friend bool operator==(const Ack&, const Ack&) = default;
};

// Parses an NLMSG_ERROR message with or without the echoed request (NLM_F_CAPPED) and its
// extended-ack attributes (NLM_F_ACK_TLVS). Errors: Errc::NetlinkMalformed for another type, a
// short payload, an attribute whose length lies, or an errno outside 0..4095.
Result<Ack> parse_ack(const ParsedMessage& message);

// One attribute (struct nlattr / rtattr): its type without the NLA_F_NESTED and
// NLA_F_NET_BYTEORDER bits, and its payload (padding excluded).
struct Attribute {
  std::uint16_t type = 0;
  Bytes payload;
};

// The attributes packed in `bytes`, each padded to 4. Errc::NetlinkMalformed when a length is
// below the attribute header, beyond the bytes left, or when 1..3 stray bytes end the area.
Result<std::vector<Attribute>> parse_attributes(Bytes bytes);

inline constexpr std::uint8_t kOperUp = 6;  // IF_OPER_UP (RFC 2863)

// An RTM_NEWLINK message (a reply or a notification): struct ifinfomsg and the attributes we use.
struct LinkInfo {
  std::uint32_t index = 0;
  std::uint32_t flags = 0;     // IFF_*
  std::string name;            // IFLA_IFNAME
  std::uint32_t mtu = 0;       // IFLA_MTU, 0 when absent
  std::uint8_t operstate = 0;  // IFLA_OPERSTATE (kOperUp...), 0 "unknown" when absent
  std::string kind;            // IFLA_LINKINFO / IFLA_INFO_KIND ("ip6tnl", "veth"...), or empty
};
Result<LinkInfo> parse_link(const ParsedMessage& message);

// An RTM_NEWROUTE / RTM_DELROUTE message: struct rtmsg and the attributes we use.
struct RouteInfo {
  std::uint8_t family = 0;
  std::uint8_t dst_len = 0;
  std::uint8_t protocol = 0;
  std::uint8_t scope = 0;
  std::uint8_t type = 0;                  // RTN_UNICAST (1), RTN_LOCAL (2)...
  std::uint32_t table = 0;                // RTA_TABLE when present, else rtm_table
  std::vector<std::uint8_t> destination;  // RTA_DST in network order; empty for a default route
  std::optional<std::uint32_t> oif;       // RTA_OIF
};
Result<RouteInfo> parse_route(const ParsedMessage& message);

}  // namespace netlink

// The one rtnetlink client: sends a request built above and waits, bounded by a timeout, for its
// ack. One request at a time; not thread-safe (use it from one thread, or one per thread).
// The socket belongs to the network namespace of the thread that opened it, for its whole life;
// so a thread that setns()'d into a namespace can open a client and hand it to any thread.
class NetlinkClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{2000};

  // Opens NETLINK_ROUTE with NETLINK_EXT_ACK (error text) and NETLINK_CAP_ACK (no echoed
  // request in acks). Errors: errno from socket/bind/setsockopt.
  static Result<NetlinkClient> open(std::chrono::milliseconds timeout = kDefaultTimeout);

  // The sequence number for the next request; each call returns a new one.
  std::uint32_t next_sequence() noexcept { return ++seq_; }

  // Sends `request` (whose header carries its sequence number) and waits for the ack with that
  // number, or for NLMSG_DONE when it is a dump (an error in NLMSG_DONE is returned as one).
  // Other messages with that number are data replies: query() returns them in order.
  // Messages with other numbers are leftovers of a request that timed out, and are skipped.
  // Errors: the kernel's errno and text; errno of send/recv; Errc::AckTimeout,
  // netlink_truncated, netlink_malformed, too_many_replies.
  NetlinkResult<void> call(netlink::Bytes request);
  NetlinkResult<std::vector<netlink::Message>> query(netlink::Bytes request);

  // Conveniences: build, call, and parse.
  NetlinkResult<netlink::LinkInfo> link(std::string_view name);    // Errc::NameTooLong too
  NetlinkResult<std::uint32_t> link_index(std::string_view name);  // link(name).index
  // The route the kernel would use toward destination (its RTM_GETROUTE answer).
  NetlinkResult<netlink::RouteInfo> route_to(core::Ipv4Address destination);
  NetlinkResult<netlink::RouteInfo> route_to(const core::Ipv6Address& destination);
  NetlinkResult<void> set_link_up(std::uint32_t ifindex);
  NetlinkResult<void> set_link_down(std::uint32_t ifindex);
  NetlinkResult<void> set_mtu(std::uint32_t ifindex, std::uint32_t mtu);
  NetlinkResult<void> add_address(std::uint32_t ifindex, core::Ipv4Address address,
                                  std::uint8_t prefix_len);
  NetlinkResult<void> add_address(std::uint32_t ifindex, const core::Ipv6Address& address,
                                  std::uint8_t prefix_len);
  NetlinkResult<void> delete_address(std::uint32_t ifindex, core::Ipv4Address address,
                                     std::uint8_t prefix_len);
  NetlinkResult<void> delete_address(std::uint32_t ifindex, const core::Ipv6Address& address,
                                     std::uint8_t prefix_len);
  // Every link of the namespace (a dump).
  NetlinkResult<std::vector<netlink::LinkInfo>> links();
  NetlinkResult<void> delete_link(std::uint32_t ifindex);
  // Creates the ip6tnl device and returns its ifindex. Errors: the kernel's (EOPNOTSUPP "Unknown
  // device type" when it has no ip6tnl; EEXIST for a taken name or the same end points).
  NetlinkResult<std::uint32_t> add_ip6_tunnel(const netlink::Ip6Tunnel& tunnel);
  NetlinkResult<void> change_ip6_tunnel(std::uint32_t ifindex, const netlink::Ip6Tunnel& tunnel);
  NetlinkResult<void> add_route(const netlink::Ipv4Route& route);
  NetlinkResult<void> add_route(const netlink::Ipv6Route& route);
  NetlinkResult<void> delete_route(const netlink::Ipv4Route& route);
  NetlinkResult<void> delete_route(const netlink::Ipv6Route& route);

  int native_handle() const noexcept { return fd_.get(); }

 private:
  NetlinkClient(Fd fd, std::uint32_t port, std::chrono::milliseconds timeout);
  NetlinkResult<void> exchange(netlink::Bytes request, std::vector<netlink::Message>* replies);
  // The first reply of message type `type` to `request`, or Errc::MissingReply.
  NetlinkResult<netlink::Message> query_one(netlink::Bytes request, std::uint16_t type);

  Fd fd_;
  std::uint32_t port_ = 0;  // our port id, which the kernel's replies carry
  std::uint32_t seq_ = 0;
  std::chrono::milliseconds timeout_;
  std::vector<std::byte> buffer_;  // one receive buffer, reused
};

// Kernel notifications from rtnetlink multicast groups, to await what the kernel applies after its
// ack: a veth's operational state (set by the kernel's link watcher, up to a second later), or an
// IPv6 address's local route (installed by the kernel's DAD work, even with IFA_F_NODAD). Open the
// monitor, then check the current state (NetlinkClient), then wait: in that order nothing is
// missed. Like NetlinkClient, it belongs to the network namespace of the thread that opened it.
class NetlinkMonitor {
 public:
  // groups: RTNLGRP_* numbers (e.g. RTNLGRP_LINK = 1, RTNLGRP_IPV6_ROUTE = 11). Errors: errno.
  static Result<NetlinkMonitor> open(std::span<const unsigned> groups);

  // Reads notifications until match(message) is true or the timeout passes. Errors:
  // Errc::NotificationTimeout; ENOBUFS when notifications were lost (check the state again);
  // netlink_truncated / netlink_malformed.
  NetlinkResult<void> wait_for(const std::function<bool(const netlink::ParsedMessage&)>& match,
                               std::chrono::milliseconds timeout);

  int native_handle() const noexcept { return fd_.get(); }

 private:
  explicit NetlinkMonitor(Fd fd);

  Fd fd_;
  std::vector<std::byte> buffer_;
};

}  // namespace platform
