// The SQLite handle behind the user store and the config history.
#include "sqlite.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace web::sqlite {

namespace {

struct Finalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

}  // namespace

boost::system::result<Database, std::string> Database::open(const std::filesystem::path& path) {
  // Created here rather than by SQLite so that the file never exists with a wider mode.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return path.string() + ": " + std::strerror(errno);
  ::close(fd);
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = path.string() + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return message;
  }
  sqlite3_busy_timeout(db, 1000);
  Database out{db};
  if (auto r = out.exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"); !r)
    return path.string() + ": " + r.error();
  return out;
}

Database::Database(Database&& other) noexcept : db_{std::exchange(other.db_, nullptr)} {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

std::string Database::error(std::string_view what) const {
  return std::string{what} + ": " + sqlite3_errmsg(db_);
}

boost::system::result<void, std::string> Database::exec(std::string_view sql,
                                                        const std::vector<Value>& params) {
  if (params.empty()) {
    const std::string text{sql};
    char* message = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string out = message ? message : "unknown error";
      sqlite3_free(message);
      return out;
    }
    return {};
  }
  auto rows = query(sql, params);
  if (!rows) return rows.error();
  return {};
}

boost::system::result<std::vector<Row>, std::string> Database::query(
    std::string_view sql, const std::vector<Value>& params) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) != SQLITE_OK)
    return error("prepare");
  const Statement stmt{raw};
  for (std::size_t i = 0; i < params.size(); ++i) {
    const int index = static_cast<int>(i + 1);
    int rc = SQLITE_OK;
    if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
      rc = sqlite3_bind_int64(raw, index, *n);
    } else if (const auto* s = std::get_if<std::string>(&params[i])) {
      rc = sqlite3_bind_text(raw, index, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
    } else {
      rc = sqlite3_bind_null(raw, index);
    }
    if (rc != SQLITE_OK) return error("bind");
  }
  std::vector<Row> rows;
  for (;;) {
    const int rc = sqlite3_step(raw);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return error("step");
    Row row;
    const int columns = sqlite3_column_count(raw);
    for (int c = 0; c < columns; ++c) {
      switch (sqlite3_column_type(raw, c)) {
        case SQLITE_INTEGER:
          row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(raw, c)));
          break;
        case SQLITE_NULL:
          row.emplace_back(nullptr);
          break;
        default: {
          const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, c));
          const auto size = static_cast<std::size_t>(sqlite3_column_bytes(raw, c));
          row.emplace_back(text ? std::string{text, size} : std::string{});
        }
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::int64_t Database::last_insert_id() const noexcept {
  return sqlite3_last_insert_rowid(db_);
}

boost::system::result<void, std::string> Database::transaction(
    const std::function<boost::system::result<void, std::string>()>& fn) {
  if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
  auto r = fn();
  if (!r) {
    (void)exec("ROLLBACK");
    return r;
  }
  if (auto c = exec("COMMIT"); !c) {
    (void)exec("ROLLBACK");
    return c;
  }
  return {};
}

}  // namespace web::sqlite
