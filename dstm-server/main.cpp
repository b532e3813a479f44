// dstm-server: the DSTM server daemon (docs/dstm-server.md).

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "dstm_server/config.hpp"
#include "dstm_server/daemon.hpp"
#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/restart.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
// Recent log lines kept for GET /logs on the control socket.
constexpr std::size_t kLogLines = 2000;

constexpr std::string_view kUsage = R"(usage: dstm-server [options]
  --config FILE     the appliance config document (default: the embedded default); POST /reload
                    on the control socket or SIGHUP reads it again
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  const auto args = platform::parse_daemon_arguments(argc, argv, "dstm-server", kVersion, kUsage);
  platform::install_log_ring(kLogLines);
  const auto& config_file = args.config_file;

  const std::string source = config_file.value_or("(embedded default config)");
  std::string text;
  if (config_file) {
    auto read = platform::read_config_file(*config_file);
    if (!read) platform::exit_with_config_errors(source, read.error());
    text = std::move(*read);
  } else {
    text = dstm_server::default_config_document();
  }
  auto loaded = dstm_server::load_config(text);
  if (!loaded) platform::exit_with_config_errors(source, loaded.error());

  if (args.check_only) {
    const auto& config = loaded->config;
    fmt::print("{}: valid ({} pool prefixes, {} TEPs, {} users)\n", source,
               config.pool.prefixes.size(), config.teps.size(), config.auth.users.size());
    return 0;
  }

  platform::raise_descriptor_limit();
  // POST /reload and SIGHUP restart the daemon in this process with the file's new content.
  platform::Restarter<dstm_server::Config> restarter{"dstm-server", config_file,
                                                     dstm_server::load_config};
  auto ready_fd = args.ready_fd;  // the first generation's only
  using Started = boost::system::result<std::unique_ptr<dstm_server::Daemon>, std::string>;
  return restarter.run(
      std::move(*loaded), [&](boost::asio::io_context& io, dstm_server::Config config) {
        auto daemon = dstm_server::Daemon::start(
            io, std::move(config),
            dstm_server::DaemonOptions{.version = std::string{kVersion},
                                       .ready_fd = std::exchange(ready_fd, std::nullopt),
                                       .restarter = &restarter});
        if (!daemon) return Started{daemon.error().message()};
        return Started{std::move(*daemon)};
      });
}
