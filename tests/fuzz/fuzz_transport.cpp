// libFuzzer target: the UDP, TCP, ICMPv4 and ICMPv6 parsers on arbitrary bytes. The first input
// byte picks the parser (bits 0-1: UDP, TCP, ICMPv4, ICMPv6) and the pseudo-header family for
// UDP/TCP (bit 2: IPv6); the rest is the IP payload. Parsed headers are written back and compared.
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
#include "core/tcp.hpp"
#include "core/udp.hpp"

#include "fuzz_check.hpp"

namespace {

using fuzz::same;
using fuzz::verifies_as;
using fuzz::within;

// The seed corpus is built with these addresses, so its checksums verify.
const core::Ipv4Address kSrc4{0xc0000201};  // 192.0.2.1
const core::Ipv4Address kDst4{0xc6336407};  // 198.51.100.7
const core::Ipv6Address kSrc6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
const core::Ipv6Address kDst6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};

// Equal apart from the 2-byte checksum field at `at`.
bool same_except(core::Bytes a, core::Bytes b, std::size_t at) {
  return a.size() == b.size() && same(a.first(at), b.first(at)) &&
         same(a.subspan(at + 2), b.subspan(at + 2));
}

template <typename Address>
void udp(core::Bytes in, const Address& src, const Address& dst, bool v6) {
  const auto d = core::parse_udp(in);
  if (!d) return;
  FUZZ_CHECK(d->datagram.data() == in.data() && d->datagram.size() == d->length);
  FUZZ_CHECK(d->length >= 8 && d->length <= in.size());
  FUZZ_CHECK(within(d->payload, d->datagram) && d->payload.size() == d->length - 8u);

  const auto rebuilt = core::build_udp(d->header, d->payload, src, dst);
  FUZZ_CHECK(rebuilt.has_value());
  FUZZ_CHECK(same_except(*rebuilt, d->datagram, 6));
  const auto r = core::parse_udp(*rebuilt);
  FUZZ_CHECK(r.has_value() && r->checksum != 0);
  FUZZ_CHECK(core::udp_checksum_ok(*r, src, dst));
  const bool ok = core::udp_checksum_ok(*d, src, dst);
  if (d->checksum == 0)
    FUZZ_CHECK(ok == !v6);
  else
    FUZZ_CHECK(ok == (r->checksum == d->checksum));
}

template <typename Address>
void tcp(core::Bytes in, const Address& src, const Address& dst, std::uint16_t limit) {
  const auto s = core::parse_tcp(in);
  if (!s) return;
  FUZZ_CHECK(s->segment.data() == in.data() && s->segment.size() == in.size());
  FUZZ_CHECK(s->header_length >= 20 && s->header_length <= 60 && s->header_length % 4 == 0);
  FUZZ_CHECK(s->header.options.size() == s->header_length - 20 && s->header.reserved < 16);
  FUZZ_CHECK(within(s->header.options, s->header_bytes) && within(s->payload, s->segment));
  FUZZ_CHECK(s->header_bytes.size() + s->payload.size() == s->segment.size());

  const auto rebuilt = core::build_tcp(s->header, s->payload, src, dst);
  FUZZ_CHECK(rebuilt.has_value());
  FUZZ_CHECK(same_except(*rebuilt, s->segment, 16));
  const auto r = core::parse_tcp(*rebuilt);
  FUZZ_CHECK(r.has_value() && core::tcp_checksum_ok(*r, src, dst));
  FUZZ_CHECK(core::tcp_checksum_ok(*s, src, dst) == verifies_as(r->checksum, s->checksum));

  // Options: any MSS found lies inside the options.
  const auto mss = core::find_tcp_option(s->header.options, core::tcp_option::kMss);
  if (mss && *mss) {
    FUZZ_CHECK(within((*mss)->data, s->header.options));
    FUZZ_CHECK((*mss)->offset + 2 + (*mss)->data.size() <= s->header.options.size());
  }

  // Clamping: only the MSS value and the checksum change, and validity is kept.
  std::vector<std::byte> copy{in.begin(), in.end()};
  const auto clamped = core::clamp_tcp_mss(copy, limit);
  if (!clamped || !*clamped) {
    FUZZ_CHECK(same(copy, in));
    return;
  }
  FUZZ_CHECK(s->has(core::tcp_flag::kSyn));
  const auto after = core::parse_tcp(copy);
  FUZZ_CHECK(after.has_value());
  FUZZ_CHECK(core::tcp_mss(*after).value() == limit);
  FUZZ_CHECK(core::tcp_mss(*s).value() > limit);
  FUZZ_CHECK(core::tcp_checksum_ok(*after, src, dst) == core::tcp_checksum_ok(*s, src, dst));
  std::size_t changed = 0;
  for (std::size_t i = 0; i < copy.size(); ++i) changed += copy[i] != in[i] ? 1 : 0;
  FUZZ_CHECK(changed <= 4);
}

template <typename Message>
void check_icmp_view(const Message& m, core::Bytes in) {
  FUZZ_CHECK(m.message.data() == in.data() && m.message.size() == in.size());
  FUZZ_CHECK(m.body.size() + core::kIcmpHeaderLength == in.size());
  FUZZ_CHECK(within(m.body, m.message));
  FUZZ_CHECK(m.echo_id() == (m.rest_of_header >> 16) &&
             m.echo_sequence() == (m.rest_of_header & 0xffff));
}

void icmpv4(core::Bytes in) {
  const auto m = core::parse_icmpv4(in);
  if (!m) return;
  check_icmp_view(*m, in);
  const std::uint16_t computed = core::icmpv4_checksum(in);
  FUZZ_CHECK(core::icmpv4_checksum_ok(*m) == verifies_as(computed, m->checksum));
  if (m->type == core::icmpv4_type::kEchoRequest || m->type == core::icmpv4_type::kEchoReply) {
    if (m->code != 0) return;
    std::vector<std::byte> out(in.size());
    core::ByteWriter w{out};
    const auto kind = m->type == core::icmpv4_type::kEchoRequest ? core::EchoKind::request
                                                                 : core::EchoKind::reply;
    FUZZ_CHECK(core::write_icmpv4_echo(
                   w, kind, {.id = m->echo_id(), .sequence = m->echo_sequence(), .data = m->body})
                   .has_value());
    FUZZ_CHECK(same_except(out, in, 2));
    FUZZ_CHECK(core::load_be16(core::Bytes{out}.subspan(2, 2)) == computed);
  }
}

void icmpv6(core::Bytes in) {
  const auto m = core::parse_icmpv6(in);
  if (!m) return;
  check_icmp_view(*m, in);
  const std::uint16_t computed = core::icmpv6_checksum(in, kSrc6, kDst6);
  FUZZ_CHECK(core::icmpv6_checksum_ok(*m, kSrc6, kDst6) == verifies_as(computed, m->checksum));
  if (m->type == core::icmpv6_type::kEchoRequest || m->type == core::icmpv6_type::kEchoReply) {
    if (m->code != 0) return;
    std::vector<std::byte> out(in.size());
    core::ByteWriter w{out};
    const auto kind = m->type == core::icmpv6_type::kEchoRequest ? core::EchoKind::request
                                                                 : core::EchoKind::reply;
    FUZZ_CHECK(core::write_icmpv6_echo(
                   w, kind, {.id = m->echo_id(), .sequence = m->echo_sequence(), .data = m->body},
                   kSrc6, kDst6)
                   .has_value());
    FUZZ_CHECK(same_except(out, in, 2));
    FUZZ_CHECK(core::load_be16(core::Bytes{out}.subspan(2, 2)) == computed);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const core::Bytes all = std::as_bytes(std::span{data, size});
  const auto selector = std::to_integer<unsigned>(all[0]);
  const core::Bytes in = all.subspan(1);
  const bool v6 = (selector & 4) != 0;
  const auto limit = static_cast<std::uint16_t>(536 + (selector >> 3) * 64);
  switch (selector & 3) {
    case 0:
      if (v6)
        udp(in, kSrc6, kDst6, true);
      else
        udp(in, kSrc4, kDst4, false);
      break;
    case 1:
      if (v6)
        tcp(in, kSrc6, kDst6, limit);
      else
        tcp(in, kSrc4, kDst4, limit);
      break;
    case 2:
      icmpv4(in);
      break;
    default:
      icmpv6(in);
      break;
  }
  return 0;
}
