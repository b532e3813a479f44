// The embedded lease store: one SQLite file in WAL mode, written by group commit.
#pragma once

#include <memory>
#include <string>

#include "dstm_server/lease_store.hpp"

namespace dstm_server {

// Durability of a committed transaction (SQLite's synchronous pragma in WAL mode).
enum class Sync {
  // fsync of the WAL at every commit: a completed lease survives a process kill and a power
  // loss or kernel crash, as long as the disk honours flushes. The default.
  full,
  // No fsync at commit (only at checkpoints): a completed lease survives a process kill -9
  // (the WAL frames are in the kernel's page cache before COMMIT returns) but the last commits
  // before a power loss or kernel crash may be lost; the file stays consistent either way.
  normal,
};

struct SqliteOptions {
  Sync sync = Sync::full;
};

// Schema version 1 (PRAGMA user_version = 1, PRAGMA application_id = 0x4453544d "DSTM"):
//
//   CREATE TABLE leases (ipv4 INTEGER PRIMARY KEY,   -- host order, 0..2^32-1
//                        ipv6 BLOB NOT NULL,         -- 16 bytes, network order
//                        identity TEXT NOT NULL, tep TEXT NOT NULL,
//                        granted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
//                        state INTEGER NOT NULL)     -- LeaseState
//
// The file is opened in WAL mode with exclusive locking: while one process has it open, a
// second open (another daemon on the same file) fails with "database is locked" instead of
// handing out the same addresses twice. Statements are prepared once at open.
//
// Not thread-safe: one thread (the daemon's event loop) calls everything, completions included.
class SqliteLeaseStore final : public LeaseStore {
 public:
  static constexpr int kSchemaVersion = 1;
  static constexpr int kApplicationId = 0x4453544d;

  // Opens or creates the store at `path` (its directory must exist). Errors: the SQLite code and
  // message for a file that is not a database or cannot be opened, Errc::StoreForeignFile for
  // an SQLite file of some other application, Errc::StoreNewerSchema for a file from a newer
  // version of this program. The detail always names the path.
  static Result<std::unique_ptr<SqliteLeaseStore>> open(const std::string& path,
                                                        SqliteOptions options = {});
  ~SqliteLeaseStore() override;
  SqliteLeaseStore(const SqliteLeaseStore&) = delete;
  SqliteLeaseStore& operator=(const SqliteLeaseStore&) = delete;

  void put(const Lease& lease, Completion done) override;
  void erase(core::Ipv4Address ipv4, Completion done) override;
  std::size_t pending() const noexcept override;
  Result<std::size_t> commit() override;
  Result<std::size_t> load_all(const std::function<void(const Lease&)>& visit) override;

 private:
  struct Impl;
  explicit SqliteLeaseStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dstm_server
