// Tests for tsp/server_session.hpp: the captured gogoc exchanges of tsp-wire.md replayed byte for
// byte, the draft's TEP query, pipelined queries, UDP reliability, deadlines and lease policy.
#include "tsp/server_session.hpp"

#include <catch2/catch.hpp>

#include "server_test_util.hpp"

using namespace tsp;
using namespace tsp_test;

namespace {

const std::string kCapability =
    "CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=ANONYMOUS AUTH=PLAIN AUTH=DIGEST-MD5\r\n";
const std::string kAuthAnonymous{"AUTHENTICATE ANONYMOUS\r\n\0", 25};
const std::string kAuthPlain{"AUTHENTICATE PLAIN\r\n\0", 21};
const std::string kAuthDigest{"AUTHENTICATE DIGEST-MD5\r\n\0", 26};
const std::string kPlainCredentials{"\0alice\0secret\r\n", 15};
const std::string kCreateV6v4 =
    "Content-length: 211\r\n<tunnel action=\"create\" type=\"v6v4\" proxy=\"no\">\r\n <client>\r\n"
    "  <address type=\"ipv4\">127.0.0.1</address>\r\n  <keepalive interval=\"30\">\r\n    "
    "<address type=\"ipv6\">::</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n";
const std::string kInfoV6v4 =
    "Content-length: 429\r\n200 Success\r\n<tunnel action=\"info\" type=\"v6v4\" "
    "lifetime=\"604800\"><server><address type=\"ipv4\">127.0.0.1</address><address "
    "type=\"ipv6\">2001:db8:1::1</address></server><client><address "
    "type=\"ipv4\">127.0.0.1</address><address type=\"ipv6\">2001:db8:1::2</address><dns_server>"
    "<address type=\"ipv6\">2001:db8:1::53</address></dns_server><keepalive "
    "interval=\"30\"><address type=\"ipv6\">2001:db8:1::1</address></keepalive></client>"
    "</tunnel>\r\n";
const std::string kAccept = "Content-length: 35\r\n<tunnel action=\"accept\"></tunnel>\r\n";
const std::string kCreateV4v6 =
    "Content-length: 212\r\n<tunnel action=\"create\" type=\"v4v6\" proxy=\"no\">\r\n <client>\r\n"
    "  <address type=\"ipv6\">::1</address>\r\n  <keepalive interval=\"30\">\r\n    <address "
    "type=\"ipv4\">127.0.0.1</address>\r\n  </keepalive>\r\n </client>\r\n</tunnel>\r\n";
const std::string kInfoV4v6 =
    "Content-length: 413\r\n200 Success\r\n<tunnel action=\"info\" type=\"v4v6\" "
    "lifetime=\"3600\"><server><address type=\"ipv4\">192.0.2.1</address><address "
    "type=\"ipv6\">2001:db8::1</address></server><client><address "
    "type=\"ipv4\">198.51.100.10</address><address type=\"ipv6\">::1</address><dns_server><address "
    "type=\"ipv6\">2001:db8::53</address></dns_server><keepalive interval=\"30\"><address "
    "type=\"ipv4\">192.0.2.1</address></keepalive></client></tunnel>\r\n";

std::string query_for(const std::string& ipv4) {
  return request_message([&] {
    Tunnel t = make_tunnel(TunnelAction::Query, TunnelType::V4V6);
    t.client = Endpoint{};
    t.client->addresses = {Address{v4("192.0.2.2"), std::nullopt}};
    t.server = Endpoint{};
    t.server->addresses = {Address{v4(ipv4.c_str()), std::nullopt}};
    return t;
  }());
}

ServerHarness authenticated_tcp(ServerConfig c, PeerAddress peer, std::string version = "2.0.2") {
  ServerHarness h{std::move(c), Transport::Tcp, peer};
  h.tcp("VERSION=" + version + "\r\n");
  h.tcp(kAuthAnonymous);
  REQUIRE(h.session.state() == ServerState::Authenticated);
  return h;
}

}  // namespace

TEST_CASE("server golden: UDP anonymous v6v4 exchange of tsp-wire.md 10.1", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  CHECK(only<ArmTimer>(h.start).size() == 1);

  auto a = h.udp(0xf00000f0, 930, "VERSION=2.0.2\r\n");
  CHECK(only<Send>(a) == std::vector{Send{datagram(0xf00000f0, 930, kCapability)}});

  a = h.udp(0xf00000f1, 931, kAuthAnonymous);
  CHECK(only<Send>(a) == std::vector{Send{datagram(0xf00000f1, 931, "200 Success\r\n")}});

  a = h.udp(0xf00000f2, 931, kCreateV6v4);
  CHECK(only<Send>(a).empty());  // answered when the daemon has decided
  const auto alloc = only<AllocateLease>(a);
  REQUIRE(alloc.size() == 1);
  CHECK(alloc[0] == AllocateLease{.type = TunnelType::V6V4,
                                  .identity = Identity{Mechanism::Anonymous, ""},
                                  .client_ipv6 = std::nullopt,
                                  .client_ipv4 = v4("127.0.0.1"),
                                  .lifetime = std::nullopt,
                                  .keepalive_interval = 30,
                                  .prefix = std::nullopt});

  a = h.event(LeaseAllocated{capture_offer()});
  CHECK(only<Send>(a) == std::vector{Send{datagram(0xf00000f2, 931, kInfoV6v4)}});
  CHECK(h.session.state() == ServerState::AwaitAccept);

  a = h.udp(0xf00000f3, 931, kAccept);
  CHECK(only<Send>(a) == std::vector{Send{datagram(0xf00000f3, 931, "")}});
  CHECK(only<ConfirmLease>(a) == std::vector{ConfirmLease{v4("127.0.0.1")}});
  CHECK(h.session.state() == ServerState::Established);
}

TEST_CASE("server golden: the same exchange on TCP", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  CHECK(sent(h.tcp("VERSION=2.0.2\r\n")) == std::vector{kCapability});
  CHECK(sent(h.tcp(kAuthAnonymous)) == std::vector<std::string>{"200 Success\r\n"});
  CHECK(sent(h.tcp(kCreateV6v4)).empty());
  CHECK(sent(h.event(LeaseAllocated{capture_offer()})) == std::vector{kInfoV6v4});
  auto a = h.tcp(kAccept);
  CHECK(sent(a).empty());  // TCP: nothing answers the accept
  CHECK(has<ConfirmLease>(a));
  CHECK_FALSE(has<Close>(a));  // the connection stays up for the tunnel's life
}

TEST_CASE("server golden: DIGEST-MD5 on TCP with the worked values (10.2)", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  h.tcp("VERSION=2.0.2\r\n");
  CHECK(sent(h.tcp(kAuthDigest)) == std::vector{kChallenge});
  auto a = h.tcp(kDigestResponse);
  // rspauth alone; 200 Success after a pause, as its own write.
  CHECK(sent(a) == std::vector{kRspauth});
  const auto timers = only<ArmTimer>(a);
  REQUIRE(std::any_of(timers.begin(), timers.end(), [](const ArmTimer& t) {
    return t.timer == TimerKind::DeferredReply && t.after == std::chrono::milliseconds{200};
  }));
  CHECK(sent(h.expire(a, TimerKind::DeferredReply)) == std::vector<std::string>{"200 Success\r\n"});
  CHECK(h.session.identity() == Identity{Mechanism::DigestMd5, "alice"});
  // A stale expiry sends nothing more.
  CHECK(sent(h.expire(a, TimerKind::DeferredReply)).empty());
}

TEST_CASE("server golden: DIGEST-MD5 over UDP reads 200 with an empty datagram", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  h.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  CHECK(sent_datagrams(h.udp(0xf00000f1, 2, kAuthDigest))[0].payload == kChallenge);
  CHECK(sent_datagrams(h.udp(0xf00000f2, 3, kDigestResponse))[0].payload == kRspauth);
  CHECK(sent_datagrams(h.udp(0xf00000f3, 4, ""))[0].payload == "200 Success\r\n");
  CHECK(sent_datagrams(h.udp(0xf00000f4, 5, ""))[0].payload.empty());
}

TEST_CASE("server golden: PLAIN on TCP (10.3), NUL and credentials in one segment or two",
          "[tsp][server]") {
  for (bool together : {false, true}) {
    INFO(together);
    ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
    h.tcp("VERSION=2.0.2\r\n");
    std::vector<std::string> replies;
    if (together) {
      replies = sent(h.tcp(kAuthPlain + kPlainCredentials));
    } else {
      CHECK(sent(h.tcp(kAuthPlain)).empty());
      replies = sent(h.tcp(kPlainCredentials));
    }
    CHECK(replies == std::vector<std::string>{"200 Success\r\n"});
    CHECK(h.session.identity() == Identity{Mechanism::Plain, "alice"});
  }
}

TEST_CASE("server golden: PLAIN over UDP answers the AUTHENTICATE datagram empty",
          "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  h.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  CHECK(sent_datagrams(h.udp(0xf00000f1, 2, kAuthPlain)) ==
        std::vector{SentDatagram{UdpHeader{0xf00000f1, 2}, ""}});
  CHECK(sent_datagrams(h.udp(0xf00000f2, 3, kPlainCredentials)) ==
        std::vector{SentDatagram{UdpHeader{0xf00000f2, 3}, "200 Success\r\n"}});
  auto wrong = ServerHarness{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  wrong.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  wrong.udp(0xf00000f1, 2, kAuthPlain);
  CHECK(sent_datagrams(wrong.udp(0xf00000f2, 3, std::string{"\0alice\0nope\r\n", 13}))[0].payload ==
        "300 Authentication failed\r\n");
}

TEST_CASE("server golden: v4v6 (DSTM) create, info with all four addresses, accept",
          "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  auto a = h.tcp(kCreateV4v6);
  const auto alloc = only<AllocateLease>(a);
  REQUIRE(alloc.size() == 1);
  CHECK(alloc[0].type == TunnelType::V4V6);
  CHECK(alloc[0].client_ipv6 == v6("::1"));
  CHECK(alloc[0].keepalive_interval == 30);
  CHECK(sent(h.event(LeaseAllocated{dstm_offer()})) == std::vector{kInfoV4v6});
  a = h.tcp(kAccept);
  CHECK(only<ConfirmLease>(a) == std::vector{ConfirmLease{v4("198.51.100.10")}});
  // Established lasts the lease plus the grace period.
  const auto timers = only<ArmTimer>(a);
  REQUIRE(timers.size() == 1);
  CHECK(timers[0].after == std::chrono::seconds{3600 + 60});
  // info asks for the current tunnel again.
  CHECK(sent(h.tcp(request_message(make_tunnel(TunnelAction::Info)))) == std::vector{kInfoV4v6});
}

TEST_CASE("server golden: the TEP query of draft-jaehwoon-dstm-multitep-02 Appendix A",
          "[tsp][server][query]") {
  ServerHarness h{draft_config(), Transport::Tcp, v6("2001:db8:0:1::2")};
  CHECK(sent(h.tcp("VERSION=1.0\r\n")) ==
        std::vector<std::string>{"CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5 AUTH=ANONYMOUS\r\n"});
  CHECK(sent(h.tcp("AUTHENTICATE ANONYMOUS\r\n")) ==
        std::vector<std::string>{"OK Authentication successful\r\n"});
  auto a = h.tcp(kQuery);
  CHECK(sent(a).empty());
  CHECK(only<LookupMapping>(a) ==
        std::vector{LookupMapping{1, v4("198.51.100.7"), Identity{Mechanism::Anonymous, ""}}});
  a = h.event(MappingFound{1, Mapping{v4("198.51.100.7"), v6("2001:db8:0:2::7"), 1440}});
  CHECK(sent(a) == std::vector{kAnswer});
  CHECK(h.session.state() == ServerState::Authenticated);  // the session stays open
}

TEST_CASE("server query: pipelined queries are answered in request order", "[tsp][server][query]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(query_for("198.51.100.1") + query_for("198.51.100.2") + query_for("198.51.100.3"));
  const auto lookups = only<LookupMapping>(a);
  REQUIRE(lookups.size() == 3);
  CHECK(lookups[2].ipv4 == v4("198.51.100.3"));
  CHECK(h.session.pending_queries() == 3);
  // The third and the first are found, the second is not leased.
  CHECK(sent(h.event(MappingFound{lookups[2].query_id,
                                  Mapping{v4("198.51.100.3"), v6("2001:db8::3"), 30}}))
            .empty());
  auto first = sent(h.event(
      MappingFound{lookups[0].query_id, Mapping{v4("198.51.100.1"), v6("2001:db8::1"), 10}}));
  REQUIRE(first.size() == 1);
  CHECK(parse_reply(first[0].substr(first[0].find('\n') + 1)).value().tunnel->server->ipv6() ==
        v6("2001:db8::1"));
  auto rest = sent(h.event(MappingNotFound{lookups[1].query_id, Status::InvalidIpv4Address}));
  REQUIRE(rest.size() == 2);
  CHECK(rest[0] == "Content-length: 26\r\n501 Invalid IPv4 address\r\n");
  CHECK(rest[1].find("2001:db8::3") != std::string::npos);
  CHECK(h.session.pending_queries() == 0);
  // Stale answers are ignored.
  CHECK(sent(h.event(MappingNotFound{lookups[1].query_id, Status::InvalidIpv4Address})).empty());
}

TEST_CASE("server query: at most max_pending_queries are outstanding", "[tsp][server][query]") {
  auto c = draft_config();
  c.limits.max_pending_queries = 2;
  auto h = authenticated_tcp(c, v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(query_for("198.51.100.1") + query_for("198.51.100.2") + query_for("198.51.100.3"));
  auto lookups = only<LookupMapping>(a);
  REQUIRE(lookups.size() == 2);
  a = h.event(MappingNotFound{lookups[0].query_id, Status::InvalidIpv4Address});
  CHECK(sent(a).size() == 1);
  CHECK(only<LookupMapping>(a).size() == 1);  // the third is read now
}

TEST_CASE("server query: a create after pending queries waits for their answers",
          "[tsp][server][query]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  auto a = h.tcp(query_for("198.51.100.1") + kCreateV4v6);
  CHECK(only<AllocateLease>(a).empty());
  a = h.event(MappingNotFound{only<LookupMapping>(a)[0].query_id, Status::InvalidIpv4Address});
  CHECK(sent(a).size() == 1);
  CHECK(only<AllocateLease>(a).size() == 1);
}

TEST_CASE("server query: unsupported type or missing address is answered in order",
          "[tsp][server][query]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(query_for("198.51.100.1") +
                 request_message(make_tunnel(TunnelAction::Query, TunnelType::V6V4)) +
                 request_message(make_tunnel(TunnelAction::Query)));
  CHECK(sent(a).empty());
  a = h.event(MappingNotFound{1, Status::InvalidIpv4Address});
  CHECK(sent(a) == std::vector<std::string>{"Content-length: 26\r\n501 Invalid IPv4 address\r\n",
                                            "Content-length: 29\r\n303 Unsupported tunnel type\r\n",
                                            "Content-length: 21\r\n500 Invalid request\r\n"});
}

TEST_CASE("server query: backend deadline answers 310 and closes", "[tsp][server][query]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(kQuery);
  auto t = h.expire(a, TimerKind::Phase);
  CHECK(sent(t) == std::vector<std::string>{"Content-length: 23\r\n310 Server side error\r\n"});
  CHECK(has<Close>(t));
}

TEST_CASE("server query: an idle query session closes after query_idle", "[tsp][server][query]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  h.tcp(kQuery);
  auto a = h.event(MappingNotFound{1, Status::InvalidIpv4Address});
  const auto timers = only<ArmTimer>(a);
  REQUIRE(timers.size() == 1);
  CHECK(timers[0].after == std::chrono::seconds{300});
  auto t = h.expire(a, TimerKind::Phase);
  CHECK(only<Close>(t) == std::vector{Close{make_error_code(Errc::Timeout), Duration{0}}});
}

TEST_CASE("server udp: a retransmission gets the cached reply, the state does not advance",
          "[tsp][server][udp]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  h.udp(0xf00000f0, 930, "VERSION=2.0.2\r\n");
  // Same sequence word, new timestamp: the header of the retransmission is echoed.
  CHECK(only<Send>(h.udp(0xf00000f0, 2930, "VERSION=2.0.2\r\n")) ==
        std::vector{Send{datagram(0xf00000f0, 2930, kCapability)}});
  CHECK(h.session.state() == ServerState::AwaitAuthenticate);
  h.udp(0xf00000f1, 931, kAuthAnonymous);
  CHECK(only<Send>(h.udp(0xf00000f1, 931, kAuthAnonymous)) ==
        std::vector{Send{datagram(0xf00000f1, 931, "200 Success\r\n")}});
  // While the daemon allocates, retransmissions are dropped; afterwards they get the offer.
  auto a = h.udp(0xf00000f2, 931, kCreateV6v4);
  CHECK(only<AllocateLease>(a).size() == 1);
  a = h.udp(0xf00000f2, 2931, kCreateV6v4);
  CHECK(a.empty());
  a = h.udp(0xf00000f3, 2931, kAccept);  // a new request while busy is dropped too
  CHECK(a.empty());
  h.event(LeaseAllocated{capture_offer()});
  a = h.udp(0xf00000f2, 4931, kCreateV6v4);
  CHECK(only<Send>(a) == std::vector{Send{datagram(0xf00000f2, 4931, kInfoV6v4)}});
  CHECK(only<AllocateLease>(a).empty());
}

TEST_CASE("server udp: a delayed duplicate of an earlier request is dropped",
          "[tsp][server][udp]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  h.udp(0xf00000f0, 930, "VERSION=2.0.2\r\n");
  h.udp(0xf00000f1, 931, kAuthAnonymous);
  CHECK(h.udp(0xf00000f0, 930, "VERSION=2.0.2\r\n").empty());
  CHECK(h.session.state() == ServerState::Authenticated);
}

TEST_CASE("server udp: ECHO REQUEST is answered in any state without effect",
          "[tsp][server][udp]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("192.0.2.7")};
  CHECK(only<Send>(h.udp(0xf00000f0, 7, "ECHO REQUEST")) ==
        std::vector{Send{datagram(0xf00000f0, 7, "")}});
  CHECK(h.session.state() == ServerState::AwaitVersion);
  h.udp(0xf00000f1, 8, "VERSION=2.0.2\r\n");
  CHECK(only<Send>(h.udp(0xf00000f2, 9, "ECHO REQUEST")).size() == 1);
  CHECK(h.session.state() == ServerState::AwaitAuthenticate);
}

TEST_CASE("server udp: tunnelled data and runts are not the session's", "[tsp][server][udp]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("192.0.2.7")};
  const auto ipv6 = bytes(std::string{"\x60\x00\x00\x00\x00\x00\x3b\x40", 8});
  CHECK(h.event(DatagramReceived{ipv6}).empty());
  const auto runt = bytes(std::string{"\xf0\x00", 2});
  CHECK(h.event(DatagramReceived{runt}).empty());
  // TCP bytes to a UDP session (and the reverse) are ignored.
  CHECK(h.tcp("VERSION=2.0.2\r\n").empty());
}

TEST_CASE("server udp: a closed session still answers retransmissions during its linger",
          "[tsp][server][udp]") {
  ServerHarness h{gogoc_config(), Transport::Udp, v4("127.0.0.1")};
  auto a = h.udp(0xf00000f0, 1, "VERSION=3.0.0\r\n");
  CHECK(sent_datagrams(a)[0].payload == "302 Unsupported client version\r\n");
  CHECK(only<Close>(a) ==
        std::vector{Close{make_error_code(Errc::UnsupportedVersion), std::chrono::seconds{60}}});
  CHECK(sent_datagrams(h.udp(0xf00000f0, 2, "VERSION=3.0.0\r\n"))[0].payload ==
        "302 Unsupported client version\r\n");
  CHECK(h.udp(0xf00000f1, 3, "VERSION=2.0.2\r\n").empty());
}

TEST_CASE("server version: unsupported versions get 302, or a redirect", "[tsp][server]") {
  for (auto v : {"3.0.0", "2.0.3", "2.1.0", "0.9.9"}) {
    INFO(v);
    ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
    auto a = h.tcp("VERSION=" + std::string{v} + "\r\n");
    CHECK(sent(a) == std::vector<std::string>{"302 Unsupported client version\r\n"});
    CHECK(has<Close>(a));
  }
  auto c = gogoc_config();
  c.allow_v1 = false;
  ServerHarness old{c, Transport::Tcp, v4("127.0.0.1")};
  CHECK(sent(old.tcp("VERSION=1.0.1\r\n")) ==
        std::vector<std::string>{"302 Unsupported client version\r\n"});
  c.redirect_brokers = {Address{v4("192.0.2.9"), std::nullopt},
                        Address{DnsName{"broker.example"}, std::nullopt}};
  ServerHarness redirected{c, Transport::Tcp, v4("127.0.0.1")};
  auto a = redirected.tcp("VERSION=1.0.1\r\n");
  CHECK(sent(a) == std::vector<std::string>{
                       "1302 Unsupported client version\r\n<tunnel action=\"info\" "
                       "type=\"*\"><broker><address type=\"ipv4\">192.0.2.9</address><address "
                       "type=\"dn\">broker.example</address></broker></tunnel>\r\n"});
  CHECK(only<Close>(a)[0].reason == make_error_code(Errc::Redirected));
}

TEST_CASE("server version: 1.0.1 has no accept step and says 200 Success", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"), "1.0.1");
  h.tcp(kCreateV4v6);
  auto a = h.event(LeaseAllocated{dstm_offer()});
  CHECK(sent(a) == std::vector{kInfoV4v6});
  CHECK(only<ConfirmLease>(a).size() == 1);
  CHECK(h.session.state() == ServerState::Established);
}

TEST_CASE("server policy: a v4v6 create must come from the client's own IPv6", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("2001:db8:5::5"));
  auto a = h.tcp(kCreateV4v6);  // claims ::1
  CHECK(sent(a) == std::vector<std::string>{"Content-length: 26\r\n502 Invalid IPv6 address\r\n"});
  CHECK(only<AllocateLease>(a).empty());
  CHECK(h.session.state() == ServerState::Authenticated);
  // Over IPv4 the source cannot match: an anonymous client is refused, an authenticated user
  // may name its IPv6 (the lease is bound to the user).
  auto g = authenticated_tcp(dstm_config(), v4("192.0.2.5"));
  CHECK(sent(g.tcp(kCreateV4v6))[0].find("502") != std::string::npos);
  ServerHarness user{dstm_config(), Transport::Tcp, v4("192.0.2.5")};
  user.tcp("VERSION=2.0.2\r\n");
  user.tcp(kAuthPlain + kPlainCredentials);
  REQUIRE(user.session.state() == ServerState::Authenticated);
  const auto granted = only<AllocateLease>(user.tcp(kCreateV4v6));
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].client_ipv6 == v6("::1"));
  CHECK(granted[0].identity.user == "alice");
  // Without the policy the request's address is taken; without an address, the source.
  auto c = dstm_config();
  c.require_source_address = false;
  auto lax = authenticated_tcp(c, v6("2001:db8:5::5"));
  CHECK(only<AllocateLease>(lax.tcp(kCreateV4v6))[0].client_ipv6 == v6("::1"));
  auto implicit = authenticated_tcp(dstm_config(), v6("2001:db8:5::5"));
  auto create = make_tunnel(TunnelAction::Create, TunnelType::V4V6);
  create.client = Endpoint{};
  CHECK(only<AllocateLease>(implicit.tcp(request_message(create)))[0].client_ipv6 ==
        v6("2001:db8:5::5"));
  // An IPv4-mapped source is an IPv4 peer.
  auto mapped = authenticated_tcp(dstm_config(), v6("::ffff:192.0.2.5"));
  CHECK(sent(mapped.tcp(request_message(create)))[0].find("502") != std::string::npos);
}

TEST_CASE("server policy: unserved tunnel types get 303", "[tsp][server]") {
  for (auto type : {"v6v4", "v6udpv4", "v6anyv4"}) {
    INFO(type);
    auto h = authenticated_tcp(dstm_config(), v6("::1"));
    auto body = std::string{"<tunnel action=\"create\" type=\""} + type +
                "\"><client><address type=\"ipv4\">192.0.2.1</address></client></tunnel>\r\n";
    CHECK(sent(h.tcp(frame_message(body))) ==
          std::vector<std::string>{"Content-length: 29\r\n303 Unsupported tunnel type\r\n"});
    CHECK(h.session.state() == ServerState::Authenticated);
  }
}

TEST_CASE("server policy: v6anyv4 becomes v6udpv4 behind a NAT, else v6v4", "[tsp][server]") {
  const std::string any = frame_message(
      "<tunnel action=\"create\" type=\"v6anyv4\"><client><address "
      "type=\"ipv4\">10.0.0.2</address></client></tunnel>\r\n");
  ServerHarness nat{gogoc_config(), Transport::Udp, v4("192.0.2.80")};
  nat.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  nat.udp(0xf00000f1, 1, kAuthAnonymous);
  CHECK(only<AllocateLease>(nat.udp(0xf00000f2, 1, any))[0].type == TunnelType::V6UdpV4);
  ServerHarness direct{gogoc_config(), Transport::Udp, v4("10.0.0.2")};
  direct.udp(0xf00000f0, 1, "VERSION=2.0.2\r\n");
  direct.udp(0xf00000f1, 1, kAuthAnonymous);
  CHECK(only<AllocateLease>(direct.udp(0xf00000f2, 1, any))[0].type == TunnelType::V6V4);
}

TEST_CASE("server policy: prefixes are not for anonymous users", "[tsp][server]") {
  auto router = make_tunnel(TunnelAction::Create, TunnelType::V4V6);
  router.client = Endpoint{};
  router.client->addresses = {Address{v6("::1"), std::nullopt}};
  router.client->router =
      Router{.protocol = {}, .prefix = Prefix{24, std::nullopt}, .dns_servers = {}};
  auto anon = authenticated_tcp(dstm_config(), v6("::1"));
  CHECK(sent(anon.tcp(request_message(router))) ==
        std::vector<std::string>{"Content-length: 36\r\n522 Prefix requested for anonymous\r\n"});
  ServerHarness user{dstm_config(), Transport::Tcp, v6("::1")};
  user.tcp("VERSION=2.0.2\r\n");
  user.tcp(kAuthPlain + kPlainCredentials);
  auto a = user.tcp(request_message(router));
  REQUIRE(only<AllocateLease>(a).size() == 1);
  CHECK(only<AllocateLease>(a)[0].prefix == Prefix{24, std::nullopt});
  CHECK(only<AllocateLease>(a)[0].identity == Identity{Mechanism::Plain, "alice"});
  router.client->router->prefix.reset();
  auto missing = authenticated_tcp(dstm_config(), v6("::1"));
  CHECK(sent(missing.tcp(request_message(router)))[0].find("520 Missing prefix length") !=
        std::string::npos);
}

TEST_CASE("server lease: failures are reported, redirects close", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  h.tcp(kCreateV4v6);
  auto a = h.event(LeaseFailed{Status::NoMoreTunnels, {}});
  CHECK(sent(a) ==
        std::vector<std::string>{"Content-length: 31\r\n301 No more tunnels available\r\n"});
  CHECK(h.session.state() == ServerState::Authenticated);
  h.tcp(kCreateV4v6);
  a = h.event(LeaseFailed{Status::NoMoreTunnels, {Address{v6("2001:db8::99"), std::nullopt}}});
  CHECK(sent(a) ==
        std::vector{frame_message(
            "1301 No more tunnels available\r\n<tunnel action=\"info\" type=\"*\"><broker>"
            "<address type=\"ipv6\">2001:db8::99</address></broker></tunnel>\r\n")});
  CHECK(has<Close>(a));
}

TEST_CASE("server lease: an offer not accepted in time is released", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  h.tcp(kCreateV4v6);
  auto a = h.event(LeaseAllocated{dstm_offer()});
  auto t = h.expire(a, TimerKind::Phase);
  CHECK(only<ReleaseLease>(t) ==
        std::vector{ReleaseLease{ReleaseReason::NotAccepted, Identity{Mechanism::Anonymous, ""},
                                 v6("::1"), v4("198.51.100.10")}});
  CHECK(only<Close>(t)[0].reason == make_error_code(Errc::Timeout));
}

TEST_CASE("server lease: reject releases, delete releases and answers", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  h.tcp(kCreateV4v6);
  h.event(LeaseAllocated{dstm_offer()});
  auto a = h.tcp(request_message(make_tunnel(TunnelAction::Reject)));
  CHECK(only<ReleaseLease>(a)[0].reason == ReleaseReason::Rejected);
  CHECK(has<Close>(a));

  // A later session (renewal, release) deletes by who it is.
  auto d = authenticated_tcp(dstm_config(), v6("::1"));
  a = d.tcp(request_message(make_tunnel(TunnelAction::Delete)));
  CHECK(only<ReleaseLease>(a) ==
        std::vector{ReleaseLease{ReleaseReason::Deleted, Identity{Mechanism::Anonymous, ""},
                                 v6("::1"), std::nullopt}});
  CHECK(sent(a) == std::vector<std::string>{"Content-length: 13\r\n200 Success\r\n"});
  CHECK(has<Close>(a));
}

TEST_CASE("server lease: a closed connection releases only an unaccepted offer", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  h.tcp(kCreateV4v6);
  h.event(LeaseAllocated{dstm_offer()});
  CHECK(only<ReleaseLease>(h.event(PeerClosed{})).size() == 1);

  auto e = authenticated_tcp(dstm_config(), v6("::1"));
  e.tcp(kCreateV4v6);
  e.event(LeaseAllocated{dstm_offer()});
  e.tcp(kAccept);
  auto a = e.event(PeerClosed{});
  CHECK(only<ReleaseLease>(a).empty());  // reaped at expiry, not at once
  CHECK(has<Close>(a));

  // An allocation that arrives after the session ended is given back.
  auto l = authenticated_tcp(dstm_config(), v6("::1"));
  l.tcp(kCreateV4v6);
  l.event(PeerClosed{});
  a = l.event(LeaseAllocated{dstm_offer()});
  CHECK(only<ReleaseLease>(a)[0].reason == ReleaseReason::Abandoned);
  CHECK(sent(a).empty());
}

TEST_CASE("server lease: a second create while an offer is open gets 521", "[tsp][server]") {
  auto h = authenticated_tcp(dstm_config(), v6("::1"));
  h.tcp(kCreateV4v6);
  h.event(LeaseAllocated{dstm_offer()});
  CHECK(sent(h.tcp(kCreateV4v6)) ==
        std::vector<std::string>{"Content-length: 33\r\n521 Request already in progress\r\n"});
  // After accept, a create renews.
  h.tcp(kAccept);
  CHECK(only<AllocateLease>(h.tcp(kCreateV4v6)).size() == 1);
}

TEST_CASE("server deadlines: every phase is bounded", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  const auto armed = only<ArmTimer>(h.start);
  REQUIRE(armed.size() == 1);
  CHECK(armed[0].after == std::chrono::seconds{30});
  auto t = h.expire(h.start, TimerKind::Phase);
  CHECK(sent(t).empty());
  CHECK(only<Close>(t) == std::vector{Close{make_error_code(Errc::Timeout), Duration{0}}});
  CHECK(h.session.state() == ServerState::Closed);
  CHECK(h.tcp("VERSION=2.0.2\r\n").empty());

  // A stale generation does nothing.
  ServerHarness s{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  auto a = s.tcp("VERSION=2.0.2\r\n");
  a = s.tcp(kAuthAnonymous);
  CHECK(s.event(TimerExpired{TimerKind::Phase, 1}).empty());
  // The lease backend has its own deadline.
  a = s.tcp(kCreateV6v4);
  t = s.expire(a, TimerKind::Phase);
  CHECK(sent(t) == std::vector<std::string>{"Content-length: 23\r\n310 Server side error\r\n"});
  // ... and a late allocation is released.
  CHECK(only<ReleaseLease>(s.event(LeaseAllocated{capture_offer()})).size() == 1);
}

TEST_CASE("server auth: three failures close the session", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  h.tcp("VERSION=2.0.2\r\n");
  for (int i = 0; i < 3; ++i) {
    auto a = h.tcp(kAuthPlain + std::string{"\0alice\0bad\r\n", 12});
    CHECK(sent(a) == std::vector<std::string>{"300 Authentication failed\r\n"});
    CHECK(has<Close>(a) == (i == 2));
  }
}

TEST_CASE("server auth: an unknown or unoffered mechanism fails", "[tsp][server]") {
  auto c = dstm_config();
  c.sasl.mechanisms = {Mechanism::DigestMd5};
  ServerHarness h{c, Transport::Tcp, v6("::1")};
  CHECK(sent(h.tcp("VERSION=2.0.2\r\n")) ==
        std::vector<std::string>{"CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5\r\n"});
  CHECK(sent(h.tcp(kAuthAnonymous)) == std::vector<std::string>{"300 Authentication failed\r\n"});
  CHECK(sent(h.tcp("AUTHENTICATE PASSDSS-3DES-1\r\n")) ==
        std::vector<std::string>{"300 Authentication failed\r\n"});
  CHECK(h.session.state() == ServerState::AwaitAuthenticate);
}

TEST_CASE("server: step() is the same transition as a pure function", "[tsp][server]") {
  ServerHarness h{gogoc_config(), Transport::Tcp, v4("127.0.0.1")};
  auto [next, actions] = step(h.session, BytesReceived{core::as_bytes("VERSION=2.0.2\r\n")});
  CHECK(sent(actions) == std::vector{kCapability});
  CHECK(next.state() == ServerState::AwaitAuthenticate);
  CHECK(h.session.state() == ServerState::AwaitVersion);  // the input value is unchanged
}

// ---- TEP heartbeats (extension, docs/tsp.md) ----

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

HeartbeatAnswered withdrawn_two(std::uint64_t id) {
  return HeartbeatAnswered{
      id, Status::Success, 30, {v4("198.51.100.7"), v4("198.51.100.8")}, false};
}

}  // namespace

TEST_CASE("server heartbeat: the daemon's answer becomes interval, withdrawn list and flush",
          "[tsp][server][heartbeat]") {
  ServerHarness h{dstm_config(), Transport::Tcp, v6("2001:db8:0:1::2")};
  h.tcp("VERSION=2.0.2\r\n");
  h.tcp(kAuthPlain + kPlainCredentials);
  auto a = h.tcp(kHeartbeat);
  CHECK(sent(a).empty());
  CHECK(only<Heartbeat>(a) == std::vector{Heartbeat{1, Identity{Mechanism::Plain, "alice"}}});
  const auto timers = only<ArmTimer>(a);
  REQUIRE(timers.size() == 1);
  CHECK(timers[0].after == std::chrono::seconds{10});  // the backend deadline
  CHECK(h.session.pending_queries() == 1);

  a = h.event(withdrawn_two(1));
  CHECK(sent(a) == std::vector{kHeartbeatAnswer});
  CHECK(only<ArmTimer>(a)[0].after == std::chrono::seconds{300});  // query_idle
  CHECK(h.session.state() == ServerState::Authenticated);
  CHECK(h.session.pending_queries() == 0);

  // flush without a list: no <server> element.
  CHECK(only<Heartbeat>(h.tcp(kHeartbeat))[0].query_id == 2);
  CHECK(sent(h.event(HeartbeatAnswered{2, Status::Success, 600, {}, true})) ==
        std::vector{kFlushAnswer});
  // Stale and duplicate answers are ignored.
  CHECK(h.event(HeartbeatAnswered{2, Status::Success, 600, {}, true}).empty());
}

TEST_CASE("server heartbeat: another status is the status line alone - the session goes on",
          "[tsp][server][heartbeat]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  h.tcp(kHeartbeat);
  auto a = h.event(HeartbeatAnswered{1, Status::AuthenticationFailed, 30, {v4("192.0.2.1")}, true});
  CHECK(sent(a) == std::vector<std::string>{"Content-length: 27\r\n300 Authentication failed\r\n"});
  CHECK_FALSE(has<Close>(a));
  CHECK(h.session.state() == ServerState::Authenticated);
}

TEST_CASE("server heartbeat: pipelined with queries, answered in request order",
          "[tsp][server][heartbeat][query]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(query_for("198.51.100.1") + kHeartbeat + query_for("198.51.100.2") + kHeartbeat);
  CHECK(sent(a).empty());
  const auto lookups = only<LookupMapping>(a);
  const auto beats = only<Heartbeat>(a);
  REQUIRE(lookups.size() == 2);
  REQUIRE(beats.size() == 2);
  CHECK(lookups[0].query_id == 1);
  CHECK(beats[0].query_id == 2);
  CHECK(lookups[1].query_id == 3);
  CHECK(beats[1].query_id == 4);
  CHECK(h.session.pending_queries() == 4);

  // Answers for the wrong kind of request are ignored.
  CHECK(h.event(MappingNotFound{2, Status::InvalidIpv4Address}).empty());
  CHECK(h.event(withdrawn_two(1)).empty());

  // The daemon answers backwards: nothing leaves until the first is answered.
  CHECK(sent(h.event(HeartbeatAnswered{4, Status::Success, 600, {}, true})).empty());
  CHECK(sent(h.event(MappingFound{3, Mapping{v4("198.51.100.2"), v6("2001:db8::2"), 60}})).empty());
  CHECK(sent(h.event(withdrawn_two(2))).empty());
  const auto out = sent(h.event(MappingNotFound{1, Status::InvalidIpv4Address}));
  REQUIRE(out.size() == 4);
  CHECK(out[0] == "Content-length: 26\r\n501 Invalid IPv4 address\r\n");
  CHECK(out[1] == kHeartbeatAnswer);
  CHECK(out[2].find("2001:db8::2") != std::string::npos);
  CHECK(out[3] == kFlushAnswer);
  CHECK(h.session.pending_queries() == 0);
}

TEST_CASE("server heartbeat: an unsupported type gets 303 in order, like a query",
          "[tsp][server][heartbeat]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a =
      h.tcp(kHeartbeat + request_message(make_tunnel(TunnelAction::Heartbeat, TunnelType::V6V4)) +
            frame_message("<tunnel action=\"heartbeat\" type=\"dslite\"/>\r\n") +
            request_message(make_tunnel(TunnelAction::Heartbeat)));  // no type: v4v6
  CHECK(sent(a).empty());
  CHECK(only<Heartbeat>(a).size() == 2);
  CHECK(sent(h.event(HeartbeatAnswered{1, Status::Success, 600, {}, true})) ==
        std::vector<std::string>{kFlushAnswer,
                                 "Content-length: 29\r\n303 Unsupported tunnel type\r\n",
                                 "Content-length: 29\r\n303 Unsupported tunnel type\r\n"});
  CHECK(sent(h.event(HeartbeatAnswered{4, Status::Success, 600, {}, true})) ==
        std::vector{kFlushAnswer});
  // Without anything outstanding a wrong type is answered at once.
  CHECK(sent(h.tcp(request_message(make_tunnel(TunnelAction::Heartbeat, TunnelType::V6V4)))) ==
        std::vector<std::string>{"Content-length: 29\r\n303 Unsupported tunnel type\r\n"});
  CHECK(h.session.state() == ServerState::Authenticated);
}

TEST_CASE("server heartbeat: only in the Authenticated state", "[tsp][server][heartbeat]") {
  // Before authentication: a command, 500 and close (as a query).
  ServerHarness early{draft_config(), Transport::Tcp, v6("2001:db8:0:1::2")};
  early.tcp("VERSION=1.0\r\n");
  auto a = early.tcp(kHeartbeat);
  CHECK(sent(a) == std::vector<std::string>{"500 Invalid request\r\n"});
  CHECK(only<Close>(a)[0].reason == make_error_code(Errc::UnexpectedMessage));
  CHECK(only<Heartbeat>(a).empty());
  // With an open offer: 500, the session goes on.
  auto offer = authenticated_tcp(dstm_config(), v6("::1"));
  offer.tcp(kCreateV4v6);
  offer.event(LeaseAllocated{dstm_offer()});
  a = offer.tcp(kHeartbeat);
  CHECK(sent(a) == std::vector<std::string>{"Content-length: 21\r\n500 Invalid request\r\n"});
  CHECK(only<Heartbeat>(a).empty());
  CHECK(offer.session.state() == ServerState::AwaitAccept);
}

TEST_CASE("server heartbeat: backend deadline answers 310 and closes", "[tsp][server][heartbeat]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(kHeartbeat + kQuery);
  auto t = h.expire(a, TimerKind::Phase);
  CHECK(sent(t) == std::vector<std::string>{"Content-length: 23\r\n310 Server side error\r\n",
                                            "Content-length: 23\r\n310 Server side error\r\n"});
  CHECK(only<Close>(t) == std::vector{Close{make_error_code(Errc::Timeout), Duration{0}}});
  CHECK(h.event(withdrawn_two(1)).empty());  // late
}

TEST_CASE("server heartbeat: heartbeats count toward max_pending_queries",
          "[tsp][server][heartbeat]") {
  auto c = draft_config();
  c.limits.max_pending_queries = 2;
  auto h = authenticated_tcp(c, v6("2001:db8:0:1::2"), "1.0");
  auto a = h.tcp(kHeartbeat + query_for("198.51.100.1") + kHeartbeat);
  CHECK(only<Heartbeat>(a).size() == 1);
  CHECK(only<LookupMapping>(a).size() == 1);
  a = h.event(HeartbeatAnswered{1, Status::Success, 600, {}, true});
  CHECK(sent(a) == std::vector{kFlushAnswer});
  CHECK(only<Heartbeat>(a) == std::vector{Heartbeat{3, Identity{Mechanism::Anonymous, ""}}});
}

TEST_CASE("server heartbeat: over UDP the datagram is answered when the daemon has",
          "[tsp][server][heartbeat][udp]") {
  ServerHarness h{draft_config(), Transport::Udp, v6("2001:db8:0:1::2")};
  h.udp(0xf00000f0, 1, "VERSION=1.0\r\n");
  h.udp(0xf00000f1, 2, "AUTHENTICATE ANONYMOUS\r\n");
  auto a = h.udp(0xf00000f2, 3, kHeartbeat);
  CHECK(only<Send>(a).empty());
  CHECK(only<Heartbeat>(a).size() == 1);
  CHECK(h.udp(0xf00000f2, 4, kHeartbeat).empty());  // a retransmission while busy
  a = h.event(withdrawn_two(1));
  CHECK(sent_datagrams(a) == std::vector{SentDatagram{UdpHeader{0xf00000f2, 3}, kHeartbeatAnswer}});
  // A retransmission now gets the cached answer and no second Heartbeat.
  a = h.udp(0xf00000f2, 5, kHeartbeat);
  CHECK(sent_datagrams(a) == std::vector{SentDatagram{UdpHeader{0xf00000f2, 5}, kHeartbeatAnswer}});
  CHECK(only<Heartbeat>(a).empty());
}

TEST_CASE("server heartbeat: a full withdrawn list is written - more is a daemon bug",
          "[tsp][server][heartbeat]") {
  auto h = authenticated_tcp(draft_config(), v6("2001:db8:0:1::2"), "1.0");
  h.tcp(kHeartbeat);
  const std::vector<core::Ipv4Address> full(kMaxWithdrawnPerHeartbeat, v4("203.0.113.9"));
  const auto out = sent(h.event(HeartbeatAnswered{1, Status::Success, 60, full, false}));
  REQUIRE(out.size() == 1);
  const auto reply = parse_reply(out[0].substr(out[0].find('\n') + 1)).value();
  REQUIRE(reply.tunnel->server);
  CHECK(reply.tunnel->server->addresses.size() == kMaxWithdrawnPerHeartbeat);
  CHECK_FALSE(reply.tunnel->flush);
#ifdef NDEBUG
  // Asserted in debug builds; otherwise the answer degrades to a flush, which is still correct.
  h.tcp(kHeartbeat);
  const std::vector<core::Ipv4Address> over(kMaxWithdrawnPerHeartbeat + 1, v4("203.0.113.9"));
  CHECK(sent(h.event(HeartbeatAnswered{2, Status::Success, 600, over, false})) ==
        std::vector{kFlushAnswer});
#endif
}
