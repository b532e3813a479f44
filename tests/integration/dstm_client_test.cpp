// dstm-client end to end: the real binary in a client namespace, a real dstm-server in a server
// namespace, joined by a veth (2001:db8:c1::/64). Stand-in TEPs in the server namespace (a tunnel
// port on 2001:db8:e1::2 / 2001:db8:e2::2) answer every ICMP echo they decapsulate, so that the
// keepalive and a ping through the tunnel work without a TEP daemon.
#include <net/if.h>
#include <poll.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "platform/control.hpp"
#include "platform/netlink.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"
#include "support/packet_builder.hpp"
#include "tep/fourover6.hpp"
#include "tep_io/packet_io.hpp"
#include "tsp/sasl.hpp"
#include "tsp_net/client.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

using test::v4;
using test::v6;

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = 20s;
constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kServerIpv6 = "2001:db8:c1::1";
constexpr const char* kClientIpv6 = "2001:db8:c1::2";
constexpr const char* kTep1 = "2001:db8:e1::2";
constexpr const char* kTep2 = "2001:db8:e2::2";
constexpr const char* kInterface = "dstm0";

// srv: the server (on 2001:db8:c1::1) and the stand-in TEPs (on lo); cl: the client.
constexpr const char* kTopology =
    "netns srv\n"
    "netns cl\n"
    "veth cl:eth0 srv:eth0\n"
    "addr cl eth0 2001:db8:c1::2/64\n"
    "addr srv eth0 2001:db8:c1::1/64\n"
    "addr srv lo 2001:db8:e1::2/128\n"
    "addr srv lo 2001:db8:e2::2/128\n"
    "route cl 2001:db8:e1::/64 via 2001:db8:c1::1\n"
    "route cl 2001:db8:e2::/64 via 2001:db8:c1::1\n";

std::string text(const json::value& v) {
  return std::string{v.as_string()};
}

// Polls `done` every 50 ms until it holds; false at the deadline.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds deadline = kDeadline) {
  const auto end = Clock::now() + deadline;
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::string verifier(std::string_view user, std::string_view password) {
  return tsp::to_hex(tsp::digest_verifier(user, "dstm", password));
}

json::object control_get(const std::filesystem::path& socket, const std::string& target) {
  const platform::ControlClient client{socket.string()};
  auto r = client.request(platform::Method::Get, target);
  REQUIRE(r);
  INFO(json::serialize(r->body));
  REQUIRE(r->status == 200);
  return r->body.as_object();
}

// ---- the server ----

struct ServerSetup {
  int port = 0;  // 0: ephemeral (a restart then gets another one)
  std::string lease = R"({"lifetime": 600, "grace": 600})";
  bool anonymous = true;
  std::string users = "[]";
  std::string teps = R"([{"name": "tep-1", "ipv6": "2001:db8:e1::2", "ipv4": "192.0.2.1",
                          "heartbeat": false, "keepalive": "192.0.2.201"}])";
};

// dstm-server in the lab's srv namespace, on an ephemeral port (TCP and UDP).
class Server {
 public:
  Server(test::Lab& lab, const ServerSetup& setup) : netns_{lab.netns_name("srv")} {
    const auto doc = fmt::format(
        R"({{"dstm_server": {{
          "listen": {{"ipv6": ["::"], "port": {}}},
          "pool": {{"prefixes": ["198.51.100.0/24"]}},
          "lease": {},
          "auth": {{"anonymous": {}, "users": {}}},
          "teps": {},
          "client": {{"dns_server": "2001:db8::53", "keepalive_interval": 5}},
          "tep_timeout": 300,
          "store": {{"path": "{}", "sync": "normal"}},
          "control_socket": "{}"
        }}}})",
        setup.port, setup.lease, setup.anonymous ? "true" : "false", setup.users, setup.teps,
        (dir_ / "leases.db").string(), socket().string());
    config_ = dir_.write("server.json", doc);
    start();
  }

  // (Re)starts the daemon on the same config and lease store.
  void start() {
    process_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", netns_, DSTM_SERVER_BIN, "--config",
                                 config_.string()},
        dir_ / "server.log");
    INFO(process_->log());
    REQUIRE(process_->wait_ready(std::chrono::milliseconds{kDeadline}));
    const auto st = status();
    for (const auto& l : st.at("listeners").as_array())
      port_ = static_cast<std::uint16_t>(l.at("port").as_int64());
    REQUIRE(port_ != 0);
  }
  test::ExitStatus kill() { return process_->kill(); }

  std::filesystem::path socket() const { return dir_ / "server.sock"; }
  json::object status() const { return control_get(socket(), "/status"); }
  std::optional<json::object> lease(const std::string& ipv4) const {
    const platform::ControlClient client{socket().string()};
    auto r = client.request(platform::Method::Get, "/leases/" + ipv4);
    REQUIRE(r);
    if (r->status == 404) return std::nullopt;
    REQUIRE(r->status == 200);
    return r->body.as_object();
  }
  std::uint16_t port() const noexcept { return port_; }
  std::string log() const { return process_->log(); }

 private:
  std::string netns_;
  test::TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<test::DaemonProcess> process_;
  std::uint16_t port_ = 0;
};

// ---- a stand-in TEP ----

// A tunnel port on `local` in the srv namespace. Every ICMP echo request it decapsulates is
// answered (source and destination swapped) and sent back from `answer_from`: another TEP's
// address shows that the client takes return traffic from any TEP. inject() sends an inner packet
// of the test's choosing to the client.
class StubTep {
 public:
  StubTep(test::Lab& lab, const char* local, const char* answer_from)
      : from_{v6(answer_from)},
        port_{lab.enter(
            "srv",
            [&] {
              return tep::io::TunnelPort::open(tep::io::TunnelOptions{.local = v6(local)}).value();
            })},
        thread_{[this] { loop(); }} {}
  ~StubTep() { stop(); }
  StubTep(const StubTep&) = delete;
  StubTep& operator=(const StubTep&) = delete;

  // The TEP dies: no more answers.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t echoes() const { return echoes_; }
  void inject(std::vector<std::byte> inner, const core::Ipv6Address& to) {
    std::lock_guard lock{mutex_};
    injected_.emplace_back(std::move(inner), to);
  }

 private:
  void send_inner(core::Bytes inner, const core::Ipv6Address& to) {
    std::vector<std::byte> frame(tep::kEncapOverhead);
    frame.insert(frame.end(), inner.begin(), inner.end());
    const auto outer = tep::encapsulate(frame, tep::kEncapOverhead, {.src = from_, .dst = to});
    if (outer) (void)port_.send(*outer);
  }

  void answer(const tep::Decapsulated& d) {
    const auto ip = core::parse_ipv4(d.inner);
    if (!ip || ip->header.protocol != core::ip_protocol::kIcmp) return;
    const auto icmp = core::parse_icmpv4(ip->payload);
    if (!icmp || icmp->type != core::icmpv4_type::kEchoRequest) return;
    std::vector<std::byte> reply(d.inner.size() + 64);
    core::ByteWriter w{reply};
    const core::Ipv4Header h{.ttl = 64,
                             .protocol = core::ip_protocol::kIcmp,
                             .src = ip->header.dst,
                             .dst = ip->header.src};
    if (!core::write_ipv4_header(w, h, icmp->message.size())) return;
    const core::IcmpEcho echo{
        .id = icmp->echo_id(), .sequence = icmp->echo_sequence(), .data = icmp->body};
    if (!core::write_icmpv4_echo(w, core::EchoKind::reply, echo)) return;
    send_inner(w.written(), d.outer.src);
    ++echoes_;
  }

  void loop() {
    tep::io::PacketBatch batch{8};
    while (!stop_) {
      {
        std::lock_guard lock{mutex_};
        for (const auto& [inner, to] : injected_) send_inner(inner, to);
        injected_.clear();
      }
      pollfd p{.fd = port_.receive_handle(), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const auto n = port_.receive(batch);
      if (!n) continue;
      for (std::size_t i = 0; i < *n && !stop_; ++i) {
        const auto d = tep::decapsulate(batch.packet(i));
        if (d) answer(*d);
      }
    }
  }

  core::Ipv6Address from_;
  tep::io::TunnelPort port_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> echoes_{0};
  std::mutex mutex_;
  std::vector<std::pair<std::vector<std::byte>, core::Ipv6Address>> injected_;
  std::thread thread_;
};

// ---- the client ----

class Client {
 public:
  Client(test::Lab& lab, const Server& server, std::vector<std::string> extra) {
    std::vector<std::string> argv{kIp,
                                  "netns",
                                  "exec",
                                  lab.netns_name("cl"),
                                  DSTM_CLIENT_BIN,
                                  "--server",
                                  kServerIpv6,
                                  "--port",
                                  std::to_string(server.port()),
                                  "--interface",
                                  kInterface,
                                  "--control-socket",
                                  socket().string(),
                                  "--log-level",
                                  "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<test::DaemonProcess>(argv, dir_ / "client.log");
  }

  bool wait_ready() { return process_->wait_ready(std::chrono::milliseconds{kDeadline}); }
  test::ExitStatus terminate() { return process_->terminate(10s); }
  test::ExitStatus wait(std::chrono::milliseconds t) { return process_->wait(t); }
  std::string log() const { return process_->log(); }
  const test::TempDir& dir() const { return dir_; }
  std::filesystem::path socket() const { return dir_ / "client.sock"; }
  json::object status() const { return control_get(socket(), "/status"); }
  std::uint64_t counter(std::string_view name) const {
    return status().at("counters").at(name).to_number<std::uint64_t>();
  }
  // Packets either data path carried: user space's counter plus the BPF fast path's (the
  // client runs with --backend auto).
  std::uint64_t carried(std::string_view name) const {
    const auto s = status();
    const auto* fast = s.if_contains("fast_path");
    return s.at("counters").at(name).to_number<std::uint64_t>() +
           (fast != nullptr ? fast->at(name).to_number<std::uint64_t>() : 0);
  }

  // The JSON event lines the client printed (stdout shares the log file with stderr).
  std::vector<json::object> events() const {
    std::vector<json::object> out;
    const auto text = log();
    std::size_t start = 0;
    while (start < text.size()) {
      auto end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string_view line{text.data() + start, end - start};
      if (line.starts_with("{\"event\"")) {
        boost::system::error_code ec;
        auto v = json::parse(line, ec);
        if (!ec && v.is_object()) out.push_back(v.as_object());
      }
      start = end + 1;
    }
    return out;
  }
  std::optional<json::object> event(std::string_view name) const {
    for (auto& e : events())
      if (e.at("event").as_string() == name) return e;
    return std::nullopt;
  }

 private:
  test::TempDir dir_;
  std::unique_ptr<test::DaemonProcess> process_;
};

// The TUN device as the kernel sees it in the client namespace, if it exists.
std::optional<platform::netlink::LinkInfo> tun_link(test::Lab& lab) {
  auto l = lab.netlink("cl").link(kInterface);
  if (!l) return std::nullopt;
  return *l;
}

// Runs one coroutine on `io` to completion, bounded by kDeadline.
template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  boost::asio::co_spawn(
      io, [&]() -> boost::asio::awaitable<void> { out.emplace(co_await std::move(task)); },
      boost::asio::detached);
  io.restart();
  const auto deadline = Clock::now() + kDeadline;
  while (!out && Clock::now() < deadline) io.run_one_for(100ms);
  REQUIRE(out);
  return std::move(*out);
}

// The client is up with `ipv4` on its TUN device, a /32, and `routed` goes into the tunnel.
void check_interface(test::Lab& lab, const std::string& ipv4, std::string_view routed) {
  const auto link = tun_link(lab);
  REQUIRE(link);
  CHECK((link->flags & IFF_UP) != 0);
  CHECK(link->mtu == 1460);
  auto& nl = lab.netlink("cl");
  const auto local = nl.route_to(v4(ipv4));
  REQUIRE(local);
  CHECK(local->type == 2);  // RTN_LOCAL: the lease is an address of this host
  const auto route = nl.route_to(v4(routed));
  REQUIRE(route);
  CHECK(route->oif == link->index);
}

}  // namespace

TEST_CASE("TCP, anonymous: up with the lease, traffic through the tunnel, released on SIGTERM",
          "[dstm-client]") {
  test::Lab lab{kTopology};
  Server server{lab, ServerSetup{}};
  // Replies come back from tep-2's address: return traffic through another TEP.
  StubTep tep{lab, kTep1, kTep2};
  Client client{lab, server, {}};
  INFO(client.log());
  REQUIRE(client.wait_ready());

  const auto st = client.status();
  CHECK(text(st.at("state")) == "up");
  const auto ipv4 = text(st.at("ipv4"));
  CHECK(core::Ipv4Prefix::parse("198.51.100.0/24")->contains(v4(ipv4)));
  CHECK(text(st.at("tep_ipv6")) == kTep1);
  CHECK(text(st.at("tep_ipv4")) == "192.0.2.1");
  CHECK(text(st.at("keepalive")) == "192.0.2.201");
  CHECK(text(st.at("local_ipv6")) == kClientIpv6);
  CHECK(st.at("lifetime").to_number<int>() == 600);

  // The interface: the lease as a /32, the default route into the TUN device.
  check_interface(lab, ipv4, "203.0.113.1");

  // The server holds the lease for the client's IPv6.
  const auto lease = server.lease(ipv4);
  REQUIRE(lease);
  CHECK(text(lease->at("ipv6")) == kClientIpv6);
  CHECK(text(lease->at("state")) == "active");

  const auto up = client.event("up");
  REQUIRE(up);
  CHECK(text(up->at("ipv4")) == ipv4);
  CHECK(text(up->at("interface")) == kInterface);

  // The keepalive (first probe at once) is answered by the stand-in TEP.
  CHECK(eventually([&] { return client.status().at("keepalive_answered").as_int64() >= 1; }));

  // A ping through the tunnel: encapsulated to tep-1, answered from tep-2.
  const auto ping = lab.run("cl", {"ping", "-c", "1", "-W", "5", "203.0.113.1"}, 15s);
  INFO(ping.output);
  CHECK(ping.ok());
  CHECK(client.carried("encapsulated") >= 2);  // the probe and the ping
  CHECK(client.carried("decapsulated") >= 1);  // the ping's reply

  // Hostile traffic from the tunnel is counted and dropped; the client stays up.
  auto stray = core::build_ipv4({.ttl = 64,
                                 .protocol = core::ip_protocol::kUdp,
                                 .src = v4("203.0.113.1"),
                                 .dst = v4("198.51.100.250")},
                                std::vector<std::byte>(16));
  REQUIRE(stray);
  tep.inject(*stray, v6(kClientIpv6));
  auto bad_checksum = core::build_ipv4(
      {.ttl = 64, .protocol = core::ip_protocol::kUdp, .src = v4("203.0.113.1"), .dst = v4(ipv4)},
      std::vector<std::byte>(16));
  REQUIRE(bad_checksum);
  (*bad_checksum)[10] ^= std::byte{0x5a};
  tep.inject(*bad_checksum, v6(kClientIpv6));
  CHECK(eventually([&] { return client.counter("dropped_not_ours") >= 1; }));
  CHECK(eventually([&] {
    return client.status().at("counters").at("decap_drops").at("inner_bad_checksum").as_int64() >=
           1;
  }));
  CHECK(text(client.status().at("state")) == "up");

  // The counters in Prometheus text too.
  const platform::ControlClient control{client.socket().string()};
  const auto metrics = control.request(platform::Method::Get, "/metrics");
  REQUIRE(metrics);
  REQUIRE(metrics->text);
  CHECK(metrics->text->find("dstm_client_encapsulated_total") != std::string::npos);
  CHECK(metrics->text->find("dstm_client_decap_drops_total{reason=\"inner_bad_checksum\"} 1") !=
        std::string::npos);

  // SIGTERM: delete, "released", exit 0; the lease and the TUN device are gone.
  const auto exit = client.terminate();
  CHECK(exit.code == 0);
  const auto released = client.event("released");
  REQUIRE(released);
  CHECK(text(released->at("ipv4")) == ipv4);
  CHECK(released->at("confirmed").as_bool());
  CHECK_FALSE(server.lease(ipv4));
  CHECK_FALSE(tun_link(lab));
  CHECK_FALSE(lab.netlink("cl").route_to(v4("203.0.113.1")));
}

TEST_CASE("UDP with a user: DIGEST-MD5, chosen routes and lifetime, released on SIGTERM",
          "[dstm-client]") {
  test::Lab lab{kTopology};
  ServerSetup setup;
  setup.anonymous = false;
  setup.users =
      fmt::format(R"([{{"name": "alice", "digest_md5": "{}"}}])", verifier("alice", "wonderland"));
  Server server{lab, setup};
  StubTep tep{lab, kTep1, kTep1};
  test::TempDir secrets;
  const auto password = secrets.write("alice.password", "wonderland\n");
  Client client{
      lab,
      server,
      {"--transport", "udp", "--source", kClientIpv6, "--user", "alice", "--password-file",
       password.string(), "--lifetime", "120", "--route", "203.0.113.0/24"}};
  INFO(client.log());
  REQUIRE(client.wait_ready());

  const auto st = client.status();
  CHECK(text(st.at("state")) == "up");
  const auto ipv4 = text(st.at("ipv4"));
  CHECK(st.at("lifetime").to_number<int>() == 120);
  check_interface(lab, ipv4, "203.0.113.77");
  // Only the chosen prefix goes into the tunnel.
  const auto elsewhere = lab.netlink("cl").route_to(v4("192.0.2.99"));
  CHECK((!elsewhere || elsewhere->oif != tun_link(lab)->index));

  const auto lease = server.lease(ipv4);
  REQUIRE(lease);
  CHECK(text(lease->at("ipv6")) == kClientIpv6);
  CHECK(text(lease->at("user")) == "alice");
  // The password is never logged.
  CHECK(client.log().find("wonderland") == std::string::npos);

  const auto exit = client.terminate();
  CHECK(exit.code == 0);
  REQUIRE(client.event("released"));
  CHECK(client.event("released")->at("confirmed").as_bool());
  CHECK_FALSE(server.lease(ipv4));
  CHECK_FALSE(tun_link(lab));
}

TEST_CASE("a lost TEP: keepalives go unanswered, the client moves to the other TEP, same IPv4",
          "[dstm-client]") {
  test::Lab lab{kTopology};
  ServerSetup setup;
  setup.users = fmt::format(R"([{{"name": "tep-1", "digest_md5": "{}"}},
                                {{"name": "tep-2", "digest_md5": "{}"}}])",
                            verifier("tep-1", "secret-1"), verifier("tep-2", "secret-2"));
  setup.teps = R"([{"name": "tep-1", "ipv6": "2001:db8:e1::2", "ipv4": "192.0.2.1",
                    "user": "tep-1", "keepalive": "192.0.2.201"},
                   {"name": "tep-2", "ipv6": "2001:db8:e2::2", "ipv4": "192.0.2.5",
                    "user": "tep-2", "keepalive": "192.0.2.202"}])";
  Server server{lab, setup};

  // Both TEPs are alive while their authenticated sessions are open (docs/dstm-server.md).
  boost::asio::io_context io;
  auto open_tep = [&](const char* user, const char* password) {
    tsp::ClientConfig c;
    c.mechanisms = {tsp::Mechanism::DigestMd5};
    c.username = user;
    c.password = password;
    c.server_name = "test";
    tsp_net::Target t;
    t.address = kServerIpv6;
    t.port = server.port();
    return lab.enter("srv", [&] { return run_on(io, tsp_net::QuerySession::open(t, c)); });
  };
  auto session1 = open_tep("tep-1", "secret-1");
  REQUIRE(session1);
  auto session2 = open_tep("tep-2", "secret-2");
  REQUIRE(session2);
  auto tep1 = std::make_unique<StubTep>(lab, kTep1, kTep1);
  StubTep tep2{lab, kTep2, kTep2};

  Client client{lab, server, {"--keepalive-misses", "2"}};
  INFO(client.log());
  REQUIRE(client.wait_ready());
  const auto ipv4 = text(client.status().at("ipv4"));
  REQUIRE(text(client.status().at("tep_ipv6")) == kTep1);
  CHECK(eventually([&] { return client.status().at("keepalive_answered").as_int64() >= 1; }));

  // tep-1 dies: it stops answering and its session to the server ends.
  tep1->stop();
  session1->close();
  io.restart();
  io.run_for(200ms);

  CHECK(eventually(
      [&] {
        const auto st = client.status();
        return text(st.at("state")) == "up" && text(st.at("tep_ipv6")) == kTep2;
      },
      60s));
  const auto st = client.status();
  CHECK(text(st.at("ipv4")) == ipv4);
  CHECK(text(st.at("tep_ipv4")) == "192.0.2.5");
  CHECK(text(st.at("keepalive")) == "192.0.2.202");
  CHECK(st.at("tep_changes").as_int64() == 1);
  CHECK(st.at("keepalive_misses").as_int64() >= 2);
  const auto lost = client.event("tep_lost");
  REQUIRE(lost);
  CHECK(text(lost->at("tep_ipv6")) == kTep1);
  const auto moved = client.event("moved");
  REQUIRE(moved);
  CHECK(text(moved->at("from_tep_ipv6")) == kTep1);
  CHECK(text(moved->at("tep_ipv6")) == kTep2);
  CHECK(text(moved->at("ipv4")) == ipv4);
  check_interface(lab, ipv4, "203.0.113.1");
  // The new TEP answers the keepalive.
  const auto before = tep2.echoes();
  CHECK(eventually([&] { return tep2.echoes() > before; }, 15s));

  CHECK(client.terminate().code == 0);
  CHECK_FALSE(server.lease(ipv4));
  session2->close();
  io.restart();
  io.run_for(200ms);
}

TEST_CASE("short leases: renewed before the end - with --no-renew the client exits 0 unreleased",
          "[dstm-client]") {
  test::Lab lab{kTopology};
  ServerSetup setup;
  setup.lease = R"({"lifetime": 3, "max_lifetime": 60, "grace": 60})";
  Server server{lab, setup};
  StubTep tep{lab, kTep1, kTep1};

  {
    Client renewing{lab, server, {}};
    INFO(renewing.log());
    REQUIRE(renewing.wait_ready());
    const auto ipv4 = text(renewing.status().at("ipv4"));
    // Renewal at 2 s of 3: two renewals within 10 s, same address, never expired.
    CHECK(eventually([&] { return renewing.status().at("renewals").as_int64() >= 2; }, 10s));
    const auto renewed = renewing.event("renewed");
    REQUIRE(renewed);
    CHECK(text(renewed->at("ipv4")) == ipv4);
    CHECK_FALSE(renewing.event("expired"));
    CHECK(renewing.terminate().code == 0);
    CHECK_FALSE(server.lease(ipv4));
  }

  Client once{lab, server, {"--no-renew"}};
  INFO(once.log());
  REQUIRE(once.wait_ready());
  const auto ipv4 = text(once.status().at("ipv4"));
  const auto exit = once.wait(15s);
  CHECK(exit.code == 0);
  REQUIRE(once.event("expired"));
  CHECK_FALSE(once.event("released"));
  CHECK_FALSE(once.event("renewed"));
  // Not released: the server still holds the address for the client (expired, in its grace).
  CHECK(server.lease(ipv4));
  CHECK_FALSE(tun_link(lab));
}

TEST_CASE("renewals fail while the server is down: expired, interface down, up again after",
          "[dstm-client]") {
  test::Lab lab{kTopology};
  ServerSetup setup;
  setup.port = 3653;  // the same port after the restart
  setup.lease = R"({"lifetime": 4, "max_lifetime": 60, "grace": 600})";
  Server server{lab, setup};
  StubTep tep{lab, kTep1, kTep1};
  Client client{lab, server, {}};
  INFO(client.log());
  REQUIRE(client.wait_ready());
  const auto ipv4 = text(client.status().at("ipv4"));

  server.kill();
  // Renewal from 2.7 s fails (errors reported), the lease ends at 4 s: the link goes down.
  CHECK(eventually([&] { return client.event("expired").has_value(); }, 15s));
  CHECK(text(client.status().at("state")) == "recreating");
  REQUIRE(tun_link(lab));
  CHECK((tun_link(lab)->flags & IFF_UP) == 0);
  CHECK(client.event("error"));

  // The server comes back: the client gets its address again (sticky within the grace).
  server.start();
  CHECK(eventually([&] { return text(client.status().at("state")) == "up"; }, 20s));
  CHECK(text(client.status().at("ipv4")) == ipv4);
  check_interface(lab, ipv4, "203.0.113.1");
  int ups = 0;
  for (const auto& e : client.events()) ups += e.at("event").as_string() == "up" ? 1 : 0;
  CHECK(ups == 2);
  CHECK(client.terminate().code == 0);
  CHECK_FALSE(server.lease(ipv4));
}

TEST_CASE("a bad command line exits 64 naming every error", "[dstm-client]") {
  test::TempDir dir;
  test::DaemonProcess p{{DSTM_CLIENT_BIN, "--port", "0", "--route", "10.0.0.1/8", "--bogus"},
                        dir / "cli.log"};
  const auto status = p.wait(std::chrono::milliseconds{kDeadline});
  CHECK(status.code == 64);
  const auto log = p.log();
  INFO(log);
  CHECK(log.find("--server: required") != std::string::npos);
  CHECK(log.find("--port:") != std::string::npos);
  CHECK(log.find("--route:") != std::string::npos);
  CHECK(log.find("--bogus: unknown option") != std::string::npos);
}
