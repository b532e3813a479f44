// libFuzzer target: the dashboard's parsers of peer input. The bytes go to parse_target,
// parse_cookies and percent_decode directly, then through Beast's request parser (with the
// server's limits), whose target and Cookie fields go to the same parsers. Invariants: a decoded
// path never has a "." or ".." segment or a NUL, decoding never yields NUL, what decodes
// re-encodes to text that decodes to the same, and at most 64 cookies come back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "web/http.hpp"

#include "fuzz_check.hpp"

namespace {

namespace http = boost::beast::http;

bool has_dot_segment(std::string_view path) {
  while (!path.empty()) {
    const auto slash = path.find('/');
    const auto segment = path.substr(0, slash);
    if (segment == "." || segment == "..") return true;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return false;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    out += '%';
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

void decode(std::string_view text) {
  for (const bool plus : {false, true}) {
    const auto decoded = web::percent_decode(text, plus);
    if (!decoded) continue;
    FUZZ_CHECK(decoded->find('\0') == std::string::npos);
    FUZZ_CHECK(decoded->size() <= text.size());
    FUZZ_CHECK(web::percent_decode(percent_encode(*decoded), plus) == decoded);
  }
}

void target(std::string_view text) {
  const auto t = web::parse_target(text);
  if (!t) return;
  FUZZ_CHECK(!t->path.empty() && t->path.front() == '/');
  FUZZ_CHECK(!has_dot_segment(t->path));
  FUZZ_CHECK(t->path.find('\0') == std::string::npos);
  for (const auto& [key, value] : t->query) {
    FUZZ_CHECK(key.find('\0') == std::string::npos);
    FUZZ_CHECK(value.find('\0') == std::string::npos);
  }
  // Decoding is not applied twice: the decoded path, encoded again, parses back to itself.
  const auto again = web::parse_target("/" + percent_encode(std::string_view{t->path}.substr(1)));
  FUZZ_CHECK(again.has_value() && again->path == t->path && again->query.empty());
}

void cookies(std::string_view text) {
  const auto c = web::parse_cookies(text);
  FUZZ_CHECK(c.size() <= 64);
  for (const auto& [name, value] : c) {
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(name.find(';') == std::string::npos && value.find(';') == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  decode(text);
  target(text);
  cookies(text);

  // The same bytes as a request on the wire, with the server's limits (scaled to -max_len).
  http::request_parser<http::string_body> parser;
  parser.header_limit(2048);
  parser.body_limit(1024);
  parser.eager(true);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (used < size && !ec && !parser.is_done()) {
    const auto n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (n == 0) break;
    used += n;
  }
  FUZZ_CHECK(used <= size);
  if (!ec && parser.is_header_done()) {
    const auto& message = parser.get();
    target(message.target());
    for (const auto& field : message) {
      if (field.name() == http::field::cookie) cookies(field.value());
    }
    if (parser.is_done()) FUZZ_CHECK(message.body().size() <= 1024);
  }
  return 0;
}
