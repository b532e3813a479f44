// Privileged tests of the namespace lab: topology from a description, ping across veths and a
// router, teardown (also after a failure half-way), the stale sweep, and description errors.
#include "support/lab.hpp"

#include <net/if.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

bool in_run_netns(const std::string& name) {
  return std::filesystem::exists(std::filesystem::path{"/run/netns"} / name);
}

// Names under /run/netns made by this process's labs.
std::vector<std::string> our_namespaces() {
  std::vector<std::string> out;
  const std::string prefix = test::Lab::owner_prefix();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{"/run/netns", ec}) {
    const auto name = entry.path().filename().string();
    if (name.starts_with(prefix)) out.push_back(name);
  }
  return out;
}

}  // namespace

TEST_CASE("lab: a veth pair with addresses pings across, and its namespaces go with the lab",
          "[lab]") {
  std::vector<std::string> names;
  {
    test::Lab lab{R"(
      # two namespaces joined by one veth pair
      netns a
      netns b
      veth a:eth0 b:eth0
      addr a eth0 192.0.2.1/24
      addr b eth0 192.0.2.2/24
      addr a eth0 2001:db8:1::1/64
      addr b eth0 2001:db8:1::2/64
    )"};
    names = {lab.netns_name("a"), lab.netns_name("b")};
    CHECK(names[0] != names[1]);
    for (const auto& n : names) {
      CHECK(n.starts_with("appl-" + std::to_string(::getpid()) + "-"));
      CHECK(n.starts_with(test::Lab::owner_prefix()));
      CHECK(in_run_netns(n));
    }

    const auto v4 = lab.run("a", {"ping", "-n", "-c", "1", "-W", "2", "192.0.2.2"});
    INFO(v4.output);
    CHECK(v4.ok());
    const auto v6 = lab.run("b", {"ping", "-6", "-n", "-c", "1", "-W", "2", "2001:db8:1::1"});
    INFO(v6.output);
    CHECK(v6.ok());
  }
  for (const auto& n : names) CHECK_FALSE(in_run_netns(n));
  CHECK(our_namespaces().empty());
}

TEST_CASE("lab: a router namespace forwards between two links", "[lab]") {
  test::Lab lab{R"(
    netns a
    netns r
    netns b
    veth a:eth0 r:left
    veth r:right b:eth0
    sysctl r net.ipv4.ip_forward=1
    sysctl r net.ipv6.conf.all.forwarding=1
    addr a eth0 192.0.2.1/24
    addr r left 192.0.2.254/24
    addr r right 198.51.100.254/24
    addr b eth0 198.51.100.1/24
    addr a eth0 2001:db8:a::1/64
    addr r left 2001:db8:a::fe/64
    addr r right 2001:db8:b::fe/64
    addr b eth0 2001:db8:b::1/64
    route a 198.51.100.0/24 via 192.0.2.254
    route b 192.0.2.0/24 via 198.51.100.254 dev eth0
    route a 2001:db8:b::/64 via 2001:db8:a::fe
    route b 2001:db8:a::/64 via 2001:db8:b::fe
    route a 203.0.113.0/24 dev eth0 table 1000 metric 50
  )"};
  const auto v4 = lab.run("a", {"ping", "-n", "-c", "1", "-W", "2", "198.51.100.1"});
  INFO(v4.output);
  CHECK(v4.ok());
  const auto v6 = lab.run("a", {"ping", "-6", "-n", "-c", "1", "-W", "2", "2001:db8:b::1"});
  INFO(v6.output);
  CHECK(v6.ok());
  const auto table = lab.run("a", {"ip", "route", "show", "table", "1000"});
  CHECK_THAT(table.output, Contains("203.0.113.0/24 dev eth0") && Contains("metric 50"));
  const auto forwarding = lab.run("r", {"cat", "/proc/sys/net/ipv4/ip_forward"});
  CHECK(forwarding.output == "1\n");
}

TEST_CASE("lab: enter runs code on a thread inside the namespace", "[lab]") {
  test::Lab lab{"netns a\nnetns b\nveth a:lab_x0 b:lab_x1"};
  const auto inside = lab.enter("a", [] { return ::if_nametoindex("lab_x0"); });
  CHECK(inside == lab.ifindex("a", "lab_x0"));
  CHECK(lab.enter("b", [] { return ::if_nametoindex("lab_x0"); }) == 0u);
  CHECK(::if_nametoindex("lab_x0") == 0u);  // this thread is still in its own namespace
  CHECK_THROWS_WITH(lab.enter("a", []() -> int { throw std::runtime_error("boom"); }), "boom");
}

TEST_CASE("lab: run reports exit status and output, and kills at the deadline", "[lab]") {
  test::Lab lab{"netns a"};
  const auto done = lab.run("a", {"sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(done.exit_code == 3);
  CHECK_FALSE(done.ok());
  CHECK(done.output == "out\nerr\n");

  // A program that would outlive the test is killed at the deadline.
  const auto stuck = lab.run("a", {"sleep", "60"}, 200ms);
  CHECK(stuck.timed_out);
  CHECK(stuck.signal == SIGKILL);

  CHECK_THROWS_WITH(lab.run("a", {"no-such-program-here"}), Contains("not found"));
}

TEST_CASE("lab: addresses outside the documentation ranges are rejected", "[lab]") {
  const char* bad[] = {
      "netns a\naddr a lo 10.0.0.1/8",        "netns a\naddr a lo 2001:db9::1/64",
      "netns a\naddr a lo fd00::1/64",        "netns a\nroute a 0.0.0.0/0 dev lo",
      "netns a\nroute a 192.0.0.0/16 dev lo", "netns a\nroute a 192.0.2.0/24 via 8.8.8.8",
      "netns a\nroute a ::/0 dev lo",
  };
  for (const char* description : bad) {
    INFO(description);
    CHECK_THROWS_AS(test::Lab{description}, std::invalid_argument);
    CHECK_THROWS_WITH(test::Lab{description}, Contains("line 2"));
  }
  CHECK(our_namespaces().empty());
}

TEST_CASE("lab: description errors name their line and create nothing", "[lab]") {
  CHECK_THROWS_WITH(test::Lab{"netns a\n\nbridge a br0"},
                    Contains("line 3") && Contains("unknown directive"));
  CHECK_THROWS_WITH(test::Lab{"netns a\naddr b lo 192.0.2.1/24"}, Contains("not declared"));
  CHECK_THROWS_WITH(test::Lab{"netns a\nnetns a"}, Contains("twice"));
  CHECK_THROWS_WITH(test::Lab{"netns A"}, Contains("[a-z0-9_]"));
  CHECK_THROWS_WITH(test::Lab{"netns a\nveth a:x a"}, Contains("<ns>:<ifname>"));
  CHECK_THROWS_WITH(test::Lab{"netns a\nroute a 192.0.2.0/24"}, Contains("via or dev"));
  CHECK_THROWS_WITH(test::Lab{"netns a\nsysctl a kernel.panic=1"}, Contains("not under net."));
  CHECK_THROWS_WITH(test::Lab{"netns a\naddr a lo 192.0.2.1"}, Contains("/length"));
  CHECK(our_namespaces().empty());
}

TEST_CASE("lab: a failure half-way tears down what was built", "[lab]") {
  // The second address goes on a link that does not exist: the kernel says no, after the
  // namespaces and the veth were made.
  CHECK_THROWS_WITH(test::Lab{"netns a\nnetns b\nveth a:eth0 b:eth0\naddr a nolink 192.0.2.1/24"},
                    Contains("line 4") && Contains("No such device"));
  CHECK(our_namespaces().empty());
}

TEST_CASE("lab: the sweep deletes namespaces of dead processes only", "[lab]") {
  // A pid that is certainly dead: a child we started and reaped.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);

  const std::string dead = "appl-" + std::to_string(child) + "-1-0-dead";
  // Our pid with another start time: an earlier process that had our pid.
  const std::string reused = "appl-" + std::to_string(::getpid()) + "-1-0-reused";
  const std::string live = test::Lab::owner_prefix() + "999-live";
  for (const auto& name : {dead, reused, live}) test::netns_add(name);
  CHECK(test::netns_exists(dead));
  // Under ctest -j another test's sweep may get there first, so the count is not checked.
  test::Lab::sweep_stale();
  CHECK_FALSE(test::netns_exists(dead));
  CHECK_FALSE(test::netns_exists(reused));
  CHECK(test::netns_exists(live));
  CHECK(test::netns_delete(live));
  CHECK_FALSE(test::netns_exists(live));
  CHECK_FALSE(test::netns_delete(dead));
}
