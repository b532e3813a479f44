// The dashboard application: the JSON API under /api (docs/api.md) and the embedded assets,
// as one HttpHandler. Owns the login state, the config document and its history, and the links
// to the daemons' control sockets.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "web/config.hpp"
#include "web/http.hpp"
#include "web/server.hpp"

namespace boost::asio {
class io_context;
}
namespace platform {
class Counters;
}

namespace web {

class Tls;

struct AppOptions {
  std::string config_path;  // the appliance document this dashboard manages (read and written)
  WebConfig web;            // its web section, already parsed
  std::string version;      // APPL_VERSION
  std::string build;        // APPL_BUILD (commit and date of the build)
  Tls* tls = nullptr;       // for GET/PUT /api/tls; must outlive the App
  platform::Counters* counters = nullptr;  // web_* metrics; may be null

  // Seams for tests (the defaults are what dstm-web uses).
  // Wall clock for sessions, the login budget, revisions and the confirm window.
  std::function<std::chrono::system_clock::time_point()> clock;  // null: system_clock::now
  // Cost of new password hashes (hashes keep their own cost, so a change applies to new ones).
  std::uint64_t scrypt_n = std::uint64_t{1} << 15;
  // How often the event streams get a tick, and how often a confirm window is checked against
  // the clock at the latest.
  std::chrono::milliseconds tick{1000};
  // Deadline of one request to a daemon's control socket.
  std::chrono::milliseconds daemon_timeout{2000};
  // How long an apply waits for a reloaded daemon to come back with its new generation.
  std::chrono::milliseconds reload_wait{20000};
};

class App {
 public:
  // Opens the state directory (users, config history, pending apply). On the very first start it
  // creates the user "admin" with a random password (first_admin_password()). A pending apply
  // whose confirm window ran out while the dashboard was down is rolled back here. The error is
  // for the operator.
  static boost::system::result<std::unique_ptr<App>, std::string> open(boost::asio::io_context& io,
                                                                       AppOptions options);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Set when this start created the admin user; shown once on the console (never logged).
  const std::optional<std::string>& first_admin_password() const noexcept;

  // Every request: /api/... to the API, anything else to the embedded assets.
  boost::asio::awaitable<HttpResponse> handle(HttpRequest request);
  HttpHandler handler();  // handle() bound to this App
  // Which requests' bodies the server streams to a file (ServerOptions::upload): the firmware
  // bundle and settings backup uploads of a logged-in admin.
  UploadPolicy upload_policy();

  // Cancels timers and event streams (the pending apply stays on disk).
  void stop() noexcept;

 private:
  struct Impl;
  explicit App(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace web
