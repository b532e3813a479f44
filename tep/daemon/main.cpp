// tep: the tunnel end point daemon (docs/tep.md).

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "tep_daemon/config.hpp"
#include "tep_daemon/daemon.hpp"

namespace {

constexpr std::string_view kVersion = "0.1.0";

constexpr std::string_view kUsage = R"(usage: tep --config FILE [options]
  --config FILE     the appliance config document (its "tep" section)
  --name NAME       which TEP of the section to run (required when it lists several)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

[[noreturn]] void usage_error(std::string_view message) {
  fmt::print(stderr, "tep: {}\n{}", message, kUsage);
  std::exit(64);  // EX_USAGE
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> config_file;
  std::string name;
  bool check_only = false;
  std::optional<int> ready_fd;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--config") {
      config_file = std::string{value()};
    } else if (arg == "--name") {
      name = std::string{value()};
    } else if (arg == "--check-config") {
      check_only = true;
    } else if (arg == "--ready-fd") {
      ready_fd = platform::parse_descriptor(value());
      if (!ready_fd) usage_error("--ready-fd needs a file descriptor number");
    } else if (arg == "--log-level") {
      const auto level = platform::parse_log_level(value());
      if (!level) usage_error("--log-level: expected debug, info, warn or error");
      platform::set_default_log_level(*level);
    } else if (arg == "--version") {
      fmt::print("tep {}\n", kVersion);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      usage_error(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (!config_file) usage_error("--config is required");

  auto text = platform::read_config_file(*config_file);
  if (!text) platform::exit_with_config_errors(*config_file, text.error());
  auto teps = tep_daemon::parse_config_document(*text);
  if (!teps) platform::exit_with_config_errors(*config_file, teps.error());
  std::string error;
  const auto* config = tep_daemon::select_tep(*teps, name, error);
  if (!config) {
    fmt::print(stderr, "{}: {}\n", *config_file, error);
    return platform::kExitConfig;
  }
  if (check_only) {
    fmt::print("{}: valid ({} TEPs; {}: {} pool prefixes, server {})\n", *config_file, teps->size(),
               config->name, config->pool.size(), config->server.address);
    return 0;
  }

  boost::asio::io_context io{1};
  auto daemon = tep_daemon::Daemon::start(
      io, *config,
      tep_daemon::DaemonOptions{.version = std::string{kVersion}, .ready_fd = ready_fd});
  if (!daemon) {
    platform::Logger{"tep"}.error("cannot start {}: {}", config->name, daemon.error());
    return 1;
  }
  io.run();
  return 0;
}
