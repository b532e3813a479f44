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
#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;

constexpr std::string_view kUsage = R"(usage: dstm-server [options]
  --config FILE     the appliance config document (default: the embedded default)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  const auto args = platform::parse_daemon_arguments(argc, argv, "dstm-server", kVersion, kUsage);
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
  auto config = dstm_server::parse_config_document(text);
  if (!config) platform::exit_with_config_errors(source, config.error());

  if (args.check_only) {
    fmt::print("{}: valid ({} pool prefixes, {} TEPs, {} users)\n", source,
               config->pool.prefixes.size(), config->teps.size(), config->auth.users.size());
    return 0;
  }

  platform::raise_descriptor_limit();
  boost::asio::io_context io{1};
  auto daemon = dstm_server::Daemon::start(
      io, std::move(*config),
      dstm_server::DaemonOptions{.version = std::string{kVersion}, .ready_fd = args.ready_fd});
  if (!daemon) {
    platform::Logger{"dstm-server"}.error("cannot start: {}", daemon.error().message());
    return 1;
  }
  io.run();
  return 0;
}
