// Bad input against the server session: oversized lines, negative/huge/lying Content-length,
// truncated XML, XML bombs, wrong SASL state, replayed nonces, non-UTF-8, NUL bytes. Each gets
// the right status or a clean close, never a crash or a hang.
#include "tsp/server_session.hpp"

#include <catch2/catch.hpp>

#include "server_test_util.hpp"

using namespace tsp;
using namespace tsp_test;

namespace {

enum class Phase { Fresh, Versioned, Authenticated };

struct Case {
  const char* name;
  Phase phase;
  std::string input;
  std::vector<std::string> replies;
  std::optional<Errc> closed;  // the Close reason, or no Close
};

std::string s(const char* p, std::size_t n) {
  return std::string{p, n};
}

std::string framed(Status st) {
  return reply_message(status_line(st));
}
std::string line(Status st) {
  return status_line(st) + "\r\n";
}

const std::string kHeartbeat =
    frame_message("<tunnel action=\"heartbeat\" type=\"v4v6\"></tunnel>\r\n");

const std::string kCreateV4v6 = frame_message(
    "<tunnel action=\"create\" type=\"v4v6\"><client><address "
    "type=\"ipv6\">::1</address></client></tunnel>\r\n");

std::string deep_xml() {
  std::string x = "<tunnel action=\"create\" type=\"v4v6\">";
  for (int i = 0; i < 1000; ++i) x += "<a>";
  for (int i = 0; i < 1000; ++i) x += "</a>";
  return x + "</tunnel>\r\n";
}

}  // namespace

TEST_CASE("bad input: each gets its status or a clean close", "[tsp][server][bad]") {
  const std::string challenge =
      "cmVhbG09ImRzdG0iLG5vbmNlPSI0MiIscW9wPSJhdXRoIixhbGdvcml0aG09bWQ1LXNlc3MsY2hhcnNldD11dGYtOA=="
      "\r\n";
  const std::string replayed_response =
      "Y2hhcnNldD11dGYtOCx1c2VybmFtZT0iYWxpY2UiLHJlYWxtPSJkc3RtIixub25jZT0iMzE0MTU5MjY1MyIsbmM9MDAw"
      "MDAwMDEsY25vbmNlPSIxNzk1Mjc1OTU2IixkaWdlc3QtdXJpPSJ0c3AvMTI3LjAuMC4xIixyZXNwb25zZT1kNDU1Zj"
      "U5YzQ0YzU0Mzc4MDFmMzBkMzAzYzM2NTcwOSxxb3A9YXV0aA==\r\n";
  const Case cases[] = {
      // Before VERSION.
      {"oversized unterminated line",
       Phase::Fresh,
       std::string(3000, 'A'),
       {line(Status::InvalidRequest)},
       Errc::LineTooLong},
      {"oversized line",
       Phase::Fresh,
       std::string(2049, 'A') + "\r\n",
       {line(Status::InvalidRequest)},
       Errc::LineTooLong},
      {"NUL in VERSION",
       Phase::Fresh,
       s("VERSION=2.0.2\0\r\n", 16),
       {line(Status::InvalidRequest)},
       Errc::BadVersion},
      {"non-UTF-8 VERSION",
       Phase::Fresh,
       "VERSION=\xff\xfe\r\n",
       {line(Status::InvalidRequest)},
       Errc::BadVersion},
      {"not a VERSION line",
       Phase::Fresh,
       "HELO tsp\r\n",
       {line(Status::InvalidRequest)},
       Errc::BadVersion},
      {"command before VERSION",
       Phase::Fresh,
       "Content-length: 5\r\nhello",
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"heartbeat before VERSION",
       Phase::Fresh,
       kHeartbeat,
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"negative length before VERSION",
       Phase::Fresh,
       "Content-length: -5\r\n",
       {line(Status::InvalidRequest)},
       Errc::BadContentLength},
      // Between VERSION and authentication: wrong SASL state.
      {"credentials before AUTHENTICATE",
       Phase::Versioned,
       s("\0alice\0secret\r\n", 15),
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"command before AUTHENTICATE",
       Phase::Versioned,
       kCreateV4v6,
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"heartbeat before AUTHENTICATE",
       Phase::Versioned,
       kHeartbeat,
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"heartbeat during DIGEST-MD5",
       Phase::Versioned,
       "AUTHENTICATE DIGEST-MD5\r\n" + kHeartbeat,
       {challenge, line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"command instead of PLAIN credentials",
       Phase::Versioned,
       "AUTHENTICATE PLAIN\r\n" + kCreateV4v6,
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"VERSION twice",
       Phase::Versioned,
       "VERSION=2.0.2\r\n",
       {line(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"non-UTF-8 PLAIN credentials",
       Phase::Versioned,
       "AUTHENTICATE PLAIN\r\n" + s("\0al\xff"
                                    "ce\0secret\r\n",
                                    15),
       {line(Status::AuthenticationFailed)},
       std::nullopt},
      {"PLAIN made of NULs",
       Phase::Versioned,
       "AUTHENTICATE PLAIN\r\n" + s("\0\0\0\0\r\n", 6),
       {line(Status::AuthenticationFailed)},
       std::nullopt},
      {"DIGEST-MD5 garbage",
       Phase::Versioned,
       "AUTHENTICATE DIGEST-MD5\r\n!!!!\r\n",
       {challenge, line(Status::AuthenticationFailed)},
       std::nullopt},
      {"DIGEST-MD5 empty response",
       Phase::Versioned,
       "AUTHENTICATE DIGEST-MD5\r\n\r\n",
       {challenge, line(Status::AuthenticationFailed)},
       std::nullopt},
      {"DIGEST-MD5 replayed response (old nonce)",
       Phase::Versioned,
       "AUTHENTICATE DIGEST-MD5\r\n" + replayed_response,
       {challenge, line(Status::AuthenticationFailed)},
       std::nullopt},
      {"DIGEST-MD5 non-UTF-8 username",
       Phase::Versioned,
       "AUTHENTICATE DIGEST-MD5\r\n" +
           base64_encode("username=\"\xff\",nonce=\"42\",cnonce=\"1\",nc=00000001,response="
                         "d455f59c44c5437801f30d303c365709") +
           "\r\n",
       {challenge, line(Status::AuthenticationFailed)},
       std::nullopt},
      // Authenticated: the command phase answers with Content-length replies.
      {"negative Content-length",
       Phase::Authenticated,
       "Content-length: -1\r\n",
       {framed(Status::InvalidRequest)},
       Errc::BadContentLength},
      {"huge Content-length",
       Phase::Authenticated,
       "Content-length: 99999999999999999999\r\n",
       {framed(Status::InvalidRequest)},
       Errc::BodyTooLarge},
      {"Content-length one above max_body",
       Phase::Authenticated,
       "Content-length: 8193\r\n",
       {framed(Status::InvalidRequest)},
       Errc::BodyTooLarge},
      {"Content-length with text",
       Phase::Authenticated,
       "Content-length: 12abc\r\n",
       {framed(Status::InvalidRequest)},
       Errc::BadContentLength},
      {"short lying Content-length",
       Phase::Authenticated,
       "Content-length: 10\r\n<tunnel action=\"accept\"></tunnel>\r\n",
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"truncated XML",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\"><client>"),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"deep nesting",
       Phase::Authenticated,
       frame_message(deep_xml()),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"huge attribute",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\" type=\"" + std::string(5000, 'v') + "\"/>"),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"entity expansion",
       Phase::Authenticated,
       frame_message("<!DOCTYPE t [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
                     "<tunnel action=\"info\">&b;</tunnel>"),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"non-UTF-8 XML",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\" type=\"v4v6\">\xe9</tunnel>"),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"NUL in XML",
       Phase::Authenticated,
       frame_message(s("<tunnel action=\"info\"\0/>", 24)),
       {framed(Status::InvalidRequest)},
       Errc::BadXml},
      {"unknown action",
       Phase::Authenticated,
       frame_message("<tunnel action=\"explode\"/>"),
       {framed(Status::InvalidRequest)},
       Errc::BadTunnel},
      {"AUTHENTICATE after authentication",
       Phase::Authenticated,
       "AUTHENTICATE ANONYMOUS\r\n",
       {framed(Status::InvalidRequest)},
       Errc::UnexpectedMessage},
      {"bad IPv6 in create",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\" type=\"v4v6\"><client><address "
                     "type=\"ipv6\">::1::2</address></client></tunnel>"),
       {framed(Status::InvalidIpv6Address)},
       std::nullopt},
      {"bad IPv4 in query",
       Phase::Authenticated,
       frame_message("<tunnel action=\"query\" type=\"v4v6\"><server><address "
                     "type=\"ipv4\">300.1.1.1</address></server></tunnel>"),
       {framed(Status::InvalidIpv4Address)},
       std::nullopt},
      {"unknown tunnel type",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\" type=\"dslite\"/>"),
       {framed(Status::UnsupportedTunnelType)},
       std::nullopt},
      {"heartbeat of an unknown type",
       Phase::Authenticated,
       frame_message("<tunnel action=\"heartbeat\" type=\"dslite\"/>"),
       {framed(Status::UnsupportedTunnelType)},
       std::nullopt},
      {"heartbeat of another type",
       Phase::Authenticated,
       frame_message("<tunnel action=\"heartbeat\" type=\"v6v4\"/>"),
       {framed(Status::UnsupportedTunnelType)},
       std::nullopt},
      {"heartbeat with a bad flush",
       Phase::Authenticated,
       frame_message("<tunnel action=\"heartbeat\" type=\"v4v6\" flush=\"maybe\"/>"),
       {framed(Status::InvalidRequest)},
       Errc::BadTunnel},
      {"create without type",
       Phase::Authenticated,
       frame_message("<tunnel action=\"create\"/>"),
       {framed(Status::InvalidRequest)},
       std::nullopt},
      {"accept without offer",
       Phase::Authenticated,
       frame_message("<tunnel action=\"accept\"/>"),
       {framed(Status::InvalidRequest)},
       std::nullopt},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto config = dstm_config();
    config.sasl.random = counting_random({42});
    ServerHarness h{config, Transport::Tcp, v6("::1")};
    if (c.phase != Phase::Fresh) h.tcp("VERSION=2.0.2\r\n");
    if (c.phase == Phase::Authenticated) h.tcp("AUTHENTICATE ANONYMOUS\r\n");
    const auto a = h.tcp(c.input);
    CHECK(sent(a) == c.replies);
    const auto closes = only<Close>(a);
    if (c.closed) {
      REQUIRE(closes.size() == 1);
      CHECK(closes[0].reason == make_error_code(*c.closed));
      CHECK(h.session.state() == ServerState::Closed);
      CHECK(h.tcp("VERSION=2.0.2\r\n").empty());  // nothing after the close
    } else {
      CHECK(closes.empty());
      CHECK(h.session.state() != ServerState::Closed);
    }
  }
}

TEST_CASE("bad input: a too large (lying) Content-length ends at the phase deadline",
          "[tsp][server][bad]") {
  ServerHarness h{dstm_config(), Transport::Tcp, v6("::1")};
  h.tcp("VERSION=2.0.2\r\n");
  const auto auth = h.tcp("AUTHENTICATE ANONYMOUS\r\n");
  CHECK(h.tcp("Content-length: 500\r\n<tunnel action=\"accept\"></tunnel>\r\n").empty());
  const auto t = h.expire(auth, TimerKind::Phase);
  CHECK(only<Close>(t) == std::vector{Close{make_error_code(Errc::Timeout), Duration{0}}});
}

TEST_CASE("bad input: a flood beyond max_buffered closes", "[tsp][server][bad]") {
  auto c = dstm_config();
  c.limits.max_pending_queries = 1;
  ServerHarness h{c, Transport::Tcp, v6("::1")};
  h.tcp("VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n");
  const auto q = frame_message(
      "<tunnel action=\"query\" type=\"v4v6\"><server><address "
      "type=\"ipv4\">198.51.100.1</address></server></tunnel>\r\n");
  std::string flood;
  while (flood.size() < 70000) flood += q;
  const auto a = h.tcp(flood);
  CHECK(only<Close>(a)[0].reason == make_error_code(Errc::BufferOverflow));
}

TEST_CASE("bad input: UDP datagrams that end inside a message", "[tsp][server][bad]") {
  ServerHarness h{dstm_config(), Transport::Udp, v6("::1")};
  h.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  h.udp(0xf00000f1, 1, "AUTHENTICATE ANONYMOUS\r\n");
  const auto a = h.udp(0xf00000f2, 1, "Content-length: 50\r\n<tunnel");
  CHECK(sent_datagrams(a) ==
        std::vector{SentDatagram{UdpHeader{0xf00000f2, 1}, framed(Status::InvalidRequest)}});
  CHECK(only<Close>(a)[0].reason == make_error_code(Errc::IncompleteDatagram));
  ServerHarness v{dstm_config(), Transport::Udp, v6("::1")};
  const auto b = v.udp(0xf00000f0, 1, "VERSION=2.0");
  CHECK(sent_datagrams(b)[0].payload == line(Status::InvalidRequest));
}

TEST_CASE("bad input: a DIGEST-MD5 response replayed into a new session fails",
          "[tsp][server][bad]") {
  // Session 1 (nonce 3141592653) succeeds; the same bytes in session 2 (nonce 3141592654) fail.
  const std::string response =
      "Y2hhcnNldD11dGYtOCx1c2VybmFtZT0iYWxpY2UiLHJlYWxtPSJkc3RtIixub25jZT0iMzE0MTU5MjY1MyIsbmM9MDAw"
      "MDAwMDEsY25vbmNlPSIxNzk1Mjc1OTU2IixkaWdlc3QtdXJpPSJ0c3AvMTI3LjAuMC4xIixyZXNwb25zZT1kNDU1Zj"
      "U5YzQ0YzU0Mzc4MDFmMzBkMzAzYzM2NTcwOSxxb3A9YXV0aA==\r\n";
  auto config = gogoc_config();
  config.sasl.random = counting_random({3141592653, 3141592654});
  auto shared = std::make_shared<const ServerConfig>(config);
  ServerSession one{shared, Transport::Tcp, v4("127.0.0.1")};
  ServerSession two{shared, Transport::Tcp, v4("127.0.0.1")};
  for (auto* s : {&one, &two}) {
    s->handle(Start{});
    s->handle(BytesReceived{core::as_bytes("VERSION=2.0.2\r\nAUTHENTICATE DIGEST-MD5\r\n")});
  }
  CHECK(one.handle(BytesReceived{core::as_bytes(response)}).size() == 3);  // rspauth, timer x2
  CHECK(one.state() == ServerState::Authenticated);
  CHECK(sent(two.handle(BytesReceived{core::as_bytes(response)})) ==
        std::vector<std::string>{"300 Authentication failed\r\n"});
  CHECK(two.state() == ServerState::AwaitAuthenticate);
}
