// The user-space data path's batching around the ports: what the TEP daemon and dstm-client put
// between their TUN device, the 4over6 codec and the tunnel sockets.
//
//   TUN --TunSource--> IPv4 packets (super-packets cut into segments, partial checksums
//                      completed) --> encapsulate in place --> TunnelSender (one sendmmsg a batch)
//   tunnel --TunnelPort::receive--> decapsulate in place --> TunWriter (segments of one TCP flow
//                      merged into a super-packet, one write each) --> TUN
//
// Nothing here allocates per packet: the storage is sized at construction and reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/bytes.hpp"
#include "platform/error.hpp"
#include "tep/offload.hpp"
#include "tep_io/packet_io.hpp"

namespace tep::io {

// Takes the IPv4 packets a TunSource hands over.
class PacketConsumer {
 public:
  virtual ~PacketConsumer() = default;
  // One IPv4 packet at frame[headroom] up to the end of frame, headroom >= kHeadroom, with a
  // complete checksum: encapsulate it in place and queue it. The frame stays valid until the
  // next flush().
  virtual void packet(core::MutableBytes frame, std::size_t headroom) = 0;
  // Send what was queued: the frames handed over so far are about to be reused.
  virtual void flush() = 0;
};

struct TunSourceCounters {
  std::uint64_t reads = 0;          // packets read from the device
  std::uint64_t super_packets = 0;  // of which GSO super-packets
  std::uint64_t segments = 0;       // segments cut from them
  std::uint64_t checksums = 0;      // partial checksums completed
  std::uint64_t bad_offload = 0;    // dropped: a virtio header that does not describe the packet
};

// Reads a TUN port in batches. On a port with offloads (platform::TunOptions::tso4) it cuts TCPv4
// super-packets into segments (tep::offload::TcpSegmenter) in its own storage, each with
// kHeadroom in front, and completes partial checksums, so that the consumer only ever sees
// packets fit for the wire.
class TunSource {
 public:
  explicit TunSource(TunPort& port, std::size_t batch = 32);

  // One batch: reads up to `batch` packets and hands each (or its segments) to consumer.packet,
  // calling consumer.flush() before it reuses storage and once at the end. Returns the number of
  // packets read (0: nothing was waiting) or the read error.
  platform::Result<std::size_t> drain(PacketConsumer& consumer);

  // Whether `bytes` lies in this source's storage (a packet handed over, or a view into one).
  bool owns(core::Bytes bytes) const noexcept;
  const TunSourceCounters& counters() const noexcept { return counters_; }

 private:
  void hand_over(core::MutableBytes frame, std::size_t headroom, PacketConsumer& consumer);
  void segment(std::size_t index, PacketConsumer& consumer);

  TunPort& port_;
  PacketBatch batch_;
  std::vector<std::byte> segments_;  // [kHeadroom][segment][kHeadroom][segment]...
  std::size_t used_ = 0;             // bytes of segments_ handed over since the last flush
  TunSourceCounters counters_{};
};

struct SenderCounters {
  std::uint64_t sent = 0;
  std::uint64_t errors = 0;   // refused by the kernel (EMSGSIZE, ENETUNREACH...)
  std::uint64_t dropped = 0;  // not sent: the socket's buffer was full
};

// Queues whole IPv6 packets for the tunnel socket and sends them with one sendmmsg per flush.
class TunnelSender {
 public:
  explicit TunnelSender(TunnelPort& port, std::size_t capacity = 64);

  // Sent at the next flush(); the bytes must stay valid until then. A full queue is flushed first.
  void queue(core::Bytes packet);
  // Sent now, after what is queued (for packets in storage that will not last).
  void send(core::Bytes packet);
  void flush();

  const SenderCounters& counters() const noexcept { return counters_; }

 private:
  TunnelPort& port_;
  std::vector<core::Bytes> queue_;
  std::size_t capacity_;
  SenderCounters counters_{};
};

struct WriterCounters {
  std::uint64_t written = 0;  // writes to the device
  std::uint64_t packets = 0;  // packets in them (merged segments count one each)
  std::uint64_t super_packets = 0;
  std::uint64_t errors = 0;  // writes the device refused
};

// Queues IPv4 packets for the TUN device and writes them at flush(); on a port with offloads,
// consecutive TCP segments of a flow are merged first (tep::offload::Coalescer) and written as
// one GSO super-packet.
class TunWriter {
 public:
  TunWriter(TunPort& port, bool coalesce, std::size_t capacity = 64);

  // The packet at frame[offset, offset + length), which may grow in place up to the end of
  // frame; it must stay valid until flush(). A full queue is flushed first.
  void queue(core::MutableBytes frame, std::size_t offset, std::size_t length);
  // Written now, after what is queued.
  void write(core::Bytes packet);
  void flush();

  const WriterCounters& counters() const noexcept { return counters_; }

 private:
  void put(core::Bytes packet, const tep::offload::VirtioHeader& header, std::size_t packets);

  TunPort& port_;
  bool coalesce_;
  std::size_t capacity_;
  std::vector<tep::offload::CoalesceItem> queue_;
  tep::offload::Coalescer coalescer_;
  WriterCounters counters_{};
};

}  // namespace tep::io
