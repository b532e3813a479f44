// Batched UDP sockets for the relay (see udp.hpp).
#include "udp.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "platform/bind.hpp"

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

UdpSocket::UdpSocket(platform::Fd fd, bool v4, relay::Endpoint local, bool gro)
    : fd_{std::move(fd)},
      v4_{v4},
      local_{local},
      gro_{gro},
      out_(kQueue * kSlot),
      out_addr_(kQueue),
      out_len_(kQueue),
      tx_msgs_(kQueue),
      tx_iov_(kQueue),
      tx_control_(kQueue * kControlBytes),
      tx_count_(kQueue),
      rx_msgs_(kRxMessages),
      rx_iov_(kRxMessages),
      rx_addr_(kRxMessages),
      rx_control_(kRxMessages * kControlBytes),
      rx_segment_(kRxMessages) {}

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
  // A kernel without UDP GRO delivers datagrams one by one, which receive() handles the same.
  const bool gro = ::setsockopt(fd.get(), SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  sockaddr_storage sa{};
  const auto len = to_sockaddr(bind, v4, sa);
  // Also to a static address still in duplicate address detection (platform/bind.hpp).
  if (const int e = platform::bind_local(fd.get(), reinterpret_cast<sockaddr*>(&sa), len); e != 0)
    return platform::errno_code(e);
  socklen_t got = sizeof sa;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &got) != 0)
    return platform::errno_code(errno);
  return UdpSocket{std::move(fd), v4, to_endpoint(sa), gro};
}

platform::Result<std::size_t> UdpSocket::fill_pending() {
  for (std::size_t i = 0; i < kRxMessages; ++i) {
    const auto frame = rx_.frame(i);
    rx_iov_[i] = iovec{frame.data(), frame.size()};
    rx_msgs_[i] = mmsghdr{};
    auto& h = rx_msgs_[i].msg_hdr;
    h.msg_name = &rx_addr_[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &rx_iov_[i];
    h.msg_iovlen = 1;
    h.msg_control = rx_control_.data() + i * kControlBytes;
    h.msg_controllen = kControlBytes;
  }
  const int got = ::recvmmsg(fd_.get(), rx_msgs_.data(), static_cast<unsigned>(kRxMessages),
                             MSG_DONTWAIT, nullptr);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return std::size_t{0};
    return platform::errno_code(errno);
  }
  for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
    auto& h = rx_msgs_[i].msg_hdr;
    rx_segment_[i] = rx_msgs_[i].msg_len;
    for (auto* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c))
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int size = 0;
        std::memcpy(&size, CMSG_DATA(c), sizeof size);
        if (size > 0) rx_segment_[i] = static_cast<std::size_t>(size);
      }
  }
  receive_messages_ += static_cast<std::uint64_t>(got);
  pending_count_ = static_cast<std::size_t>(got);
  pending_next_ = 0;
  pending_offset_ = 0;
  return pending_count_;
}

platform::Result<std::size_t> UdpSocket::receive(tep::io::PacketBatch& batch,
                                                 std::vector<relay::Endpoint>& sources) {
  // Each datagram is copied to its own frame: the TUN writer merges TCP segments in place after
  // the first one, which needs the rest of that frame to itself.
  std::size_t out = 0;
  sources.resize(batch.capacity());
  while (out < batch.capacity()) {
    if (pending_next_ == pending_count_) {
      if (out > 0) break;  // deliver these first; the socket is drained on the next call
      auto got = fill_pending();
      if (!got) {
        batch.set_size(0);
        return got.error();
      }
      if (*got == 0) break;
    }
    const auto i = pending_next_;
    const std::size_t total = rx_msgs_[i].msg_len;
    const auto size = std::min(rx_segment_[i], total - pending_offset_);
    std::memcpy(batch.frame(out).data(), rx_.frame(i).data() + pending_offset_, size);
    batch.set(out, 0, size);
    sources[out] = to_endpoint(rx_addr_[i]);
    ++out;
    pending_offset_ += size;
    if (pending_offset_ >= total || size == 0) {
      ++pending_next_;
      pending_offset_ = 0;
    }
  }
  sources.resize(out);
  batch.set_size(out);
  return out;
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

std::size_t UdpSocket::run_length(std::size_t first, bool gso) const noexcept {
  if (!gso) return 1;
  const auto size = out_len_[first];
  const auto addr_len = v4_ ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  std::size_t n = 1;
  std::size_t bytes = size;
  while (first + n < queued_ && n < kMaxSegments) {
    const auto next = first + n;
    if (out_len_[next] > size || bytes + out_len_[next] > kMaxGsoBytes ||
        std::memcmp(&out_addr_[next], &out_addr_[first], addr_len) != 0)
      break;
    bytes += out_len_[next];
    ++n;
    if (out_len_[next] < size) break;  // a shorter datagram ends the run
  }
  return n;
}

void UdpSocket::flush() {
  bool gso = gso_;
  while (queued_ > 0) {
    // One message per run of datagrams; the iovecs of a message are consecutive in tx_iov_.
    std::size_t count = 0;
    for (std::size_t first = 0; first < queued_; ++count) {
      const auto n = run_length(first, gso);
      for (std::size_t k = 0; k < n; ++k)
        tx_iov_[first + k] = iovec{out_.data() + (first + k) * kSlot, out_len_[first + k]};
      auto& msg = tx_msgs_[count];
      msg = mmsghdr{};
      auto& h = msg.msg_hdr;
      h.msg_name = &out_addr_[first];
      h.msg_namelen = v4_ ? sizeof(sockaddr_in) : static_cast<socklen_t>(sizeof(sockaddr_in6));
      h.msg_iov = &tx_iov_[first];
      h.msg_iovlen = n;
      if (n > 1) {
        h.msg_control = tx_control_.data() + count * kControlBytes;
        h.msg_controllen = CMSG_SPACE(sizeof(std::uint16_t));
        auto* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto segment = static_cast<std::uint16_t>(out_len_[first]);
        std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
      }
      tx_count_[count] = n;
      first += n;
    }
    const int refused = send_messages(count);
    if (refused == 0) break;
    // Refused as GSO: the rest again, one message each. EIO: the device cannot (for good);
    // EINVAL: this run could not (a datagram above the path MTU, which alone is fragmented).
    if (refused == EIO) gso_ = false;
    gso = false;
  }
  queued_ = 0;
}

int UdpSocket::send_messages(std::size_t count) {
  std::size_t done = 0;
  while (done < count) {
    const int n = ::sendmmsg(fd_.get(), tx_msgs_.data() + done, static_cast<unsigned>(count - done),
                             MSG_DONTWAIT);
    if (n > 0) {
      for (std::size_t k = done; k < done + static_cast<std::size_t>(n); ++k) sent_ += tx_count_[k];
      done += static_cast<std::size_t>(n);
      send_messages_ += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // A device or kernel without UDP GSO refuses the message as a whole; nothing of it was sent.
    if (n < 0 && (errno == EIO || errno == EINVAL) && tx_count_[done] > 1) {
      const int refused = errno;
      // Keep what was sent; the caller resends from the refused message on without GSO.
      const auto sent_datagrams = [&] {
        std::size_t s = 0;
        for (std::size_t k = 0; k < done; ++k) s += tx_count_[k];
        return s;
      }();
      std::memmove(out_.data(), out_.data() + sent_datagrams * kSlot,
                   (queued_ - sent_datagrams) * kSlot);
      std::memmove(out_len_.data(), out_len_.data() + sent_datagrams,
                   (queued_ - sent_datagrams) * sizeof(std::size_t));
      std::memmove(out_addr_.data(), out_addr_.data() + sent_datagrams,
                   (queued_ - sent_datagrams) * sizeof(sockaddr_storage));
      queued_ -= sent_datagrams;
      return refused;
    }
    // A full buffer drops the rest of the batch; a refused message (unreachable...) only itself.
    if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
      for (std::size_t k = done; k < count; ++k) send_drops_ += tx_count_[k];
      break;
    }
    send_drops_ += tx_count_[done];
    ++done;
  }
  return 0;
}

}  // namespace relay_daemon
