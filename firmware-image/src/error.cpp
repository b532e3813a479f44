// Names of fwimage::Errc.
#include "fwimage/error.hpp"

#include <stdexcept>

namespace fwimage {

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::Truncated:
      return "truncated";
    case Errc::TrailingBytes:
      return "trailing_bytes";
    case Errc::BadMagic:
      return "bad_magic";
    case Errc::BadManifest:
      return "bad_manifest";
    case Errc::TooLarge:
      return "too_large";
    case Errc::BadSignature:
      return "bad_signature";
    case Errc::BadKey:
      return "bad_key";
    case Errc::HashMismatch:
      return "hash_mismatch";
    case Errc::WrongBoard:
      return "wrong_board";
    case Errc::Incompatible:
      return "incompatible";
    case Errc::SettingsIncompatible:
      return "settings_incompatible";
    case Errc::BadEnvironment:
      return "bad_environment";
    case Errc::BadDisk:
      return "bad_disk";
    case Errc::Io:
      return "io";
    case Errc::BadSettings:
      return "bad_settings";
    case Errc::BadUsage:
      return "bad_usage";
  }
  return "unknown";
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error{e.message};
}

}  // namespace fwimage
