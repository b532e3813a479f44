// Signal watch over asio::signal_set.
#include "platform/signals.hpp"

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "platform/log.hpp"

namespace platform {

struct SignalWatch::State : std::enable_shared_from_this<SignalWatch::State> {
  explicit State(boost::asio::io_context& io) : set{io} {}

  boost::asio::signal_set set;
  std::vector<int> stop_signals;
  std::function<void()> on_stop;
  std::function<void()> on_reload;
  bool done = false;
  Logger log{"signals"};

  void arm() {
    set.async_wait([self = shared_from_this()](const boost::system::error_code& ec, int signal) {
      self->fired(ec, signal);
    });
  }

  void fired(const boost::system::error_code& ec, int signal) {
    if (ec || done) return;  // cancelled
    if (signal == SIGHUP && on_reload) {
      log.info("received SIGHUP, reloading");
      arm();
      on_reload();
      return;
    }
    const char* name = ::sigabbrev_np(signal);
    log.info("received SIG{}, stopping", name ? name : std::to_string(signal).c_str());
    end();
    if (on_stop) on_stop();
  }

  void end() noexcept {
    done = true;
    boost::system::error_code ignored;
    // Removing the signals from the set restores SIG_DFL and cancels the pending wait.
    set.clear(ignored);
    set.cancel(ignored);
  }
};

void SignalWatch::cancel() noexcept {
  if (state_) state_->end();
}

SignalWatch stop_on_signals(boost::asio::io_context& io, std::initializer_list<int> stop_signals,
                            std::function<void()> on_stop, std::function<void()> on_reload) {
  auto state = std::make_shared<SignalWatch::State>(io);
  state->stop_signals.assign(stop_signals.begin(), stop_signals.end());
  state->on_stop = std::move(on_stop);
  state->on_reload = std::move(on_reload);
  for (int s : state->stop_signals) state->set.add(s);
  if (state->on_reload) state->set.add(SIGHUP);
  state->arm();
  return SignalWatch{state};
}

}  // namespace platform
