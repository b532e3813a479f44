// Who may use the dashboard: users with scrypt password hashes (kept in <state_dir>/web.db),
// sessions held in memory, and the per-source budget of failed logins. Passwords, session ids
// and CSRF tokens are never logged. Single-threaded (the dashboard's io_context), except the
// free hashing functions, which may run on any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

namespace web {

namespace sqlite {
class Database;
}

using TimePoint = std::chrono::system_clock::time_point;

enum class Role { Admin, Viewer };

std::string_view to_string(Role role) noexcept;  // "admin", "viewer"
std::optional<Role> parse_role(std::string_view text) noexcept;

// --- Passwords.

struct ScryptCost {
  std::uint64_t n = std::uint64_t{1} << 15;  // CPU/memory cost: a power of two
  std::uint32_t r = 8;
  std::uint32_t p = 1;
};

// "scrypt$N$r$p$<salt base64>$<hash base64>" with a 16-byte random salt and a 32-byte hash.
std::string hash_password(std::string_view password, ScryptCost cost = {});

// Whether the password gives the encoded hash (the hashes compared in constant time). False for
// a malformed or out-of-bounds encoding (N above 2^20, r above 32, p above 16: a damaged
// database must not make a login allocate gigabytes).
bool verify_password(std::string_view password, std::string_view encoded) noexcept;

// Equal length and content, in time that depends on the length only.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// `bytes` random bytes from the OS generator, as lower-case hex.
std::string random_hex(std::size_t bytes);
// A password of `length` characters from letters and digits without look-alikes (0/O, 1/l/I).
std::string random_password(std::size_t length);

// User names: 1..64 characters of [A-Za-z0-9._@-].
bool valid_user_name(std::string_view name) noexcept;
// New passwords: 10..1024 characters.
inline constexpr std::size_t kMinPasswordLength = 10;
inline constexpr std::size_t kMaxPasswordLength = 1024;

// --- Users (table "users" of web.db).

struct User {
  std::string name;
  Role role = Role::Viewer;
  std::string hash;          // hash_password()
  std::int64_t created = 0;  // Unix seconds
  std::int64_t changed = 0;  // when the password was last set
};

class UserStore {
 public:
  static boost::system::result<std::unique_ptr<UserStore>, std::string> open(
      const std::filesystem::path& database);
  ~UserStore();
  UserStore(const UserStore&) = delete;
  UserStore& operator=(const UserStore&) = delete;

  boost::system::result<std::vector<User>, std::string> list() const;  // by name
  boost::system::result<std::optional<User>, std::string> find(std::string_view name) const;
  // Fails when the name exists.
  boost::system::result<void, std::string> add(const User& user);
  boost::system::result<void, std::string> set_hash(std::string_view name, std::string_view hash,
                                                    std::int64_t when);
  boost::system::result<void, std::string> remove(std::string_view name);

 private:
  explicit UserStore(std::unique_ptr<sqlite::Database> db);
  std::unique_ptr<sqlite::Database> db_;
};

// --- Failed logins per source address.

// A sliding minute of attempts per source. An attempt is reserved before the password is
// checked (so that concurrent attempts cannot overrun the budget while hashes are computed) and
// given back when the login succeeds. Memory is bounded: beyond max_sources, the source whose
// last attempt is oldest is forgotten.
class LoginLimiter {
 public:
  explicit LoginLimiter(std::uint32_t per_minute, std::size_t max_sources = 4096);
  void set_limit(std::uint32_t per_minute) noexcept { limit_ = per_minute; }

  // Reserves an attempt: nullopt when the source is within its budget (the attempt now counts),
  // else how long until the oldest attempt leaves the window (at least one second).
  std::optional<std::chrono::seconds> acquire(const std::string& source, TimePoint now);
  // The attempt reserved at `when` succeeded: it no longer counts.
  void release(const std::string& source, TimePoint when);
  std::size_t sources() const noexcept { return attempts_.size(); }

 private:
  void prune(std::deque<TimePoint>& q, TimePoint now) const;
  std::uint32_t limit_;
  std::size_t max_sources_;
  std::map<std::string, std::deque<TimePoint>, std::less<>> attempts_;
};

// --- Sessions.

struct Session {
  std::string key;  // SHA-256 of the session id: how the table and event streams refer to it
  std::string user;
  Role role = Role::Viewer;
  std::string csrf;  // the token every non-GET request must send as X-CSRF-Token
  TimePoint created;
  TimePoint last_seen;
};

// Sessions by the hash of their id, so that a lookup's timing says nothing about stored ids.
// Idle sessions expire after the idle timeout passed to find(), every session after
// kSessionLifetime. At most max_sessions: a new one evicts the least recently used.
class SessionTable {
 public:
  static constexpr std::chrono::hours kSessionLifetime{12};

  explicit SessionTable(std::size_t max_sessions = 1024) : max_{max_sessions} {}

  struct Created {
    std::string id;  // for the cookie; not kept
    const Session* session;
  };
  Created create(std::string user, Role role, TimePoint now);
  // The live session with this id, its last_seen set to now; expired ones are removed.
  Session* find(std::string_view id, TimePoint now, std::chrono::seconds idle);
  // By key, without touching it; null when gone or expired.
  const Session* find_key(std::string_view key, TimePoint now, std::chrono::seconds idle) const;
  void erase_key(std::string_view key);
  // Ends every session of the user except the one with key `keep`. Returns how many ended.
  std::size_t erase_user(std::string_view user, std::string_view keep = {});
  void expire(TimePoint now, std::chrono::seconds idle);
  std::size_t size() const noexcept { return sessions_.size(); }

  static std::string key_of(std::string_view id);

 private:
  static bool expired(const Session& s, TimePoint now, std::chrono::seconds idle) noexcept;
  std::size_t max_;
  std::map<std::string, Session, std::less<>> sessions_;
};

}  // namespace web
