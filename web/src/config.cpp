// The web section of the appliance document (docs/config.md, "The web section"), and the daemons
// the dashboard watches, found in the other sections.
#include "web/config.hpp"

#include <optional>
#include <set>

#include <fmt/format.h>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "core/address.hpp"

namespace web {

namespace {

// The daemons' own defaults (docs/config.md): the dashboard must look where they listen when the
// document leaves control_socket out.
constexpr std::string_view kDstmServerSocket = "/run/appl/dstm-server.sock";
constexpr std::string_view kSocketDir = "/run/appl/";

// Room for the file names the dashboard keeps under state_dir ("tls/self-signed.key", ...).
constexpr std::size_t kMaxStateDir = 1024;

// An IP literal in its canonical text (RFC 5952 for IPv6), or nullopt.
std::optional<std::string> canonical_address(std::string_view text) {
  if (auto v4 = core::Ipv4Address::parse(text)) return v4->to_string();
  if (auto v6 = core::Ipv6Address::parse(text)) return v6->to_string();
  return std::nullopt;
}

std::vector<std::string> read_listen(platform::ObjectReader& r, std::vector<std::string> fallback) {
  auto listen = r.optional_strings("listen");
  if (!listen) return fallback;
  const std::string base = r.path_of("listen");
  if (listen->empty()) r.error("listen", "at least one address is required");
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < listen->size(); ++i) {
    const auto& text = (*listen)[i];
    auto address = canonical_address(text);
    if (!address) {
      r.errors().push_back({platform::json_pointer_child(base, i),
                            fmt::format("'{}' is not an IPv4 or IPv6 address", text)});
      continue;
    }
    if (!seen.insert(*address).second) {
      r.errors().push_back({platform::json_pointer_child(base, i),
                            fmt::format("{} is listed more than once", *address)});
      continue;
    }
    out.push_back(std::move(*address));
  }
  return out;
}

// An absolute path (no NUL, bounded), or the default after an error.
std::string read_path(platform::ObjectReader& r, std::string_view key, std::string fallback) {
  auto path = r.optional_string(key);
  if (!path) return fallback;
  if (path->empty() || path->front() != '/' || path->find('\0') != std::string::npos ||
      path->size() > kMaxStateDir) {
    r.error(key,
            fmt::format("must be an absolute path without NUL, at most {} bytes", kMaxStateDir));
    return fallback;
  }
  return std::move(*path);
}

FirmwareConfig read_firmware(platform::ObjectReader& r) {
  const FirmwareConfig defaults;
  FirmwareConfig f;
  f.tool = read_path(r, "tool", defaults.tool);
  f.disk = read_path(r, "disk", defaults.disk);  // absent: "", the tool finds the disk
  if (auto command = r.optional_strings("reboot_command")) {
    if (command->empty() || command->front().empty() || command->front().front() != '/')
      r.error("reboot_command", "must start with an absolute path to the program");
    else
      f.reboot_command = std::move(*command);
  }
  f.max_upload_bytes =
      r.optional_integer<std::uint64_t>("max_upload_bytes", 1024 * 1024, std::uint64_t{4} << 30)
          .value_or(defaults.max_upload_bytes);
  return f;
}

WebConfig read_web(platform::ObjectReader& r) {
  const WebConfig defaults;
  WebConfig c;
  c.listen = read_listen(r, defaults.listen);
  // Cross-field rules run only on values that were read: one mistake gives one error. (A value
  // that fails its own check comes back as a placeholder, so count the errors to tell.)
  auto errors_before = r.errors().size();
  const auto https_port = r.optional_integer<std::uint16_t>("https_port", 1, 65535);
  const auto http_port = r.optional_integer<std::uint16_t>("http_port", 0, 65535);
  const bool ports_read = r.errors().size() == errors_before;
  c.https_port = https_port.value_or(defaults.https_port);
  c.http_port = http_port.value_or(defaults.http_port);
  if (ports_read && c.http_port != 0 && c.http_port == c.https_port) {
    if (http_port)
      r.error("http_port", fmt::format("{} is also the HTTPS port; 0 turns HTTP off", c.http_port));
    else
      r.error("https_port", fmt::format("{} is also the HTTP port (http_port defaults to {}); "
                                        "set http_port to another port, or to 0 to turn HTTP off",
                                        c.https_port, defaults.http_port));
  }

  if (auto dir = r.optional_string("state_dir")) {
    if (dir->empty() || dir->front() != '/')
      r.error("state_dir", "must be an absolute path");
    else if (dir->find('\0') != std::string::npos)
      r.error("state_dir", "must not contain NUL");
    else if (dir->size() > kMaxStateDir)
      r.error("state_dir", fmt::format("longer than {} bytes", kMaxStateDir));
    c.state_dir = std::move(*dir);
  }
  c.session_idle_timeout = std::chrono::seconds{
      r.optional_integer<std::uint32_t>("session_idle_timeout", 60, 86400)
          .value_or(static_cast<std::uint32_t>(defaults.session_idle_timeout.count()))};
  c.confirm_timeout = std::chrono::seconds{
      r.optional_integer<std::uint32_t>("confirm_timeout", 5, 3600)
          .value_or(static_cast<std::uint32_t>(defaults.confirm_timeout.count()))};
  c.login_attempts_per_minute =
      r.optional_integer<std::uint32_t>("login_attempts_per_minute", 1, 1000)
          .value_or(defaults.login_attempts_per_minute);
  errors_before = r.errors().size();
  const auto max_connections = r.optional_integer<std::uint32_t>("max_connections", 1, 65536);
  const auto per_source = r.optional_integer<std::uint32_t>("max_connections_per_source", 1, 65536);
  const bool limits_read = r.errors().size() == errors_before;
  c.max_connections = max_connections.value_or(defaults.max_connections);
  c.max_connections_per_source = per_source.value_or(defaults.max_connections_per_source);
  // As in the dstm_server limits: a per-source limit above the total is an error even when it is
  // the default, so "max_connections": 8 alone fails rather than being silently adjusted.
  if (limits_read && c.max_connections_per_source > c.max_connections)
    r.error(per_source ? "max_connections_per_source" : "max_connections",
            fmt::format("max_connections_per_source ({}) is more than max_connections ({})",
                        c.max_connections_per_source, c.max_connections));
  c.hsts = r.optional_boolean("hsts").value_or(defaults.hsts);
  if (auto fw = r.optional_object("firmware", read_firmware)) c.firmware = std::move(*fw);
  return c;
}

}  // namespace

platform::ConfigResult<WebConfig> parse_web_section(const boost::json::value& document) {
  platform::ConfigErrors errors;
  std::optional<WebConfig> config;
  if (!document.is_object()) {
    errors.push_back({"", "the document must be a JSON object"});
  } else if (const auto* web = document.as_object().if_contains("web")) {
    platform::ObjectReader r{*web, "/web", errors};
    config = read_web(r);
  } else {
    config.emplace();
  }
  if (!errors.empty()) return {boost::system::in_place_error, std::move(errors)};
  return {boost::system::in_place_value, std::move(*config)};
}

std::vector<DaemonRef> daemons_of(const boost::json::value& document) {
  std::vector<DaemonRef> out;
  const auto* root = document.if_object();
  if (!root) return out;
  if (const auto* v = root->if_contains("dstm_server"); v && v->is_object()) {
    DaemonRef d{.kind = "dstm-server",
                .name = "dstm-server",
                .section = "/dstm_server",
                .socket = std::string{kDstmServerSocket}};
    if (const auto* s = v->as_object().if_contains("control_socket"); s && s->is_string())
      d.socket = std::string{s->as_string()};
    out.push_back(std::move(d));
  }
  if (const auto* v = root->if_contains("tep"); v && v->is_array()) {
    const auto& teps = v->as_array();
    for (std::size_t i = 0; i < teps.size(); ++i) {
      const auto* tep = teps[i].if_object();
      if (!tep) continue;
      const auto* name = tep->if_contains("name");
      if (!name || !name->is_string() || name->as_string().empty()) continue;
      DaemonRef d{.kind = "tep",
                  .name = std::string{name->as_string()},
                  .section = platform::json_pointer_child("/tep", i),
                  .socket = {}};
      d.socket = fmt::format("{}{}.sock", kSocketDir, d.name);
      if (const auto* s = tep->if_contains("control_socket"); s && s->is_string())
        d.socket = std::string{s->as_string()};
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace web
