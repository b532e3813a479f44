// The TEP daemon: the 4over6 engine between a TUN device (the IPv4 side, with the pool routed
// into it) and raw IPv6 tunnel sockets, the query session to the DSTM server (pipelined queries,
// heartbeats, revalidation after a reconnect) and the control socket, on one io_context.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/system/result.hpp>

#include "platform/restart.hpp"
#include "tep_daemon/config.hpp"

namespace boost::asio {
class io_context;
}

namespace tep_daemon {

struct DaemonOptions {
  std::string version;
  // Written "READY\n" once the TUN device, its routes, the tunnel socket and the control socket
  // are up (then closed). The server session is not awaited: it is retried in the background.
  std::optional<int> ready_fd;
  // main's restart loop: /status shows its generations, and POST /reload and SIGHUP ask it for a
  // reload (when it restarts, the daemon stops as for SIGTERM, its TUN device included, and the
  // next generation creates it again). Null: generation 0 and no reload (409). Must outlive the
  // daemon.
  platform::Restarter<Config>* restarter = nullptr;
};

// The document's text -> the TEP chosen by `name` (select_tep's rule: empty = the only one) and
// its element of the "tep" array (what a reload compares), or every error; a missing or
// ambiguous TEP is an error at "/tep". For main and the restart loop.
platform::ConfigResult<platform::LoadedConfig<Config>> load_config(std::string_view document,
                                                                   std::string_view name);

class Daemon {
 public:
  // Creates the TUN device (its MTU, routes for the pool), opens the tunnel socket on
  // config.ipv6, serves the control socket, and starts the server session. SIGINT/SIGTERM stop
  // it; SIGHUP reloads (see DaemonOptions::restarter). The error says what failed ("TUN device
  // tep0: Operation not permitted").
  static boost::system::result<std::unique_ptr<Daemon>, std::string> start(
      boost::asio::io_context& io, Config config, DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Closes the server session, the sockets and the TUN device (its routes go with it) and the
  // control socket. io.run() returns once this has run. Idempotent.
  void stop() noexcept;

 private:
  struct Impl;
  explicit Daemon(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tep_daemon
