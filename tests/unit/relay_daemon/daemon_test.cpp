// satp-relay's daemon and a relay hosted by a TEP (/anytun/relay/hosted_by_tep): the daemon
// leaves that relay to the tep daemon and runs only the client, if there is one.
#include "relay_daemon/daemon.hpp"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "relay_daemon/service.hpp"
#include "satp/keys.hpp"

namespace {

// A fresh directory for the control socket, removed at the end.
struct TempDir {
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "relay-daemon-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

}  // namespace

TEST_CASE("satp-relay: a relay hosted by a TEP is left to the tep daemon", "[relay_daemon]") {
  boost::asio::io_context io;
  relay_daemon::Config config;
  config.relay = relay_daemon::RelayConfig{};
  config.relay->hosted_by_tep = "tep-1";

  const auto alone = relay_daemon::Daemon::start(io, config, {});
  REQUIRE_FALSE(alone);
  CHECK(alone.error() ==
        "nothing to run: /anytun/relay is hosted by TEP 'tep-1' and there is no /anytun/client");

  TempDir dir;
  relay_daemon::ClientConfig client;
  client.server = relay::Endpoint::v4(core::Ipv4Address{0x7f000001}, 4444);
  client.connection.mux = 1;
  client.connection.settings.role = satp::Role::Right;
  client.connection.key = satp::master_key_from_passphrase("p", client.connection.settings.kd_prf);
  client.connection.salt = satp::master_salt_from_passphrase("p");
  client.control_socket = (dir.path / "client.sock").string();
  config.client = client;
  auto both = relay_daemon::Daemon::start(io, config, {});
  REQUIRE(both);
  CHECK((*both)->relay() == nullptr);
  REQUIRE((*both)->client() != nullptr);
  (*both)->stop();
}
