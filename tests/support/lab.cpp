// The namespace lab: description parsing, named namespaces, configuration through our netlink
// client, child processes inside namespaces, teardown and the stale sweep.
//
// Namespaces are created in-process the way `ip netns add` does it (unshare on a helper thread,
// bind-mount its /proc/thread-self/ns/net on /run/netns/<name>), so that `ip netns` can see and
// delete them by hand; links, addresses and routes go through platform::NetlinkClient, which is
// what the lab exists to exercise. No shelling out.
#include "support/lab.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <variant>

#include <fmt/format.h>
#include <linux/rtnetlink.h>

namespace test {

bool await_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

namespace {

using namespace std::chrono_literals;
using platform::Fd;
namespace nl = platform::netlink;

constexpr const char* kNetnsDir = "/run/netns";
constexpr std::size_t kMaxLines = 256;
constexpr std::size_t kMaxNamespaces = 16;
constexpr std::size_t kMaxSweep = 4096;
constexpr std::size_t kMaxNameLength = 15;  // IFNAMSIZ - 1; also our namespace names

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::system_category(), what);
}

template <typename T>
T check(platform::NetlinkResult<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().to_string()));
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

// --- Documentation ranges (RFC 5737, RFC 3849).

const std::array<core::Ipv4Prefix, 3>& v4_ranges() {
  static const std::array<core::Ipv4Prefix, 3> ranges{
      core::Ipv4Prefix::parse("192.0.2.0/24").value(),
      core::Ipv4Prefix::parse("198.51.100.0/24").value(),
      core::Ipv4Prefix::parse("203.0.113.0/24").value()};
  return ranges;
}
const core::Ipv6Prefix& v6_range() {
  static const core::Ipv6Prefix range = core::Ipv6Prefix::parse("2001:db8::/32").value();
  return range;
}

void require_documentation(const core::Ipv4Prefix& p) {
  for (const auto& r : v4_ranges())
    if (r.contains(p)) return;
  throw std::invalid_argument(p.to_string() + " is outside the IPv4 documentation ranges");
}
void require_documentation(const core::Ipv6Prefix& p) {
  if (!v6_range().contains(p))
    throw std::invalid_argument(p.to_string() + " is outside 2001:db8::/32");
}

// --- The description, parsed whole before anything is created.

struct NetnsStep {
  std::string ns;
};
struct VethStep {
  std::string ns_a, if_a, ns_b, if_b;
};
struct AddrStep {
  std::string ns, ifname;
  std::variant<core::Ipv4Address, core::Ipv6Address> address;
  std::uint8_t length = 0;
};
struct RouteStep {
  std::string ns;
  std::variant<nl::Ipv4Route, nl::Ipv6Route> route;  // oif filled in from dev when applied
  std::optional<std::string> dev;
};
struct SysctlStep {
  std::string ns, key, value;
};
struct Step {
  std::size_t line = 0;
  std::string text;
  std::variant<NetnsStep, VethStep, AddrStep, RouteStep, SysctlStep> action;
};

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i == start) break;
    if (out.size() == 16) throw std::invalid_argument("too many words on a line");
    out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool is_ns_name(std::string_view s) {
  return !s.empty() && s.size() <= kMaxNameLength && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_ifname(std::string_view s) {
  return !s.empty() && s.size() <= kMaxNameLength && std::all_of(s.begin(), s.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '/' && c != ':' && c != '.';
  });
}

std::uint32_t number(std::string_view s) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size())
    throw std::invalid_argument(fmt::format("'{}' is not a number", s));
  return v;
}

class Parser {
 public:
  std::vector<Step> parse(std::string_view description) {
    std::vector<Step> steps;
    std::size_t line_number = 0;
    while (!description.empty()) {
      if (++line_number > kMaxLines) throw std::invalid_argument("lab description too long");
      const auto eol = description.find('\n');
      std::string_view line = description.substr(0, eol);
      description =
          eol == std::string_view::npos ? std::string_view{} : description.substr(eol + 1);
      if (const auto hash = line.find('#'); hash != std::string_view::npos)
        line = line.substr(0, hash);
      const auto w = words(line);
      if (w.empty()) continue;
      try {
        steps.push_back({line_number, std::string{line}, directive(w)});
      } catch (const std::exception& e) {
        throw std::invalid_argument(
            fmt::format("lab description line {}: {}", line_number, e.what()));
      }
    }
    return steps;
  }

 private:
  decltype(Step::action) directive(const std::vector<std::string_view>& w) {
    const auto arity = [&](std::size_t n) {
      if (w.size() != n)
        throw std::invalid_argument(fmt::format("'{}' takes {} words", w[0], n - 1));
    };
    if (w[0] == "netns") {
      arity(2);
      if (!is_ns_name(w[1])) throw std::invalid_argument("namespace names are [a-z0-9_]{1,15}");
      if (known(w[1]))
        throw std::invalid_argument(fmt::format("namespace '{}' declared twice", w[1]));
      if (namespaces_.size() == kMaxNamespaces) throw std::invalid_argument("too many namespaces");
      namespaces_.emplace_back(w[1]);
      return NetnsStep{std::string{w[1]}};
    }
    if (w[0] == "veth") {
      arity(3);
      const auto [ns_a, if_a] = endpoint(w[1]);
      const auto [ns_b, if_b] = endpoint(w[2]);
      return VethStep{ns_a, if_a, ns_b, if_b};
    }
    if (w[0] == "addr") {
      arity(4);
      AddrStep s{ns(w[1]), ifname(w[2]), core::Ipv4Address{}, 0};
      const auto slash = w[3].find('/');
      if (slash == std::string_view::npos) throw std::invalid_argument("address needs /length");
      const auto text = w[3].substr(0, slash);
      const auto length = number(w[3].substr(slash + 1));
      if (auto a4 = core::Ipv4Address::parse(text)) {
        if (length > 32) throw std::invalid_argument("IPv4 length above 32");
        Lab::require_documentation(*a4);
        s.address = *a4;
      } else if (auto a6 = core::Ipv6Address::parse(text)) {
        if (length > 128) throw std::invalid_argument("IPv6 length above 128");
        Lab::require_documentation(*a6);
        s.address = *a6;
      } else {
        throw std::invalid_argument(fmt::format("'{}' is not an address", text));
      }
      s.length = static_cast<std::uint8_t>(length);
      return s;
    }
    if (w[0] == "route") {
      if (w.size() < 3) throw std::invalid_argument("route needs a namespace and a prefix");
      RouteStep s{ns(w[1]), nl::Ipv4Route{}, std::nullopt};
      std::optional<std::string_view> via;
      std::optional<std::uint32_t> table, metric;
      for (std::size_t i = 3; i < w.size(); i += 2) {
        if (i + 1 >= w.size()) throw std::invalid_argument(fmt::format("'{}' needs a value", w[i]));
        if (w[i] == "via")
          via = w[i + 1];
        else if (w[i] == "dev")
          s.dev = ifname(w[i + 1]);
        else if (w[i] == "table")
          table = number(w[i + 1]);
        else if (w[i] == "metric")
          metric = number(w[i + 1]);
        else
          throw std::invalid_argument(fmt::format("unknown route option '{}'", w[i]));
      }
      if (!via && !s.dev) throw std::invalid_argument("route needs via or dev");
      if (auto p4 = core::Ipv4Prefix::parse(w[2])) {
        require_documentation(*p4);
        nl::Ipv4Route r{.destination = *p4,
                        .gateway = {},
                        .oif = {},
                        .table = table.value_or(nl::kMainTable),
                        .metric = metric};
        if (via) {
          auto gw = core::Ipv4Address::parse(*via);
          if (!gw) throw std::invalid_argument(fmt::format("'{}' is not an IPv4 gateway", *via));
          Lab::require_documentation(*gw);
          r.gateway = *gw;
        }
        s.route = r;
      } else if (auto p6 = core::Ipv6Prefix::parse(w[2])) {
        require_documentation(*p6);
        nl::Ipv6Route r{.destination = *p6,
                        .gateway = {},
                        .oif = {},
                        .table = table.value_or(nl::kMainTable),
                        .metric = metric};
        if (via) {
          auto gw = core::Ipv6Address::parse(*via);
          if (!gw) throw std::invalid_argument(fmt::format("'{}' is not an IPv6 gateway", *via));
          Lab::require_documentation(*gw);
          r.gateway = *gw;
        }
        s.route = r;
      } else {
        throw std::invalid_argument(fmt::format("'{}' is not a prefix (network/length)", w[2]));
      }
      return s;
    }
    if (w[0] == "sysctl") {
      arity(3);
      const auto eq = w[2].find('=');
      if (eq == std::string_view::npos) throw std::invalid_argument("sysctl needs key=value");
      const auto key = w[2].substr(0, eq);
      const auto value = w[2].substr(eq + 1);
      const bool key_ok = key.starts_with("net.") && key.find("..") == std::string_view::npos &&
                          std::all_of(key.begin(), key.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                                   c == '.' || c == '-';
                          });
      if (!key_ok)
        throw std::invalid_argument(fmt::format("sysctl key '{}' is not under net.", key));
      if (value.empty()) throw std::invalid_argument("sysctl needs a value");
      return SysctlStep{ns(w[1]), std::string{key}, std::string{value}};
    }
    throw std::invalid_argument(fmt::format("unknown directive '{}'", w[0]));
  }

  bool known(std::string_view n) const {
    return std::find(namespaces_.begin(), namespaces_.end(), n) != namespaces_.end();
  }
  std::string ns(std::string_view n) const {
    if (!known(n)) throw std::invalid_argument(fmt::format("namespace '{}' is not declared", n));
    return std::string{n};
  }
  static std::string ifname(std::string_view n) {
    if (!is_ifname(n)) throw std::invalid_argument(fmt::format("bad interface name '{}'", n));
    return std::string{n};
  }
  std::pair<std::string, std::string> endpoint(std::string_view s) const {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos) throw std::invalid_argument("veth ends are <ns>:<ifname>");
    return {ns(s.substr(0, colon)), ifname(s.substr(colon + 1))};
  }

  std::vector<std::string> namespaces_;
};

// Deletes a named namespace when it goes out of scope (including during stack unwinding).
class NetnsGuard {
 public:
  explicit NetnsGuard(std::string name) : name_{std::move(name)} {}
  NetnsGuard(NetnsGuard&& o) noexcept : name_{std::exchange(o.name_, {})} {}
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  ~NetnsGuard() {
    if (!name_.empty()) netns_delete(name_);
  }

 private:
  std::string name_;
};

std::string netns_path(const std::string& name) {
  return std::string{kNetnsDir} + "/" + name;
}

bool valid_netns_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos;
}

// Like iproute2: /run/netns must be a shared mount point, so the bind mounts on it propagate to
// other mount namespaces; if it is not a mount point yet (EINVAL), bind it onto itself first.
void ensure_netns_dir() {
  if (::mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) throw_errno("mkdir /run/netns");
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
    if (errno != EINVAL || attempt == 1) throw_errno("make /run/netns a shared mount");
    if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
      throw_errno("bind /run/netns");
    }
  }
}

void write_file(const std::string& path, std::string_view value) {
  Fd fd{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (!fd) throw_errno("open " + path);
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) throw_errno("write " + path);
  if (static_cast<std::size_t>(n) != value.size()) throw std::runtime_error("short write " + path);
}

// The first up to `limit` bytes of a small file (procfs, sysfs), or "" when unreadable.
std::string read_file(const std::string& path, std::size_t limit = 256) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return {};
  std::string out(limit, '\0');
  const ssize_t n = ::read(fd.get(), out.data(), out.size());
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

void write_sysctl(int netns_fd, const std::string& key, const std::string& value) {
  std::string path = "/proc/sys/" + key;
  std::replace(path.begin() + 10, path.end(), '.', '/');
  // /proc/sys/net resolves to the namespace of the thread that opens it.
  Lab::run_in_netns(netns_fd, [&] { write_file(path, value); });
}

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path_env = std::getenv("PATH");
  std::string_view path = path_env != nullptr ? path_env : "/usr/sbin:/usr/bin:/sbin:/bin";
  for (std::size_t i = 0; i < 64 && !path.empty(); ++i) {
    const auto colon = path.find(':');
    const auto dir = path.substr(0, colon);
    path = colon == std::string_view::npos ? std::string_view{} : path.substr(colon + 1);
    std::string candidate = std::string{dir.empty() ? "." : dir} + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("program not found in PATH: " + name);
}

// The start time of a live process (field 22 of /proc/<pid>/stat, in clock ticks since boot);
// nullopt when there is no such process or it is a zombie.
std::optional<unsigned long long> process_start(pid_t pid) {
  const std::string stat = read_file(fmt::format("/proc/{}/stat", pid), 4096);
  // "<pid> (<comm>) <state> <ppid> ...": comm may hold spaces and parentheses, so split after the
  // last ')'. The state is field 3 and the start time field 22.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::string_view rest{stat};
  rest.remove_prefix(paren + 1);
  std::size_t field = 2;
  for (int guard = 0; guard < 64 && !rest.empty(); ++guard) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto space = std::min(rest.find(' '), rest.size());
    const auto token = rest.substr(0, space);
    rest.remove_prefix(space);
    ++field;
    if (field == 3 && (token == "Z" || token == "X")) return std::nullopt;
    if (field == 22) {
      unsigned long long start = 0;
      const auto r = std::from_chars(token.data(), token.data() + token.size(), start);
      if (r.ec != std::errc{}) return std::nullopt;
      return start;
    }
  }
  return std::nullopt;
}

std::atomic<unsigned> next_lab_serial{0};

}  // namespace

// --- Namespaces by name.

void netns_add(const std::string& name) {
  if (!valid_netns_name(name)) throw std::invalid_argument("bad namespace name: " + name);
  ensure_netns_dir();
  const std::string path = netns_path(name);
  {
    Fd mount_point{::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)};
    if (!mount_point) throw_errno("create " + path);
  }
  // A new namespace lives as long as something refers to it: the helper thread, then the bind
  // mount. The thread exits right after, leaving the mount as the only reference.
  int error = 0;
  std::string step;
  std::thread helper([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      error = errno;
      step = "unshare(CLONE_NEWNET)";
    } else if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      error = errno;
      step = "bind-mount the namespace on " + path;
    }
  });
  helper.join();
  if (error != 0) {
    ::unlink(path.c_str());
    throw std::system_error(error, std::system_category(), step);
  }
}

bool netns_delete(const std::string& name) noexcept {
  if (!valid_netns_name(name)) return false;
  const std::string path = netns_path(name);
  // Detach: a process still inside keeps the namespace alive, but the name goes now.
  const bool unmounted = ::umount2(path.c_str(), MNT_DETACH) == 0;
  const bool removed = ::unlink(path.c_str()) == 0;
  return unmounted || removed;
}

bool netns_exists(const std::string& name) noexcept {
  return valid_netns_name(name) && ::access(netns_path(name).c_str(), F_OK) == 0;
}

// --- Process.

Process::Process(int netns_fd, const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("empty argv");
  const std::string path = find_program(argv[0]);
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args_storage = argv;
  std::vector<char*> args;
  for (auto& a : args_storage) args.push_back(a.data());
  args.push_back(nullptr);

  std::array<int, 2> pipe_fds{-1, -1};
  if (::pipe2(pipe_fds.data(), O_CLOEXEC) != 0) throw_errno("pipe2");
  Fd read_end{pipe_fds[0]};
  Fd write_end{pipe_fds[1]};
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(126);
    if (::setns(netns_fd, CLONE_NEWNET) != 0) ::_exit(126);
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0) ::_exit(126);
    if (::dup2(write_end.get(), 1) < 0 || ::dup2(write_end.get(), 2) < 0) ::_exit(126);
    ::execv(path.c_str(), args.data());
    ::_exit(127);
  }
  pid_ = pid;
  write_end.reset();  // so that the pipe reports EOF once the child's copies are gone
  // By syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C", so its wrapper does not link from C++.
  pidfd_ = Fd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  if (!pidfd_) {
    const int e = errno;
    kill_and_reap();
    throw std::system_error(e, std::system_category(), "pidfd_open");
  }
  if (::fcntl(read_end.get(), F_SETFL, O_NONBLOCK) != 0) {
    kill_and_reap();
    throw_errno("fcntl O_NONBLOCK");
  }
  output_ = std::move(read_end);
}

Process::Process(Process&& o) noexcept
    : pid_{std::exchange(o.pid_, -1)},
      pidfd_{std::move(o.pidfd_)},
      output_{std::move(o.output_)},
      reaped_{std::exchange(o.reaped_, true)},
      status_{o.status_} {}

Process::~Process() {
  kill_and_reap();
}

void Process::kill_and_reap() noexcept {
  if (pid_ <= 0 || reaped_) return;
  ::kill(pid_, SIGKILL);
  // SIGKILL ends it promptly unless it sits in an uninterruptible sleep; do not wait forever.
  if (pidfd_) {
    pollfd p{.fd = pidfd_.get(), .events = POLLIN, .revents = 0};
    ::poll(&p, 1, 5000);
  }
  if (::waitpid(pid_, &status_, pidfd_ ? WNOHANG : 0) == pid_) reaped_ = true;
}

RunResult Process::wait(std::chrono::milliseconds timeout) {
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 4096> buf{};
  // Reads what the pipe holds now; closes it at EOF.
  const auto drain = [&] {
    for (int i = 0; i < 1024 && output_; ++i) {
      const ssize_t n = ::read(output_.get(), buf.data(), buf.size());
      if (n > 0) {
        const auto room = RunResult::kMaxOutput - result.output.size();
        result.output.append(buf.data(), std::min(static_cast<std::size_t>(n), room));
      } else if (n == 0) {
        output_.reset();
      } else if (errno != EINTR) {
        return;  // EAGAIN: nothing more for now
      }
    }
  };

  bool exited = reaped_;
  for (int round = 0; round < 100000 && !exited; ++round) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    std::array<pollfd, 2> fds{
        {{.fd = pidfd_.get(), .events = POLLIN, .revents = 0},
         {.fd = output_ ? output_.get() : -1, .events = POLLIN, .revents = 0}}};
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) {
      throw_errno("poll");
    }
    if (fds[1].revents != 0) drain();
    if ((fds[0].revents & POLLIN) != 0) {
      if (::waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
      exited = true;
    }
  }
  if (!exited) {
    result.timed_out = true;
    kill_and_reap();
  }
  // Whatever the child wrote before it ended is in the pipe now; a grandchild that kept the
  // pipe open does not hold us up.
  drain();
  output_.reset();
  if (reaped_ && WIFEXITED(status_)) result.exit_code = WEXITSTATUS(status_);
  if (reaped_ && WIFSIGNALED(status_)) result.signal = WTERMSIG(status_);
  return result;
}

// --- Lab.

struct Lab::Namespace {
  std::string name;
  std::string full_name;
  NetnsGuard guard;  // declared before the fd and client so it is destroyed after them
  Fd fd;
  std::optional<platform::NetlinkClient> netlink;
};

// Awaits links that were just set up in one namespace: the kernel's link watcher must have
// activated them (operational state up; until then their queue drops every packet), and, where
// IPv6 is enabled, their link-local address must be usable (its local route installed), since
// neighbour discovery for forwarded packets solicits from it.
class LinkWaiter {
 public:
  explicit LinkWaiter(Lab::Namespace& ns) : ns_{ns} {
    const std::array<unsigned, 2> groups{RTNLGRP_LINK, RTNLGRP_IPV6_ROUTE};
    Lab::run_in_netns(ns.fd.get(), [&] {
      auto m = platform::NetlinkMonitor::open(groups);
      if (!m) throw std::system_error(m.error(), "netlink monitor");
      monitor_.emplace(std::move(*m));
    });
  }

  void add(const std::string& ifname) {
    const auto link = check(ns_.netlink->link(ifname), "find link " + ifname);
    std::string disabled;
    const std::string path = "/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6";
    Lab::run_in_netns(ns_.fd.get(), [&] { disabled = read_file(path); });
    links_.push_back({.index = link.index,
                      .name = ifname,
                      .up = link.operstate == nl::kOperUp,
                      .link_local = disabled != "0\n"});
  }

  void await() {
    const auto done = [&] {
      return std::all_of(links_.begin(), links_.end(),
                         [](const Link& l) { return l.up && l.link_local; });
    };
    if (done()) return;
    const auto seen = [&](const nl::ParsedMessage& m) {
      if (m.header.type == RTM_NEWLINK) {
        if (auto link = nl::parse_link(m)) {
          for (auto& l : links_)
            if (l.index == link->index && link->operstate == nl::kOperUp) l.up = true;
        }
      } else if (m.header.type == RTM_NEWROUTE) {
        if (auto route = nl::parse_route(m); route && is_link_local_route(*route)) {
          for (auto& l : links_)
            if (route->oif == l.index) l.link_local = true;
        }
      }
      return done();
    };
    if (auto r = monitor_->wait_for(seen, 5s); !r) {
      std::string names;
      for (const auto& l : links_) names += " " + l.name;
      throw std::runtime_error(fmt::format("links{} not ready: {}", names, r.error().to_string()));
    }
  }

 private:
  struct Link {
    std::uint32_t index;
    std::string name;
    bool up;
    bool link_local;
  };

  static bool is_link_local_route(const nl::RouteInfo& r) {
    return r.type == RTN_LOCAL && r.destination.size() == 16 && r.destination[0] == 0xfe &&
           (r.destination[1] & 0xc0) == 0x80;
  }

  Lab::Namespace& ns_;
  std::optional<platform::NetlinkMonitor> monitor_;
  std::vector<Link> links_;
};

class Lab::Applier {
 public:
  explicit Applier(Lab& lab) : lab_{lab} {}

  void operator()(const NetnsStep& s) {
    const std::string full = fmt::format("{}{}-{}", owner_prefix(), lab_.serial_, s.ns);
    netns_add(full);
    NetnsGuard guard{full};
    Fd fd{::open(netns_path(full).c_str(), O_RDONLY | O_CLOEXEC)};
    if (!fd) throw_errno("open " + netns_path(full));
    lab_.namespaces_.push_back(
        Namespace{s.ns, full, std::move(guard), std::move(fd), std::nullopt});
    auto& ns = lab_.namespaces_.back();
    Lab::run_in_netns(ns.fd.get(), [&] {
      auto client = platform::NetlinkClient::open();
      if (!client) throw std::system_error(client.error(), "netlink socket");
      ns.netlink.emplace(std::move(*client));
    });
    // Kernel-made link-local addresses then skip DAD's second of tentativeness (ours are added
    // with IFA_F_NODAD anyway); neighbour discovery needs a usable link-local to solicit from.
    write_sysctl(ns.fd.get(), "net.ipv6.conf.all.accept_dad", "0");
    write_sysctl(ns.fd.get(), "net.ipv6.conf.default.accept_dad", "0");
    check(ns.netlink->set_link_up(lab_.ifindex(s.ns, "lo")), "set lo up");
  }

  void operator()(const VethStep& s) {
    auto& a = lab_.find(s.ns_a);
    auto& b = lab_.find(s.ns_b);
    // Listen before the links exist, so that no state change can slip past.
    LinkWaiter wait_a{a};
    std::optional<LinkWaiter> wait_b;
    if (&b != &a) wait_b.emplace(b);

    auto& client = *a.netlink;
    std::optional<int> peer_fd;
    if (&b != &a) peer_fd = b.fd.get();
    check(client.call(nl::veth_add(client.next_sequence(), s.if_a, s.if_b, peer_fd)),
          "create veth");
    check(client.set_link_up(lab_.ifindex(s.ns_a, s.if_a)), "set " + s.if_a + " up");
    check(b.netlink->set_link_up(lab_.ifindex(s.ns_b, s.if_b)), "set " + s.if_b + " up");

    wait_a.add(s.if_a);
    (wait_b ? *wait_b : wait_a).add(s.if_b);
    wait_a.await();
    if (wait_b) wait_b->await();
  }

  void operator()(const AddrStep& s) {
    const auto index = lab_.ifindex(s.ns, s.ifname);
    auto& client = *lab_.find(s.ns).netlink;
    std::visit([&](const auto& a) { check(client.add_address(index, a, s.length), "add address"); },
               s.address);
    if (const auto* a6 = std::get_if<core::Ipv6Address>(&s.address)) {
      lab_.await_local_address(s.ns, *a6);
    }
  }

  void operator()(const RouteStep& s) {
    std::optional<std::uint32_t> oif;
    if (s.dev) oif = lab_.ifindex(s.ns, *s.dev);
    auto& client = *lab_.find(s.ns).netlink;
    std::visit(
        [&](auto route) {
          route.oif = oif;
          check(client.add_route(route), "add route");
        },
        s.route);
  }

  void operator()(const SysctlStep& s) { write_sysctl(lab_.find(s.ns).fd.get(), s.key, s.value); }

 private:
  Lab& lab_;
};

Lab::Lab(std::string_view description) : serial_{next_lab_serial++} {
  // Validate the whole description before creating anything.
  const auto steps = Parser{}.parse(description);
  sweep_stale();
  namespaces_.reserve(kMaxNamespaces);
  for (const auto& step : steps) {
    try {
      std::visit(Applier{*this}, step.action);
    } catch (const std::exception& e) {
      // Members are destroyed on the way out, which deletes every namespace made so far.
      throw std::runtime_error(fmt::format("lab line {} ({}): {}", step.line, step.text, e.what()));
    }
  }
}

Lab::~Lab() {
  while (!namespaces_.empty()) namespaces_.pop_back();
}

Lab::Namespace& Lab::find(std::string_view ns) {
  for (auto& n : namespaces_)
    if (n.name == ns) return n;
  throw std::invalid_argument(fmt::format("no namespace '{}' in this lab", ns));
}

const Lab::Namespace& Lab::find(std::string_view ns) const {
  for (const auto& n : namespaces_)
    if (n.name == ns) return n;
  throw std::invalid_argument(fmt::format("no namespace '{}' in this lab", ns));
}

const std::string& Lab::netns_name(std::string_view ns) const {
  return find(ns).full_name;
}
int Lab::netns_fd(std::string_view ns) const {
  return find(ns).fd.get();
}
platform::NetlinkClient& Lab::netlink(std::string_view ns) {
  return *find(ns).netlink;
}

std::uint32_t Lab::ifindex(std::string_view ns, std::string_view ifname) {
  return check(netlink(ns).link_index(ifname), fmt::format("find link {} in {}", ifname, ns));
}

void Lab::await_local_address(std::string_view ns, const core::Ipv6Address& address,
                              std::chrono::milliseconds timeout) {
  auto& n = find(ns);
  const auto bytes = address.bytes();
  const auto is_local = [&](const nl::RouteInfo& r) {
    return r.type == RTN_LOCAL &&
           std::equal(r.destination.begin(), r.destination.end(), bytes.begin(), bytes.end());
  };
  // Listen first, then look: the route cannot appear unseen in between.
  std::optional<platform::NetlinkMonitor> monitor;
  const std::array<unsigned, 1> groups{RTNLGRP_IPV6_ROUTE};
  run_in_netns(n.fd.get(), [&] {
    auto m = platform::NetlinkMonitor::open(groups);
    if (!m) throw std::system_error(m.error(), "netlink monitor");
    monitor.emplace(std::move(*m));
  });
  if (is_local(check(n.netlink->route_to(address), "route to " + address.to_string()))) return;
  const auto seen = [&](const nl::ParsedMessage& m) {
    if (m.header.type != RTM_NEWROUTE) return false;
    auto route = nl::parse_route(m);
    return route && is_local(*route);
  };
  check(monitor->wait_for(seen, timeout), "await local address " + address.to_string());
}

Process Lab::spawn(std::string_view ns, const std::vector<std::string>& argv) const {
  return Process{netns_fd(ns), argv};
}

RunResult Lab::run(std::string_view ns, const std::vector<std::string>& argv,
                   std::chrono::milliseconds timeout) const {
  return spawn(ns, argv).wait(timeout);
}

void Lab::run_in_netns(int netns_fd, const std::function<void()>& fn) {
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) != 0) throw_errno("setns");
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
}

std::string Lab::owner_prefix() {
  const pid_t pid = ::getpid();
  const auto start = process_start(pid);
  // Without it, other processes' sweeps could not tell our namespaces from stale ones.
  if (!start) throw std::runtime_error("cannot read this process's start time from /proc");
  return fmt::format("{}{}-{}-", kPrefix, pid, *start);
}

std::size_t Lab::sweep_stale() {
  std::unique_ptr<DIR, int (*)(DIR*)> dir{::opendir(kNetnsDir), ::closedir};
  if (!dir) return 0;
  std::vector<std::string> stale;
  for (std::size_t i = 0; i < kMaxSweep; ++i) {
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) break;
    const std::string_view name{entry->d_name};
    if (!name.starts_with(kPrefix)) continue;
    // "appl-<pid>-<start time>-...": the process that made it, told apart from a later process
    // given the same pid by its start time.
    const char* p = name.data() + kPrefix.size();
    const char* const last = name.data() + name.size();
    pid_t pid = 0;
    unsigned long long start = 0;
    auto r = std::from_chars(p, last, pid);
    if (r.ec != std::errc{} || pid <= 0 || r.ptr == last || *r.ptr != '-') continue;
    r = std::from_chars(r.ptr + 1, last, start);
    if (r.ec != std::errc{} || r.ptr == last || *r.ptr != '-') continue;
    // A zombie counts as gone: it holds nothing in the namespace any more.
    if (process_start(pid) != start) stale.emplace_back(name);
  }
  std::size_t deleted = 0;
  for (const auto& name : stale)
    if (netns_delete(name)) ++deleted;
  return deleted;
}

void Lab::require_documentation(core::Ipv4Address a) {
  for (const auto& r : v4_ranges())
    if (r.contains(a)) return;
  throw std::invalid_argument(a.to_string() + " is outside the IPv4 documentation ranges");
}

void Lab::require_documentation(const core::Ipv6Address& a) {
  if (!v6_range().contains(a))
    throw std::invalid_argument(a.to_string() + " is outside 2001:db8::/32");
}

}  // namespace test
