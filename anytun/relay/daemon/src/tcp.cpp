// The relay's TCP transport and the client's Locate-then-connect (tcp.hpp).
#include "tcp.hpp"

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "asio_endpoint.hpp"
#include "platform/bind.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "relay/stream_framer.hpp"
#include "satp/packet.hpp"

namespace relay_daemon {
namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
// Reads handled per readiness wake-up of one stream before yielding to the others.
constexpr int kRoundsPerWake = 8;
// After a failed accept (out of descriptors, say): a pause instead of spinning on the error.
constexpr auto kAcceptPause = 100ms;

struct Stream {
  Stream(std::uint64_t id_, relay::Endpoint remote_, tcp::socket socket_)
      : id{id_}, remote{remote_}, socket{std::move(socket_)}, last_auth{Clock::now()} {}

  std::uint64_t id;
  relay::Endpoint remote;
  tcp::socket socket;
  relay::StreamFramer framer{satp::kMaxPacket};
  // Frames the kernel has not taken yet, from queued[sent]: written by the next flush(), or at
  // once when the queue is full; while the kernel's buffer is full, when the socket is writable.
  std::vector<std::byte> queued;
  std::size_t sent = 0;
  bool waiting_write = false;  // a wait for writability is pending
  bool dirty = false;          // listed for the next flush()
  bool open = true;
  bool broken = false;          // a write failed: it ends as soon as the engine's call returns
  Clock::time_point last_auth;  // the last authenticated packet (or the start)
};

}  // namespace

// ---- TcpTransport ----

struct TcpTransport::State : std::enable_shared_from_this<TcpTransport::State> {
  State(asio::io_context& io_, Handler& handler_, TcpOptions options_)
      : io{io_}, handler{&handler_}, options{options_}, sweep_timer{io_}, accept_pause{io_} {}

  asio::io_context& io;
  Handler* handler;
  TcpOptions options;
  std::optional<tcp::acceptor> acceptor;
  std::optional<relay::Endpoint> bound;
  std::unordered_map<std::uint64_t, std::shared_ptr<Stream>> streams;
  std::vector<std::shared_ptr<Stream>> dirty;
  std::vector<std::shared_ptr<Stream>> flushing;  // dirty's other half, reused
  std::uint64_t next_id = 1;
  std::vector<std::byte> read_buffer = std::vector<std::byte>(relay::kMaxFeed);
  asio::steady_timer sweep_timer;
  asio::steady_timer accept_pause;
  // The connect in progress (a client has one at a time), closed by stop().
  std::shared_ptr<tcp::socket> connecting;
  std::shared_ptr<asio::steady_timer> connect_deadline;
  TcpCounters counters;
  bool stopped = false;

  std::shared_ptr<Stream> adopt(tcp::socket socket) {
    boost::system::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (ec) return nullptr;  // reset before we looked: nothing to serve
    socket.set_option(tcp::no_delay{true}, ec);
    socket.non_blocking(true, ec);
    if (ec) return nullptr;
    auto stream = std::make_shared<Stream>(next_id++, from_asio(remote), std::move(socket));
    streams.emplace(stream->id, stream);
    asio::co_spawn(io, read_loop(shared_from_this(), stream), asio::detached);
    return stream;
  }

  void end(const std::shared_ptr<Stream>& stream) {
    if (!stream->open) return;
    stream->open = false;
    boost::system::error_code ignored;
    stream->socket.close(ignored);  // ends its wait and a write in flight
    streams.erase(stream->id);
    ++counters.closed;
    if (!stopped) handler->tcp_closed(relay::Peer{stream->remote, stream->id});
  }

  // The frames of one read: to the handler, then the flush; false when the stream ended.
  bool deliver(const std::shared_ptr<Stream>& stream, std::size_t n) {
    auto& s = *stream;
    s.framer.feed(core::Bytes{read_buffer}.first(n));
    const relay::Peer peer{s.remote, s.id};
    bool any = false;
    while (auto frame = s.framer.next()) {
      any = true;
      ++counters.frames_in;
      if (handler->tcp_frame(peer, *frame)) s.last_auth = Clock::now();
      if (stopped || !s.open) break;
    }
    // The frames stay in the framer until the next feed(), so what the handler queued from them
    // (TUN writes) is still valid here.
    if (any && !stopped) handler->tcp_frames_done();
    if (stopped || !s.open) return false;
    if (s.framer.error()) {
      ++counters.framing_errors;
      end(stream);
      return false;
    }
    return true;
  }

  asio::awaitable<void> read_loop(std::shared_ptr<State> self, std::shared_ptr<Stream> stream) {
    (void)self;
    while (!stopped && stream->open) {
      auto [ec] = co_await stream->socket.async_wait(tcp::socket::wait_read, as_tuple_awaitable);
      if (stopped || !stream->open) co_return;
      if (ec) {
        end(stream);
        co_return;
      }
      // Large reads: one feed() takes up to kMaxFeed bytes, many frames at once.
      for (int round = 0; round < kRoundsPerWake; ++round) {
        boost::system::error_code rec;
        const auto n = stream->socket.read_some(asio::buffer(read_buffer), rec);
        if (rec == asio::error::would_block || rec == asio::error::try_again) break;
        if (rec) {  // the end of the stream too
          end(stream);
          co_return;
        }
        if (!deliver(stream, n)) co_return;
      }
    }
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    (void)self;
    while (!stopped) {
      auto [ec, socket] = co_await acceptor->async_accept(as_tuple_awaitable);
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        ++counters.accept_errors;
        accept_pause.expires_after(kAcceptPause);
        co_await accept_pause.async_wait(as_tuple_awaitable);
        continue;
      }
      if (streams.size() >= options.max_streams) {
        ++counters.refused;
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      if (adopt(std::move(socket))) ++counters.accepted;
    }
  }

  // Hands the kernel what it takes now (non-blocking writes; the socket buffer is the main queue,
  // ours the overflow). A failed write ends the stream later, from the loop: this runs inside
  // the engine's calls, which must not see a peer vanish under them.
  void write_now(const std::shared_ptr<Stream>& stream) {
    auto& s = *stream;
    if (!s.open || s.broken || s.waiting_write) return;
    while (s.sent < s.queued.size()) {
      boost::system::error_code ec;
      const auto n =
          s.socket.write_some(asio::buffer(s.queued.data() + s.sent, s.queued.size() - s.sent), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        wait_writable(stream);
        return;
      }
      if (ec) {
        s.broken = true;
        asio::post(io, [self = shared_from_this(), stream] { self->end(stream); });
        return;
      }
      s.sent += n;
    }
    s.queued.clear();
    s.sent = 0;
  }

  void wait_writable(const std::shared_ptr<Stream>& stream) {
    stream->waiting_write = true;
    stream->socket.async_wait(tcp::socket::wait_write,
                              [self = shared_from_this(), stream](boost::system::error_code ec) {
                                stream->waiting_write = false;
                                if (self->stopped || !stream->open) return;
                                if (ec) {
                                  self->end(stream);
                                  return;
                                }
                                self->write_now(stream);
                              });
  }

  void sweep() {
    const auto t = Clock::now();
    std::vector<std::shared_ptr<Stream>> idle;
    for (const auto& [id, s] : streams)
      if (t - s->last_auth >= options.idle_timeout) idle.push_back(s);
    for (const auto& s : idle) {
      ++counters.idle_closed;
      end(s);
    }
  }

  void schedule_sweep() {
    sweep_timer.expires_after(std::max<Clock::duration>(options.idle_timeout / 4, 100ms));
    sweep_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->sweep();
      self->schedule_sweep();
    });
  }
};

TcpTransport::TcpTransport(asio::io_context& io, Handler& handler, TcpOptions options)
    : state_{std::make_shared<State>(io, handler, options)} {
  state_->schedule_sweep();
}

TcpTransport::~TcpTransport() {
  stop();
}

boost::system::result<relay::Endpoint> TcpTransport::listen(const relay::Endpoint& bind) {
  auto& s = *state_;
  const auto at = to_asio(bind);
  tcp::acceptor acceptor{s.io};
  boost::system::error_code ec;
  acceptor.open(at.protocol(), ec);
  if (ec) return ec;
  // As the UDP sockets: "[::]" is IPv6 only, and the config's port checks assume it.
  if (!bind.is_v4()) acceptor.set_option(asio::ip::v6_only{true}, ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address{true}, ec);
  if (!ec) platform::bind_local(acceptor, at, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  const auto local = acceptor.local_endpoint(ec);
  if (ec) return ec;
  s.bound = from_asio(local);
  s.acceptor.emplace(std::move(acceptor));
  asio::co_spawn(s.io, s.accept_loop(state_), asio::detached);
  return *s.bound;
}

std::optional<relay::Endpoint> TcpTransport::listening() const noexcept {
  return state_->bound;
}

void TcpTransport::connect(const relay::Endpoint& to, std::chrono::milliseconds timeout,
                           ConnectDone done) {
  auto& s = *state_;
  boost::system::error_code ignored;
  if (s.connecting) s.connecting->close(ignored);  // the former attempt ends as aborted
  auto socket = std::make_shared<tcp::socket>(s.io);
  auto deadline = std::make_shared<asio::steady_timer>(s.io, timeout);
  s.connecting = socket;
  s.connect_deadline = deadline;
  deadline->async_wait([socket](boost::system::error_code ec) {
    boost::system::error_code unused;
    if (!ec) socket->close(unused);  // the connect ends as aborted
  });
  socket->async_connect(to_asio(to), [self = state_, socket, deadline, to,
                                      done = std::move(done)](boost::system::error_code ec) {
    deadline->cancel();
    if (self->connecting == socket) {
      self->connecting.reset();
      self->connect_deadline.reset();
    }
    if (self->stopped) return;
    if (ec == asio::error::operation_aborted && !socket->is_open()) ec = asio::error::timed_out;
    std::shared_ptr<Stream> stream;
    if (!ec) {
      stream = self->adopt(std::move(*socket));
      if (!stream) ec = asio::error::not_connected;
    }
    if (ec) {
      ++self->counters.connect_failures;
      done(ec);
      return;
    }
    ++self->counters.connects;
    done(relay::Peer{stream->remote, stream->id});
  });
}

bool TcpTransport::send(std::uint64_t stream, core::Bytes packet) {
  auto& s = *state_;
  const auto it = s.streams.find(stream);
  if (it == s.streams.end() || it->second->broken || packet.size() > relay::kMaxFrameLength) {
    ++s.counters.send_drops;
    return false;
  }
  auto& st = *it->second;
  const auto need = relay::kFrameHeader + packet.size();
  // Full: what the kernel takes now makes room; beyond that the packet is dropped.
  if (st.queued.size() - st.sent + need > s.options.send_queue_bytes) s.write_now(it->second);
  if (st.broken || st.queued.size() - st.sent + need > s.options.send_queue_bytes) {
    ++s.counters.send_drops;
    return false;
  }
  // Written bytes in front go before the queue grows: it holds at most twice the bound.
  if (st.sent > 0 && st.sent >= st.queued.size() / 2) {
    st.queued.erase(st.queued.begin(), st.queued.begin() + static_cast<std::ptrdiff_t>(st.sent));
    st.sent = 0;
  }
  const auto at = st.queued.size();
  st.queued.resize(at + need);
  const auto out = std::span{st.queued}.subspan(at);
  relay::write_frame_header(packet.size(), out);
  std::copy(packet.begin(), packet.end(), out.begin() + relay::kFrameHeader);
  ++s.counters.frames_out;
  if (!st.dirty) {
    st.dirty = true;
    s.dirty.push_back(it->second);
  }
  return true;
}

void TcpTransport::flush() {
  auto& s = *state_;
  std::swap(s.dirty, s.flushing);
  for (const auto& stream : s.flushing) {
    stream->dirty = false;
    s.write_now(stream);
  }
  s.flushing.clear();
}

void TcpTransport::close(std::uint64_t stream) {
  auto& s = *state_;
  if (const auto it = s.streams.find(stream); it != s.streams.end()) {
    const auto keep = it->second;  // end() erases the table's reference
    s.end(keep);
  }
}

void TcpTransport::stop() noexcept {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  boost::system::error_code ignored;
  s.sweep_timer.cancel();
  s.accept_pause.cancel();
  if (s.acceptor) s.acceptor->close(ignored);
  if (s.connecting) s.connecting->close(ignored);
  if (s.connect_deadline) s.connect_deadline->cancel();
  const auto streams = std::exchange(s.streams, {});
  for (const auto& [id, stream] : streams) {
    stream->open = false;
    stream->socket.close(ignored);
  }
  s.dirty.clear();
}

std::size_t TcpTransport::open_streams() const noexcept {
  return state_->streams.size();
}

const TcpCounters& TcpTransport::counters() const noexcept {
  return state_->counters;
}

json::object TcpTransport::status() const {
  const auto& s = *state_;
  const auto& c = s.counters;
  json::object o;
  o["listen"] = s.bound ? json::value(s.bound->to_string()) : json::value(nullptr);
  o["open"] = s.streams.size();
  o["max_streams"] = s.options.max_streams;
  o["accepted"] = c.accepted;
  o["refused"] = c.refused;
  o["accept_errors"] = c.accept_errors;
  o["connects"] = c.connects;
  o["connect_failures"] = c.connect_failures;
  o["closed"] = c.closed;
  o["framing_errors"] = c.framing_errors;
  o["idle_closed"] = c.idle_closed;
  o["frames_in"] = c.frames_in;
  o["frames_out"] = c.frames_out;
  o["send_drops"] = c.send_drops;
  std::size_t queued = 0;
  for (const auto& [id, stream] : s.streams) queued += stream->queued.size() - stream->sent;
  o["queued_bytes"] = queued;
  return o;
}

void TcpTransport::register_metrics(platform::Counters& counters, const std::string& role) {
  const platform::Labels labels{{"role", role}};
  const auto series = [&](std::string_view name, std::string_view help,
                          std::uint64_t TcpCounters::*field) {
    counters.counter_fn(name, help, labels,
                        [state = state_, field] { return state->counters.*field; });
  };
  series("satp_tcp_accepted_total", "TCP streams accepted", &TcpCounters::accepted);
  series("satp_tcp_refused_total", "TCP streams closed at once: the most were open",
         &TcpCounters::refused);
  series("satp_tcp_connects_total", "TCP streams connected to a relay", &TcpCounters::connects);
  series("satp_tcp_framing_errors_total", "TCP streams closed for a bad frame length",
         &TcpCounters::framing_errors);
  series("satp_tcp_idle_closed_total", "TCP streams closed: no authenticated packet in time",
         &TcpCounters::idle_closed);
  series("satp_tcp_send_drops_total", "packets dropped: a TCP stream's send queue was full",
         &TcpCounters::send_drops);
  counters.gauge_fn("satp_tcp_streams", "TCP streams open", labels,
                    [state = state_] { return static_cast<std::int64_t>(state->streams.size()); });
}

// ---- TcpClient ----

namespace {

constexpr auto kLocateFirst = 500ms;
constexpr auto kLocateMax = 16s;
constexpr auto kBackoffFirst = 1s;
constexpr auto kBackoffMax = 30s;
// A stream that lasted this long resets the backoff: the relay served it.
constexpr auto kStable = 30s;
constexpr auto kConnectTimeout = 5s;
constexpr auto kKeepalive = 15s;

enum class Phase { Locating, Connecting, Connected, Waiting, Stopped };

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::Locating:
      return "locating";
    case Phase::Connecting:
      return "connecting";
    case Phase::Connected:
      return "connected";
    case Phase::Waiting:
      return "waiting";
    case Phase::Stopped:
      return "stopped";
  }
  return "stopped";
}

}  // namespace

struct TcpClient::State : std::enable_shared_from_this<TcpClient::State> {
  State(asio::io_context& io_, relay::Engine& engine_, relay::Sink& sink_, TcpTransport& transport_,
        std::uint16_t mux_, relay::Endpoint server_, std::function<void()> flush_)
      : engine{engine_},
        sink{sink_},
        transport{transport_},
        mux{mux_},
        server{server_},
        flush{std::move(flush_)},
        timer{io_} {}

  relay::Engine& engine;
  relay::Sink& sink;
  TcpTransport& transport;
  std::uint16_t mux;
  relay::Endpoint server;
  std::function<void()> flush;
  asio::steady_timer timer;  // Locate's retransmission, the backoff, or the keepalive
  platform::Logger log{"satp-client"};
  Phase phase = Phase::Waiting;
  std::uint32_t request = 0;  // the current Locate's request id
  Clock::duration locate_interval = kLocateFirst;
  Clock::duration backoff = kBackoffFirst;
  std::optional<relay::Endpoint> endpoint;  // the TCP endpoint the relay told
  std::optional<relay::Peer> stream;        // while connected
  Clock::time_point connected_at{};
  std::uint64_t locates = 0;  // Locate datagrams sent
  std::uint64_t answers = 0;  // Located answers taken
  std::uint64_t keepalives = 0;
  std::uint64_t udp_ignored = 0;

  std::optional<relay::Peer> wanted() const { return stream; }

  // One Locate on `peer` (the server over UDP, or the stream), the engine's peer put back after.
  void send_locate(const relay::Peer& peer) {
    engine.set_peer(mux, peer);
    (void)engine.send_control(mux, relay::control::Message{request, relay::control::Locate{}},
                              sink);
    engine.set_peer(mux, wanted());
    flush();
  }

  void arm(Clock::duration after, void (State::*then)()) {
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this(), then](boost::system::error_code ec) {
      if (ec || self->phase == Phase::Stopped) return;
      ((*self).*then)();
    });
  }

  void locate() {
    phase = Phase::Locating;
    ++request;
    locate_interval = kLocateFirst;
    retransmit();
  }

  void retransmit() {
    if (phase != Phase::Locating) return;
    ++locates;
    send_locate(relay::Peer{server, 0});
    arm(locate_interval, &State::retransmit);
    locate_interval = std::min<Clock::duration>(locate_interval * 2, kLocateMax);
  }

  void located(const relay::Endpoint& tcp_endpoint) {
    ++answers;
    endpoint = tcp_endpoint;
    phase = Phase::Connecting;
    timer.cancel();
    log.info("relay {} serves TCP at {}: connecting", server.to_string(), tcp_endpoint.to_string());
    std::weak_ptr<State> weak = shared_from_this();
    transport.connect(tcp_endpoint, kConnectTimeout,
                      [weak](boost::system::result<relay::Peer> peer) {
                        if (auto self = weak.lock()) self->connected(peer);
                      });
  }

  void connected(const boost::system::result<relay::Peer>& peer) {
    if (phase != Phase::Connecting) return;
    if (!peer) {
      log.warn("TCP {}: {}", endpoint->to_string(), peer.error().message());
      wait();
      return;
    }
    phase = Phase::Connected;
    stream = *peer;
    connected_at = Clock::now();
    engine.set_peer(mux, stream);
    log.info("SATP over TCP to {}", stream->endpoint.to_string());
    keepalive();
  }

  // A Locate down the stream: at once it makes the relay adopt the stream, later it keeps it.
  void keepalive() {
    if (phase != Phase::Connected) return;
    ++keepalives;
    ++request;
    send_locate(*stream);
    arm(kKeepalive, &State::keepalive);
  }

  void wait() {
    phase = Phase::Waiting;
    arm(backoff, &State::locate);
    backoff = std::min<Clock::duration>(backoff * 2, kBackoffMax);
  }

  void closed(const relay::Peer& peer) {
    if (!stream || *stream != peer) return;
    log.warn("TCP stream to {} ended: locating the relay again", peer.endpoint.to_string());
    if (Clock::now() - connected_at >= kStable) backoff = kBackoffFirst;
    stream.reset();
    engine.set_peer(mux, std::nullopt);
    timer.cancel();
    wait();
  }
};

TcpClient::TcpClient(asio::io_context& io, relay::Engine& engine, relay::Sink& sink,
                     TcpTransport& transport, std::uint16_t mux, relay::Endpoint server,
                     std::function<void()> flush)
    : state_{std::make_shared<State>(io, engine, sink, transport, mux, server, std::move(flush))} {}

TcpClient::~TcpClient() {
  stop();
}

void TcpClient::start() {
  state_->engine.set_peer(state_->mux, std::nullopt);
  state_->locate();
}

void TcpClient::stop() noexcept {
  state_->phase = Phase::Stopped;
  state_->timer.cancel();
}

void TcpClient::control(const relay::control::Message& message) {
  auto& s = *state_;
  const auto* located = std::get_if<relay::control::Located>(&message.body);
  // Only the answer to the Locate in flight: a late answer to an earlier one, or the answer to a
  // keepalive, changes nothing.
  if (located && s.phase == Phase::Locating && message.request == s.request)
    s.located(located->tcp);
}

void TcpClient::closed(const relay::Peer& peer) {
  state_->closed(peer);
}

bool TcpClient::admit_udp() noexcept {
  if (state_->phase == Phase::Locating) return true;
  ++state_->udp_ignored;
  return false;
}

void TcpClient::restore_peer() noexcept {
  state_->engine.set_peer(state_->mux, state_->wanted());
}

json::object TcpClient::status() const {
  const auto& s = *state_;
  json::object o;
  o["state"] = phase_name(s.phase);
  o["server"] = s.server.to_string();
  o["endpoint"] = s.endpoint ? json::value(s.endpoint->to_string()) : json::value(nullptr);
  o["locates"] = s.locates;
  o["located"] = s.answers;
  o["keepalives"] = s.keepalives;
  o["udp_ignored"] = s.udp_ignored;
  return o;
}

}  // namespace relay_daemon
