// The dstm-server daemon end to end: the real binary, a real SQLite file, real TCP and UDP
// sockets, clients driven by tsp_net. Everything runs inside a private network namespace in
// which 2001:db8:100::/64 is local, so that every test client can have its own IPv6 source
// address (the server binds a create to the session's source address).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <initializer_list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"
#include "tsp/sasl.hpp"
#include "tsp_net/client.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kDeadline = 20s;

// The lab every test runs in: one namespace, lo up, 2001:db8:100::/64 local on lo (client
// addresses).
class ClientLab {
 public:
  // Two addresses of the server's own on lo: clients write to 2001:db8:200::1, while the
  // kernel's source-address choice toward a client (2001:db8:100::/64) would be 2001:db8:100::1.
  ClientLab()
      : lab_{
            "netns s\n"
            "addr s lo 2001:db8:100::1/128\n"
            "addr s lo 2001:db8:200::1/128\n"} {
    const auto r =
        lab_.run("s", {"ip", "-6", "route", "add", "local", "2001:db8:100::/64", "dev", "lo"});
    if (!r.ok()) throw std::runtime_error("ip route add local: " + r.output);
  }
  template <class F>
  void run(F&& body) {
    lab_.enter("s", std::forward<F>(body));
  }

 private:
  test::Lab lab_;
};

core::Ipv6Address client_ipv6(unsigned n) {
  return core::Ipv6Address::parse(fmt::format("2001:db8:100::{:x}", n + 0x10)).value();
}

std::string verifier(std::string_view user, std::string_view password) {
  const auto v = tsp::digest_verifier(user, "dstm", password);
  return tsp::to_hex(v);
}

// The config's "users" array for (name, password) pairs.
std::string users_json(std::initializer_list<std::pair<std::string_view, std::string_view>> users) {
  std::string out = "[";
  for (const auto& [name, password] : users) {
    if (out.size() > 1) out += ", ";
    out += fmt::format(R"({{"name": "{}", "digest_md5": "{}"}})", name, verifier(name, password));
  }
  return out + "]";
}

struct ServerSetup {
  std::string pool = R"(["198.51.100.0/24"])";
  std::string lease = R"({"lifetime": 1440, "grace": 3600})";
  bool anonymous = true;
  std::string teps = R"([{"name": "tep-1", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1",
                          "heartbeat": false}])";
  std::string users = "[]";
  std::string limits = "{}";
};

// A dstm-server child process with its own config, store and control socket.
class Server {
 public:
  explicit Server(ServerSetup setup = {}) : setup_{std::move(setup)} {
    const auto doc = fmt::format(
        R"({{"dstm_server": {{
          "listen": {{"ipv6": ["::"], "ipv4": ["127.0.0.1"], "port": 0}},
          "pool": {{"prefixes": {}}},
          "lease": {},
          "auth": {{"anonymous": {}, "users": {}}},
          "teps": {},
          "tep_timeout": 30, "heartbeat_interval": 10,
          "client": {{"dns_server": "2001:db8::53"}},
          "store": {{"path": "{}", "sync": "full"}},
          "control_socket": "{}",
          "limits": {}
        }}}})",
        setup_.pool, setup_.lease, setup_.anonymous ? "true" : "false", setup_.users, setup_.teps,
        (dir_ / "leases.db").string(), (dir_ / "ctl.sock").string(), setup_.limits);
    config_ = dir_.write("config.json", doc);
    start();
  }

  void start() {
    process_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{DSTM_SERVER_BIN, "--config", config_.string()},
        dir_ / "server.log");
    REQUIRE(process_->wait_ready(std::chrono::milliseconds{kDeadline}));
    const auto status = control(platform::Method::Get, "/status");
    REQUIRE(status.status == 200);
    for (const auto& l : status.body.at("listeners").as_array()) {
      const auto& o = l.as_object();
      port_ = static_cast<std::uint16_t>(o.at("port").as_int64());
    }
    REQUIRE(port_ != 0);
  }

  test::ExitStatus kill() { return process_->kill(); }
  test::ExitStatus terminate() { return process_->terminate(10s); }
  std::string log() const { return process_->log(); }

  platform::Response control(platform::Method method, const std::string& target,
                             const json::value& body = nullptr) const {
    const platform::ControlClient client{(dir_ / "ctl.sock").string()};
    auto r = client.request(method, target, body);
    REQUIRE(r);
    return *r;
  }
  json::object status() const { return control(platform::Method::Get, "/status").body.as_object(); }
  std::optional<json::object> lease(const core::Ipv4Address& a) const {
    auto r = control(platform::Method::Get, "/leases/" + a.to_string());
    if (r.status == 404) return std::nullopt;
    REQUIRE(r.status == 200);
    return r.body.as_object();
  }

  tsp_net::Target target(tsp::Transport t, std::string address = "::1",
                         std::string source = {}) const {
    const bool freebind = !source.empty();
    return tsp_net::Target{.address = std::move(address),
                           .port = port_,
                           .transport = t,
                           .source_address = std::move(source),
                           .freebind = freebind};
  }
  std::uint16_t port() const noexcept { return port_; }
  const test::TempDir& dir() const noexcept { return dir_; }

 private:
  ServerSetup setup_;
  test::TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<test::DaemonProcess> process_;
  std::uint16_t port_ = 0;
};

struct Auth {
  std::vector<tsp::Mechanism> mechanisms{tsp::Mechanism::Anonymous};
  std::string user;
  std::string password;
};

tsp::ClientConfig client_config(tsp::Transport transport, const Auth& auth) {
  tsp::ClientConfig c;
  c.transport = transport;
  c.mechanisms = auth.mechanisms;
  c.username = auth.user;
  c.password = auth.password;
  c.server_name = "dstm-test";
  c.deadlines.reply = 10s;
  c.deadlines.rto_initial = 500ms;
  return c;
}

tsp::ClientConfig create_config(tsp::Transport transport, const core::Ipv6Address& me,
                                const Auth& auth = {}) {
  auto c = client_config(transport, auth);
  tsp::Tunnel t = tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6);
  t.client = tsp::Endpoint{};
  t.client->addresses.push_back(tsp::Address{me, std::nullopt});
  c.request = t;
  return c;
}

// A create from `me` (bound as the source) over `transport` to the server's IPv6 listener.
tsp_net::Result<tsp_net::TunnelResult> create(const Server& s, tsp::Transport transport,
                                              const core::Ipv6Address& me, const Auth& auth = {}) {
  // The server listens on "::", and over UDP it must answer from the address the client wrote
  // to (2001:db8:200::1), not from the one the kernel would pick by route (2001:db8:100::1).
  auto target = s.target(transport, "2001:db8:200::1", me.to_string());
  return tsp_net::create_tunnel_blocking(target, create_config(transport, me, auth), kDeadline);
}

core::Ipv4Address offered_ipv4(const tsp_net::TunnelResult& r) {
  REQUIRE(r.offer.client);
  const auto a = r.offer.client->ipv4();
  REQUIRE(a);
  return *a;
}

// Runs one coroutine on `io` to completion, bounded by kDeadline.
template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> out;
  boost::asio::co_spawn(
      io, [&]() -> boost::asio::awaitable<void> { out.emplace(co_await std::move(task)); },
      boost::asio::detached);
  io.restart();
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!out && std::chrono::steady_clock::now() < deadline) io.run_one_for(100ms);
  REQUIRE(out);
  return std::move(*out);
}

std::optional<int> status_code(const tsp_net::Error& e) {
  if (e.status) return e.status->code;
  return std::nullopt;
}

}  // namespace

TEST_CASE("create over TCP and UDP, IPv6: offer, durable lease, sticky renewal, delete",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    Server server;
    for (const auto transport : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
      const auto me = client_ipv6(transport == tsp::Transport::Tcp ? 1 : 2);
      const auto first = create(server, transport, me);
      REQUIRE(first);
      const auto ipv4 = offered_ipv4(*first);
      CHECK(core::Ipv4Prefix::parse("198.51.100.0/24")->contains(ipv4));
      const auto& offer = first->offer;
      CHECK(offer.lifetime == 1440u);
      REQUIRE(offer.server);
      CHECK(offer.server->ipv6() == core::Ipv6Address::parse("2001:db8:ffff::1").value());
      CHECK(offer.server->ipv4() == core::Ipv4Address::parse("192.0.2.1").value());
      CHECK(offer.client->ipv6() == me);
      REQUIRE(offer.client->dns_servers.size() == 1);

      const auto lease = server.lease(ipv4);
      REQUIRE(lease);
      CHECK(lease->at("ipv6").as_string() == me.to_string());
      CHECK(lease->at("state").as_string() == "active");
      CHECK(lease->at("tep").as_string() == "tep-1");

      // The same client creating again gets the same address back.
      const auto again = create(server, transport, me);
      REQUIRE(again);
      CHECK(offered_ipv4(*again) == ipv4);

      // delete from a new session releases it.
      auto target = server.target(transport, "::1", me.to_string());
      auto del = tsp::ClientConfig{client_config(transport, {})};
      REQUIRE(tsp_net::delete_tunnel_blocking(target, del, kDeadline));
      CHECK_FALSE(server.lease(ipv4));
    }
    const auto st = server.status();
    CHECK(st.at("pool").at("used").as_int64() == 0);
  });
}

TEST_CASE("PLAIN and DIGEST-MD5 over IPv4 transport - ANONYMOUS off refuses anonymous clients",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.anonymous = false;
    setup.users = users_json({{"alice", "alice-secret"}, {"bob", "bob-secret"}});
    Server server{setup};
    const auto me = client_ipv6(7);
    for (const auto transport : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
      const Auth alice{{tsp::Mechanism::DigestMd5}, "alice", "alice-secret"};
      const Auth bob{{tsp::Mechanism::Plain}, "bob", "bob-secret"};
      auto target = server.target(transport, "127.0.0.1");
      const auto a =
          tsp_net::create_tunnel_blocking(target, create_config(transport, me, alice), kDeadline);
      REQUIRE(a);
      CHECK(a->mechanism == tsp::Mechanism::DigestMd5);
      const auto b =
          tsp_net::create_tunnel_blocking(target, create_config(transport, me, bob), kDeadline);
      REQUIRE(b);
      CHECK(b->mechanism == tsp::Mechanism::Plain);
      // One lease per (IPv6, user): the same IPv6 under two users holds two addresses.
      CHECK(offered_ipv4(*a) != offered_ipv4(*b));
      CHECK(server.lease(offered_ipv4(*a))->at("user").as_string() == "alice");

      // A wrong password is refused; so is ANONYMOUS, which is not offered.
      const Auth wrong{{tsp::Mechanism::DigestMd5}, "alice", "guess"};
      const auto w =
          tsp_net::create_tunnel_blocking(target, create_config(transport, me, wrong), kDeadline);
      REQUIRE_FALSE(w);
      CHECK(status_code(w.error()) == 300);
      const auto anon =
          tsp_net::create_tunnel_blocking(target, create_config(transport, me, {}), kDeadline);
      REQUIRE_FALSE(anon);
    }
  });
}

TEST_CASE("a create naming another client's IPv6 is rejected and changes nothing",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    Server server;
    const auto me = client_ipv6(1);
    const auto victim = client_ipv6(2);
    for (const auto transport : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
      auto target = server.target(transport, "::1", me.to_string());
      const auto r =
          tsp_net::create_tunnel_blocking(target, create_config(transport, victim), kDeadline);
      REQUIRE_FALSE(r);
      CHECK(status_code(r.error()) == 502);
    }
    CHECK(server.status().at("pool").at("used").as_int64() == 0);
  });
}

TEST_CASE("pool exhausted: 301 and nothing else changes", "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.pool = R"(["198.51.100.4/30"])";  // two usable addresses
    Server server{setup};
    const auto a = create(server, tsp::Transport::Tcp, client_ipv6(1));
    const auto b = create(server, tsp::Transport::Tcp, client_ipv6(2));
    REQUIRE(a);
    REQUIRE(b);
    // The lease table without the seconds left (which change with time).
    auto table = [&] {
      auto body = server.control(platform::Method::Get, "/leases").body;
      for (auto& l : body.at("leases").as_array()) l.as_object().erase("remaining");
      return body;
    };
    const auto before = table();
    const auto c = create(server, tsp::Transport::Tcp, client_ipv6(3));
    REQUIRE_FALSE(c);
    CHECK(status_code(c.error()) == 301);
    const auto d = create(server, tsp::Transport::Udp, client_ipv6(4));
    REQUIRE_FALSE(d);
    CHECK(status_code(d.error()) == 301);
    CHECK(table() == before);
    CHECK(server.status().at("pool").at("free").as_int64() == 0);
    // The holders still renew.
    const auto again = create(server, tsp::Transport::Tcp, client_ipv6(1));
    REQUIRE(again);
    CHECK(offered_ipv4(*again) == offered_ipv4(*a));
  });
}

TEST_CASE("TEP queries: refused without a TEP identity, answered with one, pipelined",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.users = users_json({{"tep-a", "tep-secret"}, {"mallory", "m-secret"}});
    setup.teps = R"([{"name": "tep-a", "ipv6": "2001:db8:ffff::1", "ipv4": "192.0.2.1",
                      "user": "tep-a"}])";
    Server server{setup};
    const Auth tep{{tsp::Mechanism::DigestMd5}, "tep-a", "tep-secret"};

    // The TEP must be alive for creates to be assigned to it: hold a query session open.
    boost::asio::io_context io;
    auto keeper = run_on(io, tsp_net::QuerySession::open(server.target(tsp::Transport::Tcp),
                                                         client_config(tsp::Transport::Tcp, tep)));
    REQUIRE(keeper);

    std::vector<core::Ipv4Address> leased;
    std::map<core::Ipv4Address, core::Ipv6Address> holder;
    for (unsigned i = 0; i < 5; ++i) {
      const auto r = create(server, tsp::Transport::Tcp, client_ipv6(i));
      REQUIRE(r);
      leased.push_back(offered_ipv4(*r));
      holder[leased.back()] = client_ipv6(i);
    }
    const auto unleased = core::Ipv4Address::parse("198.51.100.250").value();

    // Anonymous and non-TEP users are refused.
    for (const Auth& who : {Auth{}, Auth{{tsp::Mechanism::Plain}, "mallory", "m-secret"}}) {
      const auto r =
          tsp_net::query_blocking(server.target(tsp::Transport::Tcp),
                                  client_config(tsp::Transport::Tcp, who), {leased[0]}, kDeadline);
      if (r) {
        REQUIRE(r->size() == 1);
        CHECK(r->front().status.code == 300);
        CHECK_FALSE(r->front().mapping);
      }
    }

    // The TEP gets every mapping, over TCP (pipelined, 1000 queries) and UDP.
    std::vector<core::Ipv4Address> many;
    for (unsigned i = 0; i < 1000; ++i) many.push_back(i % 7 == 6 ? unleased : leased[i % 5]);
    for (const auto transport : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
      const auto asked = transport == tsp::Transport::Tcp
                             ? many
                             : std::vector<core::Ipv4Address>{leased[0], unleased};
      const auto r = tsp_net::query_blocking(server.target(transport, "127.0.0.1"),
                                             client_config(transport, tep), asked, kDeadline);
      REQUIRE(r);
      REQUIRE(r->size() == asked.size());
      for (std::size_t i = 0; i < asked.size(); ++i) {
        const auto& answer = (*r)[i];
        CHECK(answer.ipv4 == asked[i]);
        if (asked[i] == unleased) {
          CHECK(answer.status.code == 501);
          CHECK_FALSE(answer.mapping);
        } else {
          REQUIRE(answer.mapping);
          CHECK(answer.mapping->ipv6 == holder[asked[i]]);
          CHECK(answer.mapping->lifetime <= 1440u);
          CHECK(answer.mapping->lifetime > 1400u);
        }
      }
    }
    keeper->close();
  });
}

TEST_CASE("creates go only to live TEPs, least loaded by weight - a dead TEP's client moves",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.users = users_json({{"tep-a", "a-secret"}, {"tep-b", "b-secret"}});
    setup.teps = R"([{"name": "tep-a", "ipv6": "2001:db8:ffff::a", "ipv4": "192.0.2.10",
                      "user": "tep-a"},
                     {"name": "tep-b", "ipv6": "2001:db8:ffff::b", "ipv4": "192.0.2.11",
                      "user": "tep-b", "weight": 3}])";
    Server server{setup};

    // No TEP alive: nobody can be served.
    const auto none = create(server, tsp::Transport::Tcp, client_ipv6(1));
    REQUIRE_FALSE(none);
    CHECK(status_code(none.error()) == 301);

    boost::asio::io_context io;
    auto open = [&](const Auth& who) {
      auto session =
          run_on(io, tsp_net::QuerySession::open(server.target(tsp::Transport::Tcp),
                                                 client_config(tsp::Transport::Tcp, who)));
      REQUIRE(session);
      return std::move(*session);
    };
    auto tep_a = open(Auth{{tsp::Mechanism::DigestMd5}, "tep-a", "a-secret"});

    // Only tep-a is alive: everyone goes there.
    const auto first = create(server, tsp::Transport::Tcp, client_ipv6(1));
    REQUIRE(first);
    CHECK(first->offer.server->ipv6() == core::Ipv6Address::parse("2001:db8:ffff::a").value());

    // tep-b (weight 3) comes up: the next 6 new clients split 1:3 counting tep-a's one lease
    // (tep-a: 1 -> 2 - 1 = ... least loaded by weight): check the totals, not the order.
    auto tep_b = open(Auth{{tsp::Mechanism::DigestMd5}, "tep-b", "b-secret"});
    std::map<std::string, int> per_tep;
    for (unsigned i = 2; i < 10; ++i) {
      const auto r = create(server, tsp::Transport::Tcp, client_ipv6(i));
      REQUIRE(r);
      per_tep[r->offer.server->ipv6()->to_string()]++;
    }
    // After 9 clients: tep-a holds 9 * 1/4 rounded (2 or 3), tep-b the rest.
    const int a_total = per_tep["2001:db8:ffff::a"] + 1;
    const int b_total = per_tep["2001:db8:ffff::b"];
    CHECK(a_total + b_total == 9);
    CHECK(b_total >= 6);
    CHECK(a_total >= 2);

    // tep-a dies (its session closes): its client is moved on its next create, same address.
    tep_a.close();
    io.restart();
    io.poll();
    const std::string status_target = "/teps";
    for (int i = 0; i < 100; ++i) {
      const auto teps = server.control(platform::Method::Get, status_target).body;
      if (!teps.at("teps").as_array()[0].at("alive").as_bool()) break;
      std::this_thread::sleep_for(20ms);
    }
    const auto moved = create(server, tsp::Transport::Tcp, client_ipv6(1));
    REQUIRE(moved);
    CHECK(moved->offer.server->ipv6() == core::Ipv6Address::parse("2001:db8:ffff::b").value());
    CHECK(offered_ipv4(*moved) == offered_ipv4(*first));
    tep_b.close();
  });
}

TEST_CASE("kill -9 during concurrent creates: every lease a client was told about survives",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.pool = R"(["198.51.100.0/24", "203.0.113.0/24"])";
    Server server{setup};

    constexpr unsigned kThreads = 6;
    constexpr unsigned kPerThread = 200;
    std::atomic<unsigned> granted{0};
    std::atomic<bool> killed{false};
    std::mutex mutex;
    std::map<core::Ipv6Address, core::Ipv4Address> told;  // 200 reached the client
    std::vector<std::thread> clients;
    for (unsigned t = 0; t < kThreads; ++t) {
      clients.emplace_back([&, t] {
        for (unsigned i = 0; i < kPerThread && !killed; ++i) {
          const auto me = client_ipv6(t * kPerThread + i);
          auto target = server.target(tsp::Transport::Tcp, "::1", me.to_string());
          auto c = create_config(tsp::Transport::Tcp, me);
          c.deadlines.reply = 3s;
          const auto r = tsp_net::create_tunnel_blocking(target, c, 5s);
          if (!r) continue;
          const auto a = r->offer.client->ipv4();
          if (!a) continue;
          std::lock_guard lock{mutex};
          told[me] = *a;
          ++granted;
        }
      });
    }
    // Kill it in the middle of the stream.
    for (int i = 0; i < 2000 && granted < 300; ++i) std::this_thread::sleep_for(5ms);
    const auto status = server.kill();
    killed = true;
    for (auto& c : clients) c.join();
    CHECK(status.signal == SIGKILL);
    REQUIRE(told.size() >= 300);

    server.start();
    const auto st = server.status();
    const auto total = st.at("leases").at("total").as_int64();
    CHECK(st.at("pool").at("used").as_int64() == total);
    CHECK(static_cast<std::size_t>(total) >= told.size());
    const auto page = server.control(platform::Method::Get, "/leases?limit=1000").body;
    std::set<std::string> addresses;
    std::map<std::string, std::string> by_ipv6;
    for (const auto& l : page.at("leases").as_array()) {
      CHECK(addresses.insert(std::string{l.at("ipv4").as_string()}).second);
      by_ipv6[std::string{l.at("ipv6").as_string()}] = l.at("ipv4").as_string();
    }
    for (const auto& [ipv6, ipv4] : told) {
      INFO(ipv6.to_string());
      REQUIRE(by_ipv6.count(ipv6.to_string()) == 1);
      CHECK(by_ipv6[ipv6.to_string()] == ipv4.to_string());
    }
  });
}

TEST_CASE("leases expire: reaped, no longer answered to queries, freed after the grace",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.lease = R"({"lifetime": 2, "max_lifetime": 60, "grace": 2})";
    setup.users = users_json({{"tep-a", "a-secret"}});
    setup.teps = R"([{"name": "tep-a", "ipv6": "2001:db8:ffff::a", "ipv4": "192.0.2.10",
                      "user": "tep-a", "heartbeat": false}])";
    Server server{setup};
    const Auth tep{{tsp::Mechanism::DigestMd5}, "tep-a", "a-secret"};
    const auto r = create(server, tsp::Transport::Udp, client_ipv6(1));
    REQUIRE(r);
    CHECK(r->offer.lifetime == 2u);
    const auto ipv4 = offered_ipv4(*r);

    // Expiry is a matter of time: watch the lease's state, bounded.
    auto state = [&]() -> std::string {
      const auto l = server.lease(ipv4);
      return l ? std::string{l->at("state").as_string()} : "gone";
    };
    std::string seen = state();
    for (int i = 0; i < 200 && seen == "active"; ++i) {
      std::this_thread::sleep_for(50ms);
      seen = state();
    }
    CHECK(seen != "active");
    const auto q =
        tsp_net::query_blocking(server.target(tsp::Transport::Tcp),
                                client_config(tsp::Transport::Tcp, tep), {ipv4}, kDeadline);
    REQUIRE(q);
    CHECK(q->front().status.code == 501);

    for (int i = 0; i < 200 && seen != "gone"; ++i) {
      std::this_thread::sleep_for(50ms);
      seen = state();
    }
    CHECK(seen == "gone");
    CHECK(server.status().at("pool").at("used").as_int64() == 0);
  });
}

namespace {

// A raw TCP connection to 127.0.0.1:port (blocking connect), or -1.
int raw_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF or error, bounded by `timeout`; true when the peer closed the connection.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  timeval tv{.tv_sec = static_cast<time_t>(timeout.count() / 1000),
             .tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[512];
  for (int i = 0; i < 64; ++i) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
  return false;
}

}  // namespace

TEST_CASE("hostile clients: idle connections, slowloris, garbage, oversized messages",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    // 1,000 idle connections need more descriptors than the default soft limit, here and in
    // the server (which raises its own limit at start as well).
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 8192);
    ::setrlimit(RLIMIT_NOFILE, &nofile);

    ServerSetup setup;
    setup.limits = R"({"max_connections": 4096, "max_connections_per_source": 2048,
                       "new_sessions_per_second": 100, "new_sessions_burst": 1500})";
    Server server{setup};
    auto well_behaved = [&](unsigned n) {
      for (const auto transport : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
        const auto r = create(server, transport, client_ipv6(n));
        REQUIRE(r);
      }
    };

    std::vector<int> idle;
    for (int i = 0; i < 1000; ++i) {
      const int fd = raw_connect(server.port());
      if (fd >= 0) idle.push_back(fd);
    }
    CHECK(idle.size() == 1000);
    well_behaved(1);

    // Slowloris: half a line, a byte at a time, on 50 connections.
    std::vector<int> slow;
    for (int i = 0; i < 50; ++i) {
      const int fd = raw_connect(server.port());
      REQUIRE(fd >= 0);
      (void)::write(fd, "VERSION=2", 9);
      slow.push_back(fd);
    }
    for (const int fd : slow) (void)::write(fd, ".", 1);
    well_behaved(2);

    // Garbage datagrams.
    const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(udp >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(server.port());
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::uint32_t x = 12345;
    for (int i = 0; i < 2000; ++i) {
      std::array<std::uint8_t, 64> junk{};
      for (auto& b : junk) {
        x = x * 1103515245u + 12345u;
        b = static_cast<std::uint8_t>(x >> 24);
      }
      const auto len = static_cast<std::size_t>(1 + i % 64);
      (void)::sendto(udp, junk.data(), len, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    }
    ::close(udp);
    well_behaved(3);

    // Oversized: a line far past the framer's limit is refused with a close.
    const int big = raw_connect(server.port());
    REQUIRE(big >= 0);
    const std::string huge(64 * 1024, 'A');
    (void)::write(big, huge.data(), huge.size());
    CHECK(closed_by_peer(big, 10s));
    ::close(big);
    // And a Content-length far past the limit after a valid handshake start.
    const int length = raw_connect(server.port());
    REQUIRE(length >= 0);
    const std::string hello = "VERSION=2.0.2\r\n";
    (void)::write(length, hello.data(), hello.size());
    const std::string bogus = "AUTHENTICATE ANONYMOUS\r\nContent-length: 999999999\r\n";
    (void)::write(length, bogus.data(), bogus.size());
    CHECK(closed_by_peer(length, 10s));
    ::close(length);
    well_behaved(4);

    const auto metrics = server.control(platform::Method::Get, "/metrics");
    REQUIRE(metrics.text);
    CHECK(metrics.text->find("tsp_datagrams_dropped_total") != std::string::npos);
    for (const int fd : idle) ::close(fd);
    for (const int fd : slow) ::close(fd);
  });
}

TEST_CASE("TEP heartbeats: withdrawn mappings after delete and release - refused for non-TEPs",
          "[dstm-server]") {
  ClientLab lab;
  lab.run([] {
    ServerSetup setup;
    setup.users = users_json({{"tep-a", "a-secret"}, {"alice", "x-secret"}});
    setup.teps = R"([{"name": "tep-a", "ipv6": "2001:db8:ffff::a", "ipv4": "192.0.2.10",
                      "user": "tep-a"}])";
    Server server{setup};
    boost::asio::io_context io;
    auto tep =
        run_on(io, tsp_net::QuerySession::open(
                       server.target(tsp::Transport::Tcp),
                       client_config(tsp::Transport::Tcp,
                                     Auth{{tsp::Mechanism::DigestMd5}, "tep-a", "a-secret"})));
    REQUIRE(tep);
    const auto first = run_on(io, tep->heartbeat());
    REQUIRE(first);
    CHECK(first->status.code == 200);
    CHECK(first->interval == 10u);
    CHECK(first->withdrawn.empty());

    const auto a = create(server, tsp::Transport::Tcp, client_ipv6(1));
    const auto b = create(server, tsp::Transport::Udp, client_ipv6(2));
    REQUIRE(a);
    REQUIRE(b);
    // The client deletes its tunnel; the operator releases the other one.
    auto target = server.target(tsp::Transport::Tcp, "::1", client_ipv6(1).to_string());
    REQUIRE(
        tsp_net::delete_tunnel_blocking(target, client_config(tsp::Transport::Tcp, {}), kDeadline));
    const auto released =
        server.control(platform::Method::Post,
                       "/leases/" + offered_ipv4(*b).to_string() + "/release", json::object{});
    CHECK(released.status == 200);

    const auto beat = run_on(io, tep->heartbeat());
    REQUIRE(beat);
    CHECK(beat->status.code == 200);
    CHECK_FALSE(beat->flush);
    CHECK(beat->withdrawn == std::vector<core::Ipv4Address>{offered_ipv4(*a), offered_ipv4(*b)});
    const auto empty = run_on(io, tep->heartbeat());
    REQUIRE(empty);
    CHECK(empty->withdrawn.empty());

    // A user that is not a TEP is refused, and so are its queries.
    auto alice = run_on(io, tsp_net::QuerySession::open(
                                server.target(tsp::Transport::Tcp),
                                client_config(tsp::Transport::Tcp,
                                              Auth{{tsp::Mechanism::Plain}, "alice", "x-secret"})));
    REQUIRE(alice);
    const auto refused = run_on(io, alice->heartbeat());
    REQUIRE(refused);
    CHECK(refused->status.code == 300);
    alice->close();
    tep->close();
    io.restart();
    io.poll();
  });
}

TEST_CASE("check-config: a valid document passes, a broken one exits 78 naming every path",
          "[dstm-server]") {
  test::TempDir dir;
  auto check = [&](std::string_view doc) {
    const auto file = dir.write("check.json", doc);
    test::DaemonProcess p{{DSTM_SERVER_BIN, "--config", file.string(), "--check-config"},
                          dir / "check.log"};
    const auto status = p.wait(std::chrono::milliseconds{kDeadline});
    return std::pair{status.code.value_or(-1), p.log()};
  };
  const auto [ok, ok_log] = check(R"({"dstm_server": {
      "pool": {"prefixes": ["198.51.100.0/24"]},
      "teps": [{"name": "t", "ipv6": "2001:db8::1", "ipv4": "192.0.2.1", "heartbeat": false}],
      "client": {"dns_server": "2001:db8::53"}}})");
  CHECK(ok == 0);
  const auto [bad, log] = check(R"({"dstm_server": {
      "pool": {"prefixes": ["198.51.100.0/24", "198.51.100.128/25"]},
      "teps": [{"name": "t", "ipv6": "2001:db8::1", "ipv4": "198.51.100.9"}],
      "client": {"dns_server": "2001:db8::53"}, "colour": "red"}})");
  CHECK(bad == 78);
  INFO(log);
  CHECK(log.find("/dstm_server/pool/prefixes/1") != std::string::npos);
  CHECK(log.find("/dstm_server/teps/0/ipv4") != std::string::npos);
  CHECK(log.find("/dstm_server/colour") != std::string::npos);
}
