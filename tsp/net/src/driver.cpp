// The driver: socket, timers and write queue around one tsp::ClientSession.
#include "driver.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <utility>
#include <variant>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include "core/overloaded.hpp"

namespace tsp_net::detail {
namespace {

using namespace asio::experimental::awaitable_operators;

constexpr std::size_t kTcpReadChunk = 16 * 1024;
constexpr std::size_t kMaxDatagram = 64 * 1024;

SocketAddress socket_address(const asio::ip::address& a, std::uint16_t port) {
  SocketAddress out;
  out.port = port;
  if (a.is_v4()) {
    out.address = core::Ipv4Address{a.to_v4().to_uint()};
  } else if (const auto v6 = a.to_v6(); v6.is_v4_mapped()) {
    out.address = core::Ipv4Address{asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_uint()};
  } else {
    out.address = core::Ipv6Address{v6.to_bytes()};
  }
  return out;
}

// IP_FREEBIND (also honoured by IPv6 sockets): bind an address no interface holds yet.
template <typename Socket>
boost::system::error_code set_freebind(Socket& s) {
  const int one = 1;
  if (::setsockopt(s.native_handle(), SOL_IP, IP_FREEBIND, &one, sizeof one) != 0)
    return {errno, boost::system::system_category()};
  return {};
}

// Opens the socket for the target's family and binds the source address, if any.
template <typename Socket, typename Protocol>
boost::system::error_code open_and_bind(Socket& s, const asio::ip::address& remote,
                                        const std::optional<asio::ip::address>& source,
                                        bool freebind) {
  boost::system::error_code ec;
  s.open(remote.is_v4() ? Protocol::v4() : Protocol::v6(), ec);
  if (ec || !source) return ec;
  if (freebind) {
    if (auto fb = set_freebind(s)) return fb;
  }
  s.bind(typename Protocol::endpoint{*source, 0}, ec);
  return ec;
}

}  // namespace

Driver::Driver(asio::any_io_executor ex, Target target, tsp::ClientConfig config)
    : ex_{ex},
      target_{std::move(target)},
      io_deadline_{config.deadlines.reply},
      session_{[&] {
        config.transport = target_.transport;
        return std::move(config);
      }()},
      timers_{asio::steady_timer{ex}, asio::steady_timer{ex}, asio::steady_timer{ex}},
      established_{ex},
      authenticated_{ex},
      deleted_{ex},
      ended_{ex} {}

// ---- public operations ----

asio::awaitable<Result<void>> Driver::connect(std::shared_ptr<Driver> self) {
  boost::system::error_code ec;
  const auto remote = asio::ip::make_address(self->target_.address, ec);
  if (ec) co_return Errc::BadTarget;
  std::optional<asio::ip::address> source;
  if (!self->target_.source_address.empty()) {
    source = asio::ip::make_address(self->target_.source_address, ec);
    if (ec || source->is_v4() != remote.is_v4()) co_return Errc::BadTarget;
  }
  const auto port = self->target_.port;

  if (self->target_.transport == tsp::Transport::Tcp) {
    auto& s = self->tcp_.emplace(self->ex_);
    ec = open_and_bind<asio::ip::tcp::socket, asio::ip::tcp>(s, remote, source,
                                                             self->target_.freebind);
    if (ec) co_return ec;
    asio::steady_timer deadline{self->ex_, self->io_deadline_};
    auto done = co_await (s.async_connect(asio::ip::tcp::endpoint{remote, port}, kNoThrow) ||
                          deadline.async_wait(kNoThrow));
    if (done.index() == 1) co_return Errc::ConnectTimeout;
    if (const auto [connect_ec] = std::get<0>(done); connect_ec) co_return connect_ec;
    // The client writes small messages back to back (PLAIN's two lines, pipelined queries):
    // Nagle would hold the second one for the peer's delayed ACK.
    s.set_option(asio::ip::tcp::no_delay{true}, ec);
    const auto local = s.local_endpoint(ec);
    if (ec) co_return ec;
    const auto peer = s.remote_endpoint(ec);
    if (ec) co_return ec;
    self->local_ = socket_address(local.address(), local.port());
    self->peer_ = socket_address(peer.address(), peer.port());
  } else {
    auto& s = self->udp_.emplace(self->ex_);
    ec = open_and_bind<asio::ip::udp::socket, asio::ip::udp>(s, remote, source,
                                                             self->target_.freebind);
    if (ec) co_return ec;
    // A connected UDP socket only receives from the server, and reports its ICMP errors.
    s.connect(asio::ip::udp::endpoint{remote, port}, ec);
    if (ec) co_return ec;
    const auto local = s.local_endpoint(ec);
    if (ec) co_return ec;
    self->local_ = socket_address(local.address(), local.port());
    self->peer_ = socket_address(remote, port);
  }

  asio::co_spawn(self->ex_, read_loop(self), asio::detached);
  self->feed(tsp::Start{});
  co_return Result<void>{};
}

asio::awaitable<Result<tsp::Mechanism>> Driver::authenticated(std::shared_ptr<Driver> self) {
  co_return co_await self->authenticated_.wait();
}

asio::awaitable<Result<tsp::Tunnel>> Driver::established(std::shared_ptr<Driver> self) {
  co_return co_await self->established_.wait();
}

asio::awaitable<Result<void>> Driver::request_delete(std::shared_ptr<Driver> self) {
  if (self->over_) co_return self->final_error();
  self->feed(tsp::RequestDelete{});
  co_return co_await self->deleted_.wait();
}

asio::awaitable<Result<QueryAnswer>> Driver::query(std::shared_ptr<Driver> self,
                                                   core::Ipv4Address ipv4) {
  if (self->over_) co_return self->final_error();
  const auto id = self->next_query_id_++;
  auto slot = std::make_shared<Latch<QueryAnswer>>(self->ex_);
  self->queries_.emplace(id, slot);
  self->feed(tsp::SubmitQuery{id, ipv4});
  auto answer = co_await slot->wait();
  self->queries_.erase(id);  // still there if this wait was cancelled
  co_return answer;
}

asio::awaitable<Result<HeartbeatAnswer>> Driver::heartbeat(std::shared_ptr<Driver> self) {
  if (self->over_) co_return self->final_error();
  const auto id = self->next_query_id_++;
  auto slot = std::make_shared<Latch<HeartbeatAnswer>>(self->ex_);
  self->heartbeats_.emplace(id, slot);
  self->feed(tsp::SubmitHeartbeat{id});
  auto answer = co_await slot->wait();
  self->heartbeats_.erase(id);
  co_return answer;
}

asio::awaitable<Error> Driver::ended(std::shared_ptr<Driver> self) {
  auto r = co_await self->ended_.wait();
  co_return r ? Error{Errc::Closed} : r.error();
}

void Driver::close(Error reason) noexcept {
  finish(std::move(reason));
  enqueue(Write{{}, true});
}

void Driver::abort(Error reason) noexcept {
  finish(std::move(reason));
  close_socket();
}

std::size_t Driver::in_flight() const noexcept {
  return queries_.size() + heartbeats_.size();
}

// ---- the session ----

void Driver::feed(const tsp::ClientEvent& event) {
  if (over_) return;
  run(session_.handle(event));
}

void Driver::run(std::vector<tsp::ClientAction> actions) {
  for (auto& action : actions) {
    std::visit(
        core::Overloaded{
            [&](tsp::Send& s) {
              enqueue(Write{std::move(s.bytes), false});
            },
            [&](const tsp::ArmTimer& a) { arm(a); },
            [&](const tsp::CancelTimer& c) { cancel_timer(c.timer); },
            [&](const tsp::Close& c) {
              // The session is over; its last sends (a reject) still go out before the close.
              finish(failure_ ? *failure_ : c.reason ? Error{c.reason} : Error{Errc::Closed});
              enqueue(Write{{}, true});
            },
            [&](const tsp::Authenticated& a) {
              mechanism_ = a.mechanism;
              authenticated_.set(a.mechanism);
            },
            [&](tsp::TunnelEstablished& e) { established_.set(std::move(e.offer)); },
            [&](tsp::QueryAnswered& q) {
              const auto it = queries_.find(q.query_id);
              if (it == queries_.end()) return;  // its caller went away
              it->second->set(QueryAnswer{q.ipv4, std::move(q.mapping), std::move(q.status)});
              queries_.erase(it);
            },
            [&](tsp::HeartbeatReply& h) {
              const auto it = heartbeats_.find(h.query_id);
              if (it == heartbeats_.end()) return;
              it->second->set(HeartbeatAnswer{std::move(h.status), h.interval,
                                              std::move(h.withdrawn), h.flush});
              heartbeats_.erase(it);
            },
            [&](tsp::Redirected& r) {
              if (!failure_)
                failure_ = Error{tsp::Errc::Redirected, std::move(r.status), std::move(r.brokers)};
            },
            [&](tsp::SessionFailed& f) {
              if (failure_) return;
              // A broken TCP stream says more than "peer closed".
              if (f.reason == tsp::Errc::PeerClosed && transport_error_)
                failure_ = Error{transport_error_};
              else
                failure_ = Error{f.reason, std::move(f.status)};
            },
            [&](const tsp::Deleted&) { deleted_.set(Result<void>{}); },
        },
        action);
  }
}

void Driver::arm(const tsp::ArmTimer& a) {
  auto& t = timer(a.timer);
  const auto seq = ++timer_seq(a.timer);
  t.expires_after(a.after);  // cancels the previous wait of this kind
  t.async_wait([self = shared_from_this(), kind = a.timer, generation = a.generation,
                seq](boost::system::error_code ec) {
    if (ec || self->over_ || self->timer_seq(kind) != seq) return;
    self->feed(tsp::TimerExpired{kind, generation});
  });
}

void Driver::cancel_timer(tsp::TimerKind kind) {
  ++timer_seq(kind);
  timer(kind).cancel();
}

void Driver::finish(Error reason) {
  if (over_) return;
  over_ = true;
  if (!failure_) failure_ = reason;
  for (const auto kind :
       {tsp::TimerKind::Phase, tsp::TimerKind::DeferredReply, tsp::TimerKind::Retransmit})
    cancel_timer(kind);
  const Error& e = *failure_;
  authenticated_.set(e);
  established_.set(e);
  deleted_.set(e);
  for (auto& [id, slot] : queries_) slot->set(e);
  queries_.clear();
  for (auto& [id, slot] : heartbeats_) slot->set(e);
  heartbeats_.clear();
  ended_.set(e);
}

Error Driver::final_error() const {
  return failure_ ? *failure_ : Error{Errc::Closed};
}

// ---- I/O ----

void Driver::enqueue(Write w) {
  if (socket_closed_) return;
  if (!tcp_ && !udp_) {  // never connected
    socket_closed_ = true;
    return;
  }
  writes_.push_back(std::move(w));
  if (writing_) return;
  writing_ = true;
  asio::co_spawn(ex_, write_loop(shared_from_this()), asio::detached);
}

asio::awaitable<void> Driver::write_loop(std::shared_ptr<Driver> self) {
  while (!self->writes_.empty() && !self->socket_closed_) {
    auto w = std::move(self->writes_.front());
    self->writes_.pop_front();
    if (w.close) {
      self->close_socket();
      break;
    }
    if (auto ec = co_await self->write_one(w.bytes)) {
      self->on_transport_error(ec);
      break;
    }
  }
  self->writes_.clear();
  self->writing_ = false;
}

asio::awaitable<boost::system::error_code> Driver::write_one(const std::vector<std::byte>& bytes) {
  if (udp_) {
    auto [ec, n] = co_await udp_->async_send(asio::buffer(bytes), kNoThrow);
    co_return ec;
  }
  // A server that stops reading must not hold the connection (and this driver) forever.
  asio::steady_timer deadline{ex_, io_deadline_};
  auto done = co_await (asio::async_write(*tcp_, asio::buffer(bytes), kNoThrow) ||
                        deadline.async_wait(kNoThrow));
  if (done.index() == 1) co_return Errc::WriteTimeout;
  co_return std::get<0>(std::get<0>(done));
}

asio::awaitable<void> Driver::read_loop(std::shared_ptr<Driver> self) {
  if (self->tcp_) {
    std::vector<std::byte> buffer(kTcpReadChunk);
    for (;;) {
      auto [ec, n] = co_await self->tcp_->async_read_some(asio::buffer(buffer), kNoThrow);
      if (self->socket_closed_) co_return;
      if (n > 0) self->feed(tsp::BytesReceived{core::Bytes{buffer.data(), n}});
      if (ec) {
        self->on_transport_error(ec);
        co_return;
      }
    }
  }
  std::vector<std::byte> buffer(kMaxDatagram);
  for (;;) {
    auto [ec, n] = co_await self->udp_->async_receive(asio::buffer(buffer), kNoThrow);
    if (self->socket_closed_) co_return;
    if (ec) {
      self->on_transport_error(ec);
      co_return;
    }
    self->feed(tsp::DatagramReceived{core::Bytes{buffer.data(), n}});
  }
}

void Driver::on_transport_error(boost::system::error_code ec) {
  if (!over_) {
    if (tcp_) {
      // The session decides what an end of stream means in its state (PeerClosed, or nothing
      // after a delete was answered).
      if (ec != asio::error::eof) transport_error_ = ec;
      feed(tsp::PeerClosed{});
      if (!over_) finish(transport_error_ ? Error{transport_error_} : Error{tsp::Errc::PeerClosed});
    } else {
      // UDP: an ICMP error (connection refused: no server on the port) ends the session at once
      // instead of after the retransmissions.
      finish(Error{ec});
    }
  }
  close_socket();
}

void Driver::close_socket() noexcept {
  if (socket_closed_) return;
  socket_closed_ = true;
  boost::system::error_code ignored;
  if (tcp_) {
    tcp_->shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    tcp_->close(ignored);
  }
  if (udp_) udp_->close(ignored);
  for (const auto kind :
       {tsp::TimerKind::Phase, tsp::TimerKind::DeferredReply, tsp::TimerKind::Retransmit})
    cancel_timer(kind);
}

asio::steady_timer& Driver::timer(tsp::TimerKind kind) {
  return timers_[tsp::timer_index(kind)];
}

std::uint64_t& Driver::timer_seq(tsp::TimerKind kind) {
  return timer_seq_[tsp::timer_index(kind)];
}

}  // namespace tsp_net::detail
