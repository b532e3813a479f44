// The client's data-path decisions over packet views (no I/O).
#include "dstm_client/packets.hpp"

#include <array>

#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"
#include "tep/fourover6.hpp"

namespace dstm_client {

Outbound classify_outbound(core::Bytes packet, core::Ipv4Address lease,
                           std::size_t tunnel_mtu) noexcept {
  if (packet.empty() || (std::to_integer<unsigned>(packet[0]) >> 4) != 4) return Outbound::NotIpv4;
  const auto ip = core::parse_ipv4(packet);
  if (!ip) return Outbound::Malformed;
  if (ip->header.src != lease) return Outbound::SourceNotLeased;
  const auto verdict = tep::check_mtu(packet, tunnel_mtu);
  if (!verdict) return Outbound::Malformed;
  switch (*verdict) {
    case tep::MtuVerdict::Fits:
      return Outbound::Encapsulate;
    case tep::MtuVerdict::NeedsFragmentation:
      return Outbound::Fragment;
    case tep::MtuVerdict::TooBigDontFragment:
      return Outbound::FragmentationNeeded;
  }
  return Outbound::Malformed;
}

Inbound classify_inbound(core::Bytes inner, core::Ipv4Address lease,
                         std::optional<core::Ipv4Address> keepalive,
                         std::uint16_t echo_id) noexcept {
  const auto ip = core::parse_ipv4(inner);
  if (!ip || ip->header.dst != lease) return Inbound{.kind = Inbound::Kind::NotOurs};
  const auto& h = ip->header;
  if (!keepalive || h.src != *keepalive || h.protocol != core::ip_protocol::kIcmp ||
      ip->is_fragment())
    return {};
  const auto icmp = core::parse_icmpv4(ip->payload);
  if (!icmp || icmp->type != core::icmpv4_type::kEchoReply || icmp->code != 0 ||
      icmp->echo_id() != echo_id || !core::icmpv4_checksum_ok(*icmp))
    return {};
  return Inbound{.kind = Inbound::Kind::KeepaliveReply, .sequence = icmp->echo_sequence()};
}

core::Result<core::MutableBytes> write_probe(core::MutableBytes out, const Probe& probe) noexcept {
  if (out.size() < kProbeSize) return core::Errc::NoSpace;
  // Eight bytes of data make the probe recognisable in a capture: "dstm-ka" and a NUL.
  static constexpr std::array<std::byte, 8> kData{std::byte{'d'}, std::byte{'s'}, std::byte{'t'},
                                                  std::byte{'m'}, std::byte{'-'}, std::byte{'k'},
                                                  std::byte{'a'}, std::byte{0}};
  core::ByteWriter w{out.first(kProbeSize)};
  const core::Ipv4Header h{.id = probe.ip_id,
                           .ttl = 64,
                           .protocol = core::ip_protocol::kIcmp,
                           .src = probe.lease,
                           .dst = probe.keepalive};
  if (auto ok = core::write_ipv4_header(w, h, core::kIcmpHeaderLength + kData.size()); !ok)
    return ok.error();
  const core::IcmpEcho echo{.id = probe.echo_id, .sequence = probe.sequence, .data = kData};
  if (auto ok = core::write_icmpv4_echo(w, core::EchoKind::request, echo); !ok) return ok.error();
  if (!w.ok()) return core::Errc::NoSpace;
  return w.written();
}

}  // namespace dstm_client
