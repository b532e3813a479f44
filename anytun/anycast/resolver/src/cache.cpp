// The resolver cache: entries in least-recently-used order, nonces indexed for the answers, and a
// heap of per-entry wake-up times so that poll() touches only the entries that have work due.
#include "anycast_resolver/cache.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <utility>

namespace anycast_resolver {

namespace {

using anycast::Errc;
using anycast::query::Answer;
using anycast::query::Status;

constexpr Address kLoopback{Address::Octets{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

template <typename Duration>
std::uint32_t to_ms(Duration d) noexcept {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ms, 0, 0xffffffff));
}

Answer pending() {
  return Answer{.status = Status::Pending, .ttl_ms = 0, .unicast = {}};
}

Decision answer_now(Answer answer) {
  return Decision{.answer = answer, .resolving = false, .dropped = std::nullopt};
}

}  // namespace

CacheSettings cache_settings(const Config& c) {
  return CacheSettings{.prefixes = c.prefixes,
                       .probe_all = c.probe_all,
                       .policy = c.policy,
                       .answer_ttl = c.answer_ttl,
                       .probe_timeout = c.probe_timeout,
                       .probe_attempts = c.probe_attempts,
                       .negative_ttl = c.negative_ttl,
                       .probe_ttl = c.probe_ttl,
                       .idle_timeout = c.idle_timeout,
                       .liveness_interval = c.liveness_interval,
                       .liveness_misses = c.liveness_misses,
                       .max_entries = c.max_entries,
                       .max_waiters = c.max_waiters};
}

bool global_unicast(const Address& a) noexcept {
  return !(a.is_unspecified() || a.is_multicast() || a.is_link_local() || a.is_v4_mapped() ||
           a == kLoopback);
}

std::string_view to_string(EntryState state) noexcept {
  switch (state) {
    case EntryState::Resolving:
      return "resolving";
    case EntryState::Bound:
      return "bound";
    case EntryState::Negative:
      return "negative";
  }
  return "resolving";
}

std::size_t Cache::NonceHash::operator()(const anycast::Nonce128& n) const noexcept {
  // Our own random nonces: any 8 of their bytes are a good hash. Peers only look them up.
  std::uint64_t h = 0;
  std::memcpy(&h, n.data(), sizeof h);
  return static_cast<std::size_t>(h);
}

Cache::Cache(CacheSettings settings, anycast::Random random)
    : settings_{std::move(settings)}, random_{std::move(random)} {}

bool Cache::resolvable(const Address& a) const noexcept {
  if (!global_unicast(a)) return false;
  if (settings_.probe_all) return true;
  return std::any_of(settings_.prefixes.begin(), settings_.prefixes.end(),
                     [&](const core::Ipv6Prefix& p) { return p.contains(a); });
}

Cache::Lru::iterator Cache::lookup(const Address& a) {
  const auto it = index_.find(a);
  return it == index_.end() ? lru_.end() : it->second;
}

Cache::Lru::const_iterator Cache::lookup(const Address& a) const {
  const auto it = index_.find(a);
  return it == index_.end() ? lru_.cend() : Lru::const_iterator{it->second};
}

Decision Cache::query(Time now, const Address& a, Actions& actions) {
  if (!resolvable(a)) {
    ++stats_.pass_through;
    return answer_now(Answer{
        .status = Status::PassThrough, .ttl_ms = to_ms(settings_.answer_ttl), .unicast = {}});
  }
  auto it = lookup(a);
  if (it != lru_.end() && !advance(now, it, actions)) it = lru_.end();
  if (it != lru_.end()) {
    lru_.splice(lru_.begin(), lru_, it);
    Entry& e = *it;
    e.last_used = now;
    if (e.binding) {
      ++stats_.hits;
      // Idle when its renewal time came, in use again now: renew before it expires.
      if (e.renewal_due_seen && !e.resolution) {
        ++stats_.renewals;
        ++e.renewals;
        start_resolution(now, e, actions);
        schedule(e);
      }
      return answer_now(
          Answer{.status = Status::Unicast,
                 .ttl_ms = std::min(to_ms(settings_.answer_ttl), to_ms(e.binding->expires - now)),
                 .unicast = e.binding->unicast.bytes()});
    }
    if (e.negative_until) {
      ++stats_.pass_through;
      return answer_now(
          Answer{.status = Status::PassThrough,
                 .ttl_ms = std::min(to_ms(settings_.answer_ttl), to_ms(*e.negative_until - now)),
                 .unicast = {}});
    }
    ++stats_.misses;
    return Decision{.answer = pending(), .resolving = true, .dropped = std::nullopt};
  }
  ++stats_.misses;
  it = insert(now, a);
  if (it == lru_.end())
    return Decision{.answer = pending(), .resolving = false, .dropped = Errc::TableFull};
  start_resolution(now, *it, actions);
  schedule(*it);
  return Decision{.answer = pending(), .resolving = true, .dropped = std::nullopt};
}

Answer Cache::settle(Time now, const Address& a) {
  // No advance() here: it may have probes to send, which only poll() and query() hand out.
  const auto it = lookup(a);
  if (it != lru_.end() && it->binding && it->binding->expires > now)
    return Answer{
        .status = Status::Unicast,
        .ttl_ms = std::min(to_ms(settings_.answer_ttl), to_ms(it->binding->expires - now)),
        .unicast = it->binding->unicast.bytes()};
  return pending();
}

std::chrono::milliseconds Cache::wait_budget(std::uint16_t wait_ms) const noexcept {
  return std::min(std::chrono::milliseconds{wait_ms},
                  settings_.probe_timeout * settings_.probe_attempts);
}

std::optional<WaiterId> Cache::add_waiter(const Address& a) {
  if (waiter_index_.size() >= settings_.max_waiters) return std::nullopt;
  auto it = lookup(a);
  if (it == lru_.end() || !it->resolution) return std::nullopt;
  const WaiterId id = next_waiter_++;
  it->resolution->waiters.push_back(id);
  waiter_index_.emplace(id, a);
  return id;
}

void Cache::remove_waiter(WaiterId id) noexcept {
  const auto w = waiter_index_.find(id);
  if (w == waiter_index_.end()) return;
  if (auto it = lookup(w->second); it != lru_.end() && it->resolution) {
    auto& ids = it->resolution->waiters;
    ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
  }
  waiter_index_.erase(w);
}

anycast::Result<void> Cache::failed(Time now, const Address& a, const Address& unicast,
                                    Actions& actions) {
  auto it = lookup(a);
  if (it == lru_.end() || !advance(now, it, actions)) return Errc::Unsolicited;
  Entry& e = *it;
  if (!e.binding || e.binding->unicast != unicast) return Errc::Unsolicited;
  ++stats_.failed_reports;
  rebind(now, e, actions);
  schedule(e);
  return {};
}

anycast::Result<Taken> Cache::on_probe_answer(Time now, const anycast::ProbeAnswer& answer,
                                              const Address& from, Actions& actions) {
  const auto n = nonces_.find(answer.nonce);
  if (n != nonces_.end() && n->second.liveness) {
    auto it = lookup(n->second.anycast);
    assert(it != lru_.end());
    if (!it->binding || it->binding->unicast != from) return Errc::AddressMismatch;
    it->misses = 0;
    clear_liveness(*it);
    return Taken::Liveness;
  }
  if (settings_.policy == Policy::Secure) {
    ++stats_.answers_ignored_secure;
    return Taken::IgnoredSecure;
  }
  if (n == nonces_.end() || n->second.anycast != answer.anycast) return Errc::Unsolicited;
  auto it = lookup(answer.anycast);
  if (it == lru_.end() || !advance(now, it, actions) || !it->resolution ||
      !nonces_.contains(answer.nonce))
    return Errc::Unsolicited;
  if (answer.unicast != from || answer.unicast == answer.anycast || !global_unicast(from))
    return Errc::AddressMismatch;
  const auto ttl = std::min<std::chrono::seconds>(
      settings_.probe_ttl, std::chrono::seconds{std::max<std::uint16_t>(answer.ttl_seconds, 1)});
  bind(now, *it,
       BindingInfo{.unicast = from,
                   .verified = false,
                   .sequence = 0,
                   .learned_by = LearnedBy::ProbeAnswer,
                   .bound_at = now,
                   .expires = now + ttl},
       actions);
  ++stats_.answers_accepted;
  return Taken::Bound;
}

anycast::Result<Taken> Cache::on_echo_reply(Time now, const anycast::Nonce128& nonce,
                                            const Address& from, Actions& actions) {
  const auto n = nonces_.find(nonce);
  if (n == nonces_.end()) return Errc::Unsolicited;
  const NonceOwner owner = n->second;
  auto it = lookup(owner.anycast);
  assert(it != lru_.end());
  if (owner.liveness) {
    if (!it->binding || it->binding->unicast != from) return Errc::AddressMismatch;
    it->misses = 0;
    clear_liveness(*it);
    return Taken::Liveness;
  }
  if (!advance(now, it, actions) || !it->resolution || !nonces_.contains(nonce))
    return Errc::Unsolicited;
  if (from == owner.anycast) {
    ++stats_.icmp_from_anycast;
    return Taken::FromAnycast;
  }
  if (settings_.policy == Policy::Secure) {
    ++stats_.answers_ignored_secure;
    return Taken::IgnoredSecure;
  }
  if (!global_unicast(from)) return Errc::AddressMismatch;
  bind(now, *it,
       BindingInfo{.unicast = from,
                   .verified = false,
                   .sequence = 0,
                   .learned_by = LearnedBy::EchoReply,
                   .bound_at = now,
                   .expires = now + settings_.probe_ttl},
       actions);
  ++stats_.icmp_answers_accepted;
  return Taken::Bound;
}

bool Cache::expects_hoti(const Address& from) const noexcept {
  const auto it = lookup(from);
  return it != lru_.end() && it->resolution.has_value();
}

anycast::Result<void> Cache::on_verified_binding(Time now, const anycast::Binding& binding,
                                                 Actions& actions) {
  auto it = lookup(binding.anycast);
  if (it == lru_.end() || !advance(now, it, actions) || !it->resolution) return Errc::Unsolicited;
  if (binding.unicast == binding.anycast || !global_unicast(binding.unicast))
    return Errc::AddressMismatch;
  bind(now, *it,
       BindingInfo{.unicast = binding.unicast,
                   .verified = true,
                   .sequence = binding.sequence,
                   .learned_by = LearnedBy::BindingUpdate,
                   .bound_at = now,
                   .expires = binding.expires},
       actions);
  ++stats_.bindings_verified;
  return {};
}

void Cache::poll(Time now, Actions& actions) {
  while (!wakeups_.empty() && wakeups_.top().first <= now) {
    const auto [t, a] = wakeups_.top();
    wakeups_.pop();
    auto it = lookup(a);
    if (it == lru_.end() || it->scheduled != t) continue;  // superseded
    it->scheduled = Time::max();
    advance(now, it, actions);
  }
  // Superseded wake-ups stay in the heap until their time; rebuild when they dominate it.
  if (wakeups_.size() > 2 * index_.size() + 64) {
    wakeups_ = {};
    for (auto& e : lru_) {
      e.scheduled = Time::max();
      schedule(e);
    }
  }
}

std::optional<Time> Cache::next_wakeup() const noexcept {
  if (wakeups_.empty()) return std::nullopt;
  return wakeups_.top().first;
}

std::size_t Cache::flush(Actions& actions) {
  const auto n = index_.size();
  while (!lru_.empty()) erase(lru_.begin(), actions);
  wakeups_ = {};
  return n;
}

std::optional<EntryView> Cache::find(const Address& a) const {
  const auto it = lookup(a);
  if (it == lru_.end()) return std::nullopt;
  return view(*it);
}

void Cache::for_each(const std::function<void(const EntryView&)>& fn) const {
  for (const auto& e : lru_) fn(view(e));
}

// ---- internals ----

Cache::Lru::iterator Cache::insert(Time now, const Address& a) {
  if (index_.size() >= settings_.max_entries) {
    auto victim = std::find_if(lru_.rbegin(), lru_.rend(),
                               [](const Entry& e) { return !e.resolution.has_value(); });
    if (victim == lru_.rend()) return lru_.end();
    Actions none;  // an entry without a resolution has no waiters to wake
    erase(std::next(victim).base(), none);
  }
  Entry e;
  e.anycast = a;
  e.last_used = now;
  lru_.push_front(std::move(e));
  index_.emplace(a, lru_.begin());
  return lru_.begin();
}

void Cache::erase(Lru::iterator it, Actions& actions) {
  end_resolution(*it, actions);
  clear_liveness(*it);
  index_.erase(it->anycast);
  lru_.erase(it);
}

anycast::Nonce128 Cache::fresh_nonce(const Address& owner, bool liveness) {
  anycast::Nonce128 nonce{};
  random_(nonce);
  nonces_.insert_or_assign(nonce, NonceOwner{.anycast = owner, .liveness = liveness});
  return nonce;
}

void Cache::start_resolution(Time now, Entry& e, Actions& actions) {
  assert(!e.resolution);
  e.resolution.emplace();
  ++resolving_;
  next_attempt(now, e, actions);
}

void Cache::next_attempt(Time now, Entry& e, Actions& actions) {
  auto& r = *e.resolution;
  ++r.attempts;
  const auto nonce = fresh_nonce(e.anycast, /*liveness=*/false);
  r.nonces.push_back(nonce);
  // Attempts keep their schedule (start + n * probe_timeout) even when polled late, so that a
  // resolution ends when the budget of a query that waited for it from the start runs out.
  r.deadline = (r.attempts == 1 ? now : r.deadline) + settings_.probe_timeout;
  actions.push_back(SendProbe{.anycast = e.anycast,
                              .nonce = nonce,
                              .attempt = r.attempts,
                              .renewal = e.binding.has_value()});
}

void Cache::end_resolution(Entry& e, Actions& actions) {
  if (!e.resolution) return;
  for (const auto& nonce : e.resolution->nonces) nonces_.erase(nonce);
  if (!e.resolution->waiters.empty()) {
    for (const auto id : e.resolution->waiters) waiter_index_.erase(id);
    actions.push_back(
        WakeWaiters{.anycast = e.anycast, .waiters = std::move(e.resolution->waiters)});
  }
  e.resolution.reset();
  --resolving_;
}

void Cache::clear_liveness(Entry& e) {
  if (e.liveness_nonce) nonces_.erase(*e.liveness_nonce);
  e.liveness_nonce.reset();
}

void Cache::bind(Time now, Entry& e, BindingInfo binding, Actions& actions) {
  const Address* before =
      e.binding ? &e.binding->unicast : (e.previous_unicast ? &*e.previous_unicast : nullptr);
  if (before && *before != binding.unicast) {
    ++stats_.rebinds;
    ++e.rebinds;
  }
  end_resolution(e, actions);
  clear_liveness(e);
  e.previous_unicast.reset();
  e.negative_until.reset();
  e.misses = 0;
  e.next_liveness = now + settings_.liveness_interval;
  e.renewal_due_seen = false;
  e.binding = binding;
  schedule(e);
}

void Cache::rebind(Time now, Entry& e, Actions& actions) {
  e.previous_unicast = e.binding->unicast;
  e.binding.reset();
  clear_liveness(e);
  e.misses = 0;
  e.renewal_due_seen = false;
  // A renewal in progress is abandoned: answers to its probes are not reused.
  end_resolution(e, actions);
  start_resolution(now, e, actions);
}

bool Cache::in_use(Time now, const Entry& e) const noexcept {
  return now - e.last_used <= settings_.idle_timeout;
}

Time Cache::renew_at(const BindingInfo& b) noexcept {
  return b.bound_at + (b.expires - b.bound_at) * 3 / 4;
}

bool Cache::advance(Time now, Lru::iterator it, Actions& actions) {
  Entry& e = *it;
  // A loop: polled late, a resolution catches up with its schedule (and may end).
  while (e.resolution && e.resolution->deadline <= now) {
    if (e.resolution->attempts < settings_.probe_attempts) {
      next_attempt(now, e, actions);
    } else {
      ++stats_.resolutions_failed;
      end_resolution(e, actions);
      // A failed renewal leaves the binding usable until it expires.
      if (!e.binding) {
        e.negative_until = now + settings_.negative_ttl;
        e.previous_unicast.reset();
      }
    }
  }
  if (e.binding && e.binding->expires <= now) {
    e.previous_unicast = e.binding->unicast;
    e.binding.reset();
    clear_liveness(e);
    e.misses = 0;
  }
  if (e.binding) {
    if (!e.renewal_due_seen && now >= renew_at(*e.binding)) {
      e.renewal_due_seen = true;
      if (in_use(now, e) && !e.resolution) {
        ++stats_.renewals;
        ++e.renewals;
        start_resolution(now, e, actions);
      }
    }
    if (now >= e.next_liveness) {
      e.next_liveness = now + settings_.liveness_interval;
      if (!in_use(now, e)) {
        clear_liveness(e);
        e.misses = 0;
      } else {
        if (e.liveness_nonce) {
          ++e.misses;
          clear_liveness(e);
        }
        if (e.misses >= settings_.liveness_misses) {
          ++stats_.liveness_failures;
          rebind(now, e, actions);
        } else {
          const auto nonce = fresh_nonce(e.anycast, /*liveness=*/true);
          e.liveness_nonce = nonce;
          ++stats_.liveness_probes;
          actions.push_back(SendLiveness{.anycast = e.anycast,
                                         .unicast = e.binding->unicast,
                                         .nonce = nonce,
                                         .learned_by = e.binding->learned_by});
        }
      }
    }
  }
  if (e.negative_until && *e.negative_until <= now) e.negative_until.reset();
  if (!e.binding && !e.resolution && !e.negative_until) {
    erase(it, actions);
    return false;
  }
  schedule(e);
  return true;
}

void Cache::schedule(Entry& e) {
  Time t = Time::max();
  if (e.resolution) t = std::min(t, e.resolution->deadline);
  if (e.binding) {
    t = std::min({t, e.binding->expires, e.next_liveness});
    if (!e.renewal_due_seen) t = std::min(t, renew_at(*e.binding));
  }
  if (e.negative_until) t = std::min(t, *e.negative_until);
  if (t == e.scheduled) return;
  e.scheduled = t;
  if (t != Time::max()) wakeups_.emplace(t, e.anycast);
}

EntryView Cache::view(const Entry& e) const {
  EntryView v;
  v.anycast = e.anycast;
  v.binding = e.binding;
  v.renewing = e.binding && e.resolution;
  v.renewals = e.renewals;
  v.rebinds = e.rebinds;
  v.liveness_misses = e.misses;
  v.last_used = e.last_used;
  if (e.binding) {
    v.state = EntryState::Bound;
    v.expires = e.binding->expires;
  } else if (e.resolution) {
    v.state = EntryState::Resolving;
    v.expires = e.resolution->deadline +
                settings_.probe_timeout * (settings_.probe_attempts - e.resolution->attempts);
  } else {
    v.state = EntryState::Negative;
    v.expires = e.negative_until.value_or(Time{});
  }
  return v;
}

}  // namespace anycast_resolver
