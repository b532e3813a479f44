// Serving the embedded files: lookup, conditional GET, caching headers.
#include "web/assets.hpp"

#include <algorithm>

namespace web {

namespace detail {
// Generated into the build directory (assets_data.cpp): every file, sorted by path.
extern const Asset kEmbeddedAssets[];
extern const std::size_t kEmbeddedAssetCount;
}  // namespace detail

namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 section 13.1.2: If-None-Match uses the weak comparison, so W/"x" matches "x".
bool none_match(std::string_view header, std::string_view etag) noexcept {
  if (trim(header) == "*") return true;
  while (!header.empty()) {
    const auto comma = header.find(',');
    auto tag = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etag) return true;
  }
  return false;
}

}  // namespace

std::span<const Asset> embedded_assets() noexcept {
  return {detail::kEmbeddedAssets, detail::kEmbeddedAssetCount};
}

const Asset* find_asset(std::string_view path, std::span<const Asset> table) noexcept {
  if (path == "/") path = "/index.html";
  const auto it =
      std::find_if(table.begin(), table.end(), [&](const Asset& a) { return a.path == path; });
  return it == table.end() ? nullptr : &*it;
}

HttpResponse serve_asset(const HttpRequest& request, std::span<const Asset> table) {
  if (request.method != "GET" && request.method != "HEAD")
    return HttpResponse::error(405, "only GET and HEAD are allowed here")
        .with_header("Allow", "GET, HEAD");
  const Asset* asset = find_asset(request.path, table);
  if (!asset) return HttpResponse::error(404, "not found");
  HttpResponse r;
  r.content_type = std::string{asset->content_type};
  r.with_header("ETag", std::string{asset->etag}).with_header("Cache-Control", "no-cache");
  if (const auto inm = request.header("if-none-match"); inm && none_match(*inm, asset->etag)) {
    r.status = 304;
    return r;
  }
  r.body = std::string{asset->body};
  return r;
}

}  // namespace web
