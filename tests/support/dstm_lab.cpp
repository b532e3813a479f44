// The DSTM namespace lab: topology description, the appliance config document, daemons started
// inside the namespaces and stopped in order, their control sockets, and the dashboard.
#include "support/dstm_lab.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "tsp/sasl.hpp"

namespace test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto kServerStart = 20s;
constexpr auto kTepStart = 20s;
constexpr auto kClientStart = 30s;
constexpr auto kServerStop = 10s;
constexpr auto kTepStop = 10s;
constexpr auto kClientStop = 15s;  // a client releases its lease on SIGTERM
// dstm-web hashes the first admin's password (scrypt) and may generate its certificate first.
constexpr auto kWebStart = 30s;
constexpr auto kWebStop = 10s;
constexpr std::size_t kMaxLogInMessage = 64 * 1024;

// DaemonProcess execs argv[0] as a path: look programs up the way a root shell would.
std::string find_program(std::string_view name) {
  std::string path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (const char* p = std::getenv("PATH")) path_var = std::string{p} + ":" + path_var;
  std::string_view rest = path_var;
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const auto dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    if (dir.empty()) continue;
    const auto candidate = fmt::format("{}/{}", dir, name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error(fmt::format("{} not found in PATH", name));
}

std::string verifier(std::string_view user, std::string_view password) {
  return tsp::to_hex(tsp::digest_verifier(user, DstmLab::kRealm, password));
}

std::string tail(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  return "[...]\n" + text.substr(text.size() - max);
}

int checked_index(int n) {
  if (n != 1 && n != 2) throw std::out_of_range(fmt::format("DstmLab: no daemon number {}", n));
  return n - 1;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<TempDir> own_dir_for(const std::filesystem::path& work_dir) {
  if (!work_dir.empty()) return std::nullopt;
  return std::optional<TempDir>{std::in_place};
}

}  // namespace

std::string_view DstmLab::client_ipv6(int n) {
  return checked_index(n) == 0 ? kClient1Ipv6 : kClient2Ipv6;
}
std::string_view DstmLab::tep_ipv6(int n) {
  return checked_index(n) == 0 ? kTep1Ipv6 : kTep2Ipv6;
}
std::string_view DstmLab::tep_ipv4(int n) {
  return checked_index(n) == 0 ? kTep1Ipv4 : kTep2Ipv4;
}
std::string_view DstmLab::tep_keepalive(int n) {
  return checked_index(n) == 0 ? kTep1Keepalive : kTep2Keepalive;
}
std::string_view DstmLab::tep_name(int n) {
  return checked_index(n) == 0 ? "tep-1" : "tep-2";
}
std::string_view DstmLab::tep_interface(int n) {
  return checked_index(n) == 0 ? "tep1" : "tep2";
}

std::string DstmLab::make_description(bool reference_path) {
  // rp_filter goes off before the veths exist, so that "default" covers them too. The pool
  // route to tep2 only is what sends a tep1 client's replies through the other TEP.
  std::string d = R"(
netns cl1
netns cl2
netns r6
netns srv
netns tep1
netns tep2
netns r4
netns host
sysctl r4 net.ipv4.conf.all.rp_filter=0
sysctl r4 net.ipv4.conf.default.rp_filter=0
sysctl r4 net.ipv4.ip_forward=1
sysctl r6 net.ipv4.conf.all.rp_filter=0
sysctl r6 net.ipv4.conf.default.rp_filter=0
sysctl r6 net.ipv6.conf.all.forwarding=1
sysctl tep1 net.ipv4.conf.all.rp_filter=0
sysctl tep1 net.ipv4.conf.default.rp_filter=0
sysctl tep1 net.ipv4.ip_forward=1
sysctl tep2 net.ipv4.conf.all.rp_filter=0
sysctl tep2 net.ipv4.conf.default.rp_filter=0
sysctl tep2 net.ipv4.ip_forward=1
veth cl1:eth0 r6:c1
veth cl2:eth0 r6:c2
veth srv:eth0 r6:s
veth tep1:eth0 r6:t1
veth tep2:eth0 r6:t2
veth tep1:eth1 r4:t1
veth tep2:eth1 r4:t2
veth host:eth0 r4:h
addr cl1 eth0 2001:db8:c1::2/64
addr r6 c1 2001:db8:c1::1/64
addr cl2 eth0 2001:db8:c2::2/64
addr r6 c2 2001:db8:c2::1/64
addr srv eth0 2001:db8:5::2/64
addr r6 s 2001:db8:5::1/64
addr tep1 eth0 2001:db8:e1::2/64
addr r6 t1 2001:db8:e1::1/64
addr tep2 eth0 2001:db8:e2::2/64
addr r6 t2 2001:db8:e2::1/64
addr tep1 eth1 192.0.2.1/30
addr r4 t1 192.0.2.2/30
addr tep2 eth1 192.0.2.5/30
addr r4 t2 192.0.2.6/30
addr host eth0 203.0.113.10/24
addr r4 h 203.0.113.1/24
route cl1 2001:db8::/32 via 2001:db8:c1::1
route cl2 2001:db8::/32 via 2001:db8:c2::1
route srv 2001:db8::/32 via 2001:db8:5::1
route tep1 2001:db8::/32 via 2001:db8:e1::1
route tep2 2001:db8::/32 via 2001:db8:e2::1
route tep1 203.0.113.0/24 via 192.0.2.2
route tep1 192.0.2.0/24 via 192.0.2.2
route tep2 203.0.113.0/24 via 192.0.2.6
route tep2 192.0.2.0/24 via 192.0.2.6
route r4 198.51.100.0/24 via 192.0.2.5
route host 192.0.2.0/24 via 203.0.113.1
route host 198.51.100.0/24 via 203.0.113.1
)";
  if (reference_path) {
    // Plain IPv4 over the tunnel's veths: out cl1 -> r6 -> tep1 -> r4 -> host, back host -> r4 ->
    // tep2 -> r6 -> cl1, as the tunnel's replies go. Only 203.0.113.20 is routed plainly on cl1,
    // so 203.0.113.10 stays behind the client's tunnel route.
    d += R"(
sysctl r6 net.ipv4.ip_forward=1
addr cl1 eth0 192.0.2.34/30
addr r6 c1 192.0.2.33/30
addr r6 t1 192.0.2.37/30
addr tep1 eth0 192.0.2.38/30
addr r6 t2 192.0.2.41/30
addr tep2 eth0 192.0.2.42/30
addr host eth0 203.0.113.20/24
route cl1 203.0.113.20/32 via 192.0.2.33
route r6 203.0.113.20/32 via 192.0.2.38
route r4 192.0.2.32/30 via 192.0.2.5
route tep2 192.0.2.32/30 via 192.0.2.41
)";
  }
  return d;
}

DstmLab::DstmLab(DstmLabOptions options)
    : options_{std::move(options)},
      own_dir_{own_dir_for(options_.work_dir)},
      dir_{own_dir_ ? own_dir_->path() : options_.work_dir},
      description_{make_description(options_.reference_path)},
      lab_{description_} {
  std::filesystem::create_directories(dir_);
  const auto write = [&](std::string_view name, std::string_view content) {
    std::ofstream out{dir_ / name, std::ios::binary | std::ios::trunc};
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", (dir_ / name).string()));
  };
  if (options_.reference_path) {
    // The host must answer the reference client from 203.0.113.20, also where no connection
    // fixes the source (iperf3's UDP server, ping): a route with a preferred source, which the
    // Lab description cannot express.
    const auto r =
        lab_.run("host", {"ip", "-4", "route", "add", "192.0.2.32/30", "via",
                          std::string{kR4HostSide}, "src", std::string{kHostReferenceIpv4}});
    if (!r.ok()) throw std::runtime_error("DstmLab: ip route add ... src: " + r.output);
  }
  write("appliance.json", make_config());
  write("alice.password", fmt::format("{}\n", kAlicePassword));
}

DstmLab::~DstmLab() {
  // The dashboard first (it talks to everyone else), then the clients (they release their leases
  // while the server is there), then the TEPs (they remove their routes and devices), then the
  // server. The Lab then deletes the namespaces.
  const auto stop = [](Daemon& d, std::chrono::milliseconds timeout) noexcept {
    try {
      if (d.process) d.process->terminate(timeout);
    } catch (...) {
    }
  };
  stop(web_, kWebStop);
  for (auto& c : clients_) stop(c, kClientStop);
  for (auto& t : teps_) stop(t, kTepStop);
  stop(server_, kServerStop);
}

std::string DstmLab::netns(std::string_view logical) const {
  return lab_.netns_name(logical);
}

std::filesystem::path DstmLab::tep_socket(int n) const {
  return dir_ / fmt::format("tep{}.sock", checked_index(n) + 1);
}
std::filesystem::path DstmLab::client_socket(int n) const {
  return dir_ / fmt::format("client{}.sock", checked_index(n) + 1);
}

std::string DstmLab::make_config() const {
  json::array users;
  users.push_back({{"name", "tep-1"}, {"digest_md5", verifier("tep-1", kTep1Password)}});
  users.push_back({{"name", "tep-2"}, {"digest_md5", verifier("tep-2", kTep2Password)}});
  users.push_back({{"name", kAliceUser}, {"digest_md5", verifier(kAliceUser, kAlicePassword)}});

  json::array server_teps;
  json::array teps;
  for (int n = 1; n <= 2; ++n) {
    server_teps.push_back({{"name", tep_name(n)},
                           {"ipv6", tep_ipv6(n)},
                           {"ipv4", tep_ipv4(n)},
                           {"user", tep_name(n)},
                           {"heartbeat", true},
                           {"keepalive", tep_keepalive(n)}});
    teps.push_back({{"name", tep_name(n)},
                    {"ipv6", tep_ipv6(n)},
                    {"ipv4", tep_ipv4(n)},
                    {"keepalive", tep_keepalive(n)},
                    {"pool", json::array{kPool}},
                    {"server",
                     {{"address", kServerIpv6},
                      {"port", kServerPort},
                      {"transport", "tcp"},
                      {"user", tep_name(n)},
                      {"password", n == 1 ? kTep1Password : kTep2Password}}},
                    {"interface", tep_interface(n)},
                    {"tunnel_mtu", 1500},
                    {"backend", options_.backend},
                    {"control_socket", tep_socket(n).string()}});
  }

  json::object server{
      {"listen", {{"ipv6", json::array{"::"}}, {"port", kServerPort}}},
      {"pool", {{"prefixes", json::array{kPool}}}},
      {"lease", {{"lifetime", options_.lease_lifetime}, {"grace", options_.lease_grace}}},
      {"auth", {{"realm", kRealm}, {"anonymous", true}, {"users", std::move(users)}}},
      {"teps", std::move(server_teps)},
      {"tep_timeout", options_.tep_timeout},
      {"heartbeat_interval", options_.heartbeat_interval},
      {"client", {{"dns_server", kDnsServer}, {"keepalive_interval", options_.keepalive_interval}}},
      {"store", {{"path", (dir_ / "leases.db").string()}}},
      {"control_socket", server_socket().string()}};
  json::object doc{{"dstm_server", std::move(server)}, {"tep", std::move(teps)}};
  if (options_.web) {
    // Loopback only: the lab's dashboard has a first-start password and is reachable by anyone
    // on the machine who can reach 127.0.0.1.
    doc["web"] = {{"listen", json::array{"127.0.0.1"}},
                  {"https_port", options_.web_https_port},
                  {"http_port", options_.web_http_port},
                  {"state_dir", web_state_dir().string()},
                  {"confirm_timeout", options_.confirm_timeout}};
  }
  return json::serialize(doc) + "\n";
}

void DstmLab::start(Daemon& d, std::string_view ns, std::vector<std::string> args,
                    std::chrono::milliseconds timeout) {
  if (running(d)) throw std::logic_error(fmt::format("DstmLab: {} runs already", d.name));
  d.process.reset();  // reaps one that ended by itself
  // setsid: a Ctrl-C on the terminal must reach only the owner of the lab, which stops the
  // daemons in order. Neither setsid (not a group leader here) nor `ip netns exec` forks, so the
  // pid, PR_SET_PDEATHSIG and the inherited --ready-fd 3 stay the daemon's.
  std::vector<std::string> argv{find_program("setsid")};
  if (!ns.empty()) argv.insert(argv.end(), {find_program("ip"), "netns", "exec", netns(ns)});
  argv.insert(argv.end(), std::make_move_iterator(args.begin()),
              std::make_move_iterator(args.end()));
  const auto log = dir_ / (d.name + ".log");
  d.process = std::make_unique<DaemonProcess>(std::move(argv), log);
  if (!d.process->wait_ready(timeout)) {
    const auto status = d.process->kill();
    std::string how = "did not write READY";
    if (status.code) how = fmt::format("exited with status {}", *status.code);
    if (status.signal) how = fmt::format("was killed by signal {}", *status.signal);
    throw std::runtime_error(fmt::format("DstmLab: {} {} (within {} s); its log {}:\n{}", d.name,
                                         how, timeout.count() / 1000, log.string(),
                                         tail(read_file(log), kMaxLogInMessage)));
  }
}

bool DstmLab::running(const Daemon& d) noexcept {
  if (!d.process || !d.process->running()) return false;
  siginfo_t info{};
  // WNOWAIT: look without reaping; the DaemonProcess reaps it later.
  if (::waitid(P_PID, static_cast<id_t>(d.process->pid()), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  return info.si_pid == 0;
}

DstmLab::Daemon& DstmLab::tep_daemon(int n) {
  return teps_.at(static_cast<std::size_t>(checked_index(n)));
}
DstmLab::Daemon& DstmLab::client_daemon(int n) {
  return clients_.at(static_cast<std::size_t>(checked_index(n)));
}
const DstmLab::Daemon& DstmLab::tep_daemon(int n) const {
  return teps_.at(static_cast<std::size_t>(checked_index(n)));
}
const DstmLab::Daemon& DstmLab::client_daemon(int n) const {
  return clients_.at(static_cast<std::size_t>(checked_index(n)));
}

void DstmLab::start_server() {
  start(server_, "srv", {options_.binaries.server, "--config", config_path().string()},
        kServerStart);
}
void DstmLab::kill_server() {
  if (server_.process) server_.process->kill();
}
ExitStatus DstmLab::terminate_server() {
  return server_.process ? server_.process->terminate(kServerStop) : ExitStatus{};
}
void DstmLab::restart_server() {
  terminate_server();
  start_server();
}

void DstmLab::start_tep(int n) {
  start(tep_daemon(n), n == 1 ? "tep1" : "tep2",
        {options_.binaries.tep, "--config", config_path().string(), "--name",
         std::string{tep_name(n)}},
        kTepStart);
}
void DstmLab::kill_tep(int n) {
  if (auto& d = tep_daemon(n); d.process) d.process->kill();
}
ExitStatus DstmLab::terminate_tep(int n) {
  auto& d = tep_daemon(n);
  return d.process ? d.process->terminate(kTepStop) : ExitStatus{};
}

void DstmLab::start_client(int n, std::vector<std::string> extra_args) {
  std::vector<std::string> args{options_.binaries.client,
                                "--server",
                                std::string{kServerIpv6},
                                "--transport",
                                n == 1 ? "tcp" : "udp",
                                "--source",
                                std::string{client_ipv6(n)},
                                "--interface",
                                std::string{kClientInterface},
                                "--control-socket",
                                client_socket(n).string(),
                                "--backend",
                                options_.backend};
  if (n == 2) {
    args.insert(args.end(), {"--user", std::string{kAliceUser}, "--password-file",
                             (dir_ / "alice.password").string()});
  }
  args.insert(args.end(), std::make_move_iterator(extra_args.begin()),
              std::make_move_iterator(extra_args.end()));
  start(client_daemon(n), n == 1 ? "cl1" : "cl2", std::move(args), kClientStart);
}
void DstmLab::kill_client(int n) {
  if (auto& d = client_daemon(n); d.process) d.process->kill();
}
ExitStatus DstmLab::terminate_client(int n) {
  auto& d = client_daemon(n);
  return d.process ? d.process->terminate(kClientStop) : ExitStatus{};
}

void DstmLab::start_web() {
  if (!options_.web)
    throw std::logic_error("DstmLab: start_web without options.web (no web section)");
  start(web_, "", {options_.binaries.web, "--config", config_path().string()}, kWebStart);
}
ExitStatus DstmLab::terminate_web() {
  return web_.process ? web_.process->terminate(kWebStop) : ExitStatus{};
}
std::string DstmLab::web_url() const {
  return fmt::format("https://127.0.0.1:{}/", options_.web_https_port);
}
std::string DstmLab::web_password() const {
  auto text = read_file(web_state_dir() / "initial-admin-password");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  return text;
}

void DstmLab::start_all() {
  start_server();
  start_tep(1);
  start_tep(2);
  await_tep_alive(1);
  await_tep_alive(2);
  start_client(1);
  start_client(2);
  if (options_.web) start_web();
}

DaemonProcess& DstmLab::server() {
  if (!server_.process) throw std::logic_error("DstmLab: the server was never started");
  return *server_.process;
}
DaemonProcess& DstmLab::tep(int n) {
  auto& d = tep_daemon(n);
  if (!d.process) throw std::logic_error(fmt::format("DstmLab: {} was never started", d.name));
  return *d.process;
}
DaemonProcess& DstmLab::client(int n) {
  auto& d = client_daemon(n);
  if (!d.process) throw std::logic_error(fmt::format("DstmLab: {} was never started", d.name));
  return *d.process;
}
DaemonProcess& DstmLab::web() {
  if (!web_.process) throw std::logic_error("DstmLab: the dashboard was never started");
  return *web_.process;
}
bool DstmLab::server_running() const noexcept {
  return running(server_);
}
bool DstmLab::tep_running(int n) const noexcept {
  return (n == 1 || n == 2) && running(teps_[static_cast<std::size_t>(n - 1)]);
}
bool DstmLab::client_running(int n) const noexcept {
  return (n == 1 || n == 2) && running(clients_[static_cast<std::size_t>(n - 1)]);
}
bool DstmLab::web_running() const noexcept {
  return running(web_);
}

void DstmLab::await_tep_alive(int n, std::chrono::milliseconds timeout) {
  const auto name = tep_name(n);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Both sides must agree: the server counts the TEP alive once it has authenticated, while the
  // TEP can query only after the final "200 Success", which over TCP with DIGEST-MD5 comes 200 ms
  // later (docs/tsp.md). A client started in between loses its first packets' queries.
  const auto server_sees = [&](std::string& last) {
    const platform::ControlClient control{server_socket().string()};
    const auto r = control.request(platform::Method::Get, "/teps");
    if (!r || r->status != 200) {
      last = r ? fmt::format("server: HTTP {}", r->status) : "server: " + r.error().message();
      return false;
    }
    const auto* teps = r->body.is_object() ? r->body.as_object().if_contains("teps") : nullptr;
    if (teps == nullptr || !teps->is_array()) return false;
    for (const auto& t : teps->as_array()) {
      const auto* tep_name_value = t.is_object() ? t.as_object().if_contains("name") : nullptr;
      if (tep_name_value == nullptr || !tep_name_value->is_string() ||
          tep_name_value->as_string() != name)
        continue;
      last = "server: " + json::serialize(t);
      const auto* alive = t.as_object().if_contains("alive");
      return alive != nullptr && alive->is_bool() && alive->as_bool();
    }
    return false;
  };
  const auto tep_connected = [&](std::string& last) {
    const platform::ControlClient control{tep_socket(n).string()};
    const auto r = control.request(platform::Method::Get, "/status");
    if (!r || r->status != 200) {
      last = r ? fmt::format("{}: HTTP {}", name, r->status)
               : fmt::format("{}: {}", name, r.error().message());
      return false;
    }
    const auto* server = r->body.is_object() ? r->body.as_object().if_contains("server") : nullptr;
    last = fmt::format("{}: server {}", name, server ? json::serialize(*server) : "absent");
    const auto* connected =
        server && server->is_object() ? server->as_object().if_contains("connected") : nullptr;
    return connected != nullptr && connected->is_bool() && connected->as_bool();
  };
  std::string last;
  // No readiness signal exists for "connected and registered": poll both states, bounded.
  while (std::chrono::steady_clock::now() < deadline) {
    if (tep_connected(last) && server_sees(last)) return;
    if (!server_running() || !tep_running(n)) break;
    std::this_thread::sleep_for(50ms);
  }
  throw std::runtime_error(fmt::format(
      "DstmLab: {} is not connected and alive at the server (last: {})\n{}", name, last, logs()));
}

namespace {

platform::Response control_request(const std::filesystem::path& socket, platform::Method method,
                                   std::string_view target, const json::value& body) {
  const platform::ControlClient control{socket.string()};
  auto r = control.request(method, target, body);
  if (!r)
    throw std::runtime_error(fmt::format("control socket {}: {} {}: {}", socket.string(),
                                         platform::to_string(method), target, r.error().message()));
  return std::move(*r);
}

}  // namespace

platform::Response DstmLab::server_control(platform::Method method, std::string target,
                                           json::value body) const {
  return control_request(server_socket(), method, target, body);
}
platform::Response DstmLab::tep_control(int n, platform::Method method, std::string target,
                                        json::value body) const {
  return control_request(tep_socket(n), method, target, body);
}
platform::Response DstmLab::client_control(int n, platform::Method method, std::string target,
                                           json::value body) const {
  return control_request(client_socket(n), method, target, body);
}

void DstmLab::check_topology() const {
  struct Probe {
    std::string_view from;
    std::string to;
    std::string source = {};  // ping -I; empty: the kernel's choice
  };
  std::vector<Probe> probes;
  const std::array<std::pair<std::string_view, std::string_view>, 5> leaves{{{"cl1", kClient1Ipv6},
                                                                             {"cl2", kClient2Ipv6},
                                                                             {"srv", kServerIpv6},
                                                                             {"tep1", kTep1Ipv6},
                                                                             {"tep2", kTep2Ipv6}}};
  for (const auto& [from, mine] : leaves) {
    for (const auto& [to, address] : leaves)
      if (to != from) probes.push_back({from, std::string{address}});
  }
  probes.push_back({"tep1", std::string{kHostIpv4}});
  probes.push_back({"tep2", std::string{kHostIpv4}});
  probes.push_back({"host", std::string{kTep1Ipv4}});
  probes.push_back({"host", std::string{kTep2Ipv4}});
  probes.push_back({"tep1", std::string{kTep2Ipv4}});
  if (options_.reference_path) {
    probes.push_back({"cl1", std::string{kHostReferenceIpv4}});
    probes.push_back({"host", std::string{kClient1ReferenceIpv4}});
  }
  // All at once, then collected: one round trip of time instead of one per probe.
  std::vector<Process> running;
  running.reserve(probes.size());
  for (const auto& p : probes) {
    std::vector<std::string> argv{"ping", "-n", "-q", "-c", "1", "-W", "3"};
    if (!p.source.empty()) argv.insert(argv.end(), {"-I", p.source});
    argv.push_back(p.to);
    running.push_back(lab_.spawn(p.from, argv));
  }
  std::string failures;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const auto r = running[i].wait(5s);
    if (!r.ok())
      failures += fmt::format("  {} -> {}: {}\n", probes[i].from, probes[i].to,
                              r.timed_out ? "timed out" : "no reply");
  }
  if (!failures.empty())
    throw std::runtime_error("DstmLab: the topology does not carry:\n" + failures);
}

std::string DstmLab::logs() const {
  std::string out;
  for (const auto* d : {&server_, &teps_[0], &teps_[1], &clients_[0], &clients_[1], &web_}) {
    const auto path = dir_ / (d->name + ".log");
    if (!std::filesystem::exists(path)) continue;
    out += fmt::format("----- {} ({}) -----\n{}\n", d->name, path.string(),
                       tail(read_file(path), kMaxLogInMessage));
  }
  return out;
}

}  // namespace test
