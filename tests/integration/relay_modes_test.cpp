// The relay's open tunnel mode in namespaces (root): issue 8's test 3.
//  - Open tunnel: a Debian anytun client (c) reaches a plain host (h) through satp-relay (r),
//    which sends its packets on with the source rewritten to its NAT address and maps the replies
//    back: pings and checked TCP transfers both ways over IPv4 and IPv6, and h sees no address
//    but the NAT addresses (tcp_check's log of accepted peers).
// The processes and checks are in relay_lab.hpp.
#include <chrono>
#include <sstream>
#include <string>
#include <thread>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "relay_lab.hpp"

using namespace relay_lab;

namespace {

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
  Anytun client{lab,
                "c",
                {"-i", "2001:db8:10::2", "-p", "4444",      "-r", "2001:db8:10::1",
                 "-o", "4444",           "-s", "11",        "-m", "1",
                 "-e", "right",          "-E", kPassphrase, "-c", suite.cipher,
                 "-a", suite.auth},
                "192.0.2.10/24"};
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
  CHECK(relay.log().find("forwarding is off") == std::string::npos);
}
