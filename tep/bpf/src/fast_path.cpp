// Loads the 4over6 tc programs (fast_path.bpf.c, embedded by bpftool's skeleton), attaches them
// with tcx links or cls_bpf filters, and keeps their maps in step with the control plane.
#include "tep_bpf/fast_path.hpp"

// <net/if.h> before the linux/ headers: linux/libc-compat.h then leaves its definitions alone.
#include <net/if.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if_arp.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string_view>
#include <utility>

#include "fast_path_shared.h"
#include "platform/fd.hpp"

// bpftool's skeleton is C: keep its style out of our warnings.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "fast_path.skel.h"
#pragma GCC diagnostic pop

namespace tep::bpf {
namespace {

// The public counter list (with help texts) and the programs' map layout name the same counters
// in the same order.
constexpr std::array kPublicNames{
#define TEP_BPF_PUBLIC_NAME(name, help) std::string_view{#name},
    TEP_BPF_COUNTERS(TEP_BPF_PUBLIC_NAME)
#undef TEP_BPF_PUBLIC_NAME
};
constexpr std::array kMapNames{
#define TEP_BPF_MAP_NAME(name) std::string_view{#name},
    TEP_BPF_COUNTER_NAMES(TEP_BPF_MAP_NAME)
#undef TEP_BPF_MAP_NAME
};
static_assert(kPublicNames.size() == TEP_BPF_COUNTER_COUNT);
static_assert(kPublicNames == kMapNames, "TEP_BPF_COUNTERS and TEP_BPF_COUNTER_NAMES differ");

// enum bpf_attach_type of Linux 6.6 (BPF_TCX_INGRESS, BPF_TCX_EGRESS), newer than Debian 12's
// 6.1 uapi headers, which end at BPF_LSM_CGROUP (43); 44 and 45 are BPF_STRUCT_OPS and
// BPF_NETFILTER.
static_assert(BPF_LSM_CGROUP == 43);
constexpr auto kTcxIngress = static_cast<bpf_attach_type>(46);
constexpr auto kTcxEgress = static_cast<bpf_attach_type>(47);

// cls_bpf filters (the fallback): one priority for all of ours, and a handle per local address,
// so that a filter left by a killed process with the same address is replaced at start while
// another FastPath (another address) on the same uplink keeps its own.
constexpr std::uint32_t kTcPriority = 0x4f36;

constexpr std::size_t kMaxBindingsLimit = std::size_t{1} << 24;

platform::Result<void> errno_error(int e) {
  return platform::errno_code(e);
}

// libbpf's messages: the first warning is kept for the `why` of the failing step instead of
// being printed on stderr, which belongs to the daemon's log.
thread_local std::string* t_libbpf_log = nullptr;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG || t_libbpf_log == nullptr) return 0;
  std::array<char, 512> line{};
  const int n = std::vsnprintf(line.data(), line.size(), format, args);
  if (n <= 0) return 0;
  // The first line of the first message: libbpf names the failing step first and then the
  // steps that failed because of it (a verifier log would follow on further lines).
  if (!t_libbpf_log->empty()) return 0;
  std::string_view text{line.data(), std::min(static_cast<std::size_t>(n), line.size() - 1)};
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  *t_libbpf_log = std::string{text};
  return 0;
}

// Collects libbpf's first message while alive (on this thread).
class LibbpfLog {
 public:
  LibbpfLog() {
    static std::once_flag once;
    std::call_once(once, [] { libbpf_set_print(libbpf_print); });
    t_libbpf_log = &text_;
  }
  ~LibbpfLog() { t_libbpf_log = nullptr; }
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;
  const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
};

// The name and ARPHRD type of a device of this namespace (SIOCGIFHWADDR: the device's type is
// the hardware address family). Errors: errno (ENODEV when there is no such device).
struct Device {
  std::string name;
  unsigned short type = 0;
};

platform::Result<Device> device(std::uint32_t ifindex) {
  std::array<char, IF_NAMESIZE> name{};
  if (ifindex == 0 || ::if_indextoname(ifindex, name.data()) == nullptr) {
    return platform::errno_code(ENODEV);
  }
  platform::Fd s{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (!s) return platform::errno_code(errno);
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), name.size());
  if (::ioctl(s.get(), SIOCGIFHWADDR, &request) < 0) return platform::errno_code(errno);
  return Device{.name = name.data(), .type = request.ifr_hwaddr.sa_family};
}

// A sysctl file's first line ("" when it cannot be read), and writing one. Files under
// /proc/sys/net belong to the network namespace of the thread that opens them.
std::string read_sysctl(const std::string& path) {
  platform::Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return {};
  std::array<char, 64> buffer{};
  const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size() - 1);
  if (n <= 0) return {};
  std::string text{buffer.data(), static_cast<std::size_t>(n)};
  if (const auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

int write_sysctl(const std::string& path, std::string_view value) {
  platform::Fd fd{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (!fd) return errno;
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return errno;
  }
  return 0;
}

// FNV-1a of the local address: the cls_bpf handle of our filters for it (never 0).
std::uint32_t tc_handle(const core::Ipv6Address& local) {
  std::uint32_t h = 2166136261u;
  for (const auto b : local.bytes()) h = (h ^ b) * 16777619u;
  return h == 0 ? 1 : h;
}

// Whether any tc filter is left on the clsact qdisc of ifindex (ingress or egress), by a
// RTM_GETTFILTER dump. When in doubt (an error) it says yes, so that nobody's filter is removed.
bool clsact_has_filters(std::uint32_t ifindex) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (nl == nullptr) return true;
  bool found = false;
  bool failed = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0;
  std::uint32_t seq = 1;
  for (const std::uint32_t parent :
       {TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)}) {
    if (failed || found) break;
    std::vector<char> buffer(32768);
    nlmsghdr* request = mnl_nlmsg_put_header(buffer.data());
    request->nlmsg_type = RTM_GETTFILTER;
    request->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request->nlmsg_seq = ++seq;
    auto* tc = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(request, sizeof(tcmsg)));
    tc->tcm_family = AF_UNSPEC;
    tc->tcm_ifindex = static_cast<int>(ifindex);
    tc->tcm_parent = parent;
    if (mnl_socket_sendto(nl, request, request->nlmsg_len) < 0) {
      failed = true;
      break;
    }
    const unsigned port = mnl_socket_get_portid(nl);
    // Bounded: a dump ends with NLMSG_DONE; a netlink socket never blocks forever on a dump we
    // sent, and a flood of filters is bounded by the device.
    for (int round = 0; round < 1024; ++round) {
      const ssize_t n = mnl_socket_recvfrom(nl, buffer.data(), buffer.size());
      if (n <= 0) {
        failed = true;
        break;
      }
      const int r = mnl_cb_run(
          buffer.data(), static_cast<std::size_t>(n), seq, port,
          [](const nlmsghdr* message, void* data) {
            if (message->nlmsg_type == RTM_NEWTFILTER) *static_cast<bool*>(data) = true;
            return MNL_CB_OK;
          },
          &found);
      if (r == MNL_CB_STOP) break;
      if (r < 0) {
        // ENOENT / EINVAL: no clsact qdisc (or no such parent): nothing there.
        failed = errno != ENOENT && errno != EINVAL;
        break;
      }
    }
  }
  mnl_socket_close(nl);
  return found || failed;
}

// One program attached to one hook; detaches on destruction.
class Attachment {
 public:
  // A tcx link: the kernel detaches it when the link fd is closed (also by a dying process).
  static Attachment tcx(platform::Fd link) {
    Attachment a;
    a.link_ = std::move(link);
    return a;
  }
  // A cls_bpf filter; `created_hook`: we added the clsact qdisc.
  static Attachment tc(std::uint32_t ifindex, bpf_tc_attach_point point, std::uint32_t handle,
                       bool created_hook) {
    Attachment a;
    a.ifindex_ = ifindex;
    a.point_ = point;
    a.handle_ = handle;
    a.created_hook_ = created_hook;
    return a;
  }
  Attachment(Attachment&& other) noexcept
      : link_{std::move(other.link_)},
        ifindex_{std::exchange(other.ifindex_, 0)},
        point_{other.point_},
        handle_{other.handle_},
        created_hook_{other.created_hook_} {}
  Attachment& operator=(Attachment&&) = delete;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  // Leaves a cls_bpf filter attached (a link is still closed).
  void forget() noexcept { ifindex_ = 0; }
  ~Attachment() {
    if (ifindex_ == 0) return;  // a link (closed by Fd) or moved from
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(ifindex_);
    hook.attach_point = point_;
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = handle_;
    opts.priority = kTcPriority;
    bpf_tc_detach(&hook, &opts);
    // The qdisc goes only if we added it and nobody else's filter is on it (ingress or egress).
    if (created_hook_ && !clsact_has_filters(ifindex_)) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
  }

 private:
  Attachment() = default;
  platform::Fd link_;
  std::uint32_t ifindex_ = 0;
  bpf_tc_attach_point point_ = BPF_TC_INGRESS;
  std::uint32_t handle_ = 0;
  bool created_hook_ = false;
};

// Whether the calling thread is in the network namespace open as fd.
bool same_netns(int fd) {
  struct stat ours {};
  struct stat theirs {};
  return ::stat("/proc/thread-self/ns/net", &ours) == 0 && ::fstat(fd, &theirs) == 0 &&
         ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

// Runs the probe program on an IPv4-in-IPv6 frame. 0: the kernel has what the programs need;
// EOPNOTSUPP: it does not; otherwise the errno of the test run.
int probe(int prog_fd) {
  const auto frame = [] {
    std::array<std::uint8_t, 14 + 40 + 20> f{};
    f[12] = 0x86;  // EtherType IPv6
    f[13] = 0xdd;
    f[14] = 0x60;  // IPv6, payload length 20, next header 4, hop limit 64
    f[14 + 5] = 20;
    f[14 + 6] = 4;
    f[14 + 7] = 64;
    f[14 + 40] = 0x45;  // IPv4, total length 20
    f[14 + 40 + 3] = 20;
    return f;
  }();
  std::array<std::uint8_t, 256> out{};
  bpf_test_run_opts run{};
  run.sz = sizeof(run);
  run.data_in = frame.data();
  run.data_size_in = static_cast<__u32>(frame.size());
  run.data_out = out.data();
  run.data_size_out = static_cast<__u32>(out.size());
  run.repeat = 1;
  if (const int r = bpf_prog_test_run_opts(prog_fd, &run); r < 0) return -r;
  return run.retval == 0 ? 0 : EOPNOTSUPP;
}

struct SkeletonDeleter {
  void operator()(fast_path_bpf* skeleton) const noexcept { fast_path_bpf__destroy(skeleton); }
};

}  // namespace

struct FastPath::Impl {
  FastPathConfig config;
  std::unique_ptr<fast_path_bpf, SkeletonDeleter> skeleton;
  // Detached in reverse order of attaching: decap programs first, the encap program last.
  std::vector<Attachment> attachments;
  std::vector<std::uint32_t> uplinks;
  Attach attached = Attach::Tcx;  // Tcx until the kernel says it has no tcx (Auto)

  // The TUN device's IPv6 forwarding sysctl when open() turned it on (restored to 0 at the end).
  std::string forwarding_sysctl;

  // The namespace of the devices (/proc/thread-self/ns/net at open()): cls_bpf filters are
  // removed through netlink and the sysctl restored through /proc/sys/net, both of which act on
  // the namespace of the calling thread.
  platform::Fd netns;

  ~Impl() {
    // Destroyed on a thread of another namespace: enter ours for the while. If that fails, the
    // filters and the sysctl stay (rather than touching same-named things elsewhere); tcx links
    // go anyway.
    bool here = !netns || same_netns(netns.get());
    platform::Fd back;
    if (!here) {
      back.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
      here = back && ::setns(netns.get(), CLONE_NEWNET) == 0;
      if (!here) {
        back.reset();
        for (auto& a : attachments) a.forget();
      }
    }
    while (!attachments.empty()) attachments.pop_back();
    if (here && !forwarding_sysctl.empty()) (void)write_sysctl(forwarding_sysctl, "0");
    if (back) ::setns(back.get(), CLONE_NEWNET);
  }

  int bindings_fd() const { return bpf_map__fd(skeleton->maps.bindings); }
  int path_fd() const { return bpf_map__fd(skeleton->maps.client_path); }

  // Attaches prog to the hook, by config.attach. Returns the errno of the failure.
  int attach(int prog_fd, std::uint32_t ifindex, bool ingress, std::string& step) {
    if (attached == Attach::Tcx) {
      const int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                                     ingress ? kTcxIngress : kTcxEgress, nullptr);
      if (fd >= 0) {
        attachments.push_back(Attachment::tcx(platform::Fd{fd}));
        return 0;
      }
      // A kernel without tcx does not know the attach type: EINVAL.
      if (fd != -EINVAL || !attachments.empty()) {
        step = "creating a tcx link";
        return -fd;
      }
      if (config.attach == Attach::Tcx) {
        step = "creating a tcx link (the kernel has no tcx, Linux >= 6.6)";
        return EOPNOTSUPP;
      }
      attached = Attach::Tc;
    }
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
    const int created = bpf_tc_hook_create(&hook);
    if (created < 0 && created != -EEXIST) {
      step = "adding the clsact qdisc";
      return -created;
    }
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.prog_fd = prog_fd;
    opts.flags = BPF_TC_F_REPLACE;
    opts.handle = tc_handle(config.local);
    opts.priority = kTcPriority;
    // Registered before attaching, so that a failure still removes a qdisc we added.
    attachments.push_back(Attachment::tc(ifindex, hook.attach_point, opts.handle, created == 0));
    if (const int r = bpf_tc_attach(&hook, &opts); r < 0) {
      step = "adding the cls_bpf filter";
      return -r;
    }
    return 0;
  }
};

FastPath::FastPath(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
FastPath::~FastPath() = default;

platform::Result<std::unique_ptr<FastPath>> FastPath::open(const FastPathConfig& config,
                                                           std::string* why) {
  const auto fail =
      [why](int e, std::string_view step,
            std::string_view detail = {}) -> platform::Result<std::unique_ptr<FastPath>> {
    if (why != nullptr) {
      *why = std::string{step} + ": " + std::strerror(e);
      if (!detail.empty()) *why += " (" + std::string{detail} + ")";
    }
    return platform::errno_code(e);
  };

  // 1. The configuration and the devices.
  if (config.tun_ifindex == 0) return fail(EINVAL, "no TUN device");
  if (config.local.is_unspecified() || config.local.is_multicast()) {
    return fail(EINVAL, "the local address is not a unicast address");
  }
  if (config.tunnel_mtu < 1280 || config.tunnel_mtu > 65535) {
    return fail(EINVAL, "the tunnel MTU is outside 1280..65535");
  }
  if (config.hop_limit == 0) return fail(EINVAL, "the hop limit is 0");
  if (config.max_bindings == 0 || config.max_bindings > kMaxBindingsLimit) {
    return fail(EINVAL, "max_bindings is outside 1..2^24");
  }
  const auto tun = device(config.tun_ifindex);
  if (!tun) return fail(tun.error().value(), "looking up the TUN device");
  if (tun->type != ARPHRD_NONE) {
    return fail(EINVAL, "the TUN device is not a layer-3 TUN device", tun->name);
  }
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->attached = config.attach == Attach::Tc ? Attach::Tc : Attach::Tcx;
  if (config.uplinks.empty()) {
    struct if_nameindex* all = ::if_nameindex();
    if (all == nullptr) return fail(errno, "listing the interfaces");
    for (const struct if_nameindex* i = all; i->if_index != 0; ++i) {
      if (i->if_index == config.tun_ifindex) continue;
      const auto d = device(i->if_index);
      if (d && d->type == ARPHRD_ETHER) impl->uplinks.push_back(i->if_index);
    }
    ::if_freenameindex(all);
  } else {
    for (const auto ifindex : config.uplinks) {
      if (ifindex == config.tun_ifindex) {
        return fail(EINVAL, "the TUN device is given as an uplink", tun->name);
      }
      const auto d = device(ifindex);
      if (!d) return fail(d.error().value(), "looking up an uplink", std::to_string(ifindex));
      if (d->type != ARPHRD_ETHER) {
        return fail(EINVAL, "an uplink is not an Ethernet device", d->name);
      }
      if (std::find(impl->uplinks.begin(), impl->uplinks.end(), ifindex) == impl->uplinks.end()) {
        impl->uplinks.push_back(ifindex);
      }
    }
  }
  impl->netns.reset(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!impl->netns) return fail(errno, "opening the network namespace");

  // 2. The programs, configured before loading (the verifier then prunes the other role).
  LibbpfLog log;
  impl->skeleton.reset(fast_path_bpf__open());
  if (!impl->skeleton) return fail(errno, "opening the BPF object", log.text());
  auto& skeleton = *impl->skeleton;
  auto& cfg = skeleton.rodata->cfg;
  std::memcpy(cfg.local, config.local.bytes().data(), sizeof(cfg.local));
  cfg.role = config.role == Role::Tep ? TEP_BPF_ROLE_TEP : TEP_BPF_ROLE_CLIENT;
  cfg.tun_ifindex = config.tun_ifindex;
  cfg.tunnel_mtu = static_cast<__u32>(config.tunnel_mtu);
  cfg.hop_limit = config.hop_limit;
  cfg.flow_label = config.flow_label ? 1 : 0;
  cfg.has_keepalive = config.keepalive ? 1 : 0;
  cfg.keepalive = config.keepalive ? htonl(config.keepalive->to_uint()) : 0;
  const auto max_bindings = config.role == Role::Tep ? config.max_bindings : 1;
  if (const int r =
          bpf_map__set_max_entries(skeleton.maps.bindings, static_cast<__u32>(max_bindings));
      r < 0) {
    return fail(-r, "sizing the binding map", log.text());
  }
  if (const int r = fast_path_bpf__load(&skeleton); r < 0) {
    return fail(-r, "loading the BPF programs",
                r == -EPERM ? "needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN" : log.text());
  }

  // The helper flags the programs need (Linux >= 6.3): checked on a sample tunnel frame, so that
  // an older kernel is refused here rather than passing every packet to user space.
  if (const int e = probe(bpf_program__fd(skeleton.progs.tep_probe)); e != 0) {
    return fail(e, e == EOPNOTSUPP
                       ? "the kernel lacks the BPF helper flags the fast path needs (Linux >= 6.3)"
                       : "probing the kernel's BPF helpers");
  }

  // 3. bpf_fib_lookup answers BPF_FIB_LKUP_RET_FWD_DISABLED unless IPv6 forwarding is on for the
  // device it is given (the encap program gives the TUN device, where the packet is). It is
  // turned on for that device only, which carries no IPv6 (the backends disable it there), so
  // nothing else changes; restored at the end (Impl). A TUN device with an MTU below 1280 has no
  // IPv6 configuration at all.
  const std::string forwarding = "/proc/sys/net/ipv6/conf/" + tun->name + "/forwarding";
  const std::string was = read_sysctl(forwarding);
  if (was.empty()) {
    return fail(EOPNOTSUPP, "the TUN device has no IPv6 configuration (an MTU below 1280?)",
                tun->name);
  }
  if (was == "0") {
    if (const int e = write_sysctl(forwarding, "1"); e != 0) {
      return fail(e, "turning IPv6 forwarding on for the TUN device", forwarding);
    }
    impl->forwarding_sysctl = forwarding;
  }

  // 4. Attached last, encap first: no packet is decapsulated before the path back exists.
  std::string step;
  const int encap_fd = bpf_program__fd(skeleton.progs.tep_encap);
  const int decap_fd = bpf_program__fd(skeleton.progs.tep_decap);
  if (const int e = impl->attach(encap_fd, config.tun_ifindex, false, step); e != 0) {
    return fail(e, step + " on the TUN device's egress", tun->name);
  }
  for (const auto ifindex : impl->uplinks) {
    if (const int e = impl->attach(decap_fd, ifindex, true, step); e != 0) {
      return fail(e, step + " on an uplink's ingress", std::to_string(ifindex));
    }
  }
  return std::unique_ptr<FastPath>{new FastPath{std::move(impl)}};
}

platform::Result<void> FastPath::bind(core::Ipv4Address address, const core::Ipv6Address& client) {
  if (impl_->config.role != Role::Tep) return errno_error(EINVAL);
  const std::uint32_t key = htonl(address.to_uint());
  tep_bpf_binding value{};
  if (bpf_map_lookup_elem(impl_->bindings_fd(), &key, &value) == 0 &&
      std::memcmp(value.client, client.bytes().data(), sizeof(value.client)) == 0) {
    return {};  // the same client: keep the counts
  }
  value = {};
  std::memcpy(value.client, client.bytes().data(), sizeof(value.client));
  if (const int r = bpf_map_update_elem(impl_->bindings_fd(), &key, &value, BPF_ANY); r < 0) {
    return errno_error(-r);
  }
  return {};
}

platform::Result<void> FastPath::unbind(core::Ipv4Address address) {
  if (impl_->config.role != Role::Tep) return errno_error(EINVAL);
  const std::uint32_t key = htonl(address.to_uint());
  if (const int r = bpf_map_delete_elem(impl_->bindings_fd(), &key); r < 0 && r != -ENOENT) {
    return errno_error(-r);
  }
  return {};
}

platform::Result<void> FastPath::clear() {
  if (impl_->config.role != Role::Tep) return errno_error(EINVAL);
  const int fd = impl_->bindings_fd();
  // Keys are collected from the start of the map in chunks and deleted in batches (one
  // system call per chunk where the kernel has batch deletion). Each round removes what it found,
  // so rounds are bounded by the map's size.
  constexpr std::size_t kChunk = 4096;
  std::vector<std::uint32_t> keys;
  keys.reserve(kChunk);
  const std::size_t rounds = impl_->config.max_bindings / kChunk + 2;
  for (std::size_t round = 0; round < rounds; ++round) {
    keys.clear();
    std::uint32_t key = 0;
    std::uint32_t next = 0;
    while (keys.size() < kChunk &&
           bpf_map_get_next_key(fd, keys.empty() ? nullptr : &key, &next) == 0) {
      keys.push_back(next);
      key = next;
    }
    if (keys.empty()) return {};
    auto count = static_cast<__u32>(keys.size());
    if (bpf_map_delete_batch(fd, keys.data(), &count, nullptr) < 0) {
      for (const auto k : keys) {
        if (const int r = bpf_map_delete_elem(fd, &k); r < 0 && r != -ENOENT)
          return errno_error(-r);
      }
    }
  }
  return errno_error(EAGAIN);  // entries kept coming back: should not happen (we alone insert)
}

platform::Result<void> FastPath::set_client_path(core::Ipv4Address lease,
                                                 const core::Ipv6Address& tep) {
  if (impl_->config.role != Role::Client) return errno_error(EINVAL);
  const std::uint32_t key = 0;
  tep_bpf_client_path value{};
  std::memcpy(value.tep, tep.bytes().data(), sizeof(value.tep));
  value.lease = htonl(lease.to_uint());
  if (const int r = bpf_map_update_elem(impl_->path_fd(), &key, &value, BPF_ANY); r < 0) {
    return errno_error(-r);
  }
  return {};
}

platform::Result<void> FastPath::clear_client_path() {
  if (impl_->config.role != Role::Client) return errno_error(EINVAL);
  const std::uint32_t key = 0;
  if (const int r = bpf_map_delete_elem(impl_->path_fd(), &key); r < 0 && r != -ENOENT) {
    return errno_error(-r);
  }
  return {};
}

Counters FastPath::counters() const {
  Counters out;
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  // Per-CPU values come one per possible CPU, each rounded up to 8 bytes (ours is 8-aligned).
  std::vector<tep_bpf_counters> values(static_cast<std::size_t>(cpus));
  const std::uint32_t key = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skeleton->maps.counters), &key, values.data()) < 0) {
    return out;
  }
  std::array<std::uint64_t, TEP_BPF_COUNTER_COUNT> sum{};
  for (const auto& cpu : values) {
    for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += cpu.value[i];
  }
  std::size_t i = 0;
#define TEP_BPF_COUNTER_SUM(name, help) out.name = sum[i++];
  TEP_BPF_COUNTERS(TEP_BPF_COUNTER_SUM)
#undef TEP_BPF_COUNTER_SUM
  return out;
}

std::optional<BindingTraffic> FastPath::traffic(core::Ipv4Address address) const {
  if (impl_->config.role != Role::Tep) return std::nullopt;
  const std::uint32_t key = htonl(address.to_uint());
  tep_bpf_binding value{};
  if (bpf_map_lookup_elem(impl_->bindings_fd(), &key, &value) < 0) return std::nullopt;
  return BindingTraffic{.packets_to_client = value.packets_to_client,
                        .bytes_to_client = value.bytes_to_client,
                        .packets_from_client = value.packets_from_client,
                        .bytes_from_client = value.bytes_from_client};
}

Attach FastPath::attached() const noexcept {
  return impl_->attached;
}

const std::vector<std::uint32_t>& FastPath::uplinks() const noexcept {
  return impl_->uplinks;
}

}  // namespace tep::bpf
