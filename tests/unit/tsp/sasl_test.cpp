// Tests for tsp/sasl.hpp: base64, MD5, PLAIN, DIGEST-MD5 (the worked values of tsp-wire.md
// 10.2), bug 1455, and the server mechanism machine.
#include "tsp/sasl.hpp"

#include <catch2/catch.hpp>

#include "tsp_test_util.hpp"

using namespace tsp;

namespace {

constexpr std::string_view kChallengeB64 =
    "cmVhbG09ImRzdG0iLG5vbmNlPSIzMTQxNTkyNjUzIixxb3A9ImF1dGgiLGFsZ29yaXRobT1tZDUtc2VzcyxjaGFyc2"
    "V0PXV0Zi04";
constexpr std::string_view kResponseText =
    "charset=utf-8,username=\"alice\",realm=\"dstm\",nonce=\"3141592653\",nc=00000001,"
    "cnonce=\"1795275956\",digest-uri=\"tsp/127.0.0.1\",response=d455f59c44c5437801f30d303c365709,"
    "qop=auth";
constexpr std::string_view kRspauthB64 = "cnNwYXV0aD05MzhjZGFkNzQ5NmQxNzYyYzg2MmUwNjMyNjgwMzY4Yg==";

SaslServerConfig alice_config(std::vector<Mechanism> mechanisms, std::uint64_t nonce = 3141592653) {
  return SaslServerConfig{
      .mechanisms = std::move(mechanisms),
      .realm = "dstm",
      .verifiers = [](std::string_view user) -> std::optional<Md5Digest> {
        if (user == "alice") return digest_verifier("alice", "dstm", "secret");
        if (user == "bob") return digest_verifier("bob", "dstm", "pw56");  // V has a 0x00
        return std::nullopt;
      },
      .random = tsp_test::counting_random({nonce, nonce + 1, nonce + 2}),
  };
}

std::string digest_line(std::string_view user, std::string_view password, std::string_view nonce,
                        std::string_view uri = "tsp/127.0.0.1", bool bug1455 = false) {
  const auto v = digest_verifier(user, "dstm", password);
  DigestResponse r{.charset = "utf-8",
                   .username = std::string{user},
                   .realm = "dstm",
                   .nonce = std::string{nonce},
                   .nc = "00000001",
                   .cnonce = "1795275956",
                   .digest_uri = std::string{uri},
                   .response = {},
                   .qop = "auth",
                   .authzid = {}};
  r.response = digest_response_value(v, {.nonce = r.nonce,
                                         .cnonce = r.cnonce,
                                         .nc = r.nc,
                                         .qop = r.qop,
                                         .digest_uri = r.digest_uri,
                                         .authzid = {},
                                         .bug1455 = bug1455});
  return base64_encode(format_digest_response(r));
}

}  // namespace

TEST_CASE("base64: RFC 4648 vectors both ways", "[tsp][sasl]") {
  const std::pair<const char*, const char*> v[] = {{"", ""},
                                                   {"f", "Zg=="},
                                                   {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="},
                                                   {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : v) {
    CHECK(base64_encode(plain) == coded);
    CHECK(base64_decode(coded).value() == plain);
  }
  CHECK(base64_decode("Zm9vYg").value() == "foob");  // unpadded
  for (auto bad : {"Zm9v!", "Zm9vY", "Zm 9v", "Zg===", "=Zg=", "Z=g="}) {
    INFO(bad);
    CHECK(base64_decode(bad).error() == make_error_code(Errc::BadBase64));
  }
}

TEST_CASE("md5: RFC 1321 vectors and the verifier of tsp-wire.md 10.2", "[tsp][sasl]") {
  CHECK(to_hex(md5("")) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(to_hex(md5("abc")) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(to_hex(digest_verifier("alice", "dstm", "secret")) == "4649dac4273b0498777ca241bbe81835");
  CHECK(to_hex(md5("AUTHENTICATE:tsp/127.0.0.1")) == "2a06f65a8f03589f526b33f2c77451cf");
  CHECK(to_hex(md5(":tsp/127.0.0.1")) == "8ea01326007ab38f142de2418030f36b");
}

TEST_CASE("digest: the worked values of tsp-wire.md 10.2", "[tsp][sasl]") {
  const auto v = digest_verifier("alice", "dstm", "secret");
  DigestParams p{.nonce = "3141592653",
                 .cnonce = "1795275956",
                 .nc = "00000001",
                 .qop = "auth",
                 .digest_uri = "tsp/127.0.0.1",
                 .authzid = {},
                 .bug1455 = false};
  CHECK(digest_response_value(v, p) == "d455f59c44c5437801f30d303c365709");
  CHECK(digest_rspauth_value(v, p) == "938cdad7496d1762c862e0632680368b");
  p.digest_uri = "tsp/127.0.0.1:3653";
  CHECK(digest_response_value(v, p) == "4b2f37db7e7fff625104a0a85008aa96");
  CHECK(digest_rspauth_value(v, p) == "3022f8ed91ea87bfb985cef6f1153c9a");
  CHECK(base64_encode(format_digest_challenge({.realm = "dstm", .nonce = "3141592653"})) ==
        kChallengeB64);
  CHECK(base64_encode(format_rspauth("938cdad7496d1762c862e0632680368b")) == kRspauthB64);
}

TEST_CASE("digest: the client reply reproduces gogoc's bytes", "[tsp][sasl]") {
  const auto challenge = parse_digest_challenge(base64_decode(kChallengeB64).value()).value();
  CHECK(challenge == DigestChallenge{.realm = "dstm", .nonce = "3141592653"});
  const auto r = digest_client_reply(challenge, "alice", "secret", "tsp/127.0.0.1", "1795275956");
  CHECK(format_digest_response(r.response) == kResponseText);
  CHECK(r.expected_rspauth == "938cdad7496d1762c862e0632680368b");
  CHECK(parse_rspauth(base64_decode(kRspauthB64).value()).value() == r.expected_rspauth);
}

TEST_CASE("digest: challenge and response parsing tolerates real-world forms", "[tsp][sasl]") {
  // tsps sends qop unquoted and charset=utf8.
  auto c =
      parse_digest_challenge("realm=\"x\", nonce=\"n\",qop=auth,algorithm=md5-sess,charset=utf8");
  CHECK(c.value().charset == "utf8");
  CHECK(parse_digest_challenge("nonce=\"n\",qop=\"auth-int,auth\",algorithm=md5-sess"));
  CHECK_FALSE(parse_digest_challenge("nonce=\"n\",qop=\"auth-conf\",algorithm=md5-sess"));
  CHECK_FALSE(parse_digest_challenge("nonce=\"n\",algorithm=md5"));
  CHECK_FALSE(parse_digest_challenge("realm=\"x\",algorithm=md5-sess"));
  // gogoc escapes '"' and '\' in the username.
  auto r = parse_digest_response(
      "username=\"a\\\"b\\\\c\",nonce=\"1\",cnonce=\"2\",nc=00000001,response="
      "D455F59C44C5437801F30D303C365709");
  CHECK(r.value().username == "a\"b\\c");
  CHECK(r.value().response == "d455f59c44c5437801f30d303c365709");
  for (auto bad :
       {"username=\"a\",nonce=\"1\",cnonce=\"2\",nc=00000001,response=xyz",
        "username=\"a\",nonce=\"1\",cnonce=\"2\",nc=1,response=d455f59c44c5437801f30d303c365709",
        "username=\"a\",nonce=\"1\",cnonce=\"2\",nc=00000001",
        "username=\"a\",username=\"b\",nonce=\"1\",cnonce=\"2\",nc=00000001,response="
        "d455f59c44c5437801f30d303c365709",
        "username=\"a,nonce=\"1\"", "=x", "username", "qop=auth-int,username=\"a\""}) {
    INFO(bad);
    CHECK_FALSE(parse_digest_response(bad));
  }
}

TEST_CASE("digest: bug 1455 hashes V only up to its first NUL", "[tsp][sasl]") {
  const auto v = digest_verifier("bob", "dstm", "pw56");
  REQUIRE(to_hex(v) == "372f7f002c0cd03dbbfed3cea864620e");
  CHECK(has_bug1455_nul(v));
  CHECK_FALSE(has_bug1455_nul(digest_verifier("alice", "dstm", "secret")));
  DigestParams p{.nonce = "1",
                 .cnonce = "2",
                 .nc = "00000001",
                 .qop = "auth",
                 .digest_uri = "tsp/x",
                 .authzid = {},
                 .bug1455 = true};
  const auto ha1 = to_hex(md5(std::string{"\x37\x2f\x7f", 3}));
  const auto expected =
      to_hex(md5(ha1 + ":1:00000001:2:auth:" + to_hex(md5("AUTHENTICATE:tsp/x"))));
  CHECK(digest_response_value(v, p) == expected);
  p.bug1455 = false;
  CHECK(digest_response_value(v, p) != expected);
}

TEST_CASE("plain: messages with and without the leading NUL", "[tsp][sasl]") {
  CHECK(parse_plain(std::string{"\0alice\0secret", 13}).value() ==
        PlainMessage{"", "alice", "secret"});
  CHECK(parse_plain(std::string{"alice\0secret", 12}).value() ==
        PlainMessage{"", "alice", "secret"});
  CHECK(parse_plain(std::string{"admin\0alice\0secret", 18}).value() ==
        PlainMessage{"admin", "alice", "secret"});
  CHECK(format_plain({"", "alice", "secret"}) == std::string{"\0alice\0secret", 13});
  CHECK_FALSE(parse_plain("alicesecret"));
  CHECK_FALSE(parse_plain(std::string{"\0\0secret", 8}));
  CHECK_FALSE(parse_plain(std::string{"\0alice\0", 7}));
  CHECK_FALSE(parse_plain(std::string{"a\0b\0c\0d", 7}));
  CHECK(parse_plain(std::string{"\0al\xff\0x", 6}).error() == make_error_code(Errc::BadUtf8));
  CHECK_FALSE(parse_plain(std::string{"\0", 1} + std::string(256, 'a') + std::string{"\0p", 2}));
}

TEST_CASE("sasl server: ANONYMOUS only when offered", "[tsp][sasl]") {
  SaslServer s;
  auto cfg = alice_config({Mechanism::Anonymous});
  auto step = s.start(cfg, "anonymous", kVersion2_0_2);
  REQUIRE(std::holds_alternative<SaslServer::Success>(step));
  CHECK(std::get<SaslServer::Success>(step).identity == Identity{Mechanism::Anonymous, ""});
  auto off = alice_config({Mechanism::Plain});
  auto refused = s.start(off, "ANONYMOUS", kVersion2_0_2);
  CHECK(std::get<SaslServer::Failure>(refused).reason == Errc::UnknownMechanism);
  CHECK(std::get<SaslServer::Failure>(s.start(off, "PASSDSS-3DES-1", kVersion2_0_2)).reason ==
        Errc::UnknownMechanism);
}

TEST_CASE("sasl server: PLAIN checks the stored verifier", "[tsp][sasl]") {
  auto cfg = alice_config({Mechanism::Plain});
  SaslServer s;
  CHECK(std::get<SaslServer::Continue>(s.start(cfg, "PLAIN", kVersion2_0_2)).line == std::nullopt);
  auto ok = s.step(cfg, std::string{"\0alice\0secret", 13});
  CHECK(std::get<SaslServer::Success>(ok).identity == Identity{Mechanism::Plain, "alice"});
  CHECK_FALSE(std::get<SaslServer::Success>(ok).server_final);
  for (auto bad : {std::string{"\0alice\0wrong", 12}, std::string{"\0mallory\0secret", 15},
                   std::string{"bob\0alice\0secret", 16}, std::string{"garbage"}}) {
    s.start(cfg, "PLAIN", kVersion2_0_2);
    CHECK(std::holds_alternative<SaslServer::Failure>(s.step(cfg, bad)));
  }
}

TEST_CASE("sasl server: DIGEST-MD5 with the worked values", "[tsp][sasl]") {
  auto cfg = alice_config({Mechanism::DigestMd5});
  SaslServer s;
  auto challenge = s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  CHECK(std::get<SaslServer::Continue>(challenge).line == std::string{kChallengeB64});
  auto ok = s.step(cfg, base64_encode(kResponseText));
  const auto& success = std::get<SaslServer::Success>(ok);
  CHECK(success.identity == Identity{Mechanism::DigestMd5, "alice"});
  CHECK(success.server_final == std::string{kRspauthB64});
}

TEST_CASE("sasl server: DIGEST-MD5 accepts any digest-uri", "[tsp][sasl]") {
  auto cfg = alice_config({Mechanism::DigestMd5});
  SaslServer s;
  s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  auto ok = s.step(cfg, digest_line("alice", "secret", "3141592653", "tsp/127.0.0.1:3653"));
  REQUIRE(std::holds_alternative<SaslServer::Success>(ok));
  CHECK(base64_decode(*std::get<SaslServer::Success>(ok).server_final).value() ==
        "rspauth=3022f8ed91ea87bfb985cef6f1153c9a");
}

TEST_CASE("sasl server: a nonce is single-use, a replayed response fails", "[tsp][sasl]") {
  auto cfg = alice_config({Mechanism::DigestMd5});
  SaslServer s;
  s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  const auto good = digest_line("alice", "secret", "3141592653");
  // A wrong password spends the nonce ...
  CHECK(std::get<SaslServer::Failure>(s.step(cfg, digest_line("alice", "nope", "3141592653")))
            .reason == Errc::AuthenticationFailed);
  // ... the next exchange has a fresh one, and the old response is refused.
  auto next = s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  CHECK(base64_decode(*std::get<SaslServer::Continue>(next).line)
            .value()
            .find("nonce=\"3141592654\"") != std::string::npos);
  CHECK(std::get<SaslServer::Failure>(s.step(cfg, good)).reason == Errc::NonceReused);
  // A response is never accepted twice either, even when correct the first time.
  s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  const auto third = digest_line("alice", "secret", "3141592655");
  CHECK(std::holds_alternative<SaslServer::Success>(s.step(cfg, third)));
  CHECK(std::get<SaslServer::Failure>(s.step(cfg, third)).reason == Errc::UnexpectedMessage);
  s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  CHECK(std::get<SaslServer::Failure>(s.step(cfg, third)).reason == Errc::NonceReused);
}

TEST_CASE("sasl server: DIGEST-MD5 rejects wrong realm, nc, user", "[tsp][sasl]") {
  auto cfg = alice_config({Mechanism::DigestMd5});
  const auto nonce = "3141592653";
  auto with = [&](std::string text) {
    SaslServer s;
    s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
    return s.step(cfg, base64_encode(text));
  };
  std::string base{kResponseText};
  auto replace = [&](std::string from, std::string to) {
    auto t = base;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  CHECK(std::holds_alternative<SaslServer::Success>(with(base)));
  CHECK(
      std::holds_alternative<SaslServer::Failure>(with(replace("realm=\"dstm\"", "realm=\"x\""))));
  CHECK(std::holds_alternative<SaslServer::Failure>(with(replace("nc=00000001", "nc=00000002"))));
  CHECK(std::holds_alternative<SaslServer::Failure>(with(replace("\"alice\"", "\"carol\""))));
  CHECK(std::holds_alternative<SaslServer::Failure>(with(replace("d455", "d456"))));
  SaslServer s;
  s.start(cfg, "DIGEST-MD5", kVersion2_0_2);
  CHECK(std::holds_alternative<SaslServer::Failure>(s.step(cfg, "not base64!")));
  (void)nonce;
}

TEST_CASE("sasl server: bug 1455 is accepted only for versions up to 2.0.0", "[tsp][sasl]") {
  for (auto [version, expect] :
       {std::pair{kVersion2_0_0, true}, std::pair{kVersion1_0_1, true},
        std::pair{kVersion2_0_1, false}, std::pair{kVersion2_0_2, false}}) {
    INFO(version.to_string());
    auto cfg = alice_config({Mechanism::DigestMd5});  // fresh nonces: 3141592653 first
    SaslServer s;
    s.start(cfg, "DIGEST-MD5", version);
    auto step = s.step(cfg, digest_line("bob", "pw56", "3141592653", "tsp/x", /*bug1455=*/true));
    CHECK(std::holds_alternative<SaslServer::Success>(step) == expect);
    if (expect) {
      // rspauth is computed the same (buggy) way, so that gogoc accepts it.
      const auto v = digest_verifier("bob", "dstm", "pw56");
      const auto rspauth = digest_rspauth_value(v, {.nonce = "3141592653",
                                                    .cnonce = "1795275956",
                                                    .nc = "00000001",
                                                    .qop = "auth",
                                                    .digest_uri = "tsp/x",
                                                    .authzid = {},
                                                    .bug1455 = true});
      CHECK(base64_decode(*std::get<SaslServer::Success>(step).server_final).value() ==
            "rspauth=" + rspauth);
    }
    // The correct arithmetic works for every version.
    cfg = alice_config({Mechanism::DigestMd5});
    SaslServer t;
    t.start(cfg, "DIGEST-MD5", version);
    CHECK(std::holds_alternative<SaslServer::Success>(
        t.step(cfg, digest_line("bob", "pw56", "3141592653", "tsp/x"))));
  }
}

TEST_CASE("random: decimal nonces from bytes", "[tsp][sasl]") {
  const std::byte zero[4]{};
  CHECK(decimal_from_bytes(zero) == "0");
  const std::byte pi[]{std::byte{0xbb}, std::byte{0x40}, std::byte{0xe6}, std::byte{0x4d}};
  CHECK(decimal_from_bytes(pi) == "3141592653");
  std::array<std::byte, 16> max{};
  max.fill(std::byte{0xff});
  CHECK(decimal_from_bytes(max) == "340282366920938463463374607431768211455");
  CHECK(random_decimal(tsp_test::counting_random({1795275956})) == "1795275956");
  // The system source gives different nonces.
  auto sys = system_random_source();
  CHECK(random_decimal(sys) != random_decimal(sys));
}
