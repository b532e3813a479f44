// A harness around tsp::ServerSession for tests: configurations of the captured exchanges and
// helpers that feed bytes, datagrams and daemon events.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "tsp/server_session.hpp"
#include "tsp_test_util.hpp"

namespace tsp_test {

inline core::Ipv4Address v4(const char* s) {
  return core::Ipv4Address::parse(s).value();
}
inline core::Ipv6Address v6(const char* s) {
  return core::Ipv6Address::parse(s).value();
}

// Credentials of tsp-wire.md 10.2: alice / dstm / secret; bob's verifier has a NUL byte.
inline tsp::VerifierLookup test_verifiers() {
  return [](std::string_view user) -> std::optional<tsp::Md5Digest> {
    if (user == "alice") return tsp::digest_verifier("alice", "dstm", "secret");
    if (user == "bob") return tsp::digest_verifier("bob", "dstm", "pw56");
    return std::nullopt;
  };
}

// The server of the gogoc capture (tsp-wire.md 10.1): V6V4 and V6UDPV4, all three mechanisms,
// nonces 3141592653, 3141592654, ...
inline tsp::ServerConfig gogoc_config() {
  tsp::ServerConfig c;
  c.tunnel_types = {tsp::TunnelType::V6V4, tsp::TunnelType::V6UdpV4};
  c.sasl.mechanisms = {tsp::Mechanism::Anonymous, tsp::Mechanism::Plain, tsp::Mechanism::DigestMd5};
  c.sasl.verifiers = test_verifiers();
  c.sasl.random = counting_random({3141592653, 3141592654, 3141592655});
  return c;
}

// The DSTM server: v4v6 only, same mechanisms.
inline tsp::ServerConfig dstm_config() {
  auto c = gogoc_config();
  c.tunnel_types = {tsp::TunnelType::V4V6};
  return c;
}

// The server of draft-jaehwoon-dstm-multitep-02 Appendix A.
inline tsp::ServerConfig draft_config() {
  auto c = gogoc_config();
  c.tunnel_types = {tsp::TunnelType::V4V6};
  c.sasl.mechanisms = {tsp::Mechanism::DigestMd5, tsp::Mechanism::Anonymous};
  return c;
}

// The v6v4 offer of the capture.
inline tsp::LeaseOffer capture_offer() {
  return tsp::LeaseOffer{
      .client_ipv4 = v4("127.0.0.1"),
      .client_ipv6 = v6("2001:db8:1::2"),
      .server_ipv4 = v4("127.0.0.1"),
      .server_ipv6 = v6("2001:db8:1::1"),
      .lifetime = 604800,
      .dns_server = v6("2001:db8:1::53"),
      .keepalive = tsp::Keepalive{30, tsp::Address{v6("2001:db8:1::1"), std::nullopt}},
      .prefix = std::nullopt,
  };
}

// A DSTM lease: temporary IPv4 198.51.100.10, TEP 192.0.2.1 / 2001:db8::1.
inline tsp::LeaseOffer dstm_offer() {
  return tsp::LeaseOffer{
      .client_ipv4 = v4("198.51.100.10"),
      .client_ipv6 = std::nullopt,
      .server_ipv4 = v4("192.0.2.1"),
      .server_ipv6 = v6("2001:db8::1"),
      .lifetime = 3600,
      .dns_server = v6("2001:db8::53"),
      .keepalive = tsp::Keepalive{30, tsp::Address{v4("192.0.2.1"), std::nullopt}},
      .prefix = std::nullopt,
  };
}

struct ServerHarness {
  ServerHarness(tsp::ServerConfig config, tsp::Transport transport, tsp::PeerAddress peer)
      : session{std::make_shared<const tsp::ServerConfig>(std::move(config)), transport, peer} {
    start = session.handle(tsp::Start{});
  }

  std::vector<tsp::ServerAction> tcp(std::string_view data) {
    return session.handle(tsp::BytesReceived{core::as_bytes(data)});
  }
  std::vector<tsp::ServerAction> udp(std::uint32_t seq, std::uint32_t ts,
                                     std::string_view payload) {
    const auto d = datagram(seq, ts, payload);
    return session.handle(tsp::DatagramReceived{d});
  }
  std::vector<tsp::ServerAction> event(const tsp::ServerEvent& e) { return session.handle(e); }

  // Fires the last armed timer of that kind.
  std::vector<tsp::ServerAction> expire(const std::vector<tsp::ServerAction>& armed_in,
                                        tsp::TimerKind kind) {
    std::uint64_t generation = 0;
    for (const auto& a : only<tsp::ArmTimer>(armed_in))
      if (a.timer == kind) generation = a.generation;
    return session.handle(tsp::TimerExpired{kind, generation});
  }

  tsp::ServerSession session;
  std::vector<tsp::ServerAction> start;
};

// The DIGEST-MD5 exchange of tsp-wire.md 10.2 (user alice, realm dstm, nonce 3141592653), as
// base64 lines: the server's challenge, the client's response and the server's rspauth.
inline const std::string kChallenge =
    "cmVhbG09ImRzdG0iLG5vbmNlPSIzMTQxNTkyNjUzIixxb3A9ImF1dGgiLGFsZ29yaXRobT1tZDUtc2VzcyxjaGFyc2"
    "V0PXV0Zi04\r\n";
inline const std::string kDigestResponse =
    "Y2hhcnNldD11dGYtOCx1c2VybmFtZT0iYWxpY2UiLHJlYWxtPSJkc3RtIixub25jZT0iMzE0MTU5MjY1MyIsbmM9MDAw"
    "MDAwMDEsY25vbmNlPSIxNzk1Mjc1OTU2IixkaWdlc3QtdXJpPSJ0c3AvMTI3LjAuMC4xIixyZXNwb25zZT1kNDU1Zj"
    "U5YzQ0YzU0Mzc4MDFmMzBkMzAzYzM2NTcwOSxxb3A9YXV0aA==\r\n";
inline const std::string kRspauth = "cnNwYXV0aD05MzhjZGFkNzQ5NmQxNzYyYzg2MmUwNjMyNjgwMzY4Yg==\r\n";

// The TEP query of draft-jaehwoon-dstm-multitep-02 Appendix A (tsp-wire.md 13.5) and its answer.
inline const std::string kQuery =
    "Content-length: 209\r\n<tunnel action=\"query\" type=\"v4v6\"><client><address "
    "type=\"ipv4\">192.0.2.2</address><address type=\"ipv6\">2001:db8:0:1::2</address></client>"
    "<server><address type=\"ipv4\">198.51.100.7</address></server></tunnel>\r\n";
inline const std::string kAnswer =
    "Content-length: 302\r\n200 OK\r\n<tunnel action=\"info\" type=\"v4v6\" "
    "lifetime=\"1440\"><server><address type=\"ipv4\" length=\"30\">198.51.100.7</address><address "
    "type=\"ipv6\">2001:db8:0:2::7</address></server><client><address type=\"ipv4\" "
    "length=\"30\">192.0.2.2</address><address type=\"ipv6\">2001:db8:0:1::2</address></client>"
    "</tunnel>\r\n";

}  // namespace tsp_test
