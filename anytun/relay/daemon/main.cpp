// satp-relay: the anycast tunneling relay and its client, wire-compatible with anytun 0.3.8
// (docs/anytun.md). Named apart from Debian's anytun, which may run on the same host.

#include <csignal>
#include <cstdio>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/signals.hpp"
#include "relay_daemon/config.hpp"
#include "relay_daemon/daemon.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
// Recent log lines kept for GET /logs on the control sockets.
constexpr std::size_t kLogLines = 2000;

constexpr std::string_view kUsage = R"(usage: satp-relay --config FILE [options]
  --config FILE     the appliance config document (its "anytun" section: relay and/or client)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  const auto args = platform::parse_daemon_arguments(argc, argv, "satp-relay", kVersion, kUsage);
  platform::install_log_ring(kLogLines);
  if (!args.config_file) {
    fmt::print(stderr, "satp-relay: --config is required\n{}", kUsage);
    return 64;  // EX_USAGE
  }
  auto text = platform::read_config_file(*args.config_file);
  if (!text) platform::exit_with_config_errors(*args.config_file, text.error());
  auto config = relay_daemon::parse_config_document(*text);
  if (!config) platform::exit_with_config_errors(*args.config_file, config.error());
  if (args.check_only) {
    fmt::print("{}: valid (relay: {}, client: {})\n", *args.config_file,
               config->relay ? fmt::format("{} connections", config->relay->connections.size())
                             : std::string{"none"},
               config->client ? config->client->server.to_string() : std::string{"none"});
    return 0;
  }

  boost::asio::io_context io{1};
  auto daemon = relay_daemon::Daemon::start(
      io, *config, relay_daemon::DaemonOptions{.version = std::string{kVersion}});
  if (!daemon) {
    fmt::print(stderr, "satp-relay: {}\n", daemon.error());
    return 1;
  }
  platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] { (*daemon)->stop(); });
  if (args.ready_fd) platform::notify_ready(*args.ready_fd);
  io.run();
  return 0;
}
