// Tests for the web section of the appliance document: defaults, every key read, every error
// with its pointer, and the daemons found in the other sections.
#include "web/config.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "platform/config.hpp"

namespace {

using namespace std::chrono_literals;

boost::json::value document(std::string_view text) {
  auto d = platform::parse_json(text);
  REQUIRE(d.has_value());
  return *d;
}

TEST_CASE("web config: an absent or empty section gives every default", "[web]") {
  const web::WebConfig defaults;
  for (const char* text : {R"({})", R"({"web": {}})", R"({"dstm_server": {"x": 1}, "web": {}})"}) {
    INFO(text);
    const auto c = web::parse_web_section(document(text));
    REQUIRE(c.has_value());
    CHECK(*c == defaults);
  }
  CHECK(defaults.listen == std::vector<std::string>{"127.0.0.1"});
  CHECK(defaults.https_port == 443);
  CHECK(defaults.http_port == 80);
  CHECK(defaults.state_dir == "/var/lib/appl/web");
  CHECK(defaults.session_idle_timeout == 900s);
  CHECK(defaults.confirm_timeout == 90s);
  CHECK(defaults.hsts == false);
}

TEST_CASE("web config: a full section is read to exact values", "[web]") {
  const auto c = web::parse_web_section(document(R"({"web": {
    "listen": ["192.0.2.10", "2001:DB8:0::10"], "https_port": 8443, "http_port": 0,
    "state_dir": "/srv/web", "session_idle_timeout": 600, "confirm_timeout": 30,
    "login_attempts_per_minute": 10, "max_connections": 100, "max_connections_per_source": 100,
    "hsts": true}})"));
  REQUIRE(c.has_value());
  CHECK(c->listen == std::vector<std::string>{"192.0.2.10", "2001:db8::10"});  // canonical text
  CHECK(c->https_port == 8443);
  CHECK(c->http_port == 0);
  CHECK(c->state_dir == "/srv/web");
  CHECK(c->session_idle_timeout == 600s);
  CHECK(c->confirm_timeout == 30s);
  CHECK(c->login_attempts_per_minute == 10);
  CHECK(c->max_connections == 100);
  CHECK(c->max_connections_per_source == 100);
  CHECK(c->hsts);
}

struct ErrorRow {
  std::string web;  // the section's text
  std::vector<platform::ConfigError> errors;
};

TEST_CASE("web config: every error is reported with its pointer", "[web]") {
  const std::vector<ErrorRow> rows{
      {R"([])", {{"/web", "expected an object, got an array"}}},
      {R"({"lisen": []})", {{"/web/lisen", "unknown key (did you mean 'listen'?)"}}},
      {R"({"listen": "127.0.0.1"})",
       {{"/web/listen", "expected an array of strings, got a string"}}},
      {R"({"listen": []})", {{"/web/listen", "at least one address is required"}}},
      {R"({"listen": ["127.0.0.1", "localhost", 7]})",
       {{"/web/listen/2", "expected a string, got a number"}}},
      {R"({"listen": ["127.0.0.1", "localhost"]})",
       {{"/web/listen/1", "'localhost' is not an IPv4 or IPv6 address"}}},
      {R"({"listen": ["fe80::1%eth0"]})",
       {{"/web/listen/0", "'fe80::1%eth0' is not an IPv4 or IPv6 address"}}},
      {R"({"listen": ["2001:db8::1", "192.0.2.1", "2001:db8:0:0::1"]})",
       {{"/web/listen/2", "2001:db8::1 is listed more than once"}}},
      {R"({"https_port": 0})", {{"/web/https_port", "must be between 1 and 65535, got 0"}}},
      {R"({"https_port": 65536})", {{"/web/https_port", "must be between 1 and 65535, got 65536"}}},
      {R"({"https_port": "443"})", {{"/web/https_port", "expected an integer, got a string"}}},
      {R"({"http_port": -1})", {{"/web/http_port", "must be between 0 and 65535, got -1"}}},
      {R"({"https_port": 8443, "http_port": 8443})",
       {{"/web/http_port", "8443 is also the HTTPS port; 0 turns HTTP off"}}},
      {R"({"https_port": 80})",
       {{"/web/https_port",
         "80 is also the HTTP port (http_port defaults to 80); set http_port to another port, or "
         "to 0 to turn HTTP off"}}},
      {R"({"https_port": 80, "http_port": 0})", {}},
      {R"({"https_port": 0, "http_port": 0})",
       {{"/web/https_port", "must be between 1 and 65535, got 0"}}},
      {R"({"state_dir": "var/lib/web"})", {{"/web/state_dir", "must be an absolute path"}}},
      {R"({"state_dir": ""})", {{"/web/state_dir", "must be an absolute path"}}},
      {R"({"state_dir": "/a\u0000b"})", {{"/web/state_dir", "must not contain NUL"}}},
      {R"({"session_idle_timeout": 59})",
       {{"/web/session_idle_timeout", "must be between 60 and 86400, got 59"}}},
      {R"({"session_idle_timeout": 86401})",
       {{"/web/session_idle_timeout", "must be between 60 and 86400, got 86401"}}},
      {R"({"confirm_timeout": 4})",
       {{"/web/confirm_timeout", "must be between 5 and 3600, got 4"}}},
      {R"({"confirm_timeout": 3601})",
       {{"/web/confirm_timeout", "must be between 5 and 3600, got 3601"}}},
      {R"({"confirm_timeout": 90.0})",
       {{"/web/confirm_timeout", "expected an integer, got a number with a fraction or exponent"}}},
      {R"({"login_attempts_per_minute": 0})",
       {{"/web/login_attempts_per_minute", "must be between 1 and 1000, got 0"}}},
      {R"({"login_attempts_per_minute": 1001})",
       {{"/web/login_attempts_per_minute", "must be between 1 and 1000, got 1001"}}},
      {R"({"max_connections": 0})",
       {{"/web/max_connections", "must be between 1 and 65536, got 0"}}},
      {R"({"max_connections": 65537})",
       {{"/web/max_connections", "must be between 1 and 65536, got 65537"}}},
      {R"({"max_connections_per_source": 0})",
       {{"/web/max_connections_per_source", "must be between 1 and 65536, got 0"}}},
      {R"({"max_connections": 10, "max_connections_per_source": 11})",
       {{"/web/max_connections_per_source",
         "max_connections_per_source (11) is more than max_connections (10)"}}},
      {R"({"max_connections": 8})",
       {{"/web/max_connections",
         "max_connections_per_source (32) is more than max_connections (8)"}}},
      {R"({"max_connections": 8, "max_connections_per_source": 8})", {}},
      {R"({"hsts": "yes"})", {{"/web/hsts", "expected a boolean, got a string"}}},
      {R"({"hsts": null})", {{"/web/hsts", "expected a boolean, got null"}}},
      // Several at once, in reading order, unknown keys last.
      {R"({"typo": 1, "listen": ["x"], "https_port": 0, "confirm_timeout": 1})",
       {{"/web/listen/0", "'x' is not an IPv4 or IPv6 address"},
        {"/web/https_port", "must be between 1 and 65535, got 0"},
        {"/web/confirm_timeout", "must be between 5 and 3600, got 1"},
        {"/web/typo", "unknown key"}}},
  };
  for (const auto& row : rows) {
    INFO(row.web);
    const auto c = web::parse_web_section(document(R"({"web": )" + row.web + "}"));
    if (row.errors.empty()) {
      CHECK(c.has_value());
      continue;
    }
    REQUIRE_FALSE(c.has_value());
    const auto errors = c.error();
    CHECK(errors == row.errors);
  }
}

TEST_CASE("web config: the firmware tools are read and checked", "[web]") {
  const web::FirmwareConfig defaults;
  CHECK(defaults.tool == "/usr/sbin/fw-upgrade");
  CHECK(defaults.disk.empty());  // fw-upgrade finds the appliance disk itself
  CHECK(defaults.reboot_command == std::vector<std::string>{"/sbin/reboot"});
  const auto c = web::parse_web_section(document(R"({"web": {"firmware": {
    "tool": "/opt/fw-upgrade", "disk": "/dev/sda", "reboot_command": ["/sbin/shutdown", "-r", "now"],
    "max_upload_bytes": 1048576}}})"));
  REQUIRE(c.has_value());
  CHECK(c->firmware.tool == "/opt/fw-upgrade");
  CHECK(c->firmware.disk == "/dev/sda");
  CHECK(c->firmware.reboot_command == std::vector<std::string>{"/sbin/shutdown", "-r", "now"});
  CHECK(c->firmware.max_upload_bytes == 1048576);

  const auto bad = web::parse_web_section(document(R"({"web": {"firmware": {
    "tool": "fw-upgrade", "disk": "", "reboot_command": [], "max_upload_bytes": 1000,
    "other": 1}}})"));
  REQUIRE_FALSE(bad.has_value());
  std::vector<std::string> paths;
  for (const auto& e : bad.error()) paths.push_back(e.path);
  std::sort(paths.begin(), paths.end());
  CHECK(paths == std::vector<std::string>{"/web/firmware/disk", "/web/firmware/max_upload_bytes",
                                          "/web/firmware/other", "/web/firmware/reboot_command",
                                          "/web/firmware/tool"});
}

TEST_CASE("web config: a document that is not an object is an error at the document", "[web]") {
  const auto c = web::parse_web_section(document("[1]"));
  REQUIRE_FALSE(c.has_value());
  const auto errors = c.error();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].path.empty());
}

TEST_CASE("web config: the embedded default document parses and has the default web section",
          "[web]") {
  const auto d = platform::parse_json(web::default_document());
  REQUIRE(d.has_value());
  const auto c = web::parse_web_section(*d);
  REQUIRE(c.has_value());
  CHECK(*c == web::WebConfig{});
  CHECK_FALSE(web::daemons_of(*d).empty());
}

TEST_CASE("daemons_of: the server and each TEP with their control sockets", "[web]") {
  const auto d = document(R"({
    "dstm_server": {"control_socket": "/run/x/server.sock"},
    "tep": [
      {"name": "tep-1"},
      {"name": "tep-2", "control_socket": "/run/x/t2.sock"},
      {"ipv6": "2001:db8::1"},
      "garbage",
      {"name": 7},
      {"name": "tep-3", "control_socket": 9}
    ]})");
  const auto daemons = web::daemons_of(d);
  REQUIRE(daemons.size() == 4);
  CHECK(daemons[0].kind == "dstm-server");
  CHECK(daemons[0].name == "dstm-server");
  CHECK(daemons[0].section == "/dstm_server");
  CHECK(daemons[0].socket == "/run/x/server.sock");
  CHECK(daemons[1].kind == "tep");
  CHECK(daemons[1].name == "tep-1");
  CHECK(daemons[1].section == "/tep/0");
  CHECK(daemons[1].socket == "/run/appl/tep-1.sock");
  CHECK(daemons[2].name == "tep-2");
  CHECK(daemons[2].section == "/tep/1");
  CHECK(daemons[2].socket == "/run/x/t2.sock");
  CHECK(daemons[3].name == "tep-3");
  CHECK(daemons[3].section == "/tep/5");
  CHECK(daemons[3].socket == "/run/appl/tep-3.sock");  // unreadable socket: the default
}

TEST_CASE("daemons_of: defaults and documents without daemons", "[web]") {
  const auto server_only = web::daemons_of(document(R"({"dstm_server": {}})"));
  REQUIRE(server_only.size() == 1);
  CHECK(server_only[0].socket == "/run/appl/dstm-server.sock");
  CHECK(web::daemons_of(document(R"({"web": {}})")).empty());
  CHECK(web::daemons_of(document(R"({"dstm_server": [], "tep": {}})")).empty());
  CHECK(web::daemons_of(document("42")).empty());
}

}  // namespace
