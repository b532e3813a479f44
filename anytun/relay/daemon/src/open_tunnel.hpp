// Open tunnel mode on the node (draft-gsenger-anycast-relay-00 section 1.1.1.2), around the
// engine's source NAT: the NAT addresses are routed into the relay's TUN device, so that the
// kernel hands the outside's replies to the engine; the kernel's forwarding, which carries the
// translated packets on, is checked and reported; /status shows the NAT's counters.
//
// The NAT addresses are never put on an interface: a local address would make the kernel take
// the replies for itself, and drop the translated packets coming out of the TUN as martians (a
// source that is its own). They are routed here instead, as host routes (/32, /128) into the TUN.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "relay/nat.hpp"
#include "relay_daemon/config.hpp"

namespace relay_daemon {

// The kernel's forwarding switches of the current network namespace; nullopt when unreadable.
struct Forwarding {
  std::optional<bool> ipv4;  // net.ipv4.ip_forward
  std::optional<bool> ipv6;  // net.ipv6.conf.all.forwarding
  bool operator==(const Forwarding&) const = default;
};

// Reads <sysctl_root>/ipv4/ip_forward and <sysctl_root>/ipv6/conf/all/forwarding.
Forwarding read_forwarding(const std::string& sysctl_root = "/proc/sys/net");

// One warning per family that has a NAT address but whose forwarding is off or unknown: the
// translated packets would go nowhere. The daemon logs them; it does not change sysctls.
std::vector<std::string> forwarding_warnings(const OpenTunnelConfig& config,
                                             const Forwarding& forwarding);

class OpenTunnel {
 public:
  // Routes the NAT addresses into the TUN device `tun` and logs forwarding_warnings(). The error
  // says which route failed (e.g. an existing route to a NAT address).
  static boost::system::result<std::unique_ptr<OpenTunnel>, std::string> start(
      const OpenTunnelConfig& config, const std::string& tun, platform::Logger& log);
  // Removes the routes (they also go with the device).
  ~OpenTunnel();
  OpenTunnel(const OpenTunnel&) = delete;
  OpenTunnel& operator=(const OpenTunnel&) = delete;

  // "open_tunnel" in /status: the NAT addresses, the forwarding switches as they are now, the
  // mappings, and the NAT's counters (translated each way, refusals by reason).
  boost::json::object status(const relay::SourceNat* nat) const;
  // The same counters in /metrics (satp_nat_*). `nat` and this object must outlive their reads.
  void register_metrics(platform::Counters& counters, const relay::SourceNat& nat) const;

 private:
  OpenTunnel(OpenTunnelConfig config, std::uint32_t ifindex);
  OpenTunnelConfig config_;
  std::uint32_t ifindex_ = 0;
  bool route4_ = false;
  bool route6_ = false;
};

}  // namespace relay_daemon
