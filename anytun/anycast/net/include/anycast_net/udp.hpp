// The ARR/UDP socket of members and resolvers: UDP over IPv6 with the destination address of
// every received datagram (IPV6_RECVPKTINFO) and the source of every sent one chosen per
// datagram (IPV6_PKTINFO), so a member can answer from its unicast address and send a HoTI from
// its anycast address; and kernel anycast membership (IPV6_JOIN_ANYCAST).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/system/result.hpp>

#include "anycast/exchange.hpp"
#include "core/address.hpp"

namespace anycast::net {


class DatagramSocket {
 public:
  // Binds [address]:port (port 0: ephemeral), IPV6_V6ONLY, IPV6_RECVPKTINFO, non-blocking,
  // SOCK_CLOEXEC. Errors are the system's (EADDRINUSE, EADDRNOTAVAIL, ...).
  static boost::system::result<DatagramSocket> open(boost::asio::any_io_executor executor,
                                                    const core::Ipv6Address& address,
                                                    std::uint16_t port);

  // Kernel anycast membership for `address` on interface `ifindex`, held while the socket is open
  // (CAP_NET_ADMIN; EADDRNOTAVAIL unless forwarding is on or the address is on-link).
  boost::system::error_code join_anycast(const core::Ipv6Address& address, unsigned ifindex);

  struct Received {
    Endpoint from;           // source address and port
    core::Ipv6Address to;    // the destination address it was sent to (from IPV6_PKTINFO)
    std::size_t size = 0;    // bytes in the buffer; a datagram larger than the buffer is
    bool truncated = false;  // cut (MSG_TRUNC) and reported so
  };
  // Waits for the next datagram. Errors: operation_aborted after close(), or the system's.
  boost::asio::awaitable<boost::system::result<Received>> receive(std::span<std::byte> buffer);

  // Sends one datagram from out.source (unspecified: the kernel's choice) without blocking;
  // EAGAIN and every other failure are returned for the caller to count.
  boost::system::error_code send(const Outgoing& out) noexcept;

  std::uint16_t local_port() const noexcept;
  void close() noexcept;

 private:
  explicit DatagramSocket(boost::asio::ip::udp::socket socket) : socket_{std::move(socket)} {}
  boost::asio::ip::udp::socket socket_;
};

}  // namespace anycast::net
