// Status code table and status-line text.
#include "tsp/status.hpp"

#include "text.hpp"

namespace tsp {

std::string_view status_text(Status s) noexcept {
  switch (s) {
    case Status::Success:
      return "Success";
    case Status::AuthenticationFailed:
      return "Authentication failed";
    case Status::NoMoreTunnels:
      return "No more tunnels available";
    case Status::UnsupportedVersion:
      return "Unsupported client version";
    case Status::UnsupportedTunnelType:
      return "Unsupported tunnel type";
    case Status::ServerError:
      return "Server side error";
    case Status::InvalidRequest:
      return "Invalid request";
    case Status::InvalidIpv4Address:
      return "Invalid IPv4 address";
    case Status::InvalidIpv6Address:
      return "Invalid IPv6 address";
    case Status::Ipv4PrefixInUse:
      return "IPv4 prefix already in use";
    case Status::PrefixLengthUnavailable:
      return "Requested prefix length unavailable";
    case Status::DnsDelegationError:
      return "DNS delegation error";
    case Status::UnsupportedPrefixLength:
      return "Unsupported prefix length";
    case Status::MissingPrefixLength:
      return "Missing prefix length";
    case Status::RequestInProgress:
      return "Request already in progress";
    case Status::PrefixForAnonymous:
      return "Prefix requested for anonymous";
    case Status::ServerTooBusy:
      return "Server too busy";
  }
  return "Unknown status";
}

std::optional<Status> status_from_code(int code) noexcept {
  switch (code) {
    case 200:
    case 300:
    case 301:
    case 302:
    case 303:
    case 310:
    case 500:
    case 501:
    case 502:
    case 506:
    case 507:
    case 509:
    case 518:
    case 520:
    case 521:
    case 522:
    case 530:
      return static_cast<Status>(code);
    default:
      return std::nullopt;
  }
}

Result<StatusLine> parse_status_line(std::string_view line) {
  // Draft profile: "OK Authentication successful" (no number). Only an exact "OK" word counts.
  if (line == "OK" || line.starts_with("OK ")) {
    return StatusLine{200, std::string{line.size() > 3 ? line.substr(3) : std::string_view{}}};
  }
  std::size_t i = 0;
  int code = 0;
  while (i < line.size() && i < 5 && detail::is_digit(line[i])) {
    code = code * 10 + (line[i] - '0');
    ++i;
  }
  if (i == 0 || i > 4) return Errc::BadStatusLine;
  if (i < line.size() && line[i] != ' ') return Errc::BadStatusLine;
  const auto text = i < line.size() ? line.substr(i + 1) : std::string_view{};
  return StatusLine{code, std::string{text}};
}

std::string status_line(Status s) {
  return status_line(static_cast<int>(s), status_text(s));
}

std::string status_line(int code, std::string_view text) {
  std::string out = std::to_string(code);
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  return out;
}

}  // namespace tsp
