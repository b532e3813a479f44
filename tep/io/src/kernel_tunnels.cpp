// The TEP's ip6tnl devices, one per bound client, mirrored from the binding table.
#include "tep_io/kernel_tunnels.hpp"

#include <charconv>

#include <fmt/format.h>

#include "platform/sysctl.hpp"

namespace tep::io {

namespace nl = platform::netlink;

namespace {

constexpr std::uint8_t kHostRoute = 32;
constexpr std::uint32_t kIpProtoIpip = 4;

// A /32 is always a valid prefix.
core::Ipv4Prefix host(core::Ipv4Address a) {
  return core::Ipv4Prefix::make(a, kHostRoute).value();
}

bool is_exists(const platform::NetlinkError& e) {
  return e.code == boost::system::errc::file_exists;
}

// FNV-1a over the address: stable across restarts, spread over 32 bits.
std::uint32_t name_hash(const core::Ipv6Address& a) {
  std::uint32_t h = 2166136261u;
  for (const auto b : a.bytes()) {
    h ^= b;
    h *= 16777619u;
  }
  return h;
}

}  // namespace

std::string kernel_device_name(std::string_view prefix, const core::Ipv6Address& client) {
  return fmt::format("{}k{:08x}", prefix.substr(0, 6), name_hash(client));
}

bool is_kernel_device_name(std::string_view prefix, std::string_view name) noexcept {
  prefix = prefix.substr(0, 6);
  if (name.size() != prefix.size() + 9 || !name.starts_with(prefix) || name[prefix.size()] != 'k')
    return false;
  for (const char c : name.substr(prefix.size() + 1))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<std::pair<core::Ipv6Address, core::Ipv4Address>> tunnel_sources(
    core::Bytes packet) noexcept {
  core::ByteReader in{packet};
  const std::uint32_t vtf = in.u32();
  in.skip(2);  // payload length
  const std::uint8_t next_header = in.u8();
  in.skip(1);  // hop limit
  const auto outer = in.array<16>();
  in.skip(16);  // destination
  const std::uint8_t version_ihl = in.u8();
  in.skip(11);  // TOS, lengths, id, fragment, TTL, protocol, checksum
  const auto inner = in.array<4>();
  if (!in.ok() || (vtf >> 28) != 6 || next_header != kIpProtoIpip || (version_ihl >> 4) != 4)
    return std::nullopt;
  return std::pair{core::Ipv6Address{outer}, core::Ipv4Address{inner}};
}

boost::system::result<std::unique_ptr<KernelTunnels>, std::string> KernelTunnels::open(
    KernelTunnelsConfig config) {
  // rp_filter on a device is max(all, device): with "all" at 2 (loose) no device can be strict,
  // and a client could send with any routable source.
  const auto all = platform::read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter");
  if (!all) return fmt::format("reading net.ipv4.conf.all.rp_filter: {}", all.error().message());
  if (*all == "2")
    return std::string{
        "net.ipv4.conf.all.rp_filter is 2 (loose): the ip6tnl devices' strict reverse-path "
        "check, which stops a client from sending with another's address, cannot hold"};
  auto netlink = platform::NetlinkClient::open();
  if (!netlink) return fmt::format("netlink: {}", netlink.error().message());
  std::unique_ptr<KernelTunnels> k{new KernelTunnels{std::move(config), std::move(*netlink)}};
  auto links = k->netlink_.links();
  if (!links) return fmt::format("listing the links: {}", links.error().to_string());
  for (const auto& link : *links) {
    if (link.kind != "ip6tnl" || !is_kernel_device_name(k->config_.prefix, link.name)) continue;
    if (auto ok = k->netlink_.delete_link(link.index); !ok)
      return fmt::format("deleting the leftover {}: {}", link.name, ok.error().to_string());
  }
  const nl::Ip6Tunnel catch_all{.name = k->catch_all_name_,
                                .local = k->config_.local,
                                .remote = core::Ipv6Address{},
                                .link = 0,
                                .hop_limit = k->config_.hop_limit,
                                .mtu = k->config_.inner_mtu};
  auto index = k->create(catch_all);
  if (!index) return index.error();
  k->catch_all_ifindex_ = *index;
  if (k->config_.keepalive) {
    const auto r = k->netlink_.add_address(*index, *k->config_.keepalive, kHostRoute);
    // Already on this host (the TEP's own address as keepalive): the kernel answers it anyway.
    if (!r && !is_exists(r.error()))
      return fmt::format("keepalive address {} on {}: {}", k->config_.keepalive->to_string(),
                         k->catch_all_name_, r.error().to_string());
  }
  return k;
}

KernelTunnels::KernelTunnels(KernelTunnelsConfig config, platform::NetlinkClient netlink)
    : config_{std::move(config)},
      netlink_{std::move(netlink)},
      catch_all_name_{config_.prefix.substr(0, 13) + "-a"} {}

KernelTunnels::~KernelTunnels() {
  clear();
  if (catch_all_ifindex_ != 0) remove(catch_all_name_, catch_all_ifindex_);
}

boost::system::result<std::uint32_t, std::string> KernelTunnels::create(const nl::Ip6Tunnel& t) {
  auto index = netlink_.add_ip6_tunnel(t);
  if (!index && is_exists(index.error())) {
    // A device of this name: a killed daemon's (replaced) or, for a hash collision, another
    // live client's (left alone).
    bool ours = false;
    for (const auto& [client, device] : clients_) ours = ours || device.name == t.name;
    auto existing = netlink_.link(t.name);
    if (!ours && existing && existing->kind == "ip6tnl") {
      (void)netlink_.delete_link(existing->index);
      index = netlink_.add_ip6_tunnel(t);
    }
  }
  if (!index) return fmt::format("creating ip6tnl {}: {}", t.name, index.error().to_string());
  const auto fail = [&](std::string message) {
    (void)netlink_.delete_link(*index);
    return message;
  };
  // Strict: a decapsulated packet is forwarded only when its source is routed back into this
  // device, i.e. is an address bound to this client.
  if (auto ok =
          platform::write_sysctl(platform::interface_sysctl_path("ipv4", t.name, "rp_filter"), "1");
      !ok)
    return fail(fmt::format("rp_filter on {}: {}", t.name, ok.error().message()));
  // The device carries IPv4 only (the outer IPv6 goes over the uplinks): no link-local
  // address, no router solicitations. Best effort.
  (void)platform::write_sysctl(platform::interface_sysctl_path("ipv6", t.name, "disable_ipv6"),
                               "1");
  if (auto ok = netlink_.set_link_up(*index); !ok)
    return fail(fmt::format("bringing {} up: {}", t.name, ok.error().to_string()));
  ++counters_.devices_created;
  return *index;
}

void KernelTunnels::remove(const std::string& name, std::uint32_t ifindex) {
  if (auto ok = netlink_.delete_link(ifindex); !ok) {
    ++counters_.errors;
    last_error_ = fmt::format("deleting {}: {}", name, ok.error().to_string());
    return;
  }
  ++counters_.devices_deleted;
}

bool KernelTunnels::bind(core::Ipv4Address address, const core::Ipv6Address& client) {
  if (const auto it = routes_.find(address); it != routes_.end()) {
    if (it->second == client) return true;
    unbind(address);  // the address moved to another client
  }
  auto device = clients_.find(client);
  if (device == clients_.end()) {
    if (clients_.size() >= config_.max_devices) {
      ++counters_.over_limit;
      last_error_ = fmt::format("{} ip6tnl devices, the limit", config_.max_devices);
      return false;
    }
    const nl::Ip6Tunnel t{.name = kernel_device_name(config_.prefix, client),
                          .local = config_.local,
                          .remote = client,
                          .link = 0,
                          .hop_limit = config_.hop_limit,
                          .mtu = config_.inner_mtu};
    auto index = create(t);
    if (!index) {
      ++counters_.errors;
      last_error_ = index.error();
      return false;
    }
    device = clients_.emplace(client, Device{t.name, *index, 0}).first;
  }
  const nl::Ipv4Route route{.destination = host(address),
                            .gateway = std::nullopt,
                            .oif = device->second.ifindex,
                            .metric = std::nullopt};
  auto added = netlink_.add_route(route);
  if (!added && is_exists(added.error())) {
    // A /32 left by a killed daemon (through its device for an earlier client): ours now.
    (void)netlink_.delete_route(nl::Ipv4Route{.destination = route.destination,
                                              .gateway = std::nullopt,
                                              .oif = std::nullopt,
                                              .metric = std::nullopt});
    added = netlink_.add_route(route);
  }
  if (!added) {
    ++counters_.errors;
    last_error_ = fmt::format("route {}/32 dev {}: {}", address.to_string(), device->second.name,
                              added.error().to_string());
    if (device->second.routes == 0) {
      remove(device->second.name, device->second.ifindex);
      clients_.erase(device);
    }
    return false;
  }
  ++device->second.routes;
  routes_.emplace(address, client);
  return true;
}

void KernelTunnels::unbind(core::Ipv4Address address) {
  const auto it = routes_.find(address);
  if (it == routes_.end()) return;
  const auto client = it->second;
  routes_.erase(it);
  const auto device = clients_.find(client);
  if (device == clients_.end()) return;
  if (--device->second.routes == 0) {
    // The route goes with the device.
    remove(device->second.name, device->second.ifindex);
    clients_.erase(device);
    return;
  }
  if (auto ok = netlink_.delete_route(nl::Ipv4Route{.destination = host(address),
                                                    .gateway = std::nullopt,
                                                    .oif = device->second.ifindex,
                                                    .metric = std::nullopt});
      !ok) {
    ++counters_.errors;
    last_error_ =
        fmt::format("deleting the route {}/32: {}", address.to_string(), ok.error().to_string());
  }
}

void KernelTunnels::clear() {
  for (const auto& [client, device] : clients_) remove(device.name, device.ifindex);
  clients_.clear();
  routes_.clear();
}

std::optional<DeviceTraffic> KernelTunnels::traffic(const core::Ipv6Address& client) const {
  const auto it = clients_.find(client);
  if (it == clients_.end()) return std::nullopt;
  const auto read = [&](std::string_view key) -> std::uint64_t {
    const auto v =
        platform::read_sysctl(fmt::format("/sys/class/net/{}/statistics/{}", it->second.name, key));
    if (!v) return 0;
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    return ec == std::errc{} ? n : 0;
  };
  return DeviceTraffic{.packets_to_client = read("tx_packets"),
                       .bytes_to_client = read("tx_bytes"),
                       .packets_from_client = read("rx_packets"),
                       .bytes_from_client = read("rx_bytes")};
}

bool KernelTunnels::carries(const core::Ipv6Address& outer_source,
                            core::Ipv4Address inner_source) const {
  const auto it = routes_.find(inner_source);
  return it != routes_.end() && it->second == outer_source;
}

}  // namespace tep::io
