// Tests for cluster_node.hpp: cluster nodes on one io_context, linked over loopback TCP (port 0),
// each with its own relay::Engine. What crosses a link (the dump, a moved peer) and what closes
// one (a node with our sender id, another secret) seen from the engines, /status and metrics.
#include "cluster_node.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "platform/counters.hpp"
#include "relay/engine.hpp"
#include "satp/keys.hpp"
#include "support/packet_builder.hpp"

using relay_daemon::ClusterConfig;
using relay_daemon::ClusterNode;
namespace json = boost::json;

namespace {

constexpr const char* kSecret = "a cluster secret of some length";

relay::EngineOptions options(std::uint16_t sender_id) {
  relay::EngineOptions o;
  o.sender_id = sender_id;
  return o;
}

relay::ConnectionSpec spec(std::uint16_t mux) {
  relay::ConnectionSpec s;
  s.mux = mux;
  s.settings.role = satp::Role::Left;
  s.key = satp::master_key_from_passphrase("client", s.settings.kd_prf);
  s.salt = satp::master_salt_from_passphrase("client");
  s.routes = {core::Ipv4Prefix::parse("198.51.100.0/24").value()};
  return s;
}

ClusterConfig config(std::vector<relay::Endpoint> peers, std::string secret = kSecret) {
  return ClusterConfig{.listen = relay::Endpoint::v4(test::v4("127.0.0.1"), 0),
                       .peers = std::move(peers),
                       .secret = std::move(secret)};
}

// A node named `name` with sender id `sender_id` and its engine.
struct Node {
  platform::Counters counters;
  relay::Engine engine;
  std::unique_ptr<ClusterNode> cluster;
  Node(boost::asio::io_context& io, const std::string& name, std::uint16_t sender_id,
       const ClusterConfig& c)
      : engine{options(sender_id)} {
    auto started = ClusterNode::start(
        io, c, {name, sender_id}, engine, [](std::uint16_t) { return 1u; }, counters);
    REQUIRE(started);
    cluster = std::move(*started);
  }
  std::uint64_t error(const char* reason) const {
    const auto s = cluster->status();
    const auto* n = s.at("errors").as_object().if_contains(reason);
    return n ? n->to_number<std::uint64_t>() : 0;
  }
  std::uint64_t links_up() const {
    return cluster->status().at("links_up").to_number<std::uint64_t>();
  }
};

// Runs the loop until `done` (checked every 10 ms), at most 10 s.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    io.run_for(std::chrono::milliseconds{10});
  }
  return true;
}

}  // namespace

TEST_CASE("cluster node: a node that links up learns the other's connections and peer moves",
          "[relay-daemon][cluster]") {
  boost::asio::io_context io;
  Node a{io, "a", 1, config({})};
  REQUIRE(a.engine.add(spec(1), 100));
  Node b{io, "b", 2, config({a.cluster->listen_endpoint()})};
  REQUIRE(run_until(io, [&] { return b.engine.contains(1) && a.links_up() == 1; }));
  CHECK(b.links_up() == 1);
  CHECK(b.engine.routes().routes_of(1).size() == 1);
  const auto links = a.cluster->status().at("links").as_array();
  REQUIRE(links.size() == 1);
  CHECK(links[0].at("peer_name").as_string() == "b");
  CHECK(links[0].at("peer_sender_id").to_number<int>() == 2);
  CHECK(links[0].at("direction").as_string() == "in");
  const auto metrics = a.counters.to_json().as_object();
  CHECK(metrics.at("satp_cluster_links_up").at("series").at(0).at("value").to_number<int>() == 1);

  // The client moved to a: b hears of it at once.
  const relay::Peer moved{relay::Endpoint::v6(test::v6("2001:db8:1::2"), 4444), 0};
  a.engine.set_peer(1, moved);
  a.cluster->peer_changed(1, moved);
  REQUIRE(run_until(io, [&] { return b.engine.peer(1) == moved; }));
  CHECK(a.error("bad_tag") == 0);
}

TEST_CASE("cluster node: a node with our sender id is refused and learns nothing",
          "[relay-daemon][cluster]") {
  boost::asio::io_context io;
  Node a{io, "a", 1, config({})};
  REQUIRE(a.engine.add(spec(1), 100));
  Node b{io, "b", 1, config({a.cluster->listen_endpoint()})};
  REQUIRE(run_until(
      io, [&] { return a.error("sender_id_clash") > 0 && b.error("sender_id_clash") > 0; }));
  CHECK_FALSE(b.engine.contains(1));
  CHECK(a.links_up() == 0);
}

TEST_CASE("cluster node: a node with another secret fails its first record",
          "[relay-daemon][cluster]") {
  boost::asio::io_context io;
  Node a{io, "a", 1, config({})};
  REQUIRE(a.engine.add(spec(1), 100));
  Node b{io, "b", 2, config({a.cluster->listen_endpoint()}, "another secret, as long")};
  REQUIRE(run_until(io, [&] { return a.error("bad_tag") > 0 && b.error("bad_tag") > 0; }));
  CHECK_FALSE(b.engine.contains(1));
}
