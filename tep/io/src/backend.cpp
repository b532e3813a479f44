// Backend selection: the ip6tnl probe and the choice it leads to.
#include "tep_io/backend.hpp"

#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

namespace tep::io {

KernelSupport kernel_support_from(const std::optional<platform::NetlinkError>& create_error) {
  if (!create_error || create_error->code == boost::system::errc::file_exists) return {true, {}};
  const auto& e = *create_error;
  if (e.code == boost::system::errc::operation_not_supported ||
      e.code == boost::system::errc::no_such_device ||
      e.code == boost::system::errc::protocol_not_supported ||
      e.code == boost::system::errc::address_family_not_supported)
    return {false,
            fmt::format("the kernel has no ip6tnl (CONFIG_IPV6_TUNNEL, module ip6_tunnel): {}",
                        e.to_string())};
  if (e.code == boost::system::errc::operation_not_permitted)
    return {false, fmt::format("creating an ip6tnl device needs CAP_NET_ADMIN: {}", e.to_string())};
  return {false, fmt::format("creating an ip6tnl device failed: {}", e.to_string())};
}

KernelSupport probe_kernel_tunnels() {
  auto nl = platform::NetlinkClient::open();
  if (!nl) return {false, fmt::format("netlink: {}", nl.error().message())};
  const platform::netlink::Ip6Tunnel scratch{
      .name = fmt::format("dstmprobe{:06x}", static_cast<unsigned>(::getpid()) & 0xffffffu),
      .local = core::Ipv6Address{},
      .remote = *core::Ipv6Address::parse("100::1"),
      .link = 0,
      .hop_limit = 64,
      .mtu = std::nullopt};
  auto created = nl->add_ip6_tunnel(scratch);
  if (created) {
    (void)nl->delete_link(*created);
    return {true, {}};
  }
  return kernel_support_from(created.error());
}

BackendChoice choose_backend(Backend requested, const std::function<KernelSupport()>& probe) {
  switch (requested) {
    case Backend::User:
      return {Backend::User, "data path: user space (backend \"user\")", std::nullopt};
    case Backend::Bpf:
      return {Backend::Bpf, {}, std::nullopt};
    case Backend::Kernel: {
      const auto k = probe();
      if (k.available)
        return {Backend::Kernel, "data path: kernel ip6tnl (backend \"kernel\")", std::nullopt};
      return {Backend::Kernel, {}, fmt::format("kernel backend: {}", k.reason)};
    }
    case Backend::Auto: {
      const auto k = probe();
      if (k.available)
        return {Backend::Kernel,
                "data path: kernel ip6tnl (auto: the kernel creates ip6tnl devices)", std::nullopt};
      return {Backend::Auto, fmt::format("data path: no kernel ip6tnl ({})", k.reason),
              std::nullopt};
    }
  }
  return {Backend::User, {}, std::nullopt};
}

}  // namespace tep::io
