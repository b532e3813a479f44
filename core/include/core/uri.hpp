// The parts of a URI both HTTP servers (the control sockets and the dashboard) decode from their
// peers: percent-encoding (RFC 3986 section 2.1) and the query string.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace core {

// "%41" -> "A"; with plus_is_space (query components), "+" -> " ". nullopt for a malformed
// escape, "%00" or a raw NUL: decoded text reaches file names, C APIs and log lines.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

using QueryParams = std::map<std::string, std::string, std::less<>>;

// "a=1&b=x+y&&c" -> {a: "1", b: "x y", c: ""}; empty items are skipped. A malformed escape or a
// key given twice is an error (the reason, for a 400): with a repeated key, a proxy and the
// server could act on different values.
boost::system::result<QueryParams, std::string> parse_query(std::string_view query);

}  // namespace core
