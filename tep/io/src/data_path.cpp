// Batching around the ports: segmentation on the way in from the TUN device, sendmmsg batches
// toward the tunnel, coalescing on the way out to the TUN device.
#include "tep_io/data_path.hpp"

#include <algorithm>
#include <functional>

namespace tep::io {

namespace {

using tep::offload::VirtioHeader;

// Room for the segments of at least one 64 KB super-packet cut at any MSS down to ~500 bytes,
// with headroom in front of each; smaller MSS just means more flushes.
constexpr std::size_t kSegmentStorage = 256 * 1024;

}  // namespace

// --- TunSource

TunSource::TunSource(TunPort& port, std::size_t batch)
    : port_{port}, batch_{batch}, segments_(kSegmentStorage) {}

platform::Result<std::size_t> TunSource::drain(PacketConsumer& consumer) {
  auto n = port_.receive(batch_);
  if (!n) return n.error();
  counters_.reads += *n;
  for (std::size_t i = 0; i < *n; ++i) {
    const VirtioHeader& h = batch_.header(i);
    const auto frame = batch_.frame(i).first(batch_.offset(i) + batch_.length(i));
    if ((h.gso_type & ~VirtioHeader::kGsoEcn) != VirtioHeader::kGsoNone) {
      segment(i, consumer);
      continue;
    }
    if ((h.flags & VirtioHeader::kNeedsCsum) != 0) {
      if (!tep::offload::complete_checksum(h, frame.subspan(batch_.offset(i)))) {
        ++counters_.bad_offload;
        continue;
      }
      ++counters_.checksums;
    }
    consumer.packet(frame, batch_.offset(i));
  }
  consumer.flush();
  used_ = 0;
  return *n;
}

void TunSource::segment(std::size_t index, PacketConsumer& consumer) {
  const auto packet = batch_.packet(index);
  const auto segmenter = tep::offload::TcpSegmenter::start(batch_.header(index), packet);
  if (!segmenter) {
    ++counters_.bad_offload;
    return;
  }
  ++counters_.super_packets;
  const std::size_t room = kHeadroom + segmenter->max_segment_size();
  for (std::size_t s = 0; s < segmenter->count(); ++s) {
    if (segments_.size() - used_ < room) {
      // Everything handed over from this storage must leave before it is overwritten.
      consumer.flush();
      used_ = 0;
      if (segments_.size() < room) {  // a segment larger than the storage: cannot happen
        ++counters_.bad_offload;
        return;
      }
    }
    const auto out =
        core::MutableBytes{segments_}.subspan(used_ + kHeadroom, segmenter->max_segment_size());
    const auto written = segmenter->write(s, out);
    if (!written) {
      ++counters_.bad_offload;
      return;
    }
    const auto frame = core::MutableBytes{segments_}.subspan(used_, kHeadroom + written->size());
    used_ += frame.size();
    ++counters_.segments;
    consumer.packet(frame, kHeadroom);
  }
}

bool TunSource::owns(core::Bytes bytes) const noexcept {
  if (batch_.locate(bytes)) return true;
  const std::less<const std::byte*> before;
  const std::byte* begin = segments_.data();
  const std::byte* end = begin + segments_.size();
  return !bytes.empty() && !before(bytes.data(), begin) && !before(end, bytes.data()) &&
         static_cast<std::size_t>(end - bytes.data()) >= bytes.size();
}

// --- TunnelSender

TunnelSender::TunnelSender(TunnelPort& port, std::size_t capacity)
    : port_{port}, capacity_{std::max<std::size_t>(capacity, 1)} {
  queue_.reserve(capacity_);
}

void TunnelSender::queue(core::Bytes packet) {
  if (queue_.size() == capacity_) flush();
  queue_.push_back(packet);
}

void TunnelSender::send(core::Bytes packet) {
  flush();
  queue_.push_back(packet);
  flush();
}

void TunnelSender::flush() {
  std::span<const core::Bytes> left{queue_};
  // Each round sends at least one packet or drops one, so this ends within queue_.size() rounds.
  while (!left.empty()) {
    const auto sent = port_.send(left);
    if (!sent) {
      // The first packet was refused: count it and go on with the rest.
      ++counters_.errors;
      left = left.subspan(1);
      continue;
    }
    if (*sent == 0) {
      // The socket's buffer is full. The tunnel is a datagram path: drop rather than stall the
      // loop (TCP inside retransmits).
      counters_.dropped += left.size();
      break;
    }
    counters_.sent += *sent;
    left = left.subspan(*sent);
  }
  queue_.clear();
}

// --- TunWriter

TunWriter::TunWriter(TunPort& port, bool coalesce, std::size_t capacity)
    : port_{port}, coalesce_{coalesce}, capacity_{std::max<std::size_t>(capacity, 1)} {
  queue_.reserve(capacity_);
}

void TunWriter::queue(core::MutableBytes frame, std::size_t offset, std::size_t length) {
  if (queue_.size() == capacity_) flush();
  queue_.push_back(tep::offload::CoalesceItem{.frame = frame, .offset = offset, .length = length});
}

void TunWriter::write(core::Bytes packet) {
  flush();
  put(packet, VirtioHeader{}, 1);
}

void TunWriter::flush() {
  if (queue_.empty()) return;
  if (!coalesce_) {
    for (const auto& item : queue_) put(item.frame.subspan(item.offset, item.length), {}, 1);
  } else {
    const auto out = coalescer_.coalesce(queue_);
    for (const auto& c : out) {
      const auto& item = queue_[c.index];
      put(item.frame.subspan(item.offset, c.length), c.header, 0);
    }
    counters_.packets += queue_.size();
  }
  queue_.clear();
}

void TunWriter::put(core::Bytes packet, const VirtioHeader& header, std::size_t packets) {
  ++counters_.written;
  counters_.packets += packets;
  if (header.gso_type != VirtioHeader::kGsoNone) ++counters_.super_packets;
  if (!port_.send(packet, header)) ++counters_.errors;
}

}  // namespace tep::io
