#include "platform/cli.hpp"

#include <cstdio>
#include <cstdlib>

#include <fmt/core.h>

#include "platform/fd.hpp"
#include "platform/log.hpp"

namespace platform {

DaemonArguments parse_daemon_arguments(int argc, char** argv, std::string_view program,
                                       std::string_view version, std::string_view usage,
                                       const ExtraOption& extra) {
  const auto usage_error = [&](std::string_view message) {
    fmt::print(stderr, "{}: {}\n{}", program, message, usage);
    std::exit(64);  // EX_USAGE
  };
  DaemonArguments out;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const std::function<std::string_view()> value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--config") {
      out.config_file = std::string{value()};
    } else if (arg == "--check-config") {
      out.check_only = true;
    } else if (arg == "--ready-fd") {
      out.ready_fd = parse_descriptor(value());
      if (!out.ready_fd) usage_error("--ready-fd needs a file descriptor number");
    } else if (arg == "--log-level") {
      const auto level = parse_log_level(value());
      if (!level) usage_error("--log-level: expected debug, info, warn or error");
      set_default_log_level(*level);
    } else if (arg == "--version") {
      fmt::print("{} {}\n", program, version);
      std::exit(0);
    } else if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      std::exit(0);
    } else if (!extra || !extra(arg, value)) {
      usage_error(fmt::format("unknown argument '{}'", arg));
    }
  }
  return out;
}

}  // namespace platform
