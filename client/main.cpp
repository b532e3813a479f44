// dstm-client: the DSTM client (client/README.md). Parses the command line, reads the password
// file, and runs dstm_client::Client on one io_context.

#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "dstm_client/client.hpp"
#include "dstm_client/options.hpp"
#include "platform/config.hpp"
#include "platform/log.hpp"

namespace {
constexpr std::string_view kVersion = APPL_VERSION;
}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  auto cli = dstm_client::parse_cli(args);
  if (!cli) {
    for (const auto& e : cli.error()) fmt::print(stderr, "dstm-client: {}\n", e);
    fmt::print(stderr, "{}", dstm_client::usage());
    return dstm_client::kExitUsage;
  }
  if (cli->action == dstm_client::CliAction::Help) {
    fmt::print("{}", dstm_client::usage());
    return 0;
  }
  if (cli->action == dstm_client::CliAction::Version) {
    fmt::print("dstm-client {}\n", kVersion);
    return 0;
  }
  auto& options = cli->options;
  platform::set_default_log_level(options.log_level);

  std::string password;
  if (options.password_file) {
    auto read = dstm_client::read_password_file(*options.password_file);
    if (!read) {
      fmt::print(stderr, "dstm-client: --password-file: {}\n", read.error().message);
      return platform::kExitConfig;
    }
    password = std::move(*read);
  }

  // State lines go to stdout; a reader that went away must not kill the client mid-release.
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io{1};
  auto client = dstm_client::Client::start(io, std::move(options), std::move(password));
  if (!client) {
    platform::Logger{"dstm-client"}.error("cannot start: {}", client.error());
    return 1;
  }
  io.run();
  return (*client)->exit_code();
}
