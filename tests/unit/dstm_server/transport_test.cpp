// Tests for dstm_server/transport.hpp: TSP sessions over real loopback sockets (127.0.0.1 and
// ::1, port 0), driven by bounded io_context loops; the client speaks raw TSP bytes.
#include "dstm_server/transport.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/value.hpp>

#include "platform/counters.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using namespace std::chrono_literals;
using dstm_server::BoundEndpoint;
using dstm_server::EventSink;
using dstm_server::SessionInfo;
using dstm_server::Transport;
using dstm_server::TransportOptions;

core::Ipv4Address v4(const char* s) {
  return core::Ipv4Address::parse(s).value();
}
core::Ipv6Address v6(const char* s) {
  return core::Ipv6Address::parse(s).value();
}

// A Content-length message: the count covers the body and its final CRLF (tsp-wire.md 3.1).
std::string framed(std::string_view body) {
  return "Content-length: " + std::to_string(body.size() + 2) + "\r\n" + std::string{body} + "\r\n";
}

const std::string kCapability = "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n";
const std::string kCreateFromLoopback =
    "Content-length: 212\r\n<tunnel action=\"create\" type=\"v4v6\" proxy=\"no\">\r\n <client>\r\n"
    "  <address type=\"ipv6\">::1</address>\r\n  <keepalive interval=\"30\">\r\n    <address "
    "type=\"ipv4\">127.0.0.1</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n";
const std::string kAccept = framed("<tunnel action=\"accept\"></tunnel>");
// draft-jaehwoon-dstm-multitep-02 Appendix A (tsp-wire.md 13.5) and its answer.
const std::string kQuery =
    "Content-length: 209\r\n<tunnel action=\"query\" type=\"v4v6\"><client><address "
    "type=\"ipv4\">192.0.2.2</address><address type=\"ipv6\">2001:db8:0:1::2</address></client>"
    "<server><address type=\"ipv4\">198.51.100.7</address></server></tunnel>\r\n";
const std::string kAnswer =
    "Content-length: 302\r\n200 OK\r\n<tunnel action=\"info\" type=\"v4v6\" "
    "lifetime=\"1440\"><server><address type=\"ipv4\" length=\"30\">198.51.100.7</address><address "
    "type=\"ipv6\">2001:db8:0:2::7</address></server><client><address type=\"ipv4\" "
    "length=\"30\">192.0.2.2</address><address type=\"ipv6\">2001:db8:0:1::2</address></client>"
    "</tunnel>\r\n";
const std::string kNotFound = "Content-length: 26\r\n501 Invalid IPv4 address\r\n";

const tsp::LeaseOffer kOffer{
    .client_ipv4 = v4("192.0.2.10"),
    .client_ipv6 = std::nullopt,
    .server_ipv4 = v4("192.0.2.1"),
    .server_ipv6 = v6("2001:db8::1"),
    .lifetime = 3600,
    .dns_server = v6("2001:db8::53"),
    .keepalive = std::nullopt,
    .prefix = std::nullopt,
};

// Answers AllocateLease with kOffer and LookupMapping with a mapping to 2001:db8:0:2::7 (from
// inside on_action: the transport must not re-enter); records every call.
struct Handler final : dstm_server::SessionHandler {
  bool answer = true;
  std::vector<SessionInfo> authenticated;
  std::vector<SessionInfo> closed;
  std::vector<std::pair<SessionInfo, tsp::ServerAction>> actions;
  std::vector<EventSink> sinks;
  int calls = 0;
  int refused = 0;  // answers the sink did not take

  void on_authenticated(const SessionInfo& info) override {
    ++calls;
    authenticated.push_back(info);
  }
  void on_closed(const SessionInfo& info) override {
    ++calls;
    closed.push_back(info);
  }
  void on_action(const SessionInfo& info, const tsp::ServerAction& action,
                 EventSink reply) override {
    ++calls;
    actions.emplace_back(info, action);
    sinks.push_back(reply);
    if (!answer) return;
    bool fed = true;
    if (std::holds_alternative<tsp::AllocateLease>(action)) {
      fed = reply(tsp::LeaseAllocated{kOffer});
    } else if (const auto* q = std::get_if<tsp::LookupMapping>(&action)) {
      fed =
          reply(tsp::MappingFound{q->query_id, tsp::Mapping{q->ipv4, v6("2001:db8:0:2::7"), 1440}});
    }
    if (!fed) ++refused;  // the session is alive while on_action runs
  }

  // The actions of one type, with the session that emitted them.
  template <typename T>
  std::vector<std::pair<SessionInfo, T>> of() const {
    std::vector<std::pair<SessionInfo, T>> out;
    for (const auto& [info, a] : actions)
      if (const auto* t = std::get_if<T>(&a)) out.emplace_back(info, *t);
    return out;
  }
};

// Runs the io_context until pred() holds or `limit` passes (then false).
template <typename Pred>
bool run_until(asio::io_context& io, Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    io.run_for(2ms);
  }
  return true;
}

// Runs the io_context for a while: for checks that nothing (more) happens.
void run_for(asio::io_context& io, std::chrono::milliseconds d) {
  run_until(
      io, [] { return false; }, d);
}

std::uint64_t metric(const platform::Counters& counters, std::string_view name,
                     const platform::Labels& labels = {}) {
  const auto json = counters.to_json();
  const auto* family = json.as_object().if_contains(name);
  if (!family) return 0;
  for (const auto& series : family->at("series").as_array()) {
    const auto& have = series.at("labels").as_object();
    bool match = have.size() == labels.size();
    for (const auto& [k, v] : labels) {
      const auto* value = have.if_contains(k);
      match = match && value && value->as_string() == v;
    }
    if (match) return static_cast<std::uint64_t>(series.at("value").to_number<std::int64_t>());
  }
  return 0;
}

// A blocking-connect, non-blocking-read TCP client; the io_context of the server is driven
// while it waits.
struct TcpClient {
  TcpClient(asio::io_context& io, const tcp::endpoint& server) : socket{io} {
    socket.connect(server);
    socket.non_blocking(true);
  }

  void send(std::string_view bytes) {
    socket.non_blocking(false);
    asio::write(socket, asio::buffer(bytes));
    socket.non_blocking(true);
  }
  // Takes whatever has arrived; notes the end of the stream.
  void poll() {
    for (;;) {
      std::array<char, 4096> buf{};
      boost::system::error_code ec;
      const auto n = socket.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block) return;
      if (ec) {
        ended = true;
        return;
      }
      received.append(buf.data(), n);
    }
  }

  tcp::socket socket;
  std::string received;
  bool ended = false;
};

// The 8-byte header of (sequence_word, timestamp) followed by payload.
std::string datagram(std::uint32_t sequence_word, std::uint32_t timestamp,
                     std::string_view payload) {
  std::string d;
  for (const std::uint32_t word : {sequence_word, timestamp})
    for (int shift = 24; shift >= 0; shift -= 8) d += static_cast<char>((word >> shift) & 0xff);
  return d + std::string{payload};
}

// A connected UDP client.
struct UdpClient {
  UdpClient(asio::io_context& io, const udp::endpoint& server) : socket{io, server.protocol()} {
    socket.connect(server);
    socket.non_blocking(true);
  }

  void send(std::uint32_t sequence_word, std::uint32_t timestamp, std::string_view payload) {
    send_raw(datagram(sequence_word, timestamp, payload));
  }
  void send_raw(std::string_view bytes) { socket.send(asio::buffer(bytes)); }
  void poll() {
    for (;;) {
      std::array<char, 65536> buf{};
      boost::system::error_code ec;
      const auto n = socket.receive(asio::buffer(buf), 0, ec);
      if (ec) return;
      received.emplace_back(buf.data(), n);
    }
  }

  udp::socket socket;
  std::deque<std::string> received;  // whole datagrams, header included
};

tsp::ServerConfig server_config() {
  tsp::ServerConfig c;
  c.tunnel_types = {tsp::TunnelType::V4V6};
  c.sasl.mechanisms = {tsp::Mechanism::Anonymous};
  return c;
}

struct Fixture {
  explicit Fixture(const std::function<void(TransportOptions&)>& adjust = {},
                   const std::function<void(tsp::ServerConfig&)>& adjust_session = {}) {
    TransportOptions o;
    o.listen.ipv6 = {v6("::1")};
    o.listen.ipv4 = {v4("127.0.0.1")};
    o.listen.port = 0;
    auto session = server_config();
    if (adjust_session) adjust_session(session);
    o.session = std::make_shared<const tsp::ServerConfig>(std::move(session));
    o.counters = &counters;
    if (adjust) adjust(o);
    transport = std::make_unique<Transport>(io, handler, std::move(o));
    const auto started = transport->start();
    REQUIRE(started.has_value());
  }

  std::uint16_t port() const {
    const auto e = transport->endpoints();
    REQUIRE_FALSE(e.empty());
    return e.front().port;
  }
  tcp::endpoint tcp_endpoint(const char* address) const {
    return {asio::ip::make_address(address), port()};
  }
  udp::endpoint udp_endpoint(const char* address) const {
    return {asio::ip::make_address(address), port()};
  }

  TcpClient connect(const char* address) { return TcpClient{client_io, tcp_endpoint(address)}; }
  UdpClient udp_client(const char* address) { return UdpClient{client_io, udp_endpoint(address)}; }

  // The next n bytes from the client's stream ("" if the stream ended first).
  std::string read(TcpClient& c, std::size_t n) {
    run_until(io, [&] {
      c.poll();
      return c.received.size() >= n || c.ended;
    });
    if (c.received.size() < n) return {};
    auto out = c.received.substr(0, n);
    c.received.erase(0, n);
    return out;
  }
  // Everything up to and including `end`.
  std::string read_through(TcpClient& c, std::string_view end) {
    run_until(io, [&] {
      c.poll();
      return c.received.find(end) != std::string::npos || c.ended;
    });
    const auto at = c.received.find(end);
    if (at == std::string::npos) return {};
    auto out = c.received.substr(0, at + end.size());
    c.received.erase(0, at + end.size());
    return out;
  }
  bool wait_ended(TcpClient& c) {
    return run_until(io, [&] {
      c.poll();
      return c.ended;
    });
  }
  std::optional<std::string> next(UdpClient& c) {
    run_until(io, [&] {
      c.poll();
      return !c.received.empty();
    });
    if (c.received.empty()) return std::nullopt;
    auto d = c.received.front();
    c.received.pop_front();
    return d;
  }

  // Version and ANONYMOUS authentication over TCP; the reply to AUTHENTICATE is returned.
  std::string handshake(TcpClient& c, std::string_view version = "2.0.2") {
    c.send("VERSION=" + std::string{version} + "\r\n");
    CHECK(read(c, kCapability.size()) == kCapability);
    c.send("AUTHENTICATE ANONYMOUS\r\n");
    return read_through(c, "\r\n");
  }

  asio::io_context io;
  asio::io_context client_io;  // blocking client sockets; never run
  Handler handler;
  platform::Counters counters;
  std::unique_ptr<Transport> transport;
};

const platform::Labels kTcp{{"transport", "tcp"}};
const platform::Labels kUdp{{"transport", "udp"}};

}  // namespace

TEST_CASE("transport: a TCP create over IPv6 reaches AllocateLease from the peer's address",
          "[transport]") {
  Fixture f;
  auto c = f.connect("::1");
  CHECK(f.handshake(c) == "200 Success\r\n");
  REQUIRE(f.handler.authenticated.size() == 1);
  const SessionInfo session = f.handler.authenticated[0];
  CHECK(session.transport == tsp::Transport::Tcp);
  CHECK(session.peer == tsp::PeerAddress{v6("::1")});
  CHECK(session.peer_port == c.socket.local_endpoint().port());
  CHECK(session.identity == tsp::Identity{tsp::Mechanism::Anonymous, ""});
  CHECK(f.transport->tcp_sessions() == 1);

  c.send(kCreateFromLoopback);
  const auto offer = f.read_through(c, "</tunnel>\r\n");
  CHECK(offer.rfind("Content-length: ", 0) == 0);
  CHECK(offer.find("200 Success\r\n") != std::string::npos);
  CHECK(offer.find("<address type=\"ipv4\">192.0.2.10</address>") != std::string::npos);
  const auto allocations = f.handler.of<tsp::AllocateLease>();
  REQUIRE(allocations.size() == 1);
  CHECK(allocations[0].first.id == session.id);
  CHECK(allocations[0].first.peer == tsp::PeerAddress{v6("::1")});
  CHECK(allocations[0].first.identity == session.identity);
  CHECK(allocations[0].second.client_ipv6 == v6("::1"));

  c.send(kAccept);
  REQUIRE(run_until(f.io, [&] { return !f.handler.of<tsp::ConfirmLease>().empty(); }));
  CHECK(f.handler.of<tsp::ConfirmLease>()[0].second == tsp::ConfirmLease{v4("192.0.2.10")});

  c.socket.shutdown(tcp::socket::shutdown_send);
  REQUIRE(f.wait_ended(c));
  REQUIRE(run_until(f.io, [&] { return !f.handler.closed.empty(); }));
  CHECK(f.handler.closed.size() == 1);
  CHECK(f.handler.closed[0].id == session.id);
  CHECK(f.transport->tcp_sessions() == 0);
  CHECK(metric(f.counters, "tsp_sessions_total", kTcp) == 1);
  CHECK(metric(f.counters, "tsp_sessions", kTcp) == 0);
  CHECK(metric(f.counters, "tsp_bytes_received_total", kTcp) ==
        std::string{"VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n"}.size() +
            kCreateFromLoopback.size() + kAccept.size());
  CHECK(metric(f.counters, "tsp_bytes_sent_total", kTcp) ==
        kCapability.size() + std::string{"200 Success\r\n"}.size() + offer.size());
}

TEST_CASE("transport: a TCP create over IPv4 gives the peer as an IPv4 address", "[transport]") {
  Fixture f{{}, [](tsp::ServerConfig& c) { c.require_source_address = false; }};
  auto c = f.connect("127.0.0.1");
  CHECK(f.handshake(c) == "200 Success\r\n");
  c.send(
      framed("<tunnel action=\"create\" type=\"v4v6\"><client><address "
             "type=\"ipv6\">2001:db8::2</address></client></tunnel>"));
  const auto offer = f.read_through(c, "</tunnel>\r\n");
  CHECK(offer.find("<address type=\"ipv4\">192.0.2.10</address>") != std::string::npos);
  const auto allocations = f.handler.of<tsp::AllocateLease>();
  REQUIRE(allocations.size() == 1);
  CHECK(allocations[0].first.peer == tsp::PeerAddress{v4("127.0.0.1")});
  CHECK(allocations[0].first.transport == tsp::Transport::Tcp);
  CHECK(allocations[0].second.client_ipv6 == v6("2001:db8::2"));
}

TEST_CASE("transport: a TEP query over TCP is answered with the handler's mapping", "[transport]") {
  Fixture f;
  auto c = f.connect("127.0.0.1");
  CHECK(f.handshake(c, "1.0") == "OK Authentication successful\r\n");
  c.send(kQuery);
  CHECK(f.read(c, kAnswer.size()) == kAnswer);
  const auto lookups = f.handler.of<tsp::LookupMapping>();
  REQUIRE(lookups.size() == 1);
  CHECK(lookups[0].first.peer == tsp::PeerAddress{v4("127.0.0.1")});
  CHECK(lookups[0].second.ipv4 == v4("198.51.100.7"));
  // The session stays open for the next query.
  c.send(kQuery);
  CHECK(f.read(c, kAnswer.size()) == kAnswer);
  CHECK(f.handler.closed.empty());
  CHECK(f.handler.refused == 0);
}

TEST_CASE("transport: a UDP session echoes the header, answers retransmissions, allocates",
          "[transport]") {
  Fixture f;
  auto c = f.udp_client("::1");
  c.send(0xf00000f0, 930, "VERSION=2.0.2\r\n");
  CHECK(f.next(c) == datagram(0xf00000f0, 930, kCapability));
  c.send(0xf00000f1, 931, "AUTHENTICATE ANONYMOUS\r\n");
  CHECK(f.next(c) == datagram(0xf00000f1, 931, "200 Success\r\n"));
  REQUIRE(f.handler.authenticated.size() == 1);
  CHECK(f.handler.authenticated[0].transport == tsp::Transport::Udp);
  CHECK(f.handler.authenticated[0].peer == tsp::PeerAddress{v6("::1")});
  CHECK(f.handler.authenticated[0].peer_port == c.socket.local_endpoint().port());
  CHECK(f.transport->udp_sessions() == 1);

  c.send(0xf00000f2, 932, kCreateFromLoopback);
  const auto offer = f.next(c);
  REQUIRE(offer);
  CHECK(offer->substr(0, 8) == datagram(0xf00000f2, 932, ""));
  CHECK(offer->find("<address type=\"ipv4\">192.0.2.10</address>") != std::string::npos);
  const auto allocations = f.handler.of<tsp::AllocateLease>();
  REQUIRE(allocations.size() == 1);
  CHECK(allocations[0].first.transport == tsp::Transport::Udp);
  CHECK(allocations[0].second.client_ipv6 == v6("::1"));

  // A retransmission (new timestamp) gets the same reply behind its own header, and no second
  // allocation.
  c.send(0xf00000f2, 999, kCreateFromLoopback);
  const auto again = f.next(c);
  REQUIRE(again);
  CHECK(*again == datagram(0xf00000f2, 999, offer->substr(8)));
  CHECK(f.handler.of<tsp::AllocateLease>().size() == 1);

  c.send(0xf00000f3, 933, kAccept);
  CHECK(f.next(c) == datagram(0xf00000f3, 933, ""));
  CHECK(f.handler.of<tsp::ConfirmLease>().size() == 1);
  CHECK(f.transport->udp_sessions() == 1);
  CHECK(metric(f.counters, "tsp_sessions_total", kUdp) == 1);
  CHECK(metric(f.counters, "tsp_sessions", kUdp) == 1);
}

TEST_CASE("transport: a datagram that is not TSP is dropped and counted without a session",
          "[transport]") {
  Fixture f;
  auto c = f.udp_client("127.0.0.1");
  c.send_raw("hello");  // shorter than the header
  c.send_raw(std::string{"\x60\x00\x00\x00\x00\x00\x00\x01", 8} + "data");  // not signalling
  REQUIRE(run_until(f.io, [&] {
    return metric(f.counters, "tsp_datagrams_dropped_total", {{"reason", "malformed"}}) == 2;
  }));
  CHECK(f.transport->udp_sessions() == 0);
  CHECK(f.handler.calls == 0);
  c.poll();
  CHECK(c.received.empty());
  // The same peer speaking TSP gets a session.
  c.send(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  CHECK(f.next(c) == datagram(0xf00000f0, 1, kCapability));
  CHECK(f.transport->udp_sessions() == 1);
}

TEST_CASE("transport: the connection beyond max_connections_per_source is closed at once",
          "[transport]") {
  Fixture f{[](TransportOptions& o) { o.limits.max_connections_per_source = 2; }};
  auto a = f.connect("127.0.0.1");
  auto b = f.connect("127.0.0.1");
  REQUIRE(run_until(f.io, [&] { return f.transport->tcp_sessions() == 2; }));
  auto extra = f.connect("127.0.0.1");
  CHECK(f.wait_ended(extra));
  CHECK(extra.received.empty());
  CHECK(metric(f.counters, "tsp_rejected_total",
               {{"transport", "tcp"}, {"reason", "per_source"}}) == 1);
  CHECK(f.transport->tcp_sessions() == 2);
  // Another source (::1 is another address) is not affected, and the first two still work.
  auto other = f.connect("::1");
  CHECK(f.handshake(other) == "200 Success\r\n");
  a.send("VERSION=2.0.2\r\n");
  CHECK(f.read(a, kCapability.size()) == kCapability);
  CHECK(f.handler.closed.empty());  // a refused connection was never a session
}

TEST_CASE("transport: the connection beyond max_connections is closed at once", "[transport]") {
  Fixture f{[](TransportOptions& o) { o.limits.max_connections = 1; }};
  auto a = f.connect("::1");
  REQUIRE(run_until(f.io, [&] { return f.transport->tcp_sessions() == 1; }));
  auto extra = f.connect("127.0.0.1");
  CHECK(f.wait_ended(extra));
  CHECK(metric(f.counters, "tsp_rejected_total",
               {{"transport", "tcp"}, {"reason", "max_connections"}}) == 1);
  // Once the first is gone there is room again.
  a.socket.close();
  REQUIRE(run_until(f.io, [&] { return f.transport->tcp_sessions() == 0; }));
  auto next = f.connect("127.0.0.1");
  CHECK(f.handshake(next) == "200 Success\r\n");
}

TEST_CASE("transport: UDP sessions beyond max_udp_sessions_per_source are dropped and counted",
          "[transport]") {
  Fixture f{[](TransportOptions& o) { o.limits.max_udp_sessions_per_source = 1; }};
  auto a = f.udp_client("::1");
  auto b = f.udp_client("::1");
  a.send(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  CHECK(f.next(a) == datagram(0xf00000f0, 1, kCapability));
  b.send(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  REQUIRE(run_until(f.io, [&] {
    return metric(f.counters, "tsp_datagrams_dropped_total", {{"reason", "limit"}}) == 1;
  }));
  CHECK(metric(f.counters, "tsp_rejected_total",
               {{"transport", "udp"}, {"reason", "per_source"}}) == 1);
  CHECK(f.transport->udp_sessions() == 1);
  b.poll();
  CHECK(b.received.empty());
}

TEST_CASE("transport: new sessions beyond the per-source burst are refused, TCP and UDP together",
          "[transport]") {
  // One token per second: the test runs well within a second of its first connection.
  Fixture f{[](TransportOptions& o) {
    o.limits.new_sessions_per_second = 1;
    o.limits.new_sessions_burst = 2;
  }};
  auto a = f.connect("127.0.0.1");
  auto b = f.connect("127.0.0.1");
  auto c = f.connect("127.0.0.1");
  CHECK(f.wait_ended(c));
  CHECK(metric(f.counters, "tsp_rejected_total", {{"transport", "tcp"}, {"reason", "rate"}}) == 1);
  CHECK(f.transport->tcp_sessions() == 2);
  auto u = f.udp_client("127.0.0.1");
  u.send(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  REQUIRE(run_until(f.io, [&] {
    return metric(f.counters, "tsp_datagrams_dropped_total", {{"reason", "rate"}}) == 1;
  }));
  CHECK(f.transport->udp_sessions() == 0);
  // Another source has its own bucket.
  auto other = f.connect("::1");
  CHECK(f.handshake(other) == "200 Success\r\n");
}

TEST_CASE("transport: sessions end by their deadline, on_closed once each (UDP after linger)",
          "[transport]") {
  Fixture f{{}, [](tsp::ServerConfig& c) {
              c.deadlines.handshake = 50ms;
              c.deadlines.udp_linger = 500ms;
            }};
  auto t = f.connect("::1");
  auto u = f.udp_client("127.0.0.1");
  u.send(0xf00000f0, 7, "VERSION=2.0.2\r\n");
  CHECK(f.next(u) == datagram(0xf00000f0, 7, kCapability));
  CHECK(f.wait_ended(t));  // the TCP handshake deadline closed the connection
  t.socket.close();        // our FIN ends the server's wait for it
  REQUIRE(run_until(f.io, [&] { return metric(f.counters, "tsp_timeouts_total") == 2; }));
  // The closed UDP session lingers and still answers a retransmission.
  CHECK(f.transport->udp_sessions() == 1);
  u.send(0xf00000f0, 8, "VERSION=2.0.2\r\n");
  CHECK(f.next(u) == datagram(0xf00000f0, 8, kCapability));
  REQUIRE(run_until(f.io, [&] { return f.handler.closed.size() == 2; }));
  CHECK(f.transport->udp_sessions() == 0);
  CHECK(f.transport->tcp_sessions() == 0);
  CHECK(f.handler.closed[0].id != f.handler.closed[1].id);
  run_for(f.io, 100ms);
  CHECK(f.handler.closed.size() == 2);
  CHECK(metric(f.counters, "tsp_sessions", kTcp) == 0);
  CHECK(metric(f.counters, "tsp_sessions", kUdp) == 0);
}

TEST_CASE("transport: a new session from an older session's address and port replaces it",
          "[transport]") {
  Fixture f{{}, [](tsp::ServerConfig& c) {
              c.deadlines.handshake = 50ms;
              c.deadlines.udp_linger = 60s;
            }};
  auto u = f.udp_client("127.0.0.1");
  u.send(0xf00000f0, 7, "VERSION=2.0.2\r\n");
  CHECK(f.next(u) == datagram(0xf00000f0, 7, kCapability));
  REQUIRE(run_until(f.io, [&] { return metric(f.counters, "tsp_timeouts_total") == 1; }));
  CHECK(f.transport->udp_sessions() == 1);  // lingering
  // Same port, a new session (another sequence number): served at once, not after the linger.
  u.send(0xf0000100, 9, "VERSION=2.0.2\r\n");
  CHECK(f.next(u) == datagram(0xf0000100, 9, kCapability));
  CHECK(f.handler.closed.size() == 1);  // the lingering one ended
  CHECK(f.transport->udp_sessions() == 1);
  CHECK(metric(f.counters, "tsp_sessions_total", kUdp) == 2);
}

TEST_CASE("transport: stop() closes every session, calls on_closed for each, then nothing",
          "[transport]") {
  Fixture f;
  auto a = f.connect("127.0.0.1");
  auto b = f.connect("::1");
  CHECK(f.handshake(b) == "200 Success\r\n");
  auto u = f.udp_client("::1");
  u.send(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  CHECK(f.next(u) == datagram(0xf00000f0, 1, kCapability));
  REQUIRE(run_until(f.io, [&] { return f.transport->tcp_sessions() == 2; }));
  const tcp::endpoint listening = f.tcp_endpoint("127.0.0.1");

  f.transport->stop();
  CHECK(f.handler.closed.size() == 3);
  CHECK(f.transport->tcp_sessions() == 0);
  CHECK(f.transport->udp_sessions() == 0);
  CHECK(f.transport->endpoints().empty());
  CHECK(metric(f.counters, "tsp_sessions", kTcp) == 0);
  CHECK(metric(f.counters, "tsp_sessions", kUdp) == 0);
  CHECK(f.wait_ended(a));
  CHECK(f.wait_ended(b));

  const int calls = f.handler.calls;
  u.send(0xf00000f1, 2, "AUTHENTICATE ANONYMOUS\r\n");
  run_for(f.io, 50ms);
  CHECK(f.handler.calls == calls);
  tcp::socket late{f.client_io};
  boost::system::error_code ec;
  late.connect(listening, ec);
  CHECK(ec == asio::error::connection_refused);
  f.transport->stop();  // idempotent
  CHECK(f.handler.closed.size() == 3);
}

TEST_CASE("transport: an EventSink to a closed session returns false", "[transport]") {
  Fixture f;
  f.handler.answer = false;
  auto c = f.connect("127.0.0.1");
  CHECK(f.handshake(c, "1.0") == "OK Authentication successful\r\n");
  c.send(kQuery);
  REQUIRE(run_until(f.io, [&] { return f.handler.sinks.size() == 1; }));
  const auto lookup = f.handler.of<tsp::LookupMapping>().at(0).second;
  // Alive: the answer is fed (later, never inside the caller) and sent.
  CHECK(f.handler.sinks[0](tsp::MappingNotFound{lookup.query_id, tsp::Status::InvalidIpv4Address}));
  CHECK(f.read(c, kNotFound.size()) == kNotFound);

  c.send(kQuery);
  REQUIRE(run_until(f.io, [&] { return f.handler.sinks.size() == 2; }));
  c.socket.close();
  REQUIRE(run_until(f.io, [&] { return f.handler.closed.size() == 1; }));
  const int calls = f.handler.calls;
  CHECK_FALSE(f.handler.sinks[1](
      tsp::MappingFound{f.handler.of<tsp::LookupMapping>().at(1).second.query_id,
                        tsp::Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440}}));
  run_for(f.io, 20ms);
  CHECK(f.handler.calls == calls);
}

TEST_CASE("transport: port 0 binds TCP and UDP to the same port on every address", "[transport]") {
  Fixture f;
  const auto e = f.transport->endpoints();
  REQUIRE(e.size() == 4);
  const std::uint16_t port = e[0].port;
  CHECK(port != 0);
  CHECK(e[0].transport == tsp::Transport::Tcp);
  CHECK(e[0].address == "::1");
  CHECK(e[1].transport == tsp::Transport::Tcp);
  CHECK(e[1].address == "127.0.0.1");
  CHECK(e[2].transport == tsp::Transport::Udp);
  CHECK(e[2].address == "::1");
  CHECK(e[3].transport == tsp::Transport::Udp);
  CHECK(e[3].address == "127.0.0.1");
  for (const auto& b : e) CHECK(b.port == port);
}

TEST_CASE("transport: start() fails naming the listener and leaves nothing bound", "[transport]") {
  asio::io_context io;
  Handler handler;
  auto options = [](std::uint16_t port, bool tcp_on, bool udp_on, bool with_v6) {
    TransportOptions o;
    if (with_v6) o.listen.ipv6 = {v6("::1")};
    o.listen.ipv4 = {v4("127.0.0.1")};
    o.listen.port = port;
    o.listen.tcp = tcp_on;
    o.listen.udp = udp_on;
    o.session = std::make_shared<const tsp::ServerConfig>(server_config());
    return o;
  };
  // A port free for TCP and UDP on both addresses (just now; other programs' client sockets
  // take ephemeral ports too), of which the test then holds UDP 127.0.0.1.
  std::uint16_t port = 0;
  {
    Transport probe{io, handler, options(0, true, true, true)};
    REQUIRE(probe.start().has_value());
    port = probe.endpoints().at(0).port;
  }
  udp::socket holder{io, udp::endpoint{asio::ip::make_address("127.0.0.1"), port}};

  // TCP ::1, TCP 127.0.0.1 and UDP ::1 bind, UDP 127.0.0.1 fails: all are released.
  Transport failing{io, handler, options(port, true, true, true)};
  const auto r = failing.start();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == boost::system::errc::address_in_use);
  CHECK(r.error().detail == "udp 127.0.0.1:" + std::to_string(port));
  CHECK(failing.endpoints().empty());

  Transport after{io, handler, options(port, true, false, true)};
  CHECK(after.start().has_value());
  after.stop();
  {
    TransportOptions o = options(port, true, true, false);
    o.listen.ipv4.clear();
    o.listen.ipv6 = {v6("::1")};
    Transport both_v6{io, handler, std::move(o)};
    CHECK(both_v6.start().has_value());
    // Once only.
    const auto again = both_v6.start();
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == boost::system::errc::already_connected);
  }
  CHECK(handler.calls == 0);
}

TEST_CASE("transport: a reply beyond max_write_queue drops the connection", "[transport]") {
  Fixture f{[](TransportOptions& o) { o.max_write_queue = 200; }};
  auto c = f.connect("127.0.0.1");
  CHECK(f.handshake(c, "1.0") == "OK Authentication successful\r\n");
  c.send(kQuery);  // the answer (324 bytes) does not fit
  CHECK(f.wait_ended(c));
  CHECK(c.received.empty());
  CHECK(metric(f.counters, "tsp_write_overflows_total") == 1);
  REQUIRE(run_until(f.io, [&] { return f.handler.closed.size() == 1; }));
  CHECK(f.transport->tcp_sessions() == 0);
}

TEST_CASE("transport: a write stuck past write_timeout drops the connection", "[transport]") {
  Fixture f{[](TransportOptions& o) {
    o.write_timeout = 100ms;
    o.max_write_queue = std::size_t{1} << 30;  // the deadline, not the queue bound, must act
  }};
  // A TEP that pipelines queries and never reads: the answers fill its receive window and our
  // send buffer (tcp_send_buffer, 64 KiB), and then a write stays stuck.
  tcp::socket c{f.client_io, tcp::v4()};
  c.set_option(asio::socket_base::receive_buffer_size{4096});
  c.connect(f.tcp_endpoint("127.0.0.1"));
  asio::write(c, asio::buffer(std::string{"VERSION=1.0\r\nAUTHENTICATE ANONYMOUS\r\n"}));
  // Written without blocking: the server runs on this thread.
  c.non_blocking(true);
  std::string pending;
  const bool stuck = run_until(
      f.io,
      [&] {
        if (pending.size() < 64 * 1024)
          for (int i = 0; i < 64; ++i) pending += kQuery;
        boost::system::error_code ec;
        const auto n = c.write_some(asio::buffer(pending), ec);
        if (!ec) pending.erase(0, n);
        return metric(f.counters, "tsp_timeouts_total") == 1;
      },
      30s);
  INFO("answered " << metric(f.counters, "tsp_bytes_sent_total", kTcp) << " bytes");
  REQUIRE(stuck);
  CHECK(metric(f.counters, "tsp_write_overflows_total") == 0);
  REQUIRE(run_until(f.io, [&] { return f.handler.closed.size() == 1; }));
  CHECK(f.transport->tcp_sessions() == 0);
}
