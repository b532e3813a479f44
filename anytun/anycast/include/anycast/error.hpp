// Error codes of the anycast library: why a probe, a return-routability message or a resolver
// query was dropped. Values are stable: the daemons count drops by them ("drops" in /status).
#pragma once

#include <string_view>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace anycast {

enum class Errc {
  // Parsing (wire.hpp, query.hpp).
  Truncated = 1,    // fewer bytes than the header or message needs
  BadMagic,         // not an ARR/UDP datagram (or not a resolver query)
  BadVersion,       // a version this build does not speak
  BadFlags,         // reserved flag bits set, or E where it does not belong / missing on a BU
  UnknownKind,      // unknown shim kind or MH type
  BadLength,        // MH Header Len disagrees with the datagram, or a body of the wrong size
  BadChecksum,      // MH checksum not zero (ARR/UDP sends it as zero)
  BadPayloadProto,  // MH Payload Proto is not 59 (IPPROTO_NONE)
  BadOption,        // a mobility option that overruns, repeats, is misaligned or not allowed here
  MissingOption,    // a BU/BA without its Nonce Indices, Home Address or Authorization Data
  ShortProbe,       // a probe request below kProbeMinSize (anti-amplification)
  // Return routability (member.hpp, correspondent.hpp).
  NotAnycast,        // the datagram was not sent to one of the member's anycast addresses
  NoPending,         // a HoT/CoT/BA that matches no return-routability exchange in progress
  CookieMismatch,    // HoT/CoT cookie differs from the one sent
  StaleNonce,        // nonce index unknown or expired (BA status 136/137/138)
  BadAuthenticator,  // BU/BA authenticator does not verify
  Replay,            // BU sequence number not newer than the last accepted one (BA status 135)
  BadLifetime,       // an anycast BU whose lifetime is not 1 (16 s units)
  AddressMismatch,   // a probe answer whose claimed unicast is not its IP source
  RateLimited,       // over a per-source or global budget
  TableFull,         // a bounded table is full
  // Resolver.
  Unsolicited,  // an answer or binding for an address nobody is resolving
};

const boost::system::error_category& anycast_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), anycast_category()};
}

// "truncated", "bad_magic", ... the snake_case name used as a counter label.
std::string_view to_string(Errc e) noexcept;

template <typename T>
using Result = boost::system::result<T>;

}  // namespace anycast

namespace boost::system {
template <>
struct is_error_code_enum<::anycast::Errc> : std::true_type {};
}  // namespace boost::system
