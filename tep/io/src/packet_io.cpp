// The 4over6 backend's I/O: packet batches, TUN queue reads/writes, raw IPv6 tunnel sockets with
// recvmmsg/sendmmsg and the IPv6 header rebuilt from ancillary data.
#include "tep_io/packet_io.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "core/ipv6.hpp"
#include "platform/bind.hpp"

namespace tep::io {

namespace {

using platform::errno_code;

// recvmmsg/sendmmsg work in chunks of this many messages: their headers live on the stack
// (about 15 KiB for receive), and a batch larger than a chunk costs one more system call per
// chunk, which is noise next to the per-packet work.
constexpr std::size_t kChunk = 64;

// The largest payload a raw IPv6 socket hands us: the IPv6 payload length is 16 bits (no
// jumbograms). Anything longer comes back with MSG_TRUNC.
constexpr std::size_t kMaxPayload = 0xffff;
static_assert(core::kIpv6HeaderLength + kMaxPayload <= kFrameSize);

// Room for the three ancillary messages we ask for (IPV6_PKTINFO, IPV6_TCLASS, IPV6_HOPLIMIT),
// with slack: a shortfall would show as MSG_CTRUNC and cost packets.
constexpr std::size_t kControlSize =
    CMSG_SPACE(sizeof(in6_pktinfo)) + 2 * CMSG_SPACE(sizeof(int)) + 64;
struct alignas(cmsghdr) ControlBuffer {
  std::array<std::byte, kControlSize> bytes;
};

constexpr std::uint8_t kIpip = 4;  // next header of an IPv4 packet (IPPROTO_IPIP)

core::Ipv6Address to_address(const in6_addr& a) noexcept {
  core::Ipv6Address::Octets octets{};
  static_assert(sizeof(a.s6_addr) == octets.size());
  std::memcpy(octets.data(), a.s6_addr, octets.size());
  return core::Ipv6Address{octets};
}

in6_addr to_in6(const core::Ipv6Address& a) noexcept {
  in6_addr out{};
  std::memcpy(out.s6_addr, a.bytes().data(), sizeof(out.s6_addr));
  return out;
}

// Binds `fd` to `address`, also while the address is still tentative (platform/bind.hpp), so
// that a TEP started with the box (whose static address was just added) does not fail.
int bind_local(int fd, const core::Ipv6Address& address) {
  sockaddr_in6 bound{};
  bound.sin6_family = AF_INET6;
  bound.sin6_addr = to_in6(address);
  return platform::bind_local(fd, reinterpret_cast<const sockaddr*>(&bound), sizeof(bound));
}

// The IPv6 header fields the kernel reports beside a raw socket's payload.
struct Ancillary {
  std::optional<core::Ipv6Address> destination;
  std::optional<std::uint8_t> traffic_class;
  std::optional<std::uint8_t> hop_limit;
};

// An int-valued IPV6_TCLASS / IPV6_HOPLIMIT message, which the kernel fills with 0..255.
std::optional<std::uint8_t> byte_value(const cmsghdr& c, std::size_t data_length) noexcept {
  int v = 0;
  if (data_length < sizeof(v)) return std::nullopt;
  std::memcpy(&v, CMSG_DATA(&c), sizeof(v));
  if (v < 0 || v > 0xff) return std::nullopt;
  return static_cast<std::uint8_t>(v);
}

Ancillary read_ancillary(msghdr& m) noexcept {
  Ancillary out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != IPPROTO_IPV6 || c->cmsg_len < CMSG_LEN(0)) continue;
    const std::size_t data_length = c->cmsg_len - CMSG_LEN(0);
    switch (c->cmsg_type) {
      case IPV6_PKTINFO:
        if (data_length >= sizeof(in6_pktinfo)) {
          in6_pktinfo info{};
          std::memcpy(&info, CMSG_DATA(c), sizeof(info));
          out.destination = to_address(info.ipi6_addr);
        }
        break;
      case IPV6_TCLASS:
        out.traffic_class = byte_value(*c, data_length);
        break;
      case IPV6_HOPLIMIT:
        out.hop_limit = byte_value(*c, data_length);
        break;
      default:
        break;
    }
  }
  return out;
}

bool set_int(int fd, int level, int name, int value) noexcept {
  return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

// The forced variant (CAP_NET_ADMIN) may go beyond net.core.[rw]mem_max, which a data plane
// wants; without the capability the plain one is clamped to the maximum.
bool set_buffer(int fd, int forced, int plain, int bytes) noexcept {
  return set_int(fd, SOL_SOCKET, forced, bytes) || set_int(fd, SOL_SOCKET, plain, bytes);
}

// EINVAL for what no IPv6 packet of ours may look like; the kernel checks the rest.
bool well_formed(core::Bytes packet) noexcept {
  return packet.size() >= core::kIpv6HeaderLength && packet.size() <= kMaxPacket &&
         (std::to_integer<unsigned>(packet[0]) >> 4) == 6;
}

}  // namespace

// --- PacketBatch

PacketBatch::PacketBatch(std::size_t capacity)
    : storage_(capacity * kFrameSize), slots_(capacity) {}

core::MutableBytes PacketBatch::frame(std::size_t i) noexcept {
  assert(i < slots_.size());
  return core::MutableBytes{storage_}.subspan(i * kFrameSize, kFrameSize);
}

core::MutableBytes PacketBatch::packet(std::size_t i) noexcept {
  return frame(i).subspan(slots_[i].offset, slots_[i].length);
}

void PacketBatch::set(std::size_t i, std::size_t offset, std::size_t length,
                      const tep::offload::VirtioHeader& header) noexcept {
  assert(i < slots_.size());
  assert(offset <= kFrameSize && length <= kFrameSize - offset);
  slots_[i] = Slot{.offset = offset, .length = length, .header = header};
}

std::optional<PacketBatch::Location> PacketBatch::locate(core::Bytes bytes) const noexcept {
  // std::less gives a total order over unrelated pointers, where < would not.
  const std::less<const std::byte*> before;
  const std::byte* begin = storage_.data();
  const std::byte* end = begin + storage_.size();
  if (bytes.empty() || before(bytes.data(), begin) || before(end, bytes.data()) ||
      static_cast<std::size_t>(end - bytes.data()) < bytes.size())
    return std::nullopt;
  const auto at = static_cast<std::size_t>(bytes.data() - begin);
  const std::size_t frame = at / kFrameSize;
  // A span that crosses into the next frame belongs to none.
  if (at + bytes.size() > (frame + 1) * kFrameSize) return std::nullopt;
  return Location{.frame = frame, .offset = at - frame * kFrameSize};
}

// --- TunPort

platform::Result<std::size_t> TunPort::receive(PacketBatch& batch) {
  constexpr std::size_t kVnet = tep::offload::kVirtioHeaderSize;
  std::array<std::byte, kVnet> vnet{};
  std::size_t n = 0;
  while (n < batch.capacity()) {
    const auto room = batch.frame(n).subspan(kHeadroom);
    std::array<iovec, 2> parts{iovec{.iov_base = vnet.data(), .iov_len = vnet.size()},
                               iovec{.iov_base = room.data(), .iov_len = room.size()}};
    const std::span<iovec> used = vnet_hdr_ ? std::span{parts} : std::span{parts}.subspan(1);
    const ssize_t got = ::readv(fd_.get(), used.data(), static_cast<int>(used.size()));
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || n > 0) break;
      const int error = errno;
      batch.set_size(0);
      return errno_code(error);
    }
    auto length = static_cast<std::size_t>(got);
    if (!vnet_hdr_) {
      if (length == 0) break;  // a TUN read never returns 0 for a packet; nothing to keep
      batch.set(n, kHeadroom, length);
    } else {
      if (length <= kVnet) continue;  // no packet after the header: nothing to keep
      batch.set(n, kHeadroom, length - kVnet, tep::offload::VirtioHeader::read(vnet));
    }
    ++n;
  }
  batch.set_size(n);
  return n;
}

platform::Result<void> TunPort::send(core::Bytes packet, const tep::offload::VirtioHeader& header) {
  std::array<std::byte, tep::offload::kVirtioHeaderSize> vnet{};
  // writev of nothing never reaches the device, which would refuse it.
  if (packet.empty() || (!vnet_hdr_ && header != tep::offload::VirtioHeader{}))
    return errno_code(EINVAL);
  header.write(vnet);
  // writev only reads the buffers; iovec has no const form.
  std::array<iovec, 2> parts{
      iovec{.iov_base = vnet.data(), .iov_len = vnet.size()},
      iovec{.iov_base = const_cast<std::byte*>(packet.data()), .iov_len = packet.size()}};
  const std::span<iovec> used = vnet_hdr_ ? std::span{parts} : std::span{parts}.subspan(1);
  const std::size_t expected = (vnet_hdr_ ? vnet.size() : 0) + packet.size();
  for (;;) {
    const ssize_t put = ::writev(fd_.get(), used.data(), static_cast<int>(used.size()));
    if (put >= 0) {
      // TUN takes a packet whole or not at all; a short count would be a kernel bug.
      if (static_cast<std::size_t>(put) != expected) return errno_code(EIO);
      return {};
    }
    if (errno != EINTR) return errno_code(errno);
  }
}

// --- TunnelPort

platform::Result<TunnelPort> TunnelPort::open(const TunnelOptions& options) {
  const auto& local = options.local;
  if (local.is_unspecified() || local.is_multicast() || local.is_link_local() ||
      options.receive_buffer <= 0 || options.send_buffer <= 0)
    return errno_code(EINVAL);

  // Receiving: every IPv6 packet addressed to `local` whose (last) next header is 4. The kernel
  // hands a raw socket a copy before the protocol handler runs, and with no handler for 4 (no
  // ip6_tunnel/tunnel6 here) the raw socket's taking it also keeps the kernel from answering
  // with an ICMPv6 parameter problem. Binding filters on the destination address.
  platform::Fd rx{::socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPIP)};
  if (!rx) return errno_code(errno);
  const int fd = rx.get();
  if (!set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) ||
      !set_int(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1) ||
      !set_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1) ||
      !set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, options.receive_buffer))
    return errno_code(errno);
  if (const int e = bind_local(fd, local); e != 0) return errno_code(e);

  // Sending: IPPROTO_RAW implies IPV6_HDRINCL on Linux (inet6_create sets it); it is set again
  // here so that the socket does not depend on that detail. The kernel then sends the bytes as
  // written, only rewriting the payload length from the size (__ip6_local_out).
  platform::Fd tx{::socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW)};
  if (!tx) return errno_code(errno);
  if (!set_int(tx.get(), IPPROTO_IPV6, IPV6_HDRINCL, 1) ||
      !set_buffer(tx.get(), SO_SNDBUFFORCE, SO_SNDBUF, options.send_buffer))
    return errno_code(errno);
  // It would receive packets with next header 255, which nobody sends; keep its queue small.
  set_int(tx.get(), SOL_SOCKET, SO_RCVBUF, 1);
  // Bound to the end point, the kernel takes it as the flow's source for the route lookup
  // instead of running source address selection for every packet sent (it showed in profiles).
  // The packets still go out with the source their header names.
  if (const int e = bind_local(tx.get(), local); e != 0) return errno_code(e);

  return TunnelPort{std::move(rx), std::move(tx), local};
}

platform::Result<std::size_t> TunnelPort::receive(PacketBatch& batch) {
  constexpr std::size_t kHeader = core::kIpv6HeaderLength;
  const std::size_t capacity = batch.capacity();
  std::size_t filled = 0;    // packets kept, in frames 0..filled-1
  std::size_t consumed = 0;  // datagrams taken from the socket; bounds the work per call

  std::array<mmsghdr, kChunk> messages;
  std::array<iovec, kChunk> vectors;
  std::array<sockaddr_in6, kChunk> peers;
  std::array<ControlBuffer, kChunk> controls;

  while (consumed < capacity) {
    // Datagrams land in the frames from `filled` on; filled <= consumed keeps them in the batch.
    const std::size_t want = std::min(capacity - consumed, kChunk);
    const std::size_t first = filled;
    for (std::size_t k = 0; k < want; ++k) {
      const auto payload = batch.frame(first + k).subspan(kHeader, kMaxPayload);
      vectors[k] = iovec{.iov_base = payload.data(), .iov_len = payload.size()};
      messages[k] = mmsghdr{};
      msghdr& m = messages[k].msg_hdr;
      m.msg_name = &peers[k];
      m.msg_namelen = sizeof(sockaddr_in6);
      m.msg_iov = &vectors[k];
      m.msg_iovlen = 1;
      m.msg_control = controls[k].bytes.data();
      m.msg_controllen = controls[k].bytes.size();
    }
    const int got = ::recvmmsg(receive_.get(), messages.data(), static_cast<unsigned>(want),
                               MSG_DONTWAIT, nullptr);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || filled > 0) break;
      const int error = errno;
      batch.set_size(0);
      return errno_code(error);
    }
    const auto received = static_cast<std::size_t>(got);
    for (std::size_t k = 0; k < received; ++k) {
      msghdr& m = messages[k].msg_hdr;
      const std::size_t length = messages[k].msg_len;
      const Ancillary info = read_ancillary(m);
      if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || length > kMaxPayload ||
          m.msg_namelen < sizeof(sockaddr_in6) || peers[k].sin6_family != AF_INET6 ||
          !info.destination || !info.traffic_class || !info.hop_limit) {
        ++truncated_;
        continue;
      }
      // A datagram skipped before this one left a hole: move this one down to close it. Only
      // after a skip, which the buffer sizes make all but impossible.
      const auto target = batch.frame(filled);
      const auto source = batch.frame(first + k);
      if (source.data() != target.data()) {
        const auto bytes = source.subspan(kHeader, length);
        std::copy(bytes.begin(), bytes.end(), target.begin() + kHeader);
      }
      core::ByteWriter out{target.first(kHeader)};
      const core::Ipv6Header header{.traffic_class = *info.traffic_class,
                                    .flow_label = 0,
                                    .next_header = kIpip,
                                    .hop_limit = *info.hop_limit,
                                    .src = to_address(peers[k].sin6_addr),
                                    .dst = *info.destination};
      // Cannot fail: the length is at most kMaxPayload and the writer has 40 bytes.
      [[maybe_unused]] const auto written = core::write_ipv6_header(out, header, length);
      assert(written);
      batch.set(filled, 0, kHeader + length);
      ++filled;
    }
    consumed += received;
    if (received < want) break;  // the queue is empty
  }
  batch.set_size(filled);
  return filled;
}

platform::Result<std::size_t> TunnelPort::send(std::span<const core::Bytes> packets) {
  std::array<mmsghdr, kChunk> messages;
  std::array<iovec, kChunk> vectors;
  std::array<sockaddr_in6, kChunk> destinations;

  std::size_t sent = 0;
  while (sent < packets.size()) {
    // The well-formed packets from `sent` on, at most a chunk; a malformed one ends the run.
    std::size_t count = 0;
    while (count < kChunk && sent + count < packets.size()) {
      const core::Bytes packet = packets[sent + count];
      if (!well_formed(packet)) break;
      core::ByteReader in{packet};
      in.skip(24);  // to the destination address (RFC 8200 §3)
      const auto destination = in.array<16>();
      destinations[count] = sockaddr_in6{};
      destinations[count].sin6_family = AF_INET6;
      destinations[count].sin6_addr = to_in6(core::Ipv6Address{destination});
      // sendmsg only reads the buffer; iovec has no const form.
      vectors[count] =
          iovec{.iov_base = const_cast<std::byte*>(packet.data()), .iov_len = packet.size()};
      messages[count] = mmsghdr{};
      msghdr& m = messages[count].msg_hdr;
      m.msg_name = &destinations[count];
      m.msg_namelen = sizeof(sockaddr_in6);
      m.msg_iov = &vectors[count];
      m.msg_iovlen = 1;
      ++count;
    }
    if (count == 0) {  // packets[sent] is malformed
      if (sent > 0) break;
      return errno_code(EINVAL);
    }
    const int put =
        ::sendmmsg(send_.get(), messages.data(), static_cast<unsigned>(count), MSG_DONTWAIT);
    if (put < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || sent > 0) break;
      return errno_code(errno);
    }
    // sendmmsg stops at the first failure after at least one success and drops that error;
    // the caller's retry from our count meets it again as the first packet.
    sent += static_cast<std::size_t>(put);
    if (static_cast<std::size_t>(put) < count) break;
  }
  return sent;
}

platform::Result<void> TunnelPort::send(core::Bytes packet) {
  const auto sent = send(std::span<const core::Bytes>{&packet, 1});
  if (!sent) return sent.error();
  if (*sent == 0) return errno_code(EAGAIN);
  return {};
}

}  // namespace tep::io
