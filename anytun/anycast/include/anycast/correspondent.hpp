// The client's side of anycast return routability: the correspondent node of RFC 6275 in the
// role draft-haberman-ipv6-anycast-rr-00 gives it. It answers HoTI and CoTI statelessly with
// keygen tokens (section 5.2.5, recomputed from Kcn, the nonce index and the addresses, so it
// keeps no per-member state before a valid BU), and accepts a binding anycast -> unicast only
// from a Binding Update that verifies (section 9.5.1 checks, E set, lifetime 1 = 16 s). Pure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>

#include "anycast/error.hpp"
#include "anycast/exchange.hpp"
#include "anycast/rr.hpp"
#include "anycast/wire.hpp"

namespace anycast {

struct CorrespondentSettings {
  // Sequence numbers of accepted BUs are kept per (anycast, unicast) for kMaxNonceLifetime, at
  // most this many; past it the oldest record goes.
  std::size_t max_sequence_records = 16384;
};

// A verified binding.
struct Binding {
  core::Ipv6Address anycast;
  core::Ipv6Address unicast;
  std::uint16_t sequence = 0;
  Time expires;  // now + lifetime * kAnycastBuLifetimeUnit16s
};

struct BindingOutcome {
  std::optional<Binding> binding;  // set when the BU verified and was accepted
  std::optional<Outgoing> ack;     // a BA to send (when A is set, or a status rejection)
  // When the BU was rejected with a BA status (StaleNonce or Replay), why; else empty.
  boost::system::error_code rejected;
};

class Correspondent {
 public:
  Correspondent(CorrespondentSettings settings, Time now, Random random);

  // The HoT for a HoTI that arrived at `to` (the client's address) from `from` (its IP source is
  // the claimed home address, i.e. the anycast address). Sent back to `from`.
  Outgoing on_hoti(Time now, const Hoti& hoti, const Endpoint& from, const core::Ipv6Address& to);
  // The CoT for a CoTI, sent back to `from` (the member's unicast address).
  Outgoing on_coti(Time now, const Coti& coti, const Endpoint& from, const core::Ipv6Address& to);

  // A BU (shim flags and Parsed::authenticated as parsed) from `from` (the care-of address is
  // the observed source) to `to` (the correspondent address in the authenticator). Errors
  // (nothing sent, RFC 6275 silently discards these): BadFlags (no E, or H set), MissingOption,
  // BadLifetime, BadAuthenticator. A stale nonce index or an old sequence number gives a
  // BindingOutcome with `rejected` set and a BA carrying status 136-138 or 135 (unauthenticated
  // when the nonces are gone, as the RFC allows).
  Result<BindingOutcome> on_binding_update(Time now, std::uint8_t shim_flags,
                                           const BindingUpdate& bu,
                                           std::span<const std::byte> authenticated,
                                           const Endpoint& from, const core::Ipv6Address& to);

  // Forgets sequence records older than kMaxNonceLifetime.
  void expire(Time now);

 private:
  CorrespondentSettings settings_;
  NodeKey kcn_{};
  NonceTable nonces_;
  struct PairHash {
    std::size_t operator()(const std::pair<core::Ipv6Address, core::Ipv6Address>& p) const noexcept;
  };
  struct SequenceRecord {
    std::uint16_t sequence;
    Time accepted;
  };
  std::unordered_map<std::pair<core::Ipv6Address, core::Ipv6Address>, SequenceRecord, PairHash>
      sequences_;
};

}  // namespace anycast
