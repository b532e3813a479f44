// Password hashes (Crypto++ scrypt), the user table, the login budget and the session table.
#include "web/auth.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <utility>

#include <cryptopp/base64.h>
#include <cryptopp/filters.h>
#include <cryptopp/misc.h>
#include <cryptopp/osrng.h>
#include <cryptopp/scrypt.h>
#include <cryptopp/sha.h>

#include "sqlite.hpp"

namespace web {

namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr std::uint64_t kMaxN = std::uint64_t{1} << 20;
constexpr std::uint32_t kMaxR = 32;
constexpr std::uint32_t kMaxP = 16;

const CryptoPP::byte* bytes_of(std::string_view s) {
  return reinterpret_cast<const CryptoPP::byte*>(s.data());
}

void random_bytes(CryptoPP::byte* out, std::size_t size) {
  try {
    // One generator per thread: hashing runs on a worker thread, sessions on the loop.
    thread_local CryptoPP::AutoSeededRandomPool pool;
    pool.GenerateBlock(out, size);
  } catch (const CryptoPP::Exception&) {
    // No OS entropy: session ids and salts would be guessable, which is worse than not running.
    std::abort();
  }
}

std::string base64(std::string_view raw) {
  std::string out;
  CryptoPP::StringSource source{bytes_of(raw), raw.size(), true,
                                new CryptoPP::Base64Encoder{new CryptoPP::StringSink{out},
                                                            /*insertLineBreaks=*/false}};
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  for (const char c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=')
      return std::nullopt;
  std::string out;
  try {
    CryptoPP::StringSource source{bytes_of(text), text.size(), true,
                                  new CryptoPP::Base64Decoder{new CryptoPP::StringSink{out}}};
  } catch (const CryptoPP::Exception&) {
    return std::nullopt;
  }
  return out;
}

std::string scrypt(std::string_view password, std::string_view salt, const ScryptCost& cost) {
  std::string out(kHashBytes, '\0');
  CryptoPP::Scrypt{}.DeriveKey(reinterpret_cast<CryptoPP::byte*>(out.data()), out.size(),
                               bytes_of(password), password.size(), bytes_of(salt), salt.size(),
                               cost.n, cost.r, cost.p);
  return out;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T v{};
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || text.empty()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  for (;;) {
    const auto next = text.find(sep, pos);
    out.push_back(text.substr(pos, next == std::string_view::npos ? next : next - pos));
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

}  // namespace

std::string_view to_string(Role role) noexcept {
  return role == Role::Admin ? "admin" : "viewer";
}

std::optional<Role> parse_role(std::string_view text) noexcept {
  if (text == "admin") return Role::Admin;
  if (text == "viewer") return Role::Viewer;
  return std::nullopt;
}

std::string hash_password(std::string_view password, ScryptCost cost) {
  std::string salt(kSaltBytes, '\0');
  random_bytes(reinterpret_cast<CryptoPP::byte*>(salt.data()), salt.size());
  return "scrypt$" + std::to_string(cost.n) + "$" + std::to_string(cost.r) + "$" +
         std::to_string(cost.p) + "$" + base64(salt) + "$" + base64(scrypt(password, salt, cost));
}

bool verify_password(std::string_view password, std::string_view encoded) noexcept {
  try {
    const auto parts = split(encoded, '$');
    if (parts.size() != 6 || parts[0] != "scrypt") return false;
    const auto n = parse_number<std::uint64_t>(parts[1]);
    const auto r = parse_number<std::uint32_t>(parts[2]);
    const auto p = parse_number<std::uint32_t>(parts[3]);
    if (!n || !r || !p || *n < 2 || *n > kMaxN || (*n & (*n - 1)) != 0 || *r < 1 || *r > kMaxR ||
        *p < 1 || *p > kMaxP)
      return false;
    const auto salt = unbase64(parts[4]);
    const auto expected = unbase64(parts[5]);
    if (!salt || !expected || expected->size() != kHashBytes) return false;
    return constant_time_equal(scrypt(password, *salt, ScryptCost{*n, *r, *p}), *expected);
  } catch (...) {  // allocation failure or a Crypto++ parameter error: not a match
    return false;
  }
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CryptoPP::VerifyBufsEqual(bytes_of(a), bytes_of(b), a.size());
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  random_bytes(reinterpret_cast<CryptoPP::byte*>(raw.data()), raw.size());
  static constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (const char c : raw) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

std::string random_password(std::size_t length) {
  static constexpr std::string_view kAlphabet =
      "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";  // 57 characters
  std::string out;
  out.reserve(length);
  while (out.size() < length) {
    std::array<CryptoPP::byte, 32> raw{};
    random_bytes(raw.data(), raw.size());
    for (const auto b : raw) {
      // Rejection sampling keeps every character equally likely.
      if (b >= 228 || out.size() >= length) continue;
      out += kAlphabet[b % kAlphabet.size()];
    }
  }
  return out;
}

bool valid_user_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' ||
           c == '-';
  });
}

// --- UserStore

UserStore::UserStore(std::unique_ptr<sqlite::Database> db) : db_{std::move(db)} {}
UserStore::~UserStore() = default;

boost::system::result<std::unique_ptr<UserStore>, std::string> UserStore::open(
    const std::filesystem::path& database) {
  auto db = sqlite::Database::open(database);
  if (!db) return db.error();
  auto owned = std::make_unique<sqlite::Database>(std::move(*db));
  if (auto r = owned->exec(
          "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
          "hash TEXT NOT NULL, created INTEGER NOT NULL, changed INTEGER NOT NULL)");
      !r)
    return database.string() + ": " + r.error();
  return std::unique_ptr<UserStore>{new UserStore{std::move(owned)}};
}

namespace {
User user_of(const sqlite::Row& row) {
  return User{sqlite::as_text(row[0]), parse_role(sqlite::as_text(row[1])).value_or(Role::Viewer),
              sqlite::as_text(row[2]), sqlite::as_int(row[3]), sqlite::as_int(row[4])};
}
}  // namespace

boost::system::result<std::vector<User>, std::string> UserStore::list() const {
  auto rows = db_->query("SELECT name, role, hash, created, changed FROM users ORDER BY name");
  if (!rows) return rows.error();
  std::vector<User> out;
  for (const auto& row : *rows) out.push_back(user_of(row));
  return out;
}

boost::system::result<std::optional<User>, std::string> UserStore::find(
    std::string_view name) const {
  auto rows = db_->query("SELECT name, role, hash, created, changed FROM users WHERE name = ?",
                         {std::string{name}});
  if (!rows) return {boost::system::in_place_error, rows.error()};
  if (rows->empty()) return std::optional<User>{};
  return std::optional<User>{user_of(rows->front())};
}

boost::system::result<void, std::string> UserStore::add(const User& user) {
  return db_->exec(
      "INSERT INTO users (name, role, hash, created, changed) VALUES (?, ?, ?, ?, ?)",
      {user.name, std::string{to_string(user.role)}, user.hash, user.created, user.changed});
}

boost::system::result<void, std::string> UserStore::set_hash(std::string_view name,
                                                             std::string_view hash,
                                                             std::int64_t when) {
  return db_->exec("UPDATE users SET hash = ?, changed = ? WHERE name = ?",
                   {std::string{hash}, when, std::string{name}});
}

boost::system::result<void, std::string> UserStore::remove(std::string_view name) {
  return db_->exec("DELETE FROM users WHERE name = ?", {std::string{name}});
}

// --- LoginLimiter

LoginLimiter::LoginLimiter(std::uint32_t per_minute, std::size_t max_sources)
    : limit_{per_minute}, max_sources_{std::max<std::size_t>(1, max_sources)} {}

void LoginLimiter::prune(std::deque<TimePoint>& q, TimePoint now) const {
  while (!q.empty() && q.front() + std::chrono::minutes{1} <= now) q.pop_front();
}

std::optional<std::chrono::seconds> LoginLimiter::acquire(const std::string& source,
                                                          TimePoint now) {
  auto it = attempts_.find(source);
  if (it == attempts_.end()) {
    if (attempts_.size() >= max_sources_) {
      // Forget idle sources first; if every source is active, the stalest one.
      for (auto i = attempts_.begin(); i != attempts_.end();) {
        prune(i->second, now);
        i = i->second.empty() ? attempts_.erase(i) : std::next(i);
      }
      if (attempts_.size() >= max_sources_) {
        auto stalest = std::min_element(
            attempts_.begin(), attempts_.end(),
            [](const auto& a, const auto& b) { return a.second.back() < b.second.back(); });
        attempts_.erase(stalest);
      }
    }
    it = attempts_.emplace(source, std::deque<TimePoint>{}).first;
  }
  auto& q = it->second;
  prune(q, now);
  if (q.size() >= limit_) {
    const auto wait =
        std::chrono::ceil<std::chrono::seconds>(q.front() + std::chrono::minutes{1} - now);
    return std::max(wait, std::chrono::seconds{1});
  }
  q.push_back(now);
  return std::nullopt;
}

void LoginLimiter::release(const std::string& source, TimePoint when) {
  const auto it = attempts_.find(source);
  if (it == attempts_.end()) return;
  auto& q = it->second;
  if (const auto pos = std::find(q.begin(), q.end(), when); pos != q.end()) q.erase(pos);
  if (q.empty()) attempts_.erase(it);
}

// --- SessionTable

std::string SessionTable::key_of(std::string_view id) {
  std::array<CryptoPP::byte, CryptoPP::SHA256::DIGESTSIZE> digest{};
  CryptoPP::SHA256{}.CalculateDigest(digest.data(), bytes_of(id), id.size());
  static constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  for (const auto b : digest) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0f];
  }
  return out;
}

bool SessionTable::expired(const Session& s, TimePoint now, std::chrono::seconds idle) noexcept {
  return now >= s.last_seen + idle || now >= s.created + kSessionLifetime;
}

SessionTable::Created SessionTable::create(std::string user, Role role, TimePoint now) {
  if (sessions_.size() >= max_ && !sessions_.empty()) {
    auto oldest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.last_seen < b.second.last_seen; });
    sessions_.erase(oldest);
  }
  auto id = random_hex(32);
  auto key = key_of(id);
  Session s{key, std::move(user), role, random_hex(32), now, now};
  const auto it = sessions_.insert_or_assign(key, std::move(s)).first;
  return Created{std::move(id), &it->second};
}

Session* SessionTable::find(std::string_view id, TimePoint now, std::chrono::seconds idle) {
  if (id.size() != 64) return nullptr;
  const auto it = sessions_.find(key_of(id));
  if (it == sessions_.end()) return nullptr;
  if (expired(it->second, now, idle)) {
    sessions_.erase(it);
    return nullptr;
  }
  it->second.last_seen = now;
  return &it->second;
}

const Session* SessionTable::find_key(std::string_view key, TimePoint now,
                                      std::chrono::seconds idle) const {
  const auto it = sessions_.find(key);
  if (it == sessions_.end() || expired(it->second, now, idle)) return nullptr;
  return &it->second;
}

void SessionTable::erase_key(std::string_view key) {
  if (const auto it = sessions_.find(key); it != sessions_.end()) sessions_.erase(it);
}

std::size_t SessionTable::erase_user(std::string_view user, std::string_view keep) {
  std::size_t n = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.user == user && it->first != keep) {
      it = sessions_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void SessionTable::expire(TimePoint now, std::chrono::seconds idle) {
  std::erase_if(sessions_, [&](const auto& kv) { return expired(kv.second, now, idle); });
}

}  // namespace web
