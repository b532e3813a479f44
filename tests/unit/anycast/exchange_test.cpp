// The whole anycast return-routability exchange between a Member and a Correspondent in memory,
// and the attacks it must stop: forged, replayed and stale Binding Updates, wrong cookies,
// unsolicited answers and exhausted tables.
#include <catch2/catch.hpp>

#include "anycast/correspondent.hpp"
#include "anycast/member.hpp"
#include "rr_fixture.hpp"

using namespace anycast;
using namespace anycast_test;
using namespace std::chrono_literals;

TEST_CASE("exchange: probe with B ends in a verified 16 s binding and an accepted BA",
          "[anycast][exchange]") {
  Rr rr;
  // 1. The probe: an answer from the unicast address, HoTI from the anycast, CoTI from the
  // unicast, all to the client's endpoint.
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  REQUIRE(out->size() == 3);
  const auto& answer_out = (*out)[0];
  const auto& hoti_out = (*out)[1];
  const auto& coti_out = (*out)[2];
  CHECK(answer_out.source == kUnicast);
  CHECK(answer_out.destination == kClientEndpoint);
  const auto answer = body<ProbeAnswer>(answer_out);
  CHECK(answer.flags == kProbeFlagBinding);
  CHECK(answer.anycast == kAnycast);
  CHECK(answer.unicast == kUnicast);
  CHECK(answer.nonce == probe(true).nonce);
  CHECK(answer.ttl_seconds == 16);
  CHECK(hoti_out.source == kAnycast);
  CHECK(hoti_out.destination == kClientEndpoint);
  CHECK(coti_out.source == kUnicast);
  CHECK(coti_out.destination == kClientEndpoint);

  // 2. The client answers statelessly: HoT to the anycast address, CoT to the unicast.
  const auto hoti = body<Hoti>(hoti_out);
  const auto coti = body<Coti>(coti_out);
  const auto hot_out = rr.client.on_hoti(at(10ms), hoti, member_endpoint(hoti_out), kClient);
  const auto cot_out = rr.client.on_coti(at(10ms), coti, member_endpoint(coti_out), kClient);
  CHECK(hot_out.source == kClient);
  CHECK(hot_out.destination == Endpoint{kAnycast, kMemberPort});
  CHECK(cot_out.destination == Endpoint{kUnicast, kMemberPort});
  const auto hot = body<Hot>(hot_out);
  const auto cot = body<Cot>(cot_out);
  CHECK(hot.cookie == hoti.cookie);
  CHECK(cot.cookie == coti.cookie);

  // 3. Both tokens in: the member sends the BU from its unicast address.
  auto after_hot = rr.member.on_hot(at(20ms), hot, kClientEndpoint, kAnycast);
  REQUIRE(after_hot);
  CHECK(after_hot->empty());
  auto after_cot = rr.member.on_cot(at(20ms), cot, kClientEndpoint, kUnicast);
  REQUIRE(after_cot);
  REQUIRE(after_cot->size() == 1);
  const auto& bu_out = (*after_cot)[0];
  CHECK(bu_out.source == kUnicast);
  CHECK(bu_out.destination == kClientEndpoint);
  const auto bu_parsed = parsed(bu_out);
  CHECK(bu_parsed.message.flags == kFlagEquivalent);
  const auto bu = std::get<BindingUpdate>(bu_parsed.message.body);
  CHECK(bu.flags == kBuFlagAck);
  CHECK(bu.lifetime == 1);
  CHECK(bu.home_address == kAnycast);
  CHECK(bu.nonce_indices == NonceIndices{hot.nonce_index, cot.nonce_index});
  CHECK(rr.member.stats().binding_updates_sent == 1);

  // 4. The client verifies it: anycast -> unicast for 16 s, and an authenticated BA.
  auto outcome = rr.deliver_bu(at(30ms), bu_out);
  REQUIRE(outcome);
  CHECK_FALSE(outcome->rejected);
  REQUIRE(outcome->binding);
  CHECK(outcome->binding->anycast == kAnycast);
  CHECK(outcome->binding->unicast == kUnicast);
  CHECK(outcome->binding->sequence == bu.sequence);
  CHECK(outcome->binding->expires == at(30ms) + 16s);
  REQUIRE(outcome->ack);
  CHECK(outcome->ack->source == kClient);
  CHECK(outcome->ack->destination == Endpoint{kUnicast, kMemberPort});
  const auto ba = body<BindingAck>(*outcome->ack);
  CHECK(ba.status == BaStatus::Accepted);
  CHECK(ba.sequence == bu.sequence);
  CHECK(ba.lifetime == 4);  // 16 s in RFC 6275's 4 s units
  CHECK(ba.authenticator);

  // 5. The member accepts the BA and the exchange is over.
  CHECK(rr.member.pending() == 1);
  CHECK(rr.deliver_ba(at(40ms), *outcome->ack));
  CHECK(rr.member.pending() == 0);
  CHECK(rr.member.stats().binding_acks_accepted == 1);
  CHECK(rr.member.stats().exchanges_started == 1);
  CHECK(rr.member.stats().probes_answered == 1);
}

TEST_CASE("exchange: a renewal binds again with a newer sequence number", "[anycast][exchange]") {
  Rr rr;
  const auto first = rr.bu(kT0, kT0, kT0);
  auto one = rr.deliver_bu(kT0, first);
  REQUIRE(one);
  REQUIRE(one->binding);
  REQUIRE(rr.deliver_ba(kT0, *one->ack));
  const auto second = rr.bu(at(12s), at(12s), at(12s));
  auto two = rr.deliver_bu(at(12s), second);
  REQUIRE(two);
  REQUIRE(two->binding);
  CHECK(sequence_newer(two->binding->sequence, one->binding->sequence));
  CHECK(two->binding->expires == at(28s));
}

TEST_CASE("exchange: a BU with a forged authenticator is BadAuthenticator, silently",
          "[anycast][exchange]") {
  Rr rr;
  const auto real = rr.bu(kT0, kT0, kT0);
  auto bu = body<BindingUpdate>(real);

  // An attacker who guessed the care-of token wrong: Kbm from a wrong token.
  Outgoing forged = real;
  forged.bytes = encode({kFlagEquivalent, bu});
  const KeygenToken wrong{1, 2, 3, 4, 5, 6, 7, 8};
  REQUIRE(seal(forged.bytes, binding_key(wrong, wrong), kUnicast, kClient));
  CHECK(rr.deliver_bu(kT0, forged).error() == Errc::BadAuthenticator);

  // The real BU with one byte of the authenticated data changed (here the home address).
  auto other_home = bu;
  other_home.home_address = kOtherAnycast;
  CHECK(rr.deliver_bu(kT0, altered(real, kFlagEquivalent, other_home)).error() ==
        Errc::BadAuthenticator);
  // The real BU from another care-of address, or verified for another correspondent.
  Outgoing moved = real;
  moved.source = addr("2001:db8:666::1");
  CHECK(rr.deliver_bu(kT0, moved).error() == Errc::BadAuthenticator);
  CHECK(rr.deliver_bu(kT0, real, addr("2001:db8:c::2")).error() == Errc::BadAuthenticator);
  // The untouched BU still verifies.
  auto ok = rr.deliver_bu(kT0, real);
  REQUIRE(ok);
  CHECK(ok->binding);
}

TEST_CASE("exchange: a replayed BU is Replay with BA status 135 and the member resyncs",
          "[anycast][exchange]") {
  Rr rr;
  const auto bu_out = rr.bu(kT0, kT0, kT0);
  const auto sequence = body<BindingUpdate>(bu_out).sequence;
  auto first = rr.deliver_bu(kT0, bu_out);
  REQUIRE(first);
  REQUIRE(first->binding);

  auto replay = rr.deliver_bu(at(1s), bu_out);
  REQUIRE(replay);
  CHECK_FALSE(replay->binding);
  CHECK(replay->rejected == Errc::Replay);
  REQUIRE(replay->ack);
  const auto ba = body<BindingAck>(*replay->ack);
  CHECK(ba.status == BaStatus::SequenceOutOfWindow);
  CHECK(ba.sequence == sequence);  // the last accepted one
  CHECK(ba.authenticator);         // the nonces are still valid, so it is authenticated

  // The member takes the 135 as the end of its exchange.
  CHECK(rr.deliver_ba(at(1s), *replay->ack).error() == Errc::Replay);
  CHECK(rr.member.pending() == 0);
}

TEST_CASE("exchange: a member whose sequence numbers went back resyncs from BA 135",
          "[anycast][exchange]") {
  Rr rr;
  auto first = rr.deliver_bu(kT0, rr.bu(kT0, kT0, kT0));
  REQUIRE(first);
  REQUIRE(first->binding);
  // A restarted member with the same random source: it starts at the same sequence number.
  rr.member = Member{member_settings(), counter_random(1)};
  const auto again = rr.bu(at(1s), at(1s), at(1s));
  auto rejected = rr.deliver_bu(at(1s), again);
  REQUIRE(rejected);
  CHECK(rejected->rejected == Errc::Replay);
  CHECK(rr.deliver_ba(at(1s), *rejected->ack).error() == Errc::Replay);
  // The next BU continues after the client's last accepted number and is accepted.
  auto resynced = rr.deliver_bu(at(2s), rr.bu(at(2s), at(2s), at(2s)));
  REQUIRE(resynced);
  REQUIRE(resynced->binding);
  CHECK(resynced->binding->sequence == static_cast<std::uint16_t>(first->binding->sequence + 1));
}

TEST_CASE("exchange: stale nonce indices are StaleNonce with BA status 136, 137, 138",
          "[anycast][exchange]") {
  auto settings = member_settings();
  settings.pending_lifetime = 1h;  // the member waits; the client's nonces do not
  struct Row {
    std::chrono::seconds hoti, coti;
    BaStatus status;
  };
  // The client makes a new nonce every 30 s; at 240 s the one from 0 s is gone.
  const std::vector<Row> rows{
      {0s, 30s, BaStatus::ExpiredHomeNonce},
      {30s, 0s, BaStatus::ExpiredCareOfNonce},
      {0s, 0s, BaStatus::ExpiredNonces},
  };
  for (const auto& row : rows) {
    INFO("HoTI at " << row.hoti.count() << " s, CoTI at " << row.coti.count() << " s");
    Rr rr{settings};
    // The nonce for time 30 s exists only if someone asked for one then.
    const auto bu_out = rr.bu(kT0, kT0 + row.hoti, kT0 + row.coti);
    auto outcome = rr.deliver_bu(kT0 + 240s, bu_out);
    REQUIRE(outcome);
    CHECK_FALSE(outcome->binding);
    CHECK(outcome->rejected == Errc::StaleNonce);
    REQUIRE(outcome->ack);
    const auto ba = body<BindingAck>(*outcome->ack);
    CHECK(ba.status == row.status);
    CHECK(ba.sequence == body<BindingUpdate>(bu_out).sequence);
    CHECK_FALSE(ba.authenticator);
    CHECK(rr.deliver_ba(kT0 + 240s, *outcome->ack).error() == Errc::StaleNonce);
    CHECK(rr.member.pending() == 0);
  }
}

TEST_CASE("exchange: the same BU one moment before 240 s still verifies", "[anycast][exchange]") {
  Rr rr;
  const auto bu_out = rr.bu(kT0, kT0, kT0);
  auto outcome = rr.deliver_bu(kT0 + 239s, bu_out);
  REQUIRE(outcome);
  CHECK(outcome->binding);
}

TEST_CASE("exchange: a HoT with the wrong cookie is CookieMismatch", "[anycast][exchange]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  auto hoti = body<Hoti>((*out)[1]);
  hoti.cookie[0] ^= 0xff;
  const auto hot_out = rr.client.on_hoti(kT0, hoti, member_endpoint((*out)[1]), kClient);
  CHECK(rr.member.on_hot(kT0, body<Hot>(hot_out), kClientEndpoint, kAnycast).error() ==
        Errc::CookieMismatch);
  auto coti = body<Coti>((*out)[2]);
  coti.cookie[7] ^= 0x01;
  const auto cot_out = rr.client.on_coti(kT0, coti, member_endpoint((*out)[2]), kClient);
  CHECK(rr.member.on_cot(kT0, body<Cot>(cot_out), kClientEndpoint, kUnicast).error() ==
        Errc::CookieMismatch);
  // A HoT carrying the CoTI's cookie does not match either.
  Hot swapped = body<Hot>(hot_out);
  swapped.cookie = body<Coti>((*out)[2]).cookie;
  CHECK(rr.member.on_hot(kT0, swapped, kClientEndpoint, kAnycast).error() == Errc::CookieMismatch);
}

TEST_CASE("exchange: HoT, CoT and BA nobody asked for are NoPending", "[anycast][exchange]") {
  Rr rr;
  const Hot hot{1, Cookie{1, 2, 3, 4, 5, 6, 7, 8}, KeygenToken{}};
  const Cot cot{1, Cookie{1, 2, 3, 4, 5, 6, 7, 8}, KeygenToken{}};
  CHECK(rr.member.on_hot(kT0, hot, kClientEndpoint, kAnycast).error() == Errc::NoPending);
  CHECK(rr.member.on_cot(kT0, cot, kClientEndpoint, kUnicast).error() == Errc::NoPending);
  BindingAck ba;
  ba.sequence = 1;
  ba.authenticator = Authenticator{};
  CHECK(rr.member.on_binding_ack(kT0, ba, {}, kClientEndpoint, kUnicast).error() ==
        Errc::NoPending);
  // An exchange with another client does not make these pending for this one.
  REQUIRE(rr.member.on_probe(kT0, probe(true), {addr("2001:db8:c::9"), 1}, kAnycast));
  CHECK(rr.member.on_hot(kT0, hot, kClientEndpoint, kAnycast).error() == Errc::NoPending);
}

TEST_CASE("exchange: a probe to an address that is not the member's is NotAnycast",
          "[anycast][exchange]") {
  Rr rr;
  CHECK(rr.member.on_probe(kT0, probe(true), kClientEndpoint, addr("2001:db8:a::3")).error() ==
        Errc::NotAnycast);
  CHECK(rr.member.on_probe(kT0, probe(false), kClientEndpoint, kClient).error() ==
        Errc::NotAnycast);
  CHECK(rr.member.pending() == 0);
}

TEST_CASE("exchange: a full exchange table is TableFull until exchanges expire",
          "[anycast][exchange]") {
  auto settings = member_settings();
  settings.max_pending = 2;
  Rr rr{settings};
  REQUIRE(rr.member.on_probe(kT0, probe(true), {addr("2001:db8:c::1"), 1}, kAnycast));
  REQUIRE(rr.member.on_probe(kT0, probe(true), {addr("2001:db8:c::2"), 1}, kAnycast));
  CHECK(rr.member.on_probe(at(1s), probe(true), {addr("2001:db8:c::3"), 1}, kAnycast).error() ==
        Errc::TableFull);
  // Probes without B and retries of a running exchange need no new entry.
  CHECK(rr.member.on_probe(at(1s), probe(false), {addr("2001:db8:c::3"), 1}, kAnycast));
  CHECK(rr.member.on_probe(at(1s), probe(true), {addr("2001:db8:c::1"), 1}, kAnycast));
  CHECK(rr.member.pending() == 2);
  // After pending_lifetime (4 s) the old ones make room.
  CHECK(rr.member.on_probe(at(4s), probe(true), {addr("2001:db8:c::3"), 1}, kAnycast));
  CHECK(rr.member.pending() == 1);
}

TEST_CASE("exchange: a BU without E is BadFlags", "[anycast][exchange]") {
  Rr rr;
  const auto real = rr.bu(kT0, kT0, kT0);
  const auto bu = body<BindingUpdate>(real);
  CHECK(rr.deliver_bu(kT0, altered(real, 0, bu)).error() == Errc::BadFlags);
  auto home = bu;
  home.flags |= kBuFlagHome;
  CHECK(rr.deliver_bu(kT0, altered(real, kFlagEquivalent, home)).error() == Errc::BadFlags);
}

TEST_CASE("exchange: a BU with lifetime other than 1 is BadLifetime", "[anycast][exchange]") {
  Rr rr;
  const auto real = rr.bu(kT0, kT0, kT0);
  for (const int lifetime : {0, 2, 4, 0xffff}) {
    INFO("lifetime " << lifetime);
    auto bu = body<BindingUpdate>(real);
    bu.lifetime = static_cast<std::uint16_t>(lifetime);
    CHECK(rr.deliver_bu(kT0, altered(real, kFlagEquivalent, bu)).error() == Errc::BadLifetime);
  }
}
