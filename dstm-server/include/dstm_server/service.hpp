// The DSTM service: the logic behind the TSP sessions. It grants, renews and releases leases
// (durably, through the LeaseStore's group commit), assigns TEPs, answers TEP queries and
// heartbeats, reaps expired leases, and serves the control API's tables and actions. No
// sockets: the Transport feeds it session actions, the daemon drives commit() and tick().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "dstm_server/config.hpp"
#include "dstm_server/error.hpp"
#include "dstm_server/lease_store.hpp"
#include "dstm_server/lease_table.hpp"
#include "dstm_server/tep_registry.hpp"
#include "dstm_server/transport.hpp"

namespace platform {
class Counters;
class Logger;
}  // namespace platform

namespace dstm_server {

using Clock = std::function<Seconds()>;  // Unix time in seconds

struct ServiceOptions {
  Clock clock;
  platform::Counters* counters = nullptr;  // optional; must outlive the service
  platform::Logger* log = nullptr;         // optional; must outlive the service
  // Called when the store has queued operations and no commit is scheduled: the daemon posts
  // one commit() to run after the handlers already queued (that is the group commit).
  std::function<void()> request_commit;
};

// What start-up restored from the store.
struct RestoreReport {
  std::size_t loaded = 0;    // rows read
  std::size_t restored = 0;  // leases back in the table
  std::size_t dropped = 0;   // rows that no longer fit the pool (erased from the store)
  std::size_t expired = 0;   // leases that expired while the server was down
  std::size_t removed = 0;   // leases whose grace ended while the server was down
};

class Service final : public SessionHandler {
 public:
  // Builds the pool and table from config, restores every stored lease and reaps what expired
  // meanwhile (the resulting store operations are committed before this returns).
  static Result<std::unique_ptr<Service>> open(const Config& config,
                                               std::unique_ptr<LeaseStore> store,
                                               ServiceOptions options,
                                               RestoreReport* report = nullptr);
  ~Service() override;

  // SessionHandler
  void on_authenticated(const SessionInfo& info) override;
  void on_closed(const SessionInfo& info) override;
  void on_action(const SessionInfo& info, const tsp::ServerAction& action,
                 EventSink reply) override;

  // Commits every queued store operation (replies to clients go out from the completions).
  Result<std::size_t> commit();
  std::size_t pending_commit() const noexcept;
  // Reaps expired leases, withdraws their mappings, refreshes the gauges. Call about once a
  // second.
  void tick();

  // ---- control API ----
  const LeaseTable& table() const noexcept;
  const TepRegistry& teps() const noexcept;
  Seconds now() const;
  // Releases a lease at once (address back to the pool, mapping withdrawn). LeaseNotFound.
  core::Result<Lease> admin_release(core::Ipv4Address ipv4);
  // Extends a lease to now + seconds (reactivating it if it was expired). LeaseNotFound,
  // BadLifetime.
  core::Result<Lease> admin_extend(core::Ipv4Address ipv4, Seconds seconds);

 private:
  struct Impl;
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dstm_server
