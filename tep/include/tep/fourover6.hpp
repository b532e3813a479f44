// The 4over6 codec (RFC 2473 IPv4-in-IPv6, RFC 6040 ECN, RFC 791/1191 MTU handling): pure
// functions over caller buffers, no I/O, no allocation, never throws on packet input.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/ipv6.hpp"

namespace tep {

// Why the codec refused to build or check a packet (encapsulate, MTU, ICMP and fragmentation).
// Values are stable: they appear in counters and logs.
enum class Errc {
  InnerTruncated = 1,   // the inner IPv4 packet is shorter than 20 bytes
  InnerBadVersion,      // the inner version nibble is not 4
  InnerBadHeader,       // inner IHL < 5, malformed options, or a fragment offset past 8191
  InnerBadTotalLength,  // inner total length < IHL * 4 or larger than the bytes given
  NoHeadroom,           // fewer than 40 bytes in front of the inner packet
  BadHopLimit,          // an encapsulation hop limit of 0
  BadMtu,               // a tunnel MTU below the IPv6 minimum of 1280
  DontFragment,         // fragmentation asked for a packet with DF set
  BadFragmentIndex,     // write_fragment index >= fragment_count
  NoSpace,              // the output buffer is too small
  // Offloads (offload.hpp).
  BadOffload,           // a virtio header that does not fit: GSO type, gso_size 0, csum field
  OffloadNotTcp,        // a GSO packet that is not one whole TCPv4 segment (protocol, fragment)
  OffloadBadTcpHeader,  // a GSO packet's TCP header: truncated, data offset < 5 or past the end
  OffloadNoPayload,     // a GSO packet without TCP payload
};

const boost::system::error_category& tep_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), tep_category()};
}

template <typename T>
using Result = boost::system::result<T>;

// Why decapsulate dropped a packet: one counter each. Values are stable and dense from 0, so a
// counter array can be indexed by them; drop_reason_name gives the counter's name.
enum class DropReason : std::uint8_t {
  Truncated,            // fewer than 40 bytes
  NotIpv6,              // version nibble != 6
  BadPayloadLength,     // 40 + payload length > bytes received
  ExtensionHeaders,     // next header is an IPv6 extension header: not walked, not supported
  NotIpip,              // next header is neither 4 nor an extension header
  InnerTruncated,       // inner packet shorter than 20 bytes
  InnerBadVersion,      // inner version != 4
  InnerBadHeader,       // inner IHL < 5
  InnerBadTotalLength,  // inner total length < IHL * 4 or != the outer payload length
  InnerBadChecksum,     // inner header checksum does not verify
  EcnNotEctCe,          // outer CE over a Not-ECT inner packet (RFC 6040 §4.2: drop)
};
inline constexpr std::size_t kDropReasonCount = 11;

// "truncated", "not_ipv6", ... "ecn_not_ect_ce": the counter name of a reason.
std::string_view drop_reason_name(DropReason r) noexcept;

// DropReason as an error code too (category "tep.drop"), e.g. to log it next to other errors.
const boost::system::error_category& drop_category() noexcept;
inline boost::system::error_code make_error_code(DropReason r) noexcept {
  return {static_cast<int>(r), drop_category()};
}
// Lets boost::system::result<T, DropReason>::value() throw system_error (tests, tools).
[[noreturn]] void throw_exception_from_error(DropReason r, const boost::source_location& loc);

// Size of the outer IPv6 header the tunnel adds (RFC 2473 §3).
inline constexpr std::size_t kEncapOverhead = core::kIpv6HeaderLength;

struct Endpoints {
  core::Ipv6Address src{};  // this tunnel end point
  core::Ipv6Address dst{};  // the peer (client or TEP)
};

enum class FlowLabel {
  Zero,       // unlabelled (RFC 6437 §2)
  InnerHash,  // a hash of the inner 5-tuple, so that ECMP spreads tunnelled flows (RFC 6438)
};

struct EncapOptions {
  std::uint8_t hop_limit = 64;  // 1..255; 0 is refused (BadHopLimit)
  FlowLabel flow_label = FlowLabel::Zero;
};

// Wraps the IPv4 packet that starts at frame[headroom] in an IPv6 header written into the
// `headroom` bytes in front of it (only the last 40 of them are touched):
//
//   frame: [ ...unused... | IPv6 header (40) | inner IPv4 packet | padding... ]
//                         ^ result.data()    ^ frame[headroom]
//
// Outer fields: version 6, traffic class = the inner TOS byte (DSCP copied, ECN copied: RFC 6040
// §4.1 normal mode), flow label per options, payload length = inner total length, next header 4,
// hop limit per options. Bytes after the inner total length are not encapsulated. The inner
// packet is validated first (version, IHL, total length against the bytes present; its checksum
// is not checked) and is never modified. Returns the outer packet (40 + inner total length
// bytes, a view into frame). Errors: NoHeadroom, BadHopLimit, Inner*.
Result<core::MutableBytes> encapsulate(core::MutableBytes frame, std::size_t headroom,
                                       const Endpoints& ends,
                                       const EncapOptions& options = {}) noexcept;

// The flow label FlowLabel::InnerHash gives `inner` (assumed to parse): a 20-bit non-zero hash of
// source, destination, protocol and, for an unfragmented TCP/UDP/SCTP/UDP-Lite/DCCP packet, the
// ports. All fragments of a packet get the same label (ports are not used for fragments).
std::uint32_t inner_flow_label(core::Bytes inner) noexcept;

// A decapsulated packet: inner spans exactly the inner total length inside the buffer given to
// decapsulate.
struct Decapsulated {
  core::Ipv6Header outer;      // outer fixed header fields (for anti-spoofing checks)
  core::MutableBytes inner{};  // the inner IPv4 packet
  bool ecn_rewritten = false;  // inner ECN was changed from the outer (checksum updated)
  bool ecn_anomaly = false;    // an ECN combination RFC 6040 Fig. 4 marks "(!!!)": worth counting
};

// Checks, in order: truncated, not IPv6, payload length past the data, next header (extension
// headers are not walked), the inner IPv4 header (truncated, version, IHL, total length ==
// payload length), the inner checksum, then applies RFC 6040 §4.2 to the inner ECN field:
//
//   inner \ outer | Not-ECT | ECT(0)  | ECT(1)  | CE
//   Not-ECT       | Not-ECT | Not-ECT!| Not-ECT!| drop!
//   ECT(0)        | ECT(0)  | ECT(0)  | ECT(1)  | CE
//   ECT(1)        | ECT(1)  | ECT(1)  | ECT(1)  | CE
//   CE            | CE      | CE      | CE!     | CE        (! = ecn_anomaly)
//
// A changed ECN field is written into the packet with the header checksum updated incrementally
// (RFC 1624); nothing else in `packet` is modified, and nothing on a drop. Bytes after 40 +
// payload length (link padding) are ignored.
boost::system::result<Decapsulated, DropReason> decapsulate(core::MutableBytes packet) noexcept;

enum class MtuVerdict {
  Fits,                // inner total length <= tunnel MTU - 40
  NeedsFragmentation,  // too big, DF clear: fragment_count/write_fragment
  TooBigDontFragment,  // too big, DF set: answer with write_fragmentation_needed
};

// The largest inner packet a tunnel over an IPv6 link of `tunnel_mtu` carries unfragmented:
// min(tunnel_mtu - 40, 65535). tunnel_mtu must be >= 1280.
Result<std::size_t> inner_mtu(std::size_t tunnel_mtu) noexcept;

// Classifies `inner` (validated as for encapsulate) against the tunnel MTU. Errors: BadMtu,
// Inner*.
Result<MtuVerdict> check_mtu(core::Bytes inner, std::size_t tunnel_mtu) noexcept;

// Writes into `out` a whole IPv4 packet from `router` to the inner packet's source: an ICMP
// destination unreachable, code 4 "fragmentation needed", next-hop MTU = inner_mtu(tunnel_mtu)
// (RFC 1191 §4), quoting the inner header plus 8 bytes of payload (RFC 792). TTL 64, DF clear,
// id 0. Whether an error may be sent at all (core::icmpv4_error_allowed) and rate limits are the
// caller's. Returns the written prefix of out. Errors: BadMtu, Inner*, NoSpace.
Result<core::MutableBytes> write_fragmentation_needed(core::MutableBytes out,
                                                      core::Ipv4Address router, core::Bytes inner,
                                                      std::size_t tunnel_mtu) noexcept;

// Fragmentation of a DF-clear inner packet so that each fragment fits inner_mtu(tunnel_mtu)
// (RFC 791 §3.2, "An Example Fragmentation Procedure"). The first fragment keeps all options,
// the others only those with the copied flag. Fragment data is a multiple of 8 bytes except in
// the last; offsets continue the original's offset and the last keeps the original MF, so an
// existing fragment is fragmented further correctly. Identification, TOS, TTL and protocol are
// kept; each header's checksum is computed.
//
// The number of fragments: 1 if the packet fits. Errors: BadMtu, Inner*, DontFragment (DF set
// and too big).
Result<std::size_t> fragment_count(core::Bytes inner, std::size_t tunnel_mtu) noexcept;
// Writes fragment `index` (0-based, < fragment_count) into `out` and returns the written prefix.
// A packet that fits is copied as is. Errors: those of fragment_count, BadFragmentIndex,
// NoSpace (an out of inner_mtu(tunnel_mtu) bytes is always enough).
Result<core::MutableBytes> write_fragment(core::Bytes inner, std::size_t tunnel_mtu,
                                          std::size_t index, core::MutableBytes out) noexcept;

}  // namespace tep

namespace boost::system {
template <>
struct is_error_code_enum<::tep::Errc> : std::true_type {};
template <>
struct is_error_code_enum<::tep::DropReason> : std::true_type {};
}  // namespace boost::system
