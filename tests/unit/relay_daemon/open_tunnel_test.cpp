// Tests for open_tunnel.hpp: the forwarding switches and the warnings when they are off.
#include "open_tunnel.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

TEST_CASE("open tunnel: a family with a NAT address and forwarding off or unknown is warned of",
          "[relay_daemon][open_tunnel]") {
  relay_daemon::OpenTunnelConfig c;
  c.address4 = core::Ipv4Address::parse("198.51.100.7").value();
  using relay_daemon::Forwarding;
  CHECK(relay_daemon::forwarding_warnings(c, Forwarding{.ipv4 = true, .ipv6 = false}).empty());
  const auto off = relay_daemon::forwarding_warnings(c, Forwarding{.ipv4 = false, .ipv6 = true});
  REQUIRE(off.size() == 1);
  CHECK(off[0].find("net.ipv4.ip_forward") != std::string::npos);
  CHECK(off[0].find("198.51.100.7") != std::string::npos);
  c.address6 = core::Ipv6Address::parse("2001:db8:40::7").value();
  CHECK(relay_daemon::forwarding_warnings(c, Forwarding{.ipv4 = std::nullopt, .ipv6 = std::nullopt})
            .size() == 2);
}

TEST_CASE("open tunnel: the forwarding switches are read from sysctl files",
          "[relay_daemon][open_tunnel]") {
  const auto root =
      std::filesystem::temp_directory_path() / ("open-tunnel-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "ipv4");
  std::filesystem::create_directories(root / "ipv6/conf/all");
  std::ofstream{root / "ipv4/ip_forward"} << "1\n";
  std::ofstream{root / "ipv6/conf/all/forwarding"} << "0\n";
  CHECK(relay_daemon::read_forwarding(root.string()) ==
        relay_daemon::Forwarding{.ipv4 = true, .ipv6 = false});
  std::filesystem::remove_all(root);
  // A directory without them: unknown, not off.
  CHECK(relay_daemon::read_forwarding(root.string()) ==
        relay_daemon::Forwarding{.ipv4 = std::nullopt, .ipv6 = std::nullopt});
}
