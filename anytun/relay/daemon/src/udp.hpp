// The relay's UDP sockets: one non-blocking socket per bound endpoint, receiving batches with
// recvmmsg (each datagram with its source endpoint) and sending queued datagrams with sendmmsg.
// No Asio here: the service waits for readiness on native_handle() and then drains.
//
// Segmentation offloads cut the kernel's cost per datagram, which is what limits a tunnel
// (docs/benchmarks.md): consecutive queued datagrams to one destination of one size (the last of a
// run may be shorter) leave as one UDP GSO message (UDP_SEGMENT), and the socket takes UDP GRO
// messages (several datagrams of one source coalesced by the kernel), which receive() cuts into
// their datagrams again. Where the kernel refuses either, the socket falls back to one datagram
// per message.
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

  // Up to batch.capacity() datagrams, each at batch.offset(i) == 0 of its own frame, its source
  // in sources[i]. Returns the count (0: nothing waiting). Datagrams of a coalesced message that
  // do not fit are kept for the next call.
  platform::Result<std::size_t> receive(tep::io::PacketBatch& batch,
                                        std::vector<relay::Endpoint>& sources);

  // Queues a copy of `packet` for `to` (which must be of this socket's family); flushed when the
  // queue is full and by flush(). Datagrams the kernel would not take now are dropped and
  // counted.
  void queue(const relay::Endpoint& to, core::Bytes packet);
  void flush();

  std::uint64_t sent() const noexcept { return sent_; }
  std::uint64_t send_drops() const noexcept { return send_drops_; }
  // Messages handed to the kernel (fewer than sent() when runs left as one GSO message), and
  // messages received (fewer than the datagrams when the kernel coalesced them).
  std::uint64_t send_messages() const noexcept { return send_messages_; }
  std::uint64_t receive_messages() const noexcept { return receive_messages_; }
  bool gso() const noexcept { return gso_; }
  bool gro() const noexcept { return gro_; }

 private:
  UdpSocket(platform::Fd fd, bool v4, relay::Endpoint local, bool gro);

  // How many queued datagrams from `first` on can leave as one message (1 without GSO).
  std::size_t run_length(std::size_t first, bool gso) const noexcept;
  // Sends tx_msgs_ [0, count), which cover the queued datagrams. 0, or the errno with which the
  // kernel refused a GSO message as such: the datagrams sent are then removed from the queue
  // and the caller sends the rest without GSO.
  int send_messages(std::size_t count);
  platform::Result<std::size_t> fill_pending();

  platform::Fd fd_;
  bool v4_ = false;
  relay::Endpoint local_;
  bool gso_ = true;  // until the kernel refuses a UDP_SEGMENT message
  bool gro_ = false;
  // Large enough for the segments of a 64 KB TCP super-packet read from the TUN.
  static constexpr std::size_t kQueue = 128;
  static constexpr std::size_t kSlot = 2048;
  // A GSO message: at most 64 segments (the kernel's UDP_MAX_SEGMENTS) and a 16-bit length.
  static constexpr std::size_t kMaxSegments = 64;
  static constexpr std::size_t kMaxGsoBytes = 65000;
  static constexpr std::size_t kControlBytes = 64;  // one cmsg of an int, aligned
  std::vector<std::byte> out_;                      // kQueue slots of kSlot bytes
  std::vector<sockaddr_storage> out_addr_;
  std::vector<std::size_t> out_len_;
  std::vector<mmsghdr> tx_msgs_;
  std::vector<iovec> tx_iov_;
  std::vector<std::byte> tx_control_;
  std::vector<std::size_t> tx_count_;  // datagrams per message
  std::size_t queued_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t send_drops_ = 0;
  std::uint64_t send_messages_ = 0;
  std::uint64_t receive_messages_ = 0;
  // Messages received and not yet cut into datagrams: message pending_next_ of pending_count_,
  // from byte pending_offset_.
  static constexpr std::size_t kRxMessages = 16;
  tep::io::PacketBatch rx_{kRxMessages};
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> rx_iov_;
  std::vector<sockaddr_storage> rx_addr_;
  std::vector<std::byte> rx_control_;
  std::vector<std::size_t> rx_segment_;  // each message's datagram size (its length: one)
  std::size_t pending_count_ = 0;
  std::size_t pending_next_ = 0;
  std::size_t pending_offset_ = 0;
};

// Socket address <-> Endpoint (IPv4 endpoints as v4-mapped).
relay::Endpoint to_endpoint(const sockaddr_storage& sa) noexcept;
socklen_t to_sockaddr(const relay::Endpoint& e, bool v4, sockaddr_storage& out) noexcept;

}  // namespace relay_daemon
