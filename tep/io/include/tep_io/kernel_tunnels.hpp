// The TEP's kernel backend: one ip6tnl device per bound client (remote = the client), the
// client's leased IPv4 /32 routed into it, strict rp_filter on it, and a catch-all device for
// the clients without one; all kept in step with the engine's binding table (docs/tep.md,
// "Backends"). Not thread-safe: used from the daemon's io_context thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <boost/system/result.hpp>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "platform/netlink.hpp"

namespace tep::io {

struct KernelTunnelsConfig {
  // Device names: the first 6 bytes of `prefix`, "k" and 8 hex digits of a hash of the client's
  // address ("tep0k1f2e3d4c"), so that a restarted daemon finds a killed one's device for the
  // same client under the same name; the catch-all is the first 13 bytes and "-a" ("tep0-a").
  std::string prefix;
  core::Ipv6Address local;      // the TEP's tunnel address
  std::uint32_t inner_mtu = 0;  // each device's MTU: the tunnel MTU - 40
  std::uint8_t hop_limit = 64;
  // Put on the catch-all device as a /32, so that the kernel answers the keepalive pings of the
  // clients it carries (their packets never reach the engine, which answers the others).
  std::optional<core::Ipv4Address> keepalive;
  // Clients with a device at most; bindings beyond stay on the user-space path.
  std::size_t max_devices = 4096;
};

struct KernelTunnelsCounters {
  std::uint64_t devices_created = 0;
  std::uint64_t devices_deleted = 0;
  std::uint64_t errors = 0;      // netlink or sysctl failures: that binding stayed in user space
  std::uint64_t over_limit = 0;  // bindings left to user space: max_devices reached
};

// A client device's statistics (/sys/class/net/NAME/statistics): what the kernel carried.
struct DeviceTraffic {
  std::uint64_t packets_to_client = 0;  // tx_packets
  std::uint64_t bytes_to_client = 0;    // tx_bytes (inner packets)
  std::uint64_t packets_from_client = 0;
  std::uint64_t bytes_from_client = 0;
};

// The outer source and the inner source of an IPv4-in-IPv6 packet as the tunnel socket gives it
// (40-byte header with next header 4, then the IPv4 header); nullopt when it is not one.
std::optional<std::pair<core::Ipv6Address, core::Ipv4Address>> tunnel_sources(
    core::Bytes packet) noexcept;

// The name of a client's device: the first 6 bytes of prefix, "k", 8 hex digits of a hash
// (FNV-1a) of the client's address. And whether a name has that form, for the sweep at start.
std::string kernel_device_name(std::string_view prefix, const core::Ipv6Address& client);
bool is_kernel_device_name(std::string_view prefix, std::string_view name) noexcept;

class KernelTunnels {
 public:
  // Opens a netlink socket in the calling thread's namespace, checks that strict rp_filter can
  // hold (net.ipv4.conf.all.rp_filter is not 2, which would make every device loose) and
  // creates the catch-all device (local, remote ::, up, rp_filter 1, no routes): the kernel
  // decapsulates and drops what comes from clients it has no device for, instead of answering
  // them with ICMPv6 port unreachable, while the raw tunnel socket still gets its copy for the
  // engine. First it deletes every ip6tnl device named like a client's device of this prefix:
  // a killed daemon's, which would go on carrying their /32s to the clients of then.
  // Errors: text for the start error.
  static boost::system::result<std::unique_ptr<KernelTunnels>, std::string> open(
      KernelTunnelsConfig config);
  ~KernelTunnels();  // deletes every device; their routes and the keepalive address go with them
  KernelTunnels(const KernelTunnels&) = delete;
  KernelTunnels& operator=(const KernelTunnels&) = delete;

  // Routes address/32 into client's device, created first if the client has none. False when
  // it could not (last_error() says why, counters); the binding is then carried by user space,
  // as the /32 is missing and the pool route leads into the TUN device.
  bool bind(core::Ipv4Address address, const core::Ipv6Address& client);
  // Removes the route; a device left without routes is deleted.
  void unbind(core::Ipv4Address address);
  void clear();

  // True when the kernel forwarded this packet itself: its outer source has a device and its
  // inner source is routed into that device. The raw tunnel socket's copy must then be dropped.
  // (With an inner source not routed there, the kernel's rp_filter dropped it, and the engine
  // decides: a miss to learn, or a spoof to count.)
  bool carries(const core::Ipv6Address& outer_source, core::Ipv4Address inner_source) const;

  // The traffic of client's device since it was created, or nullopt when it has none. A client
  // with several bound addresses has one device: its traffic is theirs together.
  std::optional<DeviceTraffic> traffic(const core::Ipv6Address& client) const;

  std::size_t devices() const noexcept { return clients_.size(); }
  std::size_t routes() const noexcept { return routes_.size(); }
  const KernelTunnelsCounters& counters() const noexcept { return counters_; }
  const std::string& last_error() const noexcept { return last_error_; }
  const std::string& catch_all_name() const noexcept { return catch_all_name_; }

 private:
  struct Device {
    std::string name;
    std::uint32_t ifindex = 0;
    std::size_t routes = 0;
  };

  KernelTunnels(KernelTunnelsConfig config, platform::NetlinkClient netlink);
  // Creates, configures and brings up a device; replaces a leftover ip6tnl device of that name.
  boost::system::result<std::uint32_t, std::string> create(const platform::netlink::Ip6Tunnel& t);
  void remove(const std::string& name, std::uint32_t ifindex);

  KernelTunnelsConfig config_;
  platform::NetlinkClient netlink_;
  std::string catch_all_name_;
  std::uint32_t catch_all_ifindex_ = 0;
  std::unordered_map<core::Ipv6Address, Device> clients_;
  std::unordered_map<core::Ipv4Address, core::Ipv6Address> routes_;
  KernelTunnelsCounters counters_;
  std::string last_error_;
};

}  // namespace tep::io
