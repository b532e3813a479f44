// SASL for TSP: ANONYMOUS, PLAIN (RFC 4616) and DIGEST-MD5 (RFC 2831: md5-sess, qop=auth), the
// server-side mechanism machine and the helpers a client needs (tsp-wire.md 4).
//
// DIGEST-MD5 arithmetic, with the verifier V = MD5(user ":" realm ":" password) (binary):
//   HA1      = MD5hex( V ":" nonce ":" cnonce [":" authzid] )
//   response = MD5hex( HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" MD5hex("AUTHENTICATE:" uri) )
//   rspauth  = MD5hex( HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" MD5hex(":" uri) )
// Servers store V, never the password.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tsp/error.hpp"
#include "tsp/protocol.hpp"
#include "tsp/random.hpp"

namespace tsp {

using Md5Digest = std::array<std::uint8_t, 16>;

Md5Digest md5(std::string_view data);
std::string to_hex(const Md5Digest& d);

// RFC 4648 base64 with padding. The decoder also takes unpadded text, nothing else: no
// whitespace, no other alphabet. BadBase64 otherwise.
std::string base64_encode(std::string_view data);
Result<std::string> base64_decode(std::string_view text);

// Who authenticated. user is empty for ANONYMOUS.
struct Identity {
  Mechanism mechanism = Mechanism::Anonymous;
  std::string user;
  bool operator==(const Identity&) const = default;
};

// ---- PLAIN -------------------------------------------------------------------------------

struct PlainMessage {
  std::string authzid;
  std::string authcid;
  std::string password;
  bool operator==(const PlainMessage&) const = default;
};

// authzid NUL authcid NUL password, each UTF-8 without NUL, authcid and password non-empty,
// at most 255 bytes each. "authcid NUL password" (one NUL) is read as an empty authzid: the
// server framer may have taken the leading NUL for gogoc's trailing NUL after AUTHENTICATE.
Result<PlainMessage> parse_plain(std::string_view message);
std::string format_plain(const PlainMessage& m);

// ---- DIGEST-MD5 --------------------------------------------------------------------------

// MD5(user ":" realm ":" password), the stored verifier.
Md5Digest digest_verifier(std::string_view user, std::string_view realm, std::string_view password);

struct DigestChallenge {
  std::string realm;
  std::string nonce;
  std::string qop = "auth";
  std::string algorithm = "md5-sess";
  std::string charset = "utf-8";
  bool operator==(const DigestChallenge&) const = default;
};

// realm="R",nonce="N",qop="auth",algorithm=md5-sess,charset=utf-8 (before base64).
std::string format_digest_challenge(const DigestChallenge& c);
// Quoted or unquoted values. Requires nonce, algorithm=md5-sess and "auth" among the qop values
// (qop is then "auth").
Result<DigestChallenge> parse_digest_challenge(std::string_view text);

struct DigestResponse {
  std::string charset;
  std::string username;
  std::string realm;
  std::string nonce;
  std::string nc = "00000001";
  std::string cnonce;
  std::string digest_uri;
  std::string response;
  std::string qop = "auth";
  std::string authzid;
  bool operator==(const DigestResponse&) const = default;
};

// gogoc's directive order: charset,username,realm,nonce,nc,cnonce,digest-uri,response,qop
// (charset omitted when empty, authzid appended when set).
std::string format_digest_response(const DigestResponse& r);
// Requires username, nonce, cnonce, nc and a 32-digit hex response; qop, if present, is "auth".
// digest-uri is taken as sent (tsp-wire.md: gogoc puts its configured server string there).
Result<DigestResponse> parse_digest_response(std::string_view text);

struct DigestParams {
  std::string_view nonce;
  std::string_view cnonce;
  std::string_view nc = "00000001";
  std::string_view qop = "auth";
  std::string_view digest_uri;
  std::string_view authzid;
  // gogoc bug 1455 (TSP <= 2.0.0): when V contains a 0x00 byte, HA1 = MD5hex(V up to that NUL).
  bool bug1455 = false;
};

std::string digest_response_value(const Md5Digest& verifier, const DigestParams& p);
std::string digest_rspauth_value(const Md5Digest& verifier, const DigestParams& p);
// True if V contains a 0x00 byte, the case bug 1455 changes.
bool has_bug1455_nul(const Md5Digest& verifier) noexcept;

// "rspauth=<hex>" (before base64) and its parser (quoted or unquoted value).
std::string format_rspauth(std::string_view value);
Result<std::string> parse_rspauth(std::string_view text);

// What a client sends in reply to a challenge, and what it expects back.
struct DigestClientReply {
  DigestResponse response;
  std::string expected_rspauth;
};
// user/password from configuration, digest_uri "tsp/<server>", cnonce fresh per exchange.
DigestClientReply digest_client_reply(const DigestChallenge& challenge, std::string_view user,
                                      std::string_view password, std::string_view digest_uri,
                                      std::string_view cnonce);

// ---- server-side mechanism machine -------------------------------------------------------

// Verifier of a user for the configured realm, or nullopt for an unknown user.
using VerifierLookup = std::function<std::optional<Md5Digest>(std::string_view user)>;

struct SaslServerConfig {
  std::vector<Mechanism> mechanisms;  // offered, in CAPABILITY order; ANONYMOUS only if listed
  std::string realm = "dstm";
  VerifierLookup verifiers;  // empty: every user is unknown
  RandomSource random;       // nonces; required when DIGEST-MD5 is offered
};

// Runs one SASL exchange after "AUTHENTICATE <mechanism>". The caller frames the lines.
class SaslServer {
 public:
  // Send `line` if set (base64 text, no line end) and pass the client's next line to step().
  struct Continue {
    std::optional<std::string> line;
  };
  // Authenticated. server_final (DIGEST-MD5: base64 of rspauth=...) is sent before, and
  // separately from, the success status.
  struct Success {
    Identity identity;
    std::optional<std::string> server_final;
  };
  struct Failure {
    Errc reason;
  };
  using Step = std::variant<Continue, Success, Failure>;

  // `mechanism` is the text after AUTHENTICATE (case-insensitive).
  Step start(const SaslServerConfig& config, std::string_view mechanism, const Version& version);
  Step step(const SaslServerConfig& config, std::string_view line);
  bool in_progress() const noexcept { return phase_ != Phase::Idle; }

 private:
  enum class Phase { Idle, PlainCredentials, DigestResponse };
  Step verify_plain(const SaslServerConfig& config, std::string_view line);
  Step verify_digest(const SaslServerConfig& config, std::string_view line);

  Phase phase_ = Phase::Idle;
  Version version_;
  std::string nonce_;               // issued and not yet answered
  std::vector<std::string> spent_;  // nonces already answered in this session
};

}  // namespace tsp
