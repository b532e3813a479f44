// libFuzzer target: tep::decapsulate on arbitrary bytes, plus what the TEP does with the inner
// packet (re-encapsulation, the MTU verdict, ICMP fragmentation needed, fragmentation).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "core/icmp.hpp"
#include "core/ipv4.hpp"
#include "tep/fourover6.hpp"

#include "fuzz_check.hpp"

namespace {

using fuzz::same;
using fuzz::within;

const tep::Endpoints kEnds{
    .src = core::Ipv6Address{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    .dst = core::Ipv6Address{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}}};
const auto kRouter = core::Ipv4Address{0xcb007101};  // 203.0.113.1

// Only the inner ECN bits and the inner header checksum may change, and only on success.
void check_changes(core::Bytes before, core::Bytes after, const tep::Decapsulated& d) {
  // decapsulate returns the inner packet right after the fixed header (checked by the caller).
  const std::size_t inner_start = tep::kEncapOverhead;
  std::size_t changed = 0;
  for (std::size_t i = 0; i < after.size(); ++i) {
    if (before[i] == after[i]) continue;
    ++changed;
    const bool allowed = i == inner_start + 1 || i == inner_start + 10 || i == inner_start + 11;
    FUZZ_CHECK(allowed && d.ecn_rewritten);
    if (i == inner_start + 1)
      FUZZ_CHECK(((before[i] ^ after[i]) & std::byte{0xfc}) == std::byte{0});
  }
  if (d.ecn_rewritten) FUZZ_CHECK(changed >= 1);
}

// Encapsulating the inner packet again and decapsulating gives it back unchanged.
void check_round_trip(core::Bytes inner) {
  std::vector<std::byte> frame(tep::kEncapOverhead);
  frame.insert(frame.end(), inner.begin(), inner.end());
  const auto outer = tep::encapsulate(frame, tep::kEncapOverhead, kEnds);
  FUZZ_CHECK(outer.has_value());
  FUZZ_CHECK(outer->size() == tep::kEncapOverhead + inner.size());
  const auto again = tep::decapsulate(*outer);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(!again->ecn_rewritten && same(again->inner, inner));
}

void check_mtu(core::Bytes inner, std::size_t tunnel_mtu) {
  const auto verdict = tep::check_mtu(inner, tunnel_mtu);
  FUZZ_CHECK(verdict.has_value());
  const std::size_t limit = tep::inner_mtu(tunnel_mtu).value();
  if (*verdict == tep::MtuVerdict::TooBigDontFragment) {
    std::vector<std::byte> out(20 + 8 + 60 + 8);
    const auto msg = tep::write_fragmentation_needed(out, kRouter, inner, tunnel_mtu);
    FUZZ_CHECK(msg.has_value() && within(*msg, out));
    const auto ip = core::parse_ipv4(*msg);
    FUZZ_CHECK(ip.has_value() && ip->checksum_ok());
    const auto m = core::parse_icmpv4(ip->payload);
    FUZZ_CHECK(m.has_value() && core::icmpv4_checksum_ok(*m) && m->next_hop_mtu() == limit);
    return;
  }
  const auto count = tep::fragment_count(inner, tunnel_mtu);
  if (!count) {
    // Only malformed options or an offset past 13 bits stop a DF-clear packet.
    FUZZ_CHECK(count.error() == make_error_code(tep::Errc::InnerBadHeader));
    return;
  }
  FUZZ_CHECK((*count == 1) == (*verdict == tep::MtuVerdict::Fits));
  const auto original = core::parse_ipv4(inner).value();
  std::vector<std::byte> data;
  std::vector<std::byte> buf(limit);
  for (std::size_t i = 0; i < *count; ++i) {
    const auto frag = tep::write_fragment(inner, tunnel_mtu, i, buf);
    if (!frag) {
      FUZZ_CHECK(frag.error() == make_error_code(tep::Errc::InnerBadHeader));
      return;
    }
    FUZZ_CHECK(within(*frag, buf) && frag->size() <= limit);
    const auto p = core::parse_ipv4(*frag);
    FUZZ_CHECK(p.has_value() && p->checksum_ok());
    FUZZ_CHECK(p->header.id == original.header.id);
    FUZZ_CHECK(p->header.fragment_offset * std::size_t{8} ==
               original.header.fragment_offset * std::size_t{8} + data.size());
    data.insert(data.end(), p->payload.begin(), p->payload.end());
  }
  FUZZ_CHECK(same(data, original.payload));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const core::Bytes in = std::as_bytes(std::span{data, size});
  std::vector<std::byte> copy{in.begin(), in.end()};
  const auto d = tep::decapsulate(copy);
  if (!d) {
    FUZZ_CHECK(static_cast<std::size_t>(d.error()) < tep::kDropReasonCount);
    FUZZ_CHECK(same(copy, in));
    return 0;
  }
  const core::Bytes whole{copy};
  FUZZ_CHECK(within(d->inner, whole));
  FUZZ_CHECK(d->inner.data() == whole.data() + tep::kEncapOverhead);
  const auto p = core::parse_ipv4(d->inner);
  FUZZ_CHECK(p.has_value() && p->checksum_ok() && p->total_length == d->inner.size());
  check_changes(in, whole, *d);
  check_round_trip(d->inner);
  check_mtu(d->inner, 1280 + size % 512);
  return 0;
}
