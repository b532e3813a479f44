// The dashboard's request/response values and the pure parsers of what the peer sends in a
// request line and its Cookie header. No I/O: the fuzz target web_http runs these on raw bytes.
#include "web/http.hpp"

#include <algorithm>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "core/uri.hpp"

namespace web {

namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

// Whether a decoded path has a "." or ".." segment. The check runs on the decoded text so that
// "%2e%2e" and "%2F" tricks ("/a%2F..%2Fb") are caught as well as the plain forms.
bool has_dot_segment(std::string_view path) noexcept {
  while (!path.empty()) {
    const auto slash = path.find('/');
    const auto segment = path.substr(0, slash);
    if (segment == "." || segment == "..") return true;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return false;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::size_t kMaxCookies = 64;

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return std::nullopt;
}

std::optional<std::string_view> HttpRequest::query_param(std::string_view name) const {
  if (auto it = query.find(name); it != query.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string_view> HttpRequest::param(std::string_view name) const {
  if (auto it = params.find(name); it != params.end()) return it->second;
  return std::nullopt;
}

HttpResponse HttpResponse::json(const boost::json::value& body, unsigned status) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = boost::json::serialize(body);
  r.body += '\n';
  return r;
}

HttpResponse HttpResponse::error(unsigned status, std::string_view message) {
  return json(boost::json::value{{"error", message}}, status);
}

HttpResponse& HttpResponse::with_header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

std::optional<std::string_view> HttpResponse::header(std::string_view name) const {
  if (iequals(name, "content-type")) return std::string_view{content_type};
  for (const auto& [n, value] : headers)
    if (iequals(n, name)) return value;
  return std::nullopt;
}

// Origin form only (RFC 9112 section 3.2.1): the server never serves absolute-form or "*".
std::optional<Target> parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  const auto qmark = target.find('?');
  auto path = percent_decode(target.substr(0, qmark), /*plus_is_space=*/false);
  if (!path || has_dot_segment(*path)) return std::nullopt;
  Target out;
  out.path = std::move(*path);
  if (qmark == std::string_view::npos) return out;
  auto query = core::parse_query(target.substr(qmark + 1));
  if (!query) return std::nullopt;
  out.query = std::move(*query);
  return out;
}

// RFC 6265 section 5.4 (the Cookie header a user agent sends): "name=value" pairs separated by
// ";". Values are not percent-decoded (the dashboard's own cookies never need it); surrounding
// double quotes are removed.
Params parse_cookies(std::string_view header) {
  Params out;
  while (!header.empty() && out.size() < kMaxCookies) {
    const auto semi = header.find(';');
    const auto pair = trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    const auto name = trim(pair.substr(0, eq));
    auto value = trim(pair.substr(eq + 1));
    if (name.empty()) continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    out.emplace(std::string{name}, std::string{value});  // the first of a repeated name wins
  }
  return out;
}

}  // namespace web
