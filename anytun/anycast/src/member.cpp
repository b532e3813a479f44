// The anycast member's state machine: probe answers, and the mobile node's half of
// draft-haberman-ipv6-anycast-rr-00 return routability (HoTI/CoTI, then a sealed BU with E).
#include "anycast/member.hpp"

#include <algorithm>
#include <optional>
#include <utility>

namespace anycast {
namespace {

// The draft: an anycast BU has Lifetime 1, in its own 16 s unit.
constexpr std::uint16_t kAnycastBuLifetime = 1;

}  // namespace

// One return-routability exchange with one client for one anycast address.
struct Member::Exchange {
  Endpoint client;            // the probe's source: HoTI, CoTI and the BU go there
  core::Ipv6Address anycast;  // the probed address, the "home address"
  Cookie home_cookie{};
  Cookie care_of_cookie{};
  std::optional<Hot> hot;
  std::optional<Cot> cot;
  Time started;
  Time last_sent;  // of the HoTI/CoTI pair (resend rule)
  // Set once the BU is out; the BA is checked against them.
  bool bu_sent = false;
  std::uint16_t sequence = 0;
  BindingKey kbm{};
};

Member::Member(MemberSettings settings, Random random)
    : settings_{std::move(settings)}, random_{std::move(random)} {
  // A random first sequence number: a restarted member is unlikely to repeat one a client still
  // remembers (and a BA with status 135 resynchronises it anyway).
  std::array<std::uint8_t, 2> start{};
  random_(start);
  next_sequence_ = static_cast<std::uint16_t>((start[0] << 8) | start[1]);
}

Member::~Member() = default;
Member::Member(Member&&) noexcept = default;
Member& Member::operator=(Member&&) noexcept = default;

namespace {

Outgoing answer(const MemberSettings& s, const Probe& probe, const Endpoint& from,
                const core::Ipv6Address& anycast) {
  ProbeAnswer a;
  a.flags = probe.flags & kProbeFlagBinding;
  a.ttl_seconds = s.answer_ttl_seconds;
  a.nonce = probe.nonce;
  a.anycast = anycast;
  a.unicast = s.unicast;
  return Outgoing{s.unicast, from, encode(Message{0, a})};
}

}  // namespace

Result<std::vector<Outgoing>> Member::on_probe(Time now, const Probe& probe, const Endpoint& from,
                                               const core::Ipv6Address& to) {
  const bool binding = (probe.flags & kProbeFlagBinding) != 0;
  if (to == settings_.unicast) {
    // Liveness: the client checks that the bound unicast address still answers.
    if (binding) return Errc::BadFlags;
    return std::vector<Outgoing>{answer(settings_, probe, from, settings_.unicast)};
  }
  if (std::find(settings_.anycast.begin(), settings_.anycast.end(), to) == settings_.anycast.end())
    return Errc::NotAnycast;

  std::vector<Outgoing> out;
  Exchange* ex = nullptr;
  if (binding) {
    auto it = std::find_if(exchanges_.begin(), exchanges_.end(), [&](const Exchange& e) {
      return e.client == from && e.anycast == to && now - e.started < settings_.pending_lifetime;
    });
    if (it != exchanges_.end()) {
      // The client retries its probe: the HoTI, the CoTI or an answer was lost. Same cookies,
      // fresh tokens, so a BU follows once both answers are back (a lost BU included).
      if (now - it->last_sent >= settings_.resend_interval) {
        it->hot.reset();
        it->cot.reset();
        it->bu_sent = false;
        it->last_sent = now;
        ex = &*it;
      }
    } else {
      if (exchanges_.size() >= settings_.max_pending) expire(now);
      if (exchanges_.size() >= settings_.max_pending) return Errc::TableFull;
      Exchange e;
      e.client = from;
      e.anycast = to;
      random_(e.home_cookie);
      random_(e.care_of_cookie);
      e.started = now;
      e.last_sent = now;
      exchanges_.push_back(std::move(e));
      ex = &exchanges_.back();
      ++stats_.exchanges_started;
    }
  }
  out.push_back(answer(settings_, probe, from, to));
  if (ex != nullptr) {
    // HoTI from the anycast address (the home address), CoTI from the unicast (the care-of).
    out.push_back(Outgoing{to, from, encode(Message{0, Hoti{ex->home_cookie}})});
    out.push_back(Outgoing{settings_.unicast, from, encode(Message{0, Coti{ex->care_of_cookie}})});
  }
  ++stats_.probes_answered;
  return out;
}

Result<std::vector<Outgoing>> Member::on_hot(Time now, const Hot& hot, const Endpoint& from,
                                             const core::Ipv6Address& to) {
  if (std::find(settings_.anycast.begin(), settings_.anycast.end(), to) == settings_.anycast.end())
    return Errc::NotAnycast;
  bool pending = false;
  for (auto& e : exchanges_) {
    if (e.anycast != to || e.client.address != from.address ||
        now - e.started >= settings_.pending_lifetime)
      continue;
    pending = true;
    if (e.home_cookie != hot.cookie) continue;
    if (e.bu_sent) return std::vector<Outgoing>{};  // a duplicate: the BU is out already
    e.hot = hot;
    return complete(e);
  }
  return pending ? Errc::CookieMismatch : Errc::NoPending;
}

Result<std::vector<Outgoing>> Member::on_cot(Time now, const Cot& cot, const Endpoint& from,
                                             const core::Ipv6Address& to) {
  if (to != settings_.unicast) return Errc::NotAnycast;
  bool pending = false;
  for (auto& e : exchanges_) {
    if (e.client.address != from.address || now - e.started >= settings_.pending_lifetime) continue;
    pending = true;
    if (e.care_of_cookie != cot.cookie) continue;
    if (e.bu_sent) return std::vector<Outgoing>{};
    e.cot = cot;
    return complete(e);
  }
  return pending ? Errc::CookieMismatch : Errc::NoPending;
}

std::vector<Outgoing> Member::complete(Exchange& e) {
  if (!e.hot || !e.cot) return {};
  // RFC 6275 section 5.2.5 and 11.7.2, with the draft's E flag and 16 s lifetime.
  e.kbm = binding_key(e.hot->token, e.cot->token);
  e.sequence = next_sequence_++;
  e.bu_sent = true;
  BindingUpdate bu;
  bu.sequence = e.sequence;
  bu.flags = kBuFlagAck;
  bu.lifetime = kAnycastBuLifetime;
  bu.home_address = e.anycast;
  bu.nonce_indices = NonceIndices{e.hot->nonce_index, e.cot->nonce_index};
  bu.authenticator = Authenticator{};
  auto bytes = encode(Message{kFlagEquivalent, bu});
  seal(bytes, e.kbm, settings_.unicast, e.client.address);
  ++stats_.binding_updates_sent;
  std::vector<Outgoing> out;
  out.push_back(Outgoing{settings_.unicast, e.client, std::move(bytes)});
  return out;
}

Result<void> Member::on_binding_ack(Time now, const BindingAck& ack,
                                    std::span<const std::byte> authenticated, const Endpoint& from,
                                    const core::Ipv6Address& to) {
  const auto awaiting = [&](const Exchange& e) {
    return e.bu_sent && e.client.address == from.address &&
           now - e.started < settings_.pending_lifetime;
  };
  if (to != settings_.unicast || std::none_of(exchanges_.begin(), exchanges_.end(), awaiting))
    return Errc::NoPending;

  const auto status = static_cast<std::uint8_t>(ack.status);
  auto it = exchanges_.end();
  if (ack.authenticator) {
    // Kbm and the address order of the BU (care-of, then correspondent), as UMIP does.
    it = std::find_if(exchanges_.begin(), exchanges_.end(), [&](const Exchange& e) {
      return awaiting(e) && authenticator_equal(authenticator(e.kbm, settings_.unicast,
                                                              e.client.address, authenticated),
                                                *ack.authenticator);
    });
    if (it == exchanges_.end()) return Errc::BadAuthenticator;
  } else {
    // Only a rejection for expired nonces comes without an authenticator (the correspondent has
    // no Kbm then); it names our sequence number.
    if (status < static_cast<std::uint8_t>(BaStatus::ExpiredHomeNonce) ||
        status > static_cast<std::uint8_t>(BaStatus::ExpiredNonces))
      return Errc::MissingOption;
    it = std::find_if(exchanges_.begin(), exchanges_.end(),
                      [&](const Exchange& e) { return awaiting(e) && e.sequence == ack.sequence; });
    if (it == exchanges_.end()) return Errc::NoPending;
  }

  // RFC 6275 section 6.1.8: below 128 the BU was accepted.
  if (status < 128) {
    if (ack.sequence != it->sequence) return Errc::NoPending;
    exchanges_.erase(it);
    ++stats_.binding_acks_accepted;
    return {};
  }
  exchanges_.erase(it);
  switch (ack.status) {
    case BaStatus::SequenceOutOfWindow:
      // The BA carries the last sequence number the client accepted: continue after it.
      next_sequence_ = static_cast<std::uint16_t>(ack.sequence + 1);
      return Errc::Replay;
    case BaStatus::ExpiredHomeNonce:
    case BaStatus::ExpiredCareOfNonce:
    case BaStatus::ExpiredNonces:
      return Errc::StaleNonce;
    default:
      // A rejection this protocol never sends.
      return Errc::UnknownKind;
  }
}

void Member::expire(Time now) {
  std::erase_if(exchanges_,
                [&](const Exchange& e) { return now - e.started >= settings_.pending_lifetime; });
}

std::size_t Member::pending() const noexcept {
  return exchanges_.size();
}

}  // namespace anycast
