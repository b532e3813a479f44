// The relay's UDP sockets: one non-blocking socket per bound endpoint, receiving batches with
// recvmmsg (each datagram with its source endpoint) and sending queued datagrams with sendmmsg.
// No Asio here: the service waits for readiness on native_handle() and then drains.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/bytes.hpp"
#include "platform/error.hpp"
#include "platform/fd.hpp"
#include "relay/endpoint.hpp"
#include "tep_io/packet_io.hpp"

namespace relay_daemon {

class UdpSocket {
 public:
  // An IPv6 endpoint (also "[::]") gets an IPV6_V6ONLY socket, an IPv4 one an AF_INET socket.
  // Port 0 binds an ephemeral port (local() tells which).
  static platform::Result<UdpSocket> open(const relay::Endpoint& bind, int buffer_bytes);

  bool is_v4() const noexcept { return v4_; }
  const relay::Endpoint& local() const noexcept { return local_; }
  int native_handle() const noexcept { return fd_.get(); }

  // Up to batch.capacity() datagrams, each at batch.offset(i) == 0 of its frame, its source in
  // sources[i]. Returns the count (0: nothing waiting).
  platform::Result<std::size_t> receive(tep::io::PacketBatch& batch,
                                        std::vector<relay::Endpoint>& sources);

  // Queues a copy of `packet` for `to` (which must be of this socket's family); flushed when the
  // queue is full and by flush(). Datagrams the kernel would not take now are dropped and
  // counted.
  void queue(const relay::Endpoint& to, core::Bytes packet);
  void flush();

  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t send_drops() const noexcept { return send_drops_; }

 private:
  UdpSocket(platform::Fd fd, bool v4, relay::Endpoint local);

  platform::Fd fd_;
  bool v4_ = false;
  relay::Endpoint local_;
  static constexpr std::size_t kQueue = 64;
  static constexpr std::size_t kSlot = 2048;
  std::vector<std::byte> out_;  // kQueue slots of kSlot bytes
  std::vector<sockaddr_storage> out_addr_;
  std::vector<std::size_t> out_len_;
  std::vector<mmsghdr> tx_msgs_;
  std::vector<iovec> tx_iov_;
  std::size_t queued_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t send_drops_ = 0;
  // Receive scratch, reused.
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> rx_iov_;
  std::vector<sockaddr_storage> rx_addr_;
};

// Socket address <-> Endpoint (IPv4 endpoints as v4-mapped).
relay::Endpoint to_endpoint(const sockaddr_storage& sa) noexcept;
socklen_t to_sockaddr(const relay::Endpoint& e, bool v4, sockaddr_storage& out) noexcept;

}  // namespace relay_daemon
