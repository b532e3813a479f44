// Which 4over6 data path a TEP or a client runs: the kernel's ip6tnl devices, the in-kernel
// tc-BPF fast path in front of the user-space one, or the user-space one alone (TUN + raw IPv6
// sockets, with offloads); and how `auto` picks (docs/tep.md, "Backends").
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "platform/netlink.hpp"

namespace tep::io {

enum class Backend {
  Auto,    // kernel ip6tnl when the kernel can create it, else the BPF fast path when it loads,
           // else user space (each fallback is logged)
  Bpf,     // the BPF fast path or nothing: start fails when it cannot load
  User,    // user space only
  Kernel,  // kernel ip6tnl devices or nothing: start fails when the kernel has none
};

constexpr std::string_view backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::Auto:
      return "auto";
    case Backend::Bpf:
      return "bpf";
    case Backend::User:
      return "user";
    case Backend::Kernel:
      return "kernel";
  }
  return "?";
}

constexpr std::optional<Backend> parse_backend(std::string_view text) noexcept {
  for (Backend b : {Backend::Auto, Backend::Bpf, Backend::User, Backend::Kernel})
    if (backend_name(b) == text) return b;
  return std::nullopt;
}

// Whether this network namespace's kernel can create ip6tnl devices.
struct KernelSupport {
  bool available = false;
  std::string reason;  // why not (empty when available)
  friend bool operator==(const KernelSupport&, const KernelSupport&) = default;
};

// Reads the kernel's answer to creating an ip6tnl device: none (created) or EEXIST (the kernel
// knows the kind) mean available; EOPNOTSUPP ("Unknown device type": no CONFIG_IPV6_TUNNEL and
// no module to load) and the other errors do not, each with its reason.
KernelSupport kernel_support_from(const std::optional<platform::NetlinkError>& create_error);

// The real probe, in the calling thread's network namespace: creates a scratch ip6tnl device
// (down, named "dstmprobe" + 6 hex digits of the pid, remote in the discard-only prefix 100::/64
// of RFC 6666 so that it matches nobody's packets) and deletes it at once. The kernel loads
// ip6_tunnel by itself (request_module "rtnl-link-ip6tnl") when it is a module.
KernelSupport probe_kernel_tunnels();

// The data path to start with.
struct BackendChoice {
  // Kernel; or what remains to be tried as before: Auto (BPF, else user space), Bpf, User.
  Backend backend = Backend::User;
  std::string note;                  // what to log (empty: nothing was decided here)
  std::optional<std::string> error;  // set: start fails with this text
};

// `requested` with the kernel's answer from probe(), which is called only for Auto and Kernel.
BackendChoice choose_backend(Backend requested, const std::function<KernelSupport()>& probe);

}  // namespace tep::io
