// The relay node and the relay client as services on an io_context: UDP sockets, the TUN device
// and the forwarding engine (relay/engine.hpp) between them, the relay's control messages, and
// the counters. The satp-relay executable and the tep daemon host them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "relay/endpoint.hpp"
#include "relay_daemon/config.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
class Router;
}  // namespace platform

namespace relay_daemon {

class Service {
 public:
  // A relay node (/anytun/relay): binds its UDP endpoints, opens and configures its TUN device
  // (when configured) and serves its connections. Ready once this returns; the error says what
  // failed. Metrics are registered in `counters`, which must outlive the service.
  static boost::system::result<std::unique_ptr<Service>, std::string> start_relay(
      boost::asio::io_context& io, const RelayConfig& config, platform::Counters& counters);
  // A client node (/anytun/client): one connection to its relay.
  static boost::system::result<std::unique_ptr<Service>, std::string> start_client(
      boost::asio::io_context& io, const ClientConfig& config, platform::Counters& counters);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Closes sockets and the device; pending handlers finish without effect. Idempotent.
  void stop() noexcept;

  // GET /clients, GET /clients/{mux} (docs/anytun.md, control socket), under `prefix` ("/relay"
  // on the control socket of a tep daemon that hosts the relay). /status is the host's: status().
  void add_routes(platform::Router& router, const std::string& prefix = "");
  boost::json::object status() const;
  boost::json::array clients() const;
  // The bound UDP endpoints (a configured port 0 shows the port the kernel chose).
  std::vector<relay::Endpoint> udp_endpoints() const;

  struct Impl;

 private:
  explicit Service(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace relay_daemon
