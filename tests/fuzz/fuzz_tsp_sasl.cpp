// libFuzzer target: SASL parsers (base64, PLAIN, DIGEST-MD5 challenge/response/rspauth) and the
// server mechanism machine. Invariants: base64 round-trips; a parsed PLAIN message formats back
// to an equivalent message; the machine never accepts a DIGEST-MD5 response that does not
// carry the nonce it issued.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tsp/sasl.hpp"

#include "fuzz_check.hpp"

namespace {

void deterministic(std::span<std::byte> out) {
  for (auto& b : out) b = std::byte{0};
  out.back() = std::byte{7};  // nonce "7"
}

const tsp::SaslServerConfig& config() {
  static const tsp::SaslServerConfig c{
      .mechanisms = {tsp::Mechanism::Anonymous, tsp::Mechanism::Plain, tsp::Mechanism::DigestMd5},
      .realm = "dstm",
      .verifiers = [](std::string_view user) -> std::optional<tsp::Md5Digest> {
        return tsp::digest_verifier(user, "dstm", "secret");
      },
      .random = deterministic,
  };
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in{reinterpret_cast<const char*>(data), size};

  FUZZ_CHECK(tsp::base64_decode(tsp::base64_encode(in)).value() == in);
  if (auto decoded = tsp::base64_decode(in)) {
    FUZZ_CHECK(tsp::base64_decode(tsp::base64_encode(*decoded)).value() == *decoded);
  }

  if (auto plain = tsp::parse_plain(in)) {
    auto again = tsp::parse_plain(tsp::format_plain(*plain));
    FUZZ_CHECK(again.has_value() && *again == *plain);
  }
  (void)tsp::parse_digest_challenge(in);
  (void)tsp::parse_rspauth(in);
  if (auto r = tsp::parse_digest_response(in)) {
    FUZZ_CHECK(r->response.size() == 32);
  }

  // The machine: the input as PLAIN credentials, and (base64-encoded) as a DIGEST response.
  for (auto version : {tsp::kVersion2_0_2, tsp::kVersion2_0_0}) {
    tsp::SaslServer plain;
    plain.start(config(), "PLAIN", version);
    (void)plain.step(config(), in);

    tsp::SaslServer digest;
    digest.start(config(), "DIGEST-MD5", version);
    const auto step = digest.step(config(), tsp::base64_encode(in));
    if (std::holds_alternative<tsp::SaslServer::Success>(step)) {
      auto r = tsp::parse_digest_response(in);
      FUZZ_CHECK(r.has_value() && r->nonce == "7");
    }
    // Whatever the first answer was, the nonce is spent.
    FUZZ_CHECK(!std::holds_alternative<tsp::SaslServer::Success>(
        digest.step(config(), tsp::base64_encode(in))));
    (void)digest.start(config(), in, version);
  }
  return 0;
}
