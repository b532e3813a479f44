// The anytun sync emitter on a loopback TCP socket, driven by its io_context in the test's
// thread: what an anytun node is sent (dump, peer and sequence updates), and what happens to
// what it sends (counted, never applied) and to garbage (closed, counted by reason).
#include "anytun_sync.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "satp/sync.hpp"

namespace {
using namespace std::chrono_literals;
namespace sync = satp::sync;
using relay_daemon::AnytunSync;

constexpr const char* kPassphrase = "anytun-sync-test";

relay::ConnectionSpec spec(std::uint16_t mux, std::vector<relay::Prefix> routes) {
  relay::ConnectionSpec s;
  s.mux = mux;
  s.key = satp::master_key_from_passphrase(kPassphrase, s.settings.kd_prf);
  s.salt = satp::master_salt_from_passphrase(kPassphrase);
  s.window = 1024;
  s.routes = std::move(routes);
  return s;
}

relay::Prefix v4(const char* text) {
  return core::Ipv4Prefix::parse(text).value();
}

// A node's side: a blocking socket read without blocking while the server's io_context runs.
class Node {
 public:
  Node(boost::asio::io_context& io, const relay::Endpoint& server) : io_{io} {
    fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(server.port);
    std::copy(server.address.bytes().begin(), server.address.bytes().end(), to.sin6_addr.s6_addr);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  }
  ~Node() {
    if (fd_ >= 0) ::close(fd_);
  }

  // The next record, running the server meanwhile (bounded).
  sync::Record next() {
    const auto until = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      auto archive = framer_.next();
      REQUIRE(archive);
      if (*archive) {
        auto record = sync::parse(**archive);
        REQUIRE(record);
        return *record;
      }
      REQUIRE(std::chrono::steady_clock::now() < until);
      pump();
    }
  }
  // Whether the server closed the connection (bounded).
  bool closed() {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until)
      if (pump()) return true;
    return false;
  }
  void send(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }

 private:
  // Runs the server a little and reads what arrived; true at end of stream or reset.
  bool pump() {
    io_.run_for(2ms);
    std::array<std::byte, 65536> buf{};
    const auto n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
    if (n > 0) REQUIRE(framer_.feed(core::Bytes{buf.data(), static_cast<std::size_t>(n)}));
    return false;
  }

  boost::asio::io_context& io_;
  int fd_ = -1;
  sync::Framer framer_;
};

struct Fixture {
  boost::asio::io_context io;
  relay::Engine engine{
      relay::EngineOptions{.sender_id = 1, .nat = {}, .default_mux = {}, .seed = 0}};
  std::unique_ptr<AnytunSync> sync;

  explicit Fixture(AnytunSync::Limits limits = {}) {
    REQUIRE(engine.add(spec(1, {v4("192.0.2.128/25"), v4("198.51.100.0/24")}), 1000));
    auto started = AnytunSync::start(
        io, relay_daemon::AnytunSyncConfig{.listen = *relay::Endpoint::parse("[::1]:0")}, engine,
        limits);
    REQUIRE(started);
    sync = std::move(*started);
  }
  std::uint64_t status(const char* key) {
    return sync->status().at(key).to_number<std::uint64_t>();
  }
  // A counter once the server's pending handlers ran: a record can reach the node before the
  // write's completion, which is where it is counted (bounded).
  std::uint64_t status_when(const char* key, std::uint64_t expected) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (status(key) != expected && std::chrono::steady_clock::now() < until) io.run_for(2ms);
    return status(key);
  }
  std::uint64_t error(const char* reason) {
    const auto status = sync->status();
    const auto& e = status.at("errors").as_object();
    return e.contains(reason) ? e.at(reason).to_number<std::uint64_t>() : 0;
  }
};

}  // namespace

TEST_CASE("anytun sync: a node gets every connection then its routes split as anytun takes them",
          "[relay_daemon][anytun_sync]") {
  Fixture f;
  Node node{f.io, f.sync->local()};
  const auto connection = std::get<sync::Connection>(node.next());
  CHECK(connection.mux == 1);
  CHECK(connection.role == satp::Role::Left);
  CHECK(connection.master_key == std::vector<std::uint8_t>(f.engine.spec(1)->key.view().begin(),
                                                           f.engine.spec(1)->key.view().end()));
  CHECK(connection.master_salt == f.engine.spec(1)->salt);
  CHECK(connection.window_size == 1024);
  CHECK(connection.seq_nr == 1000);
  CHECK_FALSE(connection.has_remote());  // not known yet: anytun keeps its own
  // 192.0.2.128/25 would hang anytun 0.3.8: it arrives as the 128 /32s it covers.
  for (unsigned i = 128; i < 256; ++i) {
    const auto route = std::get<sync::Route>(node.next());
    CHECK(route.mux == 1);
    CHECK(route.prefix == v4(fmt::format("192.0.2.{}/32", i).c_str()));
  }
  CHECK(std::get<sync::Route>(node.next()).prefix == v4("198.51.100.0/24"));
  CHECK(f.status_when("records_out", 1 + 128 + 1) == 1 + 128 + 1);
}

TEST_CASE("anytun sync: a moved peer is pushed and every later record moves the sequence ahead",
          "[relay_daemon][anytun_sync]") {
  Fixture f;
  Node node{f.io, f.sync->local()};
  CHECK(std::get<sync::Connection>(node.next()).seq_nr == 1000);  // our own counter, first
  for (int i = 0; i < 129; ++i) (void)node.next();

  // Our counter moving is not pushed (anytun would take it as its own and go back): the next
  // record is the one of the peer move, with room for what the node sealed since the first.
  f.engine.raise_tx_seq(1, 5000);
  f.sync->tick();
  const auto peer = *relay::Endpoint::parse("[2001:db8:1::2]:4444");
  f.engine.set_peer(1, relay::Peer{peer, 0});
  f.sync->peer_changed(1);
  const auto moved = std::get<sync::Connection>(node.next());
  CHECK(moved.remote_host == sync::RemoteAddress{peer.address});
  CHECK(moved.remote_port == 4444);
  CHECK(moved.seq_nr == 1000 + (1u << 24));

  const auto v4_peer = relay::Endpoint::v4(core::Ipv4Address{0xC0000205}, 5555);  // 192.0.2.5
  f.engine.set_peer(1, relay::Peer{v4_peer, 0});
  f.sync->peer_changed(1);
  const auto again = std::get<sync::Connection>(node.next());
  CHECK(again.remote_host == sync::RemoteAddress{core::Ipv4Address{0xC0000205}});
  CHECK(again.seq_nr == 1000 + 2 * (1u << 24));

  // Our own counter wins when it is further ahead.
  f.engine.raise_tx_seq(1, 0x40000000);
  f.sync->peer_changed(1);
  CHECK(std::get<sync::Connection>(node.next()).seq_nr == 0x40000000);

  // A connection changed here (its routes) is announced again, routes included, and its
  // sequence number still moves ahead, also when it was re-added with a lower counter.
  f.engine.remove(1);
  REQUIRE(f.engine.add(spec(1, {v4("203.0.113.0/24")}), 10));
  f.sync->tick();
  CHECK(std::get<sync::Connection>(node.next()).seq_nr == 0x40000000 + (1u << 24));
  CHECK(std::get<sync::Route>(node.next()).prefix == v4("203.0.113.0/24"));
}

TEST_CASE("anytun sync: what a node sends is counted and not applied and garbage closes it",
          "[relay_daemon][anytun_sync]") {
  Fixture f;
  sync::Connection forged;
  forged.mux = 77;
  forged.master_key.assign(16, 0x42);
  const auto record = sync::encode(forged);
  REQUIRE(record);

  Node reader{f.io, f.sync->local()};
  (void)reader.next();
  reader.send(*record);

  const std::vector<std::pair<std::string, const char*>> garbage{
      {"\xde\xad\xbe\xef not a header", "bad_frame"},
      {"99999 " + std::string(100, 'a'), "bad_frame"},  // longer than a record may be
      {"00011 hello world", "bad_archive"},
      {"00004 22 s", "bad_archive"},
  };
  for (const auto& [bytes, reason] : garbage) {
    INFO(reason);
    const auto before = f.error(reason);
    Node node{f.io, f.sync->local()};
    node.send(bytes);
    CHECK(node.closed());
    CHECK(f.error(reason) == before + 1);
  }
  CHECK(f.status("records_in") == 1);
  CHECK_FALSE(f.engine.contains(77));
  // The well-behaved connection is still served.
  f.engine.set_peer(1, relay::Peer{*relay::Endpoint::parse("[2001:db8:1::2]:4444"), 0});
  f.sync->peer_changed(1);
  for (;;) {
    const auto next = reader.next();
    if (const auto* c = std::get_if<sync::Connection>(&next)) {
      CHECK(c->remote_port == 4444);
      break;
    }
  }
  CHECK(f.status("connections") == 1);
}

TEST_CASE("anytun sync: connections beyond the bound are closed and counted",
          "[relay_daemon][anytun_sync]") {
  Fixture f{AnytunSync::Limits{.max_nodes = 2}};
  Node a{f.io, f.sync->local()};
  Node b{f.io, f.sync->local()};
  (void)a.next();
  (void)b.next();
  Node c{f.io, f.sync->local()};
  CHECK(c.closed());
  CHECK(f.error("too_many_connections") == 1);
  CHECK(f.status("connections") == 2);
}
