// The config history in SQLite, the pending apply, and atomic file writes.
#include "web/config_store.hpp"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/config.hpp"
#include "support/daemon_process.hpp"

namespace {

namespace json = boost::json;
using web::ConfigStore;
using web::PendingApply;
using web::Revision;
using web::RevisionState;

const web::TimePoint kDeadline{std::chrono::milliseconds{1'800'000'123'456}};

Revision meta(std::string user, RevisionState state = RevisionState::Applied) {
  return Revision{0, 1'800'000'000, std::move(user), "comment", state, std::nullopt};
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in{p};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

}  // namespace

TEST_CASE("config_store: revisions, the live one and the pending apply survive a re-open",
          "[web]") {
  test::TempDir dir;
  {
    auto store = ConfigStore::open(dir / "web.db");
    REQUIRE(store);
    auto& s = **store;
    CHECK_FALSE(s.current());
    CHECK_FALSE(s.pending());
    const auto first = s.add(json::object{{"a", 1}}, meta("(system)"), std::nullopt);
    REQUIRE(first);
    CHECK(*first == 1);
    const auto second = s.add(json::object{{"a", 2}}, meta("admin", RevisionState::Pending),
                              PendingApply{0, 1, kDeadline});
    REQUIRE(second);
    CHECK(s.current() == 2);
    REQUIRE(s.pending());
    CHECK(*s.pending() == PendingApply{2, 1, kDeadline});
  }
  auto store = ConfigStore::open(dir / "web.db");
  REQUIRE(store);
  auto& s = **store;
  CHECK(s.current() == 2);
  CHECK(*s.pending() == PendingApply{2, 1, kDeadline});
  CHECK(**s.document(1) == json::value(json::object{{"a", 1}}));
  CHECK_FALSE(*s.document(9));

  REQUIRE(s.settle(2, RevisionState::RolledBack, 1));
  CHECK(s.current() == 1);
  CHECK_FALSE(s.pending());
  const auto list = s.list(50);
  REQUIRE(list);
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].id == 2);
  CHECK((*list)[0].state == RevisionState::RolledBack);
  CHECK((*list)[0].user == "admin");
  CHECK((*list)[1].state == RevisionState::Applied);
}

TEST_CASE("config_store: a discarded apply leaves no trace and old revisions are pruned", "[web]") {
  test::TempDir dir;
  auto store = ConfigStore::open(dir / "web.db");
  REQUIRE(store);
  auto& s = **store;
  REQUIRE(s.add(json::object{{"n", 0}}, meta("x"), std::nullopt));
  const auto id = s.add(json::object{{"n", 1}}, meta("x", RevisionState::Pending),
                        PendingApply{0, 1, kDeadline});
  REQUIRE(id);
  REQUIRE(s.discard(*id, 1));
  CHECK(s.current() == 1);
  CHECK_FALSE(s.pending());
  CHECK_FALSE(*s.revision(*id));

  for (int i = 0; i < 120; ++i) REQUIRE(s.add(json::object{{"n", i}}, meta("x"), std::nullopt));
  CHECK(s.list(1000)->size() == ConfigStore::kKeep);
  CHECK(s.list(50)->size() == 50);
}

TEST_CASE("config_store: revision states have stable names", "[web]") {
  for (const auto state : {RevisionState::Applied, RevisionState::Pending, RevisionState::Confirmed,
                           RevisionState::RolledBack, RevisionState::Reverted})
    CHECK(web::parse_revision_state(web::to_string(state)) == state);
  CHECK(web::to_string(RevisionState::RolledBack) == "rolled_back");
  CHECK_FALSE(web::parse_revision_state("gone"));
}

TEST_CASE("config_store: files are replaced atomically and keep their mode", "[web]") {
  test::TempDir dir;
  const auto file = dir / "appliance.json";
  REQUIRE(web::write_file_atomic(file, "one\n", 0600));
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  ::chmod(file.c_str(), 0644);
  REQUIRE(web::write_file_atomic(file, "two\n"));
  CHECK(read(file) == "two\n");
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  // Nothing else is left in the directory.
  CHECK(std::distance(std::filesystem::directory_iterator{dir.path()},
                      std::filesystem::directory_iterator{}) == 1);
  CHECK_FALSE(web::write_file_atomic(dir / "missing" / "x.json", "x"));
}

TEST_CASE("config_store: documents are written readable and parse back the same", "[web]") {
  const auto doc = platform::parse_json(
      R"({"dstm_server": {"pool": {"prefixes": ["198.51.100.0/24", "203.0.113.0/24"]},
          "teps": [{"name": "t", "weight": 2}], "auth": {}, "list": []}, "s": "a\"b"})");
  REQUIRE(doc);
  const auto text = web::format_document(*doc);
  CHECK(text == R"({
  "dstm_server": {
    "pool": {
      "prefixes": ["198.51.100.0/24","203.0.113.0/24"]
    },
    "teps": [
      {
        "name": "t",
        "weight": 2
      }
    ],
    "auth": {},
    "list": []
  },
  "s": "a\"b"
}
)");
  CHECK(platform::parse_json(text).value() == *doc);
}
