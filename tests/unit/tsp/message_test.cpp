// Tests for tsp/message.hpp: gogoc's requests, the server's offers, the draft's query, malformed
// XML.
#include "tsp/message.hpp"

#include <catch2/catch.hpp>

#include "tsp_test_util.hpp"

using namespace tsp;

namespace {

const std::string kCreateV6v4 =
    "<tunnel action=\"create\" type=\"v6v4\" proxy=\"no\">\r\n <client>\r\n  <address "
    "type=\"ipv4\">127.0.0.1</address>\r\n  <keepalive interval=\"30\">\r\n    <address "
    "type=\"ipv6\">::</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n";

const std::string kCreateV4v6 =
    "<tunnel action=\"create\" type=\"v4v6\" proxy=\"no\">\r\n <client>\r\n  <address "
    "type=\"ipv6\">::1</address>\r\n  <keepalive interval=\"30\">\r\n    <address "
    "type=\"ipv4\">127.0.0.1</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n";

const std::string kQuery =
    "<tunnel action=\"query\" type=\"v4v6\"><client><address type=\"ipv4\">192.0.2.2</address>"
    "<address type=\"ipv6\">2001:db8:0:1::2</address></client><server><address "
    "type=\"ipv4\">198.51.100.7</address></server></tunnel>\r\n";

const std::string kAnswer =
    "200 OK\r\n<tunnel action=\"info\" type=\"v4v6\" lifetime=\"1440\"><server><address "
    "type=\"ipv4\" length=\"30\">198.51.100.7</address><address "
    "type=\"ipv6\">2001:db8:0:2::7</address></server><client><address type=\"ipv4\" "
    "length=\"30\">192.0.2.2</address><address type=\"ipv6\">2001:db8:0:1::2</address></client>"
    "</tunnel>\r\n";

core::Ipv4Address v4(const char* s) {
  return core::Ipv4Address::parse(s).value();
}
core::Ipv6Address v6(const char* s) {
  return core::Ipv6Address::parse(s).value();
}
Address a4(const char* s, std::optional<unsigned> len = {}) {
  return Address{v4(s), len};
}
Address a6(const char* s) {
  return Address{v6(s), std::nullopt};
}

}  // namespace

TEST_CASE("message: gogoc's v6v4 create (211 bytes) parses", "[tsp][message]") {
  REQUIRE(kCreateV6v4.size() == 211);
  const auto t = parse_request(kCreateV6v4).value();
  CHECK(t.action == TunnelAction::Create);
  CHECK(t.type == TunnelType::V6V4);
  CHECK(t.proxy == false);
  REQUIRE(t.client);
  CHECK(t.client->addresses == std::vector{a4("127.0.0.1")});
  REQUIRE(t.client->keepalive);
  CHECK(t.client->keepalive->interval == 30);
  CHECK(t.client->keepalive->address == a6("::"));
  CHECK_FALSE(t.server);
}

TEST_CASE("message: gogoc's v4v6 create (212 bytes with ::1) parses", "[tsp][message]") {
  REQUIRE(kCreateV4v6.size() == 212);
  const auto t = parse_request(kCreateV4v6).value();
  CHECK(t.type == TunnelType::V4V6);
  CHECK(t.client->ipv6() == v6("::1"));
  CHECK_FALSE(t.client->ipv4());
  CHECK(t.client->keepalive->address == a4("127.0.0.1"));
}

TEST_CASE("message: the offer of tsp-wire.md 10.1 is written byte for byte", "[tsp][message]") {
  Tunnel t = make_tunnel(TunnelAction::Info, TunnelType::V6V4, 604800);
  t.server = Endpoint{};
  t.server->addresses = {a4("127.0.0.1"), a6("2001:db8:1::1")};
  t.client = Endpoint{};
  t.client->addresses = {a4("127.0.0.1"), a6("2001:db8:1::2")};
  t.client->dns_servers = {a6("2001:db8:1::53")};
  t.client->keepalive = Keepalive{30, a6("2001:db8:1::1")};
  const std::string expected =
      "Content-length: 429\r\n200 Success\r\n<tunnel action=\"info\" type=\"v6v4\" "
      "lifetime=\"604800\"><server><address type=\"ipv4\">127.0.0.1</address><address "
      "type=\"ipv6\">2001:db8:1::1</address></server><client><address "
      "type=\"ipv4\">127.0.0.1</address><address type=\"ipv6\">2001:db8:1::2</address><dns_server>"
      "<address type=\"ipv6\">2001:db8:1::53</address></dns_server><keepalive "
      "interval=\"30\"><address type=\"ipv6\">2001:db8:1::1</address></keepalive></client>"
      "</tunnel>\r\n";
  CHECK(reply_message("200 Success", t) == expected);
  // And reads back to the same struct.
  const auto r = parse_reply(expected.substr(expected.find('\n') + 1)).value();
  CHECK(r.status == StatusLine{200, "Success"});
  CHECK(r.tunnel == t);
}

TEST_CASE("message: accept is 35 bytes", "[tsp][message]") {
  CHECK(request_message(make_tunnel(TunnelAction::Accept)) ==
        "Content-length: 35\r\n<tunnel action=\"accept\"></tunnel>\r\n");
}

TEST_CASE("message: the draft's query and answer (tsp-wire.md 13.5)", "[tsp][message]") {
  Tunnel q = make_tunnel(TunnelAction::Query, TunnelType::V4V6);
  q.client = Endpoint{};
  q.client->addresses = {a4("192.0.2.2"), a6("2001:db8:0:1::2")};
  q.server = Endpoint{};
  q.server->addresses = {a4("198.51.100.7")};
  CHECK(request_message(q) == "Content-length: 209\r\n" + kQuery);
  CHECK(parse_request(kQuery).value() == q);

  Tunnel a = make_tunnel(TunnelAction::Info, TunnelType::V4V6, 1440);
  a.server = Endpoint{};
  a.server->addresses = {a4("198.51.100.7", 30), a6("2001:db8:0:2::7")};
  a.client = Endpoint{};
  a.client->addresses = {a4("192.0.2.2", 30), a6("2001:db8:0:1::2")};
  CHECK(reply_message("200 OK", a) == "Content-length: 302\r\n" + kAnswer);
  CHECK(parse_reply(kAnswer).value() == Reply{StatusLine{200, "OK"}, a});
}

TEST_CASE("message: the heartbeat request and answer (extension) round-trip", "[tsp][message]") {
  const Tunnel request = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6);
  CHECK(request_message(request) ==
        "Content-length: 50\r\n<tunnel action=\"heartbeat\" type=\"v4v6\"></tunnel>\r\n");
  CHECK(parse_request("<tunnel action=\"heartbeat\" type=\"v4v6\"/>\r\n").value() == request);

  Tunnel answer = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6, 30);
  answer.flush = true;
  answer.server = Endpoint{};
  answer.server->addresses = {a4("198.51.100.7"), a4("198.51.100.8")};
  const std::string content =
      "200 Success\r\n<tunnel action=\"heartbeat\" type=\"v4v6\" lifetime=\"30\" "
      "flush=\"yes\"><server><address type=\"ipv4\">198.51.100.7</address><address "
      "type=\"ipv4\">198.51.100.8</address></server></tunnel>\r\n";
  CHECK(reply_message("200 Success", answer) ==
        "Content-length: " + std::to_string(content.size()) + "\r\n" + content);
  CHECK(parse_reply(content).value() == Reply{StatusLine{200, "Success"}, answer});

  // flush="no" is read (and written back) as false; absent is nullopt. Case-insensitive.
  CHECK(parse_tunnel("<tunnel action=\"heartbeat\" flush=\"no\"/>").value().flush == false);
  CHECK(parse_tunnel("<tunnel action=\"heartbeat\" flush=\"YES\"/>").value().flush == true);
  CHECK_FALSE(parse_tunnel("<tunnel action=\"heartbeat\"/>").value().flush);
  answer.flush = false;
  CHECK(write_tunnel(answer).find(" flush=\"no\">") != std::string::npos);
}

TEST_CASE("message: a full heartbeat answer fits the reader's and the framer's limits",
          "[tsp][message]") {
  // The longest IPv4 text in every slot: the worst case the server writes.
  Tunnel answer = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6, 4294967295u);
  answer.flush = true;
  answer.server = Endpoint{};
  for (std::size_t i = 0; i < kMaxWithdrawnPerHeartbeat; ++i)
    answer.server->addresses.push_back(a4("255.255.255.255"));
  const auto framed = reply_message("200 Success", answer);
  const auto content = framed.substr(framed.find('\n') + 1);
  CHECK(content.size() <= FramerLimits{}.max_body);
  CHECK(content.size() <= XmlLimits{}.max_bytes);
  CHECK(parse_reply(content).value().tunnel == answer);
}

TEST_CASE("message: draft-style input with wrapped address text is trimmed", "[tsp][message]") {
  const std::string wrapped =
      "<tunnel action=\"info\" type=\"v4v6\" lifetime=\"1440\">\n  <server>\n     <address "
      "type=\"ipv4\" length=\"30\">\n        198.51.100.7</address>\n     <address "
      "type=\"ipv6\">2001:DB8:0:2::7\n        </address>\n  </server>\n</tunnel>";
  const auto t = parse_tunnel(wrapped).value();
  CHECK(t.server->addresses == std::vector{a4("198.51.100.7", 30), a6("2001:db8:0:2::7")});
}

TEST_CASE("message: the draft's own request is malformed (no </server>) and refused",
          "[tsp][message]") {
  const std::string draft =
      "<tunnel action=\"query\" type=\"v4v6\"><client><address type=\"ipv4\">192.0.2.2</address>"
      "</client><server><address type=\"ipv4\">198.51.100.7</address></tunnel>";
  CHECK(parse_tunnel(draft).error() == make_error_code(Errc::BadXml));
}

TEST_CASE("message: routers, prefixes, dns names, AS and brokers round-trip", "[tsp][message]") {
  Tunnel t = make_tunnel(TunnelAction::Info, TunnelType::V6UdpV4, 3600);
  t.mtu = 1280;
  t.proxy = true;
  t.client = Endpoint{};
  t.client->addresses = {a4("192.0.2.1"), Address{DnsName{"user.broker.example"}, std::nullopt}};
  t.client->router = Router{.protocol = "ripng",
                            .prefix = Prefix{56, v6("2001:db8:ff00::")},
                            .dns_servers = {a6("2001:db8::53")}};
  t.client->as_number = 64500;
  t.brokers = {a4("192.0.2.9"), Address{DnsName{"b.example"}, std::nullopt}};
  t.client->router->protocol = "a\tb\r\nc&<\"d";  // survives attribute normalisation
  const auto xml = write_tunnel(t);
  CHECK(xml.find(' ', xml.find("<address")) != std::string::npos);
  CHECK(xml.find("<?") == std::string::npos);
  CHECK(parse_tunnel(xml).value() == t);
  CHECK(t.client->dns_name() == "user.broker.example");
  // A router request without a network: <prefix length="24"/>.
  auto req =
      parse_tunnel(
          "<tunnel action=\"create\" type=\"v4v6\"><client><address type=\"ipv6\">::1</address>"
          "<router><prefix length=\"24\"/></router></client></tunnel>")
          .value();
  CHECK(req.client->router->prefix == Prefix{24, std::nullopt});
}

TEST_CASE("message: Freenet6's uncompressed IPv6 text is read", "[tsp][message]") {
  const auto t = parse_tunnel(
                     "<tunnel action=\"info\" type=\"v6udpv4\"><server><address "
                     "type=\"ipv6\">2001:05c0:1400:000b:0000:0000:0000:0001</address></server>"
                     "</tunnel>")
                     .value();
  CHECK(t.server->ipv6() == v6("2001:5c0:1400:b::1"));
}

TEST_CASE("message: no whitespace and no ::ffff:a.b.c.d in written addresses", "[tsp][message]") {
  CHECK(address_text(v6("::ffff:192.0.2.1")) == "::ffff:c000:201");
  CHECK(address_text(v6("::ffff:0.0.0.1")) == "::ffff:0:1");
  CHECK(address_text(v6("2001:DB8::1")) == "2001:db8::1");
  CHECK(address_text(DnsName{"a.example"}) == "a.example");
}

TEST_CASE("message: replies without XML, and XML after the first line end", "[tsp][message]") {
  CHECK(parse_reply("501 Invalid IPv4 address\r\n").value() ==
        Reply{StatusLine{501, "Invalid IPv4 address"}, std::nullopt});
  CHECK(parse_reply("300 Authentication failed").value().status.code == 300);
  const auto redirect = redirect_content(Status::UnsupportedVersion, {a4("192.0.2.9")});
  CHECK(redirect ==
        "1302 Unsupported client version\r\n<tunnel action=\"info\" type=\"*\"><broker><address "
        "type=\"ipv4\">192.0.2.9</address></broker></tunnel>\r\n");
  const auto r = parse_reply(redirect).value();
  CHECK(r.status.is_redirect());
  CHECK(r.tunnel->brokers == std::vector{a4("192.0.2.9")});
  CHECK_FALSE(parse_reply("200 Success\r\ntrailing text"));
}

TEST_CASE("message: invalid messages get the error that selects their status", "[tsp][message]") {
  struct Case {
    const char* name;
    std::string xml;
    Errc error;
  };
  const std::string deep = [] {
    std::string s = "<tunnel action=\"create\">";
    for (int i = 0; i < 20; ++i) s += "<a>";
    for (int i = 0; i < 20; ++i) s += "</a>";
    return s + "</tunnel>";
  }();
  const Case cases[] = {
      {"empty", "", Errc::BadXml},
      {"truncated", "<tunnel action=\"create\"><client>", Errc::BadXml},
      {"not xml", "hello", Errc::BadXml},
      {"two roots", "<tunnel action=\"info\"/><tunnel action=\"info\"/>", Errc::BadXml},
      {"doctype", "<!DOCTYPE tunnel [<!ENTITY a \"aaaa\">]><tunnel action=\"info\">&a;</tunnel>",
       Errc::BadXml},
      {"deep nesting", deep, Errc::BadXml},
      {"huge attribute", "<tunnel action=\"info\" x=\"" + std::string(300, 'a') + "\"/>",
       Errc::BadXml},
      {"huge text", "<tunnel action=\"info\">" + std::string(300, 'a') + "</tunnel>", Errc::BadXml},
      {"non-UTF-8", "<tunnel action=\"info\">\xff\xfe</tunnel>", Errc::BadXml},
      {"overlong UTF-8", "<tunnel action=\"info\">\xc0\xaf</tunnel>", Errc::BadXml},
      {"NUL", std::string{"<tunnel action=\"info\">\0</tunnel>", 32}, Errc::BadXml},
      {"wrong root", "<tunel action=\"create\"/>", Errc::BadTunnel},
      {"no action", "<tunnel type=\"v4v6\"/>", Errc::BadTunnel},
      {"unknown action", "<tunnel action=\"destroy\"/>", Errc::BadTunnel},
      {"unknown type", "<tunnel action=\"create\" type=\"dslite\"/>", Errc::UnsupportedTunnelType},
      {"bad lifetime", "<tunnel action=\"info\" lifetime=\"-1\"/>", Errc::BadTunnel},
      {"huge lifetime", "<tunnel action=\"info\" lifetime=\"4294967296\"/>", Errc::BadTunnel},
      {"bad proxy", "<tunnel action=\"info\" proxy=\"maybe\"/>", Errc::BadTunnel},
      {"bad flush", "<tunnel action=\"heartbeat\" flush=\"1\"/>", Errc::BadTunnel},
      {"two clients", "<tunnel action=\"info\"><client/><client/></tunnel>", Errc::BadTunnel},
      {"address type",
       "<tunnel action=\"info\"><client><address type=\"ipx\">1</address></client></tunnel>",
       Errc::BadTunnel},
      {"bad ipv4",
       "<tunnel action=\"info\"><client><address type=\"ipv4\">1.2.3</address></client></tunnel>",
       Errc::BadIpv4Address},
      {"leading zero ipv4",
       "<tunnel action=\"info\"><client><address "
       "type=\"ipv4\">01.2.3.4</address></client></tunnel>",
       Errc::BadIpv4Address},
      {"bad ipv6",
       "<tunnel action=\"info\"><client><address "
       "type=\"ipv6\">2001:db8::g</address></client></tunnel>",
       Errc::BadIpv6Address},
      {"zone id",
       "<tunnel action=\"info\"><client><address "
       "type=\"ipv6\">fe80::1%eth0</address></client></tunnel>",
       Errc::BadIpv6Address},
      {"bad dns name",
       "<tunnel action=\"info\"><client><address type=\"dn\">a b</address></client></tunnel>",
       Errc::BadTunnel},
      {"address with element",
       "<tunnel action=\"info\"><client><address "
       "type=\"ipv4\">1.2.3.4<b/></address></client></tunnel>",
       Errc::BadTunnel},
      {"surrogate from a character reference",
       "<tunnel action=\"info\"><client><router protocol=\"&#xD800;\"/></client></tunnel>",
       Errc::BadTunnel},
      {"prefix without length",
       "<tunnel action=\"info\"><client><router><prefix>::</prefix></router></client></tunnel>",
       Errc::BadTunnel},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(parse_tunnel(c.xml).error() == make_error_code(c.error));
  }
}

TEST_CASE("message: a prolog from a client is accepted, unknown elements ignored",
          "[tsp][message]") {
  const auto t = parse_tunnel(
      "<?xml version=\"1.0\"?><!-- c --><tunnel action=\"accept\"><future x=\"1\"/></tunnel>");
  CHECK(t.value() == make_tunnel(TunnelAction::Accept));
}

TEST_CASE("message: an XML bomb within the size limit stays within the element limit",
          "[tsp][message]") {
  std::string wide = "<tunnel action=\"info\">";
  for (int i = 0; i < 500; ++i) wide += "<x/>";
  wide += "</tunnel>";
  CHECK(parse_tunnel(wide).error() == make_error_code(Errc::BadXml));
  CHECK(parse_tunnel(std::string(9000, ' ') + "<tunnel action=\"info\"/>").error() ==
        make_error_code(Errc::BadXml));
}
