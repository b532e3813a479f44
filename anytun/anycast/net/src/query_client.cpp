// The asking side of the anycast-resolver query protocol (anycast/query.hpp), over Asio.
#include "anycast_net/query_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "anycast/query.hpp"
#include "anycast_net/seq_packet.hpp"

namespace anycast::net {

namespace asio = boost::asio;
using Socket = SeqPacketProtocol::socket;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Connecting and sending to a local socket is immediate; this bounds a resolver that hangs.
constexpr std::chrono::milliseconds kMargin{200};

asio::awaitable<boost::system::error_code> connect_and_send(
    Socket& socket, const std::string& path, const anycast::query::Request& request) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
    co_return make_error_code(boost::system::errc::filename_too_long);
  auto [ec] = co_await socket.async_connect(SeqPacketProtocol::endpoint{path}, kNoThrow);
  if (ec) co_return ec;
  const auto bytes = anycast::query::encode(request);
  auto [ec2, n] = co_await socket.async_send(asio::buffer(bytes), 0, kNoThrow);
  (void)n;
  co_return ec2;
}

}  // namespace

asio::awaitable<ResolverAnswer> ask_resolver(asio::any_io_executor executor,
                                             std::string socket_path, core::Ipv6Address server,
                                             std::chrono::milliseconds wait) {
  using namespace asio::experimental::awaitable_operators;
  anycast::query::Request request;
  request.op = anycast::query::Op::Resolve;
  request.flags = anycast::query::kFlagMayWait;
  request.wait_ms = static_cast<std::uint16_t>(std::min<std::int64_t>(wait.count(), 60000));
  request.address = server.bytes();

  Socket socket{executor};
  asio::steady_timer deadline{executor, wait + kMargin};
  std::array<std::uint8_t, anycast::query::kAnswerSize + 1> buffer{};
  auto exchange = [&]() -> asio::awaitable<std::pair<boost::system::error_code, std::size_t>> {
    if (auto ec = co_await connect_and_send(socket, socket_path, request))
      co_return std::pair{ec, std::size_t{0}};
    asio::socket_base::message_flags flags{};
    auto [ec, n] = co_await socket.async_receive(asio::buffer(buffer), flags, kNoThrow);
    co_return std::pair{ec, n};
  };
  auto r = co_await (exchange() || deadline.async_wait(kNoThrow));
  if (r.index() == 1) co_return ResolverAnswer{std::nullopt, "the resolver did not answer in time"};
  const auto [ec, n] = std::get<0>(r);
  if (ec) co_return ResolverAnswer{std::nullopt, "cannot ask the resolver: " + ec.message()};
  const auto answer = anycast::query::parse_answer(std::span{buffer}.first(n));
  if (!answer) co_return ResolverAnswer{std::nullopt, "the resolver sent a malformed answer"};
  switch (answer->status) {
    case anycast::query::Status::Unicast:
      co_return ResolverAnswer{core::Ipv6Address{answer->unicast}, {}};
    case anycast::query::Status::PassThrough:
      co_return ResolverAnswer{std::nullopt, "not an anycast destination"};
    case anycast::query::Status::Pending:
      co_return ResolverAnswer{std::nullopt, "not resolved in time"};
    case anycast::query::Status::Refused:
      break;
  }
  co_return ResolverAnswer{std::nullopt, "the resolver refused the question"};
}

asio::awaitable<void> report_failed(asio::any_io_executor executor, std::string socket_path,
                                    core::Ipv6Address server, core::Ipv6Address unicast) {
  using namespace asio::experimental::awaitable_operators;
  anycast::query::Request request;
  request.op = anycast::query::Op::Failed;
  request.address = server.bytes();
  request.unicast = unicast.bytes();
  Socket socket{executor};
  asio::steady_timer deadline{executor, kMargin};
  co_await (connect_and_send(socket, socket_path, request) || deadline.async_wait(kNoThrow));
}

}  // namespace anycast::net
