// The namespace lab for privileged tests: named network namespaces wired with veth pairs,
// addresses, routes and sysctls from a short text description, configured through
// platform::NetlinkClient, and always torn down.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/address.hpp"
#include "platform/fd.hpp"
#include "platform/netlink.hpp"

namespace test {

// True when fd became readable before the deadline (poll, retried on EINTR).
bool await_readable(int fd, std::chrono::steady_clock::time_point deadline);

// --- Description format. One directive a line, executed top to bottom; '#' starts a comment.
//
//   netns <ns>                                   a namespace; its lo is brought up
//   veth <ns>:<ifname> <ns>:<ifname>             a veth pair, both ends up
//   addr <ns> <ifname> <address>/<length>        IPv4 or IPv6
//   route <ns> <prefix> [via <gateway>] [dev <ifname>] [table <n>] [metric <n>]
//   sysctl <ns> <key>=<value>                    key under net., e.g. net.ipv4.ip_forward=1
//
// Example:
//   netns a
//   netns b
//   veth a:eth0 b:eth0
//   addr a eth0 192.0.2.1/24
//   addr b eth0 192.0.2.2/24
//   route a 198.51.100.0/24 via 192.0.2.2
//
// <ns> is [a-z0-9_], 1..15 characters, declared by a netns line before use; ifnames are 1..15
// characters without '/', ':', '.' or spaces. Every address, gateway and route prefix must lie
// in a documentation range (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32);
// anything else is rejected, so a lab can never touch a real network.
//
// When the constructor returns, the lab is ready to carry packets: each veth end has been
// activated by the kernel (operational state up) and, unless IPv6 is disabled on it, has a usable
// link-local address; each IPv6 address's local route is installed. Namespaces have IPv6 DAD off
// (net.ipv6.conf.{all,default}.accept_dad=0) so that link-local addresses come up at once.
// A description error throws std::invalid_argument, a failure while building std::runtime_error;
// both name the line.

// How a program run in a namespace ended.
struct RunResult {
  int exit_code = -1;      // when it exited; -1 otherwise
  int signal = 0;          // when a signal ended it
  bool timed_out = false;  // we killed it at the deadline
  std::string output;      // stdout and stderr interleaved, at most kMaxOutput bytes

  static constexpr std::size_t kMaxOutput = 1 << 20;
  bool ok() const noexcept { return !timed_out && signal == 0 && exit_code == 0; }
};

// A child process inside a namespace, stdin /dev/null, stdout and stderr captured through one
// pipe. Killed (SIGKILL) and reaped on destruction if still running, and when the thread that
// started it ends (PR_SET_PDEATHSIG follows the thread): start it from the thread that waits.
// Exit code 126: it could not enter the namespace or set up its stdio; 127: exec failed.
class Process {
 public:
  // argv[0] is looked up in PATH when it has no '/'. Throws std::runtime_error.
  Process(int netns_fd, const std::vector<std::string>& argv);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;
  ~Process();

  // Waits for exit, collecting output, until the timeout; then kills it. Call once.
  RunResult wait(std::chrono::milliseconds timeout);
  pid_t pid() const noexcept { return pid_; }

 private:
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  platform::Fd pidfd_;
  platform::Fd output_;
  bool reaped_ = false;
  int status_ = 0;
};

class Lab {
 public:
  static constexpr std::string_view kPrefix = "appl-";

  // Sweeps stale namespaces, then creates and configures the lab. On any failure, tears down
  // what it made and throws std::runtime_error (std::invalid_argument for a bad description).
  explicit Lab(std::string_view description);
  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // The namespace's name under /run/netns: owner_prefix() + "<lab serial>-<ns>", unique per
  // process and per lab, so parallel tests and engineers never collide.
  const std::string& netns_name(std::string_view ns) const;
  int netns_fd(std::string_view ns) const;
  // A netlink client whose socket lives in the namespace (usable from any thread).
  platform::NetlinkClient& netlink(std::string_view ns);
  // Throws std::runtime_error with the kernel's text when there is no such link.
  std::uint32_t ifindex(std::string_view ns, std::string_view ifname);

  // Runs fn() on a new thread that has joined the namespace (setns) and returns its result;
  // exceptions propagate. Anything fn opens there (a TUN device, a socket) stays in that
  // namespace after the thread ends. fn must bound its own time.
  template <typename F>
  auto enter(std::string_view ns, F&& fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    if constexpr (std::is_void_v<R>) {
      run_in_netns(netns_fd(ns), [&] { fn(); });
    } else {
      std::optional<R> out;
      run_in_netns(netns_fd(ns), [&] { out.emplace(fn()); });
      return std::move(*out);
    }
  }

  // Waits until address is local in the namespace: its local route is installed. For IPv6 the
  // kernel does that after acking the address (in its DAD work, even with IFA_F_NODAD); a reply
  // arriving before it is dropped. The lab's own addr lines do this already. Throws on timeout.
  void await_local_address(std::string_view ns, const core::Ipv6Address& address,
                           std::chrono::milliseconds timeout = std::chrono::seconds{5});

  // Starts argv in the namespace; see Process.
  Process spawn(std::string_view ns, const std::vector<std::string>& argv) const;
  // Starts argv and waits for it, bounded by timeout.
  RunResult run(std::string_view ns, const std::vector<std::string>& argv,
                std::chrono::milliseconds timeout = std::chrono::seconds{10}) const;

  // "appl-<pid>-<start time>-": what this process's namespace names begin with. The start time
  // (from /proc/<pid>/stat) tells this process apart from an earlier one that had its pid.
  static std::string owner_prefix();

  // Deletes "appl-<pid>-<start time>-..." namespaces whose process is gone: no such pid, a
  // zombie, or a later process with another start time (left by a killed test, which could not
  // run its destructors). Returns how many it deleted. Runs at every Lab construction
  // and as the ctest fixture "lab_namespaces". By hand: run <build>/tests/integration/lab_sweep;
  // or, only when no lab test runs anywhere on the machine:
  //   ip netns list | awk '/^appl-/ {print $1}' | xargs -r -n1 ip netns delete
  static std::size_t sweep_stale();

  // Throw std::invalid_argument for anything outside the documentation ranges.
  static void require_documentation(core::Ipv4Address a);
  static void require_documentation(const core::Ipv6Address& a);

  // Runs fn on a new thread inside the namespace open as netns_fd; rethrows what fn throws.
  static void run_in_netns(int netns_fd, const std::function<void()>& fn);

 private:
  struct Namespace;
  friend class LinkWaiter;
  class Applier;  // carries out one description line
  Namespace& find(std::string_view ns);
  const Namespace& find(std::string_view ns) const;

  unsigned serial_ = 0;
  std::vector<Namespace> namespaces_;
};

// Like `ip netns add` / `ip netns delete`, for names of our own (mount-binds the namespace on
// /run/netns/<name>, with /run/netns a shared mount point, so `ip netns` sees and manages them).
// netns_add throws std::runtime_error; netns_delete returns false when there was nothing to delete.
void netns_add(const std::string& name);
bool netns_delete(const std::string& name) noexcept;
bool netns_exists(const std::string& name) noexcept;

}  // namespace test
