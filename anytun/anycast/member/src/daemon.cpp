// The anycast-member daemon: the Service plus its control socket.
#include "anycast_member/daemon.hpp"

#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include "anycast_member/service.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"

namespace anycast_member {

// Declaration order is destruction order reversed: the control server goes first (no handler
// runs after it), then the service, then the counters both registered in.
struct Daemon::Impl {
  DaemonOptions options;
  platform::Counters counters;
  std::unique_ptr<Service> service;
  std::unique_ptr<platform::ControlServer> control;
  platform::Logger log{"anycast-member"};

  platform::Router router() {
    platform::Router r;
    r.get("/status", [this](const platform::Request&) {
      auto o = service->status();
      o["version"] = options.version;
      o["pid"] = ::getpid();
      return platform::Response::json(std::move(o));
    });
    return r;
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}

Daemon::~Daemon() {
  stop();
}

boost::system::result<std::unique_ptr<Daemon>, std::string> Daemon::start(
    boost::asio::io_context& io, const Config& config, DaemonOptions options) {
  auto d = std::make_unique<Impl>();
  d->options = std::move(options);
  auto service = Service::start(io, config, d->counters);
  if (!service) return service.error();
  d->service = std::move(*service);

  std::error_code ignored;  // a missing directory shows up as start()'s error below
  std::filesystem::create_directories(std::filesystem::path{config.control_socket}.parent_path(),
                                      ignored);
  d->control = std::make_unique<platform::ControlServer>(
      io, d->router(),
      platform::ControlServerOptions{
          .path = config.control_socket, .mode = 0660, .limits = {}, .counters = &d->counters});
  if (auto ok = d->control->start(); !ok)
    return fmt::format("control socket {}: {}", config.control_socket, ok.error().message());
  d->log.info("control socket {}", config.control_socket);
  return std::unique_ptr<Daemon>{new Daemon{std::move(d)}};
}

void Daemon::stop() noexcept {
  if (impl_->control) impl_->control->stop();
  impl_->service->stop();
}

}  // namespace anycast_member
