// satp-relay feeding a Debian anytun 0.3.8 node with anytun's own sync stream (root): issue 8's
// test 5, second part, and garbage on that sync port.
//
//            c (our client, 198.51.100.10)
//            | 2001:db8:1::/64
//            x (router: the anycast /128 goes to r1, then to r2)
//    2001:db8:21::/64   2001:db8:22::/64
//          r1                r2          both hold the anycast 2001:db8:a::1 on lo
//   satp-relay, id 1    Debian anytun, -s 2, -M <r1>:4447, no connection of its own
//    192.0.2.0/30       192.0.2.4/30
//            s (server 203.0.113.10; its route back to 198.51.100.0/24 goes to r1, then r2)
//
// r2 knows the client only from r1's sync stream: its key, role, window and peer endpoint, and
// its route 198.51.100.10/32, by which anytun (routing on: it has -M and a TUN) seals what its
// kernel forwards to 198.51.100.0/24 toward the client. Mid-transfer the routes move to r2, and
// the checked transfer completes through it, with no new handshake. Then hostile streams on the
// sync port are closed and counted, and r1 keeps serving.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "relay_lab.hpp"
#include "satp/sync.hpp"

using namespace relay_lab;

namespace {

constexpr const char* kAnycast = "2001:db8:a::1";
constexpr const char* kSyncAddress = "2001:db8:21::2";  // r1's unicast address
constexpr int kSyncPort = 4447;
constexpr unsigned kFailoverBytes = 32 * 1024 * 1024;
constexpr std::uint64_t kMoveAfter = 8 * 1024 * 1024;  // r1's received bytes before the move

constexpr const char* kTopology =
    "netns c\nnetns x\nnetns r1\nnetns r2\nnetns s\n"
    // s sees the client's packets from r1 and from r2 while the routes move.
    "sysctl s net.ipv4.conf.all.rp_filter=0\nsysctl s net.ipv4.conf.default.rp_filter=0\n"
    "sysctl x net.ipv6.conf.all.forwarding=1\n"
    "sysctl r1 net.ipv4.ip_forward=1\nsysctl r2 net.ipv4.ip_forward=1\n"
    "veth c:eth0 x:ec\nveth x:e1 r1:ex\nveth x:e2 r2:ex\nveth r1:es s:e1\nveth r2:es s:e2\n"
    "addr c eth0 2001:db8:1::2/64\naddr x ec 2001:db8:1::1/64\n"
    "addr x e1 2001:db8:21::1/64\naddr r1 ex 2001:db8:21::2/64\n"
    "addr x e2 2001:db8:22::1/64\naddr r2 ex 2001:db8:22::2/64\n"
    "addr r1 lo 2001:db8:a::1/128\naddr r2 lo 2001:db8:a::1/128\n"
    "addr r1 es 192.0.2.1/30\naddr s e1 192.0.2.2/30\n"
    "addr r2 es 192.0.2.5/30\naddr s e2 192.0.2.6/30\n"
    "addr s lo 203.0.113.10/32\n"
    "route c 2001:db8:a::1/128 via 2001:db8:1::1\n"
    "route x 2001:db8:a::1/128 via 2001:db8:21::2\n"
    "route r1 2001:db8:1::/64 via 2001:db8:21::1\nroute r1 2001:db8:22::/64 via 2001:db8:21::1\n"
    "route r2 2001:db8:1::/64 via 2001:db8:22::1\nroute r2 2001:db8:21::/64 via 2001:db8:22::1\n"
    "route r1 203.0.113.10/32 via 192.0.2.2\nroute r2 203.0.113.10/32 via 192.0.2.6\n"
    "route s 198.51.100.0/24 via 192.0.2.1\n";

// Both routes that decide which member serves the client: x's to the anycast address and s's
// back to the client's inner network.
void move_routes(test::Lab& lab, bool to_r2) {
  REQUIRE(lab.run("x", {kIp, "-6", "route", "replace", std::string{kAnycast} + "/128", "via",
                        to_r2 ? "2001:db8:22::2" : "2001:db8:21::2"})
              .ok());
  REQUIRE(lab.run("s", {kIp, "route", "replace", "198.51.100.0/24", "via",
                        to_r2 ? "192.0.2.5" : "192.0.2.1"})
              .ok());
}

json::object sync_status(const Relay& relay) {
  return relay.get("/status").at("anytun_sync").as_object();
}

std::uint64_t error_count(const json::object& sync, const char* reason) {
  const auto& errors = sync.at("errors").as_object();
  return errors.contains(reason) ? errors.at(reason).to_number<std::uint64_t>() : 0;
}

// A TCP connection to r1's sync port, opened in namespace `ns` (it stays there).
int connect_sync(test::Lab& lab, const std::string& ns) {
  return lab.enter(ns, [] {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(kSyncPort);
    ::inet_pton(AF_INET6, kSyncAddress, &to.sin6_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  });
}

// Whether the other side closed `fd` (end of stream or reset) within 10 s; what it sends before
// (our records) is read and dropped.
bool closed_by_peer(int fd) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::vector<char> buf(65536);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const auto n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return true;
  }
  return false;
}

bool send_all(int fd, const std::string& bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// Polls r1's /status until pred(anytun_sync) holds, bounded.
template <typename Pred>
json::object await_sync(const Relay& relay, Pred pred) {
  const auto until = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto s = sync_status(relay);
    if (pred(s)) return s;
    INFO(json::serialize(s));
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

TEST_CASE("anytun sync: a Debian anytun member fed by our sync stream takes over mid-transfer",
          "[relay][anytun_sync][interop]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kTopology};
  test::TempDir dir;

  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  auto r1_config = relay_node("[2001:db8:a::1]:4444", {mux1});
  r1_config["relay"].as_object()["name"] = "r1";
  r1_config["relay"].as_object()["anytun_sync"] =
      json::object{{"listen", fmt::format("[{}]:{}", kSyncAddress, kSyncPort)}};
  Relay r1{lab, dir, "r1", r1_config};
  CHECK(r1.log().find("clear text") != std::string::npos);  // the key warning at start

  // r2: the same anycast address and cipher suite, its own sender id, no -m/-E/-r: it serves
  // only what it learns. Its TUN has an address in the client's network, so that its kernel
  // hands anytun the server's replies; anytun routes them by the synced route.
  Anytun r2{lab,
            "r2",
            {"-i", kAnycast, "-p", "4444", "-s", "2", "-M",
             fmt::format("[{}]:{}", kSyncAddress, kSyncPort), "-c", suite.cipher, "-a", suite.auth},
            "198.51.100.2/24"};

  // Our client, whose replay window is kept per sender id: r2's packets (sender id 2) start a
  // window of their own and are accepted.
  Relay client{lab, dir, "c", client_node("[2001:db8:a::1]:4444", suite)};
  REQUIRE(lab.run("c", {kIp, "route", "add", "203.0.113.0/24", "dev", "satp0"}).ok());
  // Slow the client's uplink so the move lands mid-transfer (32 MB take several seconds).
  REQUIRE(lab.run("c", {"tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "40mbit",
                        "burst", "64kb", "latency", "200ms"})
              .ok());
  await_path(lab, "c", "203.0.113.10");

  // anytun connects to its sync hosts 10 s after it starts; it then has our table: one
  // connection record and one route at least.
  const auto synced = await_sync(r1, [](const json::object& s) {
    return s.at("connections").to_number<int>() == 1 &&
           s.at("records_out").to_number<std::uint64_t>() >= 2;
  });
  INFO(json::serialize(synced));

  test::DaemonProcess server{{kIp, "netns", "exec", lab.netns_name("s"), TCP_CHECK_BIN, "serve",
                              "--listen", "203.0.113.10", "--port", "5001"},
                             dir / "s-tcp.log"};
  REQUIRE(server.wait_ready(kDeadline));
  const auto peer_changes_before = counter(client.get("/clients/1"), "peer_changes");
  auto transfer = lab.spawn("c", {TCP_CHECK_BIN, "put", "--to", "203.0.113.10", "--port", "5001",
                                  "--bytes", std::to_string(kFailoverBytes)});
  std::uint64_t at_move = 0;
  {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while ((at_move = counter(r1.get("/clients/1"), "rx_bytes")) < kMoveAfter) {
      REQUIRE(std::chrono::steady_clock::now() < until);
      std::this_thread::sleep_for(10ms);
    }
  }
  move_routes(lab, /*to_r2=*/true);
  const auto done = transfer.wait(120s);
  INFO("transfer: " << done.output << "\nr1: " << r1.log() << "\nclient: " << client.log());
  REQUIRE(done.ok());  // every byte checked by the server

  const auto r1_client = r1.get("/clients/1");
  const auto c = client.get("/clients/1");
  INFO("r1 /clients/1 " << json::serialize(r1_client) << "\nclient " << json::serialize(c));
  // The move happened mid-transfer, and the rest of the bytes did not pass r1: r2 carried them.
  CHECK(at_move < kFailoverBytes);
  CHECK(counter(r1_client, "rx_bytes") < kFailoverBytes);
  // The client accepted more packets than r1 sealed for it: r2's, sealed under the key and role
  // it learned from r1, with its own sender id, to the peer endpoint r1 told it.
  CHECK(counter(c, "rx_packets") > counter(r1_client, "tx_packets"));
  const auto& client_drops = c.at("drops").as_object();
  CHECK_FALSE(client_drops.contains("bad_tag"));
  // The client kept its one connection: no new peer, nothing to reconnect.
  CHECK(counter(c, "peer_changes") == peer_changes_before);

  // Back to r1, then hostile streams on the sync port.
  move_routes(lab, /*to_r2=*/false);
  await_path(lab, "c", "203.0.113.10");

  const int garbage = connect_sync(lab, "x");
  REQUIRE(garbage >= 0);
  REQUIRE(send_all(garbage, std::string{"\xde\xad\xbe\xef"} + " garbage, not a frame header\n"));
  CHECK(closed_by_peer(garbage));
  ::close(garbage);

  const int too_long = connect_sync(lab, "x");
  REQUIRE(too_long >= 0);
  REQUIRE(send_all(too_long, "99999 " + std::string(1000, 'a')));
  CHECK(closed_by_peer(too_long));
  ::close(too_long);

  const int unparsable = connect_sync(lab, "x");
  REQUIRE(unparsable >= 0);
  REQUIRE(send_all(unparsable, "00011 hello world"));
  CHECK(closed_by_peer(unparsable));
  ::close(unparsable);

  // A well-formed anytun record is read, counted and not applied: it would add MUX 77.
  satp::sync::Connection forged;
  forged.mux = 77;
  forged.master_key.assign(16, 0x42);
  forged.remote_host = core::Ipv4Address{0xC0000263};  // 192.0.2.99
  forged.remote_port = 4444;
  const auto record = satp::sync::encode(forged);
  REQUIRE(record);
  const int valid = connect_sync(lab, "x");
  REQUIRE(valid >= 0);
  REQUIRE(send_all(valid, *record));

  const auto after = await_sync(r1, [](const json::object& s) {
    return s.at("records_in").to_number<std::uint64_t>() >= 1 && error_count(s, "bad_frame") >= 2 &&
           error_count(s, "bad_archive") >= 1;
  });
  INFO(json::serialize(after));
  CHECK(error_count(after, "bad_frame") == 2);    // the garbage and the over-long header
  CHECK(error_count(after, "bad_archive") == 1);  // "hello world"
  CHECK(after.at("records_in").to_number<std::uint64_t>() == 1);
  CHECK(r1.get("/clients").at("clients").as_array().size() == 1);  // no MUX 77
  ::close(valid);

  // The connection bound: r2's and 15 more are served; one beyond is closed and counted.
  await_sync(r1, [](const json::object& s) { return s.at("connections").to_number<int>() == 1; });
  std::vector<int> idle;
  for (int i = 0; i < 15; ++i) {
    idle.push_back(connect_sync(lab, "x"));
    REQUIRE(idle.back() >= 0);
  }
  await_sync(r1, [](const json::object& s) { return s.at("connections").to_number<int>() == 16; });
  const int extra = connect_sync(lab, "x");
  REQUIRE(extra >= 0);
  CHECK(closed_by_peer(extra));
  ::close(extra);
  for (const int fd : idle) ::close(fd);
  const auto bounded = await_sync(r1, [](const json::object& s) {
    return s.at("connections").to_number<int>() == 1;  // r2's own stays up throughout
  });
  CHECK(error_count(bounded, "too_many_connections") == 1);

  // r1 kept serving through all of it.
  check_pings(lab, "c", "203.0.113.10");
}
