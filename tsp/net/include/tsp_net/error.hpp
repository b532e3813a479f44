// Errors of the TSP client drivers: tsp_net::Errc (driver failures), and tsp_net::Error, which
// carries an error code of any layer together with what the server said.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include "tsp/message.hpp"
#include "tsp/status.hpp"

namespace tsp_net {

// Failures of the drivers themselves. Values are stable: they appear in counters and logs.
enum class Errc {
  BadTarget = 1,   // the address or source address is not a numeric IPv4/IPv6 address
  BadConfig,       // a create without ClientConfig::request, a query session with one
  ConnectTimeout,  // TCP connect did not complete within ClientDeadlines::reply
  WriteTimeout,    // a TCP write did not complete within ClientDeadlines::reply
  Deadline,        // the overall deadline of a blocking call passed
  Closed,          // the session was closed (locally, or it ended) before the outcome
};

const boost::system::error_category& tsp_net_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), tsp_net_category()};
}

}  // namespace tsp_net

namespace boost::system {
template <>
struct is_error_code_enum<::tsp_net::Errc> : std::true_type {};
}  // namespace boost::system

namespace tsp_net {

// Why a driver call failed. `code` is one of
//   tsp::Errc      the session failed (Timeout, PeerClosed, AuthenticationFailed, ErrorStatus,
//                  Redirected, RspauthMismatch, ...)
//   tsp_net::Errc  the driver failed (see above)
//   system errors  from the socket (connection_refused, connection_reset, ...)
// `status` is set when the server answered with an error status (and for redirects), `brokers`
// holds a redirect's broker list.
struct Error {
  boost::system::error_code code;
  std::optional<tsp::StatusLine> status;
  std::vector<tsp::Address> brokers;

  Error() = default;
  Error(boost::system::error_code c) : code{c} {}  // NOLINT: implicit by design
  template <typename E>
  requires boost::system::is_error_code_enum<E>::value Error(E e)
      : code{make_error_code(e)} {}  // NOLINT: implicit by design
  Error(boost::system::error_code c, std::optional<tsp::StatusLine> s,
        std::vector<tsp::Address> b = {})
      : code{c}, status{std::move(s)}, brokers{std::move(b)} {}

  // "tsp: the peer answered with an error status (301 No more tunnels available)".
  std::string message() const;
  bool operator==(const Error&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Error& e);

// Lets Result<T>::value() throw boost::system::system_error for an Error (found by ADL).
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <typename T>
using Result = boost::system::result<T, Error>;

}  // namespace tsp_net
