// The relay's open tunnel and relay modes in namespaces (root): issue 8's tests 3 and 4.
//  - Open tunnel: a Debian anytun client (c) reaches a plain host (h) through satp-relay (r),
//    which sends its packets on with the source rewritten to its NAT address and maps the replies
//    back: pings and checked TCP transfers both ways over IPv4 and IPv6, and h sees no address
//    but the NAT addresses (tcp_check's log of accepted peers).
//  - Relay mode: satp-relay as the client (c) holds a binding at satp-relay (r) toward a UDP port
//    of h; numbered datagrams from c's client port to the relay endpoint reach h from the relay
//    endpoint, and h's echoes reach c from it; a datagram from a third address is dropped and
//    counted; stopping the client releases the binding.
// The processes and checks are in relay_lab.hpp.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/fd.hpp"
#include "relay_lab.hpp"

using namespace relay_lab;

namespace {

// Polls `ready` until it holds, bounded by kDeadline.
void await(const std::function<bool()>& ready, const char* what) {
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (!ready()) {
    INFO("waiting for " << what);
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(50ms);
  }
}

// The addresses tcp_check's server saw its connections come from ("peer ADDR PORT" lines).
std::vector<std::string> accepted_peers(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in{log};
  std::string word;
  std::string address;
  std::string port;
  for (std::string line; std::getline(in, line);) {
    std::istringstream l{line};
    if (l >> word >> address >> port && word == "peer") out.push_back(address);
  }
  return out;
}

sockaddr_in v4(const char* address, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  REQUIRE(::inet_pton(AF_INET, address, &a.sin_addr) == 1);
  return a;
}

std::string text_of(const sockaddr_in& a) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
  return fmt::format("{}:{}", text, ntohs(a.sin_port));
}

// A UDP socket bound in namespace `ns` (it stays there; any thread may use it).
platform::Fd udp_socket(test::Lab& lab, const char* ns, const char* address, std::uint16_t port) {
  const auto at = v4(address, port);
  auto fd = lab.enter(ns, [&] {
    platform::Fd s{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (s && ::bind(s.get(), reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) s.reset();
    return s;
  });
  INFO("UDP socket on " << address << ":" << port << " in " << ns);
  REQUIRE(fd);
  return fd;
}

struct Datagram {
  std::string payload;
  std::string from;
};

// One datagram within `timeout`, or none.
std::optional<Datagram> receive(const platform::Fd& fd, std::chrono::milliseconds timeout) {
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
  char buf[2048];
  sockaddr_in from{};
  socklen_t length = sizeof from;
  const auto n = ::recvfrom(fd.get(), buf, sizeof buf, MSG_DONTWAIT,
                            reinterpret_cast<sockaddr*>(&from), &length);
  if (n < 0) return std::nullopt;
  return Datagram{std::string(buf, static_cast<std::size_t>(n)), text_of(from)};
}

void send_to(const platform::Fd& fd, const std::string& payload, const sockaddr_in& to) {
  REQUIRE(::sendto(fd.get(), payload.data(), payload.size(), 0,
                   reinterpret_cast<const sockaddr*>(&to),
                   sizeof to) == static_cast<ssize_t>(payload.size()));
}

}  // namespace

TEST_CASE("open tunnel: an anytun client reaches a plain host through the open tunnel NAT",
          "[relay][interop]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{
      "netns c\nnetns r\nnetns h\n"
      "veth c:eth0 r:eth0\nveth r:eth1 h:eth0\n"
      "addr c eth0 2001:db8:10::2/64\naddr r eth0 2001:db8:10::1/64\n"
      "addr r eth1 203.0.113.1/24\naddr r eth1 2001:db8:30::1/64\n"
      "addr h eth0 203.0.113.2/24\naddr h eth0 2001:db8:30::2/64\n"
      // h knows the way to the NAT addresses only, never to the client's inner addresses.
      "route h 198.51.100.0/24 via 203.0.113.1\nroute h 2001:db8:40::/64 via 2001:db8:30::1\n"
      "sysctl r net.ipv4.ip_forward=1\nsysctl r net.ipv6.conf.all.forwarding=1\n"};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"192.0.2.10/32", "2001:db8:20::10/128"};
  mux1["open_tunnel"] = true;
  Relay relay{
      lab, dir, "r",
      json::object{
          {"relay",
           json::object{{"name", "r"},
                        {"sender_id", 1},
                        {"listen", json::array{"[2001:db8:10::1]:4444"}},
                        {"tun", json::object{{"name", "satp0"},
                                             {"addresses",
                                              json::array{"192.0.2.1/24", "2001:db8:20::1/64"}}}},
                        {"connections", json::array{mux1}},
                        {"open_tunnel", json::object{{"address4", "198.51.100.7"},
                                                     {"address6", "2001:db8:40::7"}}}}}}};
  Anytun client{lab, "c", anytun_client_args(suite), "192.0.2.10/24"};
  REQUIRE(lab.run("c", {kIp, "-6", "addr", "add", "2001:db8:20::10/64", "dev", "anyt0"}).ok());
  REQUIRE(lab.run("c", {kIp, "route", "add", "203.0.113.0/24", "dev", "anyt0"}).ok());
  REQUIRE(lab.run("c", {kIp, "-6", "route", "add", "2001:db8:30::/64", "dev", "anyt0"}).ok());

  // The NAT addresses are routed into the relay's TUN and are on no interface of r.
  const auto route4 = lab.run("r", {kIp, "route", "get", "198.51.100.7"});
  INFO(route4.output);
  CHECK(route4.output.find("dev satp0") != std::string::npos);
  const auto route6 = lab.run("r", {kIp, "-6", "route", "get", "2001:db8:40::7"});
  INFO(route6.output);
  CHECK(route6.output.find("dev satp0") != std::string::npos);

  await_path(lab, "c", "203.0.113.2");
  check_pings(lab, "c", "203.0.113.2");
  await_path(lab, "c", "2001:db8:30::2");
  check_pings(lab, "c", "2001:db8:30::2");

  for (const auto& [address, nat, port] :
       {std::tuple{"203.0.113.2", "198.51.100.7", "5001"},
        std::tuple{"2001:db8:30::2", "2001:db8:40::7", "5002"}}) {
    INFO("to " << address);
    test::DaemonProcess server{{kIp, "netns", "exec", lab.netns_name("h"), TCP_CHECK_BIN, "serve",
                                "--listen", address, "--port", port},
                               dir / fmt::format("h-tcp-{}.log", port)};
    REQUIRE(server.wait_ready(kDeadline));
    for (const char* mode : {"put", "get"}) {
      const auto r = lab.run("c",
                             {TCP_CHECK_BIN, mode, "--to", address, "--port", port, "--bytes",
                              std::to_string(kTransferBytes)},
                             60s);
      INFO(mode << ": " << r.output);
      CHECK(r.ok());
    }
    // The server printed each peer when it accepted it, before the transfer ran.
    const auto peers = accepted_peers(server.log());
    INFO(server.log());
    CHECK(peers == std::vector<std::string>{nat, nat});
  }

  const auto status = relay.get("/status");
  INFO(json::serialize(status) << "\n" << relay.log());
  const auto& open = status.at("open_tunnel").as_object();
  CHECK(open.at("address4").as_string() == "198.51.100.7");
  CHECK(open.at("forwarding").as_object().at("ipv4").as_bool());
  CHECK(open.at("forwarding").as_object().at("ipv6").as_bool());
  // Four TCP connections and the pings' echo ids, at least.
  CHECK(counter(open, "mappings_created") >= 6);
  CHECK(counter(open, "mappings") >= 4);
  CHECK(counter(open, "outbound") > 2 * kTransferBytes / 1400);
  CHECK(counter(open, "inbound") > 2 * kTransferBytes / 1400);
  CHECK(status.at("nat_mappings").to_number<std::uint64_t>() == counter(open, "mappings"));
  // The same in the metrics, per direction.
  const auto metrics = relay.get("/counters");
  const auto& packets = metrics.at("satp_nat_packets_total").as_object().at("series").as_array();
  CHECK(packets.size() == 2);
  for (const auto& series : packets) {
    const auto& o = series.as_object();
    const auto direction = o.at("labels").as_object().at("direction").as_string();
    CHECK(counter(o, "value") == counter(open, direction.c_str()));
  }
  CHECK(relay.log().find("forwarding is off") == std::string::npos);
}

TEST_CASE("relay mode: a relay binding carries a UDP stream between a client and a plain host",
          "[relay]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{
      "netns c\nnetns r\nnetns h\n"
      "veth c:eth0 r:eth0\nveth r:eth1 h:eth0\n"
      "addr c eth0 192.0.2.2/24\naddr r eth0 192.0.2.1/24\n"
      "addr r eth1 203.0.113.1/24\n"
      "addr h eth0 203.0.113.2/24\naddr h eth0 203.0.113.3/24\n"
      "route c 203.0.113.0/24 via 192.0.2.1\n"};
  test::TempDir dir;
  auto mux1 = connection(1, "left", suite);
  mux1["relay_mode"] = true;
  Relay relay{
      lab, dir, "r",
      json::object{{"relay", json::object{{"name", "r"},
                                          {"sender_id", 1},
                                          {"listen", json::array{"192.0.2.1:4444"}},
                                          {"connections", json::array{mux1}},
                                          {"relay_mode",
                                           json::object{{"addresses", json::array{"203.0.113.1"}},
                                                        {"ports", json::array{40000, 40099}}}}}}}};
  auto client = std::make_unique<Relay>(
      lab, dir, "c",
      json::object{{"client",
                    json::object{{"server", "192.0.2.1:4444"},
                                 {"sender_id", 11},
                                 {"connection", connection(1, "right", suite)},
                                 {"bindings", json::array{json::object{{"peer", "203.0.113.2:7000"},
                                                                       {"client_port", 6000}}}}}}});

  // The client's binding, as its control socket shows it once the relay answered.
  std::string endpoint;
  await(
      [&] {
        const auto b = client->get("/bindings").at("bindings").as_array().at(0).as_object();
        if (b.at("relay").is_null()) return false;
        endpoint = std::string{b.at("relay").as_string()};
        return b.at("state").as_string() == "allocated";
      },
      "the client's binding");
  INFO("relay endpoint " << endpoint << "\n" << relay.log() << "\n" << client->log());
  REQUIRE(endpoint.rfind("203.0.113.1:", 0) == 0);
  const auto relay_port = static_cast<std::uint16_t>(std::stoi(endpoint.substr(12)));
  REQUIRE(relay_port >= 40000);
  REQUIRE(relay_port <= 40099);
  const auto relay_at = v4("203.0.113.1", relay_port);

  const auto c = udp_socket(lab, "c", "192.0.2.2", 6000);
  const auto h = udp_socket(lab, "h", "203.0.113.2", 7000);
  const auto stranger = udp_socket(lab, "h", "203.0.113.3", 7000);

  // Numbered datagrams c -> relay -> h, echoed h -> relay -> c. Each is tried up to three times;
  // what counts is that every number arrived both ways.
  constexpr int kDatagrams = 200;
  std::set<int> at_h;
  std::set<int> at_c;
  for (int pass = 0; pass < 3 && static_cast<int>(at_c.size()) < kDatagrams; ++pass) {
    for (int i = 0; i < kDatagrams; ++i) {
      if (at_c.contains(i)) continue;
      const auto payload = fmt::format("datagram {} of the relay-mode test", i);
      send_to(c, payload, relay_at);
      if (const auto d = receive(h, 1s)) {
        CHECK(d->from == endpoint);  // h sees the relay endpoint, never c
        int n = -1;
        REQUIRE(std::sscanf(d->payload.c_str(), "datagram %d of", &n) == 1);
        CHECK(d->payload == fmt::format("datagram {} of the relay-mode test", n));
        at_h.insert(n);
        send_to(h, d->payload, relay_at);
      }
      if (const auto d = receive(c, 1s)) {
        CHECK(d->from == endpoint);
        int n = -1;
        REQUIRE(std::sscanf(d->payload.c_str(), "datagram %d of", &n) == 1);
        at_c.insert(n);
      }
    }
  }
  CHECK(at_h.size() == kDatagrams);
  CHECK(at_c.size() == kDatagrams);

  // A datagram from a third address is dropped and counted, and reaches neither side.
  send_to(stranger, "not from the peer", relay_at);
  json::object binding;
  await(
      [&] {
        binding = relay.get("/bindings").at("bindings").as_array().at(0).as_object();
        return counter(binding, "filtered") == 1;
      },
      "the stranger's datagram counted");
  INFO(json::serialize(binding));
  CHECK_FALSE(receive(c, 0ms));
  CHECK(binding.at("client").as_string() == "192.0.2.2:6000");
  CHECK(binding.at("peer").as_string() == "203.0.113.2:7000");
  CHECK(binding.at("relay").as_string() == endpoint);
  CHECK(counter(binding, "to_peer_packets") >= kDatagrams);
  CHECK(counter(binding, "to_client_packets") >= kDatagrams);
  CHECK(counter(binding, "send_errors") == 0);
  CHECK(counter(relay.get("/status").at("relay_mode").as_object(), "allocated") == 1);
  const auto filtered = relay.get("/counters").at("satp_relay_binding_filtered_total");
  CHECK(counter(filtered.as_object().at("series").as_array().at(0).as_object(), "value") == 1);

  // Stopping the client releases its binding at the relay.
  client->stop();
  await([&] { return relay.get("/bindings").at("bindings").as_array().empty(); },
        "the binding released");
  const auto status = relay.get("/status").at("relay_mode").as_object();
  INFO(json::serialize(status));
  CHECK(counter(status, "released") == 1);
  CHECK(counter(status, "to_peer_packets") >= kDatagrams);
  CHECK(counter(status, "filtered") == 1);
}
