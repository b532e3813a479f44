// Running a test's coroutine on an io_context until it finishes, with a deadline that fails the
// test instead of hanging it.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace test {

inline constexpr std::chrono::seconds kRunDeadline{20};

// Runs `task` to completion (other work on io runs too) and returns its value; an exception in
// the task is rethrown. io may be run again afterwards.
template <typename T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> value;
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) value.emplace(std::move(v));
    done = true;
    io.stop();
  });
  io.restart();
  io.run_for(kRunDeadline);
  REQUIRE(done);
  if (error) std::rethrow_exception(error);
  return std::move(*value);
}

inline void run(boost::asio::io_context& io, boost::asio::awaitable<void> task) {
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    error = e;
    done = true;
    io.stop();
  });
  io.restart();
  io.run_for(kRunDeadline);
  REQUIRE(done);
  if (error) std::rethrow_exception(error);
}

// Runs io's handlers one at a time until `done()` holds (for effects no datagram announces).
template <typename Predicate>
void run_until(boost::asio::io_context& io, Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + kRunDeadline;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_until(deadline);
  REQUIRE(done());
}

}  // namespace test
