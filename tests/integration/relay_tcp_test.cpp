// Unicast TCP with anycast initialisation (draft-gsenger-anycast-relay-00 section 1.1.2.2) in
// namespaces (root): satp-relay's client in c reaches the relay's "anycast" address
// 2001:db8:20::1 (on r's lo, routed from c) over UDP, learns the relay's unicast TCP endpoint
// (2001:db8:10::1, port chosen by the kernel) and carries its SATP packets over TCP:
//  - pings and checked TCP transfers both ways through the tunnel, both ends report the
//    connection on TCP, and the client's UDP socket carried the Locate exchange only;
//  - hostile streams at the relay's TCP port: a length above the largest packet and garbage
//    after it (the stream is closed and counted), and a frame of the right length holding junk
//    (counted as a bad tag, the connection's peer does not move); the client is served on.
// The processes and checks are in relay_lab.hpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/fd.hpp"
#include "relay/endpoint.hpp"
#include "relay_lab.hpp"

using namespace relay_lab;

namespace {

constexpr const char* kLab =
    "netns c\nnetns r\nveth c:eth0 r:eth0\n"
    "addr c eth0 2001:db8:10::2/64\naddr r eth0 2001:db8:10::1/64\n"
    "addr r lo 2001:db8:20::1/128\n"
    "route c 2001:db8:20::1/128 via 2001:db8:10::1\n";

// The relay r: UDP on the anycast address only, TCP on its unicast address (port 0).
json::object tcp_relay(const Suite& suite) {
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  auto node = relay_node("[2001:db8:20::1]:4444", {mux1});
  node.at("relay").as_object()["tcp"] = json::object{{"listen", "[2001:db8:10::1]:0"}};
  return node;
}

// Our client c with transport tcp, to the anycast address.
json::object tcp_client(const Suite& suite) {
  auto node = client_node("[2001:db8:20::1]:4444", suite);
  node["client"].as_object()["transport"] = "tcp";
  return node;
}

// Polls `get` until `done` holds on its answer, at most kDeadline.
template <typename Get, typename Done>
json::object await(Get get, Done done) {
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    auto o = get();
    if (done(o)) return o;
    INFO(json::serialize(o));
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(20ms);
  }
}

json::object await_connected(const Relay& client) {
  return await(
      [&] { return client.get("/status"); },
      [](const json::object& s) { return s.at("tcp").at("state").as_string() == "connected"; });
}

const json::object& tcp_of(const json::object& status) {
  return status.at("tcp").as_object();
}

// A plain TCP connection from namespace c to `to`, sending `bytes`.
platform::Fd hostile_stream(test::Lab& lab, const relay::Endpoint& to,
                            const std::vector<std::uint8_t>& bytes) {
  return lab.enter("c", [&] {
    platform::Fd fd{::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    REQUIRE(fd);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(to.port);
    std::copy(to.address.bytes().begin(), to.address.bytes().end(), sa.sin6_addr.s6_addr);
    REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
    // The relay may close the stream before all of it is sent: that is the point.
    (void)::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    return fd;
  });
}

// True when the relay ended the stream (end of stream or reset) before the deadline.
bool closed_by_peer(const platform::Fd& fd) {
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  std::array<std::uint8_t, 256> buf{};
  while (test::await_readable(fd.get(), until)) {
    const auto n = ::recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n <= 0) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("relay-tcp: our client locates the relay over anycast UDP and tunnels over TCP",
          "[relay][tcp]") {
  const auto suite = GENERATE(Suite{"aes-ctr", "sha1"}, Suite{"null", "sha1"});
  INFO("cipher " << suite.cipher);
  test::Lab lab{kLab};
  test::TempDir dir;
  Relay relay{lab, dir, "r", tcp_relay(suite)};
  const auto listen = tcp_of(relay.get("/status")).at("listen").as_string();
  REQUIRE(listen.starts_with("[2001:db8:10::1]:"));
  CHECK_FALSE(listen.ends_with("]:0"));
  Relay client{lab, dir, "c", tcp_client(suite)};
  const auto connected = await_connected(client);
  // Located told the port the kernel chose.
  CHECK(tcp_of(connected).at("endpoint").as_string() == listen);

  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  check_transfers(lab, dir, "r", "198.51.100.1", "c");
  check_transfers(lab, dir, "c", "198.51.100.10", "r");

  const auto c = client.get("/clients/1");
  const auto r = relay.get("/clients/1");
  const auto cs = client.get("/status");
  const auto rs = relay.get("/status");
  INFO(json::serialize(c) << "\n"
                          << json::serialize(r) << "\n"
                          << json::serialize(cs) << "\n"
                          << json::serialize(rs) << "\n"
                          << client.log() << relay.log());
  // Both ends have the connection on the stream; each transfer went both ways, twice.
  for (const auto* end : {&c, &r}) {
    CHECK(end->at("transport").as_string() == "tcp");
    CHECK(counter(*end, "rx_bytes") > 2 * kTransferBytes);
    CHECK(counter(*end, "tx_bytes") > 2 * kTransferBytes);
    CHECK(end->at("drops").as_object().empty());
  }
  CHECK(r.at("peer").as_string().starts_with("[2001:db8:10::2]:"));
  CHECK(c.at("peer").as_string() == listen);
  // The client's UDP socket carried the Locate exchange and nothing else.
  CHECK(cs.at("transport").as_string() == "tcp");
  CHECK(counter(cs, "udp_tx_packets") == counter(tcp_of(cs), "locates"));
  CHECK(counter(cs, "udp_tx_packets") <= 5);
  CHECK(counter(cs, "udp_rx_packets") <= counter(cs, "udp_tx_packets"));
  CHECK(counter(tcp_of(cs), "connects") == 1);
  // One stream at the relay, never broken.
  CHECK(counter(tcp_of(rs), "accepted") == 1);
  CHECK(counter(tcp_of(rs), "open") == 1);
  CHECK(counter(tcp_of(rs), "framing_errors") == 0);
  CHECK(counter(tcp_of(rs), "send_drops") == 0);
  CHECK(counter(tcp_of(rs), "frames_in") > 2 * kTransferBytes / 1400);
}

TEST_CASE("relay-tcp: hostile streams are closed or dropped and counted and the client is served",
          "[relay][tcp]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kLab};
  test::TempDir dir;
  Relay relay{lab, dir, "r", tcp_relay(suite)};
  Relay client{lab, dir, "c", tcp_client(suite)};
  await_connected(client);
  await_path(lab, "c", "198.51.100.1");
  const auto tcp_endpoint =
      relay::Endpoint::parse(tcp_of(relay.get("/status")).at("listen").as_string()).value();
  const auto peer_changes = counter(relay.get("/clients/1"), "peer_changes");

  // A length of 65535 (above the largest SATP packet, 1600), then random bytes.
  std::mt19937 random{8};
  std::vector<std::uint8_t> garbage{0xff, 0xff};
  for (int i = 0; i < 4000; ++i) garbage.push_back(static_cast<std::uint8_t>(random()));
  const auto too_long = hostile_stream(lab, tcp_endpoint, garbage);
  CHECK(closed_by_peer(too_long));
  await([&] { return relay.get("/status"); },
        [](const json::object& s) { return counter(tcp_of(s), "framing_errors") == 1; });

  // A frame of a valid length whose header names MUX 1, and junk for the rest: its tag fails.
  std::vector<std::uint8_t> junk{0, 100};
  std::vector<std::uint8_t> packet(100);
  for (auto& b : packet) b = static_cast<std::uint8_t>(random());
  packet[6] = 0;  // the MUX field (seq 4, sender id 2, MUX 2 bytes)
  packet[7] = 1;
  junk.insert(junk.end(), packet.begin(), packet.end());
  const auto forged = hostile_stream(lab, tcp_endpoint, junk);
  const auto r =
      await([&] { return relay.get("/clients/1"); },
            [](const json::object& c) { return c.at("drops").as_object().contains("bad_tag"); });
  INFO(json::serialize(r) << "\n" << relay.log());
  CHECK(r.at("drops").at("bad_tag").to_number<int>() == 1);
  // The forged frame did not take the connection over.
  CHECK(counter(r, "peer_changes") == peer_changes);
  CHECK(r.at("transport").as_string() == "tcp");
  CHECK(r.at("peer").as_string().starts_with("[2001:db8:10::2]:"));

  const auto rs = relay.get("/status");
  INFO(json::serialize(rs));
  CHECK(counter(tcp_of(rs), "accepted") == 3);
  CHECK(counter(tcp_of(rs), "framing_errors") == 1);
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  CHECK(counter(tcp_of(client.get("/status")), "connects") == 1);
}
