// The anycast error category: snake_case names for anycast::Errc (counter labels and messages).
#include "anycast/error.hpp"

#include <string>

namespace anycast {
namespace {

class AnycastCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "anycast"; }
  std::string message(int ev) const override {
    return std::string{to_string(static_cast<Errc>(ev))};
  }
};

}  // namespace

const boost::system::error_category& anycast_category() noexcept {
  static const AnycastCategory category;
  return category;
}

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::Truncated:
      return "truncated";
    case Errc::BadMagic:
      return "bad_magic";
    case Errc::BadVersion:
      return "bad_version";
    case Errc::BadFlags:
      return "bad_flags";
    case Errc::UnknownKind:
      return "unknown_kind";
    case Errc::BadLength:
      return "bad_length";
    case Errc::BadChecksum:
      return "bad_checksum";
    case Errc::BadPayloadProto:
      return "bad_payload_proto";
    case Errc::BadOption:
      return "bad_option";
    case Errc::MissingOption:
      return "missing_option";
    case Errc::ShortProbe:
      return "short_probe";
    case Errc::NotAnycast:
      return "not_anycast";
    case Errc::NoPending:
      return "no_pending";
    case Errc::CookieMismatch:
      return "cookie_mismatch";
    case Errc::StaleNonce:
      return "stale_nonce";
    case Errc::BadAuthenticator:
      return "bad_authenticator";
    case Errc::Replay:
      return "replay";
    case Errc::BadLifetime:
      return "bad_lifetime";
    case Errc::AddressMismatch:
      return "address_mismatch";
    case Errc::RateLimited:
      return "rate_limited";
    case Errc::TableFull:
      return "table_full";
    case Errc::Unsolicited:
      return "unsolicited";
  }
  return "unknown";
}

}  // namespace anycast
