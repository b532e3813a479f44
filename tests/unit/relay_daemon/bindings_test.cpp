// Tests for bindings.hpp: relay mode's binding table on the relay (requests checked, lifetimes,
// ids, limits, ownership, expiry, the filtering decision).
#include "bindings.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>
#include <variant>
#include <vector>

using relay_daemon::BindingTable;
using relay_daemon::Direction;
namespace ctl = relay::control;
using namespace std::chrono_literals;

namespace {

relay::Endpoint ep(const char* text) {
  return relay::Endpoint::parse(text).value();
}

const auto kRelay4 = ep("203.0.113.1:0").address;
const auto kRelay6 = ep("[2001:db8:30::1]:0").address;
const auto kClient = ep("192.0.2.2:4444");  // where the client's SATP packets come from
const auto kPeer = ep("203.0.113.2:7000");

relay_daemon::RelayModeConfig config() {
  return relay_daemon::RelayModeConfig{.addresses = {kRelay4, kRelay6},
                                       .port_first = 40000,
                                       .port_last = 40009,
                                       .max_bindings = 4,
                                       .max_bindings_per_client = 2,
                                       .max_lifetime = 600};
}

BindingTable::Clock::time_point at(int seconds) {
  return BindingTable::Clock::time_point{} + std::chrono::seconds{seconds};
}

ctl::Allocate allocate(relay::Endpoint peer = kPeer, std::uint16_t client_port = 6000,
                       std::uint32_t lifetime = 0) {
  return ctl::Allocate{.lifetime = lifetime,
                       .peer = peer,
                       .client_address = std::nullopt,
                       .client_port = client_port};
}

// Allocates through the table as the relay does (check, limits, a candidate, insert).
relay_daemon::Binding* add(BindingTable& t, std::uint16_t mux, std::uint32_t request,
                           const ctl::Allocate& a = allocate(), int now = 0) {
  auto r = t.check(mux, true, kClient, request, a);
  REQUIRE(r);
  REQUIRE_FALSE(t.full(mux));
  const auto relay = t.candidate(*r);
  REQUIRE(relay);
  auto b = t.insert(*r, *relay, at(now));
  REQUIRE(b);
  return *b;
}

ctl::Code refusal(const BindingTable& t, std::uint16_t mux, bool allowed, const ctl::Allocate& a) {
  auto r = t.check(mux, allowed, kClient, 1, a);
  REQUIRE_FALSE(r);
  return r.error().code;
}

}  // namespace

TEST_CASE("bindings: the client endpoint is the SATP source address with the client port",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  auto r = t.check(1, true, kClient, 7, allocate());
  REQUIRE(r);
  CHECK(r->client == ep("192.0.2.2:6000"));
  CHECK(r->peer == kPeer);
  auto a = allocate();
  a.client_address = ep("192.0.2.9:0").address;
  r = t.check(1, true, kClient, 7, a);
  REQUIRE(r);
  CHECK(r->client == ep("192.0.2.9:6000"));
}

TEST_CASE("bindings: the relay endpoint is a relay address of the peer's family in the range",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  const auto* b4 = add(t, 1, 1);
  CHECK(b4->relay.address == kRelay4);
  CHECK(b4->relay.port >= 40000);
  CHECK(b4->relay.port <= 40009);
  auto a6 = allocate(ep("[2001:db8:40::2]:7000"));
  a6.client_address = ep("[2001:db8:10::2]:0").address;
  const auto* b6 = add(t, 1, 2, a6);
  CHECK(b6->relay.address == kRelay6);
}

TEST_CASE("bindings: requests that cannot be served are refused with their reason",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  CHECK(refusal(t, 1, false, allocate()) == ctl::Code::NotAllowed);
  // An IPv4 client and an IPv6 peer: one socket cannot serve both.
  const auto mixed = t.check(1, true, kClient, 1, allocate(ep("[2001:db8:40::2]:7000")));
  REQUIRE_FALSE(mixed);
  CHECK(mixed.error().code == ctl::Code::BadRequest);
  CHECK(mixed.error().reason.find("one family") != std::string::npos);
  CHECK(refusal(t, 1, true, allocate(kPeer, 0)) == ctl::Code::BadRequest);
  CHECK(refusal(t, 1, true, allocate(ep("0.0.0.0:7000"))) == ctl::Code::BadRequest);
  CHECK(refusal(t, 1, true, allocate(ep("192.0.2.2:6000"))) == ctl::Code::BadRequest);
  // No binding may feed another: a relay address is neither peer nor client.
  CHECK(refusal(t, 1, true, allocate(ep("203.0.113.1:40001"))) == ctl::Code::NotAllowed);
  auto spoofed = allocate();
  spoofed.client_address = kRelay4;
  CHECK(refusal(t, 1, true, spoofed) == ctl::Code::NotAllowed);
  // No relay address of the family.
  auto only4 = config();
  only4.addresses = {kRelay4};
  BindingTable t4{only4, 1};
  auto a6 = allocate(ep("[2001:db8:40::2]:7000"));
  a6.client_address = ep("[2001:db8:10::2]:0").address;
  CHECK(refusal(t4, 1, true, a6) == ctl::Code::Unavailable);
}

TEST_CASE("bindings: the lifetime granted is at most max_lifetime and 0 asks for it",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  CHECK(t.grant(0) == 600);
  CHECK(t.grant(30) == 30);
  CHECK(t.grant(601) == 600);
  const auto* b = add(t, 1, 1, allocate(kPeer, 6000, 100000), 5);
  CHECK(b->lifetime == 600);
  CHECK(b->expires == at(605));
}

TEST_CASE("bindings: ids are random unique and not zero and follow the seed",
          "[relay_daemon][bindings]") {
  auto c = config();
  c.max_bindings = 64;
  c.max_bindings_per_client = 64;
  c.port_last = 40099;
  const auto ids = [&](std::uint64_t seed) {
    BindingTable t{c, seed};
    std::vector<std::uint32_t> out;
    for (std::uint32_t i = 0; i < 64; ++i)
      out.push_back(add(t, 1, i, allocate(kPeer, static_cast<std::uint16_t>(6000 + i)))->id);
    return out;
  };
  const auto a = ids(1);
  CHECK(std::set<std::uint32_t>(a.begin(), a.end()).size() == a.size());
  CHECK(std::find(a.begin(), a.end(), 0u) == a.end());
  CHECK(ids(1) == a);
  CHECK(ids(2) != a);
}

TEST_CASE("bindings: the table is bounded in total and per client", "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  add(t, 1, 1);
  add(t, 1, 2, allocate(kPeer, 6001));
  CHECK(t.full(1)->code == ctl::Code::Exhausted);
  CHECK_FALSE(t.full(2));
  add(t, 2, 1);
  add(t, 3, 1);
  CHECK(t.full(4)->code == ctl::Code::Exhausted);
  CHECK(t.bindings().size() == 4);
}

TEST_CASE("bindings: candidates skip held ports and run out with the range",
          "[relay_daemon][bindings]") {
  auto c = config();
  c.addresses = {kRelay4};
  c.max_bindings = 100;
  c.max_bindings_per_client = 100;
  BindingTable t{c, 1};
  std::set<relay::Endpoint> relays;
  for (std::uint32_t i = 0; i < 10; ++i) {
    auto r = t.check(1, true, kClient, i, allocate(kPeer, static_cast<std::uint16_t>(6000 + i)));
    REQUIRE(r);
    // Random probes may miss the last free ports; the table holds all ten only when found.
    std::optional<relay::Endpoint> e;
    for (int k = 0; k < 100 && !e; ++k) e = t.candidate(*r);
    REQUIRE(e);
    CHECK_FALSE(relays.contains(*e));
    relays.insert(*e);
    REQUIRE(t.insert(*r, *e, at(0)));
  }
  auto r = t.check(1, true, kClient, 99, allocate(kPeer, 7000));
  REQUIRE(r);
  CHECK_FALSE(t.candidate(*r));
}

TEST_CASE("bindings: a retransmitted Allocate finds the binding it made",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  const auto* b = add(t, 1, 42);
  const auto id = b->id;
  auto again = t.check(1, true, kClient, 42, allocate());
  REQUIRE(again);
  REQUIRE(t.retransmitted(*again));
  CHECK(t.retransmitted(*again)->id == id);
  // Another request id, another connection or another peer is a new request.
  CHECK_FALSE(t.retransmitted(*t.check(1, true, kClient, 43, allocate())));
  CHECK_FALSE(t.retransmitted(*t.check(2, true, kClient, 42, allocate())));
  CHECK_FALSE(t.retransmitted(*t.check(1, true, kClient, 42, allocate(ep("203.0.113.3:7000")))));
}

TEST_CASE("bindings: refresh and release only for the connection that holds the binding",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  const auto id = add(t, 1, 1)->id;
  CHECK(t.refresh(2, id, 30, at(10)).error().code == ctl::Code::UnknownBinding);
  CHECK(t.refresh(1, id + 1, 30, at(10)).error().code == ctl::Code::UnknownBinding);
  const auto refreshed = t.refresh(1, id, 30, at(10));
  REQUIRE(refreshed);
  CHECK((*refreshed)->expires == at(40));
  CHECK(t.release(2, id).error().code == ctl::Code::UnknownBinding);
  CHECK(t.release(1, id));
  CHECK(t.release(1, id).error().code == ctl::Code::UnknownBinding);
  CHECK(t.bindings().empty());
  CHECK(t.size_of(1) == 0);
  CHECK(t.totals().released == 1);
}

TEST_CASE("bindings: expiry is strictly after the lifetime and a gone connection loses its own",
          "[relay_daemon][bindings]") {
  BindingTable t{config(), 1};
  const auto a = add(t, 1, 1, allocate(kPeer, 6000, 30))->id;
  const auto b = add(t, 2, 1, allocate(kPeer, 6000, 60))->id;
  const auto all = [](std::uint16_t) { return true; };
  CHECK(t.expire(at(30), all).empty());
  CHECK(t.expire(at(31), all) == std::vector<std::uint32_t>{a});
  CHECK(t.expire(at(32), [](std::uint16_t mux) { return mux != 2; }) ==
        std::vector<std::uint32_t>{b});
  CHECK(t.bindings().empty());
  CHECK(t.totals().expired == 1);
}

TEST_CASE("bindings: datagrams go client to peer and peer to client and all else is filtered",
          "[relay_daemon][bindings]") {
  relay_daemon::Binding b;
  b.client = ep("192.0.2.2:6000");
  b.peer = kPeer;
  b.relay = ep("203.0.113.1:40001");
  CHECK(direction(b, ep("192.0.2.2:6000")) == Direction::ToPeer);
  CHECK(direction(b, kPeer) == Direction::ToClient);
  CHECK(direction(b, ep("192.0.2.2:6001")) == Direction::Filtered);
  CHECK(direction(b, ep("203.0.113.3:7000")) == Direction::Filtered);
  CHECK(direction(b, ep("203.0.113.2:7001")) == Direction::Filtered);
}
