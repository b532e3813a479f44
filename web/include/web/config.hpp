// The `web` section of the appliance config document (docs/config.md, "The web section"), read
// with the same strict rules as every other section, and what the dashboard needs to know of the
// other sections: where each daemon's control socket is.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

#include "platform/config.hpp"

namespace web {

// The firmware page's tools (docs/config.md, "The web section"): the upgrade tool, the disk it
// works on (empty: the tool finds the appliance disk itself), the command that reboots the
// appliance, and the largest upload it takes (a bundle or a settings backup), streamed to a file
// in state_dir.
struct FirmwareConfig {
  std::string tool = "/usr/sbin/fw-upgrade";
  std::string disk;  // passed as --disk when set
  std::vector<std::string> reboot_command{"/sbin/reboot"};
  std::uint64_t max_upload_bytes = 256 * 1024 * 1024;
  bool operator==(const FirmwareConfig&) const = default;
};

struct WebConfig {
  std::vector<std::string> listen{"127.0.0.1"};  // management addresses (IP literals)
  std::uint16_t https_port = 443;
  std::uint16_t http_port = 80;  // 0: no HTTP listener (otherwise it only redirects to HTTPS)
  std::string state_dir = "/var/lib/appl/web";  // users, sessions' secrets, TLS, config history
  std::chrono::seconds session_idle_timeout{900};
  std::chrono::seconds confirm_timeout{90};     // apply-then-confirm window
  std::uint32_t login_attempts_per_minute = 5;  // failed logins per source address
  std::uint32_t max_connections = 256;
  std::uint32_t max_connections_per_source = 32;
  bool hsts = false;
  FirmwareConfig firmware;
  bool operator==(const WebConfig&) const = default;
};

// The web section of a whole document (absent section: every default). Errors carry pointers
// under "/web".
platform::ConfigResult<WebConfig> parse_web_section(const boost::json::value& document);

// A daemon the dashboard watches, found in the document: "dstm-server" when the document has a
// dstm_server section, one "tep" per entry of the tep array.
struct DaemonRef {
  std::string kind;     // "dstm-server" or "tep"
  std::string name;     // "dstm-server", or the TEP's name
  std::string section;  // JSON pointer of its config: "/dstm_server", "/tep/0"
  std::string socket;   // its control socket (the section's control_socket, or the default)
};

// Lenient: the daemons validate their own sections; what cannot be read here is skipped.
std::vector<DaemonRef> daemons_of(const boost::json::value& document);

// The document a new appliance starts with: dstm-server/default-config.json, embedded at build
// time (dstm-web writes it to its config path when that file does not exist yet).
std::string_view default_document() noexcept;

}  // namespace web
