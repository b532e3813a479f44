// Password hashes, the login budget and the session table.
#include "web/auth.hpp"

#include <algorithm>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "support/daemon_process.hpp"

namespace {

using namespace std::chrono_literals;
using web::LoginLimiter;
using web::Role;
using web::SessionTable;

const web::TimePoint kStart{std::chrono::seconds{1'800'000'000}};
constexpr web::ScryptCost kCheap{16, 8, 1};

}  // namespace

TEST_CASE("auth: scrypt hashes are salted, self-describing and verify", "[web]") {
  const auto a = web::hash_password("correct horse", kCheap);
  const auto b = web::hash_password("correct horse", kCheap);
  CHECK(a.starts_with("scrypt$16$8$1$"));
  CHECK(a != b);  // a fresh salt each time
  CHECK(web::verify_password("correct horse", a));
  CHECK(web::verify_password("correct horse", b));
  CHECK_FALSE(web::verify_password("correct horse!", a));
  CHECK_FALSE(web::verify_password("", a));
  CHECK(a.find("correct") == std::string::npos);
  // The default cost is the contract's N=2^15, r=8, p=1.
  const web::ScryptCost defaults;
  CHECK(defaults.n == 32768);
  CHECK(defaults.r == 8);
  CHECK(defaults.p == 1);
}

TEST_CASE("auth: malformed or out-of-bounds hashes never verify", "[web]") {
  const auto good = web::hash_password("pw", kCheap);
  const auto salt_and_hash = good.substr(std::string{"scrypt$16$8$1$"}.size());
  for (const auto& bad : std::vector<std::string>{
           "", "scrypt", "plain$pw", "scrypt$16$8$1$" + salt_and_hash + "$extra",
           "scrypt$15$8$1$" + salt_and_hash,       // N not a power of two
           "scrypt$2097152$8$1$" + salt_and_hash,  // N above 2^20
           "scrypt$16$0$1$" + salt_and_hash, "scrypt$16$8$17$" + salt_and_hash,
           "scrypt$16$8$1$!!!$" + salt_and_hash.substr(salt_and_hash.find('$') + 1),
           "scrypt$16$8$1$" + salt_and_hash.substr(0, salt_and_hash.find('$')) + "$AAAA",
           "scrypt$-16$8$1$" + salt_and_hash}) {
    INFO(bad);
    CHECK_FALSE(web::verify_password("pw", bad));
  }
}

TEST_CASE("auth: constant-time comparison and random material", "[web]") {
  CHECK(web::constant_time_equal("abc", "abc"));
  CHECK(web::constant_time_equal("", ""));
  CHECK_FALSE(web::constant_time_equal("abc", "abd"));
  CHECK_FALSE(web::constant_time_equal("abc", "abcd"));
  CHECK(web::random_hex(32).size() == 64);
  CHECK(web::random_hex(32) != web::random_hex(32));
  const auto pw = web::random_password(20);
  CHECK(pw.size() == 20);
  CHECK(std::all_of(pw.begin(), pw.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) && c != '0' && c != 'O' && c != '1' &&
           c != 'l' && c != 'I';
  }));
}

TEST_CASE("auth: user names and roles", "[web]") {
  CHECK(web::valid_user_name("admin"));
  CHECK(web::valid_user_name("alice@example.net"));
  CHECK(web::valid_user_name(std::string(64, 'a')));
  CHECK_FALSE(web::valid_user_name(""));
  CHECK_FALSE(web::valid_user_name(std::string(65, 'a')));
  CHECK_FALSE(web::valid_user_name("a b"));
  CHECK_FALSE(web::valid_user_name("a/b"));
  CHECK_FALSE(web::valid_user_name("a\nb"));
  CHECK(web::parse_role("admin") == Role::Admin);
  CHECK(web::parse_role("viewer") == Role::Viewer);
  CHECK_FALSE(web::parse_role("Admin"));
  CHECK(web::to_string(Role::Viewer) == "viewer");
}

TEST_CASE("auth: the user store keeps users in SQLite", "[web]") {
  test::TempDir dir;
  {
    auto store = web::UserStore::open(dir / "web.db");
    REQUIRE(store);
    CHECK((*store)->list()->empty());
    REQUIRE((*store)->add({"zed", Role::Viewer, "h1", 1, 1}));
    REQUIRE((*store)->add({"amy", Role::Admin, "h2", 2, 2}));
    CHECK_FALSE((*store)->add({"amy", Role::Viewer, "h3", 3, 3}));
    REQUIRE((*store)->set_hash("zed", "h4", 9));
  }
  auto store = web::UserStore::open(dir / "web.db");
  REQUIRE(store);
  const auto users = (*store)->list();
  REQUIRE(users);
  REQUIRE(users->size() == 2);
  CHECK((*users)[0].name == "amy");
  CHECK((*users)[0].role == Role::Admin);
  const auto zed = (*store)->find("zed");
  REQUIRE(zed);
  REQUIRE(*zed);
  CHECK((*zed)->hash == "h4");
  CHECK((*zed)->changed == 9);
  REQUIRE((*store)->remove("zed"));
  CHECK_FALSE(*(*store)->find("zed"));
  CHECK_FALSE(*(*store)->find("' OR 1=1 --"));
}

TEST_CASE("auth: the login budget is per source over a sliding minute", "[web]") {
  LoginLimiter limiter{3};
  for (int i = 0; i < 3; ++i) CHECK_FALSE(limiter.acquire("192.0.2.1", kStart + i * 10s));
  CHECK(limiter.acquire("192.0.2.1", kStart + 30s) == 30s);
  CHECK_FALSE(limiter.acquire("192.0.2.2", kStart + 30s));
  CHECK(limiter.acquire("192.0.2.1", kStart + 59s) == 1s);
  CHECK_FALSE(limiter.acquire("192.0.2.1", kStart + 60s));  // the first attempt left the window
  CHECK(limiter.acquire("192.0.2.1", kStart + 61s) == 9s);
  // A success gives its attempt back.
  LoginLimiter ok{1};
  CHECK_FALSE(ok.acquire("a", kStart));
  ok.release("a", kStart);
  CHECK_FALSE(ok.acquire("a", kStart));
  CHECK(ok.acquire("a", kStart));
}

TEST_CASE("auth: the login budget's memory is bounded", "[web]") {
  LoginLimiter limiter{1, 16};
  for (int i = 0; i < 1000; ++i)
    CHECK_FALSE(
        limiter.acquire("198.51.100." + std::to_string(i), kStart + std::chrono::seconds{i}));
  CHECK(limiter.sources() <= 16);
}

TEST_CASE("auth: sessions expire when idle and after 12 hours", "[web]") {
  SessionTable table;
  const auto created = table.create("alice", Role::Viewer, kStart);
  const auto id = created.id;
  CHECK(id.size() == 64);
  CHECK(created.session->csrf.size() == 64);
  CHECK(created.session->key == SessionTable::key_of(id));
  CHECK(created.session->key != id);  // the table does not hold the id itself
  CHECK(table.find(id, kStart + 899s, 900s));
  CHECK(table.find(id, kStart + 1798s, 900s));
  CHECK_FALSE(table.find(id, kStart + 1798s + 900s, 900s));
  CHECK(table.size() == 0);

  const auto busy = table.create("bob", Role::Admin, kStart).id;
  auto t = kStart;
  while (t + 10min < kStart + 12h) {
    t += 10min;
    REQUIRE(table.find(busy, t, 900s));
  }
  CHECK_FALSE(table.find(busy, kStart + 12h, 900s));
  CHECK_FALSE(table.find("", kStart, 900s));
  CHECK_FALSE(table.find(std::string(64, '0'), kStart, 900s));
}

TEST_CASE("auth: sessions of a user end together and the table is bounded", "[web]") {
  SessionTable table{3};
  const auto a1 = table.create("a", Role::Admin, kStart);
  const auto a2 = table.create("a", Role::Admin, kStart + 1s);
  const auto b = table.create("b", Role::Viewer, kStart + 2s);
  CHECK(table.erase_user("a", a2.session->key) == 1);
  CHECK_FALSE(table.find(a1.id, kStart + 3s, 900s));
  CHECK(table.find(a2.id, kStart + 3s, 900s));
  // A fourth session evicts the least recently used (b, since a2 was just used).
  table.create("c", Role::Viewer, kStart + 4s);
  table.create("d", Role::Viewer, kStart + 5s);
  CHECK(table.size() == 3);
  CHECK_FALSE(table.find(b.id, kStart + 6s, 900s));
  CHECK(table.find(a2.id, kStart + 6s, 900s));
}
