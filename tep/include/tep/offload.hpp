// TCP segmentation and receive coalescing in software (TSO/GRO) for the user-space 4over6 data
// path, plus the virtio_net_hdr a TUN opened with IFF_VNET_HDR puts in front of each packet.
// Pure functions and values over caller buffers: no I/O, no allocation per packet, never throws
// on packet input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "tep/fourover6.hpp"

namespace tep::offload {

// struct virtio_net_hdr (Linux include/uapi/linux/virtio_net.h, virtio spec §5.1.6) without
// num_buffers: what TUNSETVNETHDRSZ 10 (the default) puts in front of every packet.
inline constexpr std::size_t kVirtioHeaderSize = 10;

//   flags(1) gso_type(1) hdr_len(2) gso_size(2) csum_start(2) csum_offset(2)
// The 16-bit fields are in the host's byte order (a TUN without TUNSETVNETLE/BE on a
// little-endian host: little endian).
struct VirtioHeader {
  static constexpr std::uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr std::uint8_t kDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
  static constexpr std::uint8_t kGsoNone = 0, kGsoTcpv4 = 1, kGsoUdp = 3, kGsoTcpv6 = 4,
                                kGsoEcn = 0x80;
  std::uint8_t flags = 0;
  std::uint8_t gso_type = 0;
  std::uint16_t hdr_len = 0;      // bytes of headers (a hint for the kernel's linear copy)
  std::uint16_t gso_size = 0;     // payload bytes per segment (the MSS)
  std::uint16_t csum_start = 0;   // where the checksummed bytes start, from the IP header
  std::uint16_t csum_offset = 0;  // where the checksum field is, from csum_start

  static VirtioHeader read(core::Bytes bytes) noexcept;  // precondition: size >= 10
  void write(core::MutableBytes bytes) const noexcept;   // precondition: size >= 10
  bool operator==(const VirtioHeader&) const = default;
};

// Completes a partial checksum as a NIC would, for a packet read with flags & kNeedsCsum (TCP or
// UDP that the local stack left to the "hardware"): the 2-byte field at csum_start +
// csum_offset holds the folded pseudo-header sum; the ones' complement sum of
// packet[csum_start, end) (that field included) is computed and its complement stored there, a
// result of 0 stored as 0xffff (the kernel's CSUM_MANGLED_0: for UDP 0 means "no checksum").
// `packet` must be exactly the packet (a TUN read is). A no-op without kNeedsCsum.
// Errors: BadOffload (the field does not lie inside the packet); the packet is then unchanged.
Result<void> complete_checksum(const VirtioHeader& header, core::MutableBytes packet) noexcept;

// TSO in software: a TCPv4 super-packet read from a TUN with TUN_F_TSO4 (gso_type kGsoTcpv4,
// possibly | kGsoEcn) cut into segments of gso_size payload bytes, like Linux tcp_gso_segment
// (net/ipv4/tcp_offload.c) after inet_gso_segment (net/ipv4/af_inet.c):
//
//   super:  [IPv4 hdr + options][TCP hdr + options][ payload: gso_size | gso_size | ... | rest ]
//   seg i:  [IPv4 hdr + options][TCP hdr + options][ chunk i ]
//
// Every segment copies the IPv4 header (options included) and the TCP header (options
// included) with: total length of the segment; id = original id + i (mod 2^16); a recomputed
// header checksum; seq = original seq + i * gso_size (mod 2^32); FIN and PSH only on the last
// segment; CWR only on the first (so a kGsoEcn packet's CWR goes out once); ECE, URG and the
// urgent pointer, the window, the ack, TOS (ECN included), TTL and DF as in the original; a
// complete TCP checksum computed from scratch over the segment while its payload is copied (the
// super-packet's checksum field is not trusted: the kernel leaves the pseudo-header sum there).
// hdr_len, csum_start, csum_offset and the flags of the virtio header are not used: the headers
// are found by parsing, which the kernel does too (SKB_GSO_DODGY).
//
// The segmenter holds views of `packet`: the packet must outlive it and not change meanwhile.
class TcpSegmenter {
 public:
  // Validates the virtio header (gso_type kGsoTcpv4 with or without kGsoEcn and nothing else,
  // gso_size > 0: else BadOffload), the IPv4 header (Inner*: truncated, version, IHL, total
  // length == packet.size()), that it carries one whole TCP segment (OffloadNotTcp: protocol
  // not TCP or a fragment), the TCP header (OffloadBadTcpHeader: truncated, data offset < 5 or
  // past the packet) and a non-empty payload (OffloadNoPayload). The IPv4 header checksum and
  // the IP and TCP options are not checked; they are copied as they are.
  static Result<TcpSegmenter> start(const VirtioHeader& header, core::Bytes packet) noexcept;
  // The segmenter keeps views of the packet: not of a temporary.
  static Result<TcpSegmenter> start(const VirtioHeader&, std::vector<std::byte>&&) = delete;

  // The number of segments: ceil(payload / gso_size), 1..65495.
  std::size_t count() const noexcept { return count_; }
  // The largest segment: IPv4 + TCP headers + min(gso_size, payload) (<= packet.size(), so a
  // buffer of this size fits every segment).
  std::size_t max_segment_size() const noexcept;

  // Writes segment i (< count()) into the front of out and returns the written prefix.
  // Errors: BadFragmentIndex (i >= count()), NoSpace (out is too small; out is then
  // unspecified).
  Result<core::MutableBytes> write(std::size_t i, core::MutableBytes out) const noexcept;

 private:
  TcpSegmenter() = default;

  core::Bytes ip_header_{};   // the super-packet's IPv4 header, options included
  core::Bytes tcp_header_{};  // its TCP header, options included
  core::Bytes payload_{};
  std::size_t gso_size_ = 0;
  std::size_t count_ = 0;
  std::uint16_t id_ = 0;
  std::uint32_t seq_ = 0;
  std::uint8_t tcp_flags_ = 0;
  // Folded sums of the parts that do not change between segments: the IPv4 header without total
  // length, id and checksum; the TCP header without seq, flags and checksum plus the
  // pseudo-header without its length.
  std::uint16_t ip_base_sum_ = 0;
  std::uint16_t tcp_base_sum_ = 0;
};

// GRO in software: consecutive TCPv4 segments of one flow merged into a super-packet, which is
// then written to a TUN with a virtio header saying GSO TCPv4 (the kernel's TUN accepts it
// whatever TUNSETOFFLOAD said; those flags only govern what it hands to us).
struct CoalesceItem {
  core::MutableBytes frame;  // the packet's buffer: the packet may grow in place to its end
  std::size_t offset = 0;    // the IPv4 packet is frame[offset, offset + length)
  std::size_t length = 0;
};

struct Coalesced {
  std::size_t index = 0;   // the item that holds the output packet (merged or not)
  std::size_t length = 0;  // the output packet's length, from items[index].offset
  // All zero for a packet left alone (its bytes are unchanged). For a merged packet:
  //   flags = kNeedsCsum, gso_type = kGsoTcpv4 (| kGsoEcn when the first segment has CWR, as
  //   Linux tcp_gro_complete sets SKB_GSO_TCP_ECN), hdr_len = IPv4 + TCP header bytes,
  //   gso_size = the first segment's payload size, csum_start = 20 (the IPv4 header; merged
  //   packets have no IP options), csum_offset = 16 (the TCP checksum field).
  // The TCP checksum field of a merged packet holds the folded, not complemented, pseudo-header
  // sum (source, destination, protocol 6, TCP length of the merged packet): CHECKSUM_PARTIAL as
  // the kernel's own tcp_v4_send_check leaves it, which is what virtio_net_hdr_to_skb +
  // tcp_gso_segment (it swaps that length for each segment's) or local TCP receive expect.
  // complete_checksum(header, packet) turns it into the full checksum.
  VirtioHeader header{};
};

// Merges runs of TCP segments in a batch of received packets, in place. The rules are Linux's
// inet_gro_receive/tcp_gro_receive (net/ipv4/af_inet.c, tcp_offload.c) with a few stricter
// ones. A segment is appended to the run of its flow (same addresses and ports) when:
//   - IPv4 with IHL 5 (no options), total length == item length, not a fragment, protocol TCP,
//     its header checksum verifies;
//   - TCP data offset within the packet, a non-empty payload, none of SYN, RST, URG, FIN (such a
//     packet, and any packet of the flow that is not appended, is passed on alone and ends the
//     flow's run, so that a flow's packets keep their order);
//   - TOS (ECN included), TTL and DF equal to the first segment's;
//   - IP id = the first's id + the number of segments so far (mod 2^16), or, with DF set, all
//     ids equal to the first's (decided by the second segment, like Linux's is_atomic);
//   - the 32-bit TCP word of data offset, reserved bits, flags and window equal to the first's
//     except PSH and CWR; ack equal; the options bytes identical (timestamps included);
//   - no CWR (a CWR segment can only start a run: tcp_gro_receive flushes on it, and TSO puts
//     CWR on the first segment only);
//   - seq == the first's seq + the payload merged so far;
//   - payload <= the first segment's payload (gso_size); a shorter one is merged and ends the
//     run; so does one with PSH (PSH is then set on the merged packet);
//   - the merged packet stays within max_packet and within the first item's frame;
//   - its TCP checksum (and its IP header checksum) verifies. The first segment's is verified
//     when the second one joins: a segment whose checksum fails is never merged (it goes out
//     alone, and the kernel drops it), because the merged packet's checksum is recomputed.
// Non-TCP packets, fragments and anything that does not parse pass untouched. An item whose
// offset and length do not lie inside its frame is passed on as it is, never read. A TCP
// fragment, whose ports cannot be known, ends the runs between its two addresses.
// Preconditions: the items' frames do not overlap. Not thread-safe: one per worker (it keeps its
// tables between calls so that a batch costs no allocation).
class Coalescer {
 public:
  // The largest merged IPv4 packet (total length). At most 65535: a larger value means 65535.
  explicit Coalescer(std::size_t max_packet = 65535);

  // Merges segments within `items` (in arrival order) in place into the first segment of their
  // run: its frame receives the payloads after it, and its IPv4 header (total length, header
  // checksum) and TCP header (PSH, checksum field) are rewritten. Other items' frames are only
  // read. Returns one entry per output packet, in the order of the output packet's first
  // segment; packets of one flow keep their relative order. The span is valid until the next
  // call. Cost: one pass over the payloads (copy and checksum together), O(items) bookkeeping;
  // no allocation once the internal tables have grown to the largest batch.
  std::span<const Coalesced> coalesce(std::span<const CoalesceItem> items);

 private:
  struct FlowKey {
    core::Ipv4Address src{};
    core::Ipv4Address dst{};
    std::uint32_t ports = 0;  // source port << 16 | destination port
    bool operator==(const FlowKey&) const = default;
  };
  // The state of one output packet while the batch is read.
  struct Run {
    FlowKey key{};
    bool has_key = false;      // a TCP packet of a known flow (slots_ may point here)
    bool open = false;         // more segments may be appended
    bool verified = false;     // the first segment's checksums were checked and are good
    bool psh = false;          // the last segment appended had PSH
    std::uint8_t id_mode = 0;  // 0: undecided, 1: incrementing, 2: fixed (DF)
    std::size_t item = 0;
    std::size_t length = 0;  // of the output packet so far
    std::size_t limit = 0;   // the largest it may grow to
    std::size_t tcp_header_length = 0;
    std::size_t gso_size = 0;  // the first segment's payload
    std::size_t segments = 1;
    std::uint32_t next_seq = 0;
    std::uint16_t first_id = 0;
    std::uint8_t tos = 0;
    std::uint8_t ttl = 0;
    bool df = false;
    std::uint32_t flag_word = 0;  // TCP bytes 12..15 (offset, reserved, flags, window)
    std::uint32_t ack = 0;
  };
  struct Segment;  // what a received packet is to the coalescer (offload.cpp)

  static Segment classify(core::Bytes packet) noexcept;

  void reset_slots(std::size_t items);
  std::size_t& find_slot(const FlowKey& key) noexcept;
  void close(Run& run) noexcept;
  void close_pair(core::Ipv4Address src, core::Ipv4Address dst) noexcept;
  enum class Outcome { Appended, Start, Alone };
  Outcome append(Run& run, std::span<const CoalesceItem> items, const Segment& s) noexcept;
  void finish(const Run& run, std::span<const CoalesceItem> items, Coalesced& out) noexcept;

  std::size_t max_packet_;
  std::size_t open_runs_ = 0;
  std::vector<Run> runs_;  // parallel to out_
  std::vector<Coalesced> out_;
  std::vector<std::size_t> slots_;  // open addressing by FlowKey: an index into runs_ or kEmpty
};

}  // namespace tep::offload
