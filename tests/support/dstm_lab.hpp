// The DSTM namespace lab: the topology of issue 5 (two IPv6-only clients, an IPv6 core router,
// the DSTM server, two TEPs, an IPv4 router and an IPv4 host) built with test::Lab, one appliance
// config document, the real daemons started and stopped by PID, and optionally the dashboard
// (dstm-web) managing that document. Include as "support/dstm_lab.hpp". Root only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "platform/control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"

namespace test {

// Paths of the daemon binaries (from the build: $<TARGET_FILE:...>).
struct DstmLabBinaries {
  std::string server;    // dstm-server
  std::string tep;       // tep
  std::string client;    // dstm-client
  std::string web = {};  // dstm-web; needed only with DstmLabOptions::web
};

struct DstmLabOptions {
  DstmLabBinaries binaries;
  std::uint32_t lease_lifetime = 60;     // s, dstm_server.lease.lifetime (2..604800)
  std::uint32_t lease_grace = 0;         // s, dstm_server.lease.grace
  std::uint32_t tep_timeout = 5;         // s, dstm_server.tep_timeout (5..3600)
  std::uint32_t heartbeat_interval = 1;  // s, dstm_server.heartbeat_interval (< tep_timeout)
  std::uint32_t keepalive_interval = 5;  // s, dstm_server.client.keepalive_interval (5..3600)
  // Also build a plain IPv4 path for benchmarks over the same namespaces and veths (see
  // kClient1ReferenceIpv4 below).
  bool reference_path = false;
  // The data path of both TEPs and both clients: "auto", "bpf" or "user" (docs/tep.md).
  std::string backend = "auto";
  // Config, store, control sockets and logs go here; empty: a fresh TempDir, removed with the lab.
  std::filesystem::path work_dir;
  // The dashboard: a `web` section in the document (listen 127.0.0.1, these ports, state_dir
  // <dir>/web, this confirm window) and start_web()/start_all() run dstm-web in the root
  // namespace, where it reaches every daemon through its control socket in <dir>.
  bool web = false;
  std::uint16_t web_https_port = 8443;
  std::uint16_t web_http_port = 8080;  // 0: no HTTP listener (it would only redirect)
  std::uint32_t confirm_timeout = 90;  // s, web.confirm_timeout (5..3600)
};

// The topology (addresses of the contract; routes cover the documentation ranges, which is all
// the lab uses: test::Lab refuses anything else, "default" included):
//
//   cl1  eth0 2001:db8:c1::2 -- c1 +                 +- t1 192.0.2.2/30 -- eth1 192.0.2.1 tep1
//   cl2  eth0 2001:db8:c2::2 -- c2 |                 |
//   srv  eth0 2001:db8:5::2  -- s  +- r6        r4 --+- t2 192.0.2.6/30 -- eth1 192.0.2.5 tep2
//   tep1 eth0 2001:db8:e1::2 -- t1 |                 |
//   tep2 eth0 2001:db8:e2::2 -- t2 +                 +- h 203.0.113.1/24 -- eth0 203.0.113.10 host
//
// r6 forwards IPv6 (every IPv6 leaf routes 2001:db8::/32 via r6); r4 forwards IPv4 and routes
// the pool 198.51.100.0/24 to tep2 only, so replies to a client on tep1 come back through tep2.
// tep1/tep2 route 203.0.113.0/24 and 192.0.2.0/24 via r4 and forward IPv4; the host routes
// 192.0.2.0/24 and the pool via r4. rp_filter is off in r4, r6, tep1 and tep2. The TEP daemons
// route the pool into their TUN devices themselves.
//
// With reference_path, a plain IPv4 path over the same veths as the tunnel's (out through tep1,
// back through tep2): cl1 eth0 192.0.2.34/30 - r6 c1 192.0.2.33/30, r6 t1 192.0.2.37/30 - tep1
// eth0 192.0.2.38/30, r6 t2 192.0.2.41/30 - tep2 eth0 192.0.2.42/30, and a second host address
// 203.0.113.20 (only cl1's route to 203.0.113.20/32 leads there; 203.0.113.10 stays behind the
// client's tunnel route). The host reaches 192.0.2.32/30 with source 203.0.113.20, so that
// unconnected replies (UDP, ping) come from the address the client talks to.
//
// Daemons: one appliance document <dir>/appliance.json (sections dstm_server and tep, and web
// with options.web), logs <dir>/{server,tep1,tep2,client1,client2,web}.log, control sockets
// <dir>/{server,tep1,tep2,client1,client2}.sock; the dashboard's state (users, TLS, config
// history) in <dir>/web. Each runs as `ip netns exec <netns> BIN ... --ready-fd 3` (dstm-web: BIN
// alone, in the root namespace) in its own session (setsid), so a Ctrl-C on the terminal reaches
// only the process that owns the lab, which then stops them in order. start_* wait for READY
// (bounded) and throw std::runtime_error with the daemon's log when it does not come. Not
// thread-safe; use it from the thread that created it (the daemons die with that thread,
// PR_SET_PDEATHSIG).
class DstmLab {
 public:
  static constexpr std::string_view kClient1Ipv6 = "2001:db8:c1::2";
  static constexpr std::string_view kClient2Ipv6 = "2001:db8:c2::2";
  static constexpr std::string_view kServerIpv6 = "2001:db8:5::2";
  static constexpr std::uint16_t kServerPort = 3653;
  static constexpr std::string_view kDnsServer = "2001:db8:5::53";
  static constexpr std::string_view kTep1Ipv6 = "2001:db8:e1::2";
  static constexpr std::string_view kTep2Ipv6 = "2001:db8:e2::2";
  static constexpr std::string_view kTep1Ipv4 = "192.0.2.1";
  static constexpr std::string_view kTep2Ipv4 = "192.0.2.5";
  static constexpr std::string_view kTep1Keepalive = "192.0.2.201";
  static constexpr std::string_view kTep2Keepalive = "192.0.2.202";
  static constexpr std::string_view kR4HostSide = "203.0.113.1";
  static constexpr std::string_view kHostIpv4 = "203.0.113.10";
  static constexpr std::string_view kPool = "198.51.100.0/24";
  // reference_path only.
  static constexpr std::string_view kClient1ReferenceIpv4 = "192.0.2.34";
  static constexpr std::string_view kHostReferenceIpv4 = "203.0.113.20";
  // Credentials (realm "dstm").
  static constexpr std::string_view kRealm = "dstm";
  static constexpr std::string_view kTep1Password = "secret-1";
  static constexpr std::string_view kTep2Password = "secret-2";
  static constexpr std::string_view kAliceUser = "alice";
  static constexpr std::string_view kAlicePassword = "wonderland";
  // Interface names.
  static constexpr std::string_view kClientInterface = "dstm0";
  // Logical namespace names, in creation order.
  static constexpr std::array<std::string_view, 8> kNamespaces{"cl1",  "cl2",  "r6", "srv",
                                                               "tep1", "tep2", "r4", "host"};

  // n is 1 or 2 (std::out_of_range otherwise).
  static std::string_view client_ipv6(int n);
  static std::string_view tep_ipv6(int n);
  static std::string_view tep_ipv4(int n);
  static std::string_view tep_keepalive(int n);
  static std::string_view tep_name(int n);  // "tep-1", "tep-2": the name in both sections
  // The TEP's TUN device, "tep1" or "tep2" (the tep section wants them unique in one document).
  static std::string_view tep_interface(int n);

  // Builds the namespaces and writes the config; starts no daemon. Throws std::runtime_error.
  // The timers are checked by the server (docs/config.md), which then fails to start.
  explicit DstmLab(DstmLabOptions options);
  // Terminates clients, TEPs, then the server (SIGTERM, SIGKILL after a bound, by PID); then the
  // namespaces go.
  ~DstmLab();
  DstmLab(const DstmLab&) = delete;
  DstmLab& operator=(const DstmLab&) = delete;

  Lab& lab() noexcept { return lab_; }
  const DstmLabOptions& options() const noexcept { return options_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  // The real /run/netns name of a logical namespace ("cl1", ..., "host").
  std::string netns(std::string_view logical) const;
  // The Lab description this lab was built from (for messages and docs).
  const std::string& description() const noexcept { return description_; }

  std::filesystem::path config_path() const { return dir_ / "appliance.json"; }
  std::filesystem::path server_socket() const { return dir_ / "server.sock"; }
  std::filesystem::path tep_socket(int n) const;
  std::filesystem::path client_socket(int n) const;

  // --- Daemons. Starting one that runs already is std::logic_error.
  void start_server();
  void kill_server();               // SIGKILL
  ExitStatus terminate_server();    // SIGTERM, SIGKILL after 10 s
  void restart_server();            // terminate, then start (the store survives)
  void start_tep(int n);            // READY: TUN, routes, sockets up (not yet at the server)
  void kill_tep(int n);             // SIGKILL
  ExitStatus terminate_tep(int n);  // SIGTERM, SIGKILL after 10 s
  // Client 1: ANONYMOUS over TCP; client 2: alice (DIGEST-MD5/PLAIN) over UDP. Both with
  // --source their IPv6, --control-socket, then extra_args. READY: the tunnel is up.
  void start_client(int n, std::vector<std::string> extra_args = {});
  void kill_client(int n);             // SIGKILL: no release
  ExitStatus terminate_client(int n);  // SIGTERM (the client releases), SIGKILL after 15 s
  // The dashboard (options.web; std::logic_error otherwise): dstm-web --config <document> in the
  // root namespace. READY: HTTPS listens on 127.0.0.1 and the first admin exists.
  void start_web();
  ExitStatus terminate_web();  // SIGTERM, SIGKILL after 10 s
  // "https://127.0.0.1:<web_https_port>/".
  std::string web_url() const;
  // The first admin's password, from <dir>/web/initial-admin-password (written by dstm-web at its
  // first start, deleted when the password is changed); empty when there is none.
  std::string web_password() const;
  std::filesystem::path web_state_dir() const { return dir_ / "web"; }

  // Server, both TEPs, await_tep_alive for both, then both clients (client 1 is then assigned
  // tep-1 and client 2 tep-2: fewest leases, ties to the first listed), then with options.web
  // the dashboard.
  void start_all();

  DaemonProcess& server();
  DaemonProcess& tep(int n);
  DaemonProcess& client(int n);
  DaemonProcess& web();
  // True while the daemon was started and has not been stopped through this class or exited on
  // its own (checked without reaping it).
  bool server_running() const noexcept;
  bool tep_running(int n) const noexcept;
  bool client_running(int n) const noexcept;
  bool web_running() const noexcept;

  // Waits until the TEP says it is connected to the server (GET /status server.connected) and the
  // server says the TEP is alive (GET /teps); throws with the logs on timeout.
  void await_tep_alive(int n, std::chrono::milliseconds timeout = std::chrono::seconds{20});

  // --- Control sockets. Transport failures (daemon down) throw std::runtime_error; an HTTP
  // error status is returned as it is.
  platform::Response server_control(platform::Method method, std::string target,
                                    boost::json::value body = nullptr) const;
  platform::Response tep_control(int n, platform::Method method, std::string target,
                                 boost::json::value body = nullptr) const;
  platform::Response client_control(int n, platform::Method method, std::string target,
                                    boost::json::value body = nullptr) const;

  // Checks the plain topology with ping (no daemons needed), all probes at once, each bounded:
  // IPv6 from every IPv6 leaf to every other, IPv4 between tep1, tep2 and the host across r4,
  // and with reference_path cl1 -> 203.0.113.20 and host -> 192.0.2.34. Throws
  // std::runtime_error listing every failed pair.
  void check_topology() const;

  // Every daemon's log, each under a header (for failure messages).
  std::string logs() const;

 private:
  struct Daemon {
    std::string name;  // "server", "tep1", ...
    std::unique_ptr<DaemonProcess> process;
  };
  static std::string make_description(bool reference_path);
  std::string make_config() const;
  // ns empty: the root namespace.
  void start(Daemon& d, std::string_view ns, std::vector<std::string> args,
             std::chrono::milliseconds timeout);
  static bool running(const Daemon& d) noexcept;
  Daemon& tep_daemon(int n);
  Daemon& client_daemon(int n);
  const Daemon& tep_daemon(int n) const;
  const Daemon& client_daemon(int n) const;

  DstmLabOptions options_;
  std::optional<TempDir> own_dir_;
  std::filesystem::path dir_;
  std::string description_;
  Lab lab_;
  Daemon server_{"server", nullptr};
  std::array<Daemon, 2> teps_{Daemon{"tep1", nullptr}, Daemon{"tep2", nullptr}};
  std::array<Daemon, 2> clients_{Daemon{"client1", nullptr}, Daemon{"client2", nullptr}};
  Daemon web_{"web", nullptr};
};

}  // namespace test
