// The dashboard's static files (web/assets/ and Debian's Chart.js), embedded in the binary at
// build time (web/cmake/embed_assets.cmake), and how they are served.
#pragma once

#include <span>
#include <string_view>

#include "web/http.hpp"

namespace web {

struct Asset {
  std::string_view path;          // the URL path: "/index.html", "/vendor/chart.min.js"
  std::string_view content_type;  // by the file's extension: "text/javascript; charset=utf-8"
  std::string_view etag;          // strong, quoted: "\"3f2a...\"" (SHA-256 of the content, cut)
  std::string_view body;          // the file's bytes, static storage
};

// Every embedded file, sorted by path.
std::span<const Asset> embedded_assets() noexcept;

// Exact match in `table` (no normalisation: the server has already decoded the target and refused
// "." and ".." segments); "/" is "/index.html". nullptr when there is no such file.
const Asset* find_asset(std::string_view path, std::span<const Asset> table) noexcept;
inline const Asset* find_asset(std::string_view path) noexcept {
  return find_asset(path, embedded_assets());
}

// GET or HEAD of request.path: 200 with the file, Content-Type, ETag and
// `Cache-Control: no-cache` (the browser revalidates, so a new build shows at once); 304 with no
// body when If-None-Match names the ETag (or is "*"); 404 {"error"} for an unknown path; 405 with
// `Allow: GET, HEAD` for other methods. (For HEAD the server sends the head only.)
HttpResponse serve_asset(const HttpRequest& request, std::span<const Asset> table);
inline HttpResponse serve_asset(const HttpRequest& request) {
  return serve_asset(request, embedded_assets());
}

}  // namespace web
