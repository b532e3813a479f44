// Error codes of the satp library: why a SATP packet, a key or an anytun sync record was
// rejected. Values are stable: the relay counts drops by them.
#pragma once

#include <string_view>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace satp {

enum class Errc {
  // Packets (packet.hpp).
  Truncated = 1,   // shorter than the header plus the tag, or no room for a payload type
  TooLong,         // longer than kMaxPacket (what anytun 0.3.8 reads at most)
  BadTag,          // the HMAC-SHA1 tag does not verify
  Replay,          // the sequence number was seen, or is older than the window
  BadPayloadType,  // a decrypted payload type the receiver does not take
  NoSpace,         // the output buffer is too small
  TooManySenders,  // a new sender id while the replay window tracks as many as it may
  // Keys and settings (keys.hpp).
  BadKeyLength,  // a master key of other than 16, 24 or 32 bytes, a salt of other than 14
  BadHex,        // key or salt text that is not hex
  BadSettings,   // cipher, key derivation, auth and tag length that do not go together
  // anytun's sync stream (sync.hpp).
  BadFrame,     // not "NNNNN " followed by that many bytes
  BadArchive,   // not a Boost text archive this build reads
  BadRecord,    // a connection or route record with a missing or malformed field
  Unsupported,  // a well-formed record of a kind or version not handled
};

const boost::system::error_category& satp_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), satp_category()};
}

// "truncated", "bad_tag", ... the snake_case name used as a counter label.
std::string_view to_string(Errc e) noexcept;

template <typename T>
using Result = boost::system::result<T>;

}  // namespace satp

namespace boost::system {
template <>
struct is_error_code_enum<::satp::Errc> : std::true_type {};
}  // namespace boost::system
