// Tests for anycast_resolver/cache.hpp with an injected clock and counting nonces: what a query
// is answered, resolutions and their attempts, probe answers and echo replies, the secure
// policy, renewal at 75%, idle entries, liveness, Op Failed, LRU eviction and the waiter bound.
#include "anycast_resolver/cache.hpp"

#include <catch2/catch.hpp>

#include <vector>

using anycast::Errc;
using anycast::query::Status;
using anycast_resolver::Actions;
using anycast_resolver::Cache;
using anycast_resolver::CacheSettings;
using anycast_resolver::EntryState;
using anycast_resolver::LearnedBy;
using anycast_resolver::Policy;
using anycast_resolver::SendLiveness;
using anycast_resolver::SendProbe;
using anycast_resolver::Taken;
using anycast_resolver::Time;
using anycast_resolver::WakeWaiters;
using namespace std::chrono_literals;

namespace {

core::Ipv6Address ip6(const char* text) {
  return core::Ipv6Address::parse(text).value();
}

const core::Ipv6Address kAny = ip6("2001:db8:a::1");
const core::Ipv6Address kAny2 = ip6("2001:db8:a::2");
const core::Ipv6Address kM1 = ip6("2001:db8:1::2");
const core::Ipv6Address kM2 = ip6("2001:db8:2::2");
const Time kT0 = Time{} + 1000h;

// Nonces 1, 2, 3, ... in the first byte: distinct and predictable.
anycast::Random counting() {
  return [n = std::uint8_t{0}](std::span<std::uint8_t> out) mutable {
    for (auto& b : out) b = 0;
    out[0] = ++n;
  };
}

// Probe policy, generous liveness and idle times unless a test says otherwise.
CacheSettings settings() {
  CacheSettings s;
  s.prefixes = {core::Ipv6Prefix::parse("2001:db8:a::/48").value()};
  s.policy = Policy::Probe;
  s.answer_ttl = 1000ms;
  s.probe_timeout = 250ms;
  s.probe_attempts = 3;
  s.negative_ttl = 30s;
  s.probe_ttl = 16s;
  s.idle_timeout = 60s;
  s.liveness_interval = 60s;
  s.liveness_misses = 3;
  return s;
}

template <typename T>
std::vector<T> only(const Actions& actions) {
  std::vector<T> out;
  for (const auto& a : actions)
    if (const auto* x = std::get_if<T>(&a)) out.push_back(*x);
  return out;
}

anycast::ProbeAnswer answer(const anycast::Nonce128& nonce, const core::Ipv6Address& anycast,
                            const core::Ipv6Address& unicast, std::uint16_t ttl = 16) {
  return anycast::ProbeAnswer{
      .flags = 0, .ttl_seconds = ttl, .nonce = nonce, .anycast = anycast, .unicast = unicast};
}

// A query that misses, then the member's answer to its first probe: bound at `now`.
void bind_via_probe(Cache& cache, Time now, const core::Ipv6Address& anycast,
                    const core::Ipv6Address& unicast, std::uint16_t ttl = 16) {
  Actions actions;
  const auto d = cache.query(now, anycast, actions);
  REQUIRE(d.resolving);
  const auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  REQUIRE(cache.on_probe_answer(now, answer(probes[0].nonce, anycast, unicast, ttl), unicast,
                                actions) == Taken::Bound);
}

}  // namespace

TEST_CASE("resolver cache: addresses outside the prefixes pass through without a probe",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  const auto d = cache.query(kT0, ip6("2001:db8:b::1"), actions);
  CHECK(d.answer.status == Status::PassThrough);
  CHECK(d.answer.ttl_ms == 1000);
  CHECK_FALSE(d.resolving);
  CHECK(actions.empty());
  CHECK(cache.size() == 0);
  CHECK(cache.stats().pass_through == 1);
  CHECK(cache.stats().misses == 0);
}

TEST_CASE("resolver cache: non-global addresses pass through even with probe_all",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.probe_all = true;
  s.prefixes = {core::Ipv6Prefix::parse("::/0").value()};
  Cache cache{s, counting()};
  for (const char* text : {"::ffff:192.0.2.1", "fe80::1", "::1", "ff02::1", "ff0e::1", "::"}) {
    INFO(text);
    Actions actions;
    CHECK_FALSE(cache.resolvable(ip6(text)));
    CHECK(cache.query(kT0, ip6(text), actions).answer.status == Status::PassThrough);
    CHECK(actions.empty());
  }
  CHECK(cache.resolvable(ip6("2001:db8:77::1")));
  CHECK(cache.resolvable(ip6("fd00::1")));
  CHECK(cache.size() == 0);
}

TEST_CASE("resolver cache: a miss starts one resolution and answers Pending",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  auto d = cache.query(kT0, kAny, actions);
  CHECK(d.answer.status == Status::Pending);
  CHECK(d.answer.ttl_ms == 0);
  CHECK(d.resolving);
  auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  CHECK(probes[0].anycast == kAny);
  CHECK(probes[0].attempt == 1);
  CHECK_FALSE(probes[0].renewal);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);

  actions.clear();
  d = cache.query(kT0 + 10ms, kAny, actions);
  CHECK(d.answer.status == Status::Pending);
  CHECK(d.resolving);
  CHECK(actions.empty());  // one resolution at a time
  CHECK(cache.stats().misses == 2);
  CHECK(cache.resolving() == 1);
  CHECK(cache.next_wakeup() == kT0 + 250ms);
}

TEST_CASE("resolver cache: a probe answer binds for min(probe_ttl, its ttl) and queries hit",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1, /*ttl=*/10);
  CHECK(cache.stats().answers_accepted == 1);
  CHECK(cache.resolving() == 0);
  const auto v = cache.find(kAny);
  REQUIRE(v);
  CHECK(v->state == EntryState::Bound);
  CHECK(v->binding->unicast == kM1);
  CHECK_FALSE(v->binding->verified);
  CHECK(v->binding->learned_by == LearnedBy::ProbeAnswer);
  CHECK(v->expires == kT0 + 10s);

  Actions actions;
  auto d = cache.query(kT0 + 1s, kAny, actions);
  CHECK(d.answer.status == Status::Unicast);
  CHECK(d.answer.unicast == kM1.bytes());
  CHECK(d.answer.ttl_ms == 1000);
  // Near the end, the ttl is what is left.
  d = cache.query(kT0 + 9s + 600ms, kAny, actions);
  CHECK(d.answer.status == Status::Unicast);
  CHECK(d.answer.ttl_ms == 400);
  CHECK(cache.stats().hits == 2);

  // A longer ttl in the answer is capped by probe_ttl.
  Cache capped{settings(), counting()};
  bind_via_probe(capped, kT0, kAny, kM1, /*ttl=*/3600);
  CHECK(capped.find(kAny)->expires == kT0 + 16s);
}

TEST_CASE("resolver cache: every attempt's nonce stays acceptable until the resolution ends",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  const auto first = only<SendProbe>(actions).at(0).nonce;
  actions.clear();
  cache.poll(kT0 + 250ms, actions);
  const auto second = only<SendProbe>(actions);
  REQUIRE(second.size() == 1);
  CHECK(second[0].attempt == 2);
  CHECK(second[0].nonce != first);
  // The answer to the first attempt arrives late: still accepted.
  CHECK(cache.on_probe_answer(kT0 + 300ms, answer(first, kAny, kM1), kM1, actions) == Taken::Bound);
  // Once bound, the resolution's nonces are gone.
  CHECK(cache.on_probe_answer(kT0 + 310ms, answer(second[0].nonce, kAny, kM2), kM2, actions)
            .error() == Errc::Unsolicited);
  CHECK(cache.find(kAny)->binding->unicast == kM1);
}

TEST_CASE("resolver cache: bad probe answers are dropped with their reason",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  const auto nonce = only<SendProbe>(actions).at(0).nonce;
  anycast::Nonce128 unknown{};
  unknown.fill(0xee);
  // Unknown nonce.
  CHECK(cache.on_probe_answer(kT0, answer(unknown, kAny, kM1), kM1, actions).error() ==
        Errc::Unsolicited);
  // Our nonce, but for another anycast address.
  CHECK(cache.on_probe_answer(kT0, answer(nonce, kAny2, kM1), kM1, actions).error() ==
        Errc::Unsolicited);
  // The claimed unicast is not the IP source.
  CHECK(cache.on_probe_answer(kT0, answer(nonce, kAny, kM1), kM2, actions).error() ==
        Errc::AddressMismatch);
  // The "unicast" is the anycast address itself: nothing learned.
  CHECK(cache.on_probe_answer(kT0, answer(nonce, kAny, kAny), kAny, actions).error() ==
        Errc::AddressMismatch);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);
  CHECK(cache.stats().answers_accepted == 0);
}

TEST_CASE("resolver cache: after probe_attempts attempts the entry is negative for negative_ttl",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  auto id = cache.add_waiter(kAny);
  REQUIRE(id);
  actions.clear();
  cache.poll(kT0 + 250ms, actions);
  cache.poll(kT0 + 500ms, actions);
  CHECK(only<SendProbe>(actions).size() == 2);
  CHECK(only<WakeWaiters>(actions).empty());
  actions.clear();
  cache.poll(kT0 + 750ms, actions);
  CHECK(only<SendProbe>(actions).empty());
  const auto woken = only<WakeWaiters>(actions);
  REQUIRE(woken.size() == 1);
  CHECK(woken[0].waiters == std::vector{*id});
  CHECK(cache.waiters() == 0);
  CHECK(cache.stats().resolutions_failed == 1);
  CHECK(cache.find(kAny)->state == EntryState::Negative);
  CHECK(cache.settle(kT0 + 750ms, kAny).status == Status::Pending);

  auto d = cache.query(kT0 + 1s, kAny, actions);
  CHECK(d.answer.status == Status::PassThrough);
  CHECK(d.answer.ttl_ms == 1000);
  d = cache.query(kT0 + 30s + 500ms, kAny, actions);
  CHECK(d.answer.status == Status::PassThrough);
  CHECK(d.answer.ttl_ms == 250);  // what is left of the negative period
  // Once it ends, the next query resolves again.
  actions.clear();
  cache.poll(kT0 + 30s + 750ms, actions);
  CHECK(cache.size() == 0);
  d = cache.query(kT0 + 31s, kAny, actions);
  CHECK(d.resolving);
  CHECK(only<SendProbe>(actions).size() == 1);
}

TEST_CASE("resolver cache: a binding renews at 75% of its lifetime while in use",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1);  // 16 s
  Actions actions;
  cache.query(kT0 + 5s, kAny, actions);  // in use
  cache.poll(kT0 + 11s + 999ms, actions);
  CHECK(actions.empty());
  cache.poll(kT0 + 12s, actions);
  auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  CHECK(probes[0].renewal);
  CHECK(cache.stats().renewals == 1);
  auto v = cache.find(kAny);
  CHECK(v->state == EntryState::Bound);
  CHECK(v->renewing);
  // Still usable while renewing.
  CHECK(cache.query(kT0 + 12s + 100ms, kAny, actions).answer.status == Status::Unicast);
  // The renewal finds another member: a rebind.
  CHECK(cache.on_probe_answer(kT0 + 12s + 200ms, answer(probes[0].nonce, kAny, kM2), kM2,
                              actions) == Taken::Bound);
  v = cache.find(kAny);
  CHECK(v->binding->unicast == kM2);
  CHECK(v->expires == kT0 + 28s + 200ms);
  CHECK(v->renewals == 1);
  CHECK(v->rebinds == 1);
  CHECK(cache.stats().rebinds == 1);
}

TEST_CASE("resolver cache: a renewal that finds the same member is no rebind",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  cache.poll(kT0 + 12s, actions);
  const auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  REQUIRE(cache.on_probe_answer(kT0 + 12s, answer(probes[0].nonce, kAny, kM1), kM1, actions) ==
          Taken::Bound);
  CHECK(cache.stats().rebinds == 0);
}

TEST_CASE("resolver cache: a failed renewal leaves the binding usable until it expires",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  for (std::chrono::milliseconds t : {12000ms, 12250ms, 12500ms, 12750ms})
    cache.poll(kT0 + t, actions);
  CHECK(only<SendProbe>(actions).size() == 3);
  CHECK(cache.stats().resolutions_failed == 1);
  CHECK(cache.find(kAny)->state == EntryState::Bound);
  CHECK(cache.settle(kT0 + 15s, kAny).status == Status::Unicast);
  cache.poll(kT0 + 16s, actions);
  CHECK(cache.size() == 0);
}

TEST_CASE("resolver cache: an entry not asked for within idle_timeout is not renewed",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.idle_timeout = 5s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  cache.poll(kT0 + 12s, actions);
  CHECK(actions.empty());
  CHECK(cache.stats().renewals == 0);
  cache.poll(kT0 + 16s, actions);
  CHECK(actions.empty());
  CHECK(cache.size() == 0);  // expired silently
}

TEST_CASE("resolver cache: a binding used again after its idle renewal time renews on the hit",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.idle_timeout = 5s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  cache.poll(kT0 + 12s, actions);
  CHECK(actions.empty());
  const auto d = cache.query(kT0 + 13s, kAny, actions);
  CHECK(d.answer.status == Status::Unicast);
  const auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  CHECK(probes[0].renewal);
  CHECK(cache.stats().renewals == 1);
}

TEST_CASE("resolver cache: liveness probes go to the unicast while in use and answers reset",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  for (int i = 1; i <= 5; ++i) {
    Actions actions;
    cache.poll(kT0 + std::chrono::seconds{i}, actions);
    const auto probes = only<SendLiveness>(actions);
    REQUIRE(probes.size() == 1);
    CHECK(probes[0].unicast == kM1);
    CHECK(probes[0].learned_by == LearnedBy::ProbeAnswer);
    // The member answers a probe to its unicast with anycast = unicast.
    CHECK(cache.on_probe_answer(kT0 + std::chrono::seconds{i} + 5ms,
                                answer(probes[0].nonce, kM1, kM1), kM1,
                                actions) == Taken::Liveness);
  }
  CHECK(cache.stats().liveness_probes == 5);
  CHECK(cache.stats().liveness_failures == 0);
  CHECK(cache.find(kAny)->liveness_misses == 0);
}

TEST_CASE("resolver cache: a liveness answer from another address is AddressMismatch",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  cache.poll(kT0 + 1s, actions);
  const auto nonce = only<SendLiveness>(actions).at(0).nonce;
  CHECK(cache.on_probe_answer(kT0 + 1s, answer(nonce, kM2, kM2), kM2, actions).error() ==
        Errc::AddressMismatch);
}

TEST_CASE("resolver cache: liveness fails after liveness_misses misses and resolves again",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  s.liveness_misses = 3;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  for (int i = 1; i <= 3; ++i) cache.poll(kT0 + std::chrono::seconds{i}, actions);
  CHECK(only<SendLiveness>(actions).size() == 3);
  CHECK(cache.find(kAny)->liveness_misses == 2);
  CHECK(cache.find(kAny)->state == EntryState::Bound);
  actions.clear();
  cache.poll(kT0 + 4s, actions);
  CHECK(cache.stats().liveness_failures == 1);
  CHECK(only<SendLiveness>(actions).empty());
  const auto probes = only<SendProbe>(actions);
  REQUIRE(probes.size() == 1);
  CHECK(probes[0].anycast == kAny);
  CHECK_FALSE(probes[0].renewal);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);
  CHECK(cache.query(kT0 + 4s, kAny, actions).answer.status == Status::Pending);
  // The other member answers: a rebind.
  CHECK(cache.on_probe_answer(kT0 + 4s + 10ms, answer(probes[0].nonce, kAny, kM2), kM2, actions) ==
        Taken::Bound);
  CHECK(cache.stats().rebinds == 1);
}

TEST_CASE("resolver cache: an idle binding gets no liveness probes", "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  s.idle_timeout = 2s;
  s.probe_ttl = 60s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1, 60);
  Actions actions;
  for (int i = 1; i <= 10; ++i) cache.poll(kT0 + std::chrono::seconds{i}, actions);
  CHECK(only<SendLiveness>(actions).size() == 2);  // at 1 s and 2 s, then idle
  CHECK(cache.stats().liveness_failures == 0);
  CHECK(cache.find(kAny)->state == EntryState::Bound);
}

TEST_CASE("resolver cache: Op Failed for the bound unicast drops the binding and resolves again",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  CHECK(cache.failed(kT0 + 1s, kAny, kM2, actions).error() == Errc::Unsolicited);
  CHECK(cache.failed(kT0 + 1s, kAny2, kM1, actions).error() == Errc::Unsolicited);
  CHECK(actions.empty());
  CHECK(cache.failed(kT0 + 1s, kAny, kM1, actions).has_value());
  CHECK(cache.stats().failed_reports == 1);
  CHECK(only<SendProbe>(actions).size() == 1);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);
}

TEST_CASE("resolver cache: echo replies bind from a unicast source, not from the anycast one",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  const auto nonce = only<SendProbe>(actions).at(0).nonce;
  CHECK(cache.on_echo_reply(kT0, nonce, kAny, actions) == Taken::FromAnycast);
  CHECK(cache.stats().icmp_from_anycast == 1);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);
  CHECK(cache.on_echo_reply(kT0, nonce, kM1, actions) == Taken::Bound);
  CHECK(cache.stats().icmp_answers_accepted == 1);
  const auto v = cache.find(kAny);
  CHECK(v->binding->unicast == kM1);
  CHECK(v->binding->learned_by == LearnedBy::EchoReply);
  CHECK(v->expires == kT0 + 16s);
  anycast::Nonce128 unknown{};
  unknown.fill(0xee);
  CHECK(cache.on_echo_reply(kT0, unknown, kM1, actions).error() == Errc::Unsolicited);
}

TEST_CASE("resolver cache: an echo-learned binding is kept alive by echo",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  Cache cache{s, counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  REQUIRE(cache.on_echo_reply(kT0, only<SendProbe>(actions).at(0).nonce, kM1, actions) ==
          Taken::Bound);
  actions.clear();
  cache.poll(kT0 + 1s, actions);
  const auto live = only<SendLiveness>(actions);
  REQUIRE(live.size() == 1);
  CHECK(live[0].learned_by == LearnedBy::EchoReply);
  CHECK(cache.on_echo_reply(kT0 + 1s, live[0].nonce, kM1, actions) == Taken::Liveness);
}

TEST_CASE("resolver cache: the secure policy binds only on a verified Binding Update",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.policy = Policy::Secure;
  Cache cache{s, counting()};
  Actions actions;
  CHECK_FALSE(cache.expects_coti());
  CHECK_FALSE(cache.expects_hoti(kAny));
  cache.query(kT0, kAny, actions);
  const auto nonce = only<SendProbe>(actions).at(0).nonce;
  CHECK(cache.expects_hoti(kAny));
  CHECK_FALSE(cache.expects_hoti(kAny2));
  CHECK(cache.expects_coti());

  // A probe answer, even with our nonce, never binds; nor does an echo reply.
  CHECK(cache.on_probe_answer(kT0, answer(nonce, kAny, kM1), kM1, actions) == Taken::IgnoredSecure);
  CHECK(cache.on_echo_reply(kT0, nonce, kM1, actions) == Taken::IgnoredSecure);
  CHECK(cache.stats().answers_ignored_secure == 2);
  CHECK(cache.find(kAny)->state == EntryState::Resolving);

  // A verified binding for another address is unsolicited.
  const anycast::Binding other{
      .anycast = kAny2, .unicast = kM1, .sequence = 7, .expires = kT0 + 16s};
  CHECK(cache.on_verified_binding(kT0, other, actions).error() == Errc::Unsolicited);

  const anycast::Binding good{.anycast = kAny, .unicast = kM1, .sequence = 7, .expires = kT0 + 16s};
  CHECK(cache.on_verified_binding(kT0 + 20ms, good, actions).has_value());
  CHECK(cache.stats().bindings_verified == 1);
  const auto v = cache.find(kAny);
  CHECK(v->binding->verified);
  CHECK(v->binding->sequence == 7);
  CHECK(v->binding->learned_by == LearnedBy::BindingUpdate);
  CHECK(v->expires == kT0 + 16s);
  CHECK_FALSE(cache.expects_coti());
  CHECK_FALSE(cache.expects_hoti(kAny));
  CHECK(cache.query(kT0 + 1s, kAny, actions).answer.unicast == kM1.bytes());
}

TEST_CASE("resolver cache: the least recently used entry without a resolution is evicted",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.max_entries = 2;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, ip6("2001:db8:a::10"), kM1);
  bind_via_probe(cache, kT0 + 1s, ip6("2001:db8:a::11"), kM1);
  Actions actions;
  cache.query(kT0 + 2s, ip6("2001:db8:a::10"), actions);  // ::10 is now the more recent
  cache.query(kT0 + 3s, ip6("2001:db8:a::12"), actions);
  CHECK(cache.size() == 2);
  CHECK(cache.find(ip6("2001:db8:a::10")));
  CHECK_FALSE(cache.find(ip6("2001:db8:a::11")));
  CHECK(cache.find(ip6("2001:db8:a::12"))->state == EntryState::Resolving);

  // ::12 resolving, ::10 bound: ::10 goes even though it was used more recently.
  cache.query(kT0 + 4s, ip6("2001:db8:a::13"), actions);
  CHECK_FALSE(cache.find(ip6("2001:db8:a::10")));
  CHECK(cache.resolving() == 2);
  // Every entry resolving: a miss cannot start another.
  actions.clear();
  const auto d = cache.query(kT0 + 5s, ip6("2001:db8:a::14"), actions);
  CHECK(d.answer.status == Status::Pending);
  CHECK_FALSE(d.resolving);
  CHECK(d.dropped == Errc::TableFull);
  CHECK(actions.empty());
  CHECK(cache.size() == 2);
}

TEST_CASE("resolver cache: waiters are bounded and woken when the resolution binds",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.max_waiters = 2;
  Cache cache{s, counting()};
  Actions actions;
  CHECK_FALSE(cache.add_waiter(kAny));  // nothing to wait for
  cache.query(kT0, kAny, actions);
  const auto nonce = only<SendProbe>(actions).at(0).nonce;
  const auto a = cache.add_waiter(kAny);
  const auto b = cache.add_waiter(kAny);
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(cache.add_waiter(kAny));
  CHECK(cache.waiters() == 2);
  cache.remove_waiter(*a);  // gave up
  CHECK(cache.waiters() == 1);
  CHECK(cache.add_waiter(kAny));
  const auto c = cache.add_waiter(kAny);  // the bound again
  CHECK_FALSE(c);

  actions.clear();
  REQUIRE(cache.on_probe_answer(kT0 + 5ms, answer(nonce, kAny, kM1), kM1, actions) == Taken::Bound);
  const auto woken = only<WakeWaiters>(actions);
  REQUIRE(woken.size() == 1);
  CHECK(woken[0].waiters.size() == 2);
  CHECK(cache.waiters() == 0);
  const auto settled = cache.settle(kT0 + 5ms, kAny);
  CHECK(settled.status == Status::Unicast);
  CHECK(settled.unicast == kM1.bytes());
}

TEST_CASE("resolver cache: flush drops every entry and wakes the waiters",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  Actions actions;
  cache.query(kT0, kAny2, actions);
  REQUIRE(cache.add_waiter(kAny2));
  actions.clear();
  CHECK(cache.flush(actions) == 2);
  CHECK(cache.size() == 0);
  CHECK(cache.waiters() == 0);
  CHECK(cache.resolving() == 0);
  CHECK(only<WakeWaiters>(actions).size() == 1);
  CHECK_FALSE(cache.next_wakeup());
}

TEST_CASE("resolver cache: the wait budget is min(wait_ms, probe_timeout * attempts)",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  CHECK(cache.wait_budget(300) == 300ms);
  CHECK(cache.wait_budget(5000) == 750ms);
  CHECK(cache.wait_budget(0) == 0ms);
}

TEST_CASE("resolver cache: a binding in use stays bound through an hour of renewals and liveness",
          "[anycast_resolver][cache]") {
  auto s = settings();
  s.liveness_interval = 1s;
  Cache cache{s, counting()};
  bind_via_probe(cache, kT0, kAny, kM1);
  // Queries and answers for an hour of simulated time.
  Time t = kT0;
  for (int i = 0; i < 3600 * 4; ++i) {
    t += 250ms;
    Actions actions;
    cache.query(t, kAny, actions);
    cache.poll(t, actions);
    Actions more;
    for (const auto& a : actions) {
      if (const auto* p = std::get_if<SendProbe>(&a))
        (void)cache.on_probe_answer(t, answer(p->nonce, kAny, kM1), kM1, more);
      else if (const auto* l = std::get_if<SendLiveness>(&a))
        (void)cache.on_probe_answer(t, answer(l->nonce, kM1, kM1), kM1, more);
    }
  }
  CHECK(cache.find(kAny)->state == EntryState::Bound);
  CHECK(cache.stats().liveness_failures == 0);
  CHECK(cache.stats().renewals > 200);
  REQUIRE(cache.next_wakeup());
  CHECK(*cache.next_wakeup() > t);
}

TEST_CASE("resolver cache: a resolution polled late catches up with its schedule",
          "[anycast_resolver][cache]") {
  Cache cache{settings(), counting()};
  Actions actions;
  cache.query(kT0, kAny, actions);
  REQUIRE(cache.add_waiter(kAny));
  actions.clear();
  // Attempts are due at 250 ms and 500 ms, the end at 750 ms: all of it has passed.
  cache.poll(kT0 + 1s, actions);
  CHECK(only<SendProbe>(actions).size() == 2);
  CHECK(only<WakeWaiters>(actions).size() == 1);
  CHECK(cache.stats().resolutions_failed == 1);
  CHECK(cache.find(kAny)->state == EntryState::Negative);
  CHECK(cache.find(kAny)->expires == kT0 + 31s);
}
