// SASL: base64, PLAIN, DIGEST-MD5 directives and arithmetic, the server mechanism machine.
#include "tsp/sasl.hpp"

#include <algorithm>
#include <utility>

#include "text.hpp"

namespace tsp {
namespace {

constexpr std::size_t kMaxSaslField = 255;  // authcid, password, realm, nonce, ...
constexpr std::size_t kMaxDirectives = 32;
constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string digest_bytes(const Md5Digest& d) {
  std::string out(d.size(), '\0');
  for (std::size_t i = 0; i < d.size(); ++i) out[i] = static_cast<char>(d[i]);
  return out;
}

// ---- RFC 2831 directive lists: name=value, value a token or a quoted-string ----

using Directives = std::vector<std::pair<std::string, std::string>>;

Result<Directives> parse_directives(std::string_view s) {
  Directives out;
  std::size_t i = 0;
  auto skip_lws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  };
  while (true) {
    skip_lws();
    while (i < s.size() && s[i] == ',') {  // empty list elements are allowed (#rule)
      ++i;
      skip_lws();
    }
    if (i >= s.size()) break;
    const auto name_start = i;
    while (i < s.size() && s[i] != '=' && s[i] != ',' && s[i] != '"' && s[i] != ' ' && s[i] != '\t')
      ++i;
    std::string name{s.substr(name_start, i - name_start)};
    skip_lws();
    if (name.empty() || i >= s.size() || s[i] != '=') return Errc::BadSaslMessage;
    ++i;
    skip_lws();
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '\\') {
          if (i >= s.size()) return Errc::BadSaslMessage;
          c = s[i++];
        } else if (c == '"') {
          closed = true;
          break;
        }
        value += c;
      }
      if (!closed) return Errc::BadSaslMessage;
    } else {
      const auto start = i;
      while (i < s.size() && s[i] != ',') ++i;
      value = std::string{detail::trim(s.substr(start, i - start))};
      if (value.find('"') != std::string::npos) return Errc::BadSaslMessage;
    }
    skip_lws();
    if (i < s.size() && s[i] != ',') return Errc::BadSaslMessage;
    if (value.size() > kMaxSaslField * 2 || out.size() == kMaxDirectives)
      return Errc::BadSaslMessage;
    for (auto& c : name) c = detail::to_lower(c);
    for (const auto& [n, v] : out)
      if (n == name) return Errc::BadSaslMessage;  // each directive at most once
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

const std::string* find(const Directives& d, std::string_view name) {
  for (const auto& [n, v] : d)
    if (n == name) return &v;
  return nullptr;
}

std::string quote(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

bool is_lower_hex32(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return detail::is_digit(c) || (c >= 'a' && c <= 'f');
         });
}

std::string ha1_hex(const Md5Digest& verifier, const DigestParams& p) {
  if (p.bug1455 && has_bug1455_nul(verifier)) {
    // gogoc hashes its A1 buffer with strlen(): it stops at the first NUL of V.
    const auto v = digest_bytes(verifier);
    return to_hex(md5(std::string_view{v}.substr(0, v.find('\0'))));
  }
  std::string a1 = digest_bytes(verifier);
  a1 += ':';
  a1 += p.nonce;
  a1 += ':';
  a1 += p.cnonce;
  if (!p.authzid.empty()) {
    a1 += ':';
    a1 += p.authzid;
  }
  return to_hex(md5(a1));
}

std::string kd_response(const Md5Digest& verifier, const DigestParams& p, std::string_view a2) {
  std::string s = ha1_hex(verifier, p);
  for (auto part : {p.nonce, p.nc, p.cnonce, p.qop}) {
    s += ':';
    s += part;
  }
  s += ':';
  s += to_hex(md5(a2));
  return to_hex(md5(s));
}

}  // namespace

std::string to_hex(const Md5Digest& d) {
  return detail::to_hex(digest_bytes(d));
}

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(data[k]));
  };
  for (; i + 3 <= data.size(); i += 3) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  if (data.size() - i == 1) {
    const unsigned v = byte(i) << 16;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += "==";
  } else if (data.size() - i == 2) {
    const unsigned v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  // Padding: at most two '=' at the very end, and only where a quantum is incomplete.
  std::size_t pad = 0;
  while (!text.empty() && text.back() == '=' && pad < 2) {
    text.remove_suffix(1);
    ++pad;
  }
  if (pad > 0 && (text.size() + pad) % 4 != 0) return Errc::BadBase64;
  if (text.size() % 4 == 1) return Errc::BadBase64;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = base64_value(c);
    if (v < 0) return Errc::BadBase64;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// ---- PLAIN ----

Result<PlainMessage> parse_plain(std::string_view message) {
  const auto first = message.find('\0');
  if (first == std::string_view::npos) return Errc::BadSaslMessage;
  const auto second = message.find('\0', first + 1);
  PlainMessage m;
  if (second == std::string_view::npos) {
    m.authcid = message.substr(0, first);
    m.password = message.substr(first + 1);
  } else {
    if (message.find('\0', second + 1) != std::string_view::npos) return Errc::BadSaslMessage;
    m.authzid = message.substr(0, first);
    m.authcid = message.substr(first + 1, second - first - 1);
    m.password = message.substr(second + 1);
  }
  if (m.authcid.empty() || m.password.empty()) return Errc::BadSaslMessage;
  for (const auto* f : {&m.authzid, &m.authcid, &m.password}) {
    if (f->size() > kMaxSaslField) return Errc::BadSaslMessage;
    if (!detail::valid_utf8(*f)) return Errc::BadUtf8;
  }
  return m;
}

std::string format_plain(const PlainMessage& m) {
  std::string out = m.authzid;
  out += '\0';
  out += m.authcid;
  out += '\0';
  out += m.password;
  return out;
}

// ---- DIGEST-MD5 ----

Md5Digest digest_verifier(std::string_view user, std::string_view realm,
                          std::string_view password) {
  std::string s{user};
  s += ':';
  s += realm;
  s += ':';
  s += password;
  return md5(s);
}

std::string format_digest_challenge(const DigestChallenge& c) {
  return "realm=" + quote(c.realm) + ",nonce=" + quote(c.nonce) + ",qop=" + quote(c.qop) +
         ",algorithm=" + c.algorithm + ",charset=" + c.charset;
}

Result<DigestChallenge> parse_digest_challenge(std::string_view text) {
  auto d = parse_directives(text);
  if (!d) return d.error();
  DigestChallenge c;
  const auto* nonce = find(*d, "nonce");
  const auto* algorithm = find(*d, "algorithm");
  if (!nonce || nonce->empty() || !algorithm || !detail::iequals(*algorithm, "md5-sess"))
    return Errc::BadSaslMessage;
  c.nonce = *nonce;
  c.algorithm = *algorithm;
  if (const auto* realm = find(*d, "realm")) c.realm = *realm;
  if (const auto* charset = find(*d, "charset"))
    c.charset = *charset;
  else
    c.charset.clear();
  // qop is a list ("auth,auth-int"); absent means "auth" (RFC 2831 2.1.1).
  if (const auto* qop = find(*d, "qop")) {
    bool has_auth = false;
    std::string_view rest = *qop;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      if (detail::iequals(detail::trim(rest.substr(0, comma)), "auth")) has_auth = true;
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if (!has_auth) return Errc::BadSaslMessage;
  }
  c.qop = "auth";
  return c;
}

std::string format_digest_response(const DigestResponse& r) {
  std::string out;
  if (!r.charset.empty()) out += "charset=" + r.charset + ",";
  out += "username=" + quote(r.username) + ",realm=" + quote(r.realm) + ",nonce=" + quote(r.nonce) +
         ",nc=" + r.nc + ",cnonce=" + quote(r.cnonce) + ",digest-uri=" + quote(r.digest_uri) +
         ",response=" + r.response + ",qop=" + r.qop;
  if (!r.authzid.empty()) out += ",authzid=" + quote(r.authzid);
  return out;
}

Result<DigestResponse> parse_digest_response(std::string_view text) {
  auto d = parse_directives(text);
  if (!d) return d.error();
  DigestResponse r;
  const auto* username = find(*d, "username");
  const auto* nonce = find(*d, "nonce");
  const auto* cnonce = find(*d, "cnonce");
  const auto* nc = find(*d, "nc");
  const auto* response = find(*d, "response");
  if (!username || username->empty() || !nonce || nonce->empty() || !cnonce || cnonce->empty() ||
      !nc || !response)
    return Errc::BadSaslMessage;
  r.username = *username;
  r.nonce = *nonce;
  r.cnonce = *cnonce;
  r.nc = *nc;
  r.response = *response;
  for (auto& c : r.response) c = detail::to_lower(c);
  if (!is_lower_hex32(r.response)) return Errc::BadSaslMessage;
  if (r.nc.size() != 8) return Errc::BadSaslMessage;
  if (const auto* qop = find(*d, "qop")) {
    if (!detail::iequals(*qop, "auth")) return Errc::BadSaslMessage;
  }
  if (const auto* realm = find(*d, "realm")) r.realm = *realm;
  if (const auto* uri = find(*d, "digest-uri")) r.digest_uri = *uri;
  if (const auto* charset = find(*d, "charset")) r.charset = *charset;
  if (const auto* authzid = find(*d, "authzid")) r.authzid = *authzid;
  for (const auto* f : {&r.username, &r.realm, &r.nonce, &r.cnonce, &r.digest_uri, &r.authzid}) {
    if (f->size() > kMaxSaslField) return Errc::BadSaslMessage;
    if (!f->empty() && !detail::valid_utf8(*f)) return Errc::BadUtf8;
  }
  return r;
}

bool has_bug1455_nul(const Md5Digest& verifier) noexcept {
  return std::find(verifier.begin(), verifier.end(), std::uint8_t{0}) != verifier.end();
}

std::string digest_response_value(const Md5Digest& verifier, const DigestParams& p) {
  return kd_response(verifier, p, "AUTHENTICATE:" + std::string{p.digest_uri});
}

std::string digest_rspauth_value(const Md5Digest& verifier, const DigestParams& p) {
  return kd_response(verifier, p, ":" + std::string{p.digest_uri});
}

std::string format_rspauth(std::string_view value) {
  return "rspauth=" + std::string{value};
}

Result<std::string> parse_rspauth(std::string_view text) {
  auto d = parse_directives(text);
  if (!d) return d.error();
  const auto* v = find(*d, "rspauth");
  if (!v) return Errc::BadSaslMessage;
  std::string value = *v;
  for (auto& c : value) c = detail::to_lower(c);
  if (!is_lower_hex32(value)) return Errc::BadSaslMessage;
  return value;
}

DigestClientReply digest_client_reply(const DigestChallenge& challenge, std::string_view user,
                                      std::string_view password, std::string_view digest_uri,
                                      std::string_view cnonce) {
  const auto verifier = digest_verifier(user, challenge.realm, password);
  DigestClientReply out;
  auto& r = out.response;
  r.charset = challenge.charset;
  r.username = user;
  r.realm = challenge.realm;
  r.nonce = challenge.nonce;
  r.cnonce = cnonce;
  r.digest_uri = digest_uri;
  r.qop = challenge.qop;
  const DigestParams p{.nonce = r.nonce,
                       .cnonce = r.cnonce,
                       .nc = r.nc,
                       .qop = r.qop,
                       .digest_uri = r.digest_uri,
                       .authzid = {},
                       .bug1455 = false};
  r.response = digest_response_value(verifier, p);
  out.expected_rspauth = digest_rspauth_value(verifier, p);
  return out;
}

// ---- server machine ----

SaslServer::Step SaslServer::start(const SaslServerConfig& config, std::string_view mechanism,
                                   const Version& version) {
  phase_ = Phase::Idle;
  version_ = version;
  const auto m = parse_mechanism(mechanism);
  if (!m ||
      std::find(config.mechanisms.begin(), config.mechanisms.end(), *m) == config.mechanisms.end())
    return Failure{Errc::UnknownMechanism};
  switch (*m) {
    case Mechanism::Anonymous:
      return Success{Identity{Mechanism::Anonymous, {}}, std::nullopt};
    case Mechanism::Plain:
      phase_ = Phase::PlainCredentials;
      return Continue{std::nullopt};
    case Mechanism::DigestMd5: {
      if (!config.random) return Failure{Errc::UnknownMechanism};
      nonce_ = random_decimal(config.random);
      phase_ = Phase::DigestResponse;
      const DigestChallenge c{.realm = config.realm, .nonce = nonce_};
      return Continue{base64_encode(format_digest_challenge(c))};
    }
  }
  return Failure{Errc::UnknownMechanism};
}

SaslServer::Step SaslServer::step(const SaslServerConfig& config, std::string_view line) {
  const auto phase = std::exchange(phase_, Phase::Idle);
  switch (phase) {
    case Phase::PlainCredentials:
      return verify_plain(config, line);
    case Phase::DigestResponse:
      return verify_digest(config, line);
    case Phase::Idle:
      break;
  }
  return Failure{Errc::UnexpectedMessage};
}

SaslServer::Step SaslServer::verify_plain(const SaslServerConfig& config, std::string_view line) {
  auto m = parse_plain(line);
  if (!m) return Failure{Errc::BadSaslMessage};
  // No proxy authorization: an authzid, if given, must name the authenticated user.
  if (!m->authzid.empty() && m->authzid != m->authcid) return Failure{Errc::AuthenticationFailed};
  const auto verifier = config.verifiers ? config.verifiers(m->authcid) : std::nullopt;
  const auto presented = digest_verifier(m->authcid, config.realm, m->password);
  // Compare even for an unknown user, so both paths cost the same.
  const bool match =
      detail::constant_time_equal(to_hex(presented), to_hex(verifier.value_or(Md5Digest{})));
  if (!verifier || !match) return Failure{Errc::AuthenticationFailed};
  return Success{Identity{Mechanism::Plain, m->authcid}, std::nullopt};
}

SaslServer::Step SaslServer::verify_digest(const SaslServerConfig& config, std::string_view line) {
  // The nonce is spent by this answer, whatever the outcome.
  const std::string nonce = std::exchange(nonce_, std::string{});
  spent_.push_back(nonce);
  auto text = base64_decode(line);
  if (!text) return Failure{Errc::BadSaslMessage};
  auto r = parse_digest_response(*text);
  if (!r) return Failure{Errc::BadSaslMessage};
  if (r->nonce != nonce) {
    const bool reused = std::find(spent_.begin(), spent_.end(), r->nonce) != spent_.end();
    return Failure{reused ? Errc::NonceReused : Errc::AuthenticationFailed};
  }
  // One nonce per exchange, so the nonce count is 1. The realm is ours; the URI is not checked
  // (gogoc sends its configured server string).
  if (r->nc != "00000001" || r->realm != config.realm) return Failure{Errc::AuthenticationFailed};
  if (!r->authzid.empty() && r->authzid != r->username) return Failure{Errc::AuthenticationFailed};
  const auto verifier = config.verifiers ? config.verifiers(r->username) : std::nullopt;
  const auto v = verifier.value_or(Md5Digest{});
  DigestParams p{.nonce = r->nonce,
                 .cnonce = r->cnonce,
                 .nc = r->nc,
                 .qop = "auth",
                 .digest_uri = r->digest_uri,
                 .authzid = r->authzid,
                 .bug1455 = false};
  bool match = detail::constant_time_equal(digest_response_value(v, p), r->response);
  if (!match && version_.digest_bug1455() && has_bug1455_nul(v)) {
    // gogoc <= 2.0.0 computes HA1 with bug 1455; other clients of those versions do not.
    p.bug1455 = true;
    match = detail::constant_time_equal(digest_response_value(v, p), r->response);
  }
  if (!verifier || !match) return Failure{Errc::AuthenticationFailed};
  return Success{Identity{Mechanism::DigestMd5, r->username},
                 base64_encode(format_rspauth(digest_rspauth_value(v, p)))};
}

}  // namespace tsp
