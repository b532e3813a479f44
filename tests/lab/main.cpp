// dstm-lab: the whole DSTM lab in network namespaces (server, two TEPs, two clients, an IPv4
// host), the dashboard on 127.0.0.1, a traffic generator and a status table, torn down on
// Ctrl-C. Root only.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "support/dstm_lab.hpp"

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::DstmLab;

constexpr std::string_view kUsage = R"(usage: dstm-lab [options]     (root)
Builds the DSTM lab in network namespaces: IPv6-only clients cl1 and cl2, the IPv6 router r6,
the DSTM server srv, the TEPs tep1 and tep2, the IPv4 router r4 and the IPv4 host 203.0.113.10.
Starts dstm-server, both TEPs and both clients (cl1 anonymous over TCP, cl2 as alice over UDP),
pings the host from each client every second, serves iperf3 on the host, runs the dashboard
(dstm-web) on https://127.0.0.1:8443/ and prints its first admin password, and prints a status
table every 5 s. Ctrl-C (SIGINT or SIGTERM) stops everything and removes the namespaces.
  --hold          no traffic generator (for scripts)
  --reference     also a plain IPv4 path cl1 192.0.2.34 <-> host 203.0.113.20 over the same veths
  --lifetime S    lease lifetime in seconds (default 60)
  --backend B     the TEPs' and clients' data path: auto (default: kernel ip6tnl when the kernel
                  has it, else BPF when it loads), kernel, bpf or user
  --info FILE     once everything is up, write the real namespace names, addresses and control
                  socket paths to FILE (a flat JSON object, one member a line), then print
                  "lab ready"
  --ready-fd N    write "READY\n" to file descriptor N once everything is up, then close it
  --check         build the namespaces, check with ping that they carry IPv6 and IPv4, exit
  --no-web        no dashboard
  --web-port N    the dashboard's HTTPS port on 127.0.0.1 (default 8443)
  --web-http-port N  its HTTP port, which only redirects to HTTPS (default 8080; 0: none)
  --confirm-timeout S  the dashboard's apply-then-confirm window in seconds (5..3600, default 90)
)";

[[noreturn]] void usage_error(std::string_view message) {
  fmt::print(stderr, "dstm-lab: {}\n{}", message, kUsage);
  std::exit(64);  // EX_USAGE
}

struct Options {
  bool hold = false;
  bool reference = false;
  bool check = false;
  std::uint32_t lifetime = 60;
  std::string backend = "auto";
  std::optional<std::filesystem::path> info;
  std::optional<int> ready_fd;
  bool web = true;
  std::uint16_t web_port = 8443;
  std::uint16_t web_http_port = 8080;
  std::uint32_t confirm_timeout = 90;
};

template <typename T>
T number(std::string_view flag, std::string_view text) {
  T v{};
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size())
    usage_error(fmt::format("{} needs a number", flag));
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--hold") {
      o.hold = true;
    } else if (arg == "--reference") {
      o.reference = true;
    } else if (arg == "--check") {
      o.check = true;
    } else if (arg == "--lifetime") {
      o.lifetime = number<std::uint32_t>(arg, value());
    } else if (arg == "--backend") {
      o.backend = value();
      if (o.backend != "user" && o.backend != "bpf" && o.backend != "auto" && o.backend != "kernel")
        usage_error("--backend needs user, bpf, kernel or auto");
    } else if (arg == "--info") {
      o.info = std::filesystem::path{value()};
    } else if (arg == "--ready-fd") {
      const int fd = number<int>(arg, value());
      if (fd < 0) usage_error("--ready-fd needs a file descriptor number");
      o.ready_fd = fd;
    } else if (arg == "--no-web") {
      o.web = false;
    } else if (arg == "--web-port") {
      o.web_port = number<std::uint16_t>(arg, value());
      if (o.web_port == 0) usage_error("--web-port needs a port in 1..65535");
    } else if (arg == "--web-http-port") {
      o.web_http_port = number<std::uint16_t>(arg, value());
    } else if (arg == "--confirm-timeout") {
      o.confirm_timeout = number<std::uint32_t>(arg, value());
      if (o.confirm_timeout < 5 || o.confirm_timeout > 3600)
        usage_error("--confirm-timeout needs 5..3600 seconds");
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      std::exit(0);
    } else {
      usage_error(fmt::format("unknown argument '{}'", arg));
    }
  }
  return o;
}

// --- Stop signals: a flag and a self-pipe the main loop polls. The handlers stay installed to
// the end, so a second Ctrl-C cannot interrupt the teardown. Children get default dispositions
// back at exec.
std::atomic<int> g_stop_signal{0};
int g_wake_write = -1;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  const char c = 1;
  [[maybe_unused]] const auto n = ::write(g_wake_write, &c, 1);
}

int install_stop_signals() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  g_wake_write = fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  return fds[0];
}

bool stopping() {
  return g_stop_signal.load() != 0;
}

// Waits up to `timeout` for a stop signal; true if one came.
bool wait_for_stop(int wake_read, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stopping()) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{.fd = wake_read, .events = POLLIN, .revents = 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  return true;
}

// --- Status.

// A member of a JSON object by path, as text; "-" when absent.
std::string field(const json::value* v, std::initializer_list<std::string_view> path) {
  for (const auto key : path) {
    if (v == nullptr || !v->is_object()) return "-";
    v = v->as_object().if_contains(key);
  }
  if (v == nullptr || v->is_null()) return "-";
  if (v->is_string()) return std::string{v->as_string()};
  return json::serialize(*v);
}

// A counter as a number; 0 when absent.
std::uint64_t count(const json::value& v, std::initializer_list<std::string_view> path) {
  const auto text = field(&v, path);
  std::uint64_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}

// Packets a daemon's data paths carried: user space's counter plus the BPF fast path's.
std::uint64_t carried(const json::value& status, std::string_view name) {
  return count(status, {"counters", name}) + count(status, {"fast_path", name});
}

// GET target on a control socket; nullopt when the daemon does not answer.
std::optional<json::value> get(const std::filesystem::path& socket, std::string_view target) {
  const platform::ControlClient client{
      socket.string(),
      platform::ControlClientOptions{.timeout = 2s, .max_response_bytes = 1 << 20}};
  auto r = client.request(platform::Method::Get, target);
  if (!r || r->status != 200) return std::nullopt;
  return std::move(r->body);
}

void print_status(DstmLab& lab, std::chrono::seconds uptime) {
  std::string out = fmt::format("--- dstm-lab, up {} s\n", uptime.count());
  if (!lab.server_running()) {
    out += "server   EXITED (see its log)\n";
  } else if (const auto s = get(lab.server_socket(), "/status")) {
    out += fmt::format("server   leases active {}, expired {}; pool used {}/{}; TEPs alive {}/{}\n",
                       field(&*s, {"leases", "active"}), field(&*s, {"leases", "expired"}),
                       field(&*s, {"pool", "used"}), field(&*s, {"pool", "total"}),
                       field(&*s, {"teps", "alive"}), field(&*s, {"teps", "configured"}));
  } else {
    out += "server   (no answer)\n";
  }
  out += fmt::format("{:<8} {:<11} {:<15} {:<16} {:<5} {:>10} {:>10}\n", "client", "state", "ipv4",
                     "tep", "path", "encap", "decap");
  for (int n = 1; n <= 2; ++n) {
    const auto name = fmt::format("client{}", n);
    if (!lab.client_running(n)) {
      out += fmt::format("{:<8} {}\n", name, "EXITED (see its log)");
    } else if (const auto s = get(lab.client_socket(n), "/status")) {
      out += fmt::format("{:<8} {:<11} {:<15} {:<16} {:<5} {:>10} {:>10}\n", name,
                         field(&*s, {"state"}), field(&*s, {"ipv4"}), field(&*s, {"tep_ipv6"}),
                         field(&*s, {"backend"}), carried(*s, "encapsulated"),
                         carried(*s, "decapsulated"));
    } else {
      out += fmt::format("{:<8} (no answer)\n", name);
    }
  }
  out += fmt::format("{:<8} {:<9} {:<5} {:>12} {:>12} {:>8} {:>8} {:>8}\n", "tep", "server", "path",
                     "decap", "encap", "queries", "bindings", "drops");
  for (int n = 1; n <= 2; ++n) {
    const auto name = fmt::format("tep{}", n);
    if (!lab.tep_running(n)) {
      out += fmt::format("{:<8} {}\n", name, "EXITED (see its log)");
    } else if (const auto s = get(lab.tep_socket(n), "/status")) {
      const auto connected = field(&*s, {"server", "connected"});
      std::uint64_t drops = 0;
      for (const auto key :
           {"spoofed", "source_not_leased", "source_outside_pool", "destination_not_leased"})
        drops += count(*s, {"counters", key});
      out += fmt::format("{:<8} {:<9} {:<5} {:>12} {:>12} {:>8} {:>8} {:>8}\n", name,
                         connected == "true" ? "up" : "down", field(&*s, {"backend"}),
                         carried(*s, "decapsulated"), carried(*s, "encapsulated"),
                         field(&*s, {"counters", "queries"}), field(&*s, {"bindings"}), drops);
    } else {
      out += fmt::format("{:<8} (no answer)\n", name);
    }
  }
  if (lab.options().web)
    out += fmt::format("{:<8} {}\n", "web",
                       lab.web_running() ? lab.web_url() : "EXITED (see its log)");
  fmt::print("{}", out);
  std::fflush(stdout);
}

// --- The info file for scripts: flat, one member a line, so that a shell can read it with sed.
void write_info(DstmLab& lab, const std::filesystem::path& file) {
  std::vector<std::pair<std::string, std::string>> members;  // key, JSON text of the value
  const auto add = [&](std::string key, std::string_view text) {
    members.emplace_back(std::move(key), json::serialize(json::string{text}));
  };
  const auto add_number = [&](std::string key, std::int64_t v) {
    members.emplace_back(std::move(key), std::to_string(v));
  };
  add_number("pid", ::getpid());
  add("work_dir", lab.dir().string());
  add("config", lab.config_path().string());
  add("backend", lab.options().backend);
  for (const auto ns : DstmLab::kNamespaces) add(fmt::format("netns_{}", ns), lab.netns(ns));
  add("server_ipv6", DstmLab::kServerIpv6);
  add_number("server_port", DstmLab::kServerPort);
  for (int n = 1; n <= 2; ++n) {
    add(fmt::format("tep{}_ipv6", n), DstmLab::tep_ipv6(n));
    add(fmt::format("tep{}_ipv4", n), DstmLab::tep_ipv4(n));
    add(fmt::format("tep{}_keepalive", n), DstmLab::tep_keepalive(n));
  }
  add("host_ipv4", DstmLab::kHostIpv4);
  add("pool", DstmLab::kPool);
  for (int n = 1; n <= 2; ++n) {
    add(fmt::format("client{}_ipv6", n), DstmLab::client_ipv6(n));
    const auto s = get(lab.client_socket(n), "/status");
    add(fmt::format("client{}_ipv4", n), field(s ? &*s : nullptr, {"ipv4"}));
    add(fmt::format("client{}_tep_ipv6", n), field(s ? &*s : nullptr, {"tep_ipv6"}));
  }
  if (lab.options().reference_path) {
    add("client1_reference_ipv4", DstmLab::kClient1ReferenceIpv4);
    add("host_reference_ipv4", DstmLab::kHostReferenceIpv4);
  }
  add("socket_server", lab.server_socket().string());
  for (int n = 1; n <= 2; ++n) add(fmt::format("socket_tep{}", n), lab.tep_socket(n).string());
  for (int n = 1; n <= 2; ++n)
    add(fmt::format("socket_client{}", n), lab.client_socket(n).string());
  add("dstm_server", lab.options().binaries.server);
  add("tep", lab.options().binaries.tep);
  add("dstm_client", lab.options().binaries.client);
  add("dstm_ctl", DSTM_CTL_BIN);
  add("tep_ctl", TEP_CTL_BIN);
  if (lab.options().web) {
    // For scripts and the browser test: the dashboard and its first admin's password. The info
    // file is as private as the lab's work dir (root's temporary directory).
    add("dstm_web", lab.options().binaries.web);
    add("web_url", lab.web_url());
    add("web_user", "admin");
    add("web_password", lab.web_password());
    add("web_state_dir", lab.web_state_dir().string());
    add("web_log", (lab.dir() / "web.log").string());
  }

  std::string text = "{\n";
  for (std::size_t i = 0; i < members.size(); ++i)
    text += fmt::format("  {}: {}{}\n", json::serialize(json::string{members[i].first}),
                        members[i].second, i + 1 < members.size() ? "," : "");
  text += "}\n";
  // Written aside and renamed, so a script never reads half a file.
  const auto tmp = std::filesystem::path{file.string() + ".tmp"};
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, file);
}

void signal_ready(std::optional<int>& fd) {
  if (!fd) return;
  constexpr std::string_view kReady = "READY\n";
  [[maybe_unused]] const auto n = ::write(*fd, kReady.data(), kReady.size());
  ::close(*fd);
  fd.reset();
}

// The traffic generator: processes in the lab's namespaces, killed by PID.
struct Traffic {
  std::vector<std::pair<std::string, test::Process>> pings;
  std::optional<test::Process> iperf3;

  void start(DstmLab& lab) {
    iperf3.emplace(lab.lab().spawn(
        "host", {"iperf3", "-s", "--logfile", (lab.dir() / "iperf3.log").string()}));
    for (const auto ns : {"cl1", "cl2"})
      pings.emplace_back(ns, lab.lab().spawn(ns, {"ping", "-n", "-q", "-i", "1",
                                                  std::string{DstmLab::kHostIpv4}}));
  }
  // SIGINT makes ping print its summary, which we pass on.
  void stop() {
    for (auto& [ns, p] : pings) {
      ::kill(p.pid(), SIGINT);
      const auto r = p.wait(3s);
      std::string summary;
      for (std::size_t pos = 0; pos < r.output.size();) {
        const auto eol = r.output.find('\n', pos);
        const auto line = r.output.substr(pos, eol - pos);
        if (line.find("transmitted") != std::string::npos || line.find("rtt") == 0)
          summary += "  " + line + "\n";
        if (eol == std::string::npos) break;
        pos = eol + 1;
      }
      fmt::print("ping from {} to {}:\n{}", ns, DstmLab::kHostIpv4, summary);
    }
    pings.clear();
    iperf3.reset();  // SIGKILL by PID and reap
  }
};

int run(const Options& o, int wake_read) {
  test::DstmLabOptions lo;
  lo.binaries = {
      .server = DSTM_SERVER_BIN, .tep = TEP_BIN, .client = DSTM_CLIENT_BIN, .web = DSTM_WEB_BIN};
  lo.lease_lifetime = o.lifetime;
  lo.backend = o.backend;
  lo.reference_path = o.reference;
  lo.web = o.web && !o.check;
  lo.web_https_port = o.web_port;
  lo.web_http_port = o.web_http_port;
  lo.confirm_timeout = o.confirm_timeout;
  DstmLab lab{lo};
  std::optional<int> ready_fd = o.ready_fd;

  if (o.check) {
    lab.check_topology();
    fmt::print("dstm-lab: the topology carries IPv6 and IPv4{}\n",
               o.reference ? " (reference path too)" : "");
    return 0;
  }

  Traffic traffic;
  try {
    const auto step = [&](auto&& fn) {
      if (!stopping()) fn();
    };
    step([&] { lab.start_server(); });
    step([&] { lab.start_tep(1); });
    step([&] { lab.start_tep(2); });
    step([&] { lab.await_tep_alive(1); });
    step([&] { lab.await_tep_alive(2); });
    step([&] { lab.start_client(1); });
    step([&] { lab.start_client(2); });
    if (lo.web) step([&] { lab.start_web(); });
    if (!o.hold) step([&] { traffic.start(lab); });
  } catch (const std::exception& e) {
    fmt::print(stderr, "dstm-lab: {}\n", e.what());
    return 1;
  }

  const auto started = std::chrono::steady_clock::now();
  if (!stopping()) {
    if (o.info) write_info(lab, *o.info);
    fmt::print("dstm-lab: work dir {} (config, logs); namespaces:\n", lab.dir().string());
    for (const auto ns : DstmLab::kNamespaces) fmt::print("  {:<5} {}\n", ns, lab.netns(ns));
    fmt::print("  e.g. ip netns exec {} ping {}\n", lab.netns("cl1"), DstmLab::kHostIpv4);
    if (lo.web) {
      // The password is printed once here, as dstm-web itself prints it on its first start.
      const auto password = lab.web_password();
      fmt::print("dashboard: {}  user admin  password {}\n", lab.web_url(),
                 password.empty()
                     ? "(see " + (lab.web_state_dir() / "initial-admin-password").string() + ")"
                     : password);
    }
    if (o.info) fmt::print("lab ready\n");
    std::fflush(stdout);
    signal_ready(ready_fd);
  }
  while (!stopping()) {
    print_status(lab, std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - started));
    wait_for_stop(wake_read, 5s);
  }
  fmt::print("dstm-lab: signal {}, stopping\n", g_stop_signal.load());
  traffic.stop();
  return 0;  // ~DstmLab stops the daemons in order and removes the namespaces
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (::geteuid() != 0) {
    fmt::print(stderr, "dstm-lab: needs root (network namespaces)\n");
    return 77;
  }
  // The ready fd must not leak into the daemons and tools the lab starts.
  if (o.ready_fd && ::fcntl(*o.ready_fd, F_SETFD, FD_CLOEXEC) != 0)
    usage_error(fmt::format("--ready-fd {}: not an open file descriptor", *o.ready_fd));
  try {
    const int wake_read = install_stop_signals();
    const int code = run(o, wake_read);
    if (code == 0) fmt::print("dstm-lab: stopped, namespaces removed\n");
    return code;
  } catch (const std::exception& e) {
    fmt::print(stderr, "dstm-lab: {}\n", e.what());
    return 1;
  }
}
