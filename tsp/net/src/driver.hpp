// Private to tsp_net: the driver that runs one tsp::ClientSession over one socket, and the latch
// coroutines wait on for its outcomes.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tsp/client_session.hpp"
#include "tsp_net/client.hpp"
#include "tsp_net/error.hpp"

namespace tsp_net::detail {

namespace asio = boost::asio;

// Completion token for coroutines that inspect errors instead of catching exceptions.
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// A one-shot outcome that any number of coroutines may wait for. The waiters must keep the latch
// alive (they hold the driver, or the latch, by shared_ptr).
template <typename T>
class Latch {
 public:
  explicit Latch(const asio::any_io_executor& ex)
      : signal_{ex, asio::steady_timer::time_point::max()} {}

  bool is_set() const noexcept { return value_.has_value(); }
  // The first value wins; later ones are ignored.
  void set(Result<T> value) {
    if (value_) return;
    value_.emplace(std::move(value));
    signal_.cancel();  // wakes every waiter
  }
  // A copy of the value. A waiter cancelled before the value is set gets operation_aborted.
  asio::awaitable<Result<T>> wait() {
    if (!value_) {
      co_await signal_.async_wait(kNoThrow);
      if (!value_) co_return Error{asio::error::operation_aborted};
    }
    co_return *value_;
  }

 private:
  asio::steady_timer signal_;  // never expires: set() cancels it
  std::optional<Result<T>> value_;
};

// Runs one ClientSession over a TCP or UDP socket on one executor (see tsp_net/client.hpp for
// the contract). Owned by shared_ptr: the public session objects, the coroutines waiting on it
// and its own read/write loops and timer callbacks all hold it.
class Driver : public std::enable_shared_from_this<Driver> {
 public:
  Driver(asio::any_io_executor ex, Target target, tsp::ClientConfig config);
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Binds (if asked), connects within the reply deadline, starts the read loop and the session.
  static asio::awaitable<Result<void>> connect(std::shared_ptr<Driver> self);
  // The session authenticated.
  static asio::awaitable<Result<tsp::Mechanism>> authenticated(std::shared_ptr<Driver> self);
  // The offer was accepted (or, 1.0.x, received).
  static asio::awaitable<Result<tsp::Tunnel>> established(std::shared_ptr<Driver> self);
  // Sends delete (the session must be authenticated or established) and waits for the reply.
  static asio::awaitable<Result<void>> request_delete(std::shared_ptr<Driver> self);
  // Submits a query or a heartbeat (the session holds it while its window is full) and waits
  // for the answer.
  static asio::awaitable<Result<QueryAnswer>> query(std::shared_ptr<Driver> self,
                                                    core::Ipv4Address ipv4);
  static asio::awaitable<Result<HeartbeatAnswer>> heartbeat(std::shared_ptr<Driver> self);
  // Completes when the session has ended, with the reason.
  static asio::awaitable<Error> ended(std::shared_ptr<Driver> self);

  // Ends the session with `reason`. Graceful: the socket closes once the pending writes are done
  // (each bounded by the write deadline). Abort: at once. Idempotent.
  void close(Error reason) noexcept;
  void abort(Error reason) noexcept;

  bool is_open() const noexcept { return !over_; }
  std::size_t in_flight() const noexcept;
  tsp::Mechanism mechanism() const noexcept { return mechanism_; }
  const SocketAddress& local() const noexcept { return local_; }
  const SocketAddress& peer() const noexcept { return peer_; }

 private:
  struct Write {
    std::vector<std::byte> bytes;
    bool close = false;  // close the socket here instead of writing
  };

  void feed(const tsp::ClientEvent& event);
  void run(std::vector<tsp::ClientAction> actions);
  void arm(const tsp::ArmTimer& a);
  void cancel_timer(tsp::TimerKind kind);
  void enqueue(Write w);
  void finish(Error reason);
  void close_socket() noexcept;
  void on_transport_error(boost::system::error_code ec);
  Error final_error() const;
  asio::steady_timer& timer(tsp::TimerKind kind);
  std::uint64_t& timer_seq(tsp::TimerKind kind);

  static asio::awaitable<void> read_loop(std::shared_ptr<Driver> self);
  static asio::awaitable<void> write_loop(std::shared_ptr<Driver> self);
  asio::awaitable<boost::system::error_code> write_one(const std::vector<std::byte>& bytes);

  asio::any_io_executor ex_;
  Target target_;
  std::chrono::milliseconds io_deadline_;  // TCP connect and each TCP write
  tsp::ClientSession session_;

  std::optional<asio::ip::tcp::socket> tcp_;
  std::optional<asio::ip::udp::socket> udp_;
  bool socket_closed_ = false;
  SocketAddress local_;
  SocketAddress peer_;

  // One timer per TimerKind. seq counts arms and cancels, so that a callback already queued
  // when its timer was cancelled or re-armed is recognised and dropped.
  std::array<asio::steady_timer, tsp::kTimerKinds> timers_;
  std::array<std::uint64_t, tsp::kTimerKinds> timer_seq_{};

  std::deque<Write> writes_;
  bool writing_ = false;

  bool over_ = false;  // the session has ended; every latch is set
  std::optional<Error> failure_;
  boost::system::error_code transport_error_;  // why the TCP stream ended, if not a plain EOF
  tsp::Mechanism mechanism_ = tsp::Mechanism::Anonymous;

  Latch<tsp::Tunnel> established_;
  Latch<tsp::Mechanism> authenticated_;
  Latch<void> deleted_;
  Latch<void> ended_;  // set with the reason as its error

  // Unanswered queries and heartbeats by query id (one numbering, as in the session).
  std::unordered_map<std::uint64_t, std::shared_ptr<Latch<QueryAnswer>>> queries_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Latch<HeartbeatAnswer>>> heartbeats_;
  std::uint64_t next_query_id_ = 1;
};

}  // namespace tsp_net::detail
