// Tests for dstm_server/sqlite_lease_store.hpp on real SQLite files in a fresh temporary
// directory: group commit, restart, a killed writer, failed commits, corrupt and foreign files.
#include "dstm_server/sqlite_lease_store.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dstm_server/lease_table.hpp"

using core::Ipv4Address;
using core::Ipv4Prefix;
using core::Ipv6Address;
using dstm_server::Errc;
using dstm_server::Lease;
using dstm_server::LeaseState;
using dstm_server::LeaseStore;
using dstm_server::LeaseTable;
using dstm_server::LeaseView;
using dstm_server::Pool;
using dstm_server::PoolConfig;
using dstm_server::Result;
using dstm_server::SqliteLeaseStore;

namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    auto pattern = (fs::temp_directory_path() / "dstm-lease-store-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Lease number n: an address in 198.18.0.0/15 (RFC 2544 benchmark range; data only), a client
// in 2001:db8::/32, a mix of identities, TEPs and states.
Lease lease_n(std::uint32_t n) {
  Ipv6Address::Octets o{0x20, 0x01, 0x0d, 0xb8};
  o[12] = static_cast<std::uint8_t>(n >> 24);
  o[13] = static_cast<std::uint8_t>(n >> 16);
  o[14] = static_cast<std::uint8_t>(n >> 8);
  o[15] = static_cast<std::uint8_t>(n);
  return Lease{.ipv4 = Ipv4Address{0xC6120000u + n},
               .client = Ipv6Address{o},
               .identity = n % 2 ? "user" + std::to_string(n) : std::string{},
               .tep = "tep-" + std::to_string(n % 3),
               .granted_at = 1000 + n,
               .expires_at = 5000 + n,
               .state = n % 5 == 0 ? LeaseState::expired : LeaseState::active};
}

std::map<std::uint32_t, Lease> load(LeaseStore& store) {
  std::map<std::uint32_t, Lease> out;
  auto n = store.load_all([&](const Lease& l) { out.emplace(l.ipv4.to_uint(), l); });
  REQUIRE(n);
  CHECK(*n == out.size());
  return out;
}

std::unique_ptr<SqliteLeaseStore> open_store(const std::string& path) {
  auto store = SqliteLeaseStore::open(path);
  if (!store) FAIL(store.error().message());
  return std::move(*store);
}

// Runs SQL on a file directly (to craft foreign, newer or damaged files).
void raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

void write_bytes(const std::string& path, std::size_t offset, const std::string& bytes) {
  std::fstream f{path, std::ios::in | std::ios::out | std::ios::binary};
  REQUIRE(f);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f);
}

}  // namespace

TEST_CASE("lease store: a new file round-trips leases", "[dstm_server][store]") {
  TempDir dir;
  const auto path = dir.file("leases.db");
  {
    auto store = open_store(path);
    CHECK(load(*store).empty());
    for (std::uint32_t n = 0; n < 10; ++n) store->put(lease_n(n), nullptr);
    CHECK(store->commit().value() == 10);
  }
  auto store = open_store(path);
  const auto stored = load(*store);
  REQUIRE(stored.size() == 10);
  for (std::uint32_t n = 0; n < 10; ++n) CHECK(stored.at(lease_n(n).ipv4.to_uint()) == lease_n(n));
}

TEST_CASE("lease store: completions run only when the transaction holding them commits",
          "[dstm_server][store]") {
  TempDir dir;
  auto store = open_store(dir.file("leases.db"));
  std::vector<std::string> events;
  const auto done = [&](std::string name) {
    return [&events, name](const Result<void>& r) {
      CHECK(r.has_value());
      events.push_back(name);
    };
  };
  store->put(lease_n(1), done("put 1"));
  store->put(lease_n(2), done("put 2"));
  store->erase(lease_n(1).ipv4, done("erase 1"));
  CHECK(events.empty());
  CHECK(store->pending() == 3);

  // A completion that queues more work starts the next batch.
  store->put(lease_n(3), [&](const Result<void>& r) {
    CHECK(r.has_value());
    events.push_back("put 3");
    store->put(lease_n(4), done("put 4"));
  });
  CHECK(store->commit().value() == 4);
  CHECK(events == std::vector<std::string>{"put 1", "put 2", "erase 1", "put 3"});
  CHECK(store->pending() == 1);
  CHECK(store->commit().value() == 1);
  CHECK(events.back() == "put 4");
  CHECK(store->commit().value() == 0);  // nothing queued

  const auto stored = load(*store);
  CHECK(stored.size() == 3);
  CHECK(stored.count(lease_n(1).ipv4.to_uint()) == 0);
}

TEST_CASE("lease store: operations on one address apply in queue order", "[dstm_server][store]") {
  TempDir dir;
  auto store = open_store(dir.file("leases.db"));
  auto renewed = lease_n(7);
  renewed.expires_at += 3600;
  renewed.tep = "tep-other";
  store->put(lease_n(7), nullptr);
  store->put(renewed, nullptr);
  store->put(lease_n(8), nullptr);
  store->erase(lease_n(8).ipv4, nullptr);
  store->erase(lease_n(9).ipv4, nullptr);  // never stored: not an error
  store->put(lease_n(9), nullptr);
  REQUIRE(store->commit());
  const auto stored = load(*store);
  REQUIRE(stored.size() == 2);
  CHECK(stored.at(renewed.ipv4.to_uint()) == renewed);
  CHECK(stored.at(lease_n(9).ipv4.to_uint()) == lease_n(9));
}

TEST_CASE("lease store: a restart restores every lease and exactly the same free pool",
          "[dstm_server][store]") {
  TempDir dir;
  const auto path = dir.file("leases.db");
  const PoolConfig config{.prefixes = {Ipv4Prefix::parse("198.51.100.0/24").value(),
                                       Ipv4Prefix::parse("203.0.113.0/25").value()},
                          .tep_addresses = {Ipv4Address::parse("203.0.113.1").value()}};
  const auto free_set = [](const Pool& pool) {
    std::set<std::uint32_t> out;
    for (const auto& p : pool.prefixes()) {
      for (const auto a : p) {
        if (pool.contains(a) && !pool.is_allocated(a)) out.insert(a.to_uint());
      }
    }
    return out;
  };
  const auto leases = [](const LeaseTable& t) {
    std::map<std::uint32_t, Lease> out;
    t.for_each([&](const LeaseView& v) { out.emplace(v.ipv4.to_uint(), v.to_lease()); });
    return out;
  };

  std::map<std::uint32_t, Lease> before;
  std::set<std::uint32_t> free_before;
  dstm_server::Seconds now = 0;
  {
    // Drive a table the way the daemon will: every change goes to the store.
    LeaseTable t{Pool::make(config).value(), /*grace=*/40};
    auto store = open_store(path);
    std::mt19937 rng{7};
    for (int step = 0; step < 3000; ++step) {
      const auto n = static_cast<std::uint32_t>(rng() % 400);
      Ipv6Address::Octets o{0x20, 0x01, 0x0d, 0xb8};
      o[14] = static_cast<std::uint8_t>(n >> 8);
      o[15] = static_cast<std::uint8_t>(n);
      const std::string identity = n % 4 ? "u" + std::to_string(n) : "";
      switch (rng() % 8) {
        case 0:
          if (auto r = t.release(Ipv6Address{o}, identity)) store->erase(r->ipv4, nullptr);
          break;
        case 1: {
          now += static_cast<dstm_server::Seconds>(rng() % 10);
          auto r = t.reap(now);
          for (const auto& l : r.expired) store->put(l, nullptr);
          for (const auto& l : r.removed) store->erase(l.ipv4, nullptr);
          break;
        }
        default:
          if (auto g = t.acquire(Ipv6Address{o}, identity, "tep-" + std::to_string(n % 3), now,
                                 20 + static_cast<dstm_server::Seconds>(rng() % 60))) {
            if (g->evicted) store->erase(g->evicted->ipv4, nullptr);
            store->put(g->lease, nullptr);
          }
      }
      if (step % 50 == 0) REQUIRE(store->commit());
    }
    REQUIRE(store->commit());
    before = leases(t);
    free_before = free_set(t.pool());
    REQUIRE(before.size() > 50);
    REQUIRE(t.held() > 0);
  }

  LeaseTable t{Pool::make(config).value(), /*grace=*/40};
  auto store = open_store(path);
  auto n = store->load_all([&](const Lease& l) { REQUIRE(t.restore(l)); });
  REQUIRE(n);
  CHECK(*n == before.size());
  CHECK(leases(t) == before);
  CHECK(free_set(t.pool()) == free_before);
  CHECK(t.pool().used() == before.size());
  // Nothing was due that the first table had not already reaped.
  auto r = t.reap(now);
  CHECK(r.expired.empty());
  CHECK(r.removed.empty());
}

TEST_CASE("lease store: a writer killed mid-stream loses no lease whose completion it reported",
          "[dstm_server][store]") {
  TempDir dir;
  const auto path = dir.file("leases.db");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child: write leases in batches of 7 and report each completion. It never returns
    // into the test framework.
    ::close(fds[0]);
    auto opened = SqliteLeaseStore::open(path);
    if (!opened) ::_exit(2);
    auto& store = **opened;
    for (std::uint32_t n = 0; n < 131072; ++n) {
      store.put(lease_n(n), [fd = fds[1], n](const Result<void>& r) {
        if (!r || ::write(fd, &n, sizeof n) != sizeof n) ::_exit(3);
      });
      if (n % 7 == 6 && !store.commit()) ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::set<std::uint32_t> reported;
  std::uint32_t n = 0;
  bool killed = false;
  for (;;) {
    const auto got = ::read(fds[0], &n, sizeof n);
    if (got == 0) break;
    if (got < 0 && errno == EINTR) continue;
    REQUIRE(got == sizeof n);
    reported.insert(n);
    if (!killed && reported.size() >= 400) {
      REQUIRE(::kill(pid, SIGKILL) == 0);
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);

  auto store = open_store(path);
  const auto stored = load(*store);
  INFO(reported.size() << " reported, " << stored.size() << " stored");
  CHECK(stored.size() >= reported.size());
  for (const auto r : reported) {
    const auto it = stored.find(lease_n(r).ipv4.to_uint());
    REQUIRE(it != stored.end());
    CHECK(it->second == lease_n(r));
  }
}

TEST_CASE("lease store: a failed commit reports the error to the whole batch and stores none of it",
          "[dstm_server][store]") {
  TempDir dir;
  const auto path = dir.file("leases.db");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child fills its file-size limit in the middle of a batch (EFBIG instead of SIGXFSZ),
    // reporting one byte per completion: 1 ok, 0 error, then 2 if commit() returned an error.
    ::close(fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    auto opened = SqliteLeaseStore::open(path);
    if (!opened) ::_exit(2);
    auto& store = **opened;
    const auto report = [fd = fds[1]](const Result<void>& r) {
      const char c = r ? 1 : 0;
      if (::write(fd, &c, 1) != 1) ::_exit(3);
    };
    store.put(lease_n(0), report);
    if (!store.commit()) ::_exit(4);
    const rlimit limit{256 * 1024, 256 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(5);
    for (std::uint32_t n = 1; n <= 2000; ++n) {
      auto l = lease_n(n);
      l.identity = std::string(200, 'x') + std::to_string(n);
      store.put(l, report);
    }
    if (!store.commit()) {
      const char c = 2;
      if (::write(fds[1], &c, 1) != 1) ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string reports;
  char c = 0;
  for (;;) {
    const auto got = ::read(fds[0], &c, 1);
    if (got == 0) break;
    if (got < 0 && errno == EINTR) continue;
    REQUIRE(got == 1);
    reports.push_back(c);
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  REQUIRE(reports.size() == 1 + 2000 + 1);
  CHECK(reports[0] == 1);
  CHECK(reports.find(char{1}, 1) == std::string::npos);  // no lease of the batch succeeded
  CHECK(reports.back() == 2);

  auto store = open_store(path);
  const auto stored = load(*store);
  REQUIRE(stored.size() == 1);
  CHECK(stored.begin()->second == lease_n(0));
}

TEST_CASE("lease store: a second open of a file in use is refused", "[dstm_server][store]") {
  TempDir dir;
  const auto path = dir.file("leases.db");
  auto first = open_store(path);
  auto second = SqliteLeaseStore::open(path);
  REQUIRE_FALSE(second);
  CHECK(second.error().code == dstm_server::make_sqlite_error(SQLITE_BUSY));
  CHECK(second.error().message().find("database is locked") != std::string::npos);
  first.reset();
  CHECK(SqliteLeaseStore::open(path));
}

TEST_CASE("lease store: corrupt, foreign and newer files are clear errors, not crashes",
          "[dstm_server][store]") {
  TempDir dir;

  SECTION("not a database") {
    const auto path = dir.file("garbage.db");
    std::ofstream{path, std::ios::binary} << std::string(8192, '\x5a');
    auto store = SqliteLeaseStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == dstm_server::make_sqlite_error(SQLITE_NOTADB));
    CHECK(store.error().message().find("file is not a database") != std::string::npos);
    CHECK(store.error().detail.find(path) != std::string::npos);
  }
  SECTION("another application's SQLite file") {
    const auto path = dir.file("other.db");
    raw_sql(path, "CREATE TABLE things (x INTEGER);");
    auto store = SqliteLeaseStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error() == Errc::StoreForeignFile);
    CHECK(store.error().detail.find(path) != std::string::npos);
  }
  SECTION("a newer schema version") {
    const auto path = dir.file("newer.db");
    open_store(path).reset();
    raw_sql(path, "PRAGMA user_version = 2;");
    auto store = SqliteLeaseStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error() == Errc::StoreNewerSchema);
  }
  SECTION("our id and version but another table shape") {
    const auto path = dir.file("shape.db");
    raw_sql(path,
            "CREATE TABLE leases (ipv4 INTEGER PRIMARY KEY); PRAGMA application_id = 1146311757;"
            "PRAGMA user_version = 1;");
    auto store = SqliteLeaseStore::open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error() == Errc::StoreForeignFile);
    INFO(store.error().message());
    CHECK(store.error().detail.find("has no column named ipv6") != std::string::npos);
  }
  SECTION("a row that does not decode") {
    const auto path = dir.file("row.db");
    {
      auto store = open_store(path);
      store->put(lease_n(1), nullptr);
      REQUIRE(store->commit());
    }
    raw_sql(path, "INSERT INTO leases VALUES (3323068418, x'20010db8', '', 'tep', 0, 10, 1);");
    auto store = open_store(path);
    auto n = store->load_all([](const Lease&) {});
    REQUIRE_FALSE(n);
    CHECK(n.error() == Errc::StoreBadRow);
    CHECK(n.error().detail.find("3323068418") != std::string::npos);
  }
  SECTION("damaged pages") {
    const auto path = dir.file("damaged.db");
    {
      auto store = open_store(path);
      for (std::uint32_t n = 0; n < 2000; ++n) store->put(lease_n(n), nullptr);
      REQUIRE(store->commit());
    }
    REQUIRE(fs::file_size(path) > 16 * 4096);
    // Overwrite the pages after the first two (schema and table root stay readable).
    write_bytes(path, 2 * 4096, std::string(12 * 4096, '\xa5'));
    auto store = SqliteLeaseStore::open(path);
    const auto code =
        store ? (*store)->load_all([](const Lease&) {}).error().code : store.error().code;
    CHECK(code.category() == dstm_server::sqlite_category());
    CHECK((code.value() & 0xff) == SQLITE_CORRUPT);
  }
}
