// Reloading a daemon's config inside its own process: main's loop that runs one generation of
// the daemon after another, each on a fresh io_context; the reload decision behind POST /reload
// and SIGHUP; POST /config/check; and the GET /status fields that show a daemon's generations
// (docs/control-socket.md, "Config check and reload").
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "platform/config.hpp"
#include "platform/control.hpp"
#include "platform/log.hpp"

namespace platform {

// How the last reload that restarted the daemon ended.
struct ReloadOutcome {
  std::int64_t time = 0;  // Unix seconds
  bool reloaded = true;   // false: the new config failed to start; the previous one runs again
  std::string error;      // why it failed (when !reloaded)
};

// What one generation of a daemon knows about the process it runs in.
struct DaemonLife {
  std::uint64_t generation = 0;            // 0 at the first start, +1 per in-process restart
  std::int64_t started_at = 0;             // Unix seconds when this generation started
  std::optional<std::string> config_file;  // --config; nullopt: started without one
  std::optional<ReloadOutcome> last_reload;
};

// Adds "generation", "started_at", "config_file" (string or null), "pid" and "last_reload" (null
// or {"time", "result": "reloaded"|"failed", "error" (only when failed)}) to a /status object.
void add_life_to_status(boost::json::object& status, const DaemonLife& life);

// [{"pointer": "/dstm_server/lease/lifetime", "message": "..."}], in the order given.
boost::json::array config_errors_json(const ConfigErrors& errors);

// POST /config/check: the body {"document": <the whole appliance document>} is checked by
// `check` (the daemon's own parser, run on the document's text; it returns every error, none
// when valid) -> 200 {"valid": bool, "errors": [{"pointer", "message"}]}. A body without a
// "document" member is 400.
Response check_config_request(const Request& request,
                              const std::function<ConfigErrors(std::string_view)>& check);

// A config ready to run, with the daemon's own section of the document it was read from: a
// reload whose section is equal (JSON value equality) changes nothing.
template <typename Config>
struct LoadedConfig {
  Config config;
  boost::json::value section;
};

// The document's text -> the daemon's config, or every error. The same function reads the file
// at start-up and at every reload.
template <typename Config>
using ConfigLoader = std::function<ConfigResult<LoadedConfig<Config>>(std::string_view)>;

namespace restart_detail {

std::int64_t unix_now() noexcept;
// Blocks (true) or unblocks (false) SIGHUP on the calling thread. Between a restart decision and
// the next generation's start no signal watch is installed, and SIGHUP's default action would
// end the process; blocked, it stays pending and reaches the next generation.
void defer_sighup(bool defer) noexcept;
Response invalid_config(std::string_view file, const ConfigErrors& errors);
Response reloading(std::uint64_t generation, bool changed);

template <typename E>
std::string error_text(const E& error) {
  if constexpr (std::is_convertible_v<const E&, std::string>)
    return std::string{error};
  else
    return error.message();
}

}  // namespace restart_detail

// Owned by main; runs the daemon's generations (run) and decides reloads for the generation that
// is running (reload). Single-threaded: everything happens on the thread that calls run(),
// reload() from inside the running generation's io_context.
//
//   platform::Restarter<Config> restarter{"dstm-server", args.config_file, load};
//   return restarter.run(std::move(*loaded), [&](asio::io_context& io, Config config) {
//     return Daemon::start(io, std::move(config), {.restarter = &restarter, ...});
//   });
template <typename Config>
class Restarter {
 public:
  Restarter(std::string component, std::optional<std::string> config_file,
            ConfigLoader<Config> load)
      : log_{std::move(component)}, load_{std::move(load)} {
    life_.config_file = std::move(config_file);
  }

  Restarter(const Restarter&) = delete;
  Restarter& operator=(const Restarter&) = delete;

  const DaemonLife& life() const noexcept { return life_; }

  struct Decision {
    Response response;
    bool restart = false;  // stop the daemon now (as for SIGTERM): run() starts the new config
  };

  // Re-reads life().config_file with the loader:
  //   started without --config, or a restart already decided: 409;
  //   unreadable or invalid: 422 {"error", "errors": [{"pointer", "message"}]}, nothing changes;
  //   the daemon's section unchanged: 200 {"changed": false, "generation": G};
  //   otherwise 202 {"changed": true, "generation": G + 1} and restart is true: the caller stops
  //   its daemon, and run() starts generation G + 1 with the new config once it has stopped.
  Decision reload() {
    if (!life_.config_file) {
      log_.warn("reload: started without --config, there is no file to read again");
      return {Response::error(409, "started without --config: there is no file to reload"), false};
    }
    if (next_)
      return {Response::error(409, "a restart with a new config is already under way"), false};
    const std::string& file = *life_.config_file;
    auto text = read_config_file(file);
    auto loaded =
        text ? load_(*text)
             : ConfigResult<LoadedConfig<Config>>{boost::system::in_place_error, text.error()};
    if (!loaded) {
      const auto errors = loaded.error();
      for (const auto& e : errors) log_.error("reload: {}: {}", file, e.to_string());
      log_.error("reload: {} is invalid ({} error{}): the running config stays", file,
                 errors.size(), errors.size() == 1 ? "" : "s");
      return {restart_detail::invalid_config(file, errors), false};
    }
    if (loaded->section == section_) {
      log_.info("reload: {} has no change for this daemon", file);
      return {restart_detail::reloading(life_.generation, false), false};
    }
    log_.info("reload: {} changed: restarting with it", file);
    next_.emplace(std::move(*loaded));
    restart_detail::defer_sighup(true);
    return {restart_detail::reloading(life_.generation + 1, true), true};
  }

  // Runs generations until one stops without a pending reload. Each runs on its own io_context:
  //   start(io, Config) -> boost::system::result<Handle, E>
  // where Handle owns the daemon (destroyed before its io_context, once io.run() returned) and E
  // is a string or has message(). A new config that fails to start is logged and recorded in
  // last_reload, and the previous config starts again (same generation number). Returns the
  // process's exit code: 0 after a stop, 1 when the first start (or that fallback) fails.
  template <typename Start>
  int run(LoadedConfig<Config> first, Start&& start) {
    LoadedConfig<Config> current = std::move(first);
    std::optional<LoadedConfig<Config>> previous;
    for (;;) {
      section_ = current.section;
      life_.started_at = restart_detail::unix_now();
      std::optional<std::string> failure;
      {
        boost::asio::io_context io{1};
        auto daemon = start(io, current.config);
        if (daemon) {
          restart_detail::defer_sighup(false);  // a SIGHUP held during the restart arrives now
          io.run();
        } else {
          failure = restart_detail::error_text(daemon.error());
        }
      }  // the daemon, then its io_context: the store, sockets and devices are closed here
      if (failure) {
        if (!previous) {
          log_.error("cannot start: {}", *failure);
          restart_detail::defer_sighup(false);
          return 1;
        }
        log_.error("the new config failed to start ({}): starting again with the previous one",
                   *failure);
        life_.last_reload = ReloadOutcome{restart_detail::unix_now(), false, *failure};
        current = std::move(*previous);
        previous.reset();
        continue;
      }
      if (!next_) return 0;
      previous = std::move(current);
      current = std::move(*next_);
      next_.reset();
      ++life_.generation;
      life_.last_reload = ReloadOutcome{restart_detail::unix_now(), true, {}};
      log_.info("restarting in process with the new config (generation {})", life_.generation);
    }
  }

 private:
  Logger log_;
  ConfigLoader<Config> load_;
  DaemonLife life_;
  boost::json::value section_;                // the running generation's section
  std::optional<LoadedConfig<Config>> next_;  // decided by reload(), started by run()
};

}  // namespace platform
