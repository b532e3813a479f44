// SOCK_SEQPACKET Unix domain sockets for Asio, the transport of the query protocol
// (anycast/query.hpp), for the resolver that serves it and the clients that ask. Boost 1.81 has
// local::stream_protocol and local::datagram_protocol but no local::seq_packet_protocol; this is
// the same Protocol with SOCK_SEQPACKET.
#pragma once

#include <sys/socket.h>

#include <boost/asio/basic_seq_packet_socket.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/local/basic_endpoint.hpp>

namespace anycast::net {

class SeqPacketProtocol {
 public:
  int type() const noexcept { return SOCK_SEQPACKET; }
  int protocol() const noexcept { return 0; }
  int family() const noexcept { return AF_UNIX; }

  using endpoint = boost::asio::local::basic_endpoint<SeqPacketProtocol>;
  using socket = boost::asio::basic_seq_packet_socket<SeqPacketProtocol>;
  using acceptor = boost::asio::basic_socket_acceptor<SeqPacketProtocol>;
};

}  // namespace anycast::net
