// ControlClient: one HTTP exchange over a Unix socket under a single deadline.
#include <chrono>
#include <exception>
#include <optional>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "control_http.hpp"
#include "platform/control.hpp"

namespace platform {

using namespace control_detail;
namespace http = beast::http;

namespace {

constexpr std::uint32_t kMaxResponseHeader = 64 * 1024;

http::verb to_verb(Method m) {
  switch (m) {
    case Method::Get:
      return http::verb::get;
    case Method::Post:
      return http::verb::post;
    case Method::Put:
      return http::verb::put;
    case Method::Patch:
      return http::verb::patch;
    case Method::Delete:
      return http::verb::delete_;
  }
  return http::verb::get;
}

boost::system::error_code classify(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return ControlErrc::Timeout;
  if (ec == http::error::body_limit) return ControlErrc::ResponseTooLarge;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::broken_pipe)
    return ControlErrc::ConnectionClosed;
  if (ec.category() == http::make_error_code(http::error::bad_method).category())
    return ControlErrc::BadResponse;
  return ec;  // system errors (no such file, connection refused, permission denied) as they are
}

bool is_closed_by_peer(const boost::system::error_code& ec) {
  return ec == boost::asio::error::broken_pipe || ec == boost::asio::error::connection_reset;
}

boost::asio::awaitable<boost::system::result<Response>> exchange(std::string path,
                                                                 ControlClientOptions options,
                                                                 Method method, std::string target,
                                                                 boost::json::value body) {
  using Result = boost::system::result<Response>;
  if (!fits_sockaddr_un(path)) co_return Result{ControlErrc::PathTooLong};

  // One absolute deadline for connect, write and read together.
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  Stream stream{co_await boost::asio::this_coro::executor};

  stream.expires_at(deadline);
  auto [connect_ec] = co_await stream.async_connect(Local::endpoint{path}, kNoThrow);
  if (connect_ec) co_return Result{classify(connect_ec)};

  http::request<http::string_body> req{to_verb(method), target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::user_agent, "appl-control-client");
  req.set(http::field::accept, "application/json");
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = boost::json::serialize(body);
  }
  req.keep_alive(false);
  req.prepare_payload();

  stream.expires_at(deadline);
  auto [write_ec, written] = co_await http::async_write(stream, req, kNoThrow);
  // A server that refuses the request early (413) closes while we still write; its answer is
  // already in our receive buffer, so read it before reporting the write failure.
  if (write_ec && !is_closed_by_peer(write_ec)) co_return Result{classify(write_ec)};

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxResponseHeader);
  parser.body_limit(options.max_response_bytes);
  stream.expires_at(deadline);
  auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, kNoThrow);
  if (read_ec) co_return Result{classify(write_ec ? write_ec : read_ec)};

  auto res = parser.release();
  Response out;
  out.status = res.result_int();
  for (const auto& field : res) out.headers.emplace_back(field.name_string(), field.value());
  const std::string_view content_type = res[http::field::content_type];
  const bool is_json = content_type.substr(0, content_type.find(';')) == "application/json";
  if (is_json) {
    if (!res.body().empty()) {
      boost::system::error_code parse_ec;
      out.body = boost::json::parse(res.body(), parse_ec);
      if (parse_ec) co_return Result{ControlErrc::BadResponse};
    }
  } else {
    out.text = std::move(res.body());
    out.content_type = std::string{content_type};
  }
  co_return out;
}

}  // namespace

ControlClient::ControlClient(std::string path, ControlClientOptions options)
    : path_{std::move(path)}, options_{options} {}

boost::asio::awaitable<boost::system::result<Response>> ControlClient::async_request(
    Method method, std::string target, boost::json::value body) const {
  return exchange(path_, options_, method, std::move(target), std::move(body));
}

boost::system::result<Response> ControlClient::request(Method method, std::string_view target,
                                                       const boost::json::value& body) const {
  boost::asio::io_context io{1};
  std::optional<boost::system::result<Response>> out;
  std::exception_ptr failure;
  boost::asio::co_spawn(io, exchange(path_, options_, method, std::string{target}, body),
                        [&](std::exception_ptr e, boost::system::result<Response> r) {
                          failure = e;
                          out = std::move(r);
                        });
  // Returns when the exchange completes; the exchange's deadline bounds that.
  io.run();
  if (failure) std::rethrow_exception(failure);
  if (!out) return ControlErrc::Timeout;
  return std::move(*out);
}

}  // namespace platform
