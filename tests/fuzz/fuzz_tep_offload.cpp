// libFuzzer target: TSO/GRO in software (tep/offload.hpp) on hostile packets. The input is a
// TCP super-packet behind a few control bytes; it goes through complete_checksum and the
// TcpSegmenter, and the segments (some mutated) plus raw slices of the input go through the
// Coalescer. Properties: segments are valid IPv4/TCP packets of the right size that add up to
// the payload; the coalescer's outputs stay inside their frames, lengths add up, a merged packet
// verifies once its checksum is completed, nothing with a bad checksum is merged, and an
// unmutated segment train merges back into the super-packet.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/tcp.hpp"
#include "tep/offload.hpp"

#include "fuzz_check.hpp"

namespace {

using fuzz::same;
using fuzz::within;
using tep::offload::Coalesced;
using tep::offload::CoalesceItem;
using tep::offload::Coalescer;
using tep::offload::TcpSegmenter;
using tep::offload::VirtioHeader;
using Packet = std::vector<std::byte>;
namespace flag = core::tcp_flag;

constexpr std::size_t kControl = 12;      // control bytes in front of the packet
constexpr std::size_t kMaxSegments = 96;  // segments given to the coalescer

bool is(const boost::system::error_code& ec, tep::Errc e) {
  return ec == make_error_code(e);
}

// Both checksums of an IPv4/TCP packet verify (what the coalescer must check before merging).
bool checksums_ok(core::Bytes packet) {
  const auto ip = core::parse_ipv4(packet);
  if (!ip || !ip->checksum_ok()) return false;
  const auto tcp = core::parse_tcp(ip->payload);
  return tcp && core::tcp_checksum_ok(*tcp, ip->header.src, ip->header.dst);
}

void check_complete_checksum(const VirtioHeader& h, core::Bytes in) {
  Packet p{in.begin(), in.end()};
  const auto r = tep::offload::complete_checksum(h, p);
  if (!r) {
    FUZZ_CHECK(is(r.error(), tep::Errc::BadOffload) && same(p, in));
    return;
  }
  if ((h.flags & VirtioHeader::kNeedsCsum) == 0) {
    FUZZ_CHECK(same(p, in));
    return;
  }
  // With the field at an even distance from the start, the completed bytes plus the sum the
  // field held (the pseudo-header, for a receiver) add up to all ones.
  if (h.csum_offset % 2 == 0) {
    const std::uint16_t held = core::load_be16(in.subspan(h.csum_start + h.csum_offset, 2));
    FUZZ_CHECK(core::Checksum{}.add_u16(held).add(core::Bytes{p}.subspan(h.csum_start)).sum() ==
               0xffff);
  }
}

// Segments `packet` and checks every segment; returns them (empty if start() refused it).
std::vector<Packet> check_segmenter(const VirtioHeader& h, core::Bytes packet) {
  const auto s = TcpSegmenter::start(h, packet);
  if (!s) {
    const auto& e = s.error();
    FUZZ_CHECK(is(e, tep::Errc::BadOffload) || is(e, tep::Errc::InnerTruncated) ||
               is(e, tep::Errc::InnerBadVersion) || is(e, tep::Errc::InnerBadHeader) ||
               is(e, tep::Errc::InnerBadTotalLength) || is(e, tep::Errc::OffloadNotTcp) ||
               is(e, tep::Errc::OffloadBadTcpHeader) || is(e, tep::Errc::OffloadNoPayload));
    return {};
  }
  const auto ip = core::parse_ipv4(packet).value();
  const auto tcp = core::parse_tcp(ip.payload).value();
  const std::size_t gso = h.gso_size;
  FUZZ_CHECK(s->count() == (tcp.payload.size() + gso - 1) / gso);
  FUZZ_CHECK(s->max_segment_size() <= packet.size());
  FUZZ_CHECK(s->max_segment_size() ==
             ip.header_length + tcp.header_length + std::min(gso, tcp.payload.size()));

  std::vector<Packet> out;
  Packet data;
  Packet buf(s->max_segment_size());
  for (std::size_t i = 0; i < s->count(); ++i) {
    const auto w = s->write(i, buf);
    FUZZ_CHECK(w.has_value() && within(*w, buf) && w->data() == buf.data());
    const auto sip = core::parse_ipv4(*w);
    FUZZ_CHECK(sip.has_value() && sip->checksum_ok() && sip->total_length == w->size());
    FUZZ_CHECK(same(sip->header.options, ip.header.options));
    FUZZ_CHECK(sip->header.src == ip.header.src && sip->header.dst == ip.header.dst);
    FUZZ_CHECK(sip->header.protocol == core::ip_protocol::kTcp && !sip->is_fragment());
    FUZZ_CHECK(sip->header.ttl == ip.header.ttl && sip->header.dscp == ip.header.dscp &&
               sip->header.ecn == ip.header.ecn);
    FUZZ_CHECK(sip->header.dont_fragment == ip.header.dont_fragment);
    FUZZ_CHECK(sip->header.id == static_cast<std::uint16_t>(ip.header.id + i));
    const auto st = core::parse_tcp(sip->payload);
    FUZZ_CHECK(st.has_value() && core::tcp_checksum_ok(*st, sip->header.src, sip->header.dst));
    FUZZ_CHECK(st->header_length == tcp.header_length &&
               same(st->header.options, tcp.header.options));
    FUZZ_CHECK(st->header.seq == static_cast<std::uint32_t>(tcp.header.seq + i * gso));
    FUZZ_CHECK(st->header.ack == tcp.header.ack && st->header.window == tcp.header.window);
    const bool last = i + 1 == s->count();
    std::uint8_t want = tcp.header.flags;
    if (!last) want &= static_cast<std::uint8_t>(~(flag::kFin | flag::kPsh));
    if (i != 0) want &= static_cast<std::uint8_t>(~flag::kCwr);
    FUZZ_CHECK(st->header.flags == want);
    FUZZ_CHECK(last ? st->payload.size() <= gso : st->payload.size() == gso);
    data.insert(data.end(), st->payload.begin(), st->payload.end());
    out.emplace_back(w->begin(), w->end());
    if (i == 0) {
      Packet small(w->size() - 1);
      FUZZ_CHECK(is(s->write(0, small).error(), tep::Errc::NoSpace));
    }
  }
  FUZZ_CHECK(same(data, tcp.payload));
  FUZZ_CHECK(is(s->write(s->count(), buf).error(), tep::Errc::BadFragmentIndex));
  return out;
}

struct Frames {
  std::vector<Packet> frames;
  std::vector<Packet> before;  // the frames as given
  std::vector<CoalesceItem> items;
};

// Checks the coalescer's outputs against the frames as they were; returns the outputs' count.
std::size_t check_coalesced(const Frames& f, std::span<const Coalesced> out,
                            std::size_t max_packet) {
  std::vector<bool> is_output(f.items.size(), false);
  std::size_t total_out = 0;
  for (std::size_t k = 0; k < out.size(); ++k) {
    const Coalesced& c = out[k];
    FUZZ_CHECK(c.index < f.items.size());
    if (k > 0) FUZZ_CHECK(c.index > out[k - 1].index);
    is_output[c.index] = true;
    total_out += c.length;
    const CoalesceItem& item = f.items[c.index];
    const core::Bytes frame{f.frames[c.index]};
    const core::Bytes before{f.before[c.index]};
    if (c.header == VirtioHeader{}) {
      FUZZ_CHECK(c.length == item.length);
      if (item.offset <= frame.size() && item.length <= frame.size() - item.offset) {
        FUZZ_CHECK(same(frame.subspan(item.offset, item.length),
                        before.subspan(item.offset, item.length)));
      }
      continue;
    }
    // A merged packet: inside its frame, within max_packet, bytes before it untouched, its
    // first segment verified, and it verifies once its checksum is completed.
    FUZZ_CHECK(item.offset <= frame.size() && c.length <= frame.size() - item.offset);
    FUZZ_CHECK(c.length > item.length && c.length <= std::min<std::size_t>(max_packet, 65535));
    FUZZ_CHECK(same(frame.first(item.offset), before.first(item.offset)));
    FUZZ_CHECK(checksums_ok(before.subspan(item.offset, item.length)));
    Packet p{frame.begin() + static_cast<std::ptrdiff_t>(item.offset),
             frame.begin() + static_cast<std::ptrdiff_t>(item.offset + c.length)};
    const auto ip = core::parse_ipv4(p);
    FUZZ_CHECK(ip.has_value() && ip->checksum_ok() && ip->total_length == c.length &&
               ip->header_length == 20);
    FUZZ_CHECK(c.header.flags == VirtioHeader::kNeedsCsum && c.header.csum_start == 20 &&
               c.header.csum_offset == 16 && c.header.gso_size > 0);
    FUZZ_CHECK((c.header.gso_type & ~VirtioHeader::kGsoEcn) == VirtioHeader::kGsoTcpv4);
    const auto tcp = core::parse_tcp(ip->payload);
    FUZZ_CHECK(tcp.has_value() && c.header.hdr_len == 20 + tcp->header_length);
    FUZZ_CHECK(tcp->payload.size() > c.header.gso_size);
    FUZZ_CHECK(tep::offload::complete_checksum(c.header, p).has_value());
    FUZZ_CHECK(checksums_ok(p));
  }
  // Every other item was merged away: it was a verified TCP segment, its frame is unchanged,
  // and its payload is in an output: output lengths = input lengths - merged-away headers.
  std::size_t total_in = 0;
  for (std::size_t i = 0; i < f.items.size(); ++i) {
    total_in += f.items[i].length;
    if (is_output[i]) continue;
    FUZZ_CHECK(same(f.frames[i], f.before[i]));
    const CoalesceItem& item = f.items[i];
    const core::Bytes packet = core::Bytes{f.before[i]}.subspan(item.offset, item.length);
    FUZZ_CHECK(checksums_ok(packet));
    const auto tcp = core::parse_tcp(core::parse_ipv4(packet)->payload);
    total_out += 20 + tcp->header_length;
  }
  FUZZ_CHECK(total_out == total_in);
  return out.size();
}

void add_item(Frames& f, core::Bytes packet, std::size_t offset, std::size_t spare) {
  Packet frame(offset + packet.size() + spare, std::byte{0xee});
  std::ranges::copy(packet, frame.begin() + static_cast<std::ptrdiff_t>(offset));
  f.frames.push_back(std::move(frame));
  f.items.push_back({.frame = {}, .offset = offset, .length = packet.size()});
}

}  // namespace

// Input: control bytes, then the packet.
//   [0]     bit 0: set the IPv4 total length to the packet size; bit 1: kGsoEcn; bit 2: take
//           gso_type from [3]; bits 4..7: which mutation of the segment train (0: none)
//   [1..2]  gso_size          [3] raw gso_type        [4..5] max_packet
//   [6..7]  csum_start        [8..9] csum_offset      [10] item offset   [11] mutation argument
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const core::Bytes in = std::as_bytes(std::span{data, size});
  if (in.size() < kControl) return 0;
  const auto ctl = std::to_integer<std::uint8_t>(in[0]);
  Packet packet{in.begin() + kControl, in.end()};
  if ((ctl & 1) != 0 && packet.size() >= 4 && packet.size() <= 0xffff) {
    core::store_be16(core::MutableBytes{packet}.subspan(2, 2),
                     static_cast<std::uint16_t>(packet.size()));
  }
  VirtioHeader h{.flags = VirtioHeader::kNeedsCsum,
                 .gso_type = VirtioHeader::kGsoTcpv4,
                 .gso_size = core::load_be16(in.subspan(1, 2)),
                 .csum_start = core::load_be16(in.subspan(6, 2)),
                 .csum_offset = core::load_be16(in.subspan(8, 2))};
  if ((ctl & 2) != 0) h.gso_type |= VirtioHeader::kGsoEcn;
  if ((ctl & 4) != 0) h.gso_type = std::to_integer<std::uint8_t>(in[3]);
  const std::size_t max_packet = core::load_be16(in.subspan(4, 2));
  const std::size_t offset = std::to_integer<std::size_t>(in[10]) % 48;
  const auto arg = std::to_integer<std::size_t>(in[11]);
  const unsigned mutation = ctl >> 4;

  check_complete_checksum(h, packet);
  auto segments = check_segmenter(h, packet);
  const std::size_t count = segments.size();
  if (segments.size() > kMaxSegments) segments.resize(kMaxSegments);

  // The segment train, maybe mutated.
  if (!segments.empty()) {
    auto& victim = segments[arg % segments.size()];
    switch (mutation) {
      case 1:  // a flipped byte
        victim[(arg * 7) % victim.size()] ^= std::byte{1};
        break;
      case 2:  // two segments swapped
        std::swap(victim, segments[(arg / 7) % segments.size()]);
        break;
      case 3:  // one lost
        segments.erase(segments.begin() + static_cast<std::ptrdiff_t>(arg % segments.size()));
        break;
      case 4:  // one repeated
        segments.insert(segments.begin() + static_cast<std::ptrdiff_t>(arg % segments.size()),
                        victim);
        break;
      default:
        break;
    }
  }
  Frames f;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    // The first frame has room for a whole super-packet, the others only for a few payloads.
    add_item(f, segments[i], offset, i == 0 ? 65535 : arg * 16);
  }
  // Raw slices of the input, hostile to the parser, and an item outside its frame.
  add_item(f, packet, offset, arg);
  add_item(f, core::Bytes{packet}.first(packet.size() / 2), 0, 0);
  add_item(f, core::Bytes{packet}.subspan(packet.size() / 3), 1, 3000);
  add_item(f, core::Bytes{packet}.first(std::min<std::size_t>(packet.size(), 60)), offset, 0);
  f.items.back().length += arg;
  f.before = f.frames;
  for (std::size_t i = 0; i < f.items.size(); ++i) f.items[i].frame = f.frames[i];

  Coalescer coalescer{max_packet};
  const auto out = coalescer.coalesce(f.items);
  check_coalesced(f, out, max_packet);

  // An untouched train of a mergeable super-packet merges back into it (its checksum fields
  // aside: the IPv4 one is recomputed, the TCP one partial).
  if (mutation == 0 && count >= 2 && count <= kMaxSegments && max_packet >= packet.size()) {
    const auto ip = core::parse_ipv4(packet).value();
    const auto tcp = core::parse_tcp(ip.payload).value();
    const std::uint8_t never = flag::kSyn | flag::kRst | flag::kUrg | flag::kFin;
    if (ip.header_length == 20 && (tcp.header.flags & never) == 0) {
      FUZZ_CHECK(out.front().index == 0 && out.front().length == packet.size());
      FUZZ_CHECK(out.front().header.gso_size == h.gso_size);
      Packet merged{f.frames[0].begin() + static_cast<std::ptrdiff_t>(offset),
                    f.frames[0].begin() + static_cast<std::ptrdiff_t>(offset + packet.size())};
      for (const std::size_t at :
           {std::size_t{10}, std::size_t{11}, std::size_t{36}, std::size_t{37}}) {
        merged[at] = packet[at];
      }
      FUZZ_CHECK(merged == packet);
      FUZZ_CHECK(out.size() >= 2 && out[1].index == segments.size());
    }
  }
  return 0;
}
