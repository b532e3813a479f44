// Error codes of the platform library that are not an errno (an errno travels as
// boost::system::system_category, which is the honest category for what the kernel said).
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace platform {

// Values are stable: they appear in logs and counters.
enum class Errc {
  NetlinkTruncated = 1,  // a netlink datagram or message is shorter than it must be
  NetlinkMalformed,      // a length or value in a netlink reply contradicts the bytes present
  AckTimeout,            // no ack for our request before the deadline
  TooManyReplies,        // more reply messages than we accept for one request
  MissingReply,          // acked, but the data reply we asked for never came
  NameTooLong,           // an interface name of IFNAMSIZ (16) bytes or more
  NotificationTimeout,   // no matching kernel notification before the deadline
};

const boost::system::error_category& platform_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), platform_category()};
}

// An errno as an error code (system_category), e.g. errno_code(ENODEV).
inline boost::system::error_code errno_code(int e) noexcept {
  return {e, boost::system::system_category()};
}

template <typename T>
using Result = boost::system::result<T>;

}  // namespace platform

namespace boost::system {
template <>
struct is_error_code_enum<::platform::Errc> : std::true_type {};
}  // namespace boost::system
