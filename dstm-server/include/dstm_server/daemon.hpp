// The dstm-server daemon: the lease store, the service, the TSP listeners and the control socket
// on one io_context, started and stopped as one.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "dstm_server/config.hpp"
#include "dstm_server/error.hpp"
#include "platform/restart.hpp"
#include "tsp/server_session.hpp"

namespace boost::asio {
class io_context;
}

namespace dstm_server {

struct DaemonOptions {
  std::string version;
  // Written "READY\n" once every listener and the control socket are up (then closed).
  std::optional<int> ready_fd;
  // main's restart loop: /status shows its generations, and POST /reload and SIGHUP ask it for a
  // reload (when it restarts, the daemon stops as for SIGTERM). Null: generation 0 and no reload
  // (409). Must outlive the daemon.
  platform::Restarter<Config>* restarter = nullptr;
};

// The document's text -> the config and the document's "dstm_server" section (what a reload
// compares), with parse_config_document's errors. For main and the restart loop.
platform::ConfigResult<platform::LoadedConfig<Config>> load_config(std::string_view document);

class Daemon {
 public:
  // Opens the lease store (creating its directory), restores the leases, binds the TSP listeners
  // and the control socket, and starts the group-commit and reaping machinery. SIGINT/SIGTERM
  // stop it; SIGHUP reloads (see DaemonOptions::restarter). An error names what failed (the store
  // file, the listener, the socket path).
  static Result<std::unique_ptr<Daemon>> start(boost::asio::io_context& io, Config config,
                                               DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Closes the listeners and sessions, commits what is queued, removes the control socket.
  // io.run() returns once this has run. Idempotent.
  void stop() noexcept;

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// tsp::ServerConfig for the sessions: served types, SASL mechanisms and verifiers, deadlines.
std::shared_ptr<const tsp::ServerConfig> session_config(const Config& config);

}  // namespace dstm_server
