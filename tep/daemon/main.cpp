// tep: the tunnel end point daemon (docs/tep.md).

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/restart.hpp"
#include "tep_daemon/config.hpp"
#include "tep_daemon/daemon.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
// Recent log lines kept for GET /logs on the control socket.
constexpr std::size_t kLogLines = 2000;

constexpr std::string_view kUsage = R"(usage: tep --config FILE [options]
  --config FILE     the appliance config document (its "tep" section); POST /reload on the
                    control socket or SIGHUP reads it again
  --name NAME       which TEP of the section to run (required when it lists several)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  const auto args = platform::parse_daemon_arguments(
      argc, argv, "tep", kVersion, kUsage,
      [&](std::string_view arg, const std::function<std::string_view()>& value) {
        if (arg != "--name") return false;
        name = std::string{value()};
        return true;
      });
  platform::install_log_ring(kLogLines);
  if (!args.config_file) {
    fmt::print(stderr, "tep: --config is required\n{}", kUsage);
    return 64;  // EX_USAGE
  }
  const auto& config_file = args.config_file;

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
  // POST /reload and SIGHUP restart the daemon in this process with the file's new content (the
  // same --name). Loading also reads the relay this TEP hosts, if any.
  const auto load = [name](std::string_view document) {
    return tep_daemon::load_config(document, name);
  };
  auto loaded = load(*text);
  if (!loaded) platform::exit_with_config_errors(*config_file, loaded.error());
  if (args.check_only) {
    fmt::print("{}: valid ({} TEPs; {}: {} pool prefixes, server {}{})\n", *config_file,
               teps->size(), config->name, config->pool.size(), config->server.address,
               loaded->config.relay ? ", hosts relay " + loaded->config.relay->name : "");
    return 0;
  }
  platform::Restarter<tep_daemon::Config> restarter{"tep", config_file, load};
  auto ready_fd = args.ready_fd;  // the first generation's only
  return restarter.run(
      std::move(*loaded), [&](boost::asio::io_context& io, tep_daemon::Config tep) {
        const std::string tep_name = tep.name;
        auto daemon = tep_daemon::Daemon::start(
            io, std::move(tep),
            tep_daemon::DaemonOptions{.version = std::string{kVersion},
                                      .ready_fd = std::exchange(ready_fd, std::nullopt),
                                      .restarter = &restarter});
        if (!daemon) daemon = fmt::format("{}: {}", tep_name, daemon.error());
        return daemon;
      });
}
