// Binding sockets to an IPv6 address of this host that is still tentative. Duplicate address
// detection holds a newly added address back for a second or two, and bind() refuses it
// meanwhile (EADDRNOTAVAIL); on the appliance the daemons start right after the init adds its
// static addresses, so a daemon told to listen on one of them would fail its first start. An
// address the kernel lists as tentative is bound with IPV6_FREEBIND instead: the socket serves
// once the address is usable. An address this host does not have is still refused.
#pragma once

#include <array>
#include <cstdint>

#include <boost/system/error_code.hpp>

namespace platform {

using Ipv6Bytes = std::array<std::uint8_t, 16>;

// Whether `address` is on an interface of the calling thread's network namespace and tentative
// (IFA_F_TENTATIVE in /proc/thread-self/net/if_inet6).
bool ipv6_tentative(const Ipv6Bytes& address);

// After a bind of `fd` to `address` failed with EADDRNOTAVAIL: when the address is tentative,
// sets IPV6_FREEBIND on `fd` and returns true (bind again); otherwise false.
bool allow_tentative_bind(int fd, const Ipv6Bytes& address);

// socket.bind(endpoint, ec) for an Asio socket or acceptor, retried once through
// allow_tentative_bind when the IPv6 address is tentative.
template <typename Socket, typename Endpoint>
void bind_local(Socket& socket, const Endpoint& endpoint, boost::system::error_code& ec) {
  socket.bind(endpoint, ec);
  if (ec != boost::system::errc::address_not_available || !endpoint.address().is_v6()) return;
  if (!allow_tentative_bind(socket.native_handle(), endpoint.address().to_v6().to_bytes())) return;
  ec.clear();
  socket.bind(endpoint, ec);
}

}  // namespace platform
