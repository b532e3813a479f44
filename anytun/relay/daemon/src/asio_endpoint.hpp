// relay::Endpoint <-> Asio TCP endpoints, for the daemon's TCP parts (transport, cluster links,
// anytun sync). An IPv4-mapped peer address (an IPv4 client of a dual-stack socket) becomes an
// IPv4 endpoint, as relay::Endpoint keeps IPv4.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include "relay/endpoint.hpp"

namespace relay_daemon {

inline boost::asio::ip::tcp::endpoint to_asio(const relay::Endpoint& e) {
  namespace ip = boost::asio::ip;
  if (e.is_v4()) return {ip::address_v4{e.v4_address().to_uint()}, e.port};
  return {ip::address_v6{e.address.bytes()}, e.port};
}

inline relay::Endpoint from_asio(const boost::asio::ip::tcp::endpoint& e) {
  namespace ip = boost::asio::ip;
  auto a = e.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = ip::make_address_v4(ip::v4_mapped, a.to_v6());
  if (a.is_v4()) return relay::Endpoint::v4(core::Ipv4Address{a.to_v4().to_uint()}, e.port());
  return relay::Endpoint{core::Ipv6Address{a.to_v6().to_bytes()}, e.port()};
}

}  // namespace relay_daemon
