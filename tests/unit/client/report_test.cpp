// Tests for dstm_client/report.hpp: the lease read from an offer, the event lines as exact JSON,
// and the status document.
#include "dstm_client/report.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>

namespace json = boost::json;

namespace {

core::Ipv4Address v4(const char* s) {
  return *core::Ipv4Address::parse(s);
}
core::Ipv6Address v6(const char* s) {
  return *core::Ipv6Address::parse(s);
}

// The offer as the DSTM server sends it (server: TEP IPv4 and IPv6; client: leased IPv4, the
// client's IPv6, DNS server and keepalive).
tsp::Tunnel offer(bool keepalive = true) {
  tsp::Tunnel t = tsp::make_tunnel(tsp::TunnelAction::Info, tsp::TunnelType::V4V6, 60);
  t.server = tsp::Endpoint{};
  t.server->addresses = {tsp::Address{v4("192.0.2.1"), std::nullopt},
                         tsp::Address{v6("2001:db8:e1::2"), std::nullopt}};
  t.client = tsp::Endpoint{};
  t.client->addresses = {tsp::Address{v4("198.51.100.1"), std::nullopt},
                         tsp::Address{v6("2001:db8:c1::2"), std::nullopt}};
  t.client->dns_servers = {tsp::Address{v6("2001:db8::53"), std::nullopt}};
  if (keepalive)
    t.client->keepalive = tsp::Keepalive{30, tsp::Address{v4("192.0.2.201"), std::nullopt}};
  return t;
}

dstm_client::LeaseInfo lease() {
  return dstm_client::lease_from_offer(offer(), std::nullopt).value();
}

}  // namespace

TEST_CASE("report: the lease is read from the server's offer", "[client]") {
  const auto l = lease();
  CHECK(l.ipv4 == v4("198.51.100.1"));
  CHECK(l.local == v6("2001:db8:c1::2"));
  CHECK(l.tep_ipv6 == v6("2001:db8:e1::2"));
  CHECK(l.tep_ipv4 == v4("192.0.2.1"));
  CHECK(l.keepalive == v4("192.0.2.201"));
  CHECK(l.keepalive_interval == 30);
  CHECK(l.lifetime == 60);

  const auto quiet = dstm_client::lease_from_offer(offer(false), std::nullopt).value();
  CHECK_FALSE(quiet.keepalive);
  CHECK(quiet.keepalive_interval == 0);
}

TEST_CASE("report: an offer without our IPv6 uses the session's local address", "[client]") {
  auto t = offer();
  t.client->addresses.pop_back();
  CHECK_FALSE(dstm_client::lease_from_offer(t, std::nullopt));
  CHECK(dstm_client::lease_from_offer(t, v6("2001:db8:c1::9"))->local == v6("2001:db8:c1::9"));
}

TEST_CASE("report: incomplete or unusable offers are refused with a reason", "[client]") {
  struct Row {
    const char* what;
    tsp::Tunnel t;
    const char* reason;
  };
  auto no_client = offer();
  no_client.client.reset();
  auto no_server = offer();
  no_server.server.reset();
  auto no_ipv4 = offer();
  no_ipv4.client->addresses.erase(no_ipv4.client->addresses.begin());
  auto zero_ipv4 = offer();
  zero_ipv4.client->addresses[0].value = v4("0.0.0.0");
  auto no_tep6 = offer();
  no_tep6.server->addresses.pop_back();
  auto multicast_tep6 = offer();
  multicast_tep6.server->addresses[1].value = v6("ff02::1");
  auto no_tep4 = offer();
  no_tep4.server->addresses.erase(no_tep4.server->addresses.begin());
  auto no_lifetime = offer();
  no_lifetime.lifetime.reset();
  const std::vector<Row> rows{
      {"no client endpoint", no_client, "client endpoint"},
      {"no server endpoint", no_server, "server"},
      {"no client IPv4", no_ipv4, "client IPv4"},
      {"client IPv4 0.0.0.0", zero_ipv4, "client IPv4"},
      {"no TEP IPv6", no_tep6, "TEP IPv6"},
      {"multicast TEP IPv6", multicast_tep6, "TEP IPv6"},
      {"no TEP IPv4", no_tep4, "TEP IPv4"},
      {"no lifetime", no_lifetime, "lifetime"},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    const auto r = dstm_client::lease_from_offer(row.t, std::nullopt);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find(row.reason) != std::string::npos);
  }
  // A keepalive without an address, with interval 0, or with an IPv6 address is ignored.
  auto odd = offer();
  odd.client->keepalive->interval = 0;
  CHECK_FALSE(dstm_client::lease_from_offer(odd, std::nullopt)->keepalive);
  odd.client->keepalive = tsp::Keepalive{30, tsp::Address{v6("2001:db8::1"), std::nullopt}};
  CHECK_FALSE(dstm_client::lease_from_offer(odd, std::nullopt)->keepalive);
}

TEST_CASE("report: event lines are exact single-line JSON", "[client]") {
  const auto l = lease();
  CHECK(dstm_client::up_event(l, "dstm0") ==
        R"({"event":"up","ipv4":"198.51.100.1","tep_ipv6":"2001:db8:e1::2",)"
        R"("tep_ipv4":"192.0.2.1","keepalive":"192.0.2.201","lifetime":60,"interface":"dstm0"})");
  CHECK(dstm_client::renewed_event(l) ==
        R"({"event":"renewed","ipv4":"198.51.100.1","tep_ipv6":"2001:db8:e1::2",)"
        R"("tep_ipv4":"192.0.2.1","lifetime":60})");
  CHECK(dstm_client::renewed_event(l, v4("198.51.100.9"))
            .ends_with(R"("lifetime":60,"previous_ipv4":"198.51.100.9"})"));
  CHECK(dstm_client::tep_lost_event(l, 3) ==
        R"({"event":"tep_lost","ipv4":"198.51.100.1","tep_ipv6":"2001:db8:e1::2",)"
        R"("tep_ipv4":"192.0.2.1","keepalive":"192.0.2.201","misses":3})");
  auto moved_to = l;
  moved_to.tep_ipv6 = v6("2001:db8:e2::2");
  moved_to.tep_ipv4 = v4("192.0.2.5");
  CHECK(dstm_client::moved_event(l, moved_to) ==
        R"({"event":"moved","ipv4":"198.51.100.1","from_tep_ipv6":"2001:db8:e1::2",)"
        R"("from_tep_ipv4":"192.0.2.1","tep_ipv6":"2001:db8:e2::2","tep_ipv4":"192.0.2.5",)"
        R"("lifetime":60})");
  CHECK(dstm_client::released_event(l.ipv4, true) ==
        R"({"event":"released","ipv4":"198.51.100.1","confirmed":true})");
  CHECK(dstm_client::expired_event(l.ipv4) == R"({"event":"expired","ipv4":"198.51.100.1"})");
  // Text from the outside (a server's status line) is escaped, never breaks the line.
  const auto e = dstm_client::error_event("create", "301 \"No more\"\ntunnels");
  CHECK(e == R"({"event":"error","phase":"create","message":"301 \"No more\"\ntunnels"})");
  CHECK(e.find('\n') == std::string::npos);
}

TEST_CASE("report: status without a lease has nulls, with one the lease and counters", "[client]") {
  dstm_client::StatusSnapshot s;
  s.interface = "dstm0";
  const auto empty = dstm_client::status_json(s).as_object();
  CHECK(empty.at("state") == "connecting");
  CHECK(empty.at("ipv4").is_null());
  CHECK(empty.at("tep_ipv6").is_null());
  CHECK(empty.at("keepalive").is_null());
  CHECK(empty.at("expires_in").is_null());
  CHECK(empty.at("counters").at("decap_drops").as_object().empty());

  s.state = dstm_client::State::Up;
  s.lease = lease();
  s.expires_in = 42;
  s.renewals = 2;
  s.tep_changes = 1;
  s.keepalive_sent = 10;
  s.keepalive_answered = 9;
  s.keepalive_misses = 1;
  s.counters = {{"encapsulated", 5}, {"decapsulated", 4}, {"dropped_not_ours", 1}};
  s.decap_drops = {{"truncated", 3}};
  const auto up = dstm_client::status_json(s).as_object();
  CHECK(up.at("state") == "up");
  CHECK(up.at("ipv4") == "198.51.100.1");
  CHECK(up.at("local_ipv6") == "2001:db8:c1::2");
  CHECK(up.at("tep_ipv6") == "2001:db8:e1::2");
  CHECK(up.at("tep_ipv4") == "192.0.2.1");
  CHECK(up.at("keepalive") == "192.0.2.201");
  CHECK(up.at("keepalive_interval") == 30);
  CHECK(up.at("lifetime") == 60);
  CHECK(up.at("expires_in") == 42);
  CHECK(up.at("interface") == "dstm0");
  CHECK(up.at("renewals") == 2);
  CHECK(up.at("tep_changes") == 1);
  CHECK(up.at("keepalive_sent") == 10);
  CHECK(up.at("keepalive_answered") == 9);
  CHECK(up.at("keepalive_misses") == 1);
  const auto& c = up.at("counters").as_object();
  CHECK(c.at("encapsulated") == 5);
  CHECK(c.at("decapsulated") == 4);
  CHECK(c.at("dropped_not_ours") == 1);
  CHECK(c.at("decap_drops").at("truncated") == 3);
  CHECK(dstm_client::to_string(dstm_client::State::Recreating) == "recreating");
}

TEST_CASE("report: the kernel backend's device statistics are under kernel", "[client]") {
  dstm_client::StatusSnapshot s;
  s.backend = "kernel";
  s.kernel = {{"tx_packets", 7}, {"rx_bytes", 840}};
  const auto o = dstm_client::status_json(s).as_object();
  CHECK(o.at("backend") == "kernel");
  CHECK(o.at("kernel").at("tx_packets") == 7);
  CHECK(o.at("kernel").at("rx_bytes") == 840);
  CHECK_FALSE(o.contains("fast_path"));
  // Without the kernel backend there is no "kernel" object.
  CHECK_FALSE(
      dstm_client::status_json(dstm_client::StatusSnapshot{}).as_object().contains("kernel"));
}
