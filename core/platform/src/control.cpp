// The pure half of the control socket: error category, methods, responses, and the router.
#include "platform/control.hpp"

#include "core/uri.hpp"
#include "platform/config.hpp"
#include "platform/log.hpp"

#include <algorithm>
#include <charconv>
#include <exception>
#include <set>
#include <stdexcept>
#include <variant>

#include <fmt/format.h>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

namespace platform {
namespace {

class ControlCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "control"; }
  std::string message(int ev) const override {
    switch (static_cast<ControlErrc>(ev)) {
      case ControlErrc::Timeout:
        return "control socket: no complete response before the deadline";
      case ControlErrc::ConnectionClosed:
        return "control socket: connection closed without a complete response";
      case ControlErrc::BadResponse:
        return "control socket: malformed response";
      case ControlErrc::ResponseTooLarge:
        return "control socket: response larger than the limit";
      case ControlErrc::PathInUse:
        return "control socket: another server answers on this path";
      case ControlErrc::NotASocket:
        return "control socket: path exists and is not a socket";
      case ControlErrc::PathTooLong:
        return "control socket: path empty or longer than a Unix socket address allows";
    }
    return "control socket: unknown error";
  }
};

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::vector<std::string_view> split_path(std::string_view path) {
  // "/" -> {}, "/a/b" -> {"a", "b"}, "/a/" -> {"a", ""}. The caller checked the leading "/".
  std::vector<std::string_view> out;
  if (path.size() <= 1) return out;
  path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

struct Target {
  std::string path;
  std::vector<std::string> segments;  // decoded
  Params query;
};

// Origin-form targets only ("/path?query"); the fragment never reaches a server.
std::variant<Target, std::string> parse_target(std::string_view target) {
  if (target.empty() || target[0] != '/') return std::string{"request target must start with '/'"};
  Target t;
  const auto qmark = target.find('?');
  t.path = std::string{target.substr(0, qmark)};
  for (auto raw : split_path(t.path)) {
    auto decoded = core::percent_decode(raw, false);
    if (!decoded) return std::string{"invalid percent-encoding in path"};
    t.segments.push_back(std::move(*decoded));
  }
  if (qmark == std::string_view::npos) return t;
  auto query = core::parse_query(target.substr(qmark + 1));
  if (!query) return std::move(query.error());
  t.query = std::move(*query);
  return t;
}

constexpr std::size_t kDefaultLogLines = 500;
constexpr std::size_t kMaxLogLines = 2000;

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || p != end) return std::nullopt;
  return v;
}

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

const boost::system::error_category& control_category() noexcept {
  static const ControlCategory category;
  return category;
}

std::string_view to_string(Method method) noexcept {
  switch (method) {
    case Method::Get:
      return "GET";
    case Method::Post:
      return "POST";
    case Method::Put:
      return "PUT";
    case Method::Patch:
      return "PATCH";
    case Method::Delete:
      return "DELETE";
  }
  return "?";
}

std::optional<Method> parse_method(std::string_view text) noexcept {
  for (auto m : {Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete})
    if (text == to_string(m)) return m;
  return std::nullopt;
}

std::optional<std::string_view> Request::param(std::string_view name) const {
  if (auto it = params.find(name); it != params.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string_view> Request::query_param(std::string_view name) const {
  if (auto it = query.find(name); it != query.end()) return it->second;
  return std::nullopt;
}

Response Response::json(boost::json::value body, unsigned status) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::error(unsigned status, std::string_view message) {
  return json(boost::json::object{{"error", message}}, status);
}

Response Response::plain(std::string text, std::string_view content_type) {
  Response r;
  r.text = std::move(text);
  r.content_type = std::string{content_type};
  return r;
}

std::optional<std::string_view> Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}

std::string_view Response::error_message() const {
  if (const auto* o = body.if_object())
    if (auto it = o->find("error"); it != o->end())
      if (const auto* s = it->value().if_string()) return *s;
  return {};
}

Response serve_logs(const LogRing& ring, const Request& request) {
  std::optional<std::uint64_t> since;
  if (auto v = request.query_param("since")) {
    since = parse_u64(*v);
    if (!since) return Response::error(400, "since: expected a non-negative integer");
  }
  std::size_t limit = kDefaultLogLines;
  if (auto v = request.query_param("limit")) {
    const auto n = parse_u64(*v);
    if (!n || *n == 0 || *n > kMaxLogLines)
      return Response::error(400,
                             fmt::format("limit: expected an integer from 1 to {}", kMaxLogLines));
    limit = static_cast<std::size_t>(*n);
  }
  LogLevel min = LogLevel::Debug;
  if (auto v = request.query_param("level")) {
    const auto level = parse_log_level(*v);
    if (!level) return Response::error(400, "level: expected debug, info, warn or error");
    min = *level;
  }
  auto page = ring.page(since, limit, min);
  boost::json::array lines;
  lines.reserve(page.lines.size());
  for (auto& l : page.lines)
    // Signed, so clients can read every integer with as_int64() (a uint64_t is JSON kind uint64).
    lines.push_back(boost::json::object{{"seq", static_cast<std::int64_t>(l.seq)},
                                        {"time", format_log_time(l.time)},
                                        {"level", to_string(l.level)},
                                        {"component", std::move(l.component)},
                                        {"message", std::move(l.message)}});
  return Response::json(boost::json::object{{"lines", std::move(lines)},
                                            {"next", static_cast<std::int64_t>(page.next)}});
}

Router& Router::add(Method method, std::string_view pattern, Handler handler) {
  if (pattern.empty() || pattern[0] != '/')
    throw std::logic_error(fmt::format("route pattern '{}' must start with '/'", pattern));
  if (!handler)
    throw std::logic_error(fmt::format("route {} {} has no handler", to_string(method), pattern));
  Route route{method, std::string{pattern}, {}, 0, std::move(handler)};
  std::set<std::string, std::less<>> names;
  for (auto seg : split_path(pattern)) {
    const bool param = is_param(seg);
    if (!param &&
        (seg.find('{') != std::string_view::npos || seg.find('}') != std::string_view::npos))
      throw std::logic_error(
          fmt::format("route pattern '{}': malformed segment '{}'", pattern, seg));
    if (param &&
        (seg.size() == 2 || !names.insert(std::string{seg.substr(1, seg.size() - 2)}).second))
      throw std::logic_error(
          fmt::format("route pattern '{}': empty or repeated parameter", pattern));
    if (!param) ++route.literals;
    route.segments.emplace_back(seg);
  }
  if (has_route(method, pattern))
    throw std::logic_error(fmt::format("route {} {} added twice", to_string(method), pattern));
  routes_.push_back(std::move(route));
  return *this;
}

bool Router::has_route(Method method, std::string_view pattern) const {
  return std::any_of(routes_.begin(), routes_.end(),
                     [&](const Route& r) { return r.method == method && r.pattern == pattern; });
}

Response Router::handle(std::string_view method_text, std::string_view target,
                        std::string_view body) const {
  auto parsed = parse_target(target);
  if (auto* problem = std::get_if<std::string>(&parsed)) return Response::error(400, *problem);
  auto& t = std::get<Target>(parsed);

  const auto matches = [&](const Route& r) {
    if (r.segments.size() != t.segments.size()) return false;
    for (std::size_t i = 0; i < r.segments.size(); ++i) {
      if (is_param(r.segments[i]) ? t.segments[i].empty() : r.segments[i] != t.segments[i])
        return false;
    }
    return true;
  };

  const auto method = parse_method(method_text);
  const Route* best = nullptr;
  std::set<std::string_view> allowed;
  for (const auto& r : routes_) {
    if (!matches(r)) continue;
    allowed.insert(to_string(r.method));
    if (method && r.method == *method && (!best || r.literals > best->literals)) best = &r;
  }
  if (allowed.empty()) return Response::error(404, fmt::format("no such resource: {}", t.path));
  if (!best) {
    auto r = Response::error(405, fmt::format("method {} not allowed on {}", method_text, t.path));
    std::string allow;
    for (auto m : allowed) allow += fmt::format("{}{}", allow.empty() ? "" : ", ", m);
    r.headers.emplace_back("Allow", std::move(allow));
    return r;
  }

  Request request;
  request.method = *method;
  request.path = std::move(t.path);
  request.query = std::move(t.query);
  for (std::size_t i = 0; i < best->segments.size(); ++i) {
    const auto& seg = best->segments[i];
    if (is_param(seg))
      request.params.emplace(seg.substr(1, seg.size() - 2), std::move(t.segments[i]));
  }
  if (!body.empty()) {
    auto json = parse_json(body);
    if (!json) {
      const auto errors = json.error();  // result::error() returns a copy
      const auto& e = errors.front();
      return Response::error(
          400, e.path.empty() ? fmt::format("invalid JSON body: {}", e.message)
                              : fmt::format("invalid JSON body: {}: {}", e.path, e.message));
    }
    request.body = std::move(*json);
  }

  try {
    auto response = best->handler(request);
    if (response.status < 100 || response.status > 599)
      return Response::error(
          500, fmt::format("internal error: handler returned status {}", response.status));
    return response;
  } catch (const std::exception& e) {
    return Response::error(500, fmt::format("internal error: {}", e.what()));
  } catch (...) {
    return Response::error(500, "internal error");
  }
}

}  // namespace platform
