// Tests for anycast/correspondent.hpp: stateless HoT/CoT, the order of the BU checks, sequence
// records and their bounds.
#include "anycast/correspondent.hpp"

#include <catch2/catch.hpp>

#include "rr_fixture.hpp"

using namespace anycast;
using namespace anycast_test;
using namespace std::chrono_literals;

namespace {

const Endpoint kHome{kAnycast, kMemberPort};
const Endpoint kCareOf{kUnicast, kMemberPort};
const Cookie kCookie{9, 8, 7, 6, 5, 4, 3, 2};

}  // namespace

TEST_CASE("correspondent: HoT and CoT are stateless and echo the cookie",
          "[anycast][correspondent]") {
  Correspondent c{{}, kT0, counter_random(50)};
  const auto hot_out = c.on_hoti(kT0, Hoti{kCookie}, kHome, kClient);
  CHECK(hot_out.source == kClient);
  CHECK(hot_out.destination == kHome);
  const auto hot = body<Hot>(hot_out);
  CHECK(hot.cookie == kCookie);
  // The same question within the nonce interval gets the same answer.
  CHECK(c.on_hoti(at(29s), Hoti{kCookie}, kHome, kClient).bytes == hot_out.bytes);
  // The token depends on the claimed home address and on which test it is.
  CHECK(body<Hot>(c.on_hoti(kT0, Hoti{kCookie}, kCareOf, kClient)).token != hot.token);
  const auto cot = body<Cot>(c.on_coti(kT0, Coti{kCookie}, kHome, kClient));
  CHECK(cot.nonce_index == hot.nonce_index);
  CHECK(cot.token != hot.token);
  // A new nonce after 30 s: another index, another token.
  const auto next = body<Hot>(c.on_hoti(at(30s), Hoti{kCookie}, kHome, kClient));
  CHECK(next.nonce_index == static_cast<std::uint16_t>(hot.nonce_index + 1));
  CHECK(next.token != hot.token);
}

TEST_CASE("correspondent: two node keys give different tokens", "[anycast][correspondent]") {
  Correspondent a{{}, kT0, counter_random(1)};
  Correspondent b{{}, kT0, counter_random(2)};
  CHECK(body<Hot>(a.on_hoti(kT0, Hoti{kCookie}, kHome, kClient)).token !=
        body<Hot>(b.on_hoti(kT0, Hoti{kCookie}, kHome, kClient)).token);
}

TEST_CASE("correspondent: BU checks come in section 9.5.1 order", "[anycast][correspondent]") {
  Rr rr;
  const auto real = rr.bu(kT0, kT0, kT0);
  const auto good = body<BindingUpdate>(real);
  struct Row {
    std::string name;
    std::uint8_t flags;
    BindingUpdate bu;
    Errc expected;
  };
  std::vector<Row> rows;
  const auto add = [&](std::string name, std::uint8_t flags, auto change, Errc e) {
    auto bu = good;
    change(bu);
    rows.push_back({std::move(name), flags, bu, e});
  };
  add(
      "no E", 0, [](BindingUpdate&) {}, Errc::BadFlags);
  add(
      "no E, no options, lifetime 2", 0,
      [](BindingUpdate& b) {
        b.home_address.reset();
        b.lifetime = 2;
      },
      Errc::BadFlags);
  add(
      "H", kFlagEquivalent, [](BindingUpdate& b) { b.flags |= kBuFlagHome; }, Errc::BadFlags);
  add(
      "no home address", kFlagEquivalent, [](BindingUpdate& b) { b.home_address.reset(); },
      Errc::MissingOption);
  add(
      "no nonce indices", kFlagEquivalent, [](BindingUpdate& b) { b.nonce_indices.reset(); },
      Errc::MissingOption);
  add(
      "no authenticator, lifetime 2", kFlagEquivalent,
      [](BindingUpdate& b) {
        b.authenticator.reset();
        b.lifetime = 2;
      },
      Errc::MissingOption);
  add(
      "lifetime 0 (no deregistration for anycast)", kFlagEquivalent,
      [](BindingUpdate& b) { b.lifetime = 0; }, Errc::BadLifetime);
  add(
      "lifetime 2, stale indices", kFlagEquivalent,
      [](BindingUpdate& b) {
        b.lifetime = 2;
        b.nonce_indices->home ^= 0x8000;
      },
      Errc::BadLifetime);
  add(
      "sequence changed under the authenticator", kFlagEquivalent,
      [](BindingUpdate& b) { b.sequence ^= 1; }, Errc::BadAuthenticator);
  add(
      "A cleared under the authenticator", kFlagEquivalent, [](BindingUpdate& b) { b.flags = 0; },
      Errc::BadAuthenticator);
  for (const auto& row : rows) {
    INFO(row.name);
    CHECK(rr.deliver_bu(kT0, altered(real, row.flags, row.bu)).error() == row.expected);
  }
  // An unknown index is stale before the authenticator is looked at.
  auto unknown = good;
  unknown.nonce_indices->care_of ^= 0x8000;
  auto stale = rr.deliver_bu(kT0, altered(real, kFlagEquivalent, unknown));
  REQUIRE(stale);
  CHECK(stale->rejected == Errc::StaleNonce);
  CHECK(body<BindingAck>(*stale->ack).status == BaStatus::ExpiredCareOfNonce);
}

TEST_CASE("correspondent: a verified BU without A binds and sends nothing",
          "[anycast][correspondent]") {
  Rr rr;
  const auto real = rr.bu(kT0, kT0, kT0);
  auto bu = body<BindingUpdate>(real);
  bu.flags = 0;
  bu.authenticator = Authenticator{};
  Outgoing resealed = real;
  resealed.bytes = encode({kFlagEquivalent, bu});
  // Re-seal with the real Kbm, recomputed the way the member does.
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kOtherAnycast);
  REQUIRE(out);
  const auto hot =
      body<Hot>(rr.client.on_hoti(kT0, body<Hoti>((*out)[1]), member_endpoint((*out)[1]), kClient));
  const auto cot =
      body<Cot>(rr.client.on_coti(kT0, body<Coti>((*out)[2]), member_endpoint((*out)[2]), kClient));
  bu.home_address = kOtherAnycast;
  bu.nonce_indices = NonceIndices{hot.nonce_index, cot.nonce_index};
  resealed.bytes = encode({kFlagEquivalent, bu});
  REQUIRE(seal(resealed.bytes, binding_key(hot.token, cot.token), kUnicast, kClient));
  auto outcome = rr.deliver_bu(kT0, resealed);
  REQUIRE(outcome);
  REQUIRE(outcome->binding);
  CHECK(outcome->binding->anycast == kOtherAnycast);
  CHECK_FALSE(outcome->ack);
  CHECK_FALSE(outcome->rejected);
}

TEST_CASE("correspondent: sequence records are forgotten after 240 s", "[anycast][correspondent]") {
  auto settings = member_settings();
  settings.pending_lifetime = 1h;
  Rr rr{settings};
  auto first = rr.deliver_bu(kT0, rr.bu(kT0, kT0, kT0));
  REQUIRE(first);
  REQUIRE(first->binding);
  // A member restarted with the same sequence start, long after: fresh nonces, and the old
  // record no longer counts.
  rr.member = Member{settings, counter_random(1)};
  auto later = rr.deliver_bu(at(300s), rr.bu(at(300s), at(300s), at(300s)));
  REQUIRE(later);
  REQUIRE(later->binding);
  CHECK(later->binding->sequence == first->binding->sequence);
}

TEST_CASE("correspondent: the sequence table is bounded, the oldest record goes first",
          "[anycast][correspondent]") {
  CorrespondentSettings cs;
  cs.max_sequence_records = 2;
  Rr rr{member_settings(), cs};
  // Three exchanges (three care-of ports do not matter: records are per anycast and unicast),
  // so use three anycast addresses of one member.
  auto s = member_settings();
  s.anycast = {kAnycast, kOtherAnycast, addr("2001:db8:a::3")};
  rr.member = Member{s, counter_random(1)};
  const auto bu1 = rr.bu(kT0, kT0, kT0, kClientEndpoint, s.anycast[0]);
  REQUIRE(rr.deliver_bu(kT0, bu1)->binding);
  const auto bu2 = rr.bu(at(1s), at(1s), at(1s), kClientEndpoint, s.anycast[1]);
  REQUIRE(rr.deliver_bu(at(1s), bu2)->binding);
  CHECK(rr.deliver_bu(at(1s), bu1)->rejected == Errc::Replay);
  const auto bu3 = rr.bu(at(2s), at(2s), at(2s), kClientEndpoint, s.anycast[2]);
  REQUIRE(rr.deliver_bu(at(2s), bu3)->binding);
  // The record of bu1 was evicted to make room: its replay is no longer recognised, while the
  // newer records still are.
  CHECK(rr.deliver_bu(at(2s), bu1)->binding);
  CHECK(rr.deliver_bu(at(2s), bu3)->rejected == Errc::Replay);
}

TEST_CASE("correspondent: expire drops sequence records older than 240 s",
          "[anycast][correspondent]") {
  auto settings = member_settings();
  settings.pending_lifetime = 1h;
  Rr rr{settings};
  const auto bu_out = rr.bu(kT0, at(100s), at(100s));
  REQUIRE(rr.deliver_bu(at(100s), bu_out)->binding);
  rr.client.expire(at(339s));
  CHECK(rr.deliver_bu(at(339s), bu_out)->rejected == Errc::Replay);
}
