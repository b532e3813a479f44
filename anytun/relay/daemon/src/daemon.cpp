// The satp-relay daemon: services plus their control sockets (daemon.hpp).
#include "relay_daemon/daemon.hpp"

#include <unistd.h>

#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "relay_daemon/service.hpp"

namespace relay_daemon {

struct ServiceControl::Impl {
  std::unique_ptr<platform::ControlServer> server;
};

ServiceControl::ServiceControl(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
ServiceControl::~ServiceControl() {
  stop();
}

void ServiceControl::stop() noexcept {
  if (impl_->server) impl_->server->stop();
}

boost::system::result<std::unique_ptr<ServiceControl>, std::string> ServiceControl::start(
    boost::asio::io_context& io, Service& service, const std::string& path, std::string version,
    platform::Counters& counters) {
  platform::Router router;
  router.get("/status", [&service, version](const platform::Request&) {
    auto o = service.status();
    o["version"] = version;
    o["pid"] = ::getpid();
    return platform::Response::json(std::move(o));
  });
  service.add_routes(router);
  std::error_code ignored;  // a missing directory shows up as start()'s error below
  std::filesystem::create_directories(std::filesystem::path{path}.parent_path(), ignored);
  auto impl = std::make_unique<Impl>();
  impl->server = std::make_unique<platform::ControlServer>(
      io, std::move(router),
      platform::ControlServerOptions{
          .path = path, .mode = 0660, .limits = {}, .counters = &counters});
  if (auto ok = impl->server->start(); !ok)
    return fmt::format("control socket {}: {}", path, ok.error().message());
  return std::unique_ptr<ServiceControl>{new ServiceControl{std::move(impl)}};
}

// Declaration order is destruction order reversed: the control sockets go first (no handler runs
// after them), then the services, then the counters they registered in.
struct Daemon::Impl {
  platform::Counters counters;
  std::unique_ptr<Service> relay;
  std::unique_ptr<Service> client;
  std::unique_ptr<ServiceControl> relay_control;
  std::unique_ptr<ServiceControl> client_control;
  platform::Logger log{"satp-relay"};
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
Daemon::~Daemon() {
  stop();
}

Service* Daemon::relay() noexcept {
  return impl_->relay.get();
}
Service* Daemon::client() noexcept {
  return impl_->client.get();
}

boost::system::result<std::unique_ptr<Daemon>, std::string> Daemon::start(
    boost::asio::io_context& io, const Config& config, DaemonOptions options) {
  auto d = std::make_unique<Impl>();
  const bool run_relay = config.relay && !config.relay->hosted_by_tep;
  if (!run_relay && !config.client)
    return fmt::format(
        "nothing to run: /anytun/relay is hosted by TEP '{}' and there is no /anytun/client",
        *config.relay->hosted_by_tep);
  if (config.relay && !run_relay)
    d->log.info("/anytun/relay is hosted by TEP '{}': only the client runs here",
                *config.relay->hosted_by_tep);
  // One service and its control socket; the error says which failed.
  const auto start = [&](auto started, const std::string& socket, std::unique_ptr<Service>& service,
                         std::unique_ptr<ServiceControl>& control) -> std::optional<std::string> {
    if (!started) return started.error();
    service = std::move(*started);
    auto c = ServiceControl::start(io, *service, socket, options.version, d->counters);
    if (!c) return c.error();
    control = std::move(*c);
    d->log.info("control socket {}", socket);
    return std::nullopt;
  };
  if (run_relay)
    if (auto error = start(Service::start_relay(io, *config.relay, d->counters),
                           config.relay->control_socket, d->relay, d->relay_control))
      return *error;
  if (config.client)
    if (auto error = start(Service::start_client(io, *config.client, d->counters),
                           config.client->control_socket, d->client, d->client_control))
      return *error;
  return std::unique_ptr<Daemon>{new Daemon{std::move(d)}};
}

void Daemon::stop() noexcept {
  if (impl_->relay_control) impl_->relay_control->stop();
  if (impl_->client_control) impl_->client_control->stop();
  if (impl_->relay) impl_->relay->stop();
  if (impl_->client) impl_->client->stop();
}

}  // namespace relay_daemon
