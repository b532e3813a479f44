// Error codes of the relay library: why a relay packet, control message, cluster record or
// translation was refused. Values are stable: the relay counts drops by their names.
#pragma once

#include <string_view>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace relay {

enum class Errc {
  Truncated = 1,   // shorter than its fixed fields say
  TrailingBytes,   // longer than its fields say
  BadVersion,      // a control or cluster message of another version
  UnknownType,     // a message type this version does not define
  BadField,        // a field outside its range (family, prefix length, empty name...)
  NoSpace,         // the output buffer is too small
  FrameTooLong,    // a stream frame above the framer's limit
  NotIp,           // an inner packet that is neither IPv4 nor IPv6, or malformed
  NoRoute,         // no client and no local route for the inner destination
  UnknownMux,      // a packet for a MUX with no connection
  UnknownMapping,  // an inbound packet that matches no translation
  Unsupported,     // a protocol the translation does not handle (e.g. GRE, fragments)
  TableFull,       // a table at its configured bound
  PortsExhausted,  // no free external port (or relay port) left
  NotAllowed,      // the connection may not use this mode
};

const boost::system::error_category& relay_category() noexcept;
inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), relay_category()};
}
// "truncated", "no_route", ...: the snake_case name used as a counter label.
std::string_view to_string(Errc e) noexcept;

template <typename T>
using Result = boost::system::result<T>;

}  // namespace relay

namespace boost::system {
template <>
struct is_error_code_enum<::relay::Errc> : std::true_type {};
}  // namespace boost::system
