// Tests for the signal watch: stop and reload callbacks, and that the watch lets io.run() return.
#include "platform/signals.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

using namespace std::chrono_literals;

TEST_CASE("signals: a stop signal calls on_stop once and releases io.run()", "[platform]") {
  boost::asio::io_context io{1};
  int stops = 0;
  int reloads = 0;
  platform::stop_on_signals(
      io, {SIGUSR1, SIGUSR2}, [&] { ++stops; }, [&] { ++reloads; });
  // Raised from inside the loop, so the watch is certainly registered; SIGHUP first.
  boost::asio::post(io, [] {
    std::raise(SIGHUP);
    std::raise(SIGUSR2);
  });
  io.run_for(20s);  // returns as soon as the watch ends (nothing else keeps io busy)
  CHECK(io.stopped());
  CHECK(reloads == 1);
  CHECK(stops == 1);
}

TEST_CASE("signals: cancel() ends the watch without calling on_stop", "[platform]") {
  boost::asio::io_context io{1};
  bool stopped = false;
  auto watch = platform::stop_on_signals(io, {SIGUSR1}, [&] { stopped = true; });
  boost::asio::post(io, [&] { watch.cancel(); });
  io.run_for(20s);
  CHECK(io.stopped());
  CHECK_FALSE(stopped);
}
