// Why a firmware bundle, key, boot environment or upgrade was refused: a stable code (for
// counters and tests) and a message for the operator (the dashboard shows it as it is).
#pragma once

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace fwimage {

enum class Errc {
  Truncated = 1,         // the input ends before its fields do
  TrailingBytes,         // bytes after the last part
  BadMagic,              // not a firmware bundle of this format
  BadManifest,           // the manifest is not what the format allows
  TooLarge,              // a length above the format's bounds
  BadSignature,          // the signature does not verify under the built-in key
  BadKey,                // a key file that is not one key
  HashMismatch,          // a part's bytes do not match its SHA-256
  WrongBoard,            // built for another board
  Incompatible,          // a config schema this firmware cannot upgrade to
  SettingsIncompatible,  // compatible, but the settings cannot be kept
  BadEnvironment,        // a boot environment block (grubenv) that does not parse
  BadDisk,               // a partition table or file system that is not the appliance's layout
  Io,                    // reading or writing a file or disk failed
  BadSettings,           // a settings backup that cannot be restored
  BadUsage,              // a command line that names no valid operation
};

std::string_view to_string(Errc e) noexcept;

struct Error {
  Errc code = Errc::Truncated;
  std::string message;
};

template <typename T>
using Result = boost::system::result<T, Error>;

// For Result::value() on an error (found by argument-dependent lookup): throws
// std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

// An Error with the given code and message (for `return fail(...)`).
inline Error fail(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace fwimage
