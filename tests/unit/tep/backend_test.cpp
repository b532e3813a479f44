// Tests for tep_io/backend.hpp (the backend choice, with the kernel's answer injected) and
// tep_io/kernel_tunnels.hpp's packet reading (which copies of the raw socket the kernel carried).
#include "tep_io/backend.hpp"

#include <catch2/catch.hpp>
#include <cerrno>

#include "support/packet_builder.hpp"
#include "tep_io/kernel_tunnels.hpp"

namespace {

using tep::io::Backend;
using tep::io::KernelSupport;

platform::NetlinkError kernel_error(int e, std::string text = {}) {
  return {platform::errno_code(e), std::move(text)};
}

// A probe that answers `support` and counts its calls.
struct FakeProbe {
  KernelSupport support;
  int calls = 0;
  KernelSupport operator()() {
    ++calls;
    return support;
  }
};

const KernelSupport kAvailable{true, {}};
const KernelSupport kMissing{false, "the kernel has no ip6tnl"};

}  // namespace

TEST_CASE("backend: names parse back, kernel included", "[backend]") {
  for (auto b : {Backend::Auto, Backend::Bpf, Backend::User, Backend::Kernel})
    CHECK(tep::io::parse_backend(tep::io::backend_name(b)) == b);
  CHECK(tep::io::parse_backend("kernel") == Backend::Kernel);
  CHECK_FALSE(tep::io::parse_backend("ip6tnl"));
}

TEST_CASE("backend: auto picks the kernel when it can create ip6tnl devices", "[backend]") {
  FakeProbe probe{kAvailable};
  const auto c = tep::io::choose_backend(Backend::Auto, std::ref(probe));
  CHECK(c.backend == Backend::Kernel);
  CHECK_FALSE(c.error);
  CHECK(probe.calls == 1);
  CHECK_THAT(c.note, Catch::Contains("kernel ip6tnl"));
}

TEST_CASE("backend: auto falls back to BPF-else-user and says why", "[backend]") {
  FakeProbe probe{kMissing};
  const auto c = tep::io::choose_backend(Backend::Auto, std::ref(probe));
  CHECK(c.backend == Backend::Auto);
  CHECK_FALSE(c.error);
  CHECK_THAT(c.note, Catch::Contains("the kernel has no ip6tnl"));
}

TEST_CASE("backend: kernel without ip6tnl is a start error naming the reason", "[backend]") {
  FakeProbe probe{kMissing};
  const auto c = tep::io::choose_backend(Backend::Kernel, std::ref(probe));
  REQUIRE(c.error);
  CHECK(*c.error == "kernel backend: the kernel has no ip6tnl");
  FakeProbe there{kAvailable};
  const auto ok = tep::io::choose_backend(Backend::Kernel, std::ref(there));
  CHECK(ok.backend == Backend::Kernel);
  CHECK_FALSE(ok.error);
}

TEST_CASE("backend: bpf and user never probe the kernel", "[backend]") {
  FakeProbe probe{kAvailable};
  CHECK(tep::io::choose_backend(Backend::Bpf, std::ref(probe)).backend == Backend::Bpf);
  CHECK(tep::io::choose_backend(Backend::User, std::ref(probe)).backend == Backend::User);
  CHECK(probe.calls == 0);
}

TEST_CASE("backend: the kernel's answer to a scratch ip6tnl device", "[backend]") {
  CHECK(tep::io::kernel_support_from(std::nullopt).available);
  // The kind is known; a device of that name or with those end points exists.
  CHECK(tep::io::kernel_support_from(kernel_error(EEXIST)).available);
  const auto unknown =
      tep::io::kernel_support_from(kernel_error(EOPNOTSUPP, "Unknown device type"));
  CHECK_FALSE(unknown.available);
  CHECK_THAT(unknown.reason, Catch::Contains("CONFIG_IPV6_TUNNEL"));
  CHECK_THAT(unknown.reason, Catch::Contains("Unknown device type"));
  const auto denied = tep::io::kernel_support_from(kernel_error(EPERM));
  CHECK_FALSE(denied.available);
  CHECK_THAT(denied.reason, Catch::Contains("CAP_NET_ADMIN"));
  CHECK_FALSE(tep::io::kernel_support_from(kernel_error(EINVAL)).available);
}

TEST_CASE("kernel tunnels: the outer and inner sources of a tunnel packet", "[backend]") {
  const auto inner =
      test::PacketBuilder{}.ipv4("198.51.100.7", "203.0.113.9").udp(5000, 53).bytes();
  const auto packet =
      test::PacketBuilder{}.ipv6("2001:db8:c1::2", "2001:db8:e1::2", 4).raw(inner).bytes();
  const auto s = tep::io::tunnel_sources(packet);
  REQUIRE(s);
  CHECK(s->first == test::v6("2001:db8:c1::2"));
  CHECK(s->second == test::v4("198.51.100.7"));
  // Not IPv4-in-IPv6, or cut short: nothing.
  const auto udp6 =
      test::PacketBuilder{}.ipv6("2001:db8:c1::2", "2001:db8:e1::2", 17).raw(inner).bytes();
  CHECK_FALSE(tep::io::tunnel_sources(udp6));
  CHECK_FALSE(tep::io::tunnel_sources(core::Bytes{packet}.first(55)));
}

TEST_CASE("kernel tunnels: client device names are stable and recognised for the sweep",
          "[backend]") {
  const auto name = tep::io::kernel_device_name("tep0", test::v6("2001:db8:c1::2"));
  CHECK(name.size() == 13);
  CHECK(name.starts_with("tep0k"));
  CHECK(name == tep::io::kernel_device_name("tep0", test::v6("2001:db8:c1::2")));
  CHECK(name != tep::io::kernel_device_name("tep0", test::v6("2001:db8:c1::3")));
  CHECK(tep::io::is_kernel_device_name("tep0", name));
  // A long interface name is cut to 6 bytes: the name stays within IFNAMSIZ - 1.
  const auto long_name = tep::io::kernel_device_name("tep-long0", test::v6("2001:db8:c1::2"));
  CHECK(long_name.size() == 15);
  CHECK(tep::io::is_kernel_device_name("tep-long0", long_name));
  // Not ours: the catch-all, the TUN device, another prefix, upper-case or short suffixes.
  CHECK_FALSE(tep::io::is_kernel_device_name("tep0", "tep0-a"));
  CHECK_FALSE(tep::io::is_kernel_device_name("tep0", "tep0"));
  CHECK_FALSE(tep::io::is_kernel_device_name("tep1", name));
  CHECK_FALSE(tep::io::is_kernel_device_name("tep0", "tep0k1F2E3D4C"));
  CHECK_FALSE(tep::io::is_kernel_device_name("tep0", "tep0k1f2e3d4"));
}
