// Tests for tsp/client_session.hpp: the client replays gogoc's side of the captured exchanges,
// talks to the server session end to end (TCP and UDP, every mechanism), pipelines TEP queries,
// retransmits over UDP and reports failures.
#include "tsp/client_session.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <functional>
#include <map>

#include "server_test_util.hpp"

using namespace tsp;
using namespace tsp_test;

namespace {

const std::string kInfoV4v6 =
    "Content-length: 413\r\n200 Success\r\n<tunnel action=\"info\" type=\"v4v6\" "
    "lifetime=\"3600\"><server><address type=\"ipv4\">192.0.2.1</address><address "
    "type=\"ipv6\">2001:db8::1</address></server><client><address "
    "type=\"ipv4\">198.51.100.10</address><address type=\"ipv6\">::1</address><dns_server><address "
    "type=\"ipv6\">2001:db8::53</address></dns_server><keepalive interval=\"30\"><address "
    "type=\"ipv4\">192.0.2.1</address></keepalive></client></tunnel>\r\n";

Tunnel v4v6_create(const char* ipv6 = "::1") {
  Tunnel t = make_tunnel(TunnelAction::Create, TunnelType::V4V6);
  t.proxy = false;
  t.client = Endpoint{};
  t.client->addresses = {Address{v6(ipv6), std::nullopt}};
  t.client->keepalive = Keepalive{30, Address{v4("127.0.0.1"), std::nullopt}};
  return t;
}

ClientConfig dstm_client(Transport transport, std::vector<Mechanism> mechanisms) {
  ClientConfig c;
  c.transport = transport;
  c.mechanisms = std::move(mechanisms);
  c.username = "alice";
  c.password = "secret";
  c.server_name = "127.0.0.1";
  c.random = counting_random({1795275956});
  c.request = v4v6_create();
  return c;
}

ClientConfig tep_client(Transport transport = Transport::Tcp) {
  ClientConfig c;
  c.transport = transport;
  c.version = kVersion1_0;
  c.mechanisms = {Mechanism::Anonymous};
  c.random = counting_random({1});
  c.tep_ipv4 = v4("192.0.2.2");
  c.tep_ipv6 = v6("2001:db8:0:1::2");
  return c;
}

std::vector<ClientAction> feed(ClientSession& c, std::string_view data) {
  return c.handle(BytesReceived{core::as_bytes(data)});
}

// Connects a client and a server session in memory, with a daemon that grants every lease and
// knows a fixed mapping table. Timers are not run except the server's DeferredReply (at once).
struct Loop {
  Loop(ClientConfig cc, ServerConfig sc, PeerAddress client_address)
      : transport{cc.transport},
        client{std::move(cc)},
        server{std::make_shared<const ServerConfig>(std::move(sc)), transport, client_address} {}

  void start() {
    on_server(server.handle(Start{}));
    on_client(client.handle(Start{}));
    run();
  }
  void client_event(const ClientEvent& e) {
    on_client(client.handle(e));
    run();
  }

  void run() {
    while (!work.empty()) {
      auto w = std::move(work.front());
      work.pop_front();
      w();
    }
  }

  void on_client(const std::vector<ClientAction>& actions) {
    client_log.insert(client_log.end(), actions.begin(), actions.end());
    max_in_flight = std::max(max_in_flight, client.in_flight());
    for (const auto& s : only<Send>(actions)) {
      work.push_back([this, bytes = s.bytes] {
        if (transport == Transport::Tcp) {
          on_server(server.handle(BytesReceived{bytes}));
        } else {
          on_server(server.handle(DatagramReceived{bytes}));
        }
      });
    }
  }

  void on_server(const std::vector<ServerAction>& actions) {
    server_log.insert(server_log.end(), actions.begin(), actions.end());
    for (const auto& a : actions) {
      if (const auto* s = std::get_if<Send>(&a)) {
        work.push_back([this, bytes = s->bytes] {
          if (transport == Transport::Tcp) {
            on_client(client.handle(BytesReceived{bytes}));
          } else {
            on_client(client.handle(DatagramReceived{bytes}));
          }
        });
      } else if (std::get_if<AllocateLease>(&a)) {
        work.push_back([this] { on_server(server.handle(LeaseAllocated{dstm_offer()})); });
      } else if (const auto* l = std::get_if<LookupMapping>(&a)) {
        work.push_back([this, l = *l] {
          auto it = mappings.find(l.ipv4.to_uint());
          if (it == mappings.end()) {
            on_server(server.handle(MappingNotFound{l.query_id, Status::InvalidIpv4Address}));
          } else {
            on_server(server.handle(MappingFound{l.query_id, it->second}));
          }
        });
      } else if (const auto* b = std::get_if<Heartbeat>(&a)) {
        work.push_back([this, id = b->query_id] {
          on_server(server.handle(HeartbeatAnswered{id, Status::Success, 30, withdrawn, false}));
        });
      } else if (const auto* t = std::get_if<ArmTimer>(&a)) {
        if (t->timer == TimerKind::DeferredReply)
          work.push_back([this, t = *t] {
            on_server(server.handle(TimerExpired{t.timer, t.generation}));
          });
      }
    }
  }

  Transport transport;
  ClientSession client;
  ServerSession server;
  std::map<std::uint32_t, Mapping> mappings;
  std::vector<core::Ipv4Address> withdrawn;  // every heartbeat's answer
  std::size_t max_in_flight = 0;             // the most the client had in flight
  std::deque<std::function<void()>> work;
  std::vector<ClientAction> client_log;
  std::vector<ServerAction> server_log;
};

}  // namespace

TEST_CASE("client golden: DIGEST-MD5 on TCP sends gogoc's exact response (10.2)", "[tsp][client]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
  CHECK(sent(c.handle(Start{})) == std::vector<std::string>{"VERSION=2.0.2\r\n"});
  CHECK(sent(feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS AUTH=PLAIN AUTH=DIGEST-MD5\r\n")) ==
        std::vector<std::string>{"AUTHENTICATE DIGEST-MD5\r\n"});
  CHECK(sent(feed(c, kChallenge)) == std::vector{kDigestResponse});
  CHECK(feed(c, kRspauth).size() == 1);  // only the reply deadline is re-armed
  CHECK(c.state() == ClientState::AwaitAuthSuccess);
  auto a = feed(c, "200 Success\r\n");
  CHECK(only<Authenticated>(a) == std::vector{Authenticated{Mechanism::DigestMd5}});
  CHECK(sent(a) == std::vector{request_message(v4v6_create())});
  a = feed(c, kInfoV4v6);
  CHECK(sent(a) ==
        std::vector<std::string>{"Content-length: 35\r\n<tunnel action=\"accept\"></tunnel>\r\n"});
  const auto est = only<TunnelEstablished>(a);
  REQUIRE(est.size() == 1);
  CHECK(est[0].offer.client->ipv4() == v4("198.51.100.10"));
  CHECK(est[0].offer.server->ipv6() == v6("2001:db8::1"));
  CHECK(c.state() == ClientState::Established);
}

TEST_CASE("client golden: rspauth and 200 Success in one segment also work", "[tsp][client]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
  c.handle(Start{});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5\r\n");
  feed(c, kChallenge);
  CHECK(has<Authenticated>(feed(c, kRspauth + "200 Success\r\n")));
}

TEST_CASE("client golden: the draft's TEP query (Appendix A)", "[tsp][client][query]") {
  ClientSession c{tep_client()};
  CHECK(sent(c.handle(Start{})) == std::vector<std::string>{"VERSION=1.0\r\n"});
  // Submitted early: sent once authenticated.
  CHECK(c.handle(SubmitQuery{7, v4("198.51.100.7")}).empty());
  CHECK(sent(feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5 AUTH=ANONYMOUS\r\n")) ==
        std::vector<std::string>{"AUTHENTICATE ANONYMOUS\r\n"});
  auto a = feed(c, "OK Authentication successful\r\n");
  CHECK(has<Authenticated>(a));
  CHECK(sent(a) == std::vector{kQuery});
  a = feed(c, kAnswer);
  CHECK(only<QueryAnswered>(a) ==
        std::vector{QueryAnswered{7, v4("198.51.100.7"),
                                  Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440},
                                  StatusLine{200, "OK"}}});
  CHECK(c.state() == ClientState::Authenticated);
}

TEST_CASE("client failures: 302, redirect, no common mechanism, bad rspauth", "[tsp][client]") {
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
    c.handle(Start{});
    auto a = feed(c, "302 Unsupported client version\r\n");
    CHECK(only<SessionFailed>(a) ==
          std::vector{
              SessionFailed{Errc::ErrorStatus, StatusLine{302, "Unsupported client version"}}});
    CHECK(has<Close>(a));
  }
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
    c.handle(Start{});
    auto a = feed(c, redirect_content(Status::UnsupportedVersion,
                                      {Address{v6("2001:db8::99"), std::nullopt}}));
    const auto r = only<Redirected>(a);
    REQUIRE(r.size() == 1);
    CHECK(r[0].status.code == 1302);
    CHECK(r[0].brokers == std::vector{Address{v6("2001:db8::99"), std::nullopt}});
  }
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
    c.handle(Start{});
    auto a = feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
    CHECK(only<SessionFailed>(a)[0].reason == Errc::NoCommonMechanism);
  }
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
    c.handle(Start{});
    auto a = feed(c, "CAPABILITY TUNNEL=V6V4 AUTH=DIGEST-MD5\r\n");
    CHECK(only<SessionFailed>(a)[0].reason == Errc::NoCommonTunnelType);
  }
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::DigestMd5})};
    c.handle(Start{});
    feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5\r\n");
    feed(c, kChallenge);
    auto a = feed(c, base64_encode("rspauth=00000000000000000000000000000000") + "\r\n");
    CHECK(only<SessionFailed>(a)[0].reason == Errc::RspauthMismatch);
  }
  {
    ClientSession c{dstm_client(Transport::Tcp, {Mechanism::Plain})};
    c.handle(Start{});
    feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=PLAIN\r\n");
    auto a = feed(c, "300 Authentication failed\r\n");
    CHECK(only<SessionFailed>(a)[0].reason == Errc::AuthenticationFailed);
  }
}

TEST_CASE("client: an incomplete offer is rejected", "[tsp][client]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::Anonymous})};
  c.handle(Start{});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  feed(c, "200 Success\r\n");
  // No server IPv6: gogoc refuses such an offer, so do we.
  auto a = feed(c, reply_message("200 Success", [] {
                  Tunnel t = make_tunnel(TunnelAction::Info, TunnelType::V4V6, 60);
                  t.server = Endpoint{};
                  t.server->addresses = {Address{v4("192.0.2.1"), std::nullopt}};
                  t.client = Endpoint{};
                  t.client->addresses = {Address{v4("198.51.100.1"), std::nullopt},
                                         Address{v6("::1"), std::nullopt}};
                  return t;
                }()));
  CHECK(sent(a) ==
        std::vector<std::string>{"Content-length: 35\r\n<tunnel action=\"reject\"></tunnel>\r\n"});
  CHECK(only<SessionFailed>(a)[0].reason == Errc::BadTunnel);
}

TEST_CASE("client and server: every mechanism over TCP and UDP", "[tsp][client][server]") {
  for (auto transport : {Transport::Tcp, Transport::Udp}) {
    for (auto m : {Mechanism::Anonymous, Mechanism::Plain, Mechanism::DigestMd5}) {
      INFO((transport == Transport::Tcp ? "tcp " : "udp ") << mechanism_name(m));
      Loop loop{dstm_client(transport, {m}), dstm_config(), v6("::1")};
      loop.start();
      CHECK(only<Authenticated>(loop.client_log) == std::vector{Authenticated{m}});
      const auto est = only<TunnelEstablished>(loop.client_log);
      REQUIRE(est.size() == 1);
      CHECK(est[0].offer.client->ipv4() == v4("198.51.100.10"));
      CHECK(only<ConfirmLease>(loop.server_log).size() == 1);
      CHECK(loop.server.state() == ServerState::Established);
      CHECK(loop.client.state() == ClientState::Established);
      CHECK_FALSE(has<SessionFailed>(loop.client_log));
      // Release.
      loop.client_event(RequestDelete{});
      CHECK(has<Deleted>(loop.client_log));
      CHECK(only<ReleaseLease>(loop.server_log).size() == 1);
    }
  }
}

TEST_CASE("client and server: 1.0.1 has no accept", "[tsp][client][server]") {
  auto cc = dstm_client(Transport::Tcp, {Mechanism::DigestMd5});
  cc.version = kVersion1_0_1;
  Loop loop{cc, dstm_config(), v6("::1")};
  loop.start();
  CHECK(has<TunnelEstablished>(loop.client_log));
  for (const auto& s : only<Send>(loop.client_log))
    CHECK(text(s.bytes).find("accept") == std::string::npos);
}

TEST_CASE("client and server: a pipelined query session", "[tsp][client][server][query]") {
  for (auto transport : {Transport::Tcp, Transport::Udp}) {
    INFO((transport == Transport::Tcp ? "tcp" : "udp"));
    Loop loop{tep_client(transport), draft_config(), v6("2001:db8:0:1::2")};
    loop.mappings[v4("198.51.100.7").to_uint()] =
        Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440};
    loop.mappings[v4("198.51.100.9").to_uint()] =
        Mapping{v4("198.51.100.9"), v6("2001:db8:0:2::9"), 60};
    loop.start();
    REQUIRE(loop.client.state() == ClientState::Authenticated);
    // Submit a burst without waiting: TCP sends all at once.
    auto burst = loop.client.handle(SubmitQuery{1, v4("198.51.100.7")});
    for (std::uint64_t id = 2; id <= 4; ++id) {
      const auto a =
          loop.client.handle(SubmitQuery{id, v4(id % 2 == 0 ? "198.51.100.8" : "198.51.100.9")});
      burst.insert(burst.end(), a.begin(), a.end());
    }
    CHECK(only<Send>(burst).size() == (transport == Transport::Tcp ? 4u : 1u));
    loop.on_client(burst);
    loop.run();
    const auto answers = only<QueryAnswered>(loop.client_log);
    REQUIRE(answers.size() == 4);
    CHECK(answers[0].mapping == Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440});
    CHECK_FALSE(answers[1].mapping);
    CHECK(answers[1].status.code == 501);
    CHECK(answers[2].mapping->ipv6 == v6("2001:db8:0:2::9"));
    CHECK(answers[3].query_id == 4);
    CHECK(loop.server.state() == ServerState::Authenticated);
    CHECK(loop.client.pending_queries() == 0);
  }
}

TEST_CASE("client udp: gogoc's sequence numbers, retransmission, giving up", "[tsp][client][udp]") {
  auto cc = dstm_client(Transport::Udp, {Mechanism::Anonymous});
  std::uint32_t clock = 930;
  cc.udp_timestamp = [&clock] { return clock++; };
  ClientSession c{cc};
  auto a = c.handle(Start{});
  const auto first = sent_datagrams(a);
  REQUIRE(first.size() == 1);
  CHECK(first[0] == SentDatagram{UdpHeader{0xF00000F0u, 930}, "VERSION=2.0.2\r\n"});
  auto timer = only<ArmTimer>(a);
  REQUIRE(timer.size() == 1);
  CHECK(timer[0].after == std::chrono::seconds{2});
  // Unanswered: the same datagram again, RTO doubling, then give up after 3 tries.
  auto r1 = c.handle(TimerExpired{TimerKind::Retransmit, timer[0].generation});
  CHECK(only<Send>(r1) == only<Send>(a));
  CHECK(only<ArmTimer>(r1)[0].after == std::chrono::seconds{4});
  auto r2 = c.handle(TimerExpired{TimerKind::Retransmit, only<ArmTimer>(r1)[0].generation});
  CHECK(only<ArmTimer>(r2)[0].after == std::chrono::seconds{8});
  auto r3 = c.handle(TimerExpired{TimerKind::Retransmit, only<ArmTimer>(r2)[0].generation});
  CHECK(only<SessionFailed>(r3) == std::vector{SessionFailed{Errc::Timeout, std::nullopt}});
  CHECK(has<Close>(r3));
}

TEST_CASE("client udp: replies with another sequence are ignored", "[tsp][client][udp]") {
  ClientSession c{dstm_client(Transport::Udp, {Mechanism::Anonymous})};
  c.handle(Start{});
  const auto wrong = datagram(0xF00000F1u, 0, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  CHECK(c.handle(DatagramReceived{wrong}).empty());
  const auto right = datagram(0xF00000F0u, 0, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  const auto a = c.handle(DatagramReceived{right});
  const auto d = sent_datagrams(a);
  REQUIRE(d.size() == 1);
  CHECK(d[0].header.sequence_word == 0xF00000F1u);
  CHECK(d[0].payload == "AUTHENTICATE ANONYMOUS\r\n");
  // A duplicate of an answered reply is ignored too.
  CHECK(c.handle(DatagramReceived{right}).empty());
}

TEST_CASE("client: a query outside a query session is answered locally", "[tsp][client]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::Anonymous})};
  c.handle(Start{});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  feed(c, "200 Success\r\n");
  const auto a = c.handle(SubmitQuery{1, v4("198.51.100.1")});
  REQUIRE(only<QueryAnswered>(a).size() == 1);
  CHECK(only<QueryAnswered>(a)[0].status.code == 500);
}

TEST_CASE("client: reply deadline and peer close end the session", "[tsp][client]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::Anonymous})};
  auto a = c.handle(Start{});
  auto t = c.handle(TimerExpired{TimerKind::Phase, only<ArmTimer>(a)[0].generation});
  CHECK(only<SessionFailed>(t)[0].reason == Errc::Timeout);
  ClientSession d{dstm_client(Transport::Tcp, {Mechanism::Anonymous})};
  d.handle(Start{});
  CHECK(only<SessionFailed>(d.handle(PeerClosed{}))[0].reason == Errc::PeerClosed);
  CHECK(d.handle(PeerClosed{}).empty());
}

// ---- TEP heartbeats (extension, docs/tsp.md) and the in-flight window ----

namespace {

const std::string kHeartbeat =
    "Content-length: 50\r\n<tunnel action=\"heartbeat\" type=\"v4v6\"></tunnel>\r\n";
const std::string kHeartbeatAnswer =
    "Content-length: 180\r\n200 Success\r\n<tunnel action=\"heartbeat\" type=\"v4v6\" "
    "lifetime=\"30\"><server><address type=\"ipv4\">198.51.100.7</address><address "
    "type=\"ipv4\">198.51.100.8</address></server></tunnel>\r\n";
const std::string kFlushAnswer =
    "Content-length: 90\r\n200 Success\r\n<tunnel action=\"heartbeat\" type=\"v4v6\" "
    "lifetime=\"600\" flush=\"yes\"></tunnel>\r\n";

// A TEP session over TCP, authenticated, nothing submitted yet.
ClientSession authenticated_tep(ClientConfig config = tep_client()) {
  ClientSession c{std::move(config)};
  c.handle(Start{});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  REQUIRE(has<Authenticated>(feed(c, "OK Authentication successful\r\n")));
  return c;
}

// A 200 heartbeat answer (interval 30) listing these addresses.
std::string heartbeat_with(std::vector<Address> addresses) {
  Tunnel t = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6, 30);
  t.server = Endpoint{};
  t.server->addresses = std::move(addresses);
  return reply_message("200 Success", t);
}

std::string not_leased() {
  return reply_message(status_line(Status::InvalidIpv4Address));
}

}  // namespace

TEST_CASE("client heartbeat: submitted before authentication, pipelined with a query",
          "[tsp][client][heartbeat]") {
  ClientSession c{tep_client()};
  c.handle(Start{});
  CHECK(c.handle(SubmitHeartbeat{5}).empty());
  CHECK(c.handle(SubmitQuery{6, v4("198.51.100.7")}).empty());
  CHECK(c.pending_queries() == 2);
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  auto a = feed(c, "OK Authentication successful\r\n");
  CHECK(sent(a) == std::vector{kHeartbeat, kQuery});
  CHECK(c.in_flight() == 2);
  a = feed(c, kHeartbeatAnswer + kAnswer);
  CHECK(only<HeartbeatReply>(a) ==
        std::vector{HeartbeatReply{
            5, StatusLine{200, "Success"}, 30, {v4("198.51.100.7"), v4("198.51.100.8")}, false}});
  CHECK(only<QueryAnswered>(a).size() == 1);
  CHECK(only<QueryAnswered>(a)[0].mapping->ipv6 == v6("2001:db8:0:2::7"));
  CHECK(c.pending_queries() == 0);
  CHECK(only<CancelTimer>(a).size() == 1);  // nothing outstanding: no reply deadline
}

TEST_CASE("client heartbeat: flush, and an error status, are reported - the session goes on",
          "[tsp][client][heartbeat]") {
  auto c = authenticated_tep();
  c.handle(SubmitHeartbeat{1});
  c.handle(SubmitHeartbeat{2});
  auto a = feed(c, kFlushAnswer + "Content-length: 27\r\n300 Authentication failed\r\n");
  CHECK(only<HeartbeatReply>(a) ==
        std::vector{HeartbeatReply{1, StatusLine{200, "Success"}, 600, {}, true},
                    HeartbeatReply{2, StatusLine{300, "Authentication failed"}, 0, {}, false}});
  CHECK_FALSE(has<SessionFailed>(a));
  CHECK(c.state() == ClientState::Authenticated);
}

TEST_CASE("client heartbeat: a 200 without a valid heartbeat element fails the session",
          "[tsp][client][heartbeat]") {
  const Address withdrawn{v4("198.51.100.7"), std::nullopt};
  const std::pair<const char*, std::string> cases[] = {
      {"no XML", "Content-length: 13\r\n200 Success\r\n"},
      {"a query answer", kAnswer},
      {"no lifetime",
       reply_message("200 Success", make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6))},
      {"no type",
       reply_message("200 Success", make_tunnel(TunnelAction::Heartbeat, std::nullopt, 30))},
      {"an IPv6 address", heartbeat_with({Address{v6("::1"), std::nullopt}})},
      {"more than kMaxWithdrawnPerHeartbeat",
       heartbeat_with(std::vector(kMaxWithdrawnPerHeartbeat + 1, withdrawn))},
  };
  for (const auto& [name, reply] : cases) {
    INFO(name);
    auto c = authenticated_tep();
    c.handle(SubmitHeartbeat{1});
    const auto a = feed(c, reply);
    REQUIRE(only<SessionFailed>(a).size() == 1);
    CHECK(only<SessionFailed>(a)[0].reason == Errc::BadTunnel);
    CHECK(only<SessionFailed>(a)[0].status->code == 200);
    CHECK(only<HeartbeatReply>(a).empty());
    CHECK(has<Close>(a));
  }
  // A heartbeat answer where a query answer is due is out of step as well.
  auto c = authenticated_tep();
  c.handle(SubmitQuery{1, v4("198.51.100.7")});
  CHECK(only<SessionFailed>(feed(c, kHeartbeatAnswer))[0].reason == Errc::BadTunnel);
}

TEST_CASE("client heartbeat: outside a query session it is answered locally",
          "[tsp][client][heartbeat]") {
  ClientSession c{dstm_client(Transport::Tcp, {Mechanism::Anonymous})};
  c.handle(Start{});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  feed(c, "200 Success\r\n");
  const auto a = c.handle(SubmitHeartbeat{3});
  CHECK(sent(a).empty());
  CHECK(only<HeartbeatReply>(a) ==
        std::vector{HeartbeatReply{3, StatusLine{500, "Invalid request"}, 0, {}, false}});
}

TEST_CASE("client and server: heartbeats and queries in one session, TCP and UDP",
          "[tsp][client][server][heartbeat]") {
  for (auto transport : {Transport::Tcp, Transport::Udp}) {
    INFO((transport == Transport::Tcp ? "tcp" : "udp"));
    Loop loop{tep_client(transport), draft_config(), v6("2001:db8:0:1::2")};
    loop.mappings[v4("198.51.100.7").to_uint()] =
        Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440};
    loop.withdrawn = {v4("198.51.100.9")};
    loop.client_event(SubmitHeartbeat{1});  // before Start: waits for authentication
    loop.start();
    std::vector<ClientAction> burst;
    for (const ClientEvent& e :
         {ClientEvent{SubmitQuery{2, v4("198.51.100.7")}}, ClientEvent{SubmitHeartbeat{3}},
          ClientEvent{SubmitQuery{4, v4("198.51.100.8")}}}) {
      const auto a = loop.client.handle(e);
      burst.insert(burst.end(), a.begin(), a.end());
    }
    loop.on_client(burst);
    loop.run();
    const auto beats = only<HeartbeatReply>(loop.client_log);
    const auto answers = only<QueryAnswered>(loop.client_log);
    REQUIRE(beats.size() == 2);
    REQUIRE(answers.size() == 2);
    CHECK(beats[0] ==
          HeartbeatReply{1, StatusLine{200, "Success"}, 30, {v4("198.51.100.9")}, false});
    CHECK(beats[1].query_id == 3);
    CHECK(answers[0].mapping->ipv6 == v6("2001:db8:0:2::7"));
    CHECK(answers[1].status.code == 501);
    CHECK_FALSE(has<SessionFailed>(loop.client_log));
    CHECK(loop.client.pending_queries() == 0);
    CHECK(loop.server.state() == ServerState::Authenticated);
  }
}

TEST_CASE("client window: at most max_in_flight unanswered, the rest sent as answers arrive",
          "[tsp][client][window]") {
  auto config = tep_client();
  config.max_in_flight = 3;
  auto c = authenticated_tep(config);
  std::vector<std::string> requests;
  for (std::uint64_t id = 1; id <= 5; ++id) {
    const auto a =
        id % 2 == 0 ? c.handle(SubmitHeartbeat{id}) : c.handle(SubmitQuery{id, v4("198.51.100.1")});
    for (auto& s : sent(a)) requests.push_back(s);
  }
  CHECK(requests.size() == 3);
  CHECK(c.in_flight() == 3);
  CHECK(c.pending_queries() == 5);

  // Each answer lets one more out, in submission order.
  auto a = feed(c, not_leased());
  CHECK(only<QueryAnswered>(a).size() == 1);
  CHECK(sent(a) == std::vector{kHeartbeat});  // request 4
  CHECK(c.in_flight() == 3);
  CHECK(has<ArmTimer>(a));
  a = feed(c, kFlushAnswer + not_leased());
  CHECK(sent(a).size() == 1);  // request 5; nothing is left to send after it
  CHECK(c.in_flight() == 2);
  CHECK(c.pending_queries() == 2);
  a = feed(c, kFlushAnswer + not_leased());
  CHECK(sent(a).empty());
  CHECK(only<HeartbeatReply>(a).size() == 1);
  CHECK(only<QueryAnswered>(a)[0].query_id == 5);
  CHECK(c.pending_queries() == 0);
  CHECK(only<CancelTimer>(a).size() == 1);
}

TEST_CASE("client window: requests waiting for authentication respect it too",
          "[tsp][client][window]") {
  ClientSession c{tep_client()};
  c.handle(Start{});
  for (std::uint64_t id = 1; id <= 70; ++id) c.handle(SubmitQuery{id, v4("198.51.100.1")});
  feed(c, "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\n");
  const auto a = feed(c, "OK Authentication successful\r\n");
  CHECK(sent(a).size() == 64);  // ClientConfig::max_in_flight's default
  CHECK(c.in_flight() == 64);
  CHECK(c.pending_queries() == 70);
}

TEST_CASE("client and server: a burst larger than the server's buffer passes through the window",
          "[tsp][client][server][window]") {
  // 400 requests are ~80 KiB: more than the server's max_buffered (64 KiB) if sent at once.
  Loop loop{tep_client(), draft_config(), v6("2001:db8:0:1::2")};
  loop.start();
  std::vector<ClientAction> burst;
  for (std::uint64_t id = 1; id <= 400; ++id) {
    const auto a = id % 4 == 0 ? loop.client.handle(SubmitHeartbeat{id})
                               : loop.client.handle(SubmitQuery{id, v4("198.51.100.1")});
    burst.insert(burst.end(), a.begin(), a.end());
  }
  loop.on_client(burst);
  loop.run();
  CHECK_FALSE(has<SessionFailed>(loop.client_log));
  CHECK(loop.max_in_flight == 64);
  std::vector<std::uint64_t> ids;
  for (const auto& a : loop.client_log) {
    if (const auto* q = std::get_if<QueryAnswered>(&a)) ids.push_back(q->query_id);
    if (const auto* h = std::get_if<HeartbeatReply>(&a)) ids.push_back(h->query_id);
  }
  REQUIRE(ids.size() == 400);
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(loop.server.state() == ServerState::Authenticated);
}
