// platform/bind.hpp in a namespace with duplicate address detection on: a daemon's listener and
// a UDP socket bind to a static address added a moment before (still tentative), which a plain
// bind() refuses; an address the host does not have stays refused.
#include "platform/bind.hpp"

#include <cstdlib>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <catch2/catch.hpp>

#include "support/lab.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::make_address_v6;

}  // namespace

TEST_CASE("bind: listeners bind to an address still in duplicate address detection",
          "[bind]") {
  test::Lab lab{R"(
    netns a
    netns b
    veth a:eth0 b:eth0
  )"};
  // The lab turns duplicate address detection off; a box has it on. Two addresses: one for the
  // plain bind that must fail, one for bind_local (each is tentative for about a second).
  const auto added = std::system(
      fmt::format("ip netns exec {0} sysctl -qw net.ipv6.conf.eth0.accept_dad=1 && "
                  "ip -n {0} link set eth0 up && "
                  "ip -n {0} addr add 2001:db8:1::10/64 dev eth0 && "
                  "ip -n {0} addr add 2001:db8:1::11/64 dev eth0",
                  lab.netns_name("a"))
          .c_str());
  REQUIRE(added == 0);
  lab.enter("a", [] {
    asio::io_context io;
    const auto plain = make_address_v6("2001:db8:1::10");
    const auto fresh = make_address_v6("2001:db8:1::11");
    // Still tentative here: the detection takes a second at least.
    REQUIRE(platform::ipv6_tentative(plain.to_bytes()));
    REQUIRE(platform::ipv6_tentative(fresh.to_bytes()));

    boost::system::error_code ec;
    asio::ip::tcp::acceptor refused{io, asio::ip::tcp::v6()};
    refused.bind({plain, 0}, ec);
    CHECK(ec == boost::system::errc::address_not_available);  // what the daemons used to hit

    asio::ip::tcp::acceptor listener{io, asio::ip::tcp::v6()};
    platform::bind_local(listener, asio::ip::tcp::endpoint{fresh, 0}, ec);
    CHECK_FALSE(ec);
    listener.listen(asio::socket_base::max_listen_connections, ec);
    CHECK_FALSE(ec);
    CHECK(listener.local_endpoint().address() == fresh);

    asio::ip::udp::socket udp{io, asio::ip::udp::v6()};
    platform::bind_local(udp, asio::ip::udp::endpoint{fresh, 0}, ec);
    CHECK_FALSE(ec);

    // Not an address of this host: refused as before.
    asio::ip::tcp::acceptor other{io, asio::ip::tcp::v6()};
    platform::bind_local(other, asio::ip::tcp::endpoint{make_address_v6("2001:db8:1::99"), 0},
                         ec);
    CHECK(ec == boost::system::errc::address_not_available);
    CHECK_FALSE(platform::ipv6_tentative(make_address_v6("2001:db8:1::99").to_bytes()));
  });
}
