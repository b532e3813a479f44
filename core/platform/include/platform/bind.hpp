// Binding sockets to an IPv6 address of this host that is still tentative. Duplicate address
// detection holds a newly added address back for a second or two, and bind() refuses it
// meanwhile (EADDRNOTAVAIL); on the appliance the daemons start right after the init adds its
// static addresses, so a daemon told to listen on one of them would fail its first start. An
// address the kernel lists as tentative is bound with IPV6_FREEBIND instead: the socket serves
// once the address is usable. An address this host does not have is still refused.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>

#include <boost/system/error_code.hpp>

namespace platform {

using Ipv6Bytes = std::array<std::uint8_t, 16>;

// Whether `address` is on an interface of the calling thread's network namespace and tentative
// (IFA_F_TENTATIVE in /proc/thread-self/net/if_inet6).
bool ipv6_tentative(const Ipv6Bytes& address);

// bind(fd, address, length), retried once with IPV6_FREEBIND when it failed with EADDRNOTAVAIL
// for an IPv6 address that is tentative. 0, or the errno of the bind that counts.
int bind_local(int fd, const sockaddr* address, socklen_t length);

// The same for an Asio socket or acceptor.
template <typename Socket, typename Endpoint>
void bind_local(Socket& socket, const Endpoint& endpoint, boost::system::error_code& ec) {
  const int error = bind_local(socket.native_handle(), endpoint.data(),
                               static_cast<socklen_t>(endpoint.size()));
  ec = boost::system::error_code{error, boost::system::system_category()};
}

}  // namespace platform
