// The public TSP client API: tunnel and query sessions over the driver, and blocking forms.
#include "tsp_net/client.hpp"

#include <exception>
#include <utility>
#include <variant>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include "driver.hpp"

namespace tsp_net {

namespace asio = boost::asio;
using detail::Driver;
using detail::kNoThrow;

namespace {

// Aborts the driver unless released: an open() that fails or is cancelled leaves nothing behind.
class AbortGuard {
 public:
  explicit AbortGuard(std::shared_ptr<Driver> d) : driver_{std::move(d)} {}
  ~AbortGuard() {
    if (driver_) driver_->abort(Errc::Closed);
  }
  AbortGuard(const AbortGuard&) = delete;
  AbortGuard& operator=(const AbortGuard&) = delete;
  void release() noexcept { driver_.reset(); }

 private:
  std::shared_ptr<Driver> driver_;
};

std::shared_ptr<Driver> make_driver(const asio::any_io_executor& ex, Target target,
                                    tsp::ClientConfig config) {
  return std::make_shared<Driver>(ex, std::move(target), std::move(config));
}

// Runs `make()` on a private io_context until it completes or `deadline` passes. The losing
// branch is cancelled, which aborts its connection, so run() returns once the sockets are closed.
template <typename T, typename Make>
Result<T> run_blocking(Make make, std::chrono::milliseconds deadline) {
  using namespace asio::experimental::awaitable_operators;
  asio::io_context io{1};
  std::optional<Result<T>> out;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer{io, deadline};
        auto done = co_await (make() || timer.async_wait(kNoThrow));
        if (done.index() == 0)
          out.emplace(std::move(std::get<0>(done)));
        else
          out.emplace(Error{Errc::Deadline});
      },
      [&](std::exception_ptr e) {
        if (e && !out) out.emplace(Error{Errc::Closed});
      });
  // Everything inside is bounded by `deadline`; the margin covers closing after it.
  io.run_for(deadline + std::chrono::seconds{2});
  if (!out) return Error{Errc::Deadline};
  return std::move(*out);
}

}  // namespace

// ---- SocketAddress ----

std::string SocketAddress::to_string() const {
  return std::visit(
      [&](const auto& a) -> std::string {
        using A = std::decay_t<decltype(a)>;
        if constexpr (std::is_same_v<A, core::Ipv4Address>)
          return fmt::format("{}:{}", a.to_string(), port);
        else if constexpr (std::is_same_v<A, core::Ipv6Address>)
          return fmt::format("[{}]:{}", a.to_string(), port);
        else
          return fmt::format("?:{}", port);
      },
      address);
}

// ---- TunnelSession ----

TunnelSession::TunnelSession(std::shared_ptr<Driver> driver, TunnelResult result)
    : driver_{std::move(driver)}, result_{std::move(result)} {}
TunnelSession::TunnelSession(TunnelSession&&) noexcept = default;
TunnelSession& TunnelSession::operator=(TunnelSession&& other) noexcept {
  if (this != &other) {
    close();
    driver_ = std::move(other.driver_);
    result_ = std::move(other.result_);
  }
  return *this;
}
TunnelSession::~TunnelSession() {
  close();
}

asio::awaitable<Result<TunnelSession>> TunnelSession::open(Target target,
                                                           tsp::ClientConfig config) {
  if (!config.request) co_return Errc::BadConfig;
  auto driver =
      make_driver(co_await asio::this_coro::executor, std::move(target), std::move(config));
  AbortGuard guard{driver};
  if (auto connected = co_await Driver::connect(driver); !connected) co_return connected.error();
  auto offer = co_await Driver::established(driver);
  if (!offer) co_return offer.error();
  guard.release();
  TunnelResult result{std::move(*offer), driver->mechanism(), driver->local(), driver->peer()};
  co_return TunnelSession{std::move(driver), std::move(result)};
}

asio::awaitable<Result<void>> TunnelSession::async_delete() {
  if (!driver_) return [](Error e) -> asio::awaitable<Result<void>> { co_return e; }(Errc::Closed);
  return Driver::request_delete(driver_);
}

asio::awaitable<Error> TunnelSession::wait_closed() {
  if (!driver_) return []() -> asio::awaitable<Error> { co_return Error{Errc::Closed}; }();
  return Driver::ended(driver_);
}

void TunnelSession::close() noexcept {
  if (driver_) driver_->close(Errc::Closed);
}

bool TunnelSession::is_open() const noexcept {
  return driver_ && driver_->is_open();
}

// ---- QuerySession ----

QuerySession::QuerySession(std::shared_ptr<Driver> driver) : driver_{std::move(driver)} {}
QuerySession::QuerySession(QuerySession&&) noexcept = default;
QuerySession& QuerySession::operator=(QuerySession&& other) noexcept {
  if (this != &other) {
    close();
    driver_ = std::move(other.driver_);
  }
  return *this;
}
QuerySession::~QuerySession() {
  close();
}

asio::awaitable<Result<QuerySession>> QuerySession::open(Target target, tsp::ClientConfig config) {
  if (config.request) co_return Errc::BadConfig;
  auto driver =
      make_driver(co_await asio::this_coro::executor, std::move(target), std::move(config));
  AbortGuard guard{driver};
  if (auto connected = co_await Driver::connect(driver); !connected) co_return connected.error();
  if (auto auth = co_await Driver::authenticated(driver); !auth) co_return auth.error();
  guard.release();
  co_return QuerySession{std::move(driver)};
}

asio::awaitable<Result<QueryAnswer>> QuerySession::query(core::Ipv4Address ipv4) {
  if (!driver_)
    return [](Error e) -> asio::awaitable<Result<QueryAnswer>> { co_return e; }(Errc::Closed);
  return Driver::query(driver_, ipv4);
}

asio::awaitable<Result<HeartbeatAnswer>> QuerySession::heartbeat() {
  if (!driver_)
    return [](Error e) -> asio::awaitable<Result<HeartbeatAnswer>> { co_return e; }(Errc::Closed);
  return Driver::heartbeat(driver_);
}

std::size_t QuerySession::in_flight() const noexcept {
  return driver_ ? driver_->in_flight() : 0;
}
tsp::Mechanism QuerySession::mechanism() const noexcept {
  return driver_ ? driver_->mechanism() : tsp::Mechanism::Anonymous;
}
SocketAddress QuerySession::local() const {
  return driver_ ? driver_->local() : SocketAddress{};
}
SocketAddress QuerySession::peer() const {
  return driver_ ? driver_->peer() : SocketAddress{};
}

asio::awaitable<Error> QuerySession::wait_closed() {
  if (!driver_) return []() -> asio::awaitable<Error> { co_return Error{Errc::Closed}; }();
  return Driver::ended(driver_);
}

void QuerySession::close() noexcept {
  if (driver_) driver_->close(Errc::Closed);
}

bool QuerySession::is_open() const noexcept {
  return driver_ && driver_->is_open();
}

// ---- one-shot calls ----

asio::awaitable<Result<TunnelResult>> create_tunnel(Target target, tsp::ClientConfig config) {
  auto session = co_await TunnelSession::open(std::move(target), std::move(config));
  if (!session) co_return session.error();
  // close() lets the accept go out first: the lease stays after an accepted offer.
  session->close();
  co_return session->result();
}

asio::awaitable<Result<void>> delete_tunnel(Target target, tsp::ClientConfig config) {
  if (config.request) co_return Errc::BadConfig;
  auto driver =
      make_driver(co_await asio::this_coro::executor, std::move(target), std::move(config));
  AbortGuard guard{driver};
  if (auto connected = co_await Driver::connect(driver); !connected) co_return connected.error();
  if (auto auth = co_await Driver::authenticated(driver); !auth) co_return auth.error();
  auto deleted = co_await Driver::request_delete(driver);
  if (!deleted) co_return deleted.error();
  guard.release();
  driver->close(Errc::Closed);
  co_return Result<void>{};
}

Result<TunnelResult> create_tunnel_blocking(Target target, tsp::ClientConfig config,
                                            std::chrono::milliseconds deadline) {
  return run_blocking<TunnelResult>(
      [&] { return create_tunnel(std::move(target), std::move(config)); }, deadline);
}

Result<void> delete_tunnel_blocking(Target target, tsp::ClientConfig config,
                                    std::chrono::milliseconds deadline) {
  return run_blocking<void>([&] { return delete_tunnel(std::move(target), std::move(config)); },
                            deadline);
}

namespace {

asio::awaitable<Result<std::vector<QueryAnswer>>> query_all(
    Target target, tsp::ClientConfig config, std::vector<core::Ipv4Address> addresses) {
  auto session = co_await QuerySession::open(std::move(target), std::move(config));
  if (!session) co_return session.error();
  auto driver_session = std::move(*session);
  const auto ex = co_await asio::this_coro::executor;

  // Every query in its own coroutine, so that they are pipelined. The state
  // they share outlives this frame: after a cancellation they finish later.
  struct Gather {
    std::vector<std::optional<Result<QueryAnswer>>> answers;
    std::size_t remaining = 0;
    asio::steady_timer all_done;
  };
  auto g = std::make_shared<Gather>(
      Gather{std::vector<std::optional<Result<QueryAnswer>>>(addresses.size()), addresses.size(),
             asio::steady_timer{ex, asio::steady_timer::time_point::max()}});
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    asio::co_spawn(
        ex,
        [g, i, q = driver_session.query(addresses[i])]() mutable -> asio::awaitable<void> {
          g->answers[i].emplace(co_await std::move(q));
          if (--g->remaining == 0) g->all_done.cancel();
        },
        asio::detached);
  }
  if (g->remaining > 0) co_await g->all_done.async_wait(kNoThrow);
  if (g->remaining > 0) {
    // Cancelled (the blocking deadline): the spawned queries fail once the session closes.
    driver_session.close();
    co_return Error{asio::error::operation_aborted};
  }
  auto& answers = g->answers;
  std::vector<QueryAnswer> out;
  out.reserve(answers.size());
  for (auto& a : answers) {
    if (!*a) co_return a->error();
    out.push_back(std::move(**a));
  }
  co_return out;
}

}  // namespace

Result<std::vector<QueryAnswer>> query_blocking(Target target, tsp::ClientConfig config,
                                                std::vector<core::Ipv4Address> addresses,
                                                std::chrono::milliseconds deadline) {
  return run_blocking<std::vector<QueryAnswer>>(
      [&] { return query_all(std::move(target), std::move(config), std::move(addresses)); },
      deadline);
}

}  // namespace tsp_net
