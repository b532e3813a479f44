// libFuzzer target: parse_ipv4 on arbitrary bytes, plus what is built from a parsed packet (the
// header re-serialised, an ICMP "fragmentation needed" about it, MSS clamping of its TCP).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "core/checksum.hpp"
#include "core/icmp.hpp"
#include "core/ipv4.hpp"
#include "core/tcp.hpp"

#include "fuzz_check.hpp"

namespace {

using fuzz::same;
using fuzz::verifies_as;
using fuzz::within;

void check_view(const core::Ipv4Packet& p, core::Bytes in) {
  FUZZ_CHECK(p.packet.data() == in.data());
  FUZZ_CHECK(p.packet.size() == p.total_length && p.total_length <= in.size());
  FUZZ_CHECK(p.header_length >= 20 && p.header_length <= 60 && p.header_length % 4 == 0);
  FUZZ_CHECK(p.header_bytes.size() == p.header_length);
  FUZZ_CHECK(p.header.options.size() == p.header_length - 20);
  FUZZ_CHECK(p.header_bytes.size() + p.payload.size() == p.packet.size());
  FUZZ_CHECK(within(p.packet, in) && within(p.header_bytes, p.packet) &&
             within(p.payload, p.packet) && within(p.header.options, p.header_bytes));
  FUZZ_CHECK(p.header.dscp < 64 && p.header.ecn < 4 && p.header.fragment_offset < 8192);
}

// Writing the parsed fields back gives the received header, checksum aside; the written
// checksum matches the received one exactly when the received one verifies.
void check_reserialise(const core::Ipv4Packet& p) {
  std::vector<std::byte> out(p.header_length);
  core::ByteWriter w{out};
  FUZZ_CHECK(core::write_ipv4_header(w, p.header, p.payload.size()).has_value());
  FUZZ_CHECK(w.size() == p.header_length);
  const core::Bytes o{out};
  FUZZ_CHECK(same(o.first(10), p.header_bytes.first(10)));
  FUZZ_CHECK(same(o.subspan(12), p.header_bytes.subspan(12)));
  const std::uint16_t written = core::load_be16(o.subspan(10, 2));
  FUZZ_CHECK(written == core::ipv4_header_checksum(p.header_bytes));
  FUZZ_CHECK(p.checksum_ok() == verifies_as(written, p.checksum));
  FUZZ_CHECK(core::internet_checksum(out) == 0);
}

// An ICMP error about any parseable packet parses back and quotes header + 8 bytes.
void check_icmp_error(const core::Ipv4Packet& p) {
  const auto from = core::Ipv4Address{0xcb007101};  // 203.0.113.1
  const auto pkt = core::build_icmpv4_fragmentation_needed(from, 1280, p.packet);
  FUZZ_CHECK(pkt.has_value());
  const auto ip = core::parse_ipv4(*pkt);
  FUZZ_CHECK(ip.has_value());
  FUZZ_CHECK(ip->checksum_ok() && ip->header.dst == p.header.src && ip->header.src == from);
  const auto m = core::parse_icmpv4(ip->payload);
  FUZZ_CHECK(m.has_value());
  FUZZ_CHECK(core::icmpv4_checksum_ok(*m) && m->next_hop_mtu() == 1280);
  const std::size_t quoted = std::min(p.packet.size(), p.header_length + 8);
  FUZZ_CHECK(same(m->body, p.packet.first(quoted)));
  if (core::icmpv4_error_allowed(p.packet)) FUZZ_CHECK(p.is_first_fragment_or_whole());
}

// MSS clamping changes at most the MSS value and the TCP checksum, and keeps the checksum as
// valid (or as invalid) as it was.
void check_mss_clamp(const core::Ipv4Packet& p, std::uint16_t limit) {
  std::vector<std::byte> copy{p.packet.begin(), p.packet.end()};
  const auto before = core::parse_tcp(p.payload);
  const auto r = core::clamp_ipv4_tcp_mss(copy, limit);
  if (!r || !*r) {
    FUZZ_CHECK(same(copy, p.packet));
    return;
  }
  FUZZ_CHECK(before.has_value());
  FUZZ_CHECK(same(core::Bytes{copy}.first(p.header_length), p.header_bytes));
  const auto after = core::parse_tcp(core::Bytes{copy}.subspan(p.header_length));
  FUZZ_CHECK(after.has_value());
  FUZZ_CHECK(core::tcp_mss(*after).value() == limit);
  FUZZ_CHECK(core::tcp_checksum_ok(*before, p.header.src, p.header.dst) ==
             core::tcp_checksum_ok(*after, p.header.src, p.header.dst));
  std::size_t changed = 0;
  for (std::size_t i = 0; i < copy.size(); ++i) changed += copy[i] != p.packet[i] ? 1 : 0;
  FUZZ_CHECK(changed <= 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const core::Bytes in = std::as_bytes(std::span{data, size});
  const auto p = core::parse_ipv4(in);
  if (!p) {
    FUZZ_CHECK(p.error().category() == core::core_category());
    return 0;
  }
  check_view(*p, in);
  check_reserialise(*p);
  check_icmp_error(*p);
  check_mss_clamp(*p, static_cast<std::uint16_t>(536 + (size % 1024)));
  return 0;
}
