// TSP vocabulary: transports, protocol versions, tunnel types and actions, SASL mechanisms, and
// the VERSION and CAPABILITY lines of the handshake (RFC 5572 "TSP Signaling"; tsp-wire.md 3).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tsp/error.hpp"

namespace tsp {

// TCP/3653 carries a byte stream; UDP/3653 carries one message per datagram behind the 8-byte
// header of udp.hpp.
enum class Transport { Tcp, Udp };

// "2.0.2" or, for the draft-jaehwoon-dstm-multitep-02 TEP profile, "1.0" (no third component).
struct Version {
  std::uint8_t major = 2;
  std::uint8_t minor = 0;
  std::uint8_t patch = 2;
  bool has_patch = true;

  std::string to_string() const;
  // 2.0.x has the accept/reject step after the offer; 1.0.x does not (tsp-wire.md 9.1).
  bool has_accept_step() const noexcept { return major >= 2; }
  // "1.0" is the draft's TEP profile: it uses "OK Authentication successful".
  bool is_draft_profile() const noexcept { return !has_patch; }
  // gogoc's MD5 bug 1455 emulation applies to versions up to 2.0.0 (tsp-wire.md 4).
  bool digest_bug1455() const noexcept {
    return major < 2 || (major == 2 && minor == 0 && patch == 0);
  }

  auto operator<=>(const Version&) const = default;
};

inline constexpr Version kVersion2_0_2{2, 0, 2, true};
inline constexpr Version kVersion2_0_1{2, 0, 1, true};
inline constexpr Version kVersion2_0_0{2, 0, 0, true};
inline constexpr Version kVersion1_0_1{1, 0, 1, true};
inline constexpr Version kVersion1_0{1, 0, 0, false};

// Whether this library speaks the version: 2.0.0-2.0.2 always; 1.0 and 1.0.x when allow_v1.
bool is_supported_version(const Version& v, bool allow_v1) noexcept;

// "VERSION=2.0.2" (key case-insensitive, no line end). BadVersion for anything else; the
// numbers are 1-3 decimal digits each, two or three components.
Result<Version> parse_version_line(std::string_view line);
std::string version_line(const Version& v);

enum class TunnelType {
  V6V4,     // IPv6 in IPv4 (protocol 41)
  V6UdpV4,  // IPv6 in UDP/IPv4 on the TSP flow
  V6AnyV4,  // request only: the broker picks v6v4 or v6udpv4
  V4V6,     // IPv4 in IPv6 (DSTM)
  Any,      // "*", only in redirects
};
// XML spelling: "v6v4", "v6udpv4", "v6anyv4", "v4v6", "*".
std::string_view tunnel_type_name(TunnelType t) noexcept;
std::optional<TunnelType> parse_tunnel_type(std::string_view s) noexcept;  // case-insensitive
// CAPABILITY spelling: "V6V4", "V6UDPV4", "V4V6" (nullopt for v6anyv4 and "*").
std::optional<std::string_view> tunnel_capability_name(TunnelType t) noexcept;

// Heartbeat is our extension for TEPs (docs/tsp.md, "TEP heartbeats"); the others are RFC 5572's
// and draft-jaehwoon-dstm-multitep-02's.
enum class TunnelAction { Create, Info, Accept, Reject, Delete, Query, Heartbeat };
// XML spelling: "create", "info", "accept", "reject", "delete", "query", "heartbeat".
std::string_view tunnel_action_name(TunnelAction a) noexcept;
std::optional<TunnelAction> parse_tunnel_action(std::string_view s) noexcept;  // case-insensitive

// SASL mechanisms (RFC 4422) TSP uses. PASSDSS-3DES-1 is deliberately absent (tsp-wire.md 4).
enum class Mechanism { Anonymous, Plain, DigestMd5 };
std::string_view mechanism_name(Mechanism m) noexcept;  // "ANONYMOUS", "PLAIN", "DIGEST-MD5"
std::optional<Mechanism> parse_mechanism(std::string_view s) noexcept;  // case-insensitive

// What a server offers after VERSION.
struct Capability {
  std::vector<TunnelType> tunnels;
  std::vector<Mechanism> mechanisms;
  bool operator==(const Capability&) const = default;
};

// "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5" (no line end; the sender appends CRLF, which gogoc
// needs to see the last token).
std::string capability_line(const Capability& c);
// Tokens split on spaces; TUNNEL values compared case-sensitively and AUTH values
// case-insensitively, as gogoc does; unknown tokens and values are skipped.
Result<Capability> parse_capability_line(std::string_view line);

}  // namespace tsp
