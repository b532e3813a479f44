// anycast-member: answers anycast probes and runs return routability for its anycast addresses
// (docs/anycast.md).

#include <csignal>
#include <cstdio>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "anycast_member/config.hpp"
#include "anycast_member/daemon.hpp"
#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/signals.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
// Recent log lines kept for GET /logs on the control socket.
constexpr std::size_t kLogLines = 2000;

constexpr std::string_view kUsage = R"(usage: anycast-member --config FILE [options]
  --config FILE     the appliance config document (its "anycast"/"member" section)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  const auto args =
      platform::parse_daemon_arguments(argc, argv, "anycast-member", kVersion, kUsage);
  platform::install_log_ring(kLogLines);
  if (!args.config_file) {
    fmt::print(stderr, "anycast-member: --config is required\n{}", kUsage);
    return 64;  // EX_USAGE
  }
  auto text = platform::read_config_file(*args.config_file);
  if (!text) platform::exit_with_config_errors(*args.config_file, text.error());
  auto config = anycast_member::parse_config_document(*text);
  if (!config) platform::exit_with_config_errors(*args.config_file, config.error());
  if (args.check_only) {
    fmt::print("{}: valid ({} anycast addresses, unicast {})\n", *args.config_file,
               config->anycast.size(), config->unicast.to_string());
    return 0;
  }

  boost::asio::io_context io{1};
  auto daemon = anycast_member::Daemon::start(
      io, *config, anycast_member::DaemonOptions{.version = std::string{kVersion}});
  if (!daemon) {
    fmt::print(stderr, "anycast-member: {}\n", daemon.error());
    return 1;
  }
  platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] { (*daemon)->stop(); });
  if (args.ready_fd) platform::notify_ready(*args.ready_fd);
  io.run();
  return 0;
}
