// The dashboard's side of the daemons' control sockets: one bounded request to a daemon, many at
// once, and the pure readings of their answers the API needs (a TEP's traffic and drops, top
// talkers, rates between two samples). A daemon that is down or hung is an error value within
// the timeout, never a stalled page.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "platform/control.hpp"
#include "web/config.hpp"
#include "web/http.hpp"

namespace web {

using DaemonAnswer = boost::system::result<platform::Response>;

// One request to a daemon's control socket within `timeout` (connect, write and read together).
// Takes copies of everything: the awaitable may be started after the caller's values are gone.
boost::asio::awaitable<DaemonAnswer> call_daemon(
    DaemonRef daemon, platform::Method method, std::string target,
    boost::json::value body = nullptr, std::chrono::milliseconds timeout = std::chrono::seconds{2});

// Why a daemon counts as down, from a transport error: "not running (no control socket)",
// "not running (connection refused)", "not answering (timeout)", or the error's message.
std::string down_reason(const boost::system::error_code& error);

// Runs every task concurrently on the caller's executor and returns their results in order once
// all are done. A task that throws makes gather throw its exception after the others finish.
template <typename T>
boost::asio::awaitable<std::vector<T>> gather(std::vector<boost::asio::awaitable<T>> tasks) {
  struct State {
    explicit State(boost::asio::any_io_executor ex, std::size_t n)
        : results(n), left{n}, done{ex, boost::asio::steady_timer::time_point::max()} {}
    std::vector<std::optional<T>> results;
    std::exception_ptr failure;
    std::size_t left;
    boost::asio::steady_timer done;
  };
  auto ex = co_await boost::asio::this_coro::executor;
  auto state = std::make_shared<State>(ex, tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    boost::asio::co_spawn(
        ex,
        [state, i, task = std::move(tasks[i])]() mutable -> boost::asio::awaitable<void> {
          try {
            state->results[i].emplace(co_await std::move(task));
          } catch (...) {
            if (!state->failure) state->failure = std::current_exception();
          }
          if (--state->left == 0) state->done.cancel();
        },
        boost::asio::detached);
  }
  while (state->left > 0)
    co_await state->done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  if (state->failure) std::rethrow_exception(state->failure);
  std::vector<T> out;
  out.reserve(state->results.size());
  for (auto& r : state->results) out.push_back(std::move(*r));
  co_return out;
}

// "%"-encoding of a query value or path segment: everything but [A-Za-z0-9-._~].
std::string percent_encode(std::string_view text);
// "?a=1&b=x%20y" for the parameters (empty string for none), in the map's order.
std::string query_string(const Params& params);

// --- Readings of a TEP's GET /status (docs/tep.md).

// Cumulative traffic through a TEP on both data paths (the user-space engine and the kernel fast
// path). rx: from clients (decapsulated, inner bytes); tx: to clients (encapsulated, outer bytes).
struct Traffic {
  std::uint64_t rx_bytes = 0;
  std::uint64_t tx_bytes = 0;
  std::uint64_t rx_packets = 0;
  std::uint64_t tx_packets = 0;
  Traffic& operator+=(const Traffic& other) noexcept;
  bool operator==(const Traffic&) const = default;
};
Traffic tep_traffic(const boost::json::value& tep_status);
boost::json::object to_json(const Traffic& traffic);

// Drops by reason: each decap_<reason> counter as <reason>, the engine's other drop counters by
// name, tunnel_send_dropped, and the fast path's dropped as fast_path_dropped.
boost::json::object tep_drops(const boost::json::value& tep_status);

// The n bindings with the most bytes both ways from a TEP's GET /bindings answer, most first,
// each with "bytes" (the sum) added.
boost::json::array top_talkers(const boost::json::value& bindings_answer, std::size_t n);

// Per second, from two cumulative samples `seconds` apart. A counter that went backwards (the
// daemon restarted) counts from zero.
struct Rates {
  double in_bps = 0;  // bits per second from clients
  double out_bps = 0;
  double in_pps = 0;
  double out_pps = 0;
};
Rates rates(const Traffic& before, const Traffic& after, double seconds) noexcept;
boost::json::object to_json(const Rates& rates);

}  // namespace web
