// Batched UDP sockets for the relay (see udp.hpp).
#include "udp.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace relay_daemon {

relay::Endpoint to_endpoint(const sockaddr_storage& sa) noexcept {
  if (sa.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    return relay::Endpoint::v4(core::Ipv4Address{ntohl(in.sin_addr.s_addr)}, ntohs(in.sin_port));
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
  core::Ipv6Address::Octets b{};
  std::memcpy(b.data(), &in6.sin6_addr, 16);
  return relay::Endpoint{core::Ipv6Address{b}, ntohs(in6.sin6_port)};
}

socklen_t to_sockaddr(const relay::Endpoint& e, bool v4, sockaddr_storage& out) noexcept {
  std::memset(&out, 0, sizeof out);
  if (v4) {
    auto& in = reinterpret_cast<sockaddr_in&>(out);
    in.sin_family = AF_INET;
    in.sin_port = htons(e.port);
    in.sin_addr.s_addr = htonl(e.v4_address().to_uint());
    return sizeof(sockaddr_in);
  }
  auto& in6 = reinterpret_cast<sockaddr_in6&>(out);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(e.port);
  std::memcpy(&in6.sin6_addr, e.address.bytes().data(), 16);
  return sizeof(sockaddr_in6);
}

UdpSocket::UdpSocket(platform::Fd fd, bool v4, relay::Endpoint local)
    : fd_{std::move(fd)},
      v4_{v4},
      local_{local},
      out_(kQueue * kSlot),
      out_addr_(kQueue),
      out_len_(kQueue),
      tx_msgs_(kQueue),
      tx_iov_(kQueue) {}

platform::Result<UdpSocket> UdpSocket::open(const relay::Endpoint& bind, int buffer_bytes) {
  const bool v4 = bind.is_v4();
  platform::Fd fd{::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (!fd) return platform::errno_code(errno);
  const int one = 1;
  if (!v4 && ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    return platform::errno_code(errno);
  // Privileged daemons may exceed rmem_max/wmem_max; otherwise the kernel clamps.
  for (const auto& [force, plain] :
       {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, std::pair{SO_SNDBUFFORCE, SO_SNDBUF}})
    if (::setsockopt(fd.get(), SOL_SOCKET, force, &buffer_bytes, sizeof buffer_bytes) != 0)
      (void)::setsockopt(fd.get(), SOL_SOCKET, plain, &buffer_bytes, sizeof buffer_bytes);
  sockaddr_storage sa{};
  const auto len = to_sockaddr(bind, v4, sa);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0)
    return platform::errno_code(errno);
  socklen_t got = sizeof sa;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &got) != 0)
    return platform::errno_code(errno);
  return UdpSocket{std::move(fd), v4, to_endpoint(sa)};
}

platform::Result<std::size_t> UdpSocket::receive(tep::io::PacketBatch& batch,
                                                 std::vector<relay::Endpoint>& sources) {
  const auto n = batch.capacity();
  rx_msgs_.resize(n);
  rx_iov_.resize(n);
  rx_addr_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto frame = batch.frame(i);
    rx_iov_[i] = iovec{frame.data(), frame.size()};
    rx_msgs_[i] = mmsghdr{};
    rx_msgs_[i].msg_hdr.msg_name = &rx_addr_[i];
    rx_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
    rx_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  const int got =
      ::recvmmsg(fd_.get(), rx_msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  if (got < 0) {
    batch.set_size(0);
    if (errno == EAGAIN || errno == EINTR) return std::size_t{0};
    return platform::errno_code(errno);
  }
  sources.resize(static_cast<std::size_t>(got));
  for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
    batch.set(i, 0, rx_msgs_[i].msg_len);
    sources[i] = to_endpoint(rx_addr_[i]);
  }
  batch.set_size(static_cast<std::size_t>(got));
  return static_cast<std::size_t>(got);
}

void UdpSocket::queue(const relay::Endpoint& to, core::Bytes packet) {
  if (packet.size() > kSlot) {
    ++send_drops_;
    return;
  }
  if (queued_ == kQueue) flush();
  std::memcpy(out_.data() + queued_ * kSlot, packet.data(), packet.size());
  out_len_[queued_] = packet.size();
  (void)to_sockaddr(to, v4_, out_addr_[queued_]);
  ++queued_;
}

void UdpSocket::flush() {
  auto& msgs = tx_msgs_;
  auto& iov = tx_iov_;
  for (std::size_t i = 0; i < queued_; ++i) {
    iov[i] = iovec{out_.data() + i * kSlot, out_len_[i]};
    msgs[i] = mmsghdr{};
    msgs[i].msg_hdr.msg_name = &out_addr_[i];
    msgs[i].msg_hdr.msg_namelen =
        v4_ ? sizeof(sockaddr_in) : static_cast<socklen_t>(sizeof(sockaddr_in6));
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  std::size_t done = 0;
  while (done < queued_) {
    const int n = ::sendmmsg(fd_.get(), msgs.data() + done, static_cast<unsigned>(queued_ - done),
                             MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      sent_ += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // A full buffer drops the rest of the batch; a refused datagram (unreachable...) only itself.
    if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
      send_drops_ += queued_ - done;
      break;
    }
    ++send_drops_;
    ++done;
  }
  queued_ = 0;
}

}  // namespace relay_daemon
