// The relay cluster in namespaces (root): issue 8's test 5 (two satp-relay nodes behind a router
// share an anycast address; the route moves mid-transfer and the transfer completes without the
// client noticing) and the sync-port part of test 6 (garbage on the cluster port closes those
// links, counted by reason, and nothing else).
//
//   c (client 198.51.100.10 on its TUN) -- x (router) --+-- r1 (sender id 1) --+-- s (203.0.113.10)
//                                                       +-- r2 (sender id 2) --+
// r1 and r2 both hold 2001:db8:a::1 (on lo) and serve SATP on [2001:db8:a::1]:4444; x routes
// that /128 to one of them, and s routes 198.51.100.0/24 back through the same one. The cluster
// links run between their unicast addresses through x.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "relay_lab.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"

using namespace relay_lab;

namespace {

constexpr const char* kTopology =
    "netns c\nnetns x\nnetns r1\nnetns r2\nnetns s\n"
    "veth c:eth0 x:eth0\nveth x:eth1 r1:eth0\nveth x:eth2 r2:eth0\n"
    "veth r1:eth1 s:eth0\nveth r2:eth1 s:eth1\n"
    "addr c eth0 2001:db8:1::2/64\naddr x eth0 2001:db8:1::1/64\n"
    "addr x eth1 2001:db8:2::1/64\naddr r1 eth0 2001:db8:2::2/64\n"
    "addr x eth2 2001:db8:3::1/64\naddr r2 eth0 2001:db8:3::2/64\n"
    "addr r1 lo 2001:db8:a::1/128\naddr r2 lo 2001:db8:a::1/128\n"
    "addr r1 eth1 192.0.2.1/30\naddr s eth0 192.0.2.2/30\n"
    "addr r2 eth1 192.0.2.5/30\naddr s eth1 192.0.2.6/30\n"
    "addr s lo 203.0.113.10/32\n"
    "route c 2001:db8::/32 via 2001:db8:1::1\n"
    "route r1 2001:db8:1::/64 via 2001:db8:2::1\nroute r1 2001:db8:3::/64 via 2001:db8:2::1\n"
    "route r2 2001:db8:1::/64 via 2001:db8:3::1\nroute r2 2001:db8:2::/64 via 2001:db8:3::1\n"
    "route x 2001:db8:a::1/128 via 2001:db8:2::2\n"
    "route r1 203.0.113.10/32 via 192.0.2.2\nroute r2 203.0.113.10/32 via 192.0.2.6\n"
    "route s 198.51.100.0/24 via 192.0.2.1\n"
    "sysctl x net.ipv6.conf.all.forwarding=1\n"
    "sysctl r1 net.ipv4.ip_forward=1\nsysctl r2 net.ipv4.ip_forward=1\n";

constexpr const char* kAnycast = "2001:db8:a::1";
constexpr const char* kServer = "203.0.113.10";
constexpr const char* kSecret = "relay-lab-cluster-secret-32-byte";
constexpr unsigned kFailoverBytes = 32 * 1024 * 1024;
// The route moves once this much has crossed the node the transfer started on.
constexpr std::uint64_t kMoveAfter = 8 * 1024 * 1024;

const Suite kSuite{"aes-ctr", "sha1"};

json::object mux1() {
  auto c = connection(1, "left", kSuite);
  c["routes"] = json::array{"198.51.100.10/32"};
  return c;
}

// Relay node `n` (1 or 2) of the anycast address, with MUX 1 configured or not.
json::object node(int n, bool with_mux1) {
  const auto own = fmt::format("[2001:db8:{}::2]:4446", n + 1);
  const auto other = fmt::format("[2001:db8:{}::2]:4446", n == 1 ? 3 : 2);
  json::array connections;
  if (with_mux1) connections.push_back(mux1());
  return json::object{
      {"relay", json::object{{"name", fmt::format("r{}", n)},
                             {"sender_id", n},
                             {"listen", json::array{fmt::format("[{}]:4444", kAnycast)}},
                             {"tun", json::object{{"name", "satp0"},
                                                  {"addresses", json::array{"198.51.100.1/24"}}}},
                             {"connections", std::move(connections)},
                             {"cluster", json::object{{"listen", own},
                                                      {"peers", json::array{json::value(other)}},
                                                      {"secret", kSecret}}}}}};
}

// Polls until pred(relay.get(target)) or the deadline (then fails with the last answer).
template <typename Pred>
json::object await(const Relay& relay, const std::string& target, Pred pred,
                   std::chrono::seconds deadline = kDeadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    auto o = relay.get(target);
    if (pred(o)) return o;
    INFO(target << ": " << json::serialize(o) << "\n" << relay.log());
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(50ms);
  }
}

std::uint64_t number(const json::object& o, const char* name) {
  const auto* v = o.if_contains(name);
  return v ? v->to_number<std::uint64_t>() : 0;
}

json::object client1(const Relay& relay) {
  const auto all = relay.get("/clients");
  for (const auto& c : all.at("clients").as_array())
    if (c.as_object().at("mux").to_number<int>() == 1) return c.as_object();
  return {};
}

// The five namespaces, both relay nodes linked up, and the client's path through r1.
struct ClusterLab {
  test::Lab lab{kTopology};
  test::TempDir dir;
  std::optional<Relay> r1;
  std::optional<Relay> r2;
  std::optional<Relay> client;

  explicit ClusterLab(bool r2_configured) {
    r1.emplace(lab, dir, "r1", node(1, true));
    r2.emplace(lab, dir, "r2", node(2, r2_configured));
    // Each node connects to the other: two links each, both past their Hello.
    for (const Relay* r : {&*r1, &*r2})
      await(*r, "/cluster", [](const json::object& o) { return number(o, "links_up") == 2; });
    // r2 has MUX 1, configured or from r1's dump.
    await(*r2, "/clients",
          [](const json::object& o) { return !o.at("clients").as_array().empty(); });
    client.emplace(lab, dir, "c", client_node(fmt::format("[{}]:4444", kAnycast), kSuite));
    REQUIRE(lab.run("c", {kIp, "route", "add", "203.0.113.0/24", "dev", "satp0"}).ok());
    await_path(lab, "c", kServer);
  }

  // x sends the anycast address to node n; s its answers to the client.
  void route_to(int n) {
    REQUIRE(lab.run("x", {kIp, "-6", "route", "replace", "2001:db8:a::1/128", "via",
                          fmt::format("2001:db8:{}::2", n + 1)})
                .ok());
    REQUIRE(lab.run("s", {kIp, "route", "replace", "198.51.100.0/24", "via",
                          n == 1 ? "192.0.2.1" : "192.0.2.5"})
                .ok());
  }

  Relay& relay(int n) { return n == 1 ? *r1 : *r2; }
};

// A checked transfer of kFailoverBytes (tcp_check `mode` from c to s); once kMoveAfter bytes
// crossed node `from` (its /clients/1 `counter`), the route moves to node `to`.
void transfer_across_move(ClusterLab& l, const char* mode, int from, int to, const char* counter) {
  const auto base = number(client1(l.relay(from)), counter);
  auto transfer = l.lab.spawn("c", {TCP_CHECK_BIN, mode, "--to", kServer, "--port", "5001",
                                    "--bytes", std::to_string(kFailoverBytes)});
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (number(client1(l.relay(from)), counter) < base + kMoveAfter) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(10ms);
  }
  l.route_to(to);
  const auto moved_at = number(client1(l.relay(from)), counter) - base;
  const auto r = transfer.wait(120s);
  INFO(mode << " moved from r" << from << " to r" << to << " after " << moved_at << " bytes: "
            << r.output << "\nr" << to << ": " << json::serialize(client1(l.relay(to))) << "\n"
            << l.relay(to).log());
  CHECK(r.ok());
  // The move happened mid-transfer, not after it.
  CHECK(moved_at < kFailoverBytes);
}

// Sends `bytes` to r1's cluster port from x, then `trickle` one more byte a second; whether r1
// closed the connection (end of stream or reset) within 5 s of the last byte.
bool closed_after(test::Lab& lab, const std::vector<std::uint8_t>& bytes,
                  const std::vector<std::uint8_t>& trickle = {}) {
  return lab.enter("x", [&] {
    const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(4446);
    ::inet_pton(AF_INET6, "2001:db8:2::2", &to.sin6_addr);
    bool closed = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
        ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size())) {
      std::array<char, 4096> buffer{};
      // While trickling, wake up at least every 200 ms (r1 sends keepalives, which wake us too).
      const timeval tick{0, 200'000};
      if (!trickle.empty()) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
      std::size_t sent = 0;
      auto next = std::chrono::steady_clock::now() + 1s;
      for (;;) {
        const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
          closed = true;
          break;
        }
        if (n < 0 && sent == trickle.size()) break;  // silence after the last byte
        if (sent == trickle.size() || std::chrono::steady_clock::now() < next) continue;
        if (::send(fd, &trickle[sent++], 1, MSG_NOSIGNAL) != 1) {
          closed = errno == ECONNRESET || errno == EPIPE;
          break;
        }
        next += 1s;
        if (sent == trickle.size()) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      }
    }
    ::close(fd);
    return closed;
  });
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<std::uint8_t> out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(rng());
  return out;
}

}  // namespace

TEST_CASE("relay-cluster: the anycast route moves mid-transfer and the session goes on",
          "[relay][cluster]") {
  // r2 has MUX 1 in its config, or learns it from r1 over the cluster.
  const bool r2_configured = GENERATE(true, false);
  INFO("MUX 1 configured on r2: " << r2_configured);
  ClusterLab l{r2_configured};
  // A few megabits, so that the move lands mid-transfer: c's uplink and x's link down to c.
  for (const char* ns : {"c", "x"})
    REQUIRE(l.lab
                .run(ns, {"tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "40mbit",
                          "burst", "32kb", "latency", "200ms"})
                .ok());
  test::DaemonProcess server{{kIp, "netns", "exec", l.lab.netns_name("s"), TCP_CHECK_BIN, "serve",
                              "--listen", kServer, "--port", "5001"},
                             l.dir / "s-tcp.log"};
  REQUIRE(server.wait_ready(kDeadline));

  // Client to server through r1, moved to r2; then server to client through r2, moved back.
  transfer_across_move(l, "put", 1, 2, "rx_bytes");
  transfer_across_move(l, "get", 2, 1, "tx_bytes");

  for (int n : {1, 2}) {
    const auto c = client1(l.relay(n));
    const auto cluster = l.relay(n).get("/cluster");
    INFO("r" << n << ": " << json::serialize(c) << "\n" << json::serialize(cluster));
    // Each node carried the client's packets, and refused none of them: the takeover node knew
    // the client's endpoint and its replay window was past what the other node had accepted.
    CHECK(number(c, "rx_packets") > kMoveAfter / 1400);
    const auto& drops = c.at("drops").as_object();
    CHECK_FALSE(drops.contains("replay"));
    CHECK_FALSE(drops.contains("bad_tag"));
    CHECK(c.at("peer") == client1(*l.r1).at("peer"));
    CHECK(number(cluster, "links_up") == 2);
    const auto& errors = cluster.at("errors").as_object();
    for (const char* reason : {"bad_tag", "out_of_sequence", "bad_record", "framing", "bad_nonce",
                               "sender_id_clash", "send_queue_full"})
      CHECK_FALSE(errors.contains(reason));
  }
  CHECK(number(l.r2->get("/cluster"), "learned_connections") == (r2_configured ? 0 : 1));
  // r2 knew where the client was before its first packet (from r1's Peer record or dump): the
  // packets did not have to move its peer.
  CHECK(number(client1(*l.r2), "peer_changes") == 0);

  // The client saw one server all along: same peer, never moved, nothing dropped.
  const auto c = l.client->get("/clients/1");
  INFO(json::serialize(c));
  CHECK(c.at("peer").as_string() == "[2001:db8:a::1]:4444");
  CHECK(number(c, "peer_changes") == 0);
  CHECK(c.at("drops").as_object().empty());
}

TEST_CASE("relay-cluster: garbage on the sync port closes that link and is counted",
          "[relay][cluster]") {
  ClusterLab l{true};
  std::mt19937 rng{8};
  // 1. Random bytes whose first frame is 256 bytes long: no nonce.
  auto garbage = random_bytes(258, rng);
  garbage[0] = 0x01;
  garbage[1] = 0x00;
  // 2. A well-formed nonce frame, then frames of junk: the first fails its tag.
  auto junk = random_bytes(2 + 16, rng);
  junk[0] = 0x00;
  junk[1] = 0x10;
  for (int i = 0; i < 3; ++i) {
    auto frame = random_bytes(2 + 64, rng);
    frame[0] = 0x00;
    frame[1] = 0x40;
    junk.insert(junk.end(), frame.begin(), frame.end());
  }
  // 3. A frame header of 65535 bytes, longer than any record.
  auto too_long = random_bytes(64, rng);
  too_long[0] = 0xff;
  too_long[1] = 0xff;

  // 4. A nonce, then a frame header, then its bytes one a second: never a Hello.
  auto nonce = random_bytes(2 + 16 + 2, rng);
  nonce[0] = 0x00;
  nonce[1] = 0x10;
  nonce[18] = 0x00;
  nonce[19] = 0x40;
  const auto slow = random_bytes(20, rng);

  CHECK(closed_after(l.lab, garbage));
  CHECK(closed_after(l.lab, junk));
  CHECK(closed_after(l.lab, too_long));
  CHECK(closed_after(l.lab, nonce, slow));
  const auto status = await(*l.r1, "/status", [](const json::object& o) {
    const auto& errors = o.at("cluster").at("errors").as_object();
    return number(errors, "bad_nonce") == 1 && number(errors, "bad_tag") == 1 &&
           number(errors, "framing") == 1 && number(errors, "handshake_timeout") == 1;
  });
  INFO(json::serialize(status));

  // The nodes' own links stayed up and keep carrying records (a keepalive a second at least).
  for (const Relay* r : {&*l.r1, &*l.r2}) {
    const auto before = number(r->get("/cluster"), "records_in");
    await(*r, "/cluster", [&](const json::object& o) {
      return number(o, "links_up") == 2 && number(o, "records_in") > before + 2;
    });
  }
  // And the client's traffic goes on.
  check_pings(l.lab, "c", kServer);
}

TEST_CASE("relay-cluster: a packet one node accepted is a replay at the other",
          "[relay][cluster]") {
  ClusterLab l{true};
  // The client's key under a sender id of the test's own (the client itself is 11): an ICMP echo
  // request 198.51.100.10 -> 198.51.100.1, sealed as seq 5 and seq 6.
  satp::Settings settings;
  settings.role = satp::Role::Right;
  auto codec =
      satp::Codec::create(settings, satp::master_key_from_passphrase(kPassphrase, settings.kd_prf),
                          satp::master_salt_from_passphrase(kPassphrase));
  REQUIRE(codec);
  const std::array<std::uint8_t, 28> echo{0x45, 0, 0,    28,   0,   1,  0,   0,  64,  1,
                                          0,    0, 198,  51,   100, 10, 198, 51, 100, 1,
                                          8,    0, 0xf7, 0xff, 0,   0,  0,   0};
  const auto seal = [&](std::uint32_t seq) {
    std::array<std::byte, 256> out{};
    auto sealed = codec->seal({.seq = seq, .sender_id = 12, .mux = 1}, satp::kPayloadIpv4,
                              std::as_bytes(std::span{echo}), out);
    REQUIRE(sealed);
    return std::vector<std::byte>(sealed->begin(), sealed->end());
  };
  const auto packet5 = seal(5);
  const auto packet6 = seal(6);
  // One socket in c for all three sends, so that both nodes see one source.
  const int fd = l.lab.enter("c", [] { return ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0); });
  REQUIRE(fd >= 0);
  sockaddr_in6 to{};
  to.sin6_family = AF_INET6;
  to.sin6_port = htons(4444);
  ::inet_pton(AF_INET6, kAnycast, &to.sin6_addr);
  const auto send = [&](const std::vector<std::byte>& p) {
    REQUIRE(::sendto(fd, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
            static_cast<ssize_t>(p.size()));
  };
  const auto mark12 = [](const json::object& c) {
    return number(c.at("rx_marks").as_object(), "12");
  };

  // r1 accepts seq 5; its next progress record raises r2's window for sender 12.
  send(packet5);
  await(*l.r2, "/clients/1", [&](const json::object& c) { return mark12(c) == 5; });
  CHECK(mark12(client1(*l.r1)) == 5);

  // The anycast route moves to r2: the same packet again is a replay there, the next one is not.
  l.route_to(2);
  send(packet5);
  send(packet6);
  const auto c = await(*l.r2, "/clients/1", [&](const json::object& o) {
    return number(o, "rx_packets") == 1 && mark12(o) == 6;
  });
  ::close(fd);
  INFO(json::serialize(c));
  CHECK(number(c.at("drops").as_object(), "replay") == 1);
}
