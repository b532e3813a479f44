// TSP status codes (RFC 5572 error-code appendix, as gogoCLIENT 1.2 understands them) and status
// lines: "<code> <text>", SMTP style.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tsp/error.hpp"

namespace tsp {

// Every code of the table in tsp-wire.md section 6. A redirect carries 1000 + one of these.
enum class Status : std::uint16_t {
  Success = 200,
  AuthenticationFailed = 300,
  NoMoreTunnels = 301,
  UnsupportedVersion = 302,
  UnsupportedTunnelType = 303,
  ServerError = 310,
  InvalidRequest = 500,
  InvalidIpv4Address = 501,
  InvalidIpv6Address = 502,
  Ipv4PrefixInUse = 506,
  PrefixLengthUnavailable = 507,
  DnsDelegationError = 509,
  UnsupportedPrefixLength = 518,
  MissingPrefixLength = 520,
  RequestInProgress = 521,
  PrefixForAnonymous = 522,
  ServerTooBusy = 530,
};

// The text sent after the code ("Success", "Unsupported client version", ...). Clients read only
// the number (gogoc: atoi), so the texts are for people.
std::string_view status_text(Status s) noexcept;
// The Status with this three-digit code, if it is in the table.
std::optional<Status> status_from_code(int code) noexcept;
// Redirects are 1000 + a table code (gogoc treats every code above 1000 as a redirect).
constexpr int redirect_code(Status s) noexcept {
  return 1000 + static_cast<int>(s);
}
constexpr bool is_redirect_code(int code) noexcept {
  return code > 1000 && code < 2000;
}

// A parsed status line.
struct StatusLine {
  int code = 0;
  std::string text;

  bool is_success() const noexcept { return code == 200; }
  bool is_redirect() const noexcept { return is_redirect_code(code); }
  // The table entry, with the 1000 of a redirect removed; nullopt for an unknown code.
  std::optional<Status> status() const noexcept {
    return status_from_code(is_redirect() ? code - 1000 : code);
  }
  bool operator==(const StatusLine&) const = default;
};

// "200 Success" and friends: 1 to 4 digits, then a space and text, or the end of the line. The
// draft-jaehwoon-dstm-multitep-02 profile answers AUTHENTICATE with "OK Authentication
// successful", which carries no number; it parses as code 200.
Result<StatusLine> parse_status_line(std::string_view line);

// "<code> <text>" without the line end.
std::string status_line(Status s);
std::string status_line(int code, std::string_view text);

}  // namespace tsp
