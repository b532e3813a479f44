// The history of the appliance config document as the dashboard changed it: every applied
// document is a revision (tables "revisions" and "meta" of <state_dir>/web.db), which revision is
// live, and the apply waiting for confirmation, persisted so that a restarted dashboard still
// rolls it back. Also the atomic write of the document file itself. Single-threaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "web/auth.hpp"

namespace web {

namespace sqlite {
class Database;
}

// What became of a revision:
//   applied      written and live without a confirmation window (or the starting document)
//   pending      written and live, waiting for POST /api/config/confirm
//   confirmed    was pending, confirmed
//   rolled_back  was pending and not confirmed (or rolled back by hand): the document before it
//                was restored
//   reverted     a revert to an older revision (revert_of) that took effect: applied, or
//                pending and then confirmed
enum class RevisionState { Applied, Pending, Confirmed, RolledBack, Reverted };

std::string_view to_string(RevisionState state) noexcept;
std::optional<RevisionState> parse_revision_state(std::string_view text) noexcept;

struct Revision {
  std::int64_t id = 0;
  std::int64_t time = 0;  // Unix seconds
  std::string user;       // who applied it; "(file)" for a document changed outside the dashboard
  std::string comment;
  RevisionState state = RevisionState::Applied;
  std::optional<std::int64_t> revert_of;
};

// An apply waiting for confirmation.
struct PendingApply {
  std::int64_t revision = 0;  // the applied revision
  std::int64_t previous = 0;  // the revision to restore when the window runs out
  TimePoint deadline;
  bool operator==(const PendingApply&) const = default;
};

class ConfigStore {
 public:
  // How many revisions are kept (older ones are deleted, never the live one or a pending
  // apply's previous one).
  static constexpr std::size_t kKeep = 100;

  static boost::system::result<std::unique_ptr<ConfigStore>, std::string> open(
      const std::filesystem::path& database);
  ~ConfigStore();
  ConfigStore(const ConfigStore&) = delete;
  ConfigStore& operator=(const ConfigStore&) = delete;

  // In one transaction: stores the document as a new revision, makes it the live one and sets
  // (or clears) the pending apply. `pending` carries the deadline and previous revision; its
  // `revision` member is filled in. Returns the new revision's id.
  boost::system::result<std::int64_t, std::string> add(const boost::json::value& document,
                                                       const Revision& meta,
                                                       std::optional<PendingApply> pending);
  // Undoes add() whose document could not be written: deletes the revision, makes `current` live
  // again and clears the pending apply (an apply is refused while one is pending).
  boost::system::result<void, std::string> discard(std::int64_t revision, std::int64_t current);
  // In one transaction: sets a revision's state, the live revision and clears the pending apply.
  boost::system::result<void, std::string> settle(std::int64_t revision, RevisionState state,
                                                  std::int64_t current);
  boost::system::result<void, std::string> set_pending(const PendingApply& pending);

  // Newest first.
  boost::system::result<std::vector<Revision>, std::string> list(std::size_t limit) const;
  boost::system::result<std::optional<Revision>, std::string> revision(std::int64_t id) const;
  // The stored document (unredacted); nullopt when there is no such revision.
  boost::system::result<std::optional<boost::json::value>, std::string> document(
      std::int64_t id) const;

  std::optional<std::int64_t> current() const;
  std::optional<PendingApply> pending() const;

 private:
  explicit ConfigStore(std::unique_ptr<sqlite::Database> db);
  boost::system::result<void, std::string> set_meta(std::string_view key,
                                                    std::optional<std::string> value);
  std::optional<std::string> meta(std::string_view key) const;
  boost::system::result<void, std::string> prune();
  std::unique_ptr<sqlite::Database> db_;
};

// Writes the file through a temporary file in the same directory, fsync and rename, then fsyncs
// the directory: a reader (or a crash) sees the old or the new content, never a mix. An existing
// file keeps its mode; a new one gets `mode`.
boost::system::result<void, std::string> write_file_atomic(const std::filesystem::path& path,
                                                           std::string_view content,
                                                           unsigned mode = 0640);

// The document as the dashboard writes it: pretty-printed, two-space indent, a final newline.
std::string format_document(const boost::json::value& document);

}  // namespace web
