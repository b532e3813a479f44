// A member and a client (correspondent) wired together in memory for the state-machine tests:
// addresses from the documentation range, deterministic randomness, an injected clock.
#pragma once

#include <catch2/catch.hpp>
#include <utility>
#include <vector>

#include "anycast/correspondent.hpp"
#include "anycast/member.hpp"
#include "anycast/wire.hpp"
#include "anycast_test_util.hpp"

namespace anycast_test {

inline const auto kAnycast = addr("2001:db8:a::1");
inline const auto kOtherAnycast = addr("2001:db8:a::2");
inline const auto kUnicast = addr("2001:db8:1::2");
inline const auto kClient = addr("2001:db8:c::1");
inline constexpr std::uint16_t kMemberPort = anycast::kDefaultPort;
inline const anycast::Endpoint kClientEndpoint{kClient, 40000};

inline anycast::MemberSettings member_settings() {
  anycast::MemberSettings s;
  s.anycast = {kAnycast, kOtherAnycast};
  s.unicast = kUnicast;
  return s;
}

inline anycast::Probe probe(bool binding, std::uint8_t tag = 0x42) {
  anycast::Probe p;
  p.flags = binding ? anycast::kProbeFlagBinding : 0;
  p.nonce.fill(tag);
  return p;
}

// The parsed message of an outgoing datagram (Parsed::authenticated views o.bytes: keep o).
inline anycast::Parsed parsed(const anycast::Outgoing& o) {
  auto p = anycast::parse(o.bytes);
  REQUIRE(p);
  return *p;
}

template <typename T>
T body(const anycast::Outgoing& o) {
  const auto p = parsed(o);
  REQUIRE(std::holds_alternative<T>(p.message.body));
  return std::get<T>(p.message.body);
}

// Where a datagram the member sent appears to come from, as the client sees it.
inline anycast::Endpoint member_endpoint(const anycast::Outgoing& o) {
  return {o.source, kMemberPort};
}

// The member's BU re-encoded with changes (the authenticator kept as sent).
inline anycast::Outgoing altered(const anycast::Outgoing& bu_out, std::uint8_t shim_flags,
                                 const anycast::BindingUpdate& bu) {
  anycast::Outgoing o = bu_out;
  o.bytes = anycast::encode({shim_flags, bu});
  return o;
}

struct Rr {
  explicit Rr(anycast::MemberSettings s = member_settings(), anycast::CorrespondentSettings c = {})
      : member{std::move(s), counter_random(1)}, client{c, kT0, counter_random(101)} {}

  // Probe with B at `t_probe`; the client answers the HoTI at `t_hoti` and the CoTI at `t_coti`;
  // the member gets both answers at the later time. Returns the BU the member sends.
  anycast::Outgoing bu(anycast::Time t_probe, anycast::Time t_hoti, anycast::Time t_coti,
                       const anycast::Endpoint& from = kClientEndpoint,
                       const core::Ipv6Address& anycast = kAnycast) {
    auto out = member.on_probe(t_probe, probe(true), from, anycast);
    REQUIRE(out);
    REQUIRE(out->size() == 3);
    const auto& hoti_out = (*out)[1];
    const auto& coti_out = (*out)[2];
    // The client sees them in time order (its nonce table only moves forward).
    const auto hoti = [&] {
      return client.on_hoti(t_hoti, body<anycast::Hoti>(hoti_out), member_endpoint(hoti_out),
                            from.address);
    };
    const auto coti = [&] {
      return client.on_coti(t_coti, body<anycast::Coti>(coti_out), member_endpoint(coti_out),
                            from.address);
    };
    anycast::Outgoing hot_out, cot_out;
    if (t_coti < t_hoti) {
      cot_out = coti();
      hot_out = hoti();
    } else {
      hot_out = hoti();
      cot_out = coti();
    }
    const auto later = std::max(t_hoti, t_coti);
    auto first =
        member.on_hot(later, body<anycast::Hot>(hot_out), from, hot_out.destination.address);
    REQUIRE(first);
    CHECK(first->empty());
    auto second =
        member.on_cot(later, body<anycast::Cot>(cot_out), from, cot_out.destination.address);
    REQUIRE(second);
    REQUIRE(second->size() == 1);
    return std::move((*second)[0]);
  }

  // The client's verdict on a BU datagram the member sent.
  anycast::Result<anycast::BindingOutcome> deliver_bu(anycast::Time now, const anycast::Outgoing& o,
                                                      const core::Ipv6Address& to = kClient) {
    const auto p = parsed(o);
    REQUIRE(std::holds_alternative<anycast::BindingUpdate>(p.message.body));
    return client.on_binding_update(now, p.message.flags,
                                    std::get<anycast::BindingUpdate>(p.message.body),
                                    p.authenticated, member_endpoint(o), to);
  }

  // The member's verdict on a BA datagram the client sent.
  anycast::Result<void> deliver_ba(anycast::Time now, const anycast::Outgoing& o,
                                   const anycast::Endpoint& from = kClientEndpoint) {
    const auto p = parsed(o);
    REQUIRE(std::holds_alternative<anycast::BindingAck>(p.message.body));
    return member.on_binding_ack(now, std::get<anycast::BindingAck>(p.message.body),
                                 p.authenticated, from, o.destination.address);
  }

  anycast::Member member;
  anycast::Correspondent client;
};

}  // namespace anycast_test
