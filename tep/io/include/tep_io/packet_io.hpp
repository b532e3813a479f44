// The user-space 4over6 backend's I/O: batches of packet buffers with headroom, the IPv4 side (a
// TUN device queue) and the tunnel side (raw IPv6 sockets for next header 4). Non-blocking
// system calls only, no Asio: the daemon waits for readiness on the handles itself (e.g. with
// asio::posix::stream_descriptor::async_wait) and then drains a batch. Used by the TEP daemon
// and by dstm-client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "platform/error.hpp"
#include "platform/fd.hpp"
#include "platform/tun.hpp"
#include "tep/offload.hpp"

namespace tep::io {

// Bytes kept free in front of every received packet, so that an IPv4 packet read from the TUN
// device can be encapsulated in place (tep::encapsulate writes the IPv6 header there).
inline constexpr std::size_t kHeadroom = 40;
// The largest packet either side carries (an IPv6 payload of 65535 bytes plus its header).
inline constexpr std::size_t kMaxPacket = 65535 + 40;
// The size of one PacketBatch frame.
inline constexpr std::size_t kFrameSize = kHeadroom + kMaxPacket;

// `capacity` frames of kFrameSize bytes in one allocation, and for each frame where its packet
// lies after a receive. Reused from batch to batch. Not thread-safe: one batch per worker.
class PacketBatch {
 public:
  // capacity may be 0 (receives then return 0). The frames start zeroed.
  explicit PacketBatch(std::size_t capacity);

  std::size_t capacity() const noexcept { return slots_.size(); }
  // Packets filled by the last receive (0..capacity).
  std::size_t size() const noexcept { return size_; }

  // The whole frame i (kHeadroom + kMaxPacket bytes).
  core::MutableBytes frame(std::size_t i) noexcept;
  // Packet i of the last receive: frame(i).subspan(offset(i), length(i)).
  core::MutableBytes packet(std::size_t i) noexcept;
  std::size_t offset(std::size_t i) const noexcept { return slots_[i].offset; }
  std::size_t length(std::size_t i) const noexcept { return slots_[i].length; }
  // The virtio-net header read with packet i (a TunPort with vnet headers); zero otherwise.
  const tep::offload::VirtioHeader& header(std::size_t i) const noexcept {
    return slots_[i].header;
  }
  // Where `bytes` lies when one frame holds it entirely (bytes handed back by code that may also
  // return views into its own storage): the frame and the offset in it.
  struct Location {
    std::size_t frame = 0;
    std::size_t offset = 0;
  };
  std::optional<Location> locate(core::Bytes bytes) const noexcept;

  // For the receivers: record packet i and the batch size. Preconditions: i < capacity() and
  // offset + length <= kFrameSize (asserted), n <= capacity().
  void set(std::size_t i, std::size_t offset, std::size_t length,
           const tep::offload::VirtioHeader& header = {}) noexcept;
  void set_size(std::size_t n) noexcept { size_ = n; }

 private:
  struct Slot {
    std::size_t offset = 0;
    std::size_t length = 0;
    tep::offload::VirtioHeader header{};
  };
  std::vector<std::byte> storage_;
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

// The IPv4 side: one queue of a TUN device (layer 3, no packet-info header), with or without
// virtio-net headers (platform::TunOptions::vnet_hdr: the port must be told which).
class TunPort {
 public:
  explicit TunPort(platform::Fd queue, bool vnet_hdr = false) noexcept
      : fd_{std::move(queue)}, vnet_hdr_{vnet_hdr} {}

  // Reads up to batch.capacity() packets without blocking (one read() each); each lands at offset
  // kHeadroom of its frame (batch.offset(i) == kHeadroom), its virtio-net header (vnet ports) in
  // batch.header(i), and batch.size() is set to the count. Returns how many (0: nothing
  // waiting). Packets are returned as the device gives them: IPv6 ones too (router
  // solicitations, MLD) unless IPv6 is disabled on the device. A vnet read shorter than the
  // header is skipped. Errors: errno other than EAGAIN/EINTR, only when no packet was read (an
  // error after some packets ends the batch early; a lasting one is reported by the next call);
  // batch.size() is then 0.
  platform::Result<std::size_t> receive(PacketBatch& batch);
  // Writes one packet (one write(); with its virtio-net header on a vnet port: a GSO
  // super-packet or a partial checksum the kernel completes). A full device queue (EAGAIN) or a
  // packet the kernel refuses (EINVAL: empty, neither IPv4 nor IPv6 by its version nibble, a
  // header that does not fit the packet; EIO: device down) is an error for that packet only.
  // A non-zero header on a port without vnet headers is EINVAL.
  platform::Result<void> send(core::Bytes packet, const tep::offload::VirtioHeader& header = {});

  bool vnet_hdr() const noexcept { return vnet_hdr_; }
  int native_handle() const noexcept { return fd_.get(); }

 private:
  platform::Fd fd_;
  bool vnet_hdr_ = false;
};

struct TunnelOptions {
  // The local tunnel end point: the receiving socket is bound to it, so only IPv4-in-IPv6
  // packets addressed to it are received. It must be an address of this host (namespace), not
  // unspecified, multicast or link-local (EINVAL; EADDRNOTAVAIL from bind when not local). One
  // still tentative (duplicate address detection) is taken: packets arrive once it is usable.
  core::Ipv6Address local{};
  // Socket buffer sizes asked for, > 0 (EINVAL otherwise). Set with SO_RCVBUFFORCE /
  // SO_SNDBUFFORCE when the process has CAP_NET_ADMIN, which may exceed net.core.rmem_max /
  // wmem_max; without it with SO_RCVBUF / SO_SNDBUF, which the kernel clamps to those.
  int receive_buffer = 4 * 1024 * 1024;
  int send_buffer = 4 * 1024 * 1024;
};

// The tunnel side: a raw IPv6 socket for next header 4 that receives, and an IPPROTO_RAW socket
// (IPV6_HDRINCL) that sends whole IPv6 packets as the codec built them. The kernel delivers the
// payload of a raw IPv6 socket without the IPv6 header; receive() writes back a 40-byte header
// built from what the kernel reports (source from the peer address, destination from
// IPV6_PKTINFO, traffic class from IPV6_TCLASS, hop limit from IPV6_HOPLIMIT, flow label 0, next
// header 4, payload length = bytes received), so that tep::decapsulate sees the packet as it was
// on the wire (ECN included). What the kernel reports is the header as it arrived here: the hop
// limit as received (not decremented for local delivery), the whole traffic class byte (DSCP and
// ECN), the payload after any extension headers, and a fragmented packet reassembled.
// Both sockets are non-blocking and close-on-exec; both belong to the network namespace of the
// thread that called open(). Move-only; not thread-safe (one worker owns a port).
class TunnelPort {
 public:
  // Errors: EINVAL for bad options; errno of socket/setsockopt/bind (EPERM without
  // CAP_NET_RAW, EADDRNOTAVAIL when options.local is not an address of this namespace).
  static platform::Result<TunnelPort> open(const TunnelOptions& options);

  // Receives up to batch.capacity() packets (recvmmsg) without blocking. Each packet i is the
  // whole rebuilt IPv6 packet at batch.offset(i) == 0; batch.size() is set to the count. Returns
  // how many (0: nothing waiting). A datagram whose payload or ancillary data did not fit
  // (MSG_TRUNC / MSG_CTRUNC, or ancillary data missing) is skipped and counted in truncated();
  // it uses up a place in the batch, so a batch may come back short while more are waiting.
  // Errors: errno other than EAGAIN/EINTR, only when no packet was received.
  platform::Result<std::size_t> receive(PacketBatch& batch);
  // Sends whole IPv6 packets (sendmmsg, each to its header's destination, bytes 24..39; the
  // packet goes out as written, except that the kernel sets the payload length from the size).
  // Returns how many the kernel took, in order; on would-block it returns those sent so far (0
  // when none), and an error only when the first packet fails (EMSGSIZE for a packet over the
  // outgoing device's MTU, ENETUNREACH...; EINVAL for a malformed packet: fewer than 40 bytes,
  // more than kMaxPacket, or a version other than 6). A packet that fails after the first ends
  // the call early, so the caller retries from the count returned and drops packets[0] when it
  // gets an error.
  platform::Result<std::size_t> send(std::span<const core::Bytes> packets);
  // One packet; would-block is the error EAGAIN.
  platform::Result<void> send(core::Bytes packet);

  int receive_handle() const noexcept { return receive_.get(); }
  int send_handle() const noexcept { return send_.get(); }
  const core::Ipv6Address& local() const noexcept { return local_; }
  // Datagrams receive() skipped because they did not fit (see receive), since open().
  std::uint64_t truncated() const noexcept { return truncated_; }

 private:
  TunnelPort(platform::Fd receive, platform::Fd send, const core::Ipv6Address& local)
      : receive_{std::move(receive)}, send_{std::move(send)}, local_{local} {}
  platform::Fd receive_;
  platform::Fd send_;
  core::Ipv6Address local_{};
  std::uint64_t truncated_ = 0;
};

}  // namespace tep::io
