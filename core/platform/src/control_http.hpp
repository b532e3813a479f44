// Private to platform: the Beast stream type and helpers shared by the control server and client.
#pragma once

#include <sys/un.h>

#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>

namespace platform::control_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

using Local = asio::local::stream_protocol;
// A Unix stream socket with Beast's per-operation deadlines.
using Stream = beast::basic_stream<Local, asio::any_io_executor, beast::unlimited_rate_policy>;

// Completion token for coroutines that inspect errors instead of catching exceptions.
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// sun_path holds the path plus its terminating NUL.
inline bool fits_sockaddr_un(std::string_view path) noexcept {
  return !path.empty() && path.size() < sizeof(sockaddr_un{}.sun_path);
}

}  // namespace platform::control_detail
