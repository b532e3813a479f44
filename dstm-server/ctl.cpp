// dstm-ctl: the dstm-server's command line, a client of its control socket
// (docs/dstm-server.md, "dstm-ctl").
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>
#include <boost/json.hpp>

#include "platform/control.hpp"
#include "tsp/sasl.hpp"

namespace {

namespace json = boost::json;

constexpr std::string_view kUsage = R"(usage: dstm-ctl [--socket PATH] [--json] COMMAND
commands:
  status                      pool, leases, sessions, TEPs
  leases [--ipv4 A|P] [--ipv6 A|P] [--user U] [--tep T] [--state active|expired]
         [--q TEXT] [--sort ipv4|expires_at] [--order asc|desc] [--offset N] [--limit N]
  lease IPV4                  one lease
  release IPV4                end a lease now (address back to the pool, mapping withdrawn)
  extend IPV4 SECONDS         extend a lease
  teps                        the TEP table
  metrics                     Prometheus text
  verifier USER [--realm R]   read a password on stdin, print the DIGEST-MD5 verifier for the
                              config ("digest_md5"); needs no daemon
The socket defaults to /run/appl/dstm-server.sock.
)";

[[noreturn]] void fail(std::string_view message, int code = 1) {
  fmt::print(stderr, "dstm-ctl: {}\n", message);
  std::exit(code);
}

std::string percent_encode(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string text(const json::value& v) {
  if (v.is_string()) return std::string{v.as_string()};
  if (v.is_null()) return "-";
  return json::serialize(v);
}

void print_leases(const json::object& body) {
  fmt::print("{:<16} {:<40} {:<16} {:<12} {:<8} {:>10}\n", "IPV4", "IPV6", "USER", "TEP", "STATE",
             "REMAINING");
  for (const auto& l : body.at("leases").as_array()) {
    const auto& o = l.as_object();
    const std::string user = text(o.at("user"));
    fmt::print("{:<16} {:<40} {:<16} {:<12} {:<8} {:>10}\n", text(o.at("ipv4")), text(o.at("ipv6")),
               user.empty() ? "(anonymous)" : user, text(o.at("tep")), text(o.at("state")),
               text(o.at("remaining")));
  }
  fmt::print("{} of {} (offset {})\n", body.at("leases").as_array().size(), text(body.at("total")),
             text(body.at("offset")));
}

void print_teps(const json::array& teps) {
  fmt::print("{:<12} {:<28} {:<16} {:>6} {:<6} {:>8} {:>8}\n", "NAME", "IPV6", "IPV4", "WEIGHT",
             "ALIVE", "SESSIONS", "LEASES");
  for (const auto& t : teps) {
    const auto& o = t.as_object();
    fmt::print("{:<12} {:<28} {:<16} {:>6} {:<6} {:>8} {:>8}\n", text(o.at("name")),
               text(o.at("ipv6")), text(o.at("ipv4")), text(o.at("weight")),
               o.at("alive").as_bool() ? "yes" : "no", text(o.at("sessions")),
               text(o.at("leases")));
  }
}

void print_status(const json::object& s) {
  const auto& pool = s.at("pool").as_object();
  const auto& leases = s.at("leases").as_object();
  const auto& sessions = s.at("sessions").as_object();
  fmt::print("dstm-server {} up {} s\n", text(s.at("version")), text(s.at("uptime")));
  fmt::print("pool     {} used, {} free, {} total\n", text(pool.at("used")), text(pool.at("free")),
             text(pool.at("total")));
  fmt::print("leases   {} active, {} expired (held)\n", text(leases.at("active")),
             text(leases.at("expired")));
  fmt::print("sessions {} tcp, {} udp\n", text(sessions.at("tcp")), text(sessions.at("udp")));
  const auto& teps = s.at("teps").as_object();
  fmt::print("teps     {} of {} alive\n", text(teps.at("alive")), text(teps.at("configured")));
}

int verifier(const std::vector<std::string_view>& args) {
  if (args.empty()) fail("verifier needs a user name", 64);
  std::string realm = "dstm";
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--realm" && i + 1 < args.size()) {
      realm = args[++i];
    } else {
      fail(fmt::format("verifier: unexpected '{}'", args[i]), 64);
    }
  }
  std::string password;
  std::getline(std::cin, password);
  if (password.empty()) fail("verifier: no password on stdin", 64);
  fmt::print("{}\n", tsp::to_hex(tsp::digest_verifier(args[0], realm, password)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = "/run/appl/dstm-server.sock";
  bool raw_json = false;
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--socket" && i + 1 < argc) {
      socket = argv[++i];
    } else if (a == "--json") {
      raw_json = true;
    } else if (a == "--help" || a == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) fail(fmt::format("no command\n{}", kUsage), 64);
  const std::string_view command = args.front();
  const std::vector<std::string_view> rest(args.begin() + 1, args.end());
  if (command == "verifier") return verifier(rest);

  platform::Method method = platform::Method::Get;
  std::string target;
  json::value body = nullptr;
  if (command == "status" && rest.empty()) {
    target = "/status";
  } else if (command == "teps" && rest.empty()) {
    target = "/teps";
  } else if (command == "metrics" && rest.empty()) {
    target = "/metrics";
  } else if (command == "lease" && rest.size() == 1) {
    target = "/leases/" + percent_encode(rest[0]);
  } else if (command == "release" && rest.size() == 1) {
    method = platform::Method::Post;
    target = "/leases/" + percent_encode(rest[0]) + "/release";
    body = json::object{};
  } else if (command == "extend" && rest.size() == 2) {
    method = platform::Method::Post;
    target = "/leases/" + percent_encode(rest[0]) + "/extend";
    try {
      body = json::object{{"seconds", std::stoll(std::string{rest[1]})}};
    } catch (const std::exception&) {
      fail("extend: SECONDS must be an integer", 64);
    }
  } else if (command == "leases") {
    target = "/leases";
    char sep = '?';
    for (std::size_t i = 0; i < rest.size(); ++i) {
      static constexpr std::string_view kKeys[] = {"ipv4", "ipv6", "user",  "tep",    "state",
                                                   "q",    "sort", "order", "offset", "limit"};
      const auto a = rest[i];
      bool known = false;
      for (const auto k : kKeys) {
        if (a.size() == k.size() + 2 && a.substr(2) == k && a.starts_with("--")) known = true;
      }
      if (!known || i + 1 >= rest.size()) fail(fmt::format("leases: bad option '{}'", a), 64);
      target += fmt::format("{}{}={}", sep, a.substr(2), percent_encode(rest[++i]));
      sep = '&';
    }
  } else {
    fail(fmt::format("unknown command or wrong arguments: '{}'\n{}", command, kUsage), 64);
  }

  const platform::ControlClient client{socket};
  auto response = client.request(method, target, body);
  if (!response)
    fail(fmt::format("{}: {} (is dstm-server running?)", socket, response.error().message()));
  if (response->status >= 300)
    fail(fmt::format("{} {}", response->status, response->error_message()));
  if (response->text) {
    fmt::print("{}", *response->text);
    return 0;
  }
  if (raw_json) {
    fmt::print("{}\n", json::serialize(response->body));
    return 0;
  }
  const auto& o = response->body.as_object();
  if (command == "status") {
    print_status(o);
  } else if (command == "leases") {
    print_leases(o);
  } else if (command == "teps") {
    print_teps(o.at("teps").as_array());
  } else {
    fmt::print("{}\n", json::serialize(response->body));
  }
  return 0;
}
