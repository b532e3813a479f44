// Open tunnel mode on the node: routes, forwarding check and status (see open_tunnel.hpp).
#include "open_tunnel.hpp"

#include <fstream>
#include <utility>

#include <fmt/core.h>

#include "platform/netlink.hpp"

namespace relay_daemon {
namespace json = boost::json;

namespace {

std::optional<bool> read_switch(const std::string& path) {
  std::ifstream in{path};
  int value = 0;
  if (!(in >> value)) return std::nullopt;
  return value != 0;
}

json::value switch_json(const std::optional<bool>& on) {
  return on ? json::value(*on) : json::value(nullptr);
}

json::object counts_json(const std::map<std::string_view, std::uint64_t>& counts) {
  json::object o;
  for (const auto& [reason, n] : counts) o[reason] = n;
  return o;
}

// A host route into the TUN device.
platform::netlink::Ipv4Route route4(core::Ipv4Address a, std::uint32_t ifindex) {
  return {.destination = core::Ipv4Prefix::make(a, 32).value(),
          .gateway = std::nullopt,
          .oif = ifindex,
          .table = platform::netlink::kMainTable,
          .metric = std::nullopt};
}
platform::netlink::Ipv6Route route6(const core::Ipv6Address& a, std::uint32_t ifindex) {
  return {.destination = core::Ipv6Prefix::make(a, 128).value(),
          .gateway = std::nullopt,
          .oif = ifindex,
          .table = platform::netlink::kMainTable,
          .metric = std::nullopt};
}

}  // namespace

Forwarding read_forwarding(const std::string& sysctl_root) {
  return Forwarding{.ipv4 = read_switch(sysctl_root + "/ipv4/ip_forward"),
                    .ipv6 = read_switch(sysctl_root + "/ipv6/conf/all/forwarding")};
}

std::vector<std::string> forwarding_warnings(const OpenTunnelConfig& config,
                                             const Forwarding& forwarding) {
  std::vector<std::string> out;
  const auto check = [&](bool used, const std::optional<bool>& on, const char* family,
                         const char* sysctl, const std::string& address) {
    if (!used || on.value_or(false)) return;
    out.push_back(fmt::format(
        "open tunnel: {} forwarding is {} ({}): {} flows leave the TUN with source {} and go "
        "nowhere until it is 1",
        family, on ? "off" : "unknown", sysctl, family, address));
  };
  check(config.address4.has_value(), forwarding.ipv4, "IPv4", "net.ipv4.ip_forward",
        config.address4 ? config.address4->to_string() : std::string{});
  check(config.address6.has_value(), forwarding.ipv6, "IPv6", "net.ipv6.conf.all.forwarding",
        config.address6 ? config.address6->to_string() : std::string{});
  return out;
}

OpenTunnel::OpenTunnel(OpenTunnelConfig config, std::uint32_t ifindex)
    : config_{std::move(config)}, ifindex_{ifindex} {}

boost::system::result<std::unique_ptr<OpenTunnel>, std::string> OpenTunnel::start(
    const OpenTunnelConfig& config, const std::string& tun, platform::Logger& log) {
  if (tun.empty()) return std::string{"open tunnel mode needs the relay's TUN device"};
  auto nl = platform::NetlinkClient::open();
  if (!nl) return fmt::format("netlink: {}", nl.error().message());
  const auto ifindex = nl->link_index(tun);
  if (!ifindex) return fmt::format("TUN device {}: {}", tun, ifindex.error().to_string());
  std::unique_ptr<OpenTunnel> self{new OpenTunnel{config, *ifindex}};
  if (config.address4) {
    const auto route = route4(*config.address4, *ifindex);
    if (auto ok = nl->add_route(route); !ok)
      return fmt::format("route {}/32 into {}: {}", config.address4->to_string(), tun,
                         ok.error().to_string());
    self->route4_ = true;
  }
  if (config.address6) {
    const auto route = route6(*config.address6, *ifindex);
    if (auto ok = nl->add_route(route); !ok)
      return fmt::format("route {}/128 into {}: {}", config.address6->to_string(), tun,
                         ok.error().to_string());
    self->route6_ = true;
  }
  for (const auto& w : forwarding_warnings(config, read_forwarding())) log.warn("{}", w);
  log.info("open tunnel: NAT addresses{}{} routed into {}",
           config.address4 ? " " + config.address4->to_string() : std::string{},
           config.address6 ? " " + config.address6->to_string() : std::string{}, tun);
  return self;
}

OpenTunnel::~OpenTunnel() {
  if (!route4_ && !route6_) return;
  auto nl = platform::NetlinkClient::open();
  if (!nl) return;  // the routes go with the TUN device anyway
  if (route4_) (void)nl->delete_route(route4(*config_.address4, ifindex_));
  if (route6_) (void)nl->delete_route(route6(*config_.address6, ifindex_));
}

void OpenTunnel::register_metrics(platform::Counters& counters, const relay::SourceNat& nat) const {
  const auto sum = [](const std::map<std::string_view, std::uint64_t>& counts) {
    std::uint64_t n = 0;
    for (const auto& [reason, count] : counts) n += count;
    return n;
  };
  counters.gauge_fn("satp_nat_mappings", "open tunnel NAT mappings", {},
                    [&nat] { return static_cast<std::int64_t>(nat.size()); });
  counters.counter_fn("satp_nat_packets_total", "packets the open tunnel NAT translated",
                      {{"direction", "outbound"}}, [&nat] { return nat.stats().outbound; });
  counters.counter_fn("satp_nat_packets_total", "packets the open tunnel NAT translated",
                      {{"direction", "inbound"}}, [&nat] { return nat.stats().inbound; });
  counters.counter_fn(
      "satp_nat_refused_total", "packets the open tunnel NAT refused (reasons in /status)",
      {{"direction", "outbound"}}, [&nat, sum] { return sum(nat.stats().refused_outbound); });
  counters.counter_fn(
      "satp_nat_refused_total", "packets the open tunnel NAT refused (reasons in /status)",
      {{"direction", "inbound"}}, [&nat, sum] { return sum(nat.stats().refused_inbound); });
}

json::object OpenTunnel::status(const relay::SourceNat* nat) const {
  const auto forwarding = read_forwarding();
  json::object o;
  o["address4"] = config_.address4 ? json::value(config_.address4->to_string()) : nullptr;
  o["address6"] = config_.address6 ? json::value(config_.address6->to_string()) : nullptr;
  o["forwarding"] =
      json::object{{"ipv4", switch_json(forwarding.ipv4)}, {"ipv6", switch_json(forwarding.ipv6)}};
  if (!nat) return o;
  const auto& s = nat->stats();
  o["mappings"] = nat->size();
  o["mappings_created"] = s.created;
  o["mappings_expired"] = s.expired;
  o["outbound"] = s.outbound;
  o["inbound"] = s.inbound;
  o["refused_outbound"] = counts_json(s.refused_outbound);
  o["refused_inbound"] = counts_json(s.refused_inbound);
  return o;
}

}  // namespace relay_daemon
