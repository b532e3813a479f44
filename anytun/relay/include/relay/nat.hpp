// Open tunnel mode (draft-gsenger-anycast-relay-00 section 1.1.1.2): source NAT of the packets a
// client tunnels to hosts that do not speak SATP. The relay rewrites their source to its own
// anycast NAT address and an external port (or ICMP echo id) it picked, and maps the replies
// back to the client's connection (MUX) and inner address. Clients may use overlapping inner
// addresses: a mapping is keyed by MUX.
//
// Handled: TCP, UDP, ICMP echo request/reply (IPv4) and ICMPv6 echo request/reply, each over
// IPv4 or IPv6 with the matching NAT address; inbound ICMP / ICMPv6 errors (destination
// unreachable incl. fragmentation needed / packet too big, time exceeded, parameter problem)
// whose quoted packet matches a mapping are translated too (outer destination and the quoted
// packet's source, checksums fixed), so path MTU discovery works through the NAT. Fragments,
// other protocols and other ICMP types are refused (Unsupported). Checksums are updated
// incrementally (RFC 1624), so a packet's checksum stays as valid or invalid as it was; a UDP
// IPv4 checksum of 0 stays 0.
//
// Directions: outbound takes TCP, UDP and echo requests (ICMP type 8, ICMPv6 type 128); inbound
// takes TCP, UDP, echo replies (0, 129) and the errors above (ICMP 3, 11, 12; ICMPv6 1 to 4).
// A client's own ICMP errors and echo replies (answers to outside hosts that cannot reach it
// without a mapping anyway) are Unsupported. IPv6 packets with any extension header are
// Unsupported: a tunnelled client has no use for them toward the Internet, and not walking them
// keeps the translation to fixed offsets. An ICMP error's quote must hold the quoted IP header
// and the ports (or echo id) of a TCP, UDP or echo request packet, else Unsupported; the quoted
// transport checksum is fixed when the quote holds it. The IPv4 header checksum is not verified
// (the stacks at both ends do that), only kept as valid as it was. A UDP checksum of 0 on IPv6
// (invalid there) stays 0 as well.
//
// Behaviour (RFC 4787, RFC 5382, RFC 5508 terms): endpoint-independent mapping (one external port
// per inner flow, whatever the remote), so that the peer-to-peer applications of an anycast
// relay's clients can learn their public endpoint (STUN) and punch holes; address-dependent
// filtering: an inbound packet (or the quoted destination of an ICMP error) is accepted only from
// a remote address the client has sent to through that mapping, so a mapping is not an open port
// to the whole Internet. A mapping remembers the last kMaxNatRemotes remote addresses it sent
// to (the oldest is replaced). Outbound and inbound packets both refresh a mapping; ICMP errors
// do not. No hairpinning: a destination that is the NAT address is NotAllowed.
//
// TCP timeouts: a mapping is transitory until an inbound packet with ACK follows an outbound
// SYN, then established; a FIN or RST seen either way makes it transitory again (and a new
// outbound SYN is needed to become established).
//
// Mappings: one per (MUX, protocol, inner source address, inner source port or echo id), the
// external port chosen at random among free ones of the configured range (per protocol and
// family: TCP, UDP and echo ids of each family are separate spaces): a few random candidates,
// then a scan from a random place so that the last free port of a nearly full range is found
// (RFC 6056's random pick, then its random start and linear search). The PRNG (Mersenne twister,
// not a cryptographic one: ports are hard to guess blind, which is what RFC 6056 asks) is seeded
// by the caller: give it a random seed.
// Mappings are kept while used and dropped after the idle timeout of their protocol (strictly
// longer than the timeout): a mapping past its timeout is never used again, whether expire()
// has run or not. Bounded in total and per client: beyond either bound a new flow is refused
// (TableFull), nothing is evicted. Not thread-safe; allocation only when a mapping is created.
//
// Time: the time points given are expected not to go backwards; an earlier one than already
// seen counts as the latest seen. Mappings sit in one list per timeout class ordered by last
// use, so expire() looks at the oldest of each list only and costs O(1) when nothing expires.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "relay/error.hpp"

namespace relay {

// Remote addresses a mapping remembers for its address-dependent filtering.
inline constexpr std::size_t kMaxNatRemotes = 8;

struct NatConfig {
  std::optional<core::Ipv4Address> address4;  // source for IPv4 flows; none: IPv4 refused
  std::optional<core::Ipv6Address> address6;  // source for IPv6 flows; none: IPv6 refused
  std::uint16_t port_first = 20000;           // external ports (and echo ids), inclusive
  std::uint16_t port_last = 59999;
  std::size_t max_mappings = 65536;
  std::size_t max_mappings_per_client = 4096;
  std::chrono::seconds udp_timeout{120};
  std::chrono::seconds tcp_timeout{7440};  // established (RFC 5382)
  std::chrono::seconds tcp_transitory_timeout{
      240};  // before the handshake completes and after FIN/RST
  std::chrono::seconds icmp_timeout{60};
};

struct NatMapping {
  std::uint16_t mux = 0;
  std::uint8_t protocol = 0;  // 6, 17, 1 or 58
  core::Ipv6Address inner;    // IPv4 as ::ffff:a.b.c.d
  std::uint16_t inner_port = 0;
  std::uint16_t external_port = 0;
  std::uint64_t packets_out = 0;
  std::uint64_t packets_in = 0;
};

// What the translation did since it was made, for the operator: packets translated each way,
// mappings made and expired, and refused packets by reason (relay::to_string names: table_full,
// ports_exhausted, not_allowed, unsupported, not_ip; unknown_mapping inbound).
struct NatStats {
  std::uint64_t outbound = 0;
  std::uint64_t inbound = 0;  // replies and translated ICMP errors
  std::uint64_t created = 0;
  std::uint64_t expired = 0;
  std::map<std::string_view, std::uint64_t> refused_outbound;
  std::map<std::string_view, std::uint64_t> refused_inbound;
};

class SourceNat {
 public:
  using Clock = std::chrono::steady_clock;

  // Preconditions: port_first <= port_last; max_mappings >= 1.
  explicit SourceNat(NatConfig config, std::uint64_t random_seed);
  SourceNat(SourceNat&&) noexcept;
  SourceNat& operator=(SourceNat&&) noexcept;
  ~SourceNat();

  const NatConfig& config() const noexcept;

  // A packet client `mux` tunnelled toward the outside: its source becomes the NAT address and
  // external port, in place. Errors: NotIp (not a whole IPv4/IPv6 packet: its length fields must
  // match packet.size()), Unsupported, NotAllowed (no NAT address for the family, or a
  // destination that is the NAT address itself), TableFull, PortsExhausted. On any error the
  // packet is unchanged.
  Result<void> outbound(std::uint16_t mux, core::MutableBytes packet, Clock::time_point now);
  // Whether a packet read from the relay's TUN is addressed to a NAT address (then it belongs to
  // inbound(), and to no client route).
  bool is_inbound(core::Bytes packet) const noexcept;
  // A packet from the outside to the NAT address: the destination becomes the client's inner
  // address and port, in place; returns the client's MUX. UnknownMapping (no live mapping, a
  // remote the mapping has not sent to, or a destination that is not a NAT address), NotIp,
  // Unsupported. On any error the packet is unchanged.
  Result<std::uint16_t> inbound(core::MutableBytes packet, Clock::time_point now);

  // Drops mappings idle for longer than their timeout; returns how many.
  std::size_t expire(Clock::time_point now);
  // Drops every mapping of a client (its connection went away); returns how many. Walks the
  // whole table (O(size())) when the client has mappings: connections go away far less often
  // than packets arrive.
  std::size_t forget(std::uint16_t mux);
  std::size_t size() const noexcept;
  std::size_t size_of(std::uint16_t mux) const noexcept;
  // Every mapping, in no particular order (diagnostics).
  std::vector<NatMapping> mappings() const;
  const NatStats& stats() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay
