#include "dstm_server/daemon.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <system_error>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "dstm_server/control_api.hpp"
#include "dstm_server/service.hpp"
#include "dstm_server/sqlite_lease_store.hpp"
#include "dstm_server/transport.hpp"
#include "platform/config.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/signals.hpp"

namespace dstm_server {

namespace asio = boost::asio;

std::shared_ptr<const tsp::ServerConfig> session_config(const Config& config) {
  auto c = std::make_shared<tsp::ServerConfig>();
  c->tunnel_types = {tsp::TunnelType::V4V6};
  c->sasl.mechanisms = {tsp::Mechanism::DigestMd5};
  if (config.auth.plain) c->sasl.mechanisms.push_back(tsp::Mechanism::Plain);
  if (config.auth.anonymous) c->sasl.mechanisms.push_back(tsp::Mechanism::Anonymous);
  c->sasl.realm = config.auth.realm;
  auto users = std::make_shared<std::unordered_map<std::string, tsp::Md5Digest>>();
  for (const auto& u : config.auth.users) users->emplace(u.name, u.verifier);
  c->sasl.verifiers = [users](std::string_view user) -> std::optional<tsp::Md5Digest> {
    const auto it = users->find(std::string{user});
    if (it == users->end()) return std::nullopt;
    return it->second;
  };
  c->sasl.random = tsp::system_random_source();
  c->deadlines.handshake = std::chrono::seconds{config.limits.handshake_timeout};
  c->deadlines.command = std::chrono::seconds{config.limits.command_timeout};
  c->deadlines.query_idle = std::chrono::seconds{config.limits.query_idle_timeout};
  return c;
}

platform::ConfigResult<platform::LoadedConfig<Config>> load_config(std::string_view document) {
  auto config = parse_config_document(document);
  if (!config) return {boost::system::in_place_error, config.error()};
  // The document parsed above, so this parse cannot fail; its section is what a reload compares.
  auto json = platform::parse_json(document);
  if (!json) return {boost::system::in_place_error, json.error()};
  const auto* section = json->as_object().if_contains("dstm_server");
  return platform::LoadedConfig<Config>{std::move(*config),
                                        section ? *section : boost::json::value{}};
}

namespace {

// The control socket takes whole config documents (POST /config/check).
constexpr std::size_t kControlBodyLimit = 1024 * 1024;

Seconds unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Error error_at(boost::system::error_code code, std::string detail) {
  return Error{code, std::move(detail)};
}

// Creates the directory of `file` (and its parents) if missing.
Result<void> ensure_parent(const std::string& file, std::filesystem::perms perms) {
  const auto dir = std::filesystem::path{file}.parent_path();
  if (dir.empty()) return {};
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec))
    std::filesystem::permissions(dir, perms, std::filesystem::perm_options::replace, ec);
  if (ec)
    return error_at(boost::system::error_code{ec.value(), boost::system::system_category()},
                    dir.string());
  return {};
}

}  // namespace

struct Daemon::Impl {
  asio::io_context& io;
  Config config;
  DaemonOptions options;
  platform::Logger log{"dstm-server"};
  platform::Counters counters;
  std::unique_ptr<Service> service;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<ControlContext> control_context;
  std::unique_ptr<platform::ControlServer> control;
  asio::steady_timer tick;
  std::optional<platform::SignalWatch> signals;
  // Without a restart loop (options.restarter null): generation 0, no config file.
  platform::DaemonLife own_life{.generation = 0,
                                .started_at = unix_now(),
                                .config_file = std::nullopt,
                                .last_reload = std::nullopt};
  bool stopped = false;

  Impl(asio::io_context& i, Config c, DaemonOptions o)
      : io{i}, config{std::move(c)}, options{std::move(o)}, tick{i} {}

  const platform::DaemonLife& life() const {
    return options.restarter ? options.restarter->life() : own_life;
  }

  // POST /reload and SIGHUP. A restart stops this daemon after the answer has been written (a
  // stopping control server finishes the response in progress); main then starts the next one.
  platform::Response reload(Daemon& daemon) {
    if (!options.restarter)
      return platform::Response::error(409, "this daemon was not started by a restart loop");
    auto decision = options.restarter->reload();
    if (decision.restart) asio::post(io, [&daemon] { daemon.stop(); });
    return std::move(decision.response);
  }

  void schedule_tick() {
    tick.expires_after(std::chrono::seconds{1});
    tick.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped) return;
      service->tick();
      schedule_tick();
    });
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
Daemon::~Daemon() {
  stop();
}

Result<std::unique_ptr<Daemon>> Daemon::start(asio::io_context& io, Config config,
                                              DaemonOptions options) {
  auto impl = std::make_unique<Impl>(io, std::move(config), std::move(options));
  Impl& d = *impl;
  const auto started = std::chrono::steady_clock::now();

  // The lease store and the leases it holds.
  using std::filesystem::perms;
  if (auto ok = ensure_parent(d.config.store.path,
                              perms::owner_all | perms::group_read | perms::group_exec);
      !ok)
    return ok.error();
  auto store = SqliteLeaseStore::open(
      d.config.store.path,
      SqliteOptions{d.config.store.sync == StoreSync::Full ? Sync::full : Sync::normal});
  if (!store) return store.error();
  RestoreReport restored;
  Impl* self = &d;
  auto service = Service::open(d.config, std::move(*store),
                               ServiceOptions{
                                   .clock = unix_now,
                                   .counters = &d.counters,
                                   .log = &d.log,
                                   .request_commit =
                                       [self] {
                                         // Runs after the handlers already queued: every request of
                                         // this turn shares the transaction (group commit).
                                         asio::post(self->io, [self] {
                                           if (self->service) (void)self->service->commit();
                                         });
                                       },
                               },
                               &restored);
  if (!service) return service.error();
  d.service = std::move(*service);
  d.log.info("lease store {}: {} leases restored ({} dropped, {} expired, {} removed while down)",
             d.config.store.path, restored.restored, restored.dropped, restored.expired,
             restored.removed);

  // TSP.
  d.transport = std::make_unique<Transport>(io, *d.service,
                                            TransportOptions{.listen = d.config.listen,
                                                             .limits = d.config.limits,
                                                             .session = session_config(d.config),
                                                             .counters = &d.counters});
  if (auto ok = d.transport->start(); !ok) return ok.error();
  for (const auto& e : d.transport->endpoints())
    d.log.info("TSP listening on {} [{}]:{}", e.transport == tsp::Transport::Tcp ? "tcp" : "udp",
               e.address, e.port);

  // The control socket.
  if (auto ok = ensure_parent(d.config.control_socket,
                              perms::owner_all | perms::group_read | perms::group_exec);
      !ok)
    return ok.error();
  // From here on a failure stops what already runs (Daemon::stop commits the store), and the
  // reload handler can name the daemon it stops.
  std::unique_ptr<Daemon> daemon{new Daemon{std::move(impl)}};
  Daemon* raw = daemon.get();
  d.control_context = std::make_unique<ControlContext>(
      ControlContext{*d.service, *d.transport, d.config, started, d.options.version, d.life(),
                     [self, raw] { return self->reload(*raw); }});
  platform::ControlLimits limits;
  limits.max_body_bytes = kControlBodyLimit;
  d.control = std::make_unique<platform::ControlServer>(
      io, make_control_router(*d.control_context),
      platform::ControlServerOptions{.path = d.config.control_socket,
                                     .mode = 0660,
                                     .limits = limits,
                                     .counters = &d.counters});
  if (auto ok = d.control->start(); !ok)
    return error_at(ok.error(), "control socket " + d.config.control_socket);
  d.log.info("control socket {}", d.config.control_socket);

  d.schedule_tick();
  self->signals = platform::stop_on_signals(
      io, {SIGINT, SIGTERM}, [raw] { raw->stop(); }, [self, raw] { (void)self->reload(*raw); });

  if (self->options.ready_fd) platform::notify_ready(*self->options.ready_fd);
  return daemon;
}

void Daemon::stop() noexcept {
  auto& d = *impl_;
  if (d.stopped) return;
  d.stopped = true;
  d.log.info("stopping");
  if (d.transport) d.transport->stop();
  if (d.service) {
    // What is still queued is committed now (completions of gone sessions only release).
    if (auto done = d.service->commit(); !done)
      d.log.error("final commit failed: {}", done.error().message());
  }
  if (d.control) d.control->stop();
  d.tick.cancel();
  if (d.signals) d.signals->cancel();
}

}  // namespace dstm_server
