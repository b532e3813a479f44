// The client's side of anycast return routability: stateless HoT/CoT and the RFC 6275 section
// 9.5.1 checks of an anycast Binding Update.
#include "anycast/correspondent.hpp"

#include <algorithm>
#include <utility>

namespace anycast {
namespace {

// The draft: an anycast BU has Lifetime 1, counted in 16 s units.
constexpr std::uint16_t kAnycastBuLifetime = 1;

NodeKey make_node_key(const Random& random) {
  NodeKey k{};
  random(k);
  return k;
}

Outgoing binding_ack(const BindingAck& ba, const Endpoint& to_member,
                     const core::Ipv6Address& from_us) {
  return Outgoing{from_us, to_member, encode(Message{0, ba})};
}

}  // namespace

std::size_t Correspondent::PairHash::operator()(
    const std::pair<core::Ipv6Address, core::Ipv6Address>& p) const noexcept {
  const std::hash<core::Ipv6Address> h;
  return h(p.first) ^ (h(p.second) * 0x9E3779B97F4A7C15ull);
}

Correspondent::Correspondent(CorrespondentSettings settings, Time now, Random random)
    : settings_{settings}, kcn_{make_node_key(random)}, nonces_{now, std::move(random)} {}

Outgoing Correspondent::on_hoti(Time now, const Hoti& hoti, const Endpoint& from,
                                const core::Ipv6Address& to) {
  // Stateless (section 5.2.5): the token is recomputed from Kcn, the nonce and the address.
  const auto [index, nonce] = nonces_.current(now);
  const Hot hot{index, hoti.cookie, home_keygen_token(kcn_, from.address, nonce)};
  return Outgoing{to, from, encode(Message{0, hot})};
}

Outgoing Correspondent::on_coti(Time now, const Coti& coti, const Endpoint& from,
                                const core::Ipv6Address& to) {
  const auto [index, nonce] = nonces_.current(now);
  const Cot cot{index, coti.cookie, care_of_keygen_token(kcn_, from.address, nonce)};
  return Outgoing{to, from, encode(Message{0, cot})};
}

Result<BindingOutcome> Correspondent::on_binding_update(Time now, std::uint8_t shim_flags,
                                                        const BindingUpdate& bu,
                                                        std::span<const std::byte> authenticated,
                                                        const Endpoint& from,
                                                        const core::Ipv6Address& to) {
  // Section 9.5.1, in its order, adapted to anycast: E required, H never (no home registration).
  if ((shim_flags & kFlagEquivalent) == 0 || (bu.flags & kBuFlagHome) != 0) return Errc::BadFlags;
  if (!bu.home_address || !bu.nonce_indices || !bu.authenticator) return Errc::MissingOption;
  if (bu.lifetime != kAnycastBuLifetime) return Errc::BadLifetime;

  const auto& home = *bu.home_address;
  const auto& care_of = from.address;
  BindingOutcome outcome;

  const auto home_nonce = nonces_.find(bu.nonce_indices->home, now);
  const auto care_of_nonce = nonces_.find(bu.nonce_indices->care_of, now);
  if (!home_nonce || !care_of_nonce) {
    // Section 9.5.4: reject with a BA even without A; no Kbm, so unauthenticated.
    BindingAck ba;
    ba.status = !home_nonce && !care_of_nonce ? BaStatus::ExpiredNonces
                : !home_nonce                 ? BaStatus::ExpiredHomeNonce
                                              : BaStatus::ExpiredCareOfNonce;
    ba.sequence = bu.sequence;
    outcome.ack = binding_ack(ba, from, to);
    outcome.rejected = Errc::StaleNonce;
    return outcome;
  }

  const BindingKey kbm = binding_key(home_keygen_token(kcn_, home, *home_nonce),
                                     care_of_keygen_token(kcn_, care_of, *care_of_nonce));
  if (authenticated.empty() ||
      !authenticator_equal(authenticator(kbm, care_of, to, authenticated), *bu.authenticator))
    return Errc::BadAuthenticator;

  const auto key = std::pair{home, care_of};
  auto record = sequences_.find(key);
  if (record != sequences_.end() && now - record->second.accepted >= kMaxNonceLifetime) {
    // The nonces that authorised it are gone: the record protects nothing any more.
    sequences_.erase(record);
    record = sequences_.end();
  }
  if (record != sequences_.end() && !sequence_newer(bu.sequence, record->second.sequence)) {
    // Status 135 carries the last accepted sequence number so the member can resynchronise.
    BindingAck ba;
    ba.status = BaStatus::SequenceOutOfWindow;
    ba.sequence = record->second.sequence;
    ba.authenticator = Authenticator{};
    auto ack = binding_ack(ba, from, to);
    seal(ack.bytes, kbm, care_of, to);
    outcome.ack = std::move(ack);
    outcome.rejected = Errc::Replay;
    return outcome;
  }

  if (record == sequences_.end()) {
    if (sequences_.size() >= settings_.max_sequence_records) expire(now);
    if (sequences_.size() >= settings_.max_sequence_records && !sequences_.empty()) {
      const auto oldest = std::min_element(
          sequences_.begin(), sequences_.end(),
          [](const auto& a, const auto& b) { return a.second.accepted < b.second.accepted; });
      sequences_.erase(oldest);
    }
    sequences_.emplace(key, SequenceRecord{bu.sequence, now});
  } else {
    record->second = SequenceRecord{bu.sequence, now};
  }

  const auto lifetime = bu.lifetime * kAnycastBuLifetimeUnit16s;
  outcome.binding = Binding{home, care_of, bu.sequence, now + lifetime};
  if ((bu.flags & kBuFlagAck) != 0) {
    // The BA's Lifetime keeps RFC 6275's 4 s unit: 16 s is 4.
    BindingAck ba;
    ba.status = BaStatus::Accepted;
    ba.sequence = bu.sequence;
    ba.lifetime = static_cast<std::uint16_t>(lifetime / kMhLifetimeUnit4s);
    ba.authenticator = Authenticator{};
    auto ack = binding_ack(ba, from, to);
    seal(ack.bytes, kbm, care_of, to);
    outcome.ack = std::move(ack);
  }
  return outcome;
}

void Correspondent::expire(Time now) {
  std::erase_if(sequences_,
                [&](const auto& r) { return now - r.second.accepted >= kMaxNonceLifetime; });
}

}  // namespace anycast
