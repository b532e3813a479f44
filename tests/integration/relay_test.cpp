// The relay against live Debian anytun 0.3.8 nodes in namespaces (root): issue 8's tests 1 and 2.
//  - a Debian anytun client and satp-relay in tunnel mode, and satp-relay as a client of a Debian
//    anytun server: pings and checked TCP transfers both ways, with AES-CTR + HMAC-SHA1 and with
//    the null cipher;
//  - two Debian anytun clients that reach each other through satp-relay's routing;
//  - hostile datagrams (truncated, unknown MUX, wrong tag, a replay) dropped and counted by reason.
// The processes and checks are in relay_lab.hpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "core/bytes.hpp"
#include "relay_lab.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"

using namespace relay_lab;

TEST_CASE("relay: a Debian anytun client and satp-relay in tunnel mode", "[relay][interop]") {
  const auto suite = GENERATE(Suite{"aes-ctr", "sha1"}, Suite{"null", "sha1"});
  INFO("cipher " << suite.cipher);
  test::Lab lab{kPair};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  Relay relay{lab, dir, "r", relay_node("[2001:db8:10::1]:4444", {mux1})};
  Anytun client{lab, "c", anytun_client_args(suite), "198.51.100.10/24"};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  check_transfers(lab, dir, "r", "198.51.100.1", "c");
  check_transfers(lab, dir, "c", "198.51.100.10", "r");

  const auto c = relay.get("/clients/1");
  INFO(json::serialize(c) << "\n" << relay.log());
  CHECK(counter(c, "rx_packets") > 2 * kTransferBytes / 1400);
  CHECK(counter(c, "tx_packets") > 2 * kTransferBytes / 1400);
  CHECK(c.at("drops").as_object().empty());
  CHECK(c.at("peer").as_string() == "[2001:db8:10::2]:4444");
}

TEST_CASE("relay: a restarted Debian anytun client is served again", "[relay][interop]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kPair};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  Relay relay{lab, dir, "r", relay_node("[2001:db8:10::1]:4444", {mux1})};
  const auto args = anytun_client_args(suite);
  {
    Anytun client{lab, "c", args, "198.51.100.10/24"};
    await_path(lab, "c", "198.51.100.1");
    // Far enough for a restart to land below the relay's replay window (1024).
    const auto r =
        lab.run("c", {"ping", "-n", "-q", "-f", "-c", "3000", "-W", "1", "198.51.100.1"}, 30s);
    INFO(r.output);
    REQUIRE(r.ok());
  }
  // anytun starts its sequence numbers at 0 again.
  Anytun client{lab, "c", args, "198.51.100.10/24"};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  const auto c = relay.get("/clients/1");
  INFO(json::serialize(c));
  CHECK(counter(c, "sender_restarts") == 1);
}

TEST_CASE("relay: satp-relay as the client of a Debian anytun server", "[relay][interop]") {
  const auto suite = GENERATE(Suite{"aes-ctr", "sha1"}, Suite{"null", "sha1"});
  INFO("cipher " << suite.cipher);
  test::Lab lab{kPair};
  test::TempDir dir;
  // The server learns its client's endpoint from the first packet (no -r).
  Anytun server{lab,
                "r",
                {"-i", "2001:db8:10::1", "-p", "4444", "-s", "1", "-m", "1", "-e", "left", "-E",
                 kPassphrase, "-c", suite.cipher, "-a", suite.auth},
                "198.51.100.1/24"};
  Relay client{lab, dir, "c", client_node("[2001:db8:10::1]:4444", suite)};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");
  check_transfers(lab, dir, "r", "198.51.100.1", "c");
  check_transfers(lab, dir, "c", "198.51.100.10", "r");

  const auto c = client.get("/clients/1");
  INFO(json::serialize(c) << "\n" << client.log());
  CHECK(counter(c, "rx_packets") > 2 * kTransferBytes / 1400);
  CHECK(c.at("drops").as_object().empty());
}

TEST_CASE("relay: two Debian anytun clients reach each other through satp-relay",
          "[relay][interop]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{
      "netns c1\nnetns c2\nnetns r\n"
      "veth c1:eth0 r:eth1\nveth c2:eth0 r:eth2\n"
      "addr c1 eth0 2001:db8:11::2/64\naddr r eth1 2001:db8:11::1/64\n"
      "addr c2 eth0 2001:db8:12::2/64\naddr r eth2 2001:db8:12::1/64\n"};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  auto mux2 = connection(2, "left", suite);
  mux2["routes"] = json::array{"198.51.100.20/32"};
  Relay relay{lab, dir, "r", relay_node("[::]:4444", {mux1, mux2})};
  const auto anytun_args = [&](const char* self, const char* relay_address, const char* mux) {
    return std::vector<std::string>{
        "-i", self, "-p", "4444",  "-r", relay_address, "-o", "4444",       "-s", "11",
        "-m", mux,  "-e", "right", "-E", kPassphrase,   "-c", suite.cipher, "-a", suite.auth};
  };
  Anytun c1{lab, "c1", anytun_args("2001:db8:11::2", "2001:db8:11::1", "1"), "198.51.100.10/24"};
  Anytun c2{lab, "c2", anytun_args("2001:db8:12::2", "2001:db8:12::1", "2"), "198.51.100.20/24"};
  // Each client's first packet tells the relay where it is.
  await_path(lab, "c1", "198.51.100.1");
  await_path(lab, "c2", "198.51.100.1");
  check_pings(lab, "c1", "198.51.100.20");
  check_pings(lab, "c2", "198.51.100.10");
  check_transfers(lab, dir, "c2", "198.51.100.20", "c1");

  const auto clients = relay.get("/clients").at("clients").as_array();
  INFO(json::serialize(clients) << "\n" << relay.log());
  REQUIRE(clients.size() == 2);
  for (const auto& c : clients) {
    CHECK(counter(c.as_object(), "rx_packets") > kTransferBytes / 1400);
    CHECK(counter(c.as_object(), "tx_packets") > kTransferBytes / 1400);
    CHECK(c.as_object().at("drops").as_object().empty());
  }
}

TEST_CASE("relay: hostile datagrams are dropped and counted and the relay keeps serving",
          "[relay]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kPair};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  Relay relay{lab, dir, "r", relay_node("[2001:db8:10::1]:4444", {mux1})};
  // The client's end, sealed here: an ICMP echo request 198.51.100.10 -> 198.51.100.1.
  satp::Settings settings;
  settings.role = satp::Role::Right;
  auto codec =
      satp::Codec::create(settings, satp::master_key_from_passphrase(kPassphrase, settings.kd_prf),
                          satp::master_salt_from_passphrase(kPassphrase));
  REQUIRE(codec);
  const std::array<std::uint8_t, 28> echo{0x45, 0, 0,    28,   0,   1,  0,   0,  64,  1,
                                          0,    0, 198,  51,   100, 10, 198, 51, 100, 1,
                                          8,    0, 0xf7, 0xff, 0,   0,  0,   0};
  std::array<std::byte, 256> sealed_bytes{};
  auto sealed = codec->seal({.seq = 1, .sender_id = 11, .mux = 1}, satp::kPayloadIpv4,
                            std::as_bytes(std::span{echo}), sealed_bytes);
  REQUIRE(sealed);
  const std::vector<std::byte> valid(sealed->begin(), sealed->end());
  auto forged = valid;
  forged[10] ^= std::byte{1};  // a ciphertext bit: the tag no longer verifies
  auto unknown_mux = valid;
  unknown_mux[7] = std::byte{99};
  const std::vector<std::vector<std::byte>> datagrams{
      {std::byte{0}, std::byte{1}, std::byte{2}},  // truncated: no whole header
      unknown_mux,                                 // no connection with MUX 99
      forged,                                      // the tag does not verify
      valid,                                       // accepted
      valid,                                       // the same again: a replay
  };
  lab.enter("c", [&] {
    const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(4444);
    ::inet_pton(AF_INET6, "2001:db8:10::1", &to.sin6_addr);
    for (const auto& d : datagrams)
      ::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    ::close(fd);
  });
  // The accepted packet reaches the relay's TUN; once it is counted, the ones before it were
  // handled too (one socket, handled in order), and the replay after it within the same batch or
  // the next: poll the counters, bounded.
  json::object status;
  json::object client;
  const auto until = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    status = relay.get("/status");
    client = relay.get("/clients/1");
    const auto& drops = client.at("drops").as_object();
    if (drops.contains("replay") && counter(client, "rx_packets") == 1) break;
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(20ms);
  }
  INFO(json::serialize(status) << "\n" << json::serialize(client));
  const auto& relay_drops = status.at("drops").as_object();
  CHECK(relay_drops.at("truncated").to_number<int>() == 1);
  CHECK(relay_drops.at("unknown_mux").to_number<int>() == 1);
  const auto& drops = client.at("drops").as_object();
  CHECK(drops.at("bad_tag").to_number<int>() == 1);
  CHECK(drops.at("replay").to_number<int>() == 1);
  CHECK(counter(client, "rx_packets") == 1);
  // The forged packet did not move the peer; the accepted one set it.
  CHECK(counter(client, "peer_changes") == 1);
}
