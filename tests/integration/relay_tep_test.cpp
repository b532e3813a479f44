// The relay hosted by the tep daemon (root: TUN devices), in namespaces: one appliance document
// whose /anytun/relay names TEP tep-1 in hosted_by_tep. The tep process run as tep-1 in r serves
// a Debian anytun client in c (pings through the tunnel), shows the relay's clients and status
// under /relay on its control socket and the relay's series in its /metrics, and restarts the
// relay with a reload that changes only the relay's section. satp-relay given the same document
// leaves that relay alone.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/control.hpp"
#include "relay_lab.hpp"
#include "support/daemon_control.hpp"

using namespace relay_lab;
using platform::Method;

namespace {

// The whole document: TEP tep-1 on r's tunnel address (its DSTM server is unreachable on
// purpose: the session is retried in the background and plays no part here), and the relay it
// hosts, named `relay_name`.
std::string document(const test::TempDir& dir, const Suite& suite, const std::string& relay_name) {
  auto mux1 = connection(1, "left", suite);
  mux1["routes"] = json::array{"198.51.100.10/32"};
  auto anytun = relay_node("[2001:db8:10::1]:4444", {mux1});
  auto& relay = anytun.at("relay").as_object();
  relay["name"] = relay_name;
  relay["hosted_by_tep"] = "tep-1";
  relay["control_socket"] = (dir / "relay.sock").string();
  const json::object tep{
      {"name", "tep-1"},
      {"ipv6", "2001:db8:10::1"},
      {"ipv4", "192.0.2.1"},
      {"pool", json::array{"203.0.113.0/24"}},
      {"server",
       json::object{{"address", "2001:db8:2::1"}, {"user", "tep-1"}, {"password", "tep-secret"}}},
      {"interface", "tep0"},
      {"backend", "user"},
      {"control_socket", (dir / "tep.sock").string()}};
  return json::serialize(json::object{{"tep", json::array{tep}}, {"anytun", anytun}});
}

json::object get(const std::string& socket, const std::string& target) {
  auto r = platform::ControlClient{socket}.request(Method::Get, target);
  REQUIRE(r);
  INFO(target << ": " << json::serialize(r->body));
  REQUIRE(r->status == 200);
  return r->body.as_object();
}

}  // namespace

TEST_CASE("relay-tep: the tep daemon hosts the relay its document names it for", "[relay][tep]") {
  const Suite suite{"aes-ctr", "sha1"};
  test::Lab lab{kPair};
  test::TempDir dir;
  const auto config = dir.write("appliance.json", document(dir, suite, "r"));
  const auto tep_socket = (dir / "tep.sock").string();

  // satp-relay given the document leaves the relay to tep-1: with no client it has nothing to run.
  const auto satp = lab.run("r", {SATP_RELAY_BIN, "--config", config.string()}, 20s);
  INFO(satp.output);
  CHECK(satp.exit_code == 1);
  CHECK(satp.output.find("hosted by TEP 'tep-1'") != std::string::npos);
  CHECK(lab.run("r", {SATP_RELAY_BIN, "--config", config.string(), "--check-config"}, 20s).ok());

  test::DaemonProcess tep{{kIp, "netns", "exec", lab.netns_name("r"), TEP_BIN, "--config",
                           config.string(), "--name", "tep-1"},
                          dir / "tep.log"};
  {
    INFO(tep.log());
    REQUIRE(tep.wait_ready(kDeadline));
  }
  Anytun client{lab, "c", anytun_client_args(suite), "198.51.100.10/24"};
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  check_pings(lab, "r", "198.51.100.10");

  const auto c = get(tep_socket, "/relay/clients/1");
  INFO(json::serialize(c) << "\n" << tep.log());
  CHECK(counter(c, "rx_packets") >= 10);
  CHECK(counter(c, "tx_packets") >= 10);
  CHECK(c.at("peer").as_string() == "[2001:db8:10::2]:4444");
  CHECK(get(tep_socket, "/relay/clients").at("clients").as_array().size() == 1);
  const auto relay_status = get(tep_socket, "/relay/status");
  CHECK(relay_status.at("name").as_string() == "r");
  CHECK(relay_status.at("role").as_string() == "relay");
  const auto status = get(tep_socket, "/status");
  CHECK(status.at("name").as_string() == "tep-1");
  CHECK(status.at("relay").as_string() == "r");
  const auto metrics = platform::ControlClient{tep_socket}.request(Method::Get, "/metrics");
  REQUIRE(metrics);
  const auto text = metrics->text.value_or("");
  CHECK(text.find("satp_rx_packets_total{role=\"relay\"}") != std::string::npos);
  // The relay's own control socket is not opened: the TEP's serves it.
  CHECK_FALSE(std::filesystem::exists(dir / "relay.sock"));

  // A reload that changes the relay's section only restarts the TEP with its relay.
  dir.write("appliance.json", document(dir, suite, "r2"));
  const auto reload = platform::ControlClient{tep_socket}.request(Method::Post, "/reload");
  REQUIRE(reload);
  CHECK(reload->status == 202);
  const auto next = test::await_generation(tep_socket, 1, kDeadline);
  REQUIRE(next.has_value());
  CHECK(get(tep_socket, "/relay/status").at("name").as_string() == "r2");
  await_path(lab, "c", "198.51.100.1");
  check_pings(lab, "c", "198.51.100.1");
  CHECK(counter(get(tep_socket, "/relay/clients/1"), "rx_packets") >= 5);
}
