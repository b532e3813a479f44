// TSO/GRO in software: TCPv4 segmentation (Linux tcp_gso_segment), segment coalescing (Linux
// inet_gro_receive/tcp_gro_receive) and the virtio_net_hdr codec.
//
// Offsets used below. IPv4 (RFC 791 §3.1):
//    0                   1                   2                   3
//   |Version|  IHL  |   DSCP    |ECN|          Total Length         |  0
//   |         Identification        |Flags|      Fragment Offset    |  4
//   |  Time to Live |    Protocol   |         Header Checksum       |  8
//   |                       Source Address                          | 12
//   |                    Destination Address                        | 16
// TCP (RFC 9293 §3.1, RFC 3168 §6.1 for CWR/ECE):
//   |          Source Port          |       Destination Port        |  0
//   |                        Sequence Number                        |  4
//   |                    Acknowledgment Number                      |  8
//   |  Offset | Rsrvd |C|E|U|A|P|R|S|F|            Window           | 12
//   |           Checksum            |         Urgent Pointer        | 16
#include "tep/offload.hpp"

#include "errors.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <limits>

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/tcp.hpp"

namespace tep::offload {
namespace {

namespace tcp_flag = core::tcp_flag;

constexpr std::size_t kIpv4MinHeader = core::kIpv4MinHeaderLength;
constexpr std::size_t kTcpMinHeader = core::kTcpMinHeaderLength;
constexpr std::size_t kIpTotalLength = 2;
constexpr std::size_t kIpId = 4;
constexpr std::size_t kIpChecksum = 10;
constexpr std::size_t kTcpSeq = 4;
constexpr std::size_t kTcpFlags = 13;
constexpr std::size_t kTcpChecksum = 16;
constexpr std::uint16_t kDontFragment = 0x4000;
constexpr std::uint16_t kFragmentBits = 0x3fff;  // MF and the fragment offset
constexpr std::size_t kMaxIpv4Packet = 0xffff;
// The flags of TCP word 12 (offset, reserved, flags, window) that may differ between segments
// of a run: PSH (on the last) and CWR (on the first). Linux tcp_gro_receive also lets FIN
// differ; a FIN segment is never merged here.
constexpr std::uint32_t kFlagWordMayDiffer = std::uint32_t{tcp_flag::kPsh | tcp_flag::kCwr} << 16;
constexpr std::size_t kEmpty = std::numeric_limits<std::size_t>::max();

constexpr std::uint16_t swap16(std::uint16_t v) noexcept {
  return static_cast<std::uint16_t>((v >> 8) | ((v & 0xff) << 8));
}

// virtio fields are in the host's byte order (see VirtioHeader).
std::uint16_t load_host16(core::Bytes b) noexcept {
  const std::uint16_t be = core::load_be16(b);
  return std::endian::native == std::endian::little ? swap16(be) : be;
}
void store_host16(core::MutableBytes b, std::uint16_t v) noexcept {
  core::store_be16(b, std::endian::native == std::endian::little ? swap16(v) : v);
}

// Whether a TCP segment's checksum verifies: the sum of pseudo-header and segment (its checksum
// field included) is all ones. `data_sum` is the folded sum of the bytes after `header`.
bool tcp_sum_ok(core::Ipv4Address src, core::Ipv4Address dst, core::Bytes header,
                std::size_t segment_length, std::uint16_t data_sum) noexcept {
  return core::ipv4_pseudo_header(src, dst, core::ip_protocol::kTcp,
                                  static_cast<std::uint16_t>(segment_length))
             .add_u16(core::bulk_sum(header))
             .add_u16(data_sum)
             .finish() == 0;
}

// The murmur3 64-bit finaliser over a flow's addresses and ports.
std::size_t flow_hash(core::Ipv4Address src, core::Ipv4Address dst, std::uint32_t ports) noexcept {
  std::uint64_t h = (std::uint64_t{src.to_uint()} << 32 | dst.to_uint()) ^
                    (std::uint64_t{ports} * 0x9e3779b97f4a7c15ull);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return static_cast<std::size_t>(h);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// VirtioHeader, complete_checksum

VirtioHeader VirtioHeader::read(core::Bytes bytes) noexcept {
  assert(bytes.size() >= kVirtioHeaderSize);
  return {.flags = std::to_integer<std::uint8_t>(bytes[0]),
          .gso_type = std::to_integer<std::uint8_t>(bytes[1]),
          .hdr_len = load_host16(bytes.subspan(2, 2)),
          .gso_size = load_host16(bytes.subspan(4, 2)),
          .csum_start = load_host16(bytes.subspan(6, 2)),
          .csum_offset = load_host16(bytes.subspan(8, 2))};
}

void VirtioHeader::write(core::MutableBytes bytes) const noexcept {
  assert(bytes.size() >= kVirtioHeaderSize);
  bytes[0] = static_cast<std::byte>(flags);
  bytes[1] = static_cast<std::byte>(gso_type);
  store_host16(bytes.subspan(2, 2), hdr_len);
  store_host16(bytes.subspan(4, 2), gso_size);
  store_host16(bytes.subspan(6, 2), csum_start);
  store_host16(bytes.subspan(8, 2), csum_offset);
}

Result<void> complete_checksum(const VirtioHeader& header, core::MutableBytes packet) noexcept {
  if ((header.flags & VirtioHeader::kNeedsCsum) == 0) return {};
  const std::size_t start = header.csum_start;
  const std::size_t field = start + header.csum_offset;
  if (field + 2 > packet.size()) return make_error_code(Errc::BadOffload);
  // The field holds the pseudo-header sum, so summing over it adds the pseudo-header in.
  const auto value = static_cast<std::uint16_t>(~core::bulk_sum(packet.subspan(start)) & 0xffff);
  core::store_be16(packet.subspan(field, 2), value == 0 ? std::uint16_t{0xffff} : value);
  return {};
}

// ---------------------------------------------------------------------------------------------
// TcpSegmenter

Result<TcpSegmenter> TcpSegmenter::start(const VirtioHeader& header, core::Bytes packet) noexcept {
  if ((header.gso_type & ~VirtioHeader::kGsoEcn) != VirtioHeader::kGsoTcpv4 ||
      header.gso_size == 0) {
    return make_error_code(Errc::BadOffload);
  }
  const auto ip = core::parse_ipv4(packet);
  if (!ip) return make_error_code(inner_error_of(ip.error()));
  if (ip->total_length != packet.size()) return make_error_code(Errc::InnerBadTotalLength);
  if (ip->header.protocol != core::ip_protocol::kTcp || ip->is_fragment()) {
    return make_error_code(Errc::OffloadNotTcp);
  }
  const auto tcp = core::parse_tcp(ip->payload);
  if (!tcp) return make_error_code(Errc::OffloadBadTcpHeader);
  if (tcp->payload.empty()) return make_error_code(Errc::OffloadNoPayload);

  TcpSegmenter s;
  s.ip_header_ = ip->header_bytes;
  s.tcp_header_ = tcp->header_bytes;
  s.payload_ = tcp->payload;
  s.gso_size_ = header.gso_size;
  s.count_ = (s.payload_.size() + s.gso_size_ - 1) / s.gso_size_;
  s.id_ = ip->header.id;
  s.seq_ = tcp->header.seq;
  s.tcp_flags_ = tcp->header.flags;
  // Everything but total length (2..3), id (4..5) and checksum (10..11).
  const core::Bytes iph = s.ip_header_;
  s.ip_base_sum_ = core::Checksum{}
                       .add(iph.first(kIpTotalLength))
                       .add(iph.subspan(kIpId + 2, kIpChecksum - kIpId - 2))
                       .add(iph.subspan(kIpChecksum + 2))
                       .sum();
  // Everything but seq (4..7), the flags byte (13) and checksum (16..17), plus the
  // pseudo-header without its length.
  const core::Bytes th = s.tcp_header_;
  s.tcp_base_sum_ =
      core::ipv4_pseudo_header(ip->header.src, ip->header.dst, core::ip_protocol::kTcp, 0)
          .add(th.first(kTcpSeq))
          .add(th.subspan(kTcpSeq + 4, kTcpFlags - kTcpSeq - 4))
          .add_u8(0)
          .add(th.subspan(kTcpFlags + 1, kTcpChecksum - kTcpFlags - 1))
          .add(th.subspan(kTcpChecksum + 2))
          .sum();
  return s;
}

std::size_t TcpSegmenter::max_segment_size() const noexcept {
  return ip_header_.size() + tcp_header_.size() + std::min(gso_size_, payload_.size());
}

Result<core::MutableBytes> TcpSegmenter::write(std::size_t i,
                                               core::MutableBytes out) const noexcept {
  if (i >= count_) return make_error_code(Errc::BadFragmentIndex);
  const std::size_t offset = i * gso_size_;
  const std::size_t chunk = std::min(gso_size_, payload_.size() - offset);
  core::ByteWriter w{out};
  const core::MutableBytes ip = w.reserve(ip_header_.size());
  const core::MutableBytes tcp = w.reserve(tcp_header_.size());
  const core::MutableBytes data = w.reserve(chunk);
  if (!w.ok()) return make_error_code(Errc::NoSpace);

  // The total length fits 16 bits: a segment is never longer than the super-packet.
  const auto total = static_cast<std::uint16_t>(w.size());
  const auto id = static_cast<std::uint16_t>(id_ + i);
  std::ranges::copy(ip_header_, ip.begin());
  core::store_be16(ip.subspan(kIpTotalLength, 2), total);
  core::store_be16(ip.subspan(kIpId, 2), id);
  core::store_be16(ip.subspan(kIpChecksum, 2),
                   core::Checksum{}.add_u16(ip_base_sum_).add_u16(total).add_u16(id).finish());

  // tcp_gso_segment: FIN and PSH stay on the last segment, CWR on the first.
  auto flags = tcp_flags_;
  if (i + 1 != count_) flags &= static_cast<std::uint8_t>(~(tcp_flag::kFin | tcp_flag::kPsh));
  if (i != 0) flags &= static_cast<std::uint8_t>(~tcp_flag::kCwr);
  const auto seq = static_cast<std::uint32_t>(seq_ + offset);
  std::ranges::copy(tcp_header_, tcp.begin());
  core::store_be32(tcp.subspan(kTcpSeq, 4), seq);
  tcp[kTcpFlags] = static_cast<std::byte>(flags);
  // The payload is copied and summed in one pass; the flags byte is the low half of word 12.
  const std::uint16_t data_sum = core::bulk_sum(payload_.subspan(offset, chunk), data);
  const auto tcp_length = static_cast<std::uint16_t>(tcp_header_.size() + chunk);
  core::store_be16(tcp.subspan(kTcpChecksum, 2), core::Checksum{}
                                                     .add_u16(tcp_base_sum_)
                                                     .add_u16(tcp_length)
                                                     .add_u32(seq)
                                                     .add_u16(flags)
                                                     .add_u16(data_sum)
                                                     .finish());
  return w.written();
}

// ---------------------------------------------------------------------------------------------
// Coalescer

// What the coalescer knows of one received packet.
struct Coalescer::Segment {
  enum class Kind {
    Other,      // not TCP over IPv4: no effect on any run
    Pair,       // TCP whose ports cannot be read (a fragment...): ends the runs of its addresses
    Flow,       // TCP of a known flow that cannot be merged: ends the flow's run
    Candidate,  // may start a run or be appended to one
  };
  Kind kind = Kind::Other;
  FlowKey key{};
  core::Bytes packet{};
  core::Bytes tcp_header{};  // options included
  core::Bytes payload{};
  std::uint16_t id = 0;
  std::uint8_t tos = 0;
  std::uint8_t ttl = 0;
  bool df = false;
  std::uint8_t flags = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint32_t flag_word = 0;
};

Coalescer::Segment Coalescer::classify(core::Bytes packet) noexcept {
  Segment s;
  s.packet = packet;
  core::ByteReader in{packet};
  const std::uint8_t version_ihl = in.u8();
  s.tos = in.u8();
  const std::uint16_t total_length = in.u16();
  s.id = in.u16();
  const std::uint16_t flags_offset = in.u16();
  s.ttl = in.u8();
  const std::uint8_t protocol = in.u8();
  in.skip(2);
  s.key.src = core::Ipv4Address{in.u32()};
  s.key.dst = core::Ipv4Address{in.u32()};
  if (!in.ok() || (version_ihl >> 4) != 4 || protocol != core::ip_protocol::kTcp) return s;

  s.kind = Segment::Kind::Pair;
  const std::size_t ihl = std::size_t{version_ihl & 0x0fu} * 4;
  if ((flags_offset & kFragmentBits) != 0 || ihl < kIpv4MinHeader || ihl + 4 > packet.size()) {
    return s;
  }
  s.kind = Segment::Kind::Flow;
  s.key.ports = core::load_be32(packet.subspan(ihl, 4));
  if (ihl != kIpv4MinHeader || total_length != packet.size()) return s;

  core::ByteReader tcp{packet.subspan(kIpv4MinHeader)};
  tcp.skip(4);
  s.seq = tcp.u32();
  s.ack = tcp.u32();
  s.flag_word = tcp.u32();
  if (!tcp.ok()) return s;
  const std::size_t thl = std::size_t{s.flag_word >> 28} * 4;
  // A payload of at least one byte: pure ACKs are not merged (tcp_gro_receive flushes them).
  if (thl < kTcpMinHeader || kIpv4MinHeader + thl >= packet.size()) return s;
  s.flags = static_cast<std::uint8_t>(s.flag_word >> 16);
  constexpr std::uint8_t kNever = tcp_flag::kSyn | tcp_flag::kRst | tcp_flag::kUrg | tcp_flag::kFin;
  if ((s.flags & kNever) != 0) return s;
  s.df = (flags_offset & kDontFragment) != 0;
  s.tcp_header = packet.subspan(kIpv4MinHeader, thl);
  s.payload = packet.subspan(kIpv4MinHeader + thl);
  s.kind = Segment::Kind::Candidate;
  return s;
}

Coalescer::Coalescer(std::size_t max_packet) : max_packet_{std::min(max_packet, kMaxIpv4Packet)} {
  // A recvmmsg batch is 64 packets: no allocation at all for batches up to that size.
  runs_.reserve(64);
  out_.reserve(64);
  slots_.reserve(128);
}

void Coalescer::reset_slots(std::size_t items) {
  slots_.assign(std::bit_ceil(std::max<std::size_t>(16, 2 * items)), kEmpty);
}

std::size_t& Coalescer::find_slot(const FlowKey& key) noexcept {
  // At most one key per item in a table of at least twice as many slots: never full.
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = flow_hash(key.src, key.dst, key.ports) & mask;
  while (slots_[i] != kEmpty && !(runs_[slots_[i]].key == key)) i = (i + 1) & mask;
  return slots_[i];
}

void Coalescer::close(Run& run) noexcept {
  if (!run.open) return;
  run.open = false;
  --open_runs_;
}

void Coalescer::close_pair(core::Ipv4Address src, core::Ipv4Address dst) noexcept {
  if (open_runs_ == 0) return;
  for (auto& run : runs_) {
    if (run.open && run.key.src == src && run.key.dst == dst) close(run);
  }
}

Coalescer::Outcome Coalescer::append(Run& run, std::span<const CoalesceItem> items,
                                     const Segment& s) noexcept {
  const CoalesceItem& first = items[run.item];
  const std::size_t payload = s.payload.size();
  // Header rules (inet_gro_receive, tcp_gro_receive).
  if ((s.flags & tcp_flag::kCwr) != 0) return Outcome::Start;
  if (s.tos != run.tos || s.ttl != run.ttl || s.df != run.df || s.ack != run.ack ||
      ((s.flag_word ^ run.flag_word) & ~kFlagWordMayDiffer) != 0 || s.seq != run.next_seq ||
      payload > run.gso_size || run.length + payload > run.limit) {
    return Outcome::Start;
  }
  const auto next_id = static_cast<std::uint16_t>(run.first_id + run.segments);
  std::uint8_t id_mode = run.id_mode;
  if (id_mode == 0) id_mode = s.id == next_id ? 1 : (s.df && s.id == run.first_id ? 2 : 0);
  const std::uint16_t expected_id = id_mode == 2 ? run.first_id : next_id;
  if (id_mode == 0 || s.id != expected_id) return Outcome::Start;
  const core::Bytes first_packet = first.frame.subspan(first.offset, run.length);
  const core::Bytes first_options =
      first_packet.subspan(kIpv4MinHeader + kTcpMinHeader, run.tcp_header_length - kTcpMinHeader);
  if (!std::ranges::equal(first_options, s.tcp_header.subspan(kTcpMinHeader))) {
    return Outcome::Start;
  }

  // The first segment's checksums, checked only now that a second segment would hide them.
  if (!run.verified) {
    assert(run.segments == 1);
    const core::Bytes tcp = first_packet.subspan(kIpv4MinHeader);
    if (core::internet_checksum(first_packet.first(kIpv4MinHeader)) != 0 ||
        !tcp_sum_ok(run.key.src, run.key.dst, tcp.first(run.tcp_header_length), tcp.size(),
                    core::bulk_sum(tcp.subspan(run.tcp_header_length)))) {
      return Outcome::Start;
    }
    run.verified = true;
  }

  // Copy the payload behind the run while summing it, then check this segment's checksums; a
  // failure leaves the copied bytes past the run's length, where they are not part of it.
  const std::uint16_t data_sum =
      core::bulk_sum(s.payload, first.frame.subspan(first.offset + run.length, payload));
  if (core::internet_checksum(s.packet.first(kIpv4MinHeader)) != 0 ||
      !tcp_sum_ok(s.key.src, s.key.dst, s.tcp_header, s.packet.size() - kIpv4MinHeader, data_sum)) {
    return Outcome::Alone;
  }
  run.id_mode = id_mode;
  run.length += payload;
  run.next_seq += static_cast<std::uint32_t>(payload);
  ++run.segments;
  run.psh = (s.flags & tcp_flag::kPsh) != 0;
  if (run.psh || payload < run.gso_size) close(run);
  return Outcome::Appended;
}

void Coalescer::finish(const Run& run, std::span<const CoalesceItem> items,
                       Coalesced& out) noexcept {
  out.index = run.item;
  out.length = run.length;
  out.header = {};
  if (run.segments < 2) return;

  const CoalesceItem& first = items[run.item];
  const core::MutableBytes packet = first.frame.subspan(first.offset, run.length);
  // IPv4 total length, the header checksum updated for it (RFC 1624; it was verified).
  const auto total = static_cast<std::uint16_t>(run.length);
  const core::MutableBytes length_field = packet.subspan(kIpTotalLength, 2);
  const core::MutableBytes checksum_field = packet.subspan(kIpChecksum, 2);
  core::store_be16(checksum_field, core::checksum_update16(core::load_be16(checksum_field),
                                                           core::load_be16(length_field), total));
  core::store_be16(length_field, total);

  // TCP: PSH from the last segment (tcp_gro_receive ORs it in), and the checksum field as
  // CHECKSUM_PARTIAL wants it: the folded pseudo-header sum over the merged TCP length.
  const core::MutableBytes tcp = packet.subspan(kIpv4MinHeader);
  if (run.psh) tcp[kTcpFlags] |= std::byte{tcp_flag::kPsh};
  core::store_be16(tcp.subspan(kTcpChecksum, 2),
                   core::ipv4_pseudo_header(run.key.src, run.key.dst, core::ip_protocol::kTcp,
                                            static_cast<std::uint16_t>(tcp.size()))
                       .sum());

  const bool cwr = ((run.flag_word >> 16) & tcp_flag::kCwr) != 0;
  out.header = {
      .flags = VirtioHeader::kNeedsCsum,
      .gso_type =
          static_cast<std::uint8_t>(VirtioHeader::kGsoTcpv4 | (cwr ? VirtioHeader::kGsoEcn : 0)),
      .hdr_len = static_cast<std::uint16_t>(kIpv4MinHeader + run.tcp_header_length),
      .gso_size = static_cast<std::uint16_t>(run.gso_size),
      .csum_start = static_cast<std::uint16_t>(kIpv4MinHeader),
      .csum_offset = static_cast<std::uint16_t>(kTcpChecksum),
  };
}

std::span<const Coalesced> Coalescer::coalesce(std::span<const CoalesceItem> items) {
  runs_.clear();
  out_.clear();
  open_runs_ = 0;
  reset_slots(items.size());

  for (std::size_t j = 0; j < items.size(); ++j) {
    const CoalesceItem& item = items[j];
    Run next{.item = j, .length = item.length};
    if (item.offset > item.frame.size() || item.length > item.frame.size() - item.offset) {
      runs_.push_back(next);
      continue;
    }
    const Segment s = classify(item.frame.subspan(item.offset, item.length));
    if (s.kind == Segment::Kind::Other) {
      runs_.push_back(next);
      continue;
    }
    if (s.kind == Segment::Kind::Pair) {
      close_pair(s.key.src, s.key.dst);
      runs_.push_back(next);
      continue;
    }

    std::size_t& slot = find_slot(s.key);
    bool may_start = s.kind == Segment::Kind::Candidate;
    if (slot != kEmpty) {
      Run& run = runs_[slot];
      if (may_start && run.open) {
        const Outcome o = append(run, items, s);
        if (o == Outcome::Appended) continue;
        may_start = o == Outcome::Start;
      }
      close(run);
    }
    next.key = s.key;
    next.has_key = true;
    if (may_start) {
      next.open = (s.flags & tcp_flag::kPsh) == 0;
      next.limit = std::min(max_packet_, item.frame.size() - item.offset);
      next.tcp_header_length = s.tcp_header.size();
      next.gso_size = s.payload.size();
      next.next_seq = s.seq + static_cast<std::uint32_t>(s.payload.size());
      next.first_id = s.id;
      next.tos = s.tos;
      next.ttl = s.ttl;
      next.df = s.df;
      next.flag_word = s.flag_word;
      next.ack = s.ack;
      if (next.open) ++open_runs_;
    }
    slot = runs_.size();
    runs_.push_back(next);
  }

  out_.resize(runs_.size());
  for (std::size_t k = 0; k < runs_.size(); ++k) finish(runs_[k], items, out_[k]);
  return out_;
}

}  // namespace tep::offload
