// The anycast member's side of resolving and return routability (docs/anycast.md): it answers
// probes sent to its anycast addresses from its unicast address and, when the probe asks for a
// binding, runs the draft's exchange in the mobile node's role: HoTI from the anycast address
// (the "home address"), CoTI from its unicast address (the "care-of address"), and once the HoT
// and CoT are back, a Binding Update with E set and lifetime 1 (16 s) from the unicast address,
// authenticated with Kbm. Pure state machine: parsed messages and time in, datagrams out.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "anycast/error.hpp"
#include "anycast/exchange.hpp"
#include "anycast/rr.hpp"
#include "anycast/wire.hpp"

namespace anycast {

struct MemberSettings {
  std::vector<core::Ipv6Address> anycast;  // addresses this member answers for (not empty)
  core::Ipv6Address unicast;               // its own unicast address (the care-of address)
  std::uint16_t answer_ttl_seconds = 16;   // ProbeAnswer::ttl_seconds
  std::size_t max_pending = 4096;          // exchanges in progress, all clients together
  std::chrono::milliseconds pending_lifetime{4000};  // an exchange not finished by then is dropped
  // A probe with B for a (client, anycast) pair whose exchange is in progress resends HoTI and
  // CoTI with the same cookies, at most once per this interval (the client retries probes).
  std::chrono::milliseconds resend_interval{250};
};

struct MemberStats {
  std::uint64_t probes_answered = 0;  // probes to an anycast address (not liveness probes)
  std::uint64_t exchanges_started = 0;
  std::uint64_t binding_updates_sent = 0;
  std::uint64_t binding_acks_accepted = 0;
};

class Member {
 public:
  Member(MemberSettings settings, Random random);
  // Out of line: Exchange is complete only in member.cpp.
  ~Member();
  Member(Member&&) noexcept;
  Member& operator=(Member&&) noexcept;

  // A probe that arrived at `to` from `from`. Out: the answer (from the unicast address), plus
  // HoTI and CoTI when the probe has B. A probe sent to the unicast address itself is a liveness
  // probe: answered with anycast = unicast, never starting an exchange (B there is BadFlags).
  // Errors: NotAnycast (to is neither an anycast address nor the unicast), BadFlags, TableFull.
  Result<std::vector<Outgoing>> on_probe(Time now, const Probe& probe, const Endpoint& from,
                                         const core::Ipv6Address& to);
  // A HoT (sent by the client to the anycast address) or CoT (to the unicast address). Errors:
  // NoPending, CookieMismatch, NotAnycast. Out: the BU once both tokens are in, else nothing.
  Result<std::vector<Outgoing>> on_hot(Time now, const Hot& hot, const Endpoint& from,
                                       const core::Ipv6Address& to);
  Result<std::vector<Outgoing>> on_cot(Time now, const Cot& cot, const Endpoint& from,
                                       const core::Ipv6Address& to);
  // A BA for a BU this member sent; `authenticated` is Parsed::authenticated. Errors: NoPending,
  // BadAuthenticator, MissingOption. A BA with a rejecting status ends the exchange (accepted
  // as an answer) and is reported as StaleNonce or Replay.
  Result<void> on_binding_ack(Time now, const BindingAck& ack,
                              std::span<const std::byte> authenticated, const Endpoint& from,
                              const core::Ipv6Address& to);

  // Drops exchanges older than pending_lifetime.
  void expire(Time now);
  std::size_t pending() const noexcept;
  const MemberStats& stats() const noexcept { return stats_; }
  const MemberSettings& settings() const noexcept { return settings_; }

 private:
  struct Exchange;
  // The BU once both tokens of `e` are in, else nothing.
  std::vector<Outgoing> complete(Exchange& e);
  MemberSettings settings_;
  Random random_;
  MemberStats stats_;
  std::vector<Exchange> exchanges_;  // implementation detail; bounded by max_pending
  std::uint16_t next_sequence_ = 0;
};

}  // namespace anycast
