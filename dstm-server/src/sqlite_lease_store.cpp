// SqliteLeaseStore: schema check and creation, prepared statements, group commit, load_all.
#include "dstm_server/sqlite_lease_store.hpp"

#include <sqlite3.h>

#include <array>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace dstm_server {
namespace {

struct CloseDb {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct Finalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using DbPtr = std::unique_ptr<sqlite3, CloseDb>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, Finalize>;

constexpr std::string_view kCreateSchema = R"sql(
CREATE TABLE leases (
  ipv4       INTEGER PRIMARY KEY,
  ipv6       BLOB    NOT NULL,
  identity   TEXT    NOT NULL,
  tep        TEXT    NOT NULL,
  granted_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  state      INTEGER NOT NULL
);
)sql";

constexpr std::string_view kPut =
    "INSERT INTO leases (ipv4, ipv6, identity, tep, granted_at, expires_at, state) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (ipv4) DO UPDATE SET ipv6 = ?2, identity = ?3, tep = ?4, granted_at = ?5, "
    "expires_at = ?6, state = ?7";
constexpr std::string_view kErase = "DELETE FROM leases WHERE ipv4 = ?1";
constexpr std::string_view kSelectAll =
    "SELECT ipv4, ipv6, identity, tep, granted_at, expires_at, state FROM leases";

}  // namespace

struct SqliteLeaseStore::Impl {
  struct Op {
    Lease lease;  // only lease.ipv4 for an erase
    bool erase = false;
    Completion done;
  };

  std::string path;
  DbPtr db;
  StmtPtr begin;
  StmtPtr commit;
  StmtPtr rollback;
  StmtPtr put;
  StmtPtr erase;
  StmtPtr select_all;
  std::vector<Op> pending;

  // The error of the last call on db, with SQLite's message for it.
  Error fail(int rc, std::string_view what) const {
    return Error{
        make_sqlite_error(rc),
        fmt::format("{}: {}: {}", path, what, db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc))};
  }

  Result<void> exec(std::string_view sql) {
    const std::string text{sql};
    const int rc = sqlite3_exec(db.get(), text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return fail(rc, sql);
    return {};
  }

  Result<StmtPtr> prepare(std::string_view sql, std::string_view what) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt{raw};
    if (rc != SQLITE_OK) return fail(rc, what);
    return stmt;
  }

  // A single-row integer query ("PRAGMA user_version").
  Result<std::int64_t> query_int(std::string_view sql) {
    auto stmt = prepare(sql, sql);
    if (!stmt) return stmt.error();
    const int rc = sqlite3_step(stmt->get());
    if (rc != SQLITE_ROW) return fail(rc, sql);
    return sqlite3_column_int64(stmt->get(), 0);
  }

  // Runs a prepared statement that returns no rows to completion and resets it.
  int run(sqlite3_stmt* stmt) noexcept {
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }

  int apply(const Op& op) noexcept {
    const auto ipv4 = static_cast<sqlite3_int64>(op.lease.ipv4.to_uint());
    if (op.erase) {
      sqlite3_bind_int64(erase.get(), 1, ipv4);
      return run(erase.get());
    }
    const auto& l = op.lease;
    auto* s = put.get();
    sqlite3_bind_int64(s, 1, ipv4);
    sqlite3_bind_blob(s, 2, l.client.bytes().data(), 16, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, l.identity.data(), static_cast<int>(l.identity.size()), SQLITE_STATIC);
    sqlite3_bind_text(s, 4, l.tep.data(), static_cast<int>(l.tep.size()), SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, l.granted_at);
    sqlite3_bind_int64(s, 6, l.expires_at);
    sqlite3_bind_int(s, 7, static_cast<int>(l.state));
    return run(s);
  }

  Result<void> write_batch(const std::vector<Op>& batch) {
    if (const int rc = run(begin.get()); rc != SQLITE_OK) return fail(rc, "BEGIN");
    for (const auto& op : batch) {
      if (const int rc = apply(op); rc != SQLITE_OK) {
        auto err = fail(rc, op.erase ? "DELETE" : "INSERT");
        run(rollback.get());
        return err;
      }
    }
    if (const int rc = run(commit.get()); rc != SQLITE_OK) {
      auto err = fail(rc, "COMMIT");
      // A failed COMMIT can leave the transaction open (e.g. SQLITE_BUSY); end it.
      if (sqlite3_get_autocommit(db.get()) == 0) run(rollback.get());
      return err;
    }
    return {};
  }

  Result<void> open_or_create(const SqliteOptions& options);
};

Result<void> SqliteLeaseStore::Impl::open_or_create(const SqliteOptions& options) {
  // Exclusive locking before WAL: the connection keeps its locks until close (a second process
  // gets SQLITE_BUSY) and the WAL index lives in heap memory instead of a -shm file.
  if (auto r = exec("PRAGMA locking_mode = EXCLUSIVE"); !r) return r;

  // The first read of the file: a non-database file fails here with SQLITE_NOTADB.
  const auto app = query_int("PRAGMA application_id");
  if (!app) return app.error();
  const auto version = query_int("PRAGMA user_version");
  if (!version) return version.error();
  const auto objects = query_int("SELECT count(*) FROM sqlite_schema");
  if (!objects) return objects.error();

  const bool fresh = *app == 0 && *version == 0 && *objects == 0;
  if (!fresh) {
    if (*app != kApplicationId) {
      return Error{Errc::StoreForeignFile,
                   fmt::format("{}: SQLite file with application_id {:#x}, expected {:#x}", path,
                               *app, kApplicationId)};
    }
    if (*version > kSchemaVersion) {
      return Error{Errc::StoreNewerSchema,
                   fmt::format("{}: schema version {}, this build knows up to {}", path, *version,
                               kSchemaVersion)};
    }
    if (*version != kSchemaVersion) {
      return Error{Errc::StoreForeignFile,
                   fmt::format("{}: unknown schema version {}", path, *version)};
    }
  }

  // journal_mode answers with the mode in force; anything but "wal" (e.g. a read-only
  // directory where the -wal file cannot be created) is an error.
  {
    auto stmt = prepare("PRAGMA journal_mode = WAL", "PRAGMA journal_mode = WAL");
    if (!stmt) return stmt.error();
    const int rc = sqlite3_step(stmt->get());
    if (rc != SQLITE_ROW) return fail(rc, "PRAGMA journal_mode = WAL");
    const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt->get(), 0));
    if (mode == nullptr || std::string_view{mode} != "wal") {
      return Error{
          make_sqlite_error(SQLITE_CANTOPEN),
          fmt::format("{}: cannot use WAL journal mode (got {})", path, mode ? mode : "nothing")};
    }
  }
  if (auto r = exec(options.sync == Sync::full ? "PRAGMA synchronous = FULL"
                                               : "PRAGMA synchronous = NORMAL");
      !r) {
    return r;
  }
  // The WAL is reused after each checkpoint; cap what a large batch leaves on disk.
  if (auto r = exec("PRAGMA journal_size_limit = 67108864"); !r) return r;

  if (fresh) {
    // One transaction: a crash leaves either an empty file or a complete version-1 store.
    const auto create = fmt::format(
        "BEGIN IMMEDIATE; {} PRAGMA application_id = {}; PRAGMA user_version = {}; COMMIT;",
        kCreateSchema, kApplicationId, kSchemaVersion);
    if (auto r = exec(create); !r) {
      if (sqlite3_get_autocommit(db.get()) == 0) (void)exec("ROLLBACK");
      return r;
    }
  } else {
    // Take the write lock now, so that a second daemon fails at open rather than at its first
    // commit.
    if (auto r = exec("BEGIN IMMEDIATE; COMMIT;"); !r) return r;
  }

  // Preparing against the table also checks it has the columns we use.
  auto prepared = [&](StmtPtr& out, std::string_view sql) -> Result<void> {
    auto stmt = prepare(sql, "preparing statements");
    if (!stmt) return stmt.error();
    out = std::move(*stmt);
    return {};
  };
  for (auto [out, sql] : std::array<std::pair<StmtPtr*, std::string_view>, 6>{{
           {&begin, "BEGIN IMMEDIATE"},
           {&commit, "COMMIT"},
           {&rollback, "ROLLBACK"},
           {&put, kPut},
           {&erase, kErase},
           {&select_all, kSelectAll},
       }}) {
    if (auto r = prepared(*out, sql); !r) {
      return Error{Errc::StoreForeignFile, r.error().detail};
    }
  }
  return {};
}

Result<std::unique_ptr<SqliteLeaseStore>> SqliteLeaseStore::open(const std::string& path,
                                                                 SqliteOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE |
                          // One thread uses the connection: skip SQLite's per-call mutex.
                          SQLITE_OPEN_NOMUTEX,
                      nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) return impl->fail(rc, "open");
  if (auto r = impl->open_or_create(options); !r) return r.error();
  return std::unique_ptr<SqliteLeaseStore>{new SqliteLeaseStore{std::move(impl)}};
}

SqliteLeaseStore::SqliteLeaseStore(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}

SqliteLeaseStore::~SqliteLeaseStore() {
  // Statements go before the connection (sqlite3_close_v2 would defer the close otherwise).
  if (impl_) {
    impl_->begin.reset();
    impl_->commit.reset();
    impl_->rollback.reset();
    impl_->put.reset();
    impl_->erase.reset();
    impl_->select_all.reset();
  }
}

void SqliteLeaseStore::put(const Lease& lease, Completion done) {
  impl_->pending.push_back(Impl::Op{.lease = lease, .erase = false, .done = std::move(done)});
}

void SqliteLeaseStore::erase(core::Ipv4Address ipv4, Completion done) {
  Impl::Op op{.lease = {}, .erase = true, .done = std::move(done)};
  op.lease.ipv4 = ipv4;
  impl_->pending.push_back(std::move(op));
}

std::size_t SqliteLeaseStore::pending() const noexcept {
  return impl_->pending.size();
}

Result<std::size_t> SqliteLeaseStore::commit() {
  if (impl_->pending.empty()) return std::size_t{0};
  // Take the batch first: completions that queue more operations start the next batch.
  auto batch = std::exchange(impl_->pending, {});
  const auto outcome = impl_->write_batch(batch);
  for (auto& op : batch) {
    if (op.done) op.done(outcome);
  }
  if (!outcome) return outcome.error();
  return batch.size();
}

Result<std::size_t> SqliteLeaseStore::load_all(const std::function<void(const Lease&)>& visit) {
  auto* s = impl_->select_all.get();
  Lease lease;
  std::size_t count = 0;
  const auto bad_row = [&](std::int64_t ipv4, std::string_view why) {
    sqlite3_reset(s);
    return Error{Errc::StoreBadRow, fmt::format("{}: row ipv4={}: {}", impl_->path, ipv4, why)};
  };
  for (;;) {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      auto err = impl_->fail(rc, "reading leases");
      sqlite3_reset(s);
      return err;
    }
    const auto ipv4 = sqlite3_column_int64(s, 0);
    if (ipv4 < 0 || ipv4 > std::numeric_limits<std::uint32_t>::max()) {
      return bad_row(ipv4, "ipv4 out of range");
    }
    if (sqlite3_column_type(s, 1) != SQLITE_BLOB || sqlite3_column_bytes(s, 1) != 16) {
      return bad_row(ipv4, "ipv6 is not a 16-byte blob");
    }
    if (sqlite3_column_type(s, 2) != SQLITE_TEXT || sqlite3_column_type(s, 3) != SQLITE_TEXT) {
      return bad_row(ipv4, "identity or tep is not text");
    }
    if (sqlite3_column_type(s, 4) != SQLITE_INTEGER ||
        sqlite3_column_type(s, 5) != SQLITE_INTEGER ||
        sqlite3_column_type(s, 6) != SQLITE_INTEGER) {
      return bad_row(ipv4, "a time or the state is not an integer");
    }
    const auto state = sqlite3_column_int64(s, 6);
    if (state != static_cast<int>(LeaseState::active) &&
        state != static_cast<int>(LeaseState::expired)) {
      return bad_row(ipv4, fmt::format("unknown state {}", state));
    }

    core::Ipv6Address::Octets octets;
    std::memcpy(octets.data(), sqlite3_column_blob(s, 1), octets.size());
    const auto text = [&](int col) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
      return std::string_view{p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, col))};
    };
    lease.ipv4 = core::Ipv4Address{static_cast<std::uint32_t>(ipv4)};
    lease.client = core::Ipv6Address{octets};
    lease.identity.assign(text(2));
    lease.tep.assign(text(3));
    lease.granted_at = sqlite3_column_int64(s, 4);
    lease.expires_at = sqlite3_column_int64(s, 5);
    lease.state = static_cast<LeaseState>(state);
    visit(lease);
    ++count;
  }
  sqlite3_reset(s);
  return count;
}

}  // namespace dstm_server
