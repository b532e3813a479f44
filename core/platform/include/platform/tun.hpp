// A Linux TUN device (layer 3, no packet-info header), optionally multi-queue and with
// virtio-net headers for offloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "platform/error.hpp"
#include "platform/fd.hpp"

namespace platform {

struct TunOptions {
  // Requested name, at most 15 bytes; a pattern like "tun%d" lets the kernel number it; empty
  // means the kernel picks "tunN".
  std::string name;
  // IFF_VNET_HDR: every packet read or written is preceded by a struct virtio_net_hdr (10 bytes
  // unless changed with TUNSETVNETHDRSZ), which carries GSO/checksum offload state.
  bool vnet_hdr = false;
  // With vnet_hdr: TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN). The kernel then hands
  // over TCPv4 super-packets (up to 64 KB, cut by the reader: tep::offload::TcpSegmenter) and
  // packets whose checksum is only partial (VIRTIO_NET_HDR_F_NEEDS_CSUM), and accepts both. IPv4
  // only: a device that carries IPv6 would also want TSO6.
  bool tso4 = false;
  // Number of queues (fds). More than one opens the device with IFF_MULTI_QUEUE, one fd per queue,
  // so that each worker thread reads its own. 1..kMaxQueues.
  unsigned queues = 1;
};

// An open TUN device. The device exists while at least one queue fd is open (it is not made
// persistent), in the network namespace of the thread that called open(). Move-only.
class TunDevice {
 public:
  static constexpr unsigned kMaxQueues = 256;  // the kernel's MAX_TAP_QUEUES

  // Opens /dev/net/tun and attaches options.queues fds. Fds are non-blocking and close-on-exec:
  // ready for poll() or for an asio::posix::stream_descriptor. Errors: errno from open/ioctl
  // (system_category, e.g. EPERM without CAP_NET_ADMIN, EBUSY if the name is taken by another
  // device), Errc::NameTooLong, EINVAL for a queue count outside 1..kMaxQueues or tso4 without
  // vnet_hdr.
  static Result<TunDevice> open(const TunOptions& options);

  // The name the kernel gave the device, and its interface index in its namespace.
  const std::string& name() const noexcept { return name_; }
  std::uint32_t ifindex() const noexcept { return ifindex_; }
  bool vnet_hdr() const noexcept { return vnet_hdr_; }
  std::size_t queue_count() const noexcept { return queues_.size(); }

  // The fd of a queue (-1 once released), for poll() or asio::posix::stream_descriptor's
  // constructor together with release(). queue < queue_count().
  int native_handle(std::size_t queue = 0) const noexcept { return queues_[queue].get(); }
  // Hands the queue's fd over (an Asio descriptor closes what it wraps). The device goes away
  // once every queue fd is closed, wherever it went.
  [[nodiscard]] Fd release(std::size_t queue = 0) noexcept { return std::move(queues_[queue]); }

 private:
  TunDevice(std::vector<Fd> queues, std::string name, std::uint32_t ifindex, bool vnet_hdr)
      : queues_{std::move(queues)},
        name_{std::move(name)},
        ifindex_{ifindex},
        vnet_hdr_{vnet_hdr} {}

  std::vector<Fd> queues_;
  std::string name_;
  std::uint32_t ifindex_ = 0;
  bool vnet_hdr_ = false;
};

}  // namespace platform
