// The TEP daemon: the 4over6 engine between a TUN device (the IPv4 side, with the pool routed
// into it) and raw IPv6 tunnel sockets, the query session to the DSTM server (pipelined queries,
// heartbeats, revalidation after a reconnect) and the control socket, on one io_context.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/system/result.hpp>

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
};

class Daemon {
 public:
  // Creates the TUN device (its MTU, routes for the pool), opens the tunnel socket on
  // config.ipv6, serves the control socket, and starts the server session. SIGINT/SIGTERM stop
  // it. The error says what failed ("TUN device tep0: Operation not permitted").
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
