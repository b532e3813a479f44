// The relay's TCP transport over loopback (port 0, no privileges): frames in and out with their
// 2-byte lengths, stream ids, the bounds (streams, frame length, send queue, idle streams), and a
// relay and a client service that find each other by Locate over UDP and then carry SATP over
// TCP.
#include "tcp.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/counters.hpp"
#include "relay_daemon/service.hpp"
#include "satp/packet.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using relay_daemon::TcpOptions;
using relay_daemon::TcpTransport;
using namespace std::chrono_literals;

const auto kLoopback = relay::Endpoint::v4(core::Ipv4Address{0x7f000001}, 0);

struct Recorder : TcpTransport::Handler {
  std::vector<std::pair<relay::Peer, std::vector<std::byte>>> frames;
  std::vector<relay::Peer> closed;
  int batches = 0;
  bool authenticate = true;

  bool tcp_frame(const relay::Peer& from, core::MutableBytes packet) override {
    frames.emplace_back(from, std::vector<std::byte>(packet.begin(), packet.end()));
    return authenticate;
  }
  void tcp_frames_done() override { ++batches; }
  void tcp_closed(const relay::Peer& peer) override { closed.push_back(peer); }
};

// Runs the loop until `done` holds, at most 5 s (then the test fails).
void run_until(asio::io_context& io, const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    io.restart();
    io.run_for(5ms);
  }
}

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (const int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> framed(const std::vector<std::byte>& packet) {
  auto out = bytes({static_cast<int>(packet.size() >> 8), static_cast<int>(packet.size() & 0xff)});
  out.insert(out.end(), packet.begin(), packet.end());
  return out;
}

tcp::endpoint asio_endpoint(const relay::Endpoint& e) {
  return {asio::ip::address_v4{e.v4_address().to_uint()}, e.port};
}

// A listening transport and plain sockets connected to it.
struct Relay {
  asio::io_context io;
  Recorder handler;
  TcpTransport transport;
  relay::Endpoint bound;

  explicit Relay(TcpOptions options = {}) : transport{io, handler, options} {
    auto b = transport.listen(kLoopback);
    REQUIRE(b);
    bound = *b;
  }

  tcp::socket connect() {
    tcp::socket s{io};
    s.connect(asio_endpoint(bound));
    return s;
  }
};

TEST_CASE("tcp transport: the listener binds the kernel's port and reports it", "[tcp]") {
  Relay relay;
  CHECK(relay.bound.port != 0);
  CHECK(relay.transport.listening() == relay.bound);
  CHECK(relay.transport.status().at("listen").as_string() == relay.bound.to_string());
}

TEST_CASE("tcp transport: frames split across writes reach the handler whole and in order",
          "[tcp]") {
  Relay relay;
  auto client = relay.connect();
  const auto a = bytes({1, 2, 3});
  const auto b = bytes({4, 5, 6, 7, 8});
  auto stream = framed(a);
  const auto second = framed(b);
  stream.insert(stream.end(), second.begin(), second.end());
  // Every split point: the framer holds the partial frame across reads.
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    relay.handler.frames.clear();
    asio::write(client, asio::buffer(stream.data(), cut));
    relay.io.restart();
    relay.io.run_for(5ms);
    asio::write(client, asio::buffer(stream.data() + cut, stream.size() - cut));
    run_until(relay.io, [&] { return relay.handler.frames.size() == 2; });
    CHECK(relay.handler.frames[0].second == a);
    CHECK(relay.handler.frames[1].second == b);
  }
  const auto& from = relay.handler.frames[0].first;
  CHECK(from.stream == 1);
  CHECK(from.endpoint.port == client.local_endpoint().port());
  CHECK(relay.handler.batches >= 2);
  CHECK(relay.transport.counters().accepted == 1);
}

TEST_CASE("tcp transport: stream ids count up and are never reused", "[tcp]") {
  Relay relay;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto client = relay.connect();
    asio::write(client, asio::buffer(framed(bytes({i}))));
    run_until(relay.io, [&] { return relay.handler.frames.size() == ids.size() + 1; });
    ids.push_back(relay.handler.frames.back().first.stream);
    client.close();
    run_until(relay.io, [&] { return relay.handler.closed.size() == ids.size(); });
    CHECK(relay.handler.closed.back().stream == ids.back());
  }
  CHECK(ids == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(relay.transport.open_streams() == 0);
  CHECK(relay.transport.counters().closed == 3);
}

TEST_CASE("tcp transport: a length above the largest packet closes the stream and is counted",
          "[tcp]") {
  Relay relay;
  auto client = relay.connect();
  // One good frame, then a length of 1601 (satp::kMaxPacket is 1600) and bytes after it.
  auto stream = framed(bytes({9}));
  const auto bad = bytes({0x06, 0x41, 0xde, 0xad, 0xbe, 0xef});
  stream.insert(stream.end(), bad.begin(), bad.end());
  asio::write(client, asio::buffer(stream));
  run_until(relay.io, [&] { return !relay.handler.closed.empty(); });
  CHECK(relay.handler.frames.size() == 1);  // the frame before the bad length still counts
  CHECK(relay.transport.counters().framing_errors == 1);
  CHECK(relay.transport.open_streams() == 0);
  // The relay closed its end: the client reads the end of the stream.
  std::array<std::byte, 16> buf{};
  boost::system::error_code ec;
  (void)client.read_some(asio::buffer(buf), ec);
  CHECK(ec);
}

TEST_CASE("tcp transport: a frame of length 0 is a framing error", "[tcp]") {
  Relay relay;
  auto client = relay.connect();
  asio::write(client, asio::buffer(bytes({0, 0})));
  run_until(relay.io, [&] { return !relay.handler.closed.empty(); });
  CHECK(relay.transport.counters().framing_errors == 1);
  CHECK(relay.handler.frames.empty());
}

TEST_CASE("tcp transport: beyond max_streams a connection is closed at once and counted", "[tcp]") {
  Relay relay{TcpOptions{.max_streams = 2, .send_queue_bytes = 4096, .idle_timeout = 60s}};
  auto c1 = relay.connect();
  auto c2 = relay.connect();
  run_until(relay.io, [&] { return relay.transport.counters().accepted == 2; });
  auto c3 = relay.connect();
  run_until(relay.io, [&] { return relay.transport.counters().refused == 1; });
  CHECK(relay.transport.open_streams() == 2);
  std::array<std::byte, 16> buf{};
  boost::system::error_code ec;
  (void)c3.read_some(asio::buffer(buf), ec);
  CHECK(ec);  // closed by the relay
  // A slot freed is a slot taken again.
  c1.close();
  run_until(relay.io, [&] { return relay.transport.open_streams() == 1; });
  auto c4 = relay.connect();
  run_until(relay.io, [&] { return relay.transport.counters().accepted == 3; });
}

TEST_CASE("tcp transport: queued packets leave with their lengths in one write per flush",
          "[tcp]") {
  Relay relay;
  auto client = relay.connect();
  asio::write(client, asio::buffer(framed(bytes({1}))));
  run_until(relay.io, [&] { return relay.handler.frames.size() == 1; });
  const auto stream = relay.handler.frames[0].first.stream;
  const auto a = bytes({0xaa, 0xbb});
  const auto b = bytes({0xcc});
  CHECK(relay.transport.send(stream, a));
  CHECK(relay.transport.send(stream, b));
  CHECK_FALSE(relay.transport.send(stream + 1, b));  // no such stream: dropped, counted
  relay.transport.flush();
  auto expected = framed(a);
  const auto second = framed(b);
  expected.insert(expected.end(), second.begin(), second.end());
  std::vector<std::byte> got(expected.size());
  run_until(relay.io, [&] { return relay.transport.counters().frames_out == 2; });
  relay.io.restart();
  relay.io.run_for(10ms);
  asio::read(client, asio::buffer(got));
  CHECK(got == expected);
  CHECK(relay.transport.counters().send_drops == 1);
}

TEST_CASE("tcp transport: the send queue is bounded beyond the kernel's buffer", "[tcp]") {
  Relay relay{TcpOptions{.max_streams = 4, .send_queue_bytes = 4096, .idle_timeout = 60s}};
  auto client = relay.connect();
  asio::write(client, asio::buffer(framed(bytes({1}))));
  run_until(relay.io, [&] { return relay.handler.frames.size() == 1; });
  const auto stream = relay.handler.frames[0].first.stream;
  // A client that does not read: once the kernel's buffers are full, packets are dropped.
  constexpr std::uint32_t kPackets = 40'000;
  std::vector<std::uint32_t> accepted;
  std::vector<std::byte> packet(1000);
  for (std::uint32_t i = 0; i < kPackets; ++i) {
    for (int b = 0; b < 4; ++b) packet[static_cast<std::size_t>(b)] = std::byte(i >> (8 * b));
    if (relay.transport.send(stream, packet)) accepted.push_back(i);
    if (i % 64 == 0) relay.transport.flush();
  }
  relay.transport.flush();
  CHECK(relay.transport.counters().send_drops == kPackets - accepted.size());
  CHECK(relay.transport.counters().send_drops > 0);
  CHECK(relay.transport.status().at("queued_bytes").to_number<std::size_t>() <= 4096);
  // What was taken arrives whole and in order once the client reads.
  client.non_blocking(true);
  std::vector<std::byte> got;
  const auto expected = accepted.size() * (2 + packet.size());
  run_until(relay.io, [&] {
    std::array<std::byte, 65536> buf{};
    boost::system::error_code ec;
    const auto n = client.read_some(asio::buffer(buf), ec);
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    return got.size() >= expected;
  });
  REQUIRE(got.size() == expected);
  for (std::size_t k = 0; k < accepted.size(); ++k) {
    const auto* frame = got.data() + k * (2 + packet.size());
    REQUIRE(std::to_integer<std::size_t>(frame[0]) * 256 + std::to_integer<std::size_t>(frame[1]) ==
            packet.size());
    std::uint32_t i = 0;
    for (int b = 0; b < 4; ++b) i |= std::to_integer<std::uint32_t>(frame[2 + b]) << (8 * b);
    REQUIRE(i == accepted[k]);
  }
}

TEST_CASE("tcp transport: a stream without an authenticated packet is closed when idle", "[tcp]") {
  Relay relay{TcpOptions{.max_streams = 4, .send_queue_bytes = 4096, .idle_timeout = 50ms}};
  relay.handler.authenticate = false;
  auto client = relay.connect();
  asio::write(client, asio::buffer(framed(bytes({1, 2}))));  // junk: not authenticated
  run_until(relay.io, [&] { return !relay.handler.closed.empty(); });
  CHECK(relay.transport.counters().idle_closed == 1);
  CHECK(relay.transport.open_streams() == 0);
}

TEST_CASE("tcp transport: a connected stream carries frames both ways", "[tcp]") {
  Relay relay;
  Recorder client_handler;
  TcpTransport client{relay.io, client_handler, TcpOptions{}};
  std::optional<relay::Peer> peer;
  client.connect(relay.bound, 2s, [&](boost::system::result<relay::Peer> p) {
    REQUIRE(p);
    peer = *p;
  });
  run_until(relay.io, [&] { return peer.has_value(); });
  CHECK(peer->stream == 1);
  CHECK(peer->endpoint == relay.bound);
  CHECK(client.send(peer->stream, bytes({7, 7})));
  client.flush();
  run_until(relay.io, [&] { return relay.handler.frames.size() == 1; });
  CHECK(relay.handler.frames[0].second == bytes({7, 7}));
  CHECK(relay.transport.send(relay.handler.frames[0].first.stream, bytes({8})));
  relay.transport.flush();
  run_until(relay.io, [&] { return client_handler.frames.size() == 1; });
  CHECK(client_handler.frames[0].second == bytes({8}));
  CHECK(client_handler.frames[0].first == *peer);
  CHECK(client.counters().connects == 1);
}

TEST_CASE("tcp transport: a refused connect is reported and counted", "[tcp]") {
  asio::io_context io;
  Recorder handler;
  relay::Endpoint closed_port;
  {
    Relay gone;  // a port that was just free
    closed_port = gone.bound;
  }
  TcpTransport client{io, handler, TcpOptions{}};
  std::optional<boost::system::error_code> error;
  client.connect(closed_port, 2s, [&](boost::system::result<relay::Peer> p) {
    REQUIRE_FALSE(p);
    error = p.error();
  });
  run_until(io, [&] { return error.has_value(); });
  CHECK(client.counters().connect_failures == 1);
}

TEST_CASE("tcp transport: stop closes every stream and calls no handler after it", "[tcp]") {
  Relay relay;
  auto client = relay.connect();
  run_until(relay.io, [&] { return relay.transport.open_streams() == 1; });
  relay.transport.stop();
  relay.io.restart();
  relay.io.run_for(20ms);
  CHECK(relay.handler.closed.empty());
  CHECK(relay.transport.open_streams() == 0);
  // Nothing is left waiting on the loop.
  relay.io.restart();
  CHECK(relay.io.run_for(1s) == 0);
}

// A relay with UDP and TCP on loopback and a client with transport tcp, as services (no TUN):
// the client locates the relay over UDP, connects to the port the relay's listener got, and its
// connection moves to the stream on both ends.
TEST_CASE("tcp transport: a client locates the relay over UDP and moves to its TCP stream",
          "[tcp]") {
  asio::io_context io;
  platform::Counters counters;
  relay_daemon::ConnectionConfig connection;
  connection.mux = 1;
  connection.settings.role = satp::Role::Left;
  connection.key = satp::master_key_from_passphrase("tcp-test", connection.settings.kd_prf);
  connection.salt = satp::master_salt_from_passphrase("tcp-test");
  relay_daemon::RelayConfig relay_config;
  relay_config.listen = {kLoopback};
  relay_config.connections = {connection};
  relay_config.tcp = relay_daemon::TcpConfig{
      .listen = kLoopback, .advertise = std::nullopt, .max_connections = 8, .idle_timeout = 60};
  auto relay = relay_daemon::Service::start_relay(io, relay_config, counters);
  REQUIRE(relay);
  const auto status = (*relay)->status();
  const auto tcp_listen = status.at("tcp").at("listen").as_string();
  CHECK(status.at("tcp").at("advertise").as_string() == tcp_listen);

  relay_daemon::ClientConfig client_config;
  client_config.server = (*relay)->udp_endpoints().front();
  client_config.transport = relay_daemon::Transport::Tcp;
  client_config.sender_id = 2;
  client_config.connection = connection;
  client_config.connection.settings.role = satp::Role::Right;
  auto client = relay_daemon::Service::start_client(io, client_config, counters);
  REQUIRE(client);

  run_until(io, [&] {
    const auto c = (*relay)->clients().at(0).as_object();
    return (*client)->status().at("tcp").at("state").as_string() == "connected" &&
           c.at("transport").as_string() == "tcp";
  });
  const auto c = (*client)->status();
  INFO(json::serialize(c));
  CHECK(c.at("transport").as_string() == "tcp");
  CHECK(c.at("tcp").at("endpoint").as_string() == tcp_listen);
  CHECK(c.at("tcp").at("connects") == 1);
  // The client's UDP socket carried the Locate exchange only.
  CHECK(c.at("udp_tx_packets") == c.at("tcp").at("locates"));
  CHECK(c.at("udp_rx_packets").to_number<int>() <= c.at("udp_tx_packets").to_number<int>());
  CHECK((*client)->clients().at(0).at("transport").as_string() == "tcp");
  const auto r = (*relay)->status();
  CHECK(r.at("tcp").at("accepted") == 1);
  CHECK(r.at("tcp").at("open") == 1);

  // The relay's end of the stream goes away: the client locates the relay again and reconnects.
  (*relay)->stop();
  run_until(io,
            [&] { return (*client)->status().at("tcp").at("state").as_string() != "connected"; });
  CHECK((*client)->clients().at(0).at("peer").is_null());
  (*client)->stop();
}

}  // namespace
