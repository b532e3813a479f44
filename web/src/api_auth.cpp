// Login, logout and the session; users and their passwords; the TLS certificate.
#include <algorithm>
#include <filesystem>
#include <utility>

#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "app_state.hpp"
#include "web/tls.hpp"

namespace web::detail {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::string_view kCookie = "appl_session";

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

const json::string* string_member(const json::value& body, std::string_view key) {
  const auto* o = body.if_object();
  const auto* v = o ? o->if_contains(key) : nullptr;
  return v ? v->if_string() : nullptr;
}

std::string session_cookie(std::string_view id) {
  return std::string{kCookie} + "=" + std::string{id} +
         "; HttpOnly; Secure; SameSite=Strict; Path=/";
}

std::string cleared_cookie() {
  return std::string{kCookie} + "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0";
}

json::object session_json(const Session& session, const AppState& s) {
  return json::object{{"user", session.user},
                      {"role", to_string(session.role)},
                      {"csrf", session.csrf},
                      {"idle_timeout", s.web.session_idle_timeout.count()}};
}

json::object user_json(const User& u) {
  return json::object{{"name", u.name},
                      {"role", to_string(u.role)},
                      {"created", u.created},
                      {"changed", u.changed}};
}

json::object certificate_json(const CertificateInfo& c) {
  json::array names;
  for (const auto& n : c.names) names.emplace_back(n);
  return json::object{{"subject", c.subject},
                      {"issuer", c.issuer},
                      {"not_before", c.not_before},
                      {"not_after", c.not_after},
                      {"fingerprint_sha256", c.fingerprint_sha256},
                      {"names", std::move(names)},
                      {"uploaded", c.uploaded}};
}

HttpResponse too_many(std::chrono::seconds wait) {
  return HttpResponse::error(429, "too many failed attempts from this address; try again later")
      .with_header("Retry-After", std::to_string(wait.count()));
}

HttpResponse store_error(AppState& s, const std::string& error) {
  s.log.error("user store: {}", error);
  return HttpResponse::error(500, "internal error: the user store failed");
}

asio::awaitable<HttpResponse> login(AppState& s, ApiCall& call) {
  auto& request = call.request;
  const auto type = request.header("content-type").value_or("");
  if (!iequals(type.substr(0, type.find(';')), "application/json"))
    co_return HttpResponse::error(415, "login needs Content-Type: application/json");
  // A login form of another site must not log the browser in as someone else either.
  if (!origin_matches_host(request)) {
    s.csrf_refused.inc();
    co_return HttpResponse::error(403, "cross-origin request refused");
  }
  const auto* name = string_member(call.body, "user");
  const auto* password = string_member(call.body, "password");
  if (!name || !password)
    co_return HttpResponse::error(400, "body: expected {\"user\": string, \"password\": string}");

  const auto attempt = s.now();
  if (const auto wait = s.limiter.acquire(request.remote, attempt)) {
    s.logins_limited.inc();
    co_return too_many(*wait);
  }
  auto found = s.users->find(*name);
  if (!found) co_return store_error(s, found.error());
  // An unknown user costs one hash too, so that timing does not tell which names exist.
  const auto& user = *found;
  const bool match =
      co_await s.verify(std::string{*password}, user ? user->hash : s.dummy_hash) && user;
  if (!match) {
    s.logins_failed.inc();
    s.log.warn_limited("login-failed", "failed login from {}", request.remote);
    co_return HttpResponse::error(401, "wrong user name or password");
  }
  s.limiter.release(request.remote, attempt);
  s.logins_ok.inc();
  if (!call.session_id.empty()) s.sessions.erase_key(SessionTable::key_of(call.session_id));
  s.sessions.expire(s.now(), s.web.session_idle_timeout);
  const auto created = s.sessions.create(user->name, user->role, s.now());
  s.sessions_open.set(static_cast<std::int64_t>(s.sessions.size()));
  s.log.info("user {} logged in from {}", user->name, request.remote);
  co_return HttpResponse::json(session_json(*created.session, s))
      .with_header("Set-Cookie", session_cookie(created.id));
}

asio::awaitable<HttpResponse> create_user(AppState& s, ApiCall& call) {
  const auto* name = string_member(call.body, "name");
  const auto* password = string_member(call.body, "password");
  const auto* role_text = string_member(call.body, "role");
  if (!name || !password || !role_text)
    co_return HttpResponse::error(
        400, "body: expected {\"name\": string, \"password\": string, \"role\": string}");
  if (!valid_user_name(*name))
    co_return HttpResponse::error(400, "name: 1 to 64 characters of A-Z a-z 0-9 . _ @ -");
  const auto role = parse_role(*role_text);
  if (!role) co_return HttpResponse::error(400, "role: expected \"admin\" or \"viewer\"");
  if (password->size() < kMinPasswordLength || password->size() > kMaxPasswordLength)
    co_return HttpResponse::error(400, "password: 10 to 1024 characters");
  const auto existing = s.users->find(*name);
  if (!existing) co_return store_error(s, existing.error());
  if (*existing) co_return HttpResponse::error(409, "user " + std::string{*name} + " exists");
  const auto t = s.unix_now();
  const User user{std::string{*name}, *role, hash_password(*password, s.cost()), t, t};
  if (auto r = s.users->add(user); !r) co_return store_error(s, r.error());
  s.log.info("user {} ({}) added by {}", user.name, to_string(user.role), call.session->user);
  co_return HttpResponse::json(user_json(user), 201);
}

asio::awaitable<HttpResponse> delete_user(AppState& s, ApiCall& call) {
  const auto name = std::string{call.request.param("name").value_or("")};
  const auto all = s.users->list();
  if (!all) co_return store_error(s, all.error());
  const auto it =
      std::find_if(all->begin(), all->end(), [&](const User& u) { return u.name == name; });
  if (it == all->end()) co_return HttpResponse::error(404, "no user " + name);
  const auto admins =
      std::count_if(all->begin(), all->end(), [](const User& u) { return u.role == Role::Admin; });
  if (it->role == Role::Admin && admins <= 1)
    co_return HttpResponse::error(409, "the last admin cannot be deleted");
  if (auto r = s.users->remove(name); !r) co_return store_error(s, r.error());
  const auto ended = s.sessions.erase_user(name);
  s.sessions_open.set(static_cast<std::int64_t>(s.sessions.size()));
  s.log.info("user {} deleted by {}", name, call.session->user);
  co_return HttpResponse::json(json::object{{"deleted", name}, {"sessions_ended", ended}});
}

asio::awaitable<HttpResponse> change_password(AppState& s, ApiCall& call) {
  const auto name = std::string{call.request.param("name").value_or("")};
  const auto caller = call.session->user;
  const auto caller_key = call.session->key;
  const bool own = name == caller;
  // Everyone may change their own password; only admins anyone else's.
  if (!own && call.session->role != Role::Admin)
    co_return HttpResponse::error(403, "this needs the admin role");
  const auto* password = string_member(call.body, "password");
  if (!password) co_return HttpResponse::error(400, "body: expected {\"password\": string}");
  if (password->size() < kMinPasswordLength || password->size() > kMaxPasswordLength)
    co_return HttpResponse::error(400, "password: 10 to 1024 characters");
  auto found = s.users->find(name);
  if (!found) co_return store_error(s, found.error());
  if (!*found) co_return HttpResponse::error(404, "no user " + name);
  if (own) {
    // A session left open on someone's desk must not be enough to take the account over.
    const auto* current = string_member(call.body, "current");
    if (!current) co_return HttpResponse::error(400, "current: your current password is needed");
    const auto attempt = s.now();
    if (const auto wait = s.limiter.acquire(call.request.remote, attempt)) {
      s.logins_limited.inc();
      co_return too_many(*wait);
    }
    if (!co_await s.verify(std::string{*current}, (*found)->hash)) {
      s.logins_failed.inc();
      co_return HttpResponse::error(403, "the current password is wrong");
    }
    s.limiter.release(call.request.remote, attempt);
  }
  if (auto r = s.users->set_hash(name, hash_password(*password, s.cost()), s.unix_now()); !r)
    co_return store_error(s, r.error());
  const auto ended = s.sessions.erase_user(name, own ? std::string_view{caller_key} : "");
  s.sessions_open.set(static_cast<std::int64_t>(s.sessions.size()));
  if (name == "admin") {
    std::error_code ec;
    std::filesystem::remove(std::filesystem::path{s.web.state_dir} / "initial-admin-password", ec);
  }
  s.log.info("password of {} changed by {}", name, caller);
  co_return HttpResponse::json(json::object{{"changed", name}, {"sessions_ended", ended}});
}

}  // namespace

bool origin_matches_host(const HttpRequest& request) {
  const auto origin = request.header("origin");
  if (!origin) return true;
  const auto host = request.header("host");
  if (!host) return false;
  const auto scheme = origin->find("://");
  if (scheme == std::string_view::npos) return false;  // includes "null"
  auto authority = origin->substr(scheme + 3);
  if (authority.find('/') != std::string_view::npos) return false;
  return iequals(authority, *host);
}

void add_auth_routes(AppState& s) {
  AppState* self = &s;
  s.router.add("POST", "/api/login", Access::Public,
               [self](ApiCall& c) { return login(*self, c); });
  s.router.add("POST", "/api/logout", Access::Session,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 self->sessions.erase_key(c.session->key);
                 self->sessions_open.set(static_cast<std::int64_t>(self->sessions.size()));
                 co_return HttpResponse::json(json::object{{"logged_out", true}})
                     .with_header("Set-Cookie", cleared_cookie());
               });
  s.router.add("GET", "/api/session", Access::Session,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 co_return HttpResponse::json(session_json(*c.session, *self));
               });

  s.router.add("GET", "/api/users", Access::Admin,
               [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                 const auto users = self->users->list();
                 if (!users) co_return store_error(*self, users.error());
                 json::array out;
                 for (const auto& u : *users) out.push_back(user_json(u));
                 co_return HttpResponse::json(json::object{{"users", std::move(out)}});
               });
  s.router.add("POST", "/api/users", Access::Admin,
               [self](ApiCall& c) { return create_user(*self, c); });
  s.router.add("DELETE", "/api/users/{name}", Access::Admin,
               [self](ApiCall& c) { return delete_user(*self, c); });
  s.router.add("POST", "/api/users/{name}/password", Access::Session,
               [self](ApiCall& c) { return change_password(*self, c); });

  s.router.add("GET", "/api/tls", Access::Admin, [self](ApiCall&) -> asio::awaitable<HttpResponse> {
    if (!self->options.tls)
      co_return HttpResponse::error(503, "no TLS certificate is managed here");
    co_return HttpResponse::json(certificate_json(self->options.tls->info()));
  });
  s.router.add("PUT", "/api/tls", Access::Admin,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 if (!self->options.tls)
                   co_return HttpResponse::error(503, "no TLS certificate is managed here");
                 const auto* certificate = string_member(c.body, "certificate");
                 const auto* key = string_member(c.body, "key");
                 if (!certificate || !key)
                   co_return HttpResponse::error(
                       400, "body: expected {\"certificate\": PEM string, \"key\": PEM string}");
                 auto installed = self->options.tls->install(*certificate, *key);
                 if (!installed) co_return HttpResponse::error(422, installed.error());
                 self->log.info("TLS certificate uploaded by {}", c.session->user);
                 co_return HttpResponse::json(certificate_json(*installed));
               });
  s.router.add("DELETE", "/api/tls", Access::Admin,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 if (!self->options.tls)
                   co_return HttpResponse::error(503, "no TLS certificate is managed here");
                 auto removed = self->options.tls->remove_uploaded();
                 if (!removed) co_return HttpResponse::error(500, removed.error());
                 self->log.info("TLS certificate reset to self-signed by {}", c.session->user);
                 co_return HttpResponse::json(certificate_json(*removed));
               });
}

}  // namespace web::detail
