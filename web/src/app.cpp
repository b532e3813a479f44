// The dashboard application: opening its state, and the pipeline every /api request goes
// through (route, session, CSRF and Origin, role, JSON body) before its handler.
#include "web/app.hpp"

#include <sys/stat.h>

#include <exception>
#include <system_error>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "app_state.hpp"
#include "web/assets.hpp"

namespace web {

namespace asio = boost::asio;
namespace json = boost::json;

namespace detail {

AppState::AppState(asio::io_context& io_in, AppOptions options_in)
    : io{io_in},
      options{std::move(options_in)},
      web{options.web},
      counters{options.counters ? *options.counters : own_counters},
      limiter{options.web.login_attempts_per_minute},
      pending_timer{io_in},
      logins_ok{
          counters.counter("web_logins_total", "Dashboard logins, by result", {{"result", "ok"}})},
      logins_failed{counters.counter("web_logins_total", "Dashboard logins, by result",
                                     {{"result", "failed"}})},
      logins_limited{counters.counter("web_logins_total", "Dashboard logins, by result",
                                      {{"result", "rate_limited"}})},
      password_hashes{counters.counter("web_password_checks_total",
                                       "Password hashes computed to check a login or a password")},
      csrf_refused{counters.counter(
          "web_csrf_refused_total",
          "State-changing API requests refused for a missing or wrong CSRF token or Origin")},
      applies{counters.counter("web_config_applies_total", "Config documents applied")},
      rollbacks{counters.counter("web_config_rollbacks_total",
                                 "Applies rolled back (not confirmed in time, or by hand)")},
      sessions_open{counters.gauge("web_sessions", "Open dashboard sessions")} {}

AppState::~AppState() = default;

std::optional<DaemonRef> AppState::daemon(std::string_view kind, std::string_view name) const {
  for (auto& d : daemons())
    if (d.kind == kind && (name.empty() || d.name == name)) return d;
  return std::nullopt;
}

asio::awaitable<DaemonAnswer> AppState::call(const DaemonRef& d, platform::Method method,
                                             std::string target, json::value body) const {
  return call_daemon(d, method, std::move(target), std::move(body), options.daemon_timeout);
}

asio::awaitable<bool> AppState::verify(std::string password, std::string hash) {
  password_hashes.inc();
  // Not a coroutine itself: GCC 12 destroys a coroutine's parameters twice when they are moved
  // into a lambda's captures.
  return asio::co_spawn(
      hasher,
      [password = std::move(password), hash = std::move(hash)]() -> asio::awaitable<bool> {
        co_return verify_password(password, hash);
      },
      asio::use_awaitable);
}

boost::system::result<json::value, std::string> read_document(const std::filesystem::path& path) {
  auto text = platform::read_config_file(path);
  if (!text) return {boost::system::in_place_error, text.error().front().message};
  auto parsed = platform::parse_json(*text);
  if (!parsed)
    return {boost::system::in_place_error,
            path.string() + ": " + parsed.error().front().to_string()};
  return std::move(*parsed);
}

bool apply_web_settings(AppState& s, const json::value& document) {
  auto parsed = parse_web_section(document);
  if (!parsed) return false;  // checked before it was applied; nothing to take from it
  auto next = *parsed;
  s.web.session_idle_timeout = next.session_idle_timeout;
  s.web.confirm_timeout = next.confirm_timeout;
  s.web.login_attempts_per_minute = next.login_attempts_per_minute;
  s.limiter.set_limit(next.login_attempts_per_minute);
  s.web.firmware = next.firmware;  // read by each firmware request
  // What only a restart takes: the listeners and where the state lives.
  auto running = s.web;
  next.session_idle_timeout = running.session_idle_timeout;
  next.confirm_timeout = running.confirm_timeout;
  next.login_attempts_per_minute = running.login_attempts_per_minute;
  next.firmware = running.firmware;
  return !(next == running);
}

namespace {

bool is_api(std::string_view path) {
  return path == "/api" || path.starts_with("/api/");
}

asio::awaitable<HttpResponse> api(std::shared_ptr<AppState> s, HttpRequest& request) {
  const auto match = s->router.match(request.method, request.path);
  if (!match.route) {
    if (match.allow.empty()) co_return HttpResponse::error(404, "no such API endpoint");
    co_return HttpResponse::error(405, "method not allowed").with_header("Allow", match.allow);
  }
  request.params = match.params;
  const auto& route = *match.route;

  ApiCall call{request, nullptr, {}, nullptr};
  const auto cookies = parse_cookies(request.header("cookie").value_or(""));
  if (const auto it = cookies.find("appl_session"); it != cookies.end())
    call.session_id = it->second;  // a login replaces the session it came with
  if (route.access != Access::Public) {
    call.session = s->sessions.find(call.session_id, s->now(), s->web.session_idle_timeout);
    s->sessions_open.set(static_cast<std::int64_t>(s->sessions.size()));
    if (!call.session) co_return HttpResponse::error(401, "not logged in");
    if (request.method != "GET") {
      // A page of another site can make the browser send the cookie, but cannot read the token
      // (and its Origin header names that site).
      if (!origin_matches_host(request)) {
        s->csrf_refused.inc();
        co_return HttpResponse::error(403, "cross-origin request refused");
      }
      const auto token = request.header("x-csrf-token");
      if (!token || !constant_time_equal(*token, call.session->csrf)) {
        s->csrf_refused.inc();
        co_return HttpResponse::error(403, "missing or wrong CSRF token (X-CSRF-Token)");
      }
    }
    if (route.access == Access::Admin && call.session->role != Role::Admin)
      co_return HttpResponse::error(403, "this needs the admin role");
  }

  if (!request.body.empty()) {
    auto body = platform::parse_json(request.body);
    if (!body)
      co_return HttpResponse::error(400, "invalid JSON: " + body.error().front().to_string());
    call.body = std::move(*body);
  }
  co_return co_await route.handler(call);
}

asio::awaitable<HttpResponse> handle_request(std::shared_ptr<AppState> s, HttpRequest request) {
  if (request.path.empty()) {
    // The server fills path and query; a caller that did not gets the same checks here.
    auto target = parse_target(request.target);
    if (!target) co_return HttpResponse::error(400, "bad request target");
    request.path = std::move(target->path);
    request.query = std::move(target->query);
  }
  if (!is_api(request.path)) co_return serve_asset(request);
  HttpResponse response;
  try {
    response = co_await api(s, request);
  } catch (const std::exception& e) {
    s->log.error("{} {}: {}", request.method, request.path, e.what());
    response = HttpResponse::error(500, std::string{"internal error: "} + e.what());
  }
  // API answers are per user and change all the time.
  if (!response.header("cache-control")) response.with_header("Cache-Control", "no-store");
  co_return response;
}

void add_own_routes(AppState& s) {
  s.router.add("GET", "/api/health", Access::Public, [](ApiCall&) -> asio::awaitable<HttpResponse> {
    co_return HttpResponse::json(json::object{{"ok", true}});
  });
  AppState* self = &s;
  s.router.add("GET", "/api/metrics", Access::Session,
               [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                 HttpResponse r;
                 r.content_type = std::string{platform::kPrometheusContentType};
                 r.body = self->counters.to_prometheus();
                 co_return r;
               });
}

boost::system::result<void, std::string> open_users(AppState& s) {
  const auto users = s.users->list();
  if (!users) return users.error();
  if (users->empty()) {
    // First start: an admin with a random password, shown once on the console and kept in a
    // file only root can read until it is changed.
    auto password = random_password(20);
    const auto t = s.unix_now();
    if (auto added =
            s.users->add(User{"admin", Role::Admin, hash_password(password, s.cost()), t, t});
        !added)
      return added.error();
    const auto file = std::filesystem::path{s.web.state_dir} / "initial-admin-password";
    if (auto w = write_file_atomic(file, password + "\n", 0600); !w) return w.error();
    s.first_password = std::move(password);
    s.log.info("created the user admin (first start)");
  }
  s.dummy_hash = hash_password(random_password(20), s.cost());
  return {};
}

}  // namespace

}  // namespace detail

struct App::Impl {
  std::shared_ptr<detail::AppState> state;
};

App::App(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}

App::~App() {
  stop();
}

boost::system::result<std::unique_ptr<App>, std::string> App::open(asio::io_context& io,
                                                                   AppOptions options) {
  const std::filesystem::path dir = options.web.state_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return "cannot create " + dir.string() + ": " + ec.message();
  ::chmod(dir.c_str(), 0700);  // users' hashes, TLS keys and config history

  auto document = detail::read_document(options.config_path);
  if (!document) return document.error();

  auto s = std::make_shared<detail::AppState>(io, std::move(options));
  s->document = std::move(*document);
  const auto db = dir / "web.db";
  auto users = UserStore::open(db);
  if (!users) return users.error();
  s->users = std::move(*users);
  auto configs = ConfigStore::open(db);
  if (!configs) return configs.error();
  s->configs = std::move(*configs);
  if (auto r = detail::open_users(*s); !r) return db.string() + ": " + r.error();

  if (const auto current = s->configs->current()) {
    s->revision = *current;
  } else {
    auto id = s->configs->add(
        s->document,
        Revision{0, s->unix_now(), "(system)", "the document when the dashboard first started",
                 RevisionState::Applied, std::nullopt},
        std::nullopt);
    if (!id) return db.string() + ": " + id.error();
    s->revision = *id;
  }
  if (auto r = detail::resume_pending(s); !r) return r.error();
  if (auto r = detail::refresh_document(*s); !r) return r.error();

  detail::add_own_routes(*s);
  detail::add_auth_routes(*s);
  detail::add_daemon_routes(*s);
  detail::add_event_routes(*s);
  detail::add_config_routes(*s);
  detail::add_firmware_routes(*s);
  if (auto r = detail::open_firmware_dirs(*s); !r) return r.error();
  s->started = std::chrono::steady_clock::now();
  return std::unique_ptr<App>{new App{std::make_unique<Impl>(Impl{std::move(s)})}};
}

const std::optional<std::string>& App::first_admin_password() const noexcept {
  return impl_->state->first_password;
}

asio::awaitable<HttpResponse> App::handle(HttpRequest request) {
  return detail::handle_request(impl_->state, std::move(request));
}

HttpHandler App::handler() {
  return [state = impl_->state](HttpRequest request) {
    return detail::handle_request(state, std::move(request));
  };
}

UploadPolicy App::upload_policy() {
  return
      [state = impl_->state](const HttpRequest& head) { return detail::upload_for(*state, head); };
}

void App::stop() noexcept {
  if (!impl_ || !impl_->state) return;
  auto& s = *impl_->state;
  s.stopped = true;
  try {
    s.pending_timer.cancel();
    if (s.events.sampler_timer) s.events.sampler_timer->cancel();
  } catch (...) {  // cancel() only fails on a broken descriptor; nothing left to do then
  }
  for (auto& sub : s.events.live()) sub->cancel();
}

}  // namespace web
