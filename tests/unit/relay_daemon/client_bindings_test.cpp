// Tests for client_bindings.hpp: relay mode on the client (retransmission under one request id
// with a bounded backoff, refresh at half the lifetime, refusal, a forgotten binding, release).
#include "client_bindings.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <variant>
#include <vector>

using relay_daemon::ClientBindings;
namespace ctl = relay::control;

namespace {

relay::Endpoint ep(const char* text) {
  return relay::Endpoint::parse(text).value();
}

const auto kPeer = ep("203.0.113.2:7000");

ClientBindings::Clock::time_point at(int seconds) {
  return ClientBindings::Clock::time_point{} + std::chrono::seconds{seconds};
}

ClientBindings client() {
  return ClientBindings{{relay_daemon::BindingConfig{.peer = kPeer, .client_port = 6000}}, 100};
}

}  // namespace

TEST_CASE("client bindings: Allocate is retransmitted under its id with a bounded backoff",
          "[relay_daemon][bindings]") {
  auto c = client();
  std::vector<int> sent_at;
  for (int s = 0; s <= 200; ++s)
    for (const auto& m : c.due(at(s))) {
      CHECK(m.request == 100);
      const auto* a = std::get_if<ctl::Allocate>(&m.body);
      REQUIRE(a);
      CHECK(a->peer == kPeer);
      CHECK(a->client_port == 6000);
      CHECK_FALSE(a->client_address);
      sent_at.push_back(s);
    }
  // 1, 2, 4, 8, 16 s, then every 30 s.
  CHECK(sent_at == std::vector<int>{0, 1, 3, 7, 15, 31, 61, 91, 121, 151, 181});
}

TEST_CASE("client bindings: an answer is held and refreshed at half its lifetime",
          "[relay_daemon][bindings]") {
  auto c = client();
  REQUIRE(c.due(at(0)).size() == 1);
  CHECK_FALSE(c.answer({999, ctl::Allocated{7, 60, ep("203.0.113.1:40001")}}, at(0)));
  REQUIRE(c.answer({100, ctl::Allocated{7, 60, ep("203.0.113.1:40001")}}, at(0)));
  CHECK(c.entries()[0].state == ClientBindings::State::Allocated);
  CHECK(c.entries()[0].relay == ep("203.0.113.1:40001"));
  CHECK(c.due(at(29)).empty());
  const auto refresh = c.due(at(30));
  REQUIRE(refresh.size() == 1);
  CHECK(refresh[0].request == 101);
  CHECK(refresh[0].body == ctl::Body{ctl::Refresh{7, 60}});
  REQUIRE(c.answer({101, ctl::Refreshed{7, 60}}, at(31)));
  CHECK(c.entries()[0].state == ClientBindings::State::Allocated);
  CHECK(c.due(at(60)).empty());
  CHECK(c.due(at(61)).size() == 1);
  // A duplicated answer is not taken twice.
  CHECK_FALSE(c.answer({101, ctl::Refreshed{7, 60}}, at(61)));
}

TEST_CASE("client bindings: a refusal waits and a forgotten binding is allocated again",
          "[relay_daemon][bindings]") {
  auto c = client();
  REQUIRE(c.due(at(0)).size() == 1);
  REQUIRE(c.answer({100, ctl::Error{ctl::Code::Exhausted, "full"}}, at(0)));
  CHECK(c.entries()[0].state == ClientBindings::State::Refused);
  CHECK(c.entries()[0].error == "full");
  CHECK(c.due(at(29)).empty());
  auto again = c.due(at(30));
  REQUIRE(again.size() == 1);
  CHECK(std::holds_alternative<ctl::Allocate>(again[0].body));
  REQUIRE(c.answer({again[0].request, ctl::Allocated{7, 20, ep("203.0.113.1:40001")}}, at(30)));
  const auto refresh = c.due(at(40));
  REQUIRE(refresh.size() == 1);
  REQUIRE(c.answer({refresh[0].request, ctl::Error{ctl::Code::UnknownBinding, "gone"}}, at(40)));
  const auto fresh = c.due(at(40));
  REQUIRE(fresh.size() == 1);
  CHECK(std::holds_alternative<ctl::Allocate>(fresh[0].body));
}

TEST_CASE("client bindings: a refresh unanswered until the lifetime ends allocates again",
          "[relay_daemon][bindings]") {
  auto c = client();
  REQUIRE(c.due(at(0)).size() == 1);
  REQUIRE(c.answer({100, ctl::Allocated{7, 20, ep("203.0.113.1:40001")}}, at(0)));
  for (int s = 10; s <= 20; ++s)
    for (const auto& m : c.due(at(s))) CHECK(std::holds_alternative<ctl::Refresh>(m.body));
  const auto after = c.due(at(21));
  REQUIRE(after.size() == 1);
  CHECK(std::holds_alternative<ctl::Allocate>(after[0].body));
  CHECK_FALSE(c.entries()[0].relay);
}

TEST_CASE("client bindings: release_all releases what is held", "[relay_daemon][bindings]") {
  ClientBindings c{{relay_daemon::BindingConfig{.peer = kPeer, .client_port = 6000},
                    relay_daemon::BindingConfig{.peer = kPeer, .client_port = 6001}},
                   100};
  const auto first = c.due(at(0));
  REQUIRE(first.size() == 2);
  REQUIRE(c.answer({first[0].request, ctl::Allocated{7, 60, ep("203.0.113.1:40001")}}, at(0)));
  const auto released = c.release_all();
  REQUIRE(released.size() == 1);
  CHECK(released[0].body == ctl::Body{ctl::Release{7}});
  CHECK_FALSE(c.entries()[0].relay);
}
