// The dashboard application's state, shared by the source files of the API (app.cpp and
// api_*.cpp), each of which adds its own routes. Everything here runs on the App's io_context
// thread, except password hashing, which runs on `hasher`.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/value.hpp>

#include "events.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "web/api_router.hpp"
#include "web/app.hpp"
#include "web/auth.hpp"
#include "web/config.hpp"
#include "web/config_store.hpp"
#include "web/daemons.hpp"
#include "web/server.hpp"
#include "web/system_info.hpp"

namespace web::detail {

// How a daemon took a reload (POST /api/config/apply "reloaded").
struct ReloadResult {
  std::string name;
  std::string result;  // "reloaded", "unchanged", "down", "failed"
  std::string error;   // for down and failed
};

// The firmware install run from the page (api_firmware.cpp).
struct FirmwareJob {
  std::string state = "idle";  // idle, installing, installed, failed
  std::uint64_t written = 0;
  std::uint64_t total = 0;
  std::uint64_t published = 0;  // `written` when the last firmware event went out
  boost::json::value result;    // fw-upgrade's answer once it ended
  bool rebooting = false;
};

struct AppState : std::enable_shared_from_this<AppState> {
  AppState(boost::asio::io_context& io, AppOptions options);
  ~AppState();
  AppState(const AppState&) = delete;
  AppState& operator=(const AppState&) = delete;

  TimePoint now() const {
    return options.clock ? options.clock() : std::chrono::system_clock::now();
  }
  std::int64_t unix_now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  }
  std::vector<DaemonRef> daemons() const { return daemons_of(document); }
  // The first daemon of this kind (and name, when given) in the running document.
  std::optional<DaemonRef> daemon(std::string_view kind, std::string_view name = {}) const;
  boost::asio::awaitable<DaemonAnswer> call(const DaemonRef& daemon, platform::Method method,
                                            std::string target,
                                            boost::json::value body = nullptr) const;
  // Checks a password on the hashing thread.
  boost::asio::awaitable<bool> verify(std::string password, std::string hash);
  ScryptCost cost() const { return ScryptCost{options.scrypt_n, 8, 1}; }

  boost::asio::io_context& io;
  AppOptions options;
  WebConfig web;  // the live settings (an apply changes the timeouts and the login budget)
  platform::Logger log{"web"};
  platform::Counters own_counters;  // when options.counters is null
  platform::Counters& counters;
  std::unique_ptr<UserStore> users;
  std::unique_ptr<ConfigStore> configs;
  SessionTable sessions;
  LoginLimiter limiter;
  std::optional<std::string> first_password;
  std::string
      dummy_hash;  // checked for unknown users, so that they cost what a wrong password does
  boost::json::value document;  // the running document (as on disk, secrets included)
  std::int64_t revision = 0;    // the live revision
  ApiRouter router;
  std::chrono::steady_clock::time_point started;
  bool stopped = false;
  bool busy = false;  // an apply, rollback or revert is running
  boost::asio::steady_timer pending_timer;
  std::uint64_t pending_watch = 0;  // the watcher of the confirm window that is current
  EventHub events;
  boost::json::value
      staged;  // the verified bundle waiting to be flashed (fw-upgrade verify's answer)
  FirmwareJob firmware_job;
  std::optional<CpuTimes> cpu_before;

  platform::Counter& logins_ok;
  platform::Counter& logins_failed;
  platform::Counter& logins_limited;
  platform::Counter& password_hashes;
  platform::Counter& csrf_refused;
  platform::Counter& applies;
  platform::Counter& rollbacks;
  platform::Gauge& sessions_open;

  // Last: joined first on destruction, before anything a hashing task could touch.
  boost::asio::thread_pool hasher{1};
};

// Each part adds its routes.
void add_auth_routes(AppState& s);    // api_auth.cpp: login, logout, session, users, TLS
void add_daemon_routes(AppState& s);  // api_daemons.cpp: status, leases, TEPs, traffic, logs
void add_event_routes(AppState& s);   // api_events.cpp: GET /api/events
void add_config_routes(AppState& s);
void add_firmware_routes(AppState& s);  // api_firmware.cpp: slots, upload, install, backup
// api_firmware.cpp: the state directory's uploads/ and firmware/, emptied at open.
boost::system::result<void, std::string> open_firmware_dirs(AppState& s);
// api_firmware.cpp: the upload policy (ServerOptions::upload): an admin's POST with its CSRF
// token to the bundle or backup upload goes to a file in <state_dir>/uploads.
std::optional<Upload> upload_for(
    AppState& s, const HttpRequest& head);  // api_config.cpp: config, check, diff, apply, history

// api_config.cpp: at open, a pending apply whose window ran out is rolled back (the file at
// once, the daemons' reloads started on the io_context); otherwise its window is watched.
boost::system::result<void, std::string> resume_pending(const std::shared_ptr<AppState>& s);
// null or {"revision", "deadline", "remaining"}
boost::json::value pending_json(const AppState& s);
// Takes a document changed outside the dashboard as a new revision. Errors for the operator.
boost::system::result<void, std::string> refresh_document(AppState& s);

// api_events.cpp: sends an event to every open stream.
void publish(AppState& s, std::string_view event, const boost::json::value& data);

// api_auth.cpp
// Whether an Origin header, when present, names the Host the request was sent to.
bool origin_matches_host(const HttpRequest& request);

// Reads the document file: JSON errors with line and column.
boost::system::result<boost::json::value, std::string> read_document(
    const std::filesystem::path& path);

// The web section's live settings from a document (sessions, confirm window, login budget,
// firmware tools);
// returns whether something needing a restart of dstm-web changed (listen, ports, state_dir,
// limits, hsts).
bool apply_web_settings(AppState& s, const boost::json::value& document);

}  // namespace web::detail
