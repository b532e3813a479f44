// ARR/UDP: the wire of anycast resolving and anycast return routability (docs/anycast.md,
// "Wire format"). Every datagram is a 4-byte shim header followed by a probe body or by the exact
// RFC 6275 Mobility Header bytes. Pure: parse() and encode() do no I/O and never throw.
//
//    0       1       2       3
//   +-------+-------+-------+-------+
//   | 0xAC  |  ver  | flags | kind  |   flags: 0x80 = E (equivalent,
//   draft-haberman-ipv6-anycast-rr)
//   +-------+-------+-------+-------+   kind: 1 probe, 2 probe answer, 3 mobility header
//   | body ...                          other flag bits are reserved and must be 0
//
// Probe (kind 1), padded with zeros to at least kProbeMinSize bytes (with the shim) so that the
// answers a member sends (probe answer, HoTI, CoTI) never add up to more bytes than the probe:
//   u16 flags (0x8000 = B: start return routability), u16 reserved, 16-byte nonce, zero padding
// Probe answer (kind 2), sent from the member's unicast address:
//   u16 flags (B echoed), u16 ttl (seconds the member suggests caching the answer), 16-byte nonce,
//   16-byte anycast address (the one probed), 16-byte unicast address (the member's)
// Mobility header (kind 3), RFC 6275 section 6.1: payload proto 59, header len (8-octet units
// not counting the first 8), MH type, reserved, checksum (0 here: the UDP checksum covers it),
// message data, mobility options (section 6.2 alignment; Binding Authorization Data last).
// ARR/UDP adds one private mobility option, Home Address (type kHomeAddressOption, 16 bytes,
// alignment 8n+6), carried in the BU inside the authenticated data.
//
// Authenticated data of a BU or BA: the whole datagram (shim header included, so the E flag is
// covered) without the 12 Authenticator bytes, which are always its last 12 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "anycast/error.hpp"
#include "core/address.hpp"

namespace anycast {

inline constexpr std::uint8_t kMagic = 0xAC;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::uint8_t kFlagEquivalent = 0x80;  // E
inline constexpr std::size_t kShimSize = 4;
inline constexpr std::size_t kProbeMinSize = 112;  // bytes with the shim header
inline constexpr std::size_t kMaxDatagram = 1024;  // larger datagrams are not ARR/UDP
inline constexpr std::uint16_t kDefaultPort = 4545;

enum class Kind : std::uint8_t { Probe = 1, ProbeAnswer = 2, MobilityHeader = 3 };

// RFC 6275 section 6.1.2-6.1.8 MH types used here.
enum class MhType : std::uint8_t { Hoti = 1, Coti = 2, Hot = 3, Cot = 4, Bu = 5, Ba = 6 };

inline constexpr std::uint8_t kHomeAddressOption = 201;     // private to ARR/UDP
inline constexpr std::uint16_t kProbeFlagBinding = 0x8000;  // B
// BU flags (RFC 6275 section 6.1.7). H must be 0 toward a correspondent.
inline constexpr std::uint16_t kBuFlagAck = 0x8000;   // A
inline constexpr std::uint16_t kBuFlagHome = 0x4000;  // H
// BA status (RFC 6275 section 6.1.8).
enum class BaStatus : std::uint8_t {
  Accepted = 0,
  SequenceOutOfWindow = 135,
  ExpiredHomeNonce = 136,
  ExpiredCareOfNonce = 137,
  ExpiredNonces = 138,
};

using Nonce128 = std::array<std::uint8_t, 16>;       // probe nonce
using Cookie = std::array<std::uint8_t, 8>;          // init cookie (RFC 6275 section 5.2.3)
using KeygenToken = std::array<std::uint8_t, 8>;     // section 5.2.5
using Authenticator = std::array<std::uint8_t, 12>;  // section 5.2.6

struct Probe {
  std::uint16_t flags = 0;
  Nonce128 nonce{};
  bool operator==(const Probe&) const = default;
};

struct ProbeAnswer {
  std::uint16_t flags = 0;
  std::uint16_t ttl_seconds = 0;
  Nonce128 nonce{};
  core::Ipv6Address anycast;
  core::Ipv6Address unicast;
  bool operator==(const ProbeAnswer&) const = default;
};

struct Hoti {  // Home Test Init
  Cookie cookie{};
  bool operator==(const Hoti&) const = default;
};
struct Coti {  // Care-of Test Init
  Cookie cookie{};
  bool operator==(const Coti&) const = default;
};
struct Hot {  // Home Test
  std::uint16_t nonce_index = 0;
  Cookie cookie{};
  KeygenToken token{};
  bool operator==(const Hot&) const = default;
};
struct Cot {  // Care-of Test
  std::uint16_t nonce_index = 0;
  Cookie cookie{};
  KeygenToken token{};
  bool operator==(const Cot&) const = default;
};
struct NonceIndices {
  std::uint16_t home = 0;
  std::uint16_t care_of = 0;
  bool operator==(const NonceIndices&) const = default;
};
struct BindingUpdate {
  std::uint16_t sequence = 0;
  std::uint16_t flags = 0;     // A, H, L, K and reserved bits as sent
  std::uint16_t lifetime = 0;  // raw field; an anycast BU (E) counts it in 16 s units
  std::optional<core::Ipv6Address> home_address;  // the private Home Address option
  std::optional<NonceIndices> nonce_indices;
  std::optional<Authenticator> authenticator;
  bool operator==(const BindingUpdate&) const = default;
};
struct BindingAck {
  BaStatus status = BaStatus::Accepted;
  bool key_management = false;  // K
  std::uint16_t sequence = 0;
  std::uint16_t lifetime = 0;  // raw field, RFC 6275 4 s units
  std::optional<Authenticator> authenticator;
  bool operator==(const BindingAck&) const = default;
};

using Body = std::variant<Probe, ProbeAnswer, Hoti, Coti, Hot, Cot, BindingUpdate, BindingAck>;

struct Message {
  std::uint8_t flags = 0;  // shim flags (kFlagEquivalent)
  Body body;
  bool operator==(const Message&) const = default;
};

struct Parsed {
  Message message;
  // For a BU or BA with an Authorization Data option: the datagram without the 12 Authenticator
  // bytes (a view into the parsed input). Empty otherwise.
  std::span<const std::byte> authenticated;
};

// Checks everything: magic, version, reserved flag bits, kind, sizes, MH header len against the
// datagram, payload proto 59, checksum 0, option bounds/alignment/repeats, BAD last, options
// allowed per message type (BU: PadN/Pad1, Home Address, Nonce Indices, BAD; BA: pads, BAD; the
// test messages: pads only), E set only on a BU. Trailing bytes after the MH are an error
// (BadLength); a probe's padding must be zeros (else BadLength). Never reads past the span.
Result<Parsed> parse(std::span<const std::byte> datagram) noexcept;

// The datagram for a message, with the RFC 6275 padding and alignment (PadN/Pad1) and the MH
// header length filled in. A BU/BA with an authenticator set writes it as given; use
// seal() (rr.hpp) to compute it over the encoded bytes. Probes are padded to kProbeMinSize.
std::vector<std::byte> encode(const Message& message);

// The authenticated portion of an encoded BU/BA (all but its last 12 bytes); empty if the
// datagram carries no authenticator.
std::span<const std::byte> authenticated_portion(std::span<const std::byte> encoded) noexcept;

}  // namespace anycast
