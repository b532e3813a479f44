// The dashboard's HTTP request and response as values, so the application (api.hpp) is a function
// from request to response that unit tests call without sockets, and the Beast server
// (server.hpp) is the only part that touches the wire. Also the pure parsers of the parts of a
// request that come from the peer: the target, the query string and the Cookie header.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include "core/uri.hpp"

namespace web {

using Headers = std::vector<std::pair<std::string, std::string>>;  // names in lower case
using Params = std::map<std::string, std::string, std::less<>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string target;  // as sent: "/api/leases?q=198.51"
  std::string path;    // percent-decoded path without the query: "/api/leases"
  Params query;        // decoded query parameters ("+" is a space)
  Params params;       // the matched route's "{name}" segments (set by the API's router)
  Headers headers;     // every header, names lower-cased, in order
  std::string body;    // at most the server's body limit
  // An upload (ServerOptions::upload): the body is in this file instead, which the server removes
  // after the handler returns unless the handler moved it away. Empty otherwise.
  std::filesystem::path body_file;
  std::string remote;  // the peer's address as text ("127.0.0.1", "2001:db8::1")
  // The first header with this (lower-case) name.
  std::optional<std::string_view> header(std::string_view lower_name) const;
  std::optional<std::string_view> query_param(std::string_view name) const;
  std::optional<std::string_view> param(std::string_view name) const;
};

// A response that is not a single body: the server writes the head, then each chunk that next()
// returns until it returns nullopt, or until the peer goes away or the server stops (then
// cancel() is called, and a pending next() must return nullopt soon after). Used for
// Server-Sent Events (text/event-stream).
class EventStream {
 public:
  virtual ~EventStream() = default;
  virtual boost::asio::awaitable<std::optional<std::string>> next() = 0;
  virtual void cancel() noexcept = 0;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;  // extra headers (Set-Cookie, Location, ETag, Allow, Retry-After, ...)
  std::shared_ptr<EventStream> stream;  // when set, body is ignored and the stream is sent

  // A JSON body followed by a newline.
  static HttpResponse json(const boost::json::value& body, unsigned status = 200);
  // {"error": message}, the shape of every error of the API.
  static HttpResponse error(unsigned status, std::string_view message);
  HttpResponse& with_header(std::string name, std::string value);
  std::optional<std::string_view> header(std::string_view name) const;  // case-insensitive
};

// What the server calls for every request it has read completely. Runs on the server's
// io_context; must not block (await instead).
using HttpHandler = std::function<boost::asio::awaitable<HttpResponse>(HttpRequest)>;

// --- Pure parsers of peer input (fuzz target web_http).

// "%41" -> "A" (core/uri.hpp).
using core::percent_decode;

struct Target {
  std::string path;  // decoded
  Params query;
};
// Splits and decodes an origin-form target ("/a/b?x=1&y=2"). nullopt when it does not start with
// "/", has a malformed escape or %00, decodes to a path with a ".." or "." segment, or repeats a
// query key.
std::optional<Target> parse_target(std::string_view target);

// "a=1; b=2" -> {a: 1, b: 2}. Malformed pairs are skipped; the first of a repeated name wins.
// At most 64 cookies are kept.
Params parse_cookies(std::string_view header);

}  // namespace web
