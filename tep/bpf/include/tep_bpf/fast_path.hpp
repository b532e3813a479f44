// The in-kernel 4over6 fast path: tc-BPF programs that encapsulate (RFC 2473, IPv4 in IPv6 with
// next header 4) on the TUN device's egress and decapsulate on the uplinks' ingress, in front of
// the user-space backend (tep/io), which still gets every packet the programs leave alone.
//
// Topology (TEP or client namespace): the IPv4 side is the TUN device the user-space backend
// reads (TEP: the pool routed into it; client: the IPv4 routes into it, the lease on it); tunnel
// packets travel over Ethernet uplinks. The encap program takes an IPv4 packet routed into the
// TUN device before user space sees it; the decap program takes a tunnel packet off an uplink and
// puts the inner packet into the TUN device's ingress, as if user space had written it there.
//
// What goes on to user space unchanged (counted by reason, see TEP_BPF_COUNTERS):
//   encap: no binding for the destination (Tep), not from the lease or no path set (Client), a
//          packet (or GSO segment) over tunnel_mtu or the route's MTU, no IPv6 route to the outer
//          destination, anything that is not a well-formed IPv4 packet;
//   decap: a tunnel packet whose inner packet is invalid (lengths, version, header checksum) or
//          ECN CE over Not-ECT (RFC 6040), an inner source without a binding or bound to another
//          client (Tep), a destination other than the lease or no path (Client), ICMP to (Tep) or
//          from (Client) the keepalive address, extension headers or fragments (not recognised
//          as tunnel packets at all).
// The programs' verdict for those is "no opinion" (TC_ACT_UNSPEC): the next program or filter
// on the hook still runs (e.g. a second FastPath for another local address on a shared uplink).
//
// Requirements: Linux >= 6.3 (bpf_skb_adjust_room decap flags, bpf_fib_lookup SKIP_NEIGH); tcx
// links need >= 6.6, older kernels get cls_bpf filters. Uplinks must be Ethernet devices.
// Lifetime: tcx links go with the process, however it ends. cls_bpf filters (the fallback)
// outlive a killed process: the TUN device's goes with the device, an uplink's stays (sending
// tunnel packets for that local address nowhere) until an open() with the same local address
// replaces it (same handle) or someone deletes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "platform/error.hpp"

namespace tep::bpf {

enum class Role { Tep, Client };

// How the programs are attached. Auto: tcx links when the kernel has them (>= 6.6), else cls_bpf.
enum class Attach { Auto, Tcx, Tc };

struct FastPathConfig {
  Role role = Role::Tep;
  // The TUN device (layer 3, IFF_TUN): the encap program on its egress; decapsulated packets are
  // redirected into its ingress. It must stay up while the FastPath exists.
  std::uint32_t tun_ifindex = 0;
  // The decap program on their ingress (Ethernet devices). Empty: every Ethernet device of the
  // namespace at open() time except the TUN device (lo and other layer-3 devices are skipped).
  std::vector<std::uint32_t> uplinks;
  // The tunnel end point: outer source; decapsulation only for outer destination == local.
  core::Ipv6Address local{};
  // The largest outer IPv6 packet, 1280..65535. Longer packets, or GSO packets whose segments
  // would be longer, go to user space (which fragments or answers with ICMP).
  std::size_t tunnel_mtu = 1500;
  std::uint8_t hop_limit = 64;  // 1..255
  // The inner flow hash (the same as tep::inner_flow_label) as the outer flow label, else 0.
  bool flow_label = true;
  // Tep: ICMP to it goes to user space (echo requests are the clients' keepalives). Client: ICMP
  // from it goes to user space (the keepalive's echo replies).
  std::optional<core::Ipv4Address> keepalive;
  // Tep: the size of the binding map, 1..2^24 (no preallocation: memory follows the entries).
  std::size_t max_bindings = std::size_t{1} << 20;
  Attach attach = Attach::Auto;
};

// Per-CPU counters summed. Names are stable (they appear in /metrics as tep_bpf_<name>_total).
// Packets count wire packets: a GSO packet counts its segments; bytes likewise count every
// segment's headers.
#define TEP_BPF_COUNTERS(X)                                                                     \
  X(encapsulated, "IPv4 packets encapsulated in the kernel")                                    \
  X(encapsulated_bytes, "outer bytes of packets encapsulated in the kernel")                    \
  X(decapsulated, "tunnel packets decapsulated in the kernel")                                  \
  X(decapsulated_bytes, "inner bytes of packets decapsulated in the kernel")                    \
  X(encapsulated_gso, "GSO packets among those encapsulated (each counted above per segment)")  \
  X(decapsulated_gso, "GSO packets among those decapsulated (each counted above per segment)")  \
  X(passed_no_binding, "packets left to user space: no binding for the pool address")           \
  X(passed_no_path, "packets left to user space: not the lease, or no path to a TEP set")       \
  X(passed_mtu, "IPv4 packets left to user space: longer than the tunnel or route MTU allows")  \
  X(passed_no_route, "IPv4 packets left to user space: no IPv6 route to the outer destination") \
  X(passed_spoofed, "tunnel packets left to user space: inner source bound to another client")  \
  X(passed_keepalive, "tunnel packets left to user space: ICMP of the keepalive address")       \
  X(passed_invalid, "tunnel packets left to user space: invalid inner packet or ECN")           \
  X(passed_other, "packets left to user space for another reason (e.g. a helper refused)")      \
  X(dropped, "packets dropped because a helper failed after the packet was changed")

struct Counters {
#define TEP_BPF_COUNTER_FIELD(name, help) std::uint64_t name = 0;
  TEP_BPF_COUNTERS(TEP_BPF_COUNTER_FIELD)
#undef TEP_BPF_COUNTER_FIELD

  // Calls fn(name, help, value) for every counter, in the order above.
  template <typename F>
  void for_each(F&& fn) const {
#define TEP_BPF_COUNTER_VISIT(name, help) fn(std::string_view{#name}, std::string_view{help}, name);
    TEP_BPF_COUNTERS(TEP_BPF_COUNTER_VISIT)
#undef TEP_BPF_COUNTER_VISIT
  }
  bool operator==(const Counters&) const = default;
};

// A binding's traffic through the kernel (inner bytes, wire packets), since bind().
struct BindingTraffic {
  std::uint64_t packets_to_client = 0;
  std::uint64_t bytes_to_client = 0;
  std::uint64_t packets_from_client = 0;
  std::uint64_t bytes_from_client = 0;
  bool operator==(const BindingTraffic&) const = default;
};

// The loaded and attached programs and their maps. Create it on a thread in the network
// namespace of the devices. Not thread-safe: one owner thread (the kernel side runs on every CPU
// concurrently with it). Nothing is pinned: the programs live as long as this object, and with
// tcx links also no longer than the process (a killed process leaves nothing attached).
class FastPath {
 public:
  // Loads the programs, checks that the kernel has the helper flags they use, turns IPv6
  // forwarding on for the TUN device only (net.ipv6.conf.<tun>.forwarding: bpf_fib_lookup
  // refuses to route otherwise; the device carries no IPv6, so nothing else changes; restored to
  // 0 by the destructor), then attaches them (encap on the TUN device's egress first, then decap
  // on each uplink). Errors carry the errno of the failing step: EINVAL for a bad config (or a
  // TUN device that is not layer 3, an uplink that is not Ethernet), ENODEV for a missing
  // device, EPERM when the process may not load BPF programs (CAP_BPF + CAP_NET_ADMIN, or
  // CAP_SYS_ADMIN), EOPNOTSUPP for a kernel older than 6.3, a TUN device without IPv6
  // configuration (MTU below 1280), or Attach::Tcx on a kernel without tcx. *why gets one line
  // for the log naming the step. On error nothing stays attached or changed.
  static platform::Result<std::unique_ptr<FastPath>> open(const FastPathConfig& config,
                                                          std::string* why = nullptr);
  // Detaches everything it attached (and removes a clsact qdisc it added, if no filter is left
  // on it) and restores the forwarding sysctl; from any thread (it enters the namespace of
  // open() for the while if needed).
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // Tep role (EINVAL in the Client role). bind() installs or changes the client of an address:
  // the same client again keeps its traffic counts, another client starts them at 0. E2BIG when
  // max_bindings are installed. unbind() of an address without a binding does nothing.
  platform::Result<void> bind(core::Ipv4Address address, const core::Ipv6Address& client);
  platform::Result<void> unbind(core::Ipv4Address address);
  platform::Result<void> clear();

  // Client role (EINVAL in the Tep role): the lease and the TEP to send to (outer destination).
  // Cleared (the initial state): everything goes to user space.
  platform::Result<void> set_client_path(core::Ipv4Address lease, const core::Ipv6Address& tep);
  platform::Result<void> clear_client_path();

  Counters counters() const;
  // Tep role: the binding's traffic; nullopt without a binding (or in the Client role).
  std::optional<BindingTraffic> traffic(core::Ipv4Address address) const;

  // How the programs were attached (Tcx or Tc), and the uplinks the decap program is on.
  Attach attached() const noexcept;
  const std::vector<std::uint32_t>& uplinks() const noexcept;

 private:
  struct Impl;
  explicit FastPath(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tep::bpf
