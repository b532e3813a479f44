// Revisions of the config document in SQLite, the pending apply, and atomic file writes.
#include "web/config_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <boost/json.hpp>

#include "platform/config.hpp"
#include "sqlite.hpp"

namespace web {

namespace json = boost::json;

namespace {

constexpr std::string_view kCurrent = "current_revision";
constexpr std::string_view kPending = "pending_apply";

std::string pending_text(const PendingApply& p) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(p.deadline.time_since_epoch()).count();
  return json::serialize(
      json::object{{"revision", p.revision}, {"previous", p.previous}, {"deadline_ms", ms}});
}

std::optional<PendingApply> parse_pending(std::string_view text) {
  auto v = platform::parse_json(text);
  if (!v) return std::nullopt;
  const auto* o = v->if_object();
  if (!o) return std::nullopt;
  const auto* r = o->if_contains("revision");
  const auto* p = o->if_contains("previous");
  const auto* d = o->if_contains("deadline_ms");
  if (!r || !p || !d || !r->is_int64() || !p->is_int64() || !d->is_int64()) return std::nullopt;
  return PendingApply{r->as_int64(), p->as_int64(),
                      TimePoint{std::chrono::milliseconds{d->as_int64()}}};
}

Revision revision_of(const sqlite::Row& row) {
  return Revision{sqlite::as_int(row[0]),
                  sqlite::as_int(row[1]),
                  sqlite::as_text(row[2]),
                  sqlite::as_text(row[3]),
                  parse_revision_state(sqlite::as_text(row[4])).value_or(RevisionState::Applied),
                  sqlite::as_optional_int(row[5])};
}

std::string errno_text(std::string_view what, const std::filesystem::path& path) {
  return std::string{what} + " " + path.string() + ": " + std::strerror(errno);
}

void pretty(std::string& out, const json::value& v, int indent) {
  const auto pad = [&](int n) { out.append(static_cast<std::size_t>(n) * 2, ' '); };
  if (const auto* o = v.if_object()) {
    if (o->empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& [key, member] : *o) {
      if (!first) out += ",\n";
      first = false;
      pad(indent + 1);
      out += json::serialize(json::string{key});
      out += ": ";
      pretty(out, member, indent + 1);
    }
    out += "\n";
    pad(indent);
    out += "}";
  } else if (const auto* a = v.if_array()) {
    if (a->empty()) {
      out += "[]";
      return;
    }
    // Arrays of scalars stay on one line (prefix lists, address lists).
    const bool flat =
        std::all_of(a->begin(), a->end(), [](const json::value& e) { return !e.is_structured(); });
    if (flat) {
      out += json::serialize(*a);
      return;
    }
    out += "[\n";
    bool first = true;
    for (const auto& e : *a) {
      if (!first) out += ",\n";
      first = false;
      pad(indent + 1);
      pretty(out, e, indent + 1);
    }
    out += "\n";
    pad(indent);
    out += "]";
  } else {
    out += json::serialize(v);
  }
}

}  // namespace

std::string_view to_string(RevisionState state) noexcept {
  switch (state) {
    case RevisionState::Applied:
      return "applied";
    case RevisionState::Pending:
      return "pending";
    case RevisionState::Confirmed:
      return "confirmed";
    case RevisionState::RolledBack:
      return "rolled_back";
    case RevisionState::Reverted:
      return "reverted";
  }
  return "applied";
}

std::optional<RevisionState> parse_revision_state(std::string_view text) noexcept {
  for (const auto s : {RevisionState::Applied, RevisionState::Pending, RevisionState::Confirmed,
                       RevisionState::RolledBack, RevisionState::Reverted})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

ConfigStore::ConfigStore(std::unique_ptr<sqlite::Database> db) : db_{std::move(db)} {}
ConfigStore::~ConfigStore() = default;

boost::system::result<std::unique_ptr<ConfigStore>, std::string> ConfigStore::open(
    const std::filesystem::path& database) {
  auto db = sqlite::Database::open(database);
  if (!db) return db.error();
  auto owned = std::make_unique<sqlite::Database>(std::move(*db));
  if (auto r = owned->exec(
          "CREATE TABLE IF NOT EXISTS revisions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
          "time INTEGER NOT NULL, user TEXT NOT NULL, comment TEXT NOT NULL, state TEXT NOT NULL, "
          "revert_of INTEGER, document TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
      !r)
    return database.string() + ": " + r.error();
  return std::unique_ptr<ConfigStore>{new ConfigStore{std::move(owned)}};
}

boost::system::result<void, std::string> ConfigStore::set_meta(std::string_view key,
                                                               std::optional<std::string> value) {
  if (!value) return db_->exec("DELETE FROM meta WHERE key = ?", {std::string{key}});
  return db_->exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                   {std::string{key}, std::move(*value)});
}

std::optional<std::string> ConfigStore::meta(std::string_view key) const {
  auto rows = db_->query("SELECT value FROM meta WHERE key = ?", {std::string{key}});
  if (!rows || rows->empty()) return std::nullopt;
  return sqlite::as_text(rows->front()[0]);
}

boost::system::result<void, std::string> ConfigStore::prune() {
  const auto keep_current = current().value_or(0);
  const auto keep_previous = pending() ? pending()->previous : 0;
  return db_->exec(
      "DELETE FROM revisions WHERE id NOT IN (SELECT id FROM revisions ORDER BY id DESC LIMIT ?) "
      "AND id != ? AND id != ?",
      {static_cast<std::int64_t>(kKeep), keep_current, keep_previous});
}

boost::system::result<std::int64_t, std::string> ConfigStore::add(
    const json::value& document, const Revision& meta_in, std::optional<PendingApply> pending_in) {
  std::int64_t id = 0;
  auto r = db_->transaction([&]() -> boost::system::result<void, std::string> {
    if (auto ins = db_->exec(
            "INSERT INTO revisions (time, user, comment, state, revert_of, document) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            {meta_in.time, meta_in.user, meta_in.comment, std::string{to_string(meta_in.state)},
             meta_in.revert_of ? sqlite::Value{*meta_in.revert_of} : sqlite::Value{nullptr},
             json::serialize(document)});
        !ins)
      return ins;
    id = db_->last_insert_id();
    if (auto c = set_meta(kCurrent, std::to_string(id)); !c) return c;
    if (pending_in) pending_in->revision = id;
    if (auto p = set_meta(kPending,
                          pending_in ? std::optional{pending_text(*pending_in)} : std::nullopt);
        !p)
      return p;
    return prune();
  });
  if (!r) return r.error();
  return id;
}

boost::system::result<void, std::string> ConfigStore::discard(std::int64_t revision,
                                                              std::int64_t current_id) {
  return db_->transaction([&]() -> boost::system::result<void, std::string> {
    if (auto d = db_->exec("DELETE FROM revisions WHERE id = ?", {revision}); !d) return d;
    if (auto c = set_meta(kCurrent, std::to_string(current_id)); !c) return c;
    return set_meta(kPending, std::nullopt);
  });
}

boost::system::result<void, std::string> ConfigStore::settle(std::int64_t revision,
                                                             RevisionState state,
                                                             std::int64_t current_id) {
  return db_->transaction([&]() -> boost::system::result<void, std::string> {
    if (auto s = db_->exec("UPDATE revisions SET state = ? WHERE id = ?",
                           {std::string{to_string(state)}, revision});
        !s)
      return s;
    if (auto c = set_meta(kCurrent, std::to_string(current_id)); !c) return c;
    return set_meta(kPending, std::nullopt);
  });
}

boost::system::result<void, std::string> ConfigStore::set_pending(const PendingApply& pending_in) {
  return set_meta(kPending, pending_text(pending_in));
}

boost::system::result<std::vector<Revision>, std::string> ConfigStore::list(
    std::size_t limit) const {
  auto rows = db_->query(
      "SELECT id, time, user, comment, state, revert_of FROM revisions ORDER BY id DESC LIMIT ?",
      {static_cast<std::int64_t>(limit)});
  if (!rows) return rows.error();
  std::vector<Revision> out;
  for (const auto& row : *rows) out.push_back(revision_of(row));
  return out;
}

boost::system::result<std::optional<Revision>, std::string> ConfigStore::revision(
    std::int64_t id) const {
  auto rows = db_->query(
      "SELECT id, time, user, comment, state, revert_of FROM revisions WHERE id = ?", {id});
  if (!rows) return {boost::system::in_place_error, rows.error()};
  if (rows->empty()) return std::optional<Revision>{};
  return std::optional<Revision>{revision_of(rows->front())};
}

boost::system::result<std::optional<json::value>, std::string> ConfigStore::document(
    std::int64_t id) const {
  using Result = boost::system::result<std::optional<json::value>, std::string>;
  auto rows = db_->query("SELECT document FROM revisions WHERE id = ?", {id});
  if (!rows) return Result{boost::system::in_place_error, rows.error()};
  if (rows->empty()) return std::optional<json::value>{};
  auto parsed = platform::parse_json(sqlite::as_text(rows->front()[0]));
  if (!parsed)
    return Result{boost::system::in_place_error,
                  "revision " + std::to_string(id) + ": the stored document does not parse"};
  return std::optional<json::value>{std::move(*parsed)};
}

std::optional<std::int64_t> ConfigStore::current() const {
  const auto text = meta(kCurrent);
  if (!text) return std::nullopt;
  try {
    return std::stoll(*text);
  } catch (...) {  // a damaged meta row: as if there were none
    return std::nullopt;
  }
}

std::optional<PendingApply> ConfigStore::pending() const {
  const auto text = meta(kPending);
  return text ? parse_pending(*text) : std::nullopt;
}

boost::system::result<void, std::string> write_file_atomic(const std::filesystem::path& path,
                                                           std::string_view content,
                                                           unsigned mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path{"."};
  auto tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errno_text("cannot create", tmp);
  (void)::fchmod(fd, mode);  // the umask may have narrowed it
  std::size_t done = 0;
  while (done < content.size()) {
    const auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = errno_text("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = errno_text("cannot sync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto e = errno_text("cannot rename onto", path);
    ::unlink(tmp.c_str());
    return e;
  }
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    (void)::fsync(d);
    ::close(d);
  }
  return {};
}

std::string format_document(const json::value& document) {
  std::string out;
  pretty(out, document, 0);
  out += '\n';
  return out;
}

}  // namespace web
