#include "dstm_server/service.hpp"

#include <algorithm>
#include <utility>
#include <variant>

#include "core/overloaded.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"

namespace dstm_server {

namespace {

// The lease key's identity: the authenticated user, "" for an anonymous client.
std::string_view key_identity(const tsp::Identity& id) noexcept {
  return id.mechanism == tsp::Mechanism::Anonymous ? std::string_view{} : std::string_view{id.user};
}

}  // namespace

struct Service::Impl {
  Config config;
  std::unique_ptr<LeaseStore> store;
  ServiceOptions options;
  LeaseTable table;
  TepRegistry registry;
  bool commit_requested = false;
  // TCP sessions authenticated as a TEP user: session id -> TEP.
  std::unordered_map<std::uint64_t, TepId> tep_sessions;

  struct Metrics {
    platform::Counter* created = nullptr;
    platform::Counter* renewed = nullptr;
    platform::Counter* exhausted = nullptr;
    platform::Counter* no_tep = nullptr;
    platform::Counter* create_errors = nullptr;
    platform::Counter* released = nullptr;
    platform::Counter* abandoned = nullptr;
    platform::Counter* query_found = nullptr;
    platform::Counter* query_not_found = nullptr;
    platform::Counter* query_refused = nullptr;
    platform::Counter* heartbeats = nullptr;
    platform::Counter* heartbeats_refused = nullptr;
    platform::Counter* expired = nullptr;
    platform::Counter* removed = nullptr;
    platform::Counter* commits = nullptr;
    platform::Counter* committed_ops = nullptr;
    platform::Counter* store_errors = nullptr;
    platform::Gauge* pool_total = nullptr;
    platform::Gauge* pool_used = nullptr;
    platform::Gauge* pool_free = nullptr;
    platform::Gauge* leases_active = nullptr;
    platform::Gauge* leases_held = nullptr;
    platform::Gauge* teps_alive = nullptr;
  } m;
  platform::Counter unused_counter;  // target of metrics when no registry is given
  platform::Gauge unused_gauge;

  Impl(const Config& c, std::unique_ptr<LeaseStore> s, ServiceOptions o, LeaseTable t)
      : config{c},
        store{std::move(s)},
        options{std::move(o)},
        table{std::move(t)},
        registry{c.teps, c.tep_timeout} {
    register_metrics();
  }

  Seconds now() const { return options.clock(); }

  void register_metrics() {
    auto* reg = options.counters;
    auto counter = [&](std::string_view name, std::string_view help,
                       platform::Labels labels = {}) -> platform::Counter* {
      return reg ? &reg->counter(name, help, std::move(labels)) : &unused_counter;
    };
    auto gauge = [&](std::string_view name, std::string_view help,
                     platform::Labels labels = {}) -> platform::Gauge* {
      return reg ? &reg->gauge(name, help, std::move(labels)) : &unused_gauge;
    };
    constexpr std::string_view creates = "dstm_creates_total";
    constexpr std::string_view creates_help = "TSP creates answered, by result";
    m.created = counter(creates, creates_help, {{"result", "granted"}});
    m.renewed = counter(creates, creates_help, {{"result", "renewed"}});
    m.exhausted = counter(creates, creates_help, {{"result", "pool_exhausted"}});
    m.no_tep = counter(creates, creates_help, {{"result", "no_live_tep"}});
    m.create_errors = counter(creates, creates_help, {{"result", "error"}});
    constexpr std::string_view releases = "dstm_releases_total";
    constexpr std::string_view releases_help = "Leases ended before expiry, by cause";
    m.released = counter(releases, releases_help, {{"cause", "released"}});
    m.abandoned = counter(releases, releases_help, {{"cause", "not_accepted"}});
    constexpr std::string_view queries = "dstm_queries_total";
    constexpr std::string_view queries_help = "TEP queries answered, by result";
    m.query_found = counter(queries, queries_help, {{"result", "found"}});
    m.query_not_found = counter(queries, queries_help, {{"result", "not_found"}});
    m.query_refused = counter(queries, queries_help, {{"result", "refused"}});
    constexpr std::string_view beats = "dstm_heartbeats_total";
    constexpr std::string_view beats_help = "TEP heartbeats answered, by result";
    m.heartbeats = counter(beats, beats_help, {{"result", "ok"}});
    m.heartbeats_refused = counter(beats, beats_help, {{"result", "refused"}});
    constexpr std::string_view reaped = "dstm_reaped_total";
    constexpr std::string_view reaped_help = "Leases reaped: expired, or removed after the grace";
    m.expired = counter(reaped, reaped_help, {{"kind", "expired"}});
    m.removed = counter(reaped, reaped_help, {{"kind", "removed"}});
    m.commits = counter("dstm_store_commits_total", "Lease-store transactions committed");
    m.committed_ops = counter("dstm_store_operations_total",
                              "Lease-store operations committed (puts and erases)");
    m.store_errors = counter("dstm_store_errors_total", "Lease-store commits that failed");
    constexpr std::string_view pool = "dstm_pool_addresses";
    constexpr std::string_view pool_help = "Pool addresses, by state";
    m.pool_total = gauge(pool, pool_help, {{"state", "total"}});
    m.pool_used = gauge(pool, pool_help, {{"state", "used"}});
    m.pool_free = gauge(pool, pool_help, {{"state", "free"}});
    constexpr std::string_view leases = "dstm_leases";
    constexpr std::string_view leases_help = "Leases in the table, by state";
    m.leases_active = gauge(leases, leases_help, {{"state", "active"}});
    m.leases_held = gauge(leases, leases_help, {{"state", "expired"}});
    m.teps_alive = gauge("dstm_teps_alive", "TEPs currently alive");
  }

  void update_gauges() {
    const auto& pool = table.pool();
    m.pool_total->set(pool.total());
    m.pool_used->set(pool.used());
    m.pool_free->set(pool.free());
    m.leases_active->set(static_cast<std::int64_t>(table.active()));
    m.leases_held->set(static_cast<std::int64_t>(table.held()));
    const Seconds t = now();
    std::int64_t alive = 0;
    for (TepId id = 0; id < registry.size(); ++id) alive += registry.alive(id, t) ? 1 : 0;
    m.teps_alive->set(alive);
  }

  void want_commit() {
    if (commit_requested || store->pending() == 0) return;
    commit_requested = true;
    if (options.request_commit) options.request_commit();
  }

  std::optional<TepId> tep_of(std::string_view name) const noexcept {
    return registry.find_by_name(name);
  }

  // The TEP behind an authenticated identity, if it is a TEP user.
  std::optional<TepId> tep_user(const std::optional<tsp::Identity>& id) const noexcept {
    if (!id || id->mechanism == tsp::Mechanism::Anonymous) return std::nullopt;
    return registry.find_by_user(id->user);
  }

  void count_out(const Lease& lease) noexcept {
    if (auto tep = tep_of(lease.tep)) registry.remove_lease(*tep);
  }

  // A lease left the table early (released, abandoned, evicted): erase it, withdraw it.
  void forget(const Lease& lease) {
    count_out(lease);
    registry.withdraw(lease.ipv4);
    store->erase(lease.ipv4, {});
  }

  // ---- create ----

  Seconds lifetime_for(const tsp::AllocateLease& a) const noexcept {
    if (!a.lifetime) return config.lease.lifetime;
    // A client may ask for less than the configured lifetime (not below a minute, or below the
    // configured lifetime if that is shorter), never for more than max_lifetime.
    const Seconds floor = std::min<Seconds>(60, config.lease.lifetime);
    return std::clamp<Seconds>(*a.lifetime, floor, config.lease.max_lifetime);
  }

  tsp::LeaseOffer offer_for(const Lease& lease, TepId tep, Seconds t) const {
    const auto& tc = registry.config(tep);
    tsp::LeaseOffer offer{};
    offer.client_ipv4 = lease.ipv4;
    offer.server_ipv4 = tc.ipv4;
    offer.server_ipv6 = tc.ipv6;
    offer.lifetime = static_cast<std::uint32_t>(std::max<Seconds>(0, lease.expires_at - t));
    offer.dns_server = config.client.dns_server;
    if (tc.keepalive)
      offer.keepalive = tsp::Keepalive{config.client.keepalive_interval,
                                       tsp::Address{*tc.keepalive, std::nullopt}};
    return offer;
  }

  void allocate(const tsp::AllocateLease& a, const EventSink& reply) {
    auto fail = [&](tsp::Status status, platform::Counter* c) {
      c->inc();
      reply(tsp::LeaseFailed{status, {}});
    };
    if (a.type != tsp::TunnelType::V4V6 || !a.client_ipv6) {
      fail(tsp::Status::UnsupportedTunnelType, m.create_errors);
      return;
    }
    const Seconds t = now();
    const std::string_view identity = key_identity(a.identity);
    std::optional<TepId> current;
    const auto existing = table.find(*a.client_ipv6, identity);
    if (existing) current = tep_of(existing->tep);
    const auto tep = registry.assign(current, t);
    if (!tep) {
      if (options.log) options.log->warn_limited("no-tep", "create refused: no TEP is alive");
      fail(tsp::Status::NoMoreTunnels, m.no_tep);
      return;
    }
    const std::string tep_name = registry.config(*tep).name;
    auto grant = table.acquire(*a.client_ipv6, identity, tep_name, t, lifetime_for(a));
    if (!grant) {
      if (grant.error() == Errc::PoolExhausted) {
        if (options.log) options.log->warn_limited("exhausted", "create refused: pool exhausted");
        fail(tsp::Status::NoMoreTunnels, m.exhausted);
      } else {
        fail(tsp::Status::ServerError, m.create_errors);
      }
      return;
    }
    const Lease lease = grant->lease;
    const bool renewed = grant->renewed;
    if (grant->evicted) forget(*grant->evicted);
    if (!renewed) {
      registry.add_lease(*tep);
    } else if (current != tep) {
      if (current) registry.remove_lease(*current);
      registry.add_lease(*tep);
    }
    // The reply goes out once the lease is on disk.
    store->put(lease, [this, lease, renewed, tep = *tep, reply](const Result<void>& stored) {
      if (!stored) {
        m.create_errors->inc();
        if (options.log)
          options.log->error_limited("store", "lease for {} not stored: {}", lease.ipv4.to_string(),
                                     stored.error().message());
        if (!renewed) {  // nothing of it reached the disk: undo it in memory too
          if (table.release(lease.ipv4)) count_out(lease);
        }
        reply(tsp::LeaseFailed{tsp::Status::ServerError, {}});
        return;
      }
      (renewed ? m.renewed : m.created)->inc();
      if (!reply(tsp::LeaseAllocated{offer_for(lease, tep, now())})) {
        // The session ended while the lease was being stored: nobody will use it.
        if (!renewed) release_if_held(lease.ipv4, lease.client, lease.identity, m.abandoned);
      }
    });
    want_commit();
  }

  // Releases ipv4 if it still belongs to (client, identity).
  bool release_if_held(core::Ipv4Address ipv4, const core::Ipv6Address& client,
                       std::string_view identity, platform::Counter* why) {
    const auto held = table.find(ipv4);
    if (!held || held->client != client || held->identity != identity) return false;
    auto gone = table.release(ipv4);
    if (!gone) return false;
    forget(*gone);
    why->inc();
    want_commit();
    return true;
  }

  void release(const tsp::ReleaseLease& r) {
    const std::string_view identity = key_identity(r.identity);
    if (r.reason == tsp::ReleaseReason::Deleted) {
      if (!r.client_ipv6) return;
      const auto lease = table.find(*r.client_ipv6, identity);
      if (lease) release_if_held(lease->ipv4, *r.client_ipv6, identity, m.released);
      return;
    }
    // Rejected, not accepted, or allocated after the session ended.
    if (r.ipv4 && r.client_ipv6) release_if_held(*r.ipv4, *r.client_ipv6, identity, m.abandoned);
  }

  // ---- TEPs ----

  void lookup(const SessionInfo& info, const tsp::LookupMapping& q, const EventSink& reply) {
    const auto tep = tep_user(info.identity);
    if (!tep) {
      m.query_refused->inc();
      reply(tsp::MappingNotFound{q.query_id, tsp::Status::AuthenticationFailed});
      return;
    }
    const Seconds t = now();
    registry.heard(*tep, t);
    const auto lease = table.find(q.ipv4);
    if (!lease || lease->state != LeaseState::active || lease->expires_at <= t) {
      m.query_not_found->inc();
      reply(tsp::MappingNotFound{q.query_id, tsp::Status::InvalidIpv4Address});
      return;
    }
    m.query_found->inc();
    reply(tsp::MappingFound{q.query_id,
                            tsp::Mapping{lease->ipv4, lease->client,
                                         static_cast<std::uint32_t>(lease->expires_at - t)}});
  }

  void heartbeat(const SessionInfo& info, const tsp::Heartbeat& h, const EventSink& reply) {
    const auto tep = tep_user(info.identity);
    if (!tep || !registry.config(*tep).heartbeat) {
      m.heartbeats_refused->inc();
      reply(tsp::HeartbeatAnswered{h.query_id, tsp::Status::AuthenticationFailed, 0, {}, false});
      return;
    }
    registry.heard(*tep, now());
    auto w = registry.take_withdrawals(*tep, tsp::kMaxWithdrawnPerHeartbeat);
    m.heartbeats->inc();
    reply(tsp::HeartbeatAnswered{h.query_id, tsp::Status::Success,
                                 static_cast<std::uint32_t>(config.heartbeat_interval),
                                 std::move(w.addresses), w.flush});
  }

  // ---- time ----

  void reap() {
    auto reaped = table.reap(now());
    for (const Lease& l : reaped.expired) {
      registry.withdraw(l.ipv4);
      store->put(l, {});
      m.expired->inc();
    }
    for (const Lease& l : reaped.removed) {
      count_out(l);
      store->erase(l.ipv4, {});
      m.removed->inc();
    }
    want_commit();
  }
};

Service::Service(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
Service::~Service() = default;

Result<std::unique_ptr<Service>> Service::open(const Config& config,
                                               std::unique_ptr<LeaseStore> store,
                                               ServiceOptions options, RestoreReport* report) {
  PoolConfig pool_config = config.pool;
  for (const auto& tep : config.teps) pool_config.tep_addresses.push_back(tep.ipv4);
  auto pool = Pool::make(pool_config);
  if (!pool) return pool.error();
  auto impl = std::make_unique<Impl>(config, std::move(store), std::move(options),
                                     LeaseTable{std::move(*pool), config.lease.grace});
  Impl& s = *impl;

  RestoreReport r;
  std::vector<core::Ipv4Address> drop;
  auto loaded = s.store->load_all([&](const Lease& lease) {
    if (auto ok = s.table.restore(lease); !ok) {
      drop.push_back(lease.ipv4);
      if (s.options.log)
        s.options.log->warn("stored lease {} dropped: {}", lease.ipv4.to_string(),
                            ok.error().message());
      return;
    }
    if (auto tep = s.tep_of(lease.tep)) s.registry.add_lease(*tep);
    ++r.restored;
  });
  if (!loaded) return loaded.error();
  r.loaded = *loaded;
  r.dropped = drop.size();
  for (const auto ipv4 : drop) s.store->erase(ipv4, {});
  const auto reaped = s.table.reap(s.now());
  r.expired = reaped.expired.size();
  r.removed = reaped.removed.size();
  for (const Lease& l : reaped.expired) s.store->put(l, {});
  for (const Lease& l : reaped.removed) {
    s.count_out(l);
    s.store->erase(l.ipv4, {});
  }
  if (auto committed = s.store->commit(); !committed) return committed.error();
  s.update_gauges();
  if (report) *report = r;
  return std::unique_ptr<Service>{new Service{std::move(impl)}};
}

void Service::on_authenticated(const SessionInfo& info) {
  auto& s = *impl_;
  const auto tep = s.tep_user(info.identity);
  if (!tep) return;
  if (info.transport == tsp::Transport::Tcp) {
    s.tep_sessions.emplace(info.id, *tep);
    s.registry.session_opened(*tep, s.now());
  } else {
    s.registry.heard(*tep, s.now());
  }
  s.update_gauges();
}

void Service::on_closed(const SessionInfo& info) {
  auto& s = *impl_;
  const auto it = s.tep_sessions.find(info.id);
  if (it == s.tep_sessions.end()) return;
  s.registry.session_closed(it->second, s.now());
  s.tep_sessions.erase(it);
  s.update_gauges();
}

void Service::on_action(const SessionInfo& info, const tsp::ServerAction& action, EventSink reply) {
  auto& s = *impl_;
  std::visit(core::Overloaded{
                 [&](const tsp::AllocateLease& a) { s.allocate(a, reply); },
                 [&](const tsp::ConfirmLease&) {},  // stored at create already
                 [&](const tsp::ReleaseLease& r) { s.release(r); },
                 [&](const tsp::LookupMapping& q) { s.lookup(info, q, reply); },
                 [&](const tsp::Heartbeat& h) { s.heartbeat(info, h, reply); },
                 [](const auto&) {},  // transport actions never reach the service
             },
             action);
  s.update_gauges();
}

Result<std::size_t> Service::commit() {
  auto& s = *impl_;
  s.commit_requested = false;
  auto done = s.store->commit();
  if (done) {
    if (*done > 0) {
      s.m.commits->inc();
      s.m.committed_ops->inc(*done);
    }
  } else {
    s.m.store_errors->inc();
    if (s.options.log)
      s.options.log->error_limited("commit", "lease store commit failed: {}",
                                   done.error().message());
  }
  s.want_commit();  // completions may have queued more
  return done;
}

std::size_t Service::pending_commit() const noexcept {
  return impl_->store->pending();
}

void Service::tick() {
  impl_->reap();
  impl_->update_gauges();
}

const LeaseTable& Service::table() const noexcept {
  return impl_->table;
}
const TepRegistry& Service::teps() const noexcept {
  return impl_->registry;
}
Seconds Service::now() const {
  return impl_->now();
}

core::Result<Lease> Service::admin_release(core::Ipv4Address ipv4) {
  auto& s = *impl_;
  auto gone = s.table.release(ipv4);
  if (!gone) return gone.error();
  s.forget(*gone);
  s.m.released->inc();
  s.want_commit();
  s.update_gauges();
  return *gone;
}

core::Result<Lease> Service::admin_extend(core::Ipv4Address ipv4, Seconds seconds) {
  auto& s = *impl_;
  const auto lease = s.table.find(ipv4);
  if (!lease) return make_error_code(Errc::LeaseNotFound);
  const auto client = lease->client;
  const std::string identity{lease->identity};
  auto renewed = s.table.renew(client, identity, s.now(), seconds);
  if (!renewed) return renewed.error();
  s.store->put(*renewed, {});
  s.want_commit();
  s.update_gauges();
  return *renewed;
}

}  // namespace dstm_server
