// Tests for tep/offload.hpp: the virtio header, partial checksums, TSO (TcpSegmenter) and GRO
// (Coalescer) in software, as packet tables built with PacketBuilder and checked with core's
// parsers and checksum functions.
#include "tep/offload.hpp"

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/checksum.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "core/tcp.hpp"
#include "core/udp.hpp"
#include "support/packet_builder.hpp"

using tep::Errc;
using tep::offload::Coalesced;
using tep::offload::CoalesceItem;
using tep::offload::Coalescer;
using tep::offload::TcpSegmenter;
using tep::offload::VirtioHeader;
using test::PacketBuilder;
namespace flag = core::tcp_flag;

namespace {

using Packet = std::vector<std::byte>;

constexpr std::uint32_t kSeq = 1'000'000;
constexpr std::uint8_t kAck = flag::kAck;

// Payload bytes by their offset in the TCP stream, so that any cut of it can be rebuilt.
Packet stream(std::size_t from, std::size_t n) {
  Packet out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((from + i) * 7 % 251);
  return out;
}

// One TCP/IPv4 segment, described field by field.
struct Spec {
  const char* src = "192.0.2.1";
  const char* dst = "198.51.100.7";
  std::uint16_t sport = 40000;
  std::uint16_t dport = 443;
  std::uint32_t seq0 = kSeq;  // the stream's first sequence number
  std::size_t from = 0;       // stream offset of the payload: seq = seq0 + from
  std::size_t size = 1000;    // payload bytes
  std::uint8_t flags = kAck;
  std::uint16_t id = 100;
  bool df = true;
  bool mf = false;
  std::uint8_t dscp = 0;
  std::uint8_t ecn = 0;
  std::uint8_t ttl = 64;
  std::uint32_t ack = 5555;
  std::uint16_t window = 502;
  int tcp_options = 1;  // 0: none, 1 and 2: NOP NOP timestamps with different TSval
  bool ip_options = false;
};

Packet build(const Spec& s) {
  PacketBuilder b;
  b.ipv4(s.src, s.dst).id(s.id).df(s.df).mf(s.mf).dscp(s.dscp).ecn(s.ecn).ttl(s.ttl);
  if (s.ip_options) b.ipv4_options({148, 4, 0, 0});  // router alert
  b.tcp(s.sport, s.dport, s.flags, static_cast<std::uint32_t>(s.seq0 + s.from), s.ack)
      .window(s.window);
  if (s.tcp_options == 1) b.tcp_options({1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9});
  if (s.tcp_options == 2) b.tcp_options({1, 1, 8, 10, 0, 0, 0, 8, 0, 0, 0, 9});
  return b.payload(stream(s.from, s.size)).bytes();
}

// n consecutive segments of `size` bytes of one flow, ids counting up from base.id.
std::vector<Spec> run_of(std::size_t n, std::size_t size = 1000, Spec base = {}) {
  std::vector<Spec> out;
  for (std::size_t i = 0; i < n; ++i) {
    Spec s = base;
    s.from = base.from + i * size;
    s.size = size;
    s.id = static_cast<std::uint16_t>(base.id + i);
    out.push_back(s);
  }
  return out;
}

std::vector<Packet> build_all(const std::vector<Spec>& specs) {
  std::vector<Packet> out;
  for (const auto& s : specs) out.push_back(build(s));
  return out;
}

core::Ipv4Packet ip_of(core::Bytes p) {
  return core::parse_ipv4(p).value();
}
core::TcpSegment tcp_of(core::Bytes p) {
  return core::parse_tcp(ip_of(p).payload).value();
}

// The TCP checksum field as CHECKSUM_PARTIAL has it: the folded pseudo-header sum.
Packet as_partial(Packet p) {
  const auto ip = ip_of(p);
  const auto sum = core::ipv4_pseudo_header(ip.header.src, ip.header.dst, core::ip_protocol::kTcp,
                                            static_cast<std::uint16_t>(ip.payload.size()))
                       .sum();
  core::store_be16(core::MutableBytes{p}.subspan(ip.header_length + 16, 2), sum);
  return p;
}

// The merge of `packets` computed with core only: the first's headers, every payload, the total
// length and header checksum fixed, PSH from the last, the TCP checksum field partial.
Packet merged(const std::vector<Packet>& packets) {
  Packet out = packets.front();
  for (std::size_t i = 1; i < packets.size(); ++i) {
    const auto payload = tcp_of(packets[i]).payload;
    out.insert(out.end(), payload.begin(), payload.end());
  }
  core::MutableBytes p{out};
  core::store_be16(p.subspan(2, 2), static_cast<std::uint16_t>(out.size()));
  core::store_be16(p.subspan(10, 2), 0);
  core::store_be16(p.subspan(10, 2), core::ipv4_header_checksum(p.first(20)));
  if (tcp_of(packets.back()).has(flag::kPsh)) p[33] |= std::byte{flag::kPsh};
  return as_partial(out);
}

// Received packets in frames: `offset` bytes in front, `spare` bytes behind.
struct Batch {
  explicit Batch(std::vector<Packet> in, std::size_t offset = 8, std::size_t spare = 65536)
      : packets{std::move(in)} {
    frames.reserve(packets.size());
    for (const auto& p : packets) {
      frames.emplace_back(offset + p.size() + spare, std::byte{0xee});
      std::ranges::copy(p, frames.back().begin() + static_cast<std::ptrdiff_t>(offset));
      items.push_back({.frame = frames.back(), .offset = offset, .length = p.size()});
    }
  }
  Packet output(const Coalesced& c) const {
    const core::Bytes f{frames[c.index]};
    const auto b = f.subspan(items[c.index].offset, c.length);
    return {b.begin(), b.end()};
  }

  std::vector<Packet> packets;
  std::vector<Packet> frames;
  std::vector<CoalesceItem> items;
};

// Checks the outputs of coalescing `batch`: one per group of item indices, in that order; a
// group of one is the packet unchanged with a zero header, a longer group their merge.
void check_groups(const Batch& batch, std::span<const Coalesced> out,
                  const std::vector<std::vector<std::size_t>>& groups) {
  REQUIRE(out.size() == groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) {
    CAPTURE(g);
    const auto& group = groups[g];
    const Coalesced& c = out[g];
    REQUIRE(c.index == group.front());
    const Packet got = batch.output(c);
    if (group.size() == 1) {
      CHECK(c.header == VirtioHeader{});
      CHECK(got == batch.packets[group.front()]);
      continue;
    }
    std::vector<Packet> parts;
    for (const auto i : group) parts.push_back(batch.packets[i]);
    CHECK(got == merged(parts));
    const auto first = tcp_of(parts.front());
    CHECK(c.header.flags == VirtioHeader::kNeedsCsum);
    CHECK(c.header.gso_type == (first.has(flag::kCwr)
                                    ? VirtioHeader::kGsoTcpv4 | VirtioHeader::kGsoEcn
                                    : VirtioHeader::kGsoTcpv4));
    CHECK(c.header.gso_size == first.payload.size());
    CHECK(c.header.hdr_len == 20 + first.header_length);
    CHECK(c.header.csum_start == 20);
    CHECK(c.header.csum_offset == 16);
    // Completing the partial checksum gives a segment that verifies, checked by core alone.
    Packet done = got;
    REQUIRE(tep::offload::complete_checksum(c.header, done));
    const auto ip = ip_of(done);
    CHECK(ip.checksum_ok());
    CHECK(core::tcp_checksum_ok(tcp_of(done), ip.header.src, ip.header.dst));
  }
}

std::vector<Packet> segment_all(const TcpSegmenter& s) {
  std::vector<Packet> out;
  Packet buf(s.max_segment_size());
  for (std::size_t i = 0; i < s.count(); ++i) {
    const auto seg = s.write(i, buf).value();
    out.emplace_back(seg.begin(), seg.end());
  }
  return out;
}

const VirtioHeader kTso{.flags = VirtioHeader::kNeedsCsum,
                        .gso_type = VirtioHeader::kGsoTcpv4,
                        .hdr_len = 52,
                        .gso_size = 1000,
                        .csum_start = 20,
                        .csum_offset = 16};

VirtioHeader tso(std::uint16_t gso_size, std::uint8_t gso_type = VirtioHeader::kGsoTcpv4) {
  VirtioHeader h = kTso;
  h.gso_size = gso_size;
  h.gso_type = gso_type;
  return h;
}

}  // namespace

// --- virtio header ---------------------------------------------------------------------------

TEST_CASE("offload: the virtio header is 10 bytes in the host byte order", "[tep]") {
  const VirtioHeader h{.flags = 1,
                       .gso_type = 0x81,
                       .hdr_len = 0x0102,
                       .gso_size = 0x0304,
                       .csum_start = 0x0506,
                       .csum_offset = 0x0708};
  Packet buf(12, std::byte{0xee});
  h.write(buf);
  CHECK(VirtioHeader::read(buf) == h);
  CHECK(buf[10] == std::byte{0xee});
  if constexpr (std::endian::native == std::endian::little) {
    CHECK(buf == test::bytes({1, 0x81, 2, 1, 4, 3, 6, 5, 8, 7, 0xee, 0xee}));
  }
}

// --- complete_checksum -----------------------------------------------------------------------

TEST_CASE("offload: complete_checksum finishes a partial TCP checksum", "[tep]") {
  const auto size = GENERATE(0u, 1u, 7u, 1000u, 1461u);
  CAPTURE(size);
  Spec s;
  s.size = size;
  const Packet full = build(s);
  Packet p = as_partial(full);
  REQUIRE(tep::offload::complete_checksum(kTso, p));
  CHECK(p == full);
}

TEST_CASE("offload: complete_checksum finishes a partial UDP checksum", "[tep]") {
  const auto udp = [](core::Bytes payload) {
    return PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload(payload).bytes();
  };
  const auto partial = [](Packet p) {
    const auto ip = ip_of(p);
    core::store_be16(core::MutableBytes{p}.subspan(26, 2),
                     core::ipv4_pseudo_header(ip.header.src, ip.header.dst, core::ip_protocol::kUdp,
                                              static_cast<std::uint16_t>(ip.payload.size()))
                         .sum());
    return p;
  };
  const VirtioHeader h{.flags = VirtioHeader::kNeedsCsum, .csum_start = 20, .csum_offset = 6};
  SECTION("odd payload") {
    const Packet full = udp(test::bytes({1, 2, 3, 4, 5}));
    Packet p = partial(full);
    REQUIRE(tep::offload::complete_checksum(h, p));
    CHECK(p == full);
  }
  SECTION("a sum of zero is sent as 0xffff") {
    // With a 2-byte payload equal to the checksum of the packet carrying zeros there, the
    // ones' complement sum is all ones and the checksum 0, which UDP must send as 0xffff.
    const Packet zero = udp(test::bytes({0, 0}));
    const std::uint16_t c = core::load_be16(core::Bytes{zero}.subspan(26, 2));
    const Packet full = udp(test::bytes({c >> 8, c & 0xff}));
    Packet p = partial(full);
    REQUIRE(tep::offload::complete_checksum(h, p));
    CHECK(core::load_be16(core::Bytes{p}.subspan(26, 2)) == 0xffff);
    CHECK(p == full);
    const auto ip = ip_of(p);
    CHECK(core::udp_checksum_ok(core::parse_udp(ip.payload).value(), ip.header.src, ip.header.dst));
  }
}

TEST_CASE("offload: complete_checksum leaves packets without NEEDS_CSUM alone", "[tep]") {
  const Packet full = build(Spec{});
  Packet p = as_partial(full);
  const Packet before = p;
  for (const std::uint8_t f : {std::uint8_t{0}, VirtioHeader::kDataValid}) {
    VirtioHeader h = kTso;
    h.flags = f;
    REQUIRE(tep::offload::complete_checksum(h, p));
    CHECK(p == before);
  }
}

TEST_CASE("offload: complete_checksum refuses a field outside the packet", "[tep]") {
  const auto [start, offset] = GENERATE(table<std::uint16_t, std::uint16_t>(
      {{1051, 16}, {1100, 0}, {20, 1031}, {1051, 0}, {0, 1051}, {65535, 65535}}));
  CAPTURE(start, offset);
  Packet p = build(Spec{});  // 20 + 32 + 1000 = 1052 bytes
  REQUIRE(p.size() == 1052);
  const Packet before = p;
  VirtioHeader h = kTso;
  h.csum_start = start;
  h.csum_offset = offset;
  CHECK(tep::offload::complete_checksum(h, p).error() == make_error_code(Errc::BadOffload));
  CHECK(p == before);
}

TEST_CASE("offload: complete_checksum accepts the field in the last two bytes", "[tep]") {
  Packet p = test::bytes({0x12, 0x34, 0, 0});
  const VirtioHeader h{.flags = VirtioHeader::kNeedsCsum, .csum_start = 0, .csum_offset = 2};
  REQUIRE(tep::offload::complete_checksum(h, p));
  CHECK(p == test::bytes({0x12, 0x34, 0xed, 0xcb}));
}

TEST_CASE("offload: bulk_sum agrees with Checksum and copies", "[tep]") {
  std::mt19937 rng{7};
  for (std::size_t n = 0; n < 70; ++n) {
    CAPTURE(n);
    Packet data(n);
    for (auto& b : data) b = static_cast<std::byte>(rng());
    CHECK(core::bulk_sum(data) == core::Checksum{}.add(data).sum());
    Packet copy(n + 3, std::byte{0xee});
    CHECK(core::bulk_sum(data, copy) == core::Checksum{}.add(data).sum());
    CHECK(std::ranges::equal(core::Bytes{copy}.first(n), data));
    CHECK(core::Bytes{copy}.subspan(n)[0] == std::byte{0xee});
  }
  CHECK(core::bulk_sum(Packet(64, std::byte{0xff})) == 0xffff);
  CHECK(core::bulk_sum(Packet(64, std::byte{0})) == 0);
}

// --- TcpSegmenter ----------------------------------------------------------------------------

TEST_CASE("offload: segmentation cuts the payload into gso_size pieces", "[tep]") {
  const auto [payload, gso] = GENERATE(table<std::size_t, std::uint16_t>({
      {3000, 1000},  // a multiple
      {3001, 1000},  // one byte left over
      {2999, 1000},  // a short last segment
      {500, 1000},   // a single segment, shorter than gso_size
      {1000, 1000},  // a single segment of exactly gso_size
      {1448, 1448},
      {7, 1},  // gso_size 1
      {1, 1},
      {65483, 1460},  // the largest super-packet: 20 + 32 + 65483 = 65535
  }));
  CAPTURE(payload, gso);
  Spec super;
  super.size = payload;
  const Packet packet = build(super);
  const auto s = TcpSegmenter::start(tso(gso), packet).value();
  const std::size_t count = (payload + gso - 1) / gso;
  CHECK(s.count() == count);
  CHECK(s.max_segment_size() == 52 + std::min<std::size_t>(gso, payload));
  const auto segments = segment_all(s);
  REQUIRE(segments.size() == count);
  for (std::size_t i = 0; i < count; ++i) {
    CAPTURE(i);
    Spec e = super;
    e.from = i * gso;
    e.size = std::min<std::size_t>(gso, payload - e.from);
    e.id = static_cast<std::uint16_t>(super.id + i);
    CHECK(segments[i] == build(e));
  }
}

TEST_CASE("offload: segmentation copies IP options and TCP options", "[tep]") {
  const int tcp_options = GENERATE(0, 1);
  const bool ip_options = GENERATE(false, true);
  CAPTURE(tcp_options, ip_options);
  Spec super;
  super.size = 2500;
  super.tcp_options = tcp_options;
  super.ip_options = ip_options;
  super.dscp = 46;
  super.ttl = 7;
  super.window = 9999;
  const Packet packet = build(super);
  const auto segments = segment_all(TcpSegmenter::start(tso(1000), packet).value());
  REQUIRE(segments.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    Spec e = super;
    e.from = i * 1000;
    e.size = i == 2 ? 500 : 1000;
    e.id = static_cast<std::uint16_t>(super.id + i);
    CHECK(segments[i] == build(e));
  }
}

TEST_CASE("offload: segmentation puts FIN and PSH on the last segment, CWR on the first", "[tep]") {
  const int gso_type =
      GENERATE(as<int>{}, VirtioHeader::kGsoTcpv4, VirtioHeader::kGsoTcpv4 | VirtioHeader::kGsoEcn);
  Spec super;
  super.size = 3500;
  super.flags = kAck | flag::kFin | flag::kPsh | flag::kCwr | flag::kEce;
  const Packet packet = build(super);
  const auto s = TcpSegmenter::start(tso(1000, static_cast<std::uint8_t>(gso_type)), packet);
  REQUIRE(s);
  const auto segments = segment_all(*s);
  REQUIRE(segments.size() == 4);
  const std::uint8_t want[] = {kAck | flag::kCwr | flag::kEce, kAck | flag::kEce, kAck | flag::kEce,
                               kAck | flag::kFin | flag::kPsh | flag::kEce};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(tcp_of(segments[i]).header.flags == want[i]);
    const auto ip = ip_of(segments[i]);
    CHECK(core::tcp_checksum_ok(tcp_of(segments[i]), ip.header.src, ip.header.dst));
  }
}

TEST_CASE("offload: segmentation keeps ECN and the urgent fields", "[tep]") {
  const auto ecn = static_cast<std::uint8_t>(GENERATE(0, 1, 2, 3));
  Spec super;
  super.size = 2000;
  super.ecn = ecn;
  super.flags = kAck | flag::kUrg;
  const Packet packet = build(super);
  const auto segments = segment_all(TcpSegmenter::start(tso(1000), packet).value());
  REQUIRE(segments.size() == 2);
  for (const auto& seg : segments) {
    CHECK(ip_of(seg).header.ecn == ecn);
    CHECK(tcp_of(seg).has(flag::kUrg));
  }
}

TEST_CASE("offload: segmentation wraps the IP id and the sequence number", "[tep]") {
  Spec super;
  super.size = 4000;
  super.id = 65534;
  super.seq0 = 0xfffffc00;  // 1024 before the wrap
  const Packet packet = build(super);
  const auto segments = segment_all(TcpSegmenter::start(tso(1000), packet).value());
  REQUIRE(segments.size() == 4);
  const std::uint16_t ids[] = {65534, 65535, 0, 1};
  const std::uint32_t seqs[] = {0xfffffc00, 0xffffffe8, 976, 1976};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(ip_of(segments[i]).header.id == ids[i]);
    CHECK(tcp_of(segments[i]).header.seq == seqs[i]);
    Spec e = super;
    e.from = i * 1000;
    e.size = 1000;
    e.id = ids[i];
    CHECK(segments[i] == build(e));
  }
}

TEST_CASE("offload: segmentation ignores the super-packet's checksums", "[tep]") {
  Spec super;
  super.size = 2000;
  const Packet good = build(super);
  Packet p = good;
  core::MutableBytes b{p};
  b[10] ^= std::byte{0x5a};  // IPv4 header checksum
  b[36] ^= std::byte{0xa5};  // TCP checksum (the kernel leaves the pseudo-header sum here)
  CHECK(segment_all(TcpSegmenter::start(tso(1000), p).value()) ==
        segment_all(TcpSegmenter::start(tso(1000), good).value()));
}

TEST_CASE("offload: segmentation refuses bad super-packets", "[tep]") {
  Spec base;
  base.size = 100;
  const Packet good = build(base);
  const auto with = [&](auto&& change) {
    Packet p = good;
    change(p);
    return p;
  };
  const auto set16 = [](Packet& p, std::size_t at, std::uint16_t v) {
    core::store_be16(core::MutableBytes{p}.subspan(at, 2), v);
  };
  const Packet udp =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).payload("xyz").bytes();
  Spec frag = base;
  frag.mf = true;
  Spec no_payload = base;
  no_payload.size = 0;
  const Packet short_tcp =
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7", 6).payload(std::string(19, 'x')).bytes();

  struct Case {
    const char* what;
    VirtioHeader header;
    Packet packet;
    Errc error;
  };
  const std::vector<Case> cases{
      {"no GSO", tso(10, VirtioHeader::kGsoNone), good, Errc::BadOffload},
      {"GSO UDP", tso(10, VirtioHeader::kGsoUdp), good, Errc::BadOffload},
      {"GSO TCPv6", tso(10, VirtioHeader::kGsoTcpv6), good, Errc::BadOffload},
      {"unknown bits", tso(10, VirtioHeader::kGsoTcpv4 | 0x10), good, Errc::BadOffload},
      {"gso_size 0", tso(0), good, Errc::BadOffload},
      {"truncated", tso(10), Packet(19), Errc::InnerTruncated},
      {"IPv6", tso(10), with([](Packet& p) { p[0] = std::byte{0x65}; }), Errc::InnerBadVersion},
      {"IHL 4", tso(10), with([](Packet& p) { p[0] = std::byte{0x44}; }), Errc::InnerBadHeader},
      {"total length short", tso(10), with([&](Packet& p) { set16(p, 2, 100); }),
       Errc::InnerBadTotalLength},
      {"total length long", tso(10), with([&](Packet& p) { set16(p, 2, 1000); }),
       Errc::InnerBadTotalLength},
      {"link padding", tso(10), with([](Packet& p) { p.push_back(std::byte{0}); }),
       Errc::InnerBadTotalLength},
      {"UDP", tso(10), udp, Errc::OffloadNotTcp},
      {"a fragment", tso(10), build(frag), Errc::OffloadNotTcp},
      {"TCP header truncated", tso(10), short_tcp, Errc::OffloadBadTcpHeader},
      {"data offset 4", tso(10), with([](Packet& p) { p[32] = std::byte{0x40}; }),
       Errc::OffloadBadTcpHeader},
      {"data offset past the end", tso(10), with([](Packet& p) {
         p.resize(20 + 32);
         core::store_be16(core::MutableBytes{p}.subspan(2, 2), 52);
         p[32] = std::byte{0xf0};
       }),
       Errc::OffloadBadTcpHeader},
      {"no payload", tso(10), build(no_payload), Errc::OffloadNoPayload},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    const auto r = TcpSegmenter::start(c.header, c.packet);
    REQUIRE_FALSE(r);
    CHECK(r.error() == make_error_code(c.error));
  }
}

TEST_CASE("offload: segment write refuses a bad index and a small buffer", "[tep]") {
  Spec super;
  super.size = 2500;
  const Packet packet = build(super);
  const auto s = TcpSegmenter::start(tso(1000), packet).value();
  REQUIRE(s.count() == 3);
  Packet buf(s.max_segment_size());
  CHECK(s.write(3, buf).error() == make_error_code(Errc::BadFragmentIndex));
  CHECK(s.write(99, buf).error() == make_error_code(Errc::BadFragmentIndex));
  Packet small(s.max_segment_size() - 1);
  CHECK(s.write(0, small).error() == make_error_code(Errc::NoSpace));
  // The short last segment fits a buffer of its own size.
  Packet last(52 + 500);
  CHECK(s.write(2, last).value().size() == last.size());
  CHECK(s.write(1, last).error() == make_error_code(Errc::NoSpace));
}

// --- Coalescer -------------------------------------------------------------------------------

TEST_CASE("offload: an in-order run merges into its first segment", "[tep]") {
  const std::size_t n = GENERATE(2u, 3u, 10u, 44u);
  const std::size_t size = GENERATE(1u, 536u, 1448u);
  CAPTURE(n, size);
  Batch batch{build_all(run_of(n, size))};
  Coalescer c;
  std::vector<std::size_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = i;
  check_groups(batch, c.coalesce(batch.items), {all});
}

TEST_CASE("offload: a single segment is passed on unchanged", "[tep]") {
  Batch batch{build_all(run_of(1))};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0}});
  check_groups(batch, c.coalesce({}), {});
}

TEST_CASE("offload: out-of-order segments do not merge", "[tep]") {
  auto specs = run_of(4);
  std::swap(specs[1], specs[2]);  // 0 2 1 3
  Batch batch{build_all(specs)};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0}, {1}, {2}, {3}});
}

TEST_CASE("offload: a retransmitted segment does not join the run it repeats", "[tep]") {
  auto specs = run_of(3);
  specs.insert(specs.begin() + 2, specs[1]);  // 0 1 1 2
  specs[2].id = 102;
  specs[3].id = 103;
  Batch batch{build_all(specs)};
  Coalescer c;
  // The repeat starts a run of its own, which the next segment continues.
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2, 3}});
}

TEST_CASE("offload: SYN, RST, URG and FIN segments are never merged", "[tep]") {
  const std::uint8_t f = GENERATE(flag::kSyn, flag::kRst, flag::kUrg, flag::kFin);
  CAPTURE(f);
  auto specs = run_of(5);
  specs[2].flags |= f;
  Batch batch{build_all(specs)};
  Coalescer c;
  // The flagged segment ends the run before it and starts none.
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
}

TEST_CASE("offload: PSH is merged as the last segment of a run", "[tep]") {
  auto specs = run_of(5);
  specs[1].flags |= flag::kPsh;
  Batch batch{build_all(specs)};
  Coalescer c;
  const auto out = c.coalesce(batch.items);
  check_groups(batch, out, {{0, 1}, {2, 3, 4}});
  CHECK(tcp_of(batch.output(out[0])).has(flag::kPsh));
  CHECK_FALSE(tcp_of(batch.output(out[1])).has(flag::kPsh));
}

TEST_CASE("offload: a PSH segment starts no run", "[tep]") {
  auto specs = run_of(3);
  specs[0].flags |= flag::kPsh;
  Batch batch{build_all(specs)};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0}, {1, 2}});
}

TEST_CASE("offload: CWR starts a new run, marked ECN", "[tep]") {
  auto specs = run_of(5);
  specs[2].flags |= flag::kCwr;
  Batch batch{build_all(specs)};
  Coalescer c;
  const auto out = c.coalesce(batch.items);
  check_groups(batch, out, {{0, 1}, {2, 3, 4}});
  CHECK(out[1].header.gso_type == (VirtioHeader::kGsoTcpv4 | VirtioHeader::kGsoEcn));
  CHECK(tcp_of(batch.output(out[1])).has(flag::kCwr));
}

TEST_CASE("offload: ECE must be the same on every segment of a run", "[tep]") {
  SECTION("on all") {
    Spec base;
    base.flags = kAck | flag::kEce;
    Batch batch{build_all(run_of(3, 1000, base))};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}});
  }
  SECTION("on one") {
    auto specs = run_of(5);
    specs[2].flags |= flag::kEce;
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
  }
}

TEST_CASE("offload: a different header field ends the run", "[tep]") {
  struct Change {
    const char* what;
    void (*apply)(Spec&);
  };
  const auto change = GENERATE(
      Change{"tos", [](Spec& s) { s.dscp = 10; }}, Change{"ecn", [](Spec& s) { s.ecn = 3; }},
      Change{"ttl", [](Spec& s) { s.ttl = 63; }}, Change{"ack", [](Spec& s) { s.ack += 1; }},
      Change{"window", [](Spec& s) { s.window = 503; }},
      Change{"timestamp", [](Spec& s) { s.tcp_options = 2; }},
      Change{"no options", [](Spec& s) { s.tcp_options = 0; }});
  CAPTURE(change.what);
  auto specs = run_of(5);
  change.apply(specs[2]);
  Batch batch{build_all(specs)};
  Coalescer c;
  // Segment 2 cannot join 0+1; segment 3 cannot join 2; 4 joins 3.
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
}

TEST_CASE("offload: a changed field on the following segments starts a new run", "[tep]") {
  auto specs = run_of(4);
  for (std::size_t i = 2; i < 4; ++i) specs[i].ack = 6000;  // the ack moved on
  Batch batch{build_all(specs)};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2, 3}});
}

TEST_CASE("offload: DF must be the same on every segment of a run", "[tep]") {
  auto specs = run_of(3);
  specs[1].df = false;
  Batch batch{build_all(specs)};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0}, {1}, {2}});
}

TEST_CASE("offload: IP ids must count up, or stay fixed with DF", "[tep]") {
  SECTION("incrementing, across the wrap") {
    Spec base;
    base.id = 65534;
    Batch batch{build_all(run_of(4, 1000, base))};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2, 3}});
  }
  SECTION("incrementing without DF") {
    Spec base;
    base.df = false;
    Batch batch{build_all(run_of(3, 1000, base))};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}});
  }
  SECTION("fixed with DF") {
    auto specs = run_of(3);
    for (auto& s : specs) s.id = 7;
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}});
  }
  SECTION("fixed without DF") {
    auto specs = run_of(3);
    for (auto& s : specs) {
      s.id = 7;
      s.df = false;
    }
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0}, {1}, {2}});
  }
  SECTION("the second segment decides: fixed, then incrementing") {
    auto specs = run_of(4);
    specs[1].id = specs[0].id;                                  // fixed...
    specs[2].id = static_cast<std::uint16_t>(specs[0].id + 2);  // ...then counting
    specs[3].id = static_cast<std::uint16_t>(specs[0].id + 3);
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2, 3}});
  }
  SECTION("a jump") {
    auto specs = run_of(4);
    specs[2].id = 5000;
    specs[3].id = 5001;
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2, 3}});
  }
}

TEST_CASE("offload: a bad TCP checksum is never merged", "[tep]") {
  SECTION("in the middle") {
    Batch batch{build_all(run_of(5))};
    batch.packets[2][500] ^= std::byte{1};  // payload byte: the TCP checksum no longer verifies
    batch.frames[2][8 + 500] ^= std::byte{1};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
  }
  SECTION("the first segment") {
    Batch batch{build_all(run_of(4))};
    batch.packets[0][100] ^= std::byte{1};
    batch.frames[0][8 + 100] ^= std::byte{1};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0}, {1, 2, 3}});
  }
  SECTION("the last segment") {
    Batch batch{build_all(run_of(3))};
    batch.packets[2][36] ^= std::byte{0x80};  // the checksum field itself
    batch.frames[2][8 + 36] ^= std::byte{0x80};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}});
  }
  SECTION("a bad IPv4 header checksum") {
    Batch batch{build_all(run_of(3))};
    batch.packets[1][10] ^= std::byte{1};
    batch.frames[1][8 + 10] ^= std::byte{1};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0}, {1}, {2}});
  }
}

TEST_CASE("offload: interleaved flows merge each in its own order", "[tep]") {
  std::vector<Spec> specs;
  const auto a = run_of(3);
  Spec other;
  other.sport = 40001;
  const auto b = run_of(3, 700, other);
  Spec third;
  third.src = "203.0.113.9";
  const auto d = run_of(2, 1000, third);
  // a0 b0 a1 b1 d0 a2 b2 d1
  Batch batch{build_all({a[0], b[0], a[1], b[1], d[0], a[2], b[2], d[1]})};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0, 2, 5}, {1, 3, 6}, {4, 7}});
}

TEST_CASE("offload: a packet of the flow that cannot merge keeps its place", "[tep]") {
  auto specs = run_of(4);
  Spec pure_ack = specs[2];
  pure_ack.size = 0;
  pure_ack.id = 102;
  specs[2].id = 103;
  specs[3].id = 104;
  // a0 a1 ack a2 a3: a2 must not jump over the ack into a0's run.
  Batch batch{build_all({specs[0], specs[1], pure_ack, specs[2], specs[3]})};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
}

TEST_CASE("offload: a short segment ends the run, a longer one starts a new one", "[tep]") {
  SECTION("short") {
    auto specs = run_of(4);
    specs[2].size = 500;
    specs[3].from = 2500;
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}, {3}});
  }
  SECTION("longer") {
    auto specs = run_of(3, 500);
    specs[1].size = 1000;
    specs[2].from = 1500;
    Batch batch{build_all(specs)};
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0}, {1, 2}});
  }
}

TEST_CASE("offload: merged packets respect max_packet and the frame", "[tep]") {
  SECTION("max_packet") {
    Batch batch{build_all(run_of(5))};
    Coalescer c{52 + 2500};
    check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2, 3}, {4}});
  }
  SECTION("exactly max_packet") {
    Batch batch{build_all(run_of(3))};
    Coalescer c{52 + 3000};
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}});
  }
  SECTION("65535") {
    // 20 + 32 + 1000 * 65 = 65052: the 66th segment would pass 65535.
    Batch batch{build_all(run_of(67))};
    Coalescer c{100000};
    std::vector<std::size_t> first(65);
    for (std::size_t i = 0; i < 65; ++i) first[i] = i;
    check_groups(batch, c.coalesce(batch.items), {first, {65, 66}});
  }
  SECTION("the frame") {
    Batch batch{build_all(run_of(4)), 8, 2500};  // room for two more payloads
    Coalescer c;
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2}, {3}});
  }
}

TEST_CASE("offload: non-TCP packets, fragments and odd packets pass untouched", "[tep]") {
  Spec frag;
  frag.mf = true;
  Spec frag_b = frag;
  frag_b.from = 1000;
  Spec with_ip_options;
  with_ip_options.ip_options = true;
  Spec with_ip_options_b = with_ip_options;
  with_ip_options_b.from = 1000;
  with_ip_options_b.id = 101;
  std::vector<Packet> packets{
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).payload("a").bytes(),
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(1, 2).payload("a").bytes(),
      PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").icmpv4_echo(1, 2).bytes(),
      build(frag),
      build(frag_b),
      build(with_ip_options),
      build(with_ip_options_b),
      PacketBuilder{}.ipv6("2001:db8::1", "2001:db8::2").tcp(1, 2).payload("x").bytes(),
      test::bytes({0x45, 0, 0}),
      {},
  };
  Packet padded = build(run_of(2)[0]);
  padded.push_back(std::byte{0});  // total length < item length
  packets.push_back(padded);
  packets.push_back(build(run_of(2)[1]));
  Batch batch{packets};
  Coalescer c;
  std::vector<std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < packets.size(); ++i) groups.push_back({i});
  check_groups(batch, c.coalesce(batch.items), groups);
}

TEST_CASE("offload: a TCP fragment between segments ends the run of its addresses", "[tep]") {
  auto specs = run_of(4);
  Spec frag;
  frag.mf = true;
  frag.sport = 1;  // another connection between the same hosts: ports unknown in fragments
  frag.id = 9;
  Batch batch{build_all({specs[0], specs[1], frag, specs[2], specs[3]})};
  Coalescer c;
  check_groups(batch, c.coalesce(batch.items), {{0, 1}, {2}, {3, 4}});
}

TEST_CASE("offload: items outside their frames are passed on unread", "[tep]") {
  Batch batch{build_all(run_of(3))};
  batch.items[1].offset = batch.frames[1].size() + 1;
  batch.items[2].length = batch.frames[2].size();
  Coalescer c;
  const auto out = c.coalesce(batch.items);
  REQUIRE(out.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(out[i].index == i);
    CHECK(out[i].length == batch.items[i].length);
    CHECK(out[i].header == VirtioHeader{});
  }
}

TEST_CASE("offload: a coalescer is reused from batch to batch", "[tep]") {
  Coalescer c;
  for (int round = 0; round < 3; ++round) {
    Spec base;
    base.from = static_cast<std::size_t>(round) * 5000;
    base.id = static_cast<std::uint16_t>(round * 5);
    Batch batch{build_all(run_of(5, 1000, base))};
    check_groups(batch, c.coalesce(batch.items), {{0, 1, 2, 3, 4}});
  }
}

// --- round trip ------------------------------------------------------------------------------

TEST_CASE("offload: segmenting then coalescing gives back the super-packet", "[tep]") {
  const auto [payload, gso] = GENERATE(table<std::size_t, std::uint16_t>(
      {{3000, 1000}, {3001, 1000}, {65483, 1460}, {2 * 1448 + 1, 1448}, {9, 1}}));
  const auto flags = static_cast<std::uint8_t>(
      GENERATE(as<int>{}, kAck, kAck | flag::kPsh, kAck | flag::kCwr | flag::kEce | flag::kPsh));
  const bool df = GENERATE(true, false);
  CAPTURE(payload, gso, flags, df);
  Spec super;
  super.size = payload;
  super.flags = flags;
  super.df = df;
  super.id = 65000;
  const Packet original = build(super);
  const auto segmenter = TcpSegmenter::start(tso(gso), original).value();
  Batch batch{segment_all(segmenter), 40};
  Coalescer c;
  const auto out = c.coalesce(batch.items);
  REQUIRE(out.size() == 1);
  CHECK(out[0].index == 0);
  CHECK(batch.output(out[0]) == as_partial(original));
  CHECK(out[0].header.gso_size == gso);
  CHECK(out[0].header.gso_type == ((flags & flag::kCwr) != 0
                                       ? VirtioHeader::kGsoTcpv4 | VirtioHeader::kGsoEcn
                                       : VirtioHeader::kGsoTcpv4));
  Packet done = batch.output(out[0]);
  REQUIRE(tep::offload::complete_checksum(out[0].header, done));
  CHECK(done == original);
  // And once more: the merged packet segments like the original.
  const Packet merged_packet = batch.output(out[0]);
  const auto again = TcpSegmenter::start(out[0].header, merged_packet).value();
  CHECK(segment_all(again) == batch.packets);
}
