// Every stream parser fed valid input split at every offset yields the same messages: the
// framer (both roles), the server session and the client session.
#include "tsp/framer.hpp"

#include <catch2/catch.hpp>

#include "server_test_util.hpp"
#include "tsp/client_session.hpp"

using namespace tsp;
using namespace tsp_test;

namespace {

// gogoc's side of a PLAIN v4v6 exchange on TCP, NULs included.
const std::string kClientStream =
    std::string{"VERSION=2.0.2\r\nAUTHENTICATE PLAIN\r\n\0\0alice\0secret\r\n", 51} +
    "Content-length: 212\r\n<tunnel action=\"create\" type=\"v4v6\" proxy=\"no\">\r\n <client>\r\n"
    "  <address type=\"ipv6\">::1</address>\r\n  <keepalive interval=\"30\">\r\n    <address "
    "type=\"ipv4\">127.0.0.1</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n"
    "Content-length: 35\r\n<tunnel action=\"accept\"></tunnel>\r\n";

// The DIGEST-MD5 client side of tsp-wire.md 10.2 followed by a v4v6 create and accept.
const std::string kDigestClientStream =
    std::string{"VERSION=2.0.2\r\nAUTHENTICATE DIGEST-MD5\r\n\0", 41} +
    "Y2hhcnNldD11dGYtOCx1c2VybmFtZT0iYWxpY2UiLHJlYWxtPSJkc3RtIixub25jZT0iMzE0MTU5MjY1MyIsbmM9MDAw"
    "MDAwMDEsY25vbmNlPSIxNzk1Mjc1OTU2IixkaWdlc3QtdXJpPSJ0c3AvMTI3LjAuMC4xIixyZXNwb25zZT1kNDU1Zj"
    "U5YzQ0YzU0Mzc4MDFmMzBkMzAzYzM2NTcwOSxxb3A9YXV0aA==\r\n" +
    kClientStream.substr(kClientStream.find("Content-length"));

// The server side of that exchange, then a redirect outside framing.
const std::string kServerStream =
    "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5\r\n"
    "cmVhbG09ImRzdG0iLG5vbmNlPSIzMTQxNTkyNjUzIixxb3A9ImF1dGgiLGFsZ29yaXRobT1tZDUtc2VzcyxjaGFyc2"
    "V0PXV0Zi04\r\n"
    "cnNwYXV0aD05MzhjZGFkNzQ5NmQxNzYyYzg2MmUwNjMyNjgwMzY4Yg==\r\n"
    "200 Success\r\n"
    "Content-length: 413\r\n200 Success\r\n<tunnel action=\"info\" type=\"v4v6\" "
    "lifetime=\"3600\"><server><address type=\"ipv4\">192.0.2.1</address><address "
    "type=\"ipv6\">2001:db8::1</address></server><client><address "
    "type=\"ipv4\">198.51.100.10</address><address type=\"ipv6\">::1</address><dns_server><address "
    "type=\"ipv6\">2001:db8::53</address></dns_server><keepalive interval=\"30\"><address "
    "type=\"ipv4\">192.0.2.1</address></keepalive></client></tunnel>\r\n";

const std::string kRedirect =
    "1302 Unsupported client version\r\n<tunnel action=\"info\" type=\"*\"><broker><address "
    "type=\"ipv4\">192.0.2.9</address></broker></tunnel>\r\n";

std::vector<Frame> cut(FramerRole role, const std::vector<std::string_view>& parts) {
  StreamFramer f{role};
  std::vector<Frame> out;
  for (auto p : parts) {
    REQUIRE(f.feed(core::as_bytes(p)));
    while (true) {
      auto next = f.next();
      REQUIRE(next);
      if (!*next) break;
      out.push_back(**next);
    }
  }
  CHECK(f.at_boundary());
  return out;
}

// Feeds the chunks to a TCP server session whose daemon answers at once; the replies in order.
std::vector<std::string> serve(const std::vector<std::string_view>& chunks) {
  ServerHarness h{dstm_config(), Transport::Tcp, v6("::1")};
  std::vector<std::string> replies;
  std::function<void(const std::vector<ServerAction>&)> handle = [&](const auto& actions) {
    for (const auto& a : actions) {
      if (const auto* s = std::get_if<Send>(&a)) replies.push_back(text(s->bytes));
      if (std::get_if<AllocateLease>(&a)) handle(h.event(LeaseAllocated{dstm_offer()}));
      if (const auto* t = std::get_if<ArmTimer>(&a); t && t->timer == TimerKind::DeferredReply)
        handle(h.event(TimerExpired{t->timer, t->generation}));
    }
  };
  for (auto c : chunks) handle(h.tcp(c));
  CHECK(h.session.state() == ServerState::Established);
  return replies;
}

// Feeds the chunks to a DIGEST-MD5 TCP client; what it sends and reports.
std::vector<std::string> consume(const std::vector<std::string_view>& chunks) {
  ClientConfig cc;
  cc.mechanisms = {Mechanism::DigestMd5};
  cc.username = "alice";
  cc.password = "secret";
  cc.server_name = "127.0.0.1";
  cc.random = counting_random({1795275956});
  Tunnel create = make_tunnel(TunnelAction::Create, TunnelType::V4V6);
  create.client = Endpoint{};
  create.client->addresses = {Address{v6("::1"), std::nullopt}};
  cc.request = create;
  ClientSession c{cc};
  std::vector<std::string> out = sent(c.handle(Start{}));
  for (auto chunk : chunks) {
    const auto a = c.handle(BytesReceived{core::as_bytes(chunk)});
    for (auto& s : sent(a)) out.push_back(s);
    if (has<TunnelEstablished>(a)) out.push_back("<established>");
    if (has<SessionFailed>(a)) out.push_back("<failed>");
  }
  return out;
}

// A TEP query session with heartbeats (TCP): the client side, then the server side.
const std::string kHeartbeat =
    "Content-length: 50\r\n<tunnel action=\"heartbeat\" type=\"v4v6\"></tunnel>\r\n";
const std::string kTepClientStream = "VERSION=1.0\r\nAUTHENTICATE ANONYMOUS\r\n" + kQuery +
                                     kHeartbeat + kQuery + kHeartbeat + kHeartbeat;
const std::string kTepServerStream =
    "CAPABILITY TUNNEL=V4V6 AUTH=ANONYMOUS\r\nOK Authentication successful\r\n" + kAnswer +
    "Content-length: 180\r\n200 Success\r\n<tunnel action=\"heartbeat\" type=\"v4v6\" "
    "lifetime=\"30\"><server><address type=\"ipv4\">198.51.100.7</address><address "
    "type=\"ipv4\">198.51.100.8</address></server></tunnel>\r\n"
    "Content-length: 26\r\n501 Invalid IPv4 address\r\n"
    "Content-length: 27\r\n300 Authentication failed\r\n";

// Feeds the chunks to a TCP TEP server session whose daemon answers at once: the first lookup
// finds a mapping, later ones do not; heartbeats withdraw two mappings.
std::vector<std::string> serve_tep(const std::vector<std::string_view>& chunks) {
  ServerHarness h{draft_config(), Transport::Tcp, v6("2001:db8:0:1::2")};
  std::vector<std::string> replies;
  bool found = false;
  std::function<void(const std::vector<ServerAction>&)> handle = [&](const auto& actions) {
    for (const auto& a : actions) {
      if (const auto* s = std::get_if<Send>(&a)) replies.push_back(text(s->bytes));
      if (const auto* l = std::get_if<LookupMapping>(&a)) {
        if (found) {
          handle(h.event(MappingNotFound{l->query_id, Status::InvalidIpv4Address}));
        } else {
          found = true;
          handle(h.event(MappingFound{l->query_id, Mapping{l->ipv4, v6("2001:db8:0:2::7"), 1440}}));
        }
      }
      if (const auto* b = std::get_if<Heartbeat>(&a))
        handle(h.event(HeartbeatAnswered{
            b->query_id, Status::Success, 30, {v4("198.51.100.7"), v4("198.51.100.8")}, false}));
    }
  };
  for (auto c : chunks) handle(h.tcp(c));
  CHECK(h.session.state() == ServerState::Authenticated);
  CHECK(h.session.pending_queries() == 0);
  return replies;
}

// Feeds the chunks to a TEP client with a query, a heartbeat, a query and a heartbeat submitted
// up front; what it sends and reports.
std::vector<std::string> consume_tep(const std::vector<std::string_view>& chunks) {
  ClientConfig cc;
  cc.version = kVersion1_0;
  cc.mechanisms = {Mechanism::Anonymous};
  cc.random = counting_random({1});
  cc.tep_ipv4 = v4("192.0.2.2");
  cc.tep_ipv6 = v6("2001:db8:0:1::2");
  cc.max_in_flight = 2;
  ClientSession c{cc};
  std::vector<std::string> out = sent(c.handle(Start{}));
  c.handle(SubmitQuery{1, v4("198.51.100.7")});
  c.handle(SubmitHeartbeat{2});
  c.handle(SubmitQuery{3, v4("198.51.100.7")});
  c.handle(SubmitHeartbeat{4});
  for (auto chunk : chunks) {
    for (const auto& a : c.handle(BytesReceived{core::as_bytes(chunk)})) {
      if (const auto* s = std::get_if<Send>(&a)) out.push_back(text(s->bytes));
      if (const auto* q = std::get_if<QueryAnswered>(&a))
        out.push_back("<query " + std::to_string(q->query_id) + " " +
                      std::to_string(q->status.code) + ">");
      if (const auto* h = std::get_if<HeartbeatReply>(&a))
        out.push_back("<heartbeat " + std::to_string(h->query_id) + " " +
                      std::to_string(h->status.code) + " " + std::to_string(h->withdrawn.size()) +
                      ">");
      if (std::holds_alternative<SessionFailed>(a)) out.push_back("<failed>");
    }
  }
  return out;
}

}  // namespace

TEST_CASE("split: the server framer cuts the same frames at every offset", "[tsp][split]") {
  const std::string_view all = kClientStream;
  const auto whole = cut(FramerRole::Server, {all});
  REQUIRE(whole.size() == 5);
  CHECK(whole[2] == Frame{FrameKind::Line, std::string{"\0alice\0secret", 13}});
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO(i);
    CHECK(cut(FramerRole::Server, {all.substr(0, i), all.substr(i)}) == whole);
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < all.size(); ++i) bytes.push_back(all.substr(i, 1));
  CHECK(cut(FramerRole::Server, bytes) == whole);
}

TEST_CASE("split: the client framer cuts the same frames at every offset", "[tsp][split]") {
  const std::string stream = kServerStream + kRedirect;
  const std::string_view all = stream;
  const auto whole = cut(FramerRole::Client, {all});
  REQUIRE(whole.size() == 6);
  CHECK(whole[5].kind == FrameKind::Body);
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO(i);
    CHECK(cut(FramerRole::Client, {all.substr(0, i), all.substr(i)}) == whole);
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < all.size(); ++i) bytes.push_back(all.substr(i, 1));
  CHECK(cut(FramerRole::Client, bytes) == whole);
}

TEST_CASE("split: the server session answers the same at every offset", "[tsp][split]") {
  for (const auto* stream : {&kClientStream, &kDigestClientStream}) {
    const std::string_view all = *stream;
    const auto whole = serve({all});
    REQUIRE(whole.size() >= 3);
    for (std::size_t i = 0; i <= all.size(); ++i) {
      INFO(i);
      CHECK(serve({all.substr(0, i), all.substr(i)}) == whole);
    }
  }
}

TEST_CASE("split: the client session acts the same at every offset", "[tsp][split]") {
  const std::string_view all = kServerStream;
  const auto whole = consume({all});
  REQUIRE(whole.back() == "<established>");
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO(i);
    CHECK(consume({all.substr(0, i), all.substr(i)}) == whole);
  }
}

TEST_CASE("split: a TEP session with queries and heartbeats is served the same at every offset",
          "[tsp][split][heartbeat]") {
  const std::string_view all = kTepClientStream;
  const auto whole = serve_tep({all});
  REQUIRE(whole.size() == 7);  // CAPABILITY, OK, five answers
  CHECK(whole[2] == kAnswer);
  CHECK(whole[3].find("action=\"heartbeat\"") != std::string::npos);
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO(i);
    CHECK(serve_tep({all.substr(0, i), all.substr(i)}) == whole);
  }
}

TEST_CASE("split: a TEP client reads queries and heartbeats the same at every offset",
          "[tsp][split][heartbeat]") {
  const std::string_view all = kTepServerStream;
  const auto whole = consume_tep({all});
  CHECK(whole == std::vector<std::string>{"VERSION=1.0\r\n", "AUTHENTICATE ANONYMOUS\r\n", kQuery,
                                          kHeartbeat, "<query 1 200>", kQuery,
                                          "<heartbeat 2 200 2>", kHeartbeat, "<query 3 501>",
                                          "<heartbeat 4 300 0>"});
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO(i);
    CHECK(consume_tep({all.substr(0, i), all.substr(i)}) == whole);
  }
}
