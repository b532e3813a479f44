// Error codes of the pure core library, exposed as boost::system / std::error_code.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace core {

// Why a packet, a field or a textual value was rejected. Values are stable: they appear in
// counters and logs.
enum class Errc {
  Truncated = 1,   // fewer bytes than the header or field needs
  BadVersion,      // IP version nibble (or similar) is not the expected one
  BadLength,       // a length field disagrees with the bytes actually present
  BadChecksum,     // checksum verification failed
  BadHeader,       // a header field has a value the format forbids (e.g. IHL < 5)
  TooManyHeaders,  // IPv6 extension-header chain longer than we walk
  Unsupported,     // well-formed but not handled (e.g. fragment that is not the first)
  NoSpace,         // the output buffer is too small
  // Address and prefix text.
  Empty,            // empty string
  BadCharacter,     // a character that cannot appear there
  BadFieldCount,    // wrong number of dotted quads / hex groups
  FieldOutOfRange,  // octet > 255, group > 0xffff
  LeadingZero,      // "01" in dotted-quad: ambiguous (octal in inet_aton), rejected
  BadCompression,   // more than one "::", or "::" where no group is elided
  BadPrefixLength,  // missing, non-numeric or too large prefix length
  HostBitsSet,      // prefix "192.0.2.1/24": address is not the network address
};

const boost::system::error_category& core_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), core_category()};
}

template <typename T>
using Result = boost::system::result<T>;

}  // namespace core

namespace boost::system {
template <>
struct is_error_code_enum<::core::Errc> : std::true_type {};
}  // namespace boost::system
