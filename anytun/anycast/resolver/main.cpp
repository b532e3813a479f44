// anycast-resolver: resolves anycast destinations to members' unicast addresses for the preload
// library and dstm-client (docs/anycast.md).

#include <csignal>
#include <cstdio>
#include <memory>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "anycast_resolver/config.hpp"
#include "anycast_resolver/service.hpp"
#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/signals.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
// Recent log lines kept for GET /logs on the control socket.
constexpr std::size_t kLogLines = 2000;

constexpr std::string_view kUsage = R"(usage: anycast-resolver --config FILE [options]
  --config FILE     the appliance config document (its "anycast"/"resolver" section)
  --check-config    validate the config, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

}  // namespace

int main(int argc, char** argv) {
  const auto args =
      platform::parse_daemon_arguments(argc, argv, "anycast-resolver", kVersion, kUsage);
  platform::install_log_ring(kLogLines);
  if (!args.config_file) {
    fmt::print(stderr, "anycast-resolver: --config is required\n{}", kUsage);
    return 64;  // EX_USAGE
  }
  const auto& file = *args.config_file;
  auto text = platform::read_config_file(file);
  if (!text) platform::exit_with_config_errors(file, text.error());
  auto config = anycast_resolver::parse_config_document(*text);
  if (!config) platform::exit_with_config_errors(file, config.error());
  if (args.check_only) {
    fmt::print("{}: valid ({} prefixes{}, policy {}, query socket {})\n", file,
               config->prefixes.size(), config->probe_all ? ", probe_all" : "",
               anycast_resolver::to_string(config->policy), config->socket);
    return 0;
  }

  platform::raise_descriptor_limit();
  boost::asio::io_context io{1};
  std::unique_ptr<anycast_resolver::Service> service;
  platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] {
    if (service) service->stop();
  });
  auto started = anycast_resolver::Service::start(
      io, std::move(*config),
      anycast_resolver::ServiceOptions{.version = std::string{kVersion},
                                       .ready_fd = args.ready_fd});
  if (!started) {
    fmt::print(stderr, "anycast-resolver: {}\n", started.error());
    return 1;
  }
  service = std::move(*started);
  io.run();
  return 0;
}
