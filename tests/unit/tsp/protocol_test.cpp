// Tests for tsp/protocol.hpp, tsp/status.hpp and tsp/error.hpp: versions, capability lines,
// names, the status table.
#include "tsp/protocol.hpp"

#include <catch2/catch.hpp>

#include "tsp/error.hpp"
#include "tsp/status.hpp"
#include "tsp_test_util.hpp"

using namespace tsp;

TEST_CASE("status: every table code has its text and round-trips", "[tsp][status]") {
  const std::pair<int, const char*> table[] = {
      {200, "Success"},
      {300, "Authentication failed"},
      {301, "No more tunnels available"},
      {302, "Unsupported client version"},
      {303, "Unsupported tunnel type"},
      {310, "Server side error"},
      {500, "Invalid request"},
      {501, "Invalid IPv4 address"},
      {502, "Invalid IPv6 address"},
      {506, "IPv4 prefix already in use"},
      {507, "Requested prefix length unavailable"},
      {509, "DNS delegation error"},
      {518, "Unsupported prefix length"},
      {520, "Missing prefix length"},
      {521, "Request already in progress"},
      {522, "Prefix requested for anonymous"},
      {530, "Server too busy"},
  };
  for (const auto& [code, text] : table) {
    INFO(code);
    const auto s = status_from_code(code);
    REQUIRE(s);
    CHECK(static_cast<int>(*s) == code);
    CHECK(status_text(*s) == text);
    CHECK(status_line(*s) == std::to_string(code) + " " + text);
  }
  CHECK_FALSE(status_from_code(201));
  CHECK_FALSE(status_from_code(1302));
}

TEST_CASE("status: redirect codes are 1000 + a table code", "[tsp][status]") {
  CHECK(redirect_code(Status::UnsupportedVersion) == 1302);
  CHECK(is_redirect_code(1302));
  CHECK(is_redirect_code(1200));  // gogoc's TSP_PROTOCOL_REDIRECT
  CHECK_FALSE(is_redirect_code(1000));
  CHECK_FALSE(is_redirect_code(302));
  const auto s = parse_status_line("1302 Unsupported client version").value();
  CHECK(s.is_redirect());
  CHECK(s.status() == Status::UnsupportedVersion);
}

TEST_CASE("status: status lines parse as gogoc reads them", "[tsp][status]") {
  CHECK(parse_status_line("200 Success").value() == StatusLine{200, "Success"});
  CHECK(parse_status_line("200 OK").value() == StatusLine{200, "OK"});
  CHECK(parse_status_line("530").value() == StatusLine{530, ""});
  // The draft's TEP profile answers AUTHENTICATE without a number.
  CHECK(parse_status_line("OK Authentication successful").value() ==
        StatusLine{200, "Authentication successful"});
  CHECK_FALSE(parse_status_line(""));
  CHECK_FALSE(parse_status_line("Success"));
  CHECK_FALSE(parse_status_line("20x Success"));
  CHECK_FALSE(parse_status_line("12345 too long"));
  CHECK_FALSE(parse_status_line("OKAY"));
}

TEST_CASE("version: VERSION lines of gogoc and of the draft", "[tsp][protocol]") {
  CHECK(parse_version_line("VERSION=2.0.2").value() == kVersion2_0_2);
  CHECK(parse_version_line("VERSION=2.0.1").value() == kVersion2_0_1);
  CHECK(parse_version_line("VERSION=2.0.0").value() == kVersion2_0_0);
  CHECK(parse_version_line("VERSION=1.0.1").value() == kVersion1_0_1);
  CHECK(parse_version_line("version=1.0").value() == kVersion1_0);
  CHECK(version_line(kVersion2_0_2) == "VERSION=2.0.2");
  CHECK(version_line(kVersion1_0) == "VERSION=1.0");
  for (auto bad : {"VERSION=", "VERSION=2", "VERSION=2.0.0.0", "VERSION=2..0", "VERSION=a.b",
                   "VERSION=256.0.0", "VERSION=-1.0", "VERSION 2.0.2", "2.0.2"}) {
    INFO(bad);
    CHECK(parse_version_line(bad).error() == make_error_code(Errc::BadVersion));
  }
}

TEST_CASE("version: supported set, accept step and bug 1455", "[tsp][protocol]") {
  CHECK(is_supported_version(kVersion2_0_2, false));
  CHECK(is_supported_version(kVersion2_0_0, false));
  CHECK_FALSE(is_supported_version(Version{2, 0, 3, true}, true));
  CHECK_FALSE(is_supported_version(Version{2, 1, 0, true}, true));
  CHECK_FALSE(is_supported_version(Version{3, 0, 0, true}, true));
  CHECK_FALSE(is_supported_version(Version{2, 0, 0, false}, true));
  CHECK(is_supported_version(kVersion1_0_1, true));
  CHECK(is_supported_version(kVersion1_0, true));
  CHECK_FALSE(is_supported_version(kVersion1_0_1, false));
  CHECK(kVersion2_0_1.has_accept_step());
  CHECK_FALSE(kVersion1_0_1.has_accept_step());
  CHECK(kVersion1_0.is_draft_profile());
  CHECK_FALSE(kVersion1_0_1.is_draft_profile());
  CHECK(kVersion2_0_0.digest_bug1455());
  CHECK(kVersion1_0_1.digest_bug1455());
  CHECK_FALSE(kVersion2_0_1.digest_bug1455());
  CHECK_FALSE(kVersion2_0_2.digest_bug1455());
}

TEST_CASE("capability: the lines of the capture and of the draft", "[tsp][protocol]") {
  const Capability gogoc{{TunnelType::V6V4, TunnelType::V6UdpV4},
                         {Mechanism::Anonymous, Mechanism::Plain, Mechanism::DigestMd5}};
  CHECK(capability_line(gogoc) ==
        "CAPABILITY TUNNEL=V6V4 TUNNEL=V6UDPV4 AUTH=ANONYMOUS AUTH=PLAIN AUTH=DIGEST-MD5");
  const Capability draft{{TunnelType::V4V6}, {Mechanism::DigestMd5, Mechanism::Anonymous}};
  CHECK(capability_line(draft) == "CAPABILITY TUNNEL=V4V6 AUTH=DIGEST-MD5 AUTH=ANONYMOUS");
  CHECK(parse_capability_line(capability_line(gogoc)).value() == gogoc);
  CHECK(parse_capability_line(capability_line(draft)).value() == draft);
}

TEST_CASE("capability: parsing follows gogoc's rules", "[tsp][protocol]") {
  // AUTH values are case-insensitive, TUNNEL values are not; unknown tokens are skipped.
  const auto c =
      parse_capability_line(
          "CAPABILITY TUNNEL=v6v4 TUNNEL=V4V6 AUTH=digest-md5 AUTH=PASSDSS-3DES-1 X=Y junk")
          .value();
  CHECK(c.tunnels == std::vector{TunnelType::V4V6});
  CHECK(c.mechanisms == std::vector{Mechanism::DigestMd5});
  CHECK(parse_capability_line("CAPABILITY").value() == Capability{});
  CHECK_FALSE(parse_capability_line("CAPABILITYX"));
  CHECK_FALSE(parse_capability_line("302 Unsupported client version"));
}

TEST_CASE("names: tunnel types, actions and mechanisms", "[tsp][protocol]") {
  CHECK(parse_tunnel_type("V4V6") == TunnelType::V4V6);
  CHECK(parse_tunnel_type("v6anyv4") == TunnelType::V6AnyV4);
  CHECK(parse_tunnel_type("*") == TunnelType::Any);
  CHECK_FALSE(parse_tunnel_type("dslite"));
  CHECK(tunnel_capability_name(TunnelType::V6UdpV4) == "V6UDPV4");
  CHECK_FALSE(tunnel_capability_name(TunnelType::V6AnyV4));
  for (auto a :
       {TunnelAction::Create, TunnelAction::Info, TunnelAction::Accept, TunnelAction::Reject,
        TunnelAction::Delete, TunnelAction::Query, TunnelAction::Heartbeat})
    CHECK(parse_tunnel_action(tunnel_action_name(a)) == a);
  CHECK(tunnel_action_name(TunnelAction::Heartbeat) == "heartbeat");
  CHECK(parse_tunnel_action("HeartBeat") == TunnelAction::Heartbeat);
  CHECK(parse_mechanism("Digest-MD5") == Mechanism::DigestMd5);
  CHECK_FALSE(parse_mechanism("PASSDSS-3DES-1"));
}

TEST_CASE("errc: codes belong to the tsp category and have messages", "[tsp][error]") {
  const boost::system::error_code ec = Errc::NonceReused;
  CHECK(ec.category() == tsp_category());
  CHECK(std::string{tsp_category().name()} == "tsp");
  CHECK(ec.message() == "DIGEST-MD5 nonce already used");
  for (int i = 1; i <= static_cast<int>(Errc::BackendFailed); ++i)
    CHECK(tsp_category().message(i) != "unknown tsp error");
}
