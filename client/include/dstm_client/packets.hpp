// The client's data-path decisions, without I/O: what to do with an IPv4 packet read from the TUN
// device (encapsulate, fragment, answer "fragmentation needed", drop) and with an inner packet
// that came out of the tunnel (deliver, consume as a keepalive reply, drop), and the keepalive
// probe itself. Packets are untrusted: every function is noexcept and bounds-checked.
#pragma once

#include <cstdint>
#include <optional>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/error.hpp"

namespace dstm_client {

// The verdict on a packet from the TUN device (the host's IPv4 traffic into the tunnel).
enum class Outbound {
  Encapsulate,          // fits the tunnel: wrap it and send it to the TEP
  Fragment,             // too big, DF clear: fragment, then wrap each fragment
  FragmentationNeeded,  // too big, DF set: answer with ICMP "fragmentation needed"
  NotIpv4,              // not an IPv4 packet (e.g. IPv6 the kernel sends on any link): drop
  Malformed,            // an IPv4 header that does not parse: drop
  SourceNotLeased,      // from an address other than the lease: drop (the TEP would too)
};

// Classifies `packet` (as read from the TUN device) for a tunnel over an IPv6 MTU of
// tunnel_mtu (>= 1280) and the leased IPv4 `lease`.
Outbound classify_outbound(core::Bytes packet, core::Ipv4Address lease,
                           std::size_t tunnel_mtu) noexcept;

// The verdict on a decapsulated inner IPv4 packet. Inbound packets are accepted from any TEP:
// return traffic may come back through a TEP other than the assigned one (draft-jaehwoon-dstm-
// multitep-02 section 3).
struct Inbound {
  enum class Kind {
    Deliver,         // write it into the TUN device
    NotOurs,         // the inner destination is not the lease: drop
    KeepaliveReply,  // our keepalive's echo reply: consumed, `sequence` answers a probe
  };
  Kind kind = Kind::Deliver;
  std::uint16_t sequence = 0;
  bool operator==(const Inbound&) const = default;
};

// `inner` is a packet tep::decapsulate accepted (a valid IPv4 header). A keepalive reply is an
// unfragmented ICMP echo reply from `keepalive` to the lease with identifier `echo_id` and a
// valid checksum; anything else from the keepalive address (a ping the host sent itself, with
// another identifier) is delivered.
Inbound classify_inbound(core::Bytes inner, core::Ipv4Address lease,
                         std::optional<core::Ipv4Address> keepalive,
                         std::uint16_t echo_id) noexcept;

// The bytes of a keepalive probe: an IPv4 ICMP echo request from `lease` to `keepalive`, TTL 64,
// DF clear, IPv4 identification `ip_id`, echo identifier `echo_id`, sequence `sequence` and 8
// bytes of data. kProbeSize bytes.
inline constexpr std::size_t kProbeSize = 20 + 8 + 8;
struct Probe {
  core::Ipv4Address lease;
  core::Ipv4Address keepalive;
  std::uint16_t echo_id = 0;
  std::uint16_t sequence = 0;
  std::uint16_t ip_id = 0;
};
// Writes the probe at the start of `out` and returns the written prefix; core::Errc::NoSpace
// when out holds fewer than kProbeSize bytes.
core::Result<core::MutableBytes> write_probe(core::MutableBytes out, const Probe& probe) noexcept;

}  // namespace dstm_client
