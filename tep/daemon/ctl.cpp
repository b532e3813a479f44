// tep-ctl: a TEP daemon's command line, a client of its control socket (docs/tep.md).
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/core.h>
#include <boost/json.hpp>

#include "platform/control.hpp"

namespace {

namespace json = boost::json;

constexpr std::string_view kUsage = R"(usage: tep-ctl [--socket PATH] COMMAND
commands:
  status              server session, bindings, queue, counters (JSON)
  bindings [TEXT]     the binding table, optionally only entries containing TEXT (JSON)
  flush               drop every binding (they are asked for again on the next packet)
  unbind IPV4         drop one binding
  metrics             Prometheus text
The socket defaults to /run/appl/tep-1.sock.
)";

[[noreturn]] void fail(std::string_view message, int code = 1) {
  fmt::print(stderr, "tep-ctl: {}\n", message);
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = "/run/appl/tep-1.sock";
  int i = 1;
  for (; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--socket" && i + 1 < argc) {
      socket = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      break;
    }
  }
  if (i >= argc) fail(fmt::format("a command is needed\n{}", kUsage), 64);
  const std::string_view command = argv[i++];
  const auto rest = [&]() -> std::string_view { return i < argc ? argv[i] : ""; };

  platform::Method method = platform::Method::Get;
  std::string target;
  if (command == "status") {
    target = "/status";
  } else if (command == "bindings") {
    target = "/bindings";
    if (!rest().empty()) target += fmt::format("?search={}", rest());
  } else if (command == "flush") {
    method = platform::Method::Post;
    target = "/bindings/flush";
  } else if (command == "unbind") {
    if (rest().empty()) fail("unbind needs an IPv4 address", 64);
    method = platform::Method::Delete;
    target = fmt::format("/bindings/{}", rest());
  } else if (command == "metrics") {
    target = "/metrics";
  } else {
    fail(fmt::format("unknown command '{}'\n{}", command, kUsage), 64);
  }

  const platform::ControlClient client{socket};
  auto response = client.request(method, target);
  if (!response) fail(fmt::format("{}: {}", socket, response.error().message()));
  if (response->text)
    fmt::print("{}", *response->text);
  else
    fmt::print("{}\n", json::serialize(response->body));
  return response->status >= 200 && response->status < 300 ? 0 : 1;
}
