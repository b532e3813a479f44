// The kernel (ip6tnl) backend's selection against the real kernel, in lab namespaces (root): the
// probe's answer, `tep` and `dstm-client` with backend "kernel" and "auto". What is expected
// follows what iproute2 says about the same kernel: on a kernel without ip6tnl (this host's, no
// CONFIG_IPV6_TUNNEL) "kernel" must fail the start with a clear error and "auto" must fall back;
// on one with it (the appliance's) "kernel" must start and make its devices.
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/control.hpp"
#include "support/daemon_control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"
#include "tep_io/backend.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

constexpr auto kDeadline = 20s;

std::string find_program(std::string_view name) {
  for (std::string_view dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    const auto candidate = fmt::format("{}/{}", dir, name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  FAIL(name << " not found");
  return {};
}

// What iproute2 says: can it create an ip6tnl device in the namespace? (Deleted again.)
bool iproute2_has_ip6tnl(test::Lab& lab, std::string_view ns) {
  const auto added = lab.run(ns, {"ip", "link", "add", "probe6", "type", "ip6tnl", "mode", "ipip6",
                                  "remote", "2001:db8:ffff::1"});
  if (!added.ok()) return false;
  (void)lab.run(ns, {"ip", "link", "del", "probe6"});
  return true;
}

constexpr std::string_view kLab = "netns t\naddr t lo 2001:db8:1::1/128\n";

std::string tep_document(std::string_view backend, const std::string& socket) {
  // The server is unreachable on purpose: the backend is chosen before any session.
  return fmt::format(
      R"({{"tep": [
        {{"name": "tep-1", "ipv6": "2001:db8:1::1", "ipv4": "192.0.2.1",
          "pool": ["198.51.100.0/24"], "keepalive": "192.0.2.201",
          "server": {{"address": "2001:db8:2::1", "user": "tep-1", "password": "tep-secret"}},
          "interface": "tep0", "backend": "{}", "control_socket": "{}"}}]}})",
      backend, socket);
}

json::object status_of(const std::string& socket) {
  const auto r = test::try_control(socket, platform::Method::Get, "/status");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return r->body.as_object();
}

std::vector<std::string> in_netns(test::Lab& lab, std::vector<std::string> argv) {
  std::vector<std::string> out{find_program("ip"), "netns", "exec", lab.netns_name("t")};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace

TEST_CASE("kernel backend: a link dump lists the namespace's links with their kind", "[kernel]") {
  test::Lab lab{kLab};
  REQUIRE(lab.run("t", {"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"}).ok());
  auto links = lab.netlink("t").links();
  INFO((links ? std::string{"ok"} : links.error().to_string()));
  REQUIRE(links);
  bool lo = false, v0 = false, v1 = false;
  for (const auto& l : *links) {
    lo = lo || (l.name == "lo" && l.index == 1);
    v0 = v0 || (l.name == "v0" && l.kind == "veth");
    v1 = v1 || (l.name == "v1" && l.kind == "veth");
  }
  CHECK(lo);
  CHECK(v0);
  CHECK(v1);
}

TEST_CASE("kernel backend: the probe agrees with iproute2 and leaves nothing behind", "[kernel]") {
  test::Lab lab{kLab};
  const bool expected = iproute2_has_ip6tnl(lab, "t");
  const auto support = lab.enter("t", [] { return tep::io::probe_kernel_tunnels(); });
  INFO(support.reason);
  CHECK(support.available == expected);
  if (!expected) CHECK_THAT(support.reason, Contains("ip6tnl"));
  // The scratch device is gone either way.
  const auto links = lab.run("t", {"ip", "-o", "link", "show"});
  REQUIRE(links.ok());
  CHECK_THAT(links.output, !Contains("dstmprobe"));
}

TEST_CASE("kernel backend: tep with backend kernel starts only where the kernel has ip6tnl",
          "[kernel]") {
  test::Lab lab{kLab};
  const bool has_ip6tnl = iproute2_has_ip6tnl(lab, "t");
  test::TempDir dir;
  const auto socket = (dir / "tep.sock").string();
  const auto config = dir.write("appliance.json", tep_document("kernel", socket));
  test::DaemonProcess tep{in_netns(lab, {TEP_BIN, "--config", config.string()}), dir / "tep.log"};
  const bool ready = tep.wait_ready(std::chrono::milliseconds{kDeadline});
  INFO(tep.log());
  if (!has_ip6tnl) {
    REQUIRE_FALSE(ready);
    const auto status = tep.wait(kDeadline);
    CHECK(status.code.value_or(0) != 0);
    CHECK_THAT(tep.log(), Contains("kernel backend: the kernel has no ip6tnl"));
    return;
  }
  REQUIRE(ready);
  const auto s = status_of(socket);
  CHECK(s.at("backend").as_string() == "kernel");
  // The catch-all device is there, up, with the keepalive address.
  const auto addr = lab.run("t", {"ip", "-4", "-o", "address", "show", "dev", "tep0-a"});
  CHECK(addr.ok());
  CHECK_THAT(addr.output, Contains("192.0.2.201/32"));
  CHECK(tep.terminate(10s).code == 0);
  CHECK_FALSE(lab.run("t", {"ip", "link", "show", "dev", "tep0-a"}).ok());
}

TEST_CASE("kernel backend: tep with backend auto says what it chose", "[kernel]") {
  test::Lab lab{kLab};
  const bool has_ip6tnl = iproute2_has_ip6tnl(lab, "t");
  test::TempDir dir;
  const auto socket = (dir / "tep.sock").string();
  const auto config = dir.write("appliance.json", tep_document("auto", socket));
  test::DaemonProcess tep{in_netns(lab, {TEP_BIN, "--config", config.string()}), dir / "tep.log"};
  const bool ready = tep.wait_ready(std::chrono::milliseconds{kDeadline});
  INFO(tep.log());
  REQUIRE(ready);
  const auto s = status_of(socket);
  if (has_ip6tnl) {
    CHECK(s.at("backend").as_string() == "kernel");
  } else {
    CHECK(s.at("backend").as_string() != "kernel");
    CHECK_THAT(tep.log(), Contains("data path: no kernel ip6tnl"));
  }
  CHECK(tep.terminate(10s).code == 0);
}

TEST_CASE("kernel backend: dstm-client --backend kernel fails clearly without ip6tnl", "[kernel]") {
  test::Lab lab{kLab};
  if (iproute2_has_ip6tnl(lab, "t")) {
    SUCCEED("this kernel has ip6tnl: the client's kernel path is tested end to end elsewhere");
    return;
  }
  test::TempDir dir;
  test::DaemonProcess client{
      in_netns(lab, {DSTM_CLIENT_BIN, "--server", "2001:db8:2::1", "--backend", "kernel"}),
      dir / "client.log"};
  CHECK_FALSE(client.wait_ready(std::chrono::milliseconds{kDeadline}));
  const auto status = client.wait(kDeadline);
  INFO(client.log());
  CHECK(status.code == 1);
  CHECK_THAT(client.log(), Contains("cannot start: kernel backend: the kernel has no ip6tnl"));
}
