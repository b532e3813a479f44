// The satp-relay daemon: the relay service and/or the client service of the /anytun section,
// each with its control socket (GET /status, /clients, /clients/{mux}, /metrics, /logs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/system/result.hpp>

#include "relay/endpoint.hpp"
#include "relay_daemon/config.hpp"

namespace boost::asio {
class io_context;
}

namespace relay_daemon {

class Service;
}  // namespace relay_daemon
namespace platform {
class Counters;
}  // namespace platform
namespace relay_daemon {

struct DaemonOptions {
  std::string version;  // "version" in /status
};

class Daemon {
 public:
  // Starts what the config holds: the relay (unless hosted_by_tep: that TEP's daemon runs it)
  // and the client. Ready once this returns; the error says what failed (also when nothing is
  // left to run).
  static boost::system::result<std::unique_ptr<Daemon>, std::string> start(
      boost::asio::io_context& io, const Config& config, DaemonOptions options);
  ~Daemon();  // stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Stops the services and control sockets (removing their files). Idempotent.
  void stop() noexcept;

  // The running services (for tests: their bound endpoints).
  Service* relay() noexcept;
  Service* client() noexcept;

 private:
  struct Impl;
  explicit Daemon(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Serves `service` on a control socket at `path` (creating its directory): the routes of
// Service::add_routes plus GET /status with `version` and the pid. Used by the daemon and by the
// tep daemon that hosts a relay.
class ServiceControl {
 public:
  static boost::system::result<std::unique_ptr<ServiceControl>, std::string> start(
      boost::asio::io_context& io, Service& service, const std::string& path, std::string version,
      platform::Counters& counters);
  ~ServiceControl();
  void stop() noexcept;

 private:
  struct Impl;
  explicit ServiceControl(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay_daemon
