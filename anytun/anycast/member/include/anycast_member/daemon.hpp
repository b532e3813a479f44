// The anycast-member daemon: the member Service and its control socket (GET /status, /metrics,
// /logs) on one io_context.
#pragma once

#include <memory>
#include <string>

#include <boost/system/result.hpp>

#include "anycast_member/config.hpp"

namespace boost::asio {
class io_context;
}

namespace anycast_member {

struct DaemonOptions {
  std::string version;  // "version" in /status
};

class Daemon {
 public:
  // Starts the Service (see Service::start) and serves the control socket at
  // config.control_socket (creating its directory). Ready once this returns. The error says
  // what failed.
  static boost::system::result<std::unique_ptr<Daemon>, std::string> start(
      boost::asio::io_context& io, const Config& config, DaemonOptions options);
  ~Daemon();  // stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Stops the service and the control socket (removing its file); io.run() returns once the
  // rest of the process is done. Idempotent.
  void stop() noexcept;

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anycast_member
