// Tests for the Asio TSP client drivers against a real TSP server on loopback: a small server in
// this file runs tsp::ServerSession over TCP and UDP on its own thread and answers leases and
// mappings with documentation addresses. Port 0, readiness awaited, bounded waits, no sleeps.
#include "tsp_net/client.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "tsp/error.hpp"
#include "tsp/sasl.hpp"
#include "tsp/server_session.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using tsp::Mechanism;
using tsp::Transport;
using tsp_net::Target;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Guards against a hang in a broken build only; a passing test never waits for it.
// Note: co_await is never written inside a CHECK/REQUIRE (GCC 12 coroutines and Catch's
// expression expansion do not mix).
constexpr auto kSafety = 20s;

core::Ipv4Address v4(const char* s) {
  return core::Ipv4Address::parse(s).value();
}
core::Ipv6Address v6(const char* s) {
  return core::Ipv6Address::parse(s).value();
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// ---- the test server -------------------------------------------------------------------------

struct ServerOptions {
  std::vector<Mechanism> mechanisms{Mechanism::DigestMd5, Mechanism::Plain, Mechanism::Anonymous};
  bool require_source_address = true;
  std::optional<tsp::Status> lease_failure;  // answer every create with this status
  std::size_t drop_at_lookup = 0;  // > 0: TCP: close the connection instead of this lookup's answer
  bool drop_after_confirm = false;  // TCP: close the connection once the offer is accepted
  bool silent = false;              // accept and read, never answer
};

ServerOptions with(const std::function<void(ServerOptions&)>& set) {
  ServerOptions o;
  set(o);
  return o;
}

// Mappings served: 198.51.100.N -> 2001:db8::N for even N; odd N are not leased.
std::optional<tsp::Mapping> mapping_of(core::Ipv4Address a) {
  const auto n = a.to_uint() & 0xff;
  if ((a.to_uint() & 0xffffff00u) != 0xc6336400u || n % 2 != 0) return std::nullopt;
  auto bytes = v6("2001:db8::").bytes();
  bytes[15] = static_cast<std::uint8_t>(n);
  return tsp::Mapping{a, core::Ipv6Address{bytes}, 1200};
}

struct Seen {
  std::size_t sessions = 0;
  std::size_t leases = 0;
  std::size_t confirms = 0;
  std::size_t deletes = 0;  // ReleaseLease{Deleted}
  std::size_t lookups = 0;
  std::size_t heartbeats = 0;
  std::size_t max_pending = 0;  // most unanswered queries one session held at once
  std::vector<tsp::PeerAddress> peers;
};

class TestServer {
 public:
  TestServer(ServerOptions options, const std::string& address)
      : options_{std::move(options)},
        acceptor_{io_, asio::ip::tcp::endpoint{asio::ip::make_address(address), 0}},
        udp_{io_, asio::ip::udp::endpoint{asio::ip::make_address(address), 0}},
        address_{address} {
    auto c = std::make_shared<tsp::ServerConfig>();
    c->sasl.mechanisms = options_.mechanisms;
    c->sasl.verifiers = [](std::string_view user) -> std::optional<tsp::Md5Digest> {
      if (user == "alice") return tsp::digest_verifier("alice", "dstm", "secret");
      return std::nullopt;
    };
    c->require_source_address = options_.require_source_address;
    c->deadlines.digest_pause = 1ms;
    config_ = c;
    asio::co_spawn(io_, accept_loop(), asio::detached);
    asio::co_spawn(io_, udp_loop(), asio::detached);
    thread_ = std::thread{[this] { io_.run(); }};
  }
  ~TestServer() {
    asio::post(io_, [this] { io_.stop(); });
    thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  Target target(Transport t) const {
    return Target{.address = address_,
                  .port = t == Transport::Tcp ? acceptor_.local_endpoint().port()
                                              : udp_.local_endpoint().port(),
                  .transport = t,
                  .source_address = {},
                  .freebind = false};
  }

  // Waits (bounded) until pred(seen) holds; returns the last snapshot.
  Seen wait_until(const std::function<bool(const Seen&)>& pred) {
    std::unique_lock lock{mutex_};
    changed_.wait_for(lock, 5s, [&] { return pred(seen_); });
    return seen_;
  }
  Seen seen() {
    std::lock_guard lock{mutex_};
    return seen_;
  }

 private:
  // One session, over a TCP connection or for one UDP peer.
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(TestServer& s, std::shared_ptr<const tsp::ServerConfig> config, Transport t,
         tsp::PeerAddress peer)
        : server{s},
          session{std::move(config), t, peer},
          timers{asio::steady_timer{s.io_}, asio::steady_timer{s.io_}, asio::steady_timer{s.io_}} {}
    TestServer& server;
    tsp::ServerSession session;
    std::optional<asio::ip::tcp::socket> tcp;
    asio::ip::udp::endpoint udp_peer;
    std::array<asio::steady_timer, 3> timers;
    std::array<std::uint64_t, 3> seq{};
    bool closed = false;
  };

  static std::size_t index(tsp::TimerKind k) { return static_cast<std::size_t>(k); }

  static tsp::PeerAddress peer_of(const asio::ip::address& a) {
    if (a.is_v4()) return core::Ipv4Address{a.to_v4().to_uint()};
    return core::Ipv6Address{a.to_v6().to_bytes()};
  }

  void note(const std::function<void(Seen&)>& f) {
    {
      std::lock_guard lock{mutex_};
      f(seen_);
    }
    changed_.notify_all();
  }

  void drop(Conn& c) {
    c.closed = true;
    boost::system::error_code ignored;
    if (c.tcp) c.tcp->close(ignored);
    for (auto& t : c.timers) t.cancel();
  }

  // Feeds one event and every backend answer it leads to; answers are immediate.
  void feed(const std::shared_ptr<Conn>& c, tsp::ServerEvent first) {
    std::deque<tsp::ServerEvent> events{std::move(first)};
    while (!events.empty() && !c->closed) {
      auto actions = c->session.handle(events.front());
      events.pop_front();
      const auto pending = c->session.pending_queries();
      note([&](Seen& s) { s.max_pending = std::max(s.max_pending, pending); });
      for (auto& action : actions) {
        if (c->closed) return;
        std::visit(
            Overloaded{
                [&](const tsp::Send& s) {
                  boost::system::error_code ec;
                  if (c->tcp)
                    asio::write(*c->tcp, asio::buffer(s.bytes), ec);
                  else
                    udp_.send_to(asio::buffer(s.bytes), c->udp_peer, 0, ec);
                },
                [&](const tsp::ArmTimer& a) {
                  auto& t = c->timers[index(a.timer)];
                  const auto seq = ++c->seq[index(a.timer)];
                  t.expires_after(a.after);
                  t.async_wait([this, c, a, seq](boost::system::error_code ec) {
                    if (ec || c->closed || c->seq[index(a.timer)] != seq) return;
                    feed(c, tsp::TimerExpired{a.timer, a.generation});
                  });
                },
                [&](const tsp::CancelTimer& a) {
                  ++c->seq[index(a.timer)];
                  c->timers[index(a.timer)].cancel();
                },
                [&](const tsp::AllocateLease&) {
                  std::size_t n = 0;
                  note([&](Seen& s) { n = ++s.leases; });
                  if (options_.lease_failure) {
                    events.push_back(tsp::LeaseFailed{*options_.lease_failure, {}});
                    return;
                  }
                  events.push_back(tsp::LeaseAllocated{tsp::LeaseOffer{
                      .client_ipv4 =
                          core::Ipv4Address{0xc6336400u + static_cast<std::uint32_t>(n % 200)},
                      .client_ipv6 = std::nullopt,
                      .server_ipv4 = v4("192.0.2.1"),
                      .server_ipv6 = v6("2001:db8::1"),
                      .lifetime = 3600,
                      .dns_server = v6("2001:db8::53"),
                      .keepalive = std::nullopt,
                      .prefix = std::nullopt}});
                },
                [&](const tsp::ConfirmLease&) {
                  note([](Seen& s) { ++s.confirms; });
                  if (options_.drop_after_confirm && c->tcp) drop(*c);
                },
                [&](const tsp::ReleaseLease& r) {
                  if (r.reason == tsp::ReleaseReason::Deleted) note([](Seen& s) { ++s.deletes; });
                },
                [&](const tsp::LookupMapping& l) {
                  std::size_t n = 0;
                  note([&](Seen& s) { n = ++s.lookups; });
                  if (options_.drop_at_lookup != 0 && n == options_.drop_at_lookup && c->tcp) {
                    drop(*c);
                    return;
                  }
                  if (auto m = mapping_of(l.ipv4))
                    events.push_back(tsp::MappingFound{l.query_id, *m});
                  else
                    events.push_back(tsp::MappingNotFound{l.query_id});
                },
                [&](const tsp::Heartbeat& h) {
                  note([](Seen& s) { ++s.heartbeats; });
                  events.push_back(tsp::HeartbeatAnswered{
                      h.query_id, tsp::Status::Success, 30, {v4("198.51.100.9")}, false});
                },
                [&](const tsp::Close&) {
                  // TCP closes; a UDP session lingers to answer retransmissions.
                  if (c->tcp) drop(*c);
                },
            },
            action);
      }
    }
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
      if (ec) co_return;
      const auto peer = peer_of(socket.remote_endpoint(ec).address());
      note([&](Seen& s) {
        ++s.sessions;
        s.peers.push_back(peer);
      });
      auto c = std::make_shared<Conn>(*this, config_, Transport::Tcp, peer);
      c->tcp.emplace(std::move(socket));
      asio::co_spawn(io_, serve_tcp(c), asio::detached);
    }
  }

  asio::awaitable<void> serve_tcp(std::shared_ptr<Conn> c) {
    if (!options_.silent) feed(c, tsp::Start{});
    std::array<std::byte, 4096> buffer{};
    while (!c->closed) {
      auto [ec, n] = co_await c->tcp->async_read_some(asio::buffer(buffer), kNoThrow);
      if (c->closed) co_return;
      if (n > 0 && !options_.silent) feed(c, tsp::BytesReceived{core::Bytes{buffer.data(), n}});
      if (ec) {
        if (!options_.silent) feed(c, tsp::PeerClosed{});
        drop(*c);
        co_return;
      }
    }
  }

  asio::awaitable<void> udp_loop() {
    std::vector<std::byte> buffer(65536);
    std::map<asio::ip::udp::endpoint, std::shared_ptr<Conn>> peers;
    for (;;) {
      asio::ip::udp::endpoint from;
      auto [ec, n] = co_await udp_.async_receive_from(asio::buffer(buffer), from, kNoThrow);
      if (ec == asio::error::operation_aborted) co_return;
      if (ec || options_.silent) continue;
      auto& c = peers[from];
      if (!c) {
        const auto peer = peer_of(from.address());
        note([&](Seen& s) {
          ++s.sessions;
          s.peers.push_back(peer);
        });
        c = std::make_shared<Conn>(*this, config_, Transport::Udp, peer);
        c->udp_peer = from;
        feed(c, tsp::Start{});
      }
      feed(c, tsp::DatagramReceived{core::Bytes{buffer.data(), n}});
    }
  }

  ServerOptions options_;
  std::shared_ptr<const tsp::ServerConfig> config_;
  asio::io_context io_{1};
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::udp::socket udp_;
  std::string address_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Seen seen_;
};

// ---- client helpers --------------------------------------------------------------------------

tsp::ClientConfig client_config(Mechanism m, Transport t) {
  tsp::ClientConfig c;
  c.transport = t;
  c.mechanisms = {m};
  c.username = "alice";
  c.password = "secret";
  c.server_name = "dstm.example";
  c.deadlines.reply = 5s;
  c.deadlines.rto_initial = 200ms;
  return c;
}

tsp::ClientConfig create_config(Mechanism m, Transport t,
                                std::optional<core::Ipv6Address> client_ipv6 = std::nullopt) {
  auto c = client_config(m, t);
  c.request = tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6, 3600);
  // An empty <client> lets the server take the transport's source address.
  c.request->client = tsp::Endpoint{};
  if (client_ipv6) c.request->client->addresses.push_back(tsp::Address{*client_ipv6, std::nullopt});
  return c;
}

// Runs a test coroutine on a fresh io_context on this thread; rethrows its exception.
void run_async(std::function<asio::awaitable<void>()> body) {
  asio::io_context io{1};
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await body();
        done = true;
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run_for(kSafety);
  if (failure) std::rethrow_exception(failure);
  REQUIRE(done);
}

// A port nothing listens on (TCP and UDP): bound, read back, closed.
std::uint16_t closed_port(const std::string& address) {
  asio::io_context io;
  asio::ip::udp::socket s{io, asio::ip::udp::endpoint{asio::ip::make_address(address), 0}};
  return s.local_endpoint().port();
}

const char* name(Transport t) {
  return t == Transport::Tcp ? "tcp" : "udp";
}

}  // namespace

// ---- tunnels ---------------------------------------------------------------------------------

TEST_CASE("create: every transport, family and mechanism gets the offer and accepts it",
          "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  const auto family = GENERATE(4, 6);
  const auto mechanism = GENERATE(Mechanism::Anonymous, Mechanism::Plain, Mechanism::DigestMd5);
  CAPTURE(name(transport), family, tsp::mechanism_name(mechanism));

  // Over IPv4 a v4v6 create cannot come from its IPv6: the server trusts the request then.
  TestServer server{with([&](ServerOptions& o) { o.require_source_address = family == 6; }),
                    family == 4 ? "127.0.0.1" : "::1"};
  auto config = family == 4 ? create_config(mechanism, transport, v6("2001:db8::2"))
                            : create_config(mechanism, transport);

  const auto r = tsp_net::create_tunnel_blocking(server.target(transport), config, 10s);
  REQUIRE(r);
  CHECK(r->mechanism == mechanism);
  REQUIRE(r->offer.client);
  REQUIRE(r->offer.server);
  CHECK(r->offer.client->ipv4() == v4("198.51.100.1"));
  CHECK(r->offer.server->ipv4() == v4("192.0.2.1"));
  CHECK(r->offer.server->ipv6() == v6("2001:db8::1"));
  CHECK(r->offer.lifetime == 3600u);
  CHECK(r->peer.port == server.target(transport).port);
  if (family == 6) {
    CHECK(r->peer.address == tsp::PeerAddress{v6("::1")});
    CHECK(r->offer.client->ipv6() == v6("::1"));  // the server took the source address
  } else {
    CHECK(r->local.address == tsp::PeerAddress{v4("127.0.0.1")});
  }
  // The accept went out before the close: the server confirmed the lease.
  CHECK(server.wait_until([](const Seen& s) { return s.confirms == 1; }).confirms == 1);
}

TEST_CASE("create: binds the source address it is given", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{with([](ServerOptions& o) { o.require_source_address = false; }), "127.0.0.1"};
  auto target = server.target(transport);
  target.source_address = "127.0.0.7";
  const auto r = tsp_net::create_tunnel_blocking(
      target, create_config(Mechanism::Anonymous, transport, v6("2001:db8::7")), 10s);
  REQUIRE(r);
  CHECK(r->local.address == tsp::PeerAddress{v4("127.0.0.7")});
  CHECK(server.seen().peers.at(0) == tsp::PeerAddress{v4("127.0.0.7")});
}

TEST_CASE("create: the server's error status is the error, with its status line", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{with([](ServerOptions& o) { o.lease_failure = tsp::Status::NoMoreTunnels; }),
                    "::1"};
  const auto r = tsp_net::create_tunnel_blocking(
      server.target(transport), create_config(Mechanism::Anonymous, transport), 10s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp::Errc::ErrorStatus);
  REQUIRE(r.error().status);
  CHECK(r.error().status->code == 301);
}

TEST_CASE("create: a wrong password fails with 300", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  const auto mechanism = GENERATE(Mechanism::Plain, Mechanism::DigestMd5);
  TestServer server{ServerOptions{}, "::1"};
  auto config = create_config(mechanism, transport);
  config.password = "wrong";
  const auto r = tsp_net::create_tunnel_blocking(server.target(transport), config, 10s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp::Errc::AuthenticationFailed);
  REQUIRE(r.error().status);
  CHECK(r.error().status->code == 300);
}

TEST_CASE("create: a mechanism the server does not offer fails before authenticating",
          "[tsp-net]") {
  TestServer server{with([](ServerOptions& o) { o.mechanisms = {Mechanism::DigestMd5}; }), "::1"};
  const auto r = tsp_net::create_tunnel_blocking(
      server.target(Transport::Tcp), create_config(Mechanism::Anonymous, Transport::Tcp), 10s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp::Errc::NoCommonMechanism);
}

TEST_CASE("tunnel session: delete on the open session releases the lease", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{ServerOptions{}, "::1"};
  run_async([&]() -> asio::awaitable<void> {
    auto session = co_await tsp_net::TunnelSession::open(
        server.target(transport), create_config(Mechanism::DigestMd5, transport));
    REQUIRE(session);
    CHECK(session->is_open());
    CHECK(session->result().offer.client->ipv4() == v4("198.51.100.1"));
    const auto deleted = co_await session->async_delete();
    CHECK(deleted);
    CHECK_FALSE(session->is_open());
  });
  CHECK(server.wait_until([](const Seen& s) { return s.deletes == 1; }).deletes == 1);
}

TEST_CASE("delete_tunnel: a new session releases the caller's lease", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{ServerOptions{}, "::1"};
  const auto r = tsp_net::delete_tunnel_blocking(server.target(transport),
                                                 client_config(Mechanism::Plain, transport), 10s);
  CHECK(r);
  CHECK(server.wait_until([](const Seen& s) { return s.deletes == 1; }).deletes == 1);
}

TEST_CASE("tunnel session: the server closing the connection ends it", "[tsp-net]") {
  TestServer server{with([](ServerOptions& o) { o.drop_after_confirm = true; }), "127.0.0.1"};
  run_async([&]() -> asio::awaitable<void> {
    auto target = server.target(Transport::Tcp);
    auto session = co_await tsp_net::TunnelSession::open(
        target, create_config(Mechanism::Anonymous, Transport::Tcp, v6("2001:db8::2")));
    // The source check is on: over IPv4 the create fails with 502.
    REQUIRE_FALSE(session);
    CHECK(session.error().status->code == 502);
  });
  TestServer trusting{with([](ServerOptions& o) {
                        o.require_source_address = false;
                        o.drop_after_confirm = true;
                      }),
                      "127.0.0.1"};
  run_async([&]() -> asio::awaitable<void> {
    auto session = co_await tsp_net::TunnelSession::open(
        trusting.target(Transport::Tcp),
        create_config(Mechanism::Anonymous, Transport::Tcp, v6("2001:db8::2")));
    REQUIRE(session);
    const auto reason = co_await session->wait_closed();
    CHECK(reason.code == tsp::Errc::PeerClosed);
    CHECK_FALSE(session->is_open());
  });
}

// ---- queries ---------------------------------------------------------------------------------

TEST_CASE("query session: 1000 concurrent queries on one session are all answered correctly",
          "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  const auto mechanism = GENERATE(Mechanism::Anonymous, Mechanism::DigestMd5);
  CAPTURE(name(transport), tsp::mechanism_name(mechanism));
  TestServer server{ServerOptions{}, "127.0.0.1"};
  // UDP answers one datagram at a time: fewer, to keep the test quick.
  const std::size_t count = transport == Transport::Tcp ? 1000 : 200;

  run_async([&]() -> asio::awaitable<void> {
    auto config = client_config(mechanism, transport);
    config.tep_ipv4 = v4("192.0.2.2");
    auto session = co_await tsp_net::QuerySession::open(server.target(transport), config);
    REQUIRE(session);
    CHECK(session->mechanism() == mechanism);

    const auto ex = co_await asio::this_coro::executor;
    std::vector<std::optional<tsp_net::Result<tsp_net::QueryAnswer>>> answers(count);
    std::size_t remaining = count;
    asio::steady_timer all_done{ex, asio::steady_timer::time_point::max()};
    for (std::size_t i = 0; i < count; ++i) {
      const core::Ipv4Address a{0xc6336400u + static_cast<std::uint32_t>(i % 256)};
      asio::co_spawn(
          ex,
          [&, i, q = session->query(a)]() mutable -> asio::awaitable<void> {
            answers[i].emplace(co_await std::move(q));
            if (--remaining == 0) all_done.cancel();
          },
          asio::detached);
    }
    CHECK(session->in_flight() == count);
    co_await all_done.async_wait(kNoThrow);
    REQUIRE(remaining == 0);

    std::size_t found = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const core::Ipv4Address a{0xc6336400u + static_cast<std::uint32_t>(i % 256)};
      REQUIRE(answers[i]);
      REQUIRE(*answers[i]);
      const auto& answer = **answers[i];
      CHECK(answer.ipv4 == a);
      CHECK(answer.mapping == mapping_of(a));
      CHECK(answer.status.code == (mapping_of(a) ? 200 : 501));
      found += answer.mapping ? 1u : 0u;
    }
    CHECK(found == count / 2);
    CHECK(session->in_flight() == 0);
  });
  const auto seen = server.seen();
  CHECK(seen.sessions == 1);
  CHECK(seen.lookups == count);
  if (transport == Transport::Tcp) {
    // Pipelined, within the window the server holds.
    CHECK(seen.max_pending > 1);
    CHECK(seen.max_pending <= 64);
  }
}

TEST_CASE("query session: heartbeats are answered in line with queries", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{ServerOptions{}, "::1"};
  run_async([&]() -> asio::awaitable<void> {
    auto session = co_await tsp_net::QuerySession::open(server.target(transport),
                                                        client_config(Mechanism::Plain, transport));
    REQUIRE(session);
    const auto ex = co_await asio::this_coro::executor;
    std::optional<tsp_net::Result<tsp_net::QueryAnswer>> query;
    asio::co_spawn(
        ex,
        [&, q = session->query(v4("198.51.100.4"))]() mutable -> asio::awaitable<void> {
          query.emplace(co_await std::move(q));
        },
        asio::detached);
    const auto beat = co_await session->heartbeat();
    REQUIRE(beat);
    CHECK(beat->status.code == 200);
    CHECK(beat->interval == 30u);
    CHECK(beat->withdrawn == std::vector<core::Ipv4Address>{v4("198.51.100.9")});
    CHECK_FALSE(beat->flush);
    // The query was sent first, so it was answered first.
    REQUIRE(query);
    REQUIRE(*query);
    CHECK((*query)->mapping == mapping_of(v4("198.51.100.4")));
  });
  CHECK(server.seen().heartbeats == 1);
}

TEST_CASE("query_blocking: answers in the order asked", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{ServerOptions{}, "::1"};
  const std::vector<core::Ipv4Address> asked{v4("198.51.100.2"), v4("198.51.100.3"),
                                             v4("198.51.100.200"), v4("192.0.2.99")};
  const auto r = tsp_net::query_blocking(
      server.target(transport), client_config(Mechanism::DigestMd5, transport), asked, 10s);
  REQUIRE(r);
  REQUIRE(r->size() == asked.size());
  for (std::size_t i = 0; i < asked.size(); ++i) {
    CHECK((*r)[i].ipv4 == asked[i]);
    CHECK((*r)[i].mapping == mapping_of(asked[i]));
  }
}

TEST_CASE("query session: the server closing mid-session fails every pending query", "[tsp-net]") {
  TestServer server{with([](ServerOptions& o) { o.drop_at_lookup = 10; }), "127.0.0.1"};
  constexpr std::size_t kCount = 100;
  run_async([&]() -> asio::awaitable<void> {
    auto session = co_await tsp_net::QuerySession::open(
        server.target(Transport::Tcp), client_config(Mechanism::Anonymous, Transport::Tcp));
    REQUIRE(session);
    const auto ex = co_await asio::this_coro::executor;
    std::vector<std::optional<tsp_net::Result<tsp_net::QueryAnswer>>> answers(kCount);
    std::size_t remaining = kCount;
    asio::steady_timer all_done{ex, asio::steady_timer::time_point::max()};
    for (std::size_t i = 0; i < kCount; ++i) {
      asio::co_spawn(
          ex,
          [&, i, q = session->query(v4("198.51.100.2"))]() mutable -> asio::awaitable<void> {
            answers[i].emplace(co_await std::move(q));
            if (--remaining == 0) all_done.cancel();
          },
          asio::detached);
    }
    co_await all_done.async_wait(kNoThrow);
    REQUIRE(remaining == 0);
    std::size_t answered = 0;
    for (const auto& a : answers) {
      REQUIRE(a);
      if (*a) {
        ++answered;
        continue;
      }
      const auto code = a->error().code;
      CHECK((code == tsp::Errc::PeerClosed || code == asio::error::connection_reset));
    }
    // Those answered before the drop (at most 9; how many depends on how reads were split).
    CHECK(answered < 10);
    CHECK_FALSE(session->is_open());
    // Later calls fail at once with the same error.
    const auto late = co_await session->query(v4("198.51.100.2"));
    CHECK_FALSE(late);
  });
}

// ---- deadlines and connection errors ---------------------------------------------------------

TEST_CASE("deadlines: a server that never answers ends the session with Timeout", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{with([](ServerOptions& o) { o.silent = true; }), "127.0.0.1"};
  auto config = create_config(Mechanism::Anonymous, transport);
  config.deadlines.reply = 100ms;
  config.deadlines.rto_initial = 20ms;
  config.deadlines.tries_unheard = 3;
  const auto start = std::chrono::steady_clock::now();
  const auto r = tsp_net::create_tunnel_blocking(server.target(transport), config, 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp::Errc::Timeout);
  CHECK(took < 5s);
}

TEST_CASE("deadlines: the blocking call's own deadline ends a slow session", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  TestServer server{with([](ServerOptions& o) { o.silent = true; }), "::1"};
  auto config = client_config(Mechanism::Anonymous, transport);
  config.deadlines.reply = 60s;
  config.deadlines.rto_initial = 30s;
  const auto start = std::chrono::steady_clock::now();
  const auto r =
      tsp_net::query_blocking(server.target(transport), config, {v4("198.51.100.2")}, 200ms);
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp_net::Errc::Deadline);
  CHECK(took < 5s);
}

TEST_CASE("connection errors: nobody listening is connection_refused", "[tsp-net]") {
  const auto transport = GENERATE(Transport::Tcp, Transport::Udp);
  const auto address = GENERATE(std::string{"127.0.0.1"}, std::string{"::1"});
  const Target target{.address = address,
                      .port = closed_port(address),
                      .transport = transport,
                      .source_address = {},
                      .freebind = false};
  const auto r =
      tsp_net::create_tunnel_blocking(target, create_config(Mechanism::Anonymous, transport), 10s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == asio::error::connection_refused);
}

TEST_CASE("bad input: names, mixed families and misplaced requests are refused", "[tsp-net]") {
  Target target{.address = "dstm.example",
                .port = 3653,
                .transport = Transport::Tcp,
                .source_address = {},
                .freebind = false};
  auto r = tsp_net::create_tunnel_blocking(target,
                                           create_config(Mechanism::Anonymous, Transport::Tcp), 1s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp_net::Errc::BadTarget);

  target.address = "::1";
  target.source_address = "127.0.0.1";
  r = tsp_net::create_tunnel_blocking(target, create_config(Mechanism::Anonymous, Transport::Tcp),
                                      1s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp_net::Errc::BadTarget);

  target.source_address.clear();
  r = tsp_net::create_tunnel_blocking(target, client_config(Mechanism::Anonymous, Transport::Tcp),
                                      1s);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == tsp_net::Errc::BadConfig);
  const auto q = tsp_net::query_blocking(
      target, create_config(Mechanism::Anonymous, Transport::Tcp), {v4("198.51.100.2")}, 1s);
  REQUIRE_FALSE(q);
  CHECK(q.error().code == tsp_net::Errc::BadConfig);
}

TEST_CASE("error: text names the layer and the server's status", "[tsp-net]") {
  const tsp_net::Error e{tsp::Errc::ErrorStatus, tsp::StatusLine{301, "No more tunnels available"}};
  CHECK(e.message().find("301 No more tunnels available") != std::string::npos);
  CHECK(tsp_net::Error{tsp_net::Errc::Deadline}.message() == "tsp_net: deadline passed");
  CHECK_THROWS_AS(tsp_net::Result<int>{e}.value(), boost::system::system_error);
}
