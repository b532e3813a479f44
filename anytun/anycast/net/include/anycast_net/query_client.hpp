// Asking anycast-resolver over Asio (anycast/query.hpp): which member's unicast address to use for
// an anycast address, so that a session is pinned to one member and survives a change of the
// anycast route (docs/anycast.md). dstm-client asks it for its server.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/address.hpp"

namespace anycast::net {

struct ResolverAnswer {
  // The member's unicast address; unset when the resolver says to use the server as it is
  // (not an anycast address, or not resolved in time).
  std::optional<core::Ipv6Address> unicast;
  std::string note;  // why not, for the log ("not an anycast destination", "timed out", ...)
};

// Asks the resolver on its query socket about `server`, waiting at most `wait` for a resolution
// in progress.
// Never fails: every problem (no resolver, a refused or malformed answer) is an answer without
// a unicast address and a note.
boost::asio::awaitable<ResolverAnswer> ask_resolver(boost::asio::any_io_executor executor,
                                                    std::string socket_path,
                                                    core::Ipv6Address server,
                                                    std::chrono::milliseconds wait);

// Tells the resolver that a connection to `unicast` (the member for `server`) failed, so that
// the next question re-resolves. Best effort, no answer awaited.
boost::asio::awaitable<void> report_failed(boost::asio::any_io_executor executor,
                                           std::string socket_path, core::Ipv6Address server,
                                           core::Ipv6Address unicast);

}  // namespace anycast::net
