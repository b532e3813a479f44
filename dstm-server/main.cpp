// dstm-server: the DSTM server daemon (docs/dstm-server.md).

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "dstm_server/config.hpp"
#include "dstm_server/daemon.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"

namespace {

constexpr std::string_view kVersion = "0.1.0";

constexpr std::string_view kUsage = R"(usage: dstm-server [options]
  --config FILE     the appliance config document (default: the embedded default)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

[[noreturn]] void usage_error(std::string_view message) {
  fmt::print(stderr, "dstm-server: {}\n{}", message, kUsage);
  std::exit(64);  // EX_USAGE
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> config_file;
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
      fmt::print("dstm-server {}\n", kVersion);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    } else {
      usage_error(fmt::format("unknown argument '{}'", arg));
    }
  }

  const std::string source = config_file.value_or("(embedded default config)");
  std::string text;
  if (config_file) {
    auto read = platform::read_config_file(*config_file);
    if (!read) platform::exit_with_config_errors(source, read.error());
    text = std::move(*read);
  } else {
    text = dstm_server::default_config_document();
  }
  auto config = dstm_server::parse_config_document(text);
  if (!config) platform::exit_with_config_errors(source, config.error());

  if (check_only) {
    fmt::print("{}: valid ({} pool prefixes, {} TEPs, {} users)\n", source,
               config->pool.prefixes.size(), config->teps.size(), config->auth.users.size());
    return 0;
  }

  platform::raise_descriptor_limit();
  boost::asio::io_context io{1};
  auto daemon = dstm_server::Daemon::start(
      io, std::move(*config),
      dstm_server::DaemonOptions{.version = std::string{kVersion}, .ready_fd = ready_fd});
  if (!daemon) {
    platform::Logger{"dstm-server"}.error("cannot start: {}", daemon.error().message());
    return 1;
  }
  io.run();
  return 0;
}
