// The ARR/UDP socket: per-datagram addresses through IPV6_PKTINFO, kernel anycast membership.
#include "anycast_net/udp.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "platform/fd.hpp"

namespace anycast::net {
namespace {

using boost::system::error_code;

error_code last_error() noexcept {
  return {errno, boost::system::system_category()};
}

sockaddr_in6 to_sockaddr(const core::Ipv6Address& address, std::uint16_t port) noexcept {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  std::memcpy(&sa.sin6_addr, address.bytes().data(), sizeof sa.sin6_addr);
  return sa;
}

core::Ipv6Address from_in6(const in6_addr& a) noexcept {
  core::Ipv6Address::Octets bytes{};
  std::memcpy(bytes.data(), &a, bytes.size());
  return core::Ipv6Address{bytes};
}

error_code set_int_option(int fd, int level, int name, int value) noexcept {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) return last_error();
  return {};
}

// Room for one IPV6_PKTINFO control message, aligned as the kernel expects.
struct PktinfoControl {
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> bytes{};
};

// One recvmsg without blocking. Outside the coroutine: its frame cannot hold cmsghdr (a
// flexible array member). Empty: nothing to read now.
std::optional<boost::system::result<DatagramSocket::Received>> receive_now(
    int fd, std::span<std::byte> buffer) noexcept {
  sockaddr_in6 from{};
  iovec iov{buffer.data(), buffer.size()};
  PktinfoControl control{};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes.data();
  msg.msg_controllen = control.bytes.size();
  const auto got = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  if (got < 0) {
    // Another reader or a spurious wakeup took the datagram: wait again.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    return last_error();
  }
  DatagramSocket::Received r;
  r.from = Endpoint{from_in6(from.sin6_addr), ntohs(from.sin6_port)};
  r.size = static_cast<std::size_t>(got);
  r.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      r.to = from_in6(info.ipi6_addr);
    }
  }
  return r;
}

}  // namespace

boost::system::result<DatagramSocket> DatagramSocket::open(boost::asio::any_io_executor executor,
                                                           const core::Ipv6Address& address,
                                                           std::uint16_t port) {
  // Created here rather than by Asio so that SOCK_CLOEXEC is set atomically.
  platform::Fd fd{::socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP)};
  if (!fd) return last_error();
  if (auto ec = set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1)) return ec;
  if (auto ec = set_int_option(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)) return ec;
  const auto sa = to_sockaddr(address, port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return last_error();
  boost::asio::ip::udp::socket socket{std::move(executor)};
  error_code ec;
  socket.assign(boost::asio::ip::udp::v6(), fd.get(), ec);
  if (ec) return ec;
  (void)fd.release();  // owned by the Asio socket now
  return DatagramSocket{std::move(socket)};
}

boost::system::error_code DatagramSocket::join_anycast(const core::Ipv6Address& address,
                                                       unsigned ifindex) {
  ipv6_mreq mreq{};
  std::memcpy(&mreq.ipv6mr_multiaddr, address.bytes().data(), sizeof mreq.ipv6mr_multiaddr);
  mreq.ipv6mr_interface = ifindex;
  if (::setsockopt(socket_.native_handle(), IPPROTO_IPV6, IPV6_JOIN_ANYCAST, &mreq, sizeof mreq) !=
      0)
    return last_error();
  return {};
}

boost::asio::awaitable<boost::system::result<DatagramSocket::Received>> DatagramSocket::receive(
    std::span<std::byte> buffer) {
  for (;;) {
    auto [ec] = co_await socket_.async_wait(boost::asio::ip::udp::socket::wait_read,
                                            boost::asio::as_tuple(boost::asio::use_awaitable));
    if (ec) co_return ec;
    if (auto r = receive_now(socket_.native_handle(), buffer)) co_return std::move(*r);
  }
}

boost::system::error_code DatagramSocket::send(const Outgoing& out) noexcept {
  auto to = to_sockaddr(out.destination.address, out.destination.port);
  // sendmsg does not write through the iovec; the cast only satisfies its C signature.
  iovec iov{const_cast<std::byte*>(out.bytes.data()), out.bytes.size()};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = sizeof to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  PktinfoControl control{};
  if (!out.source.is_unspecified()) {
    msg.msg_control = control.bytes.data();
    msg.msg_controllen = control.bytes.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo info{};
    std::memcpy(&info.ipi6_addr, out.source.bytes().data(), sizeof info.ipi6_addr);
    info.ipi6_ifindex = 0;  // the routing table picks the interface
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
  }
  for (;;) {
    if (::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return {};
    if (errno != EINTR) return last_error();
  }
}

std::uint16_t DatagramSocket::local_port() const noexcept {
  error_code ec;
  const auto endpoint = socket_.local_endpoint(ec);
  return ec ? std::uint16_t{0} : endpoint.port();
}

void DatagramSocket::close() noexcept {
  error_code ec;
  socket_.close(ec);
}

}  // namespace anycast::net
