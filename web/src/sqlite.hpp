// A minimal SQLite handle for the dashboard's state (web.db): open with mode 0600, run
// statements with bound values, read rows. Errors are strings for the operator. Private to web.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/system/result.hpp>

struct sqlite3;

namespace web::sqlite {

using Value = std::variant<std::nullptr_t, std::int64_t, std::string>;
using Row = std::vector<Value>;

class Database {
 public:
  // Creates the file with mode 0600 when it does not exist (it holds password hashes), waits up
  // to a second for a lock held by another connection.
  static boost::system::result<Database, std::string> open(const std::filesystem::path& path);
  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  // One statement (or several without parameters: schema scripts, when params is empty).
  boost::system::result<void, std::string> exec(std::string_view sql,
                                                const std::vector<Value>& params = {});
  // Every row of one statement.
  boost::system::result<std::vector<Row>, std::string> query(std::string_view sql,
                                                             const std::vector<Value>& params = {});
  std::int64_t last_insert_id() const noexcept;

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT; rolls back when fn returns an error.
  boost::system::result<void, std::string> transaction(
      const std::function<boost::system::result<void, std::string>()>& fn);

 private:
  explicit Database(sqlite3* db) : db_{db} {}
  std::string error(std::string_view what) const;
  sqlite3* db_ = nullptr;
};

inline std::int64_t as_int(const Value& v) {
  const auto* i = std::get_if<std::int64_t>(&v);
  return i ? *i : 0;
}
inline std::string as_text(const Value& v) {
  const auto* s = std::get_if<std::string>(&v);
  return s ? *s : std::string{};
}
inline std::optional<std::int64_t> as_optional_int(const Value& v) {
  const auto* i = std::get_if<std::int64_t>(&v);
  return i ? std::optional{*i} : std::nullopt;
}

}  // namespace web::sqlite
