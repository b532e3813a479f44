// libFuzzer target: parse_ipv6 and its extension-header walk on arbitrary bytes, plus the fixed
// header re-serialised and an ICMPv6 Packet Too Big built about the input.
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
#include "core/icmp.hpp"
#include "core/ipv6.hpp"

#include "fuzz_check.hpp"

namespace {

using fuzz::same;
using fuzz::verifies_as;
using fuzz::within;

bool is_walked_extension(std::uint8_t nh) {
  namespace ipp = core::ip_protocol;
  return nh == ipp::kHopByHop || nh == ipp::kRouting || nh == ipp::kFragment ||
         nh == ipp::kDestinationOptions || nh == ipp::kAh;
}

void check_view(const core::Ipv6Packet& p, core::Bytes in) {
  FUZZ_CHECK(p.packet.data() == in.data());
  FUZZ_CHECK(p.packet.size() == core::kIpv6HeaderLength + p.payload_length);
  FUZZ_CHECK(p.packet.size() <= in.size());
  FUZZ_CHECK(p.payload.size() == p.payload_length);
  FUZZ_CHECK(within(p.packet, in) && within(p.payload, p.packet));
  FUZZ_CHECK(p.upper_offset >= core::kIpv6HeaderLength && p.upper_offset <= p.packet.size());
  FUZZ_CHECK(within(p.upper_layer(), p.packet));
  FUZZ_CHECK(p.extension_count <= core::kIpv6MaxExtensionHeaders);
  FUZZ_CHECK((p.extension_count == 0) == (p.upper_offset == core::kIpv6HeaderLength));
  FUZZ_CHECK(!is_walked_extension(p.upper_protocol));
  if (p.extension_count == 0) FUZZ_CHECK(p.upper_protocol == p.header.next_header);
  if (p.fragment) FUZZ_CHECK(p.fragment->offset == 0);
  FUZZ_CHECK(p.header.flow_label < (1u << 20));
}

// The fixed header has no checksum: writing the parsed fields back gives the same 40 bytes.
void check_reserialise(const core::Ipv6Packet& p) {
  std::vector<std::byte> out(core::kIpv6HeaderLength);
  core::ByteWriter w{out};
  FUZZ_CHECK(core::write_ipv6_header(w, p.header, p.payload_length).has_value());
  FUZZ_CHECK(same(out, p.packet.first(core::kIpv6HeaderLength)));
}

// A Packet Too Big about the input: built whenever the fixed header is sound, never over 1280
// bytes, and quoting a prefix of the offending packet.
void check_packet_too_big(core::Bytes in) {
  const auto from = *core::Ipv6Address::parse("2001:db8:ffff::1");
  const auto pkt = core::build_icmpv6_packet_too_big(from, 1280, in);
  if (!pkt) {
    const auto e = pkt.error();
    FUZZ_CHECK(e == core::Errc::Truncated || e == core::Errc::BadVersion ||
               e == core::Errc::BadLength);
    return;
  }
  FUZZ_CHECK(pkt->size() <= core::kIcmpv6MaxErrorPacket);
  const auto ip = core::parse_ipv6(*pkt);
  FUZZ_CHECK(ip.has_value());
  FUZZ_CHECK(ip->packet.size() == pkt->size() && ip->upper_protocol == core::ip_protocol::kIcmpv6);
  FUZZ_CHECK(ip->header.src == from);
  const auto m = core::parse_icmpv6(ip->upper_layer());
  FUZZ_CHECK(m.has_value());
  FUZZ_CHECK(m->type == core::icmpv6_type::kPacketTooBig && m->mtu() == 1280);
  FUZZ_CHECK(core::icmpv6_checksum_ok(*m, ip->header.src, ip->header.dst));
  FUZZ_CHECK(same(m->body, in.first(m->body.size())));
  // The Packet Too Big is itself an ICMPv6 error: no error may be sent about it.
  FUZZ_CHECK(!core::icmpv6_error_allowed(*pkt, core::icmpv6_type::kDestinationUnreachable, 0));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const core::Bytes in = std::as_bytes(std::span{data, size});
  check_packet_too_big(in);
  (void)core::icmpv6_error_allowed(in, static_cast<std::uint8_t>(size & 0xff), 0);
  const auto p = core::parse_ipv6(in);
  if (!p) {
    FUZZ_CHECK(p.error().category() == core::core_category());
    return 0;
  }
  check_view(*p, in);
  check_reserialise(*p);
  return 0;
}
