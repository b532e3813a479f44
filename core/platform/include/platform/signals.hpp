// Turning SIGINT/SIGTERM (and optionally SIGHUP) into calls on the daemon's io_context.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace platform {

// Handle on a signal watch. Copies share the watch; dropping every handle does NOT stop it (the
// pending wait keeps it alive), so `stop_on_signals(io, ...)` may be called and forgotten.
class SignalWatch {
 public:
  struct State;
  explicit SignalWatch(std::shared_ptr<State> state) noexcept : state_{std::move(state)} {}

  // Stops watching and restores the signals' default dispositions, so io.run() can return once
  // the daemon's other work is done (e.g. when it shuts down for a reason other than a signal).
  // Idempotent. Call on the io_context's thread.
  void cancel() noexcept;

 private:
  std::shared_ptr<State> state_;
};

// Calls on_stop (on the io_context's thread) when one of stop_signals arrives. After that the
// watch ends: the signals get their default dispositions back, so a second Ctrl-C during a slow
// shutdown kills the process, and the watch no longer keeps io.run() from returning.
//
// If on_reload is set, SIGHUP is watched too (until the stop) and calls on_reload each time. Do
// not list SIGHUP in stop_signals then. An invalid signal number is a programming error and
// throws boost::system::system_error.
//
//   platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] { daemon.shutdown(); });
SignalWatch stop_on_signals(boost::asio::io_context& io, std::initializer_list<int> stop_signals,
                            std::function<void()> on_stop, std::function<void()> on_reload = {});

}  // namespace platform
