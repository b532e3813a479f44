// Tests for anycast/member.hpp: probe answers, liveness, the HoTI/CoTI pair and its resend rule,
// the BU the member builds, BA handling and the bounds on exchanges.
#include "anycast/member.hpp"

#include <catch2/catch.hpp>
#include <numeric>

#include "rr_fixture.hpp"

using namespace anycast;
using namespace anycast_test;
using namespace std::chrono_literals;

TEST_CASE("member: a probe without B gets one answer from the unicast address",
          "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(false, 7), kClientEndpoint, kOtherAnycast);
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  const auto& o = (*out)[0];
  CHECK(o.source == kUnicast);
  CHECK(o.destination == kClientEndpoint);
  const auto a = body<ProbeAnswer>(o);
  CHECK(a.flags == 0);
  CHECK(a.anycast == kOtherAnycast);
  CHECK(a.unicast == kUnicast);
  CHECK(a.nonce == probe(false, 7).nonce);
  CHECK(rr.member.pending() == 0);
  CHECK(rr.member.stats().probes_answered == 1);
  CHECK(rr.member.stats().exchanges_started == 0);
}

TEST_CASE("member: a liveness probe to the unicast address is answered as itself",
          "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(false), kClientEndpoint, kUnicast);
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  const auto a = body<ProbeAnswer>((*out)[0]);
  CHECK(a.anycast == kUnicast);
  CHECK(a.unicast == kUnicast);
  CHECK((*out)[0].source == kUnicast);
  // B there would bind the unicast address to itself.
  CHECK(rr.member.on_probe(kT0, probe(true), kClientEndpoint, kUnicast).error() == Errc::BadFlags);
  CHECK(rr.member.pending() == 0);
  CHECK(rr.member.stats().probes_answered == 0);
}

TEST_CASE("member: the answers to a probe never outweigh the probe", "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  const auto total =
      std::accumulate(out->begin(), out->end(), std::size_t{0},
                      [](std::size_t n, const Outgoing& o) { return n + o.bytes.size(); });
  CHECK(total <= kProbeMinSize);
}

TEST_CASE("member: every exchange has fresh cookies", "[anycast][member]") {
  Rr rr;
  auto a = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  auto b = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kOtherAnycast);
  REQUIRE(a);
  REQUIRE(b);
  const auto cookies = std::vector<Cookie>{body<Hoti>((*a)[1]).cookie, body<Coti>((*a)[2]).cookie,
                                           body<Hoti>((*b)[1]).cookie, body<Coti>((*b)[2]).cookie};
  for (std::size_t i = 0; i < cookies.size(); ++i)
    for (std::size_t j = i + 1; j < cookies.size(); ++j) CHECK(cookies[i] != cookies[j]);
  CHECK(rr.member.pending() == 2);
  CHECK(rr.member.stats().exchanges_started == 2);
}

TEST_CASE("member: a retried probe resends HoTI and CoTI with the same cookies, rate-limited",
          "[anycast][member]") {
  Rr rr;
  auto first = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(first);
  // Within resend_interval (250 ms): the answer only.
  auto soon = rr.member.on_probe(at(249ms), probe(true), kClientEndpoint, kAnycast);
  REQUIRE(soon);
  CHECK(soon->size() == 1);
  auto later = rr.member.on_probe(at(250ms), probe(true), kClientEndpoint, kAnycast);
  REQUIRE(later);
  REQUIRE(later->size() == 3);
  CHECK((*later)[1].bytes == (*first)[1].bytes);
  CHECK((*later)[2].bytes == (*first)[2].bytes);
  CHECK(rr.member.pending() == 1);
  CHECK(rr.member.stats().exchanges_started == 1);
  // Another port of the same client is another exchange.
  auto other = rr.member.on_probe(at(250ms), probe(true), {kClient, 40001}, kAnycast);
  REQUIRE(other);
  CHECK(other->size() == 3);
  CHECK(rr.member.pending() == 2);
}

TEST_CASE("member: a retried probe after a lost BU leads to a new BU", "[anycast][member]") {
  Rr rr;
  const auto lost = rr.bu(kT0, kT0, kT0);
  // The client never saw the BU and probes again; the member starts over with the same cookies.
  const auto again = rr.bu(at(1s), at(1s), at(1s));
  CHECK(sequence_newer(body<BindingUpdate>(again).sequence, body<BindingUpdate>(lost).sequence));
  auto outcome = rr.deliver_bu(at(1s), again);
  REQUIRE(outcome);
  REQUIRE(outcome->binding);
  CHECK(rr.deliver_ba(at(1s), *outcome->ack));
  CHECK(rr.member.stats().exchanges_started == 1);
  CHECK(rr.member.stats().binding_updates_sent == 2);
}

TEST_CASE("member: HoT goes to an anycast address and CoT to the unicast", "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  const auto hot_out =
      rr.client.on_hoti(kT0, body<Hoti>((*out)[1]), member_endpoint((*out)[1]), kClient);
  const auto cot_out =
      rr.client.on_coti(kT0, body<Coti>((*out)[2]), member_endpoint((*out)[2]), kClient);
  CHECK(rr.member.on_hot(kT0, body<Hot>(hot_out), kClientEndpoint, kUnicast).error() ==
        Errc::NotAnycast);
  CHECK(rr.member.on_cot(kT0, body<Cot>(cot_out), kClientEndpoint, kAnycast).error() ==
        Errc::NotAnycast);
  // A HoT for the other anycast address of this member matches no exchange.
  CHECK(rr.member.on_hot(kT0, body<Hot>(hot_out), kClientEndpoint, kOtherAnycast).error() ==
        Errc::NoPending);
  // CoT first, then HoT: the BU follows the second one either way; duplicates add nothing.
  auto c = rr.member.on_cot(kT0, body<Cot>(cot_out), kClientEndpoint, kUnicast);
  REQUIRE(c);
  CHECK(c->empty());
  auto h = rr.member.on_hot(kT0, body<Hot>(hot_out), kClientEndpoint, kAnycast);
  REQUIRE(h);
  CHECK(h->size() == 1);
  auto dup = rr.member.on_hot(kT0, body<Hot>(hot_out), kClientEndpoint, kAnycast);
  REQUIRE(dup);
  CHECK(dup->empty());
}

TEST_CASE("member: an exchange not finished within pending_lifetime is gone", "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  const auto hot_out =
      rr.client.on_hoti(kT0, body<Hoti>((*out)[1]), member_endpoint((*out)[1]), kClient);
  CHECK(rr.member.on_hot(at(4s), body<Hot>(hot_out), kClientEndpoint, kAnycast).error() ==
        Errc::NoPending);
  CHECK(rr.member.pending() == 1);
  rr.member.expire(at(3999ms));
  CHECK(rr.member.pending() == 1);
  rr.member.expire(at(4s));
  CHECK(rr.member.pending() == 0);
}

TEST_CASE("member: a BA must verify with the exchange's Kbm", "[anycast][member]") {
  Rr rr;
  const auto bu_out = rr.bu(kT0, kT0, kT0);
  auto outcome = rr.deliver_bu(kT0, bu_out);
  REQUIRE(outcome);
  REQUIRE(outcome->ack);
  const auto good = *outcome->ack;

  // Tampered: another lifetime under the same authenticator.
  auto ba = body<BindingAck>(good);
  ba.lifetime = 100;
  Outgoing tampered = good;
  tampered.bytes = encode({0, ba});
  CHECK(rr.deliver_ba(kT0, tampered).error() == Errc::BadAuthenticator);
  // From another client address: not our exchange.
  CHECK(rr.deliver_ba(kT0, good, {addr("2001:db8:c::7"), 40000}).error() == Errc::NoPending);
  // An accepting BA without the authenticator.
  ba = body<BindingAck>(good);
  ba.authenticator.reset();
  Outgoing bare = good;
  bare.bytes = encode({0, ba});
  CHECK(rr.deliver_ba(kT0, bare).error() == Errc::MissingOption);
  // To an address that is not the care-of address.
  Outgoing elsewhere = good;
  elsewhere.destination.address = kAnycast;
  CHECK(rr.deliver_ba(kT0, elsewhere).error() == Errc::NoPending);
  CHECK(rr.member.pending() == 1);
  CHECK(rr.deliver_ba(kT0, good));
  CHECK(rr.member.pending() == 0);
  // Once accepted, a second copy finds nothing.
  CHECK(rr.deliver_ba(kT0, good).error() == Errc::NoPending);
}

TEST_CASE("member: the BU is sealed over care-of, correspondent and the datagram",
          "[anycast][member]") {
  Rr rr;
  auto out = rr.member.on_probe(kT0, probe(true), kClientEndpoint, kAnycast);
  REQUIRE(out);
  const auto hot_out =
      rr.client.on_hoti(kT0, body<Hoti>((*out)[1]), member_endpoint((*out)[1]), kClient);
  const auto cot_out =
      rr.client.on_coti(kT0, body<Coti>((*out)[2]), member_endpoint((*out)[2]), kClient);
  const auto hot = body<Hot>(hot_out);
  const auto cot = body<Cot>(cot_out);
  REQUIRE(rr.member.on_hot(kT0, hot, kClientEndpoint, kAnycast));
  auto bu_out = rr.member.on_cot(kT0, cot, kClientEndpoint, kUnicast);
  REQUIRE(bu_out);
  REQUIRE(bu_out->size() == 1);
  const auto p = parsed((*bu_out)[0]);
  const auto kbm = binding_key(hot.token, cot.token);
  CHECK(std::get<BindingUpdate>(p.message.body).authenticator ==
        authenticator(kbm, kUnicast, kClient, p.authenticated));
}
