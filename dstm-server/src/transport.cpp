// Transport: TCP and UDP listeners that run one tsp::ServerSession per connection or UDP peer on
// one io_context, with the sessions' timers and writes, per-source limits and bounded buffers.
#include "dstm_server/transport.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <array>
#include <deque>
#include <exception>
#include <limits>
#include <list>
#include <optional>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/errc.hpp>

#include "platform/bind.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "tsp/udp.hpp"

namespace dstm_server {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using Clock = std::chrono::steady_clock;
using ErrorCode = boost::system::error_code;
using namespace std::chrono_literals;

// Completion token for coroutines that inspect errors instead of catching exceptions.
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kReadChunk = 4096;
// The largest UDP payload; one buffer per UDP socket, not per session.
constexpr std::size_t kMaxDatagram = 65536;
// Token buckets kept at most (one per recently seen source); see TokenBuckets.
constexpr std::size_t kMaxBuckets = 16384;
// Port 0: attempts at finding a number free for TCP and UDP alike.
constexpr int kPortAttempts = 8;
// After our FIN we read (and discard) until the peer's FIN, at most this long, before closing:
// closing with unread input would send a RST, and the peer could lose our last reply.
constexpr auto kCloseDrain = 2s;
// Accept failed (no descriptors, no memory): wait instead of spinning on the error.
constexpr auto kAcceptBackoff = 100ms;

enum class Reject : std::size_t { MaxConnections, PerSource, Rate };
constexpr std::array<const char*, 3> kRejectNames{"max_connections", "per_source", "rate"};
enum class Drop : std::size_t { Malformed, Limit, Rate, SendError };
constexpr std::array<const char*, 4> kDropNames{"malformed", "limit", "rate", "send_error"};

constexpr std::size_t index_of(tsp::Transport t) noexcept {
  return t == tsp::Transport::Tcp ? 0 : 1;
}
constexpr const char* name_of(tsp::Transport t) noexcept {
  return t == tsp::Transport::Tcp ? "tcp" : "udp";
}

// ---- addresses ----

core::Ipv6Address mapped(core::Ipv4Address a) noexcept {
  core::Ipv6Address::Octets o{};
  o[10] = 0xff;
  o[11] = 0xff;
  const auto b = a.bytes();
  std::copy(b.begin(), b.end(), o.begin() + 12);
  return core::Ipv6Address{o};
}

struct Peer {
  tsp::PeerAddress address;  // as the session and the handler see it
  core::Ipv6Address source;  // the limits' key: IPv4 as IPv4-mapped IPv6
};

Peer peer_of(const asio::ip::address& a) {
  if (a.is_v4()) {
    const core::Ipv4Address v4{a.to_v4().to_uint()};
    return {v4, mapped(v4)};
  }
  const core::Ipv6Address v6{a.to_v6().to_bytes()};
  if (v6.is_v4_mapped()) {
    const auto& o = v6.bytes();
    const core::Ipv4Address v4{std::array<std::uint8_t, 4>{o[12], o[13], o[14], o[15]}};
    return {v4, v6};
  }
  return {v6, v6};
}

std::string peer_text(const tsp::PeerAddress& p, std::uint16_t port) {
  if (const auto* v4 = std::get_if<core::Ipv4Address>(&p))
    return fmt::format("{}:{}", v4->to_string(), port);
  if (const auto* v6 = std::get_if<core::Ipv6Address>(&p))
    return fmt::format("[{}]:{}", v6->to_string(), port);
  return "?";
}

// A configured listen address.
struct ListenAddress {
  asio::ip::address address;
  std::string text;  // RFC 5952 / dotted quad, as in BoundEndpoint
};

std::string listener_name(tsp::Transport t, const ListenAddress& a, std::uint16_t port) {
  return a.address.is_v6() ? fmt::format("{} [{}]:{}", name_of(t), a.text, port)
                           : fmt::format("{} {}:{}", name_of(t), a.text, port);
}

// ---- new-session rate: one token bucket per source ----

// Buckets start full (burst tokens) and refill at `rate` tokens per second. A bucket that has
// refilled is indistinguishable from a new one, so it is forgotten; the least recently used
// bucket is looked at first (an LRU list), which keeps the cost O(1) per call. Beyond
// max_entries the least recently used bucket is forgotten even if not full: its source then
// starts again with a full bucket, which errs towards admitting.
class TokenBuckets {
 public:
  TokenBuckets(double rate, double burst, std::size_t max_entries)
      : rate_{rate}, burst_{burst}, max_entries_{max_entries} {}

  bool take(const core::Ipv6Address& source, Clock::time_point now) {
    while (!lru_.empty() && full(map_.at(lru_.front()), now)) {
      map_.erase(lru_.front());
      lru_.pop_front();
    }
    auto it = map_.find(source);
    if (it == map_.end()) {
      if (map_.size() >= max_entries_ && !lru_.empty()) {
        map_.erase(lru_.front());
        lru_.pop_front();
      }
      lru_.push_back(source);
      it = map_.emplace(source, Bucket{burst_, now, std::prev(lru_.end())}).first;
    } else {
      refill(it->second, now);
      lru_.splice(lru_.end(), lru_, it->second.lru);
    }
    Bucket& b = it->second;
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
  }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last;
    std::list<core::Ipv6Address>::iterator lru;
  };

  double level(const Bucket& b, Clock::time_point now) const noexcept {
    const std::chrono::duration<double> elapsed = now - b.last;
    return std::min(burst_, b.tokens + rate_ * std::max(0.0, elapsed.count()));
  }
  bool full(const Bucket& b, Clock::time_point now) const noexcept {
    return level(b, now) >= burst_;
  }
  void refill(Bucket& b, Clock::time_point now) const noexcept {
    b.tokens = level(b, now);
    b.last = now;
  }

  double rate_;
  double burst_;
  std::size_t max_entries_;
  std::unordered_map<core::Ipv6Address, Bucket> map_;
  std::list<core::Ipv6Address> lru_;  // front: least recently used
};

// ---- counters ----

struct Metrics {
  std::array<platform::Counter*, 2> sessions_total{};
  std::array<platform::Gauge*, 2> sessions{};
  std::array<std::array<platform::Counter*, 3>, 2> rejected{};
  std::array<platform::Counter*, 4> dropped{};
  platform::Counter* timeouts = nullptr;
  platform::Counter* write_overflows = nullptr;
  std::array<platform::Counter*, 2> bytes_received{};
  std::array<platform::Counter*, 2> bytes_sent{};

  explicit Metrics(platform::Counters* c) {
    if (!c) return;
    for (auto t : {tsp::Transport::Tcp, tsp::Transport::Udp}) {
      const auto i = index_of(t);
      const platform::Labels labels{{"transport", name_of(t)}};
      sessions_total[i] = &c->counter("tsp_sessions_total", "TSP sessions started", labels);
      sessions[i] = &c->gauge("tsp_sessions", "TSP sessions open", labels);
      for (std::size_t r = 0; r < kRejectNames.size(); ++r)
        rejected[i][r] = &c->counter("tsp_rejected_total", "New TSP sessions refused by a limit",
                                     {{"transport", name_of(t)}, {"reason", kRejectNames[r]}});
      bytes_received[i] =
          &c->counter("tsp_bytes_received_total", "TSP bytes received (UDP: datagrams)", labels);
      bytes_sent[i] =
          &c->counter("tsp_bytes_sent_total", "TSP bytes sent (UDP: datagrams)", labels);
    }
    for (std::size_t d = 0; d < kDropNames.size(); ++d)
      dropped[d] = &c->counter("tsp_datagrams_dropped_total", "TSP UDP datagrams dropped",
                               {{"reason", kDropNames[d]}});
    timeouts = &c->counter("tsp_timeouts_total",
                           "TSP sessions closed by a deadline or a TCP write stuck too long");
    write_overflows =
        &c->counter("tsp_write_overflows_total",
                    "TSP connections dropped because the peer did not read its replies");
  }

  static void inc(platform::Counter* c, std::uint64_t n = 1) noexcept {
    if (c) c->inc(n);
  }
  void reject(tsp::Transport t, Reject r) noexcept {
    inc(rejected[index_of(t)][static_cast<std::size_t>(r)]);
  }
  void drop(Drop d) noexcept { inc(dropped[static_cast<std::size_t>(d)]); }
  void opened(tsp::Transport t) noexcept {
    inc(sessions_total[index_of(t)]);
    if (auto* g = sessions[index_of(t)]) g->add(1);
  }
  void closed(tsp::Transport t) noexcept {
    if (auto* g = sessions[index_of(t)]) g->sub(1);
  }
  void received(tsp::Transport t, std::size_t n) noexcept { inc(bytes_received[index_of(t)], n); }
  void sent(tsp::Transport t, std::size_t n) noexcept { inc(bytes_sent[index_of(t)], n); }
};

// ---- listeners ----

struct TcpListener {
  explicit TcpListener(asio::io_context& io) : acceptor{io} {}
  tcp::acceptor acceptor;
  BoundEndpoint bound;
  std::string name;  // "tcp [::1]:3653", for logs
};

struct UdpListener {
  explicit UdpListener(asio::io_context& io) : socket{io} {}
  udp::socket socket;
  BoundEndpoint bound;
  std::string name;  // "udp 127.0.0.1:3653", for logs
  std::size_t index = 0;
  udp::endpoint sender;
  // A wildcard socket ("::", "0.0.0.0") learns each datagram's destination (IPV6_RECVPKTINFO /
  // IP_PKTINFO) and replies from it: otherwise the kernel picks the reply's source by route, and
  // a client that wrote to another of the box's addresses drops the reply as coming from a
  // stranger.
  bool wildcard = false;
  std::optional<asio::ip::address> destination;  // of the datagram being handled
  std::array<std::byte, kMaxDatagram> buffer{};
};

// Receives one datagram with its destination address (wildcard sockets). false when nothing is
// waiting (EAGAIN) or on an error, which is left in ec.
bool receive_with_destination(UdpListener& l, std::size_t& n, ErrorCode& ec) {
  sockaddr_storage from{};
  iovec iov{l.buffer.data(), l.buffer.size()};
  alignas(cmsghdr) std::array<char, 256> control{};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const auto got = ::recvmsg(l.socket.native_handle(), &msg, MSG_DONTWAIT);
  if (got < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      ec = ErrorCode{errno, boost::system::system_category()};
    return false;
  }
  n = static_cast<std::size_t>(got);
  l.destination.reset();
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      asio::ip::address_v6::bytes_type b{};
      std::memcpy(b.data(), &info.ipi6_addr, b.size());
      l.destination = asio::ip::address_v6{b};
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      l.destination = asio::ip::address_v4{ntohl(info.ipi_addr.s_addr)};
    }
  }
  if (from.ss_family == AF_INET6) {
    sockaddr_in6 a{};
    std::memcpy(&a, &from, sizeof a);
    asio::ip::address_v6::bytes_type b{};
    std::memcpy(b.data(), &a.sin6_addr, b.size());
    l.sender = udp::endpoint{asio::ip::address_v6{b, a.sin6_scope_id}, ntohs(a.sin6_port)};
  } else {
    sockaddr_in a{};
    std::memcpy(&a, &from, sizeof a);
    l.sender = udp::endpoint{asio::ip::address_v4{ntohl(a.sin_addr.s_addr)}, ntohs(a.sin_port)};
  }
  return true;
}

// Sends one datagram from `source` (a wildcard socket's reply).
void send_from(udp::socket& socket, const udp::endpoint& to, const asio::ip::address& source,
               std::span<const std::byte> bytes, ErrorCode& ec) {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> control{};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to.data());
  msg.msg_namelen = static_cast<socklen_t>(to.size());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  cmsghdr* c = nullptr;
  if (source.is_v6()) {
    msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo info{};
    const auto b = source.to_v6().to_bytes();
    std::memcpy(&info.ipi6_addr, b.data(), b.size());
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
  } else {
    msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo info{};
    info.ipi_spec_dst.s_addr = htonl(source.to_v4().to_uint());
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
  }
  if (::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT) < 0)
    ec = ErrorCode{errno, boost::system::system_category()};
}

struct UdpKey {
  core::Ipv6Address source;
  std::uint16_t port = 0;
  std::size_t listener = 0;  // replies leave through the socket that received
  bool operator==(const UdpKey&) const = default;
};

struct UdpKeyHash {
  std::size_t operator()(const UdpKey& k) const noexcept {
    std::size_t h = std::hash<core::Ipv6Address>{}(k.source);
    h ^= ((std::size_t{k.port} << 16) | k.listener) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h;
  }
};

class Engine;

// ---- sessions ----

// One tsp::ServerSession and what it needs from the transport: timers (one per TimerKind), the
// action loop, the handler calls, and exactly one on_closed.
class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  SessionBase(std::shared_ptr<Engine> engine, SessionInfo info);
  virtual ~SessionBase() = default;
  SessionBase(const SessionBase&) = delete;
  SessionBase& operator=(const SessionBase&) = delete;

  // Feeds one event and executes the resulting actions in order.
  void dispatch(const tsp::ServerEvent& event);
  // Ends the session now: the socket side is closed, the tables forget it, on_closed is called.
  // Idempotent.
  void finish() noexcept;
  bool finished() const noexcept { return finished_; }
  const SessionInfo& info() const noexcept { return info_; }

 protected:
  virtual void send(std::vector<std::byte> bytes) = 0;
  virtual void close(const tsp::Close& close) = 0;
  // Closes the transport side and removes the session from the engine's tables.
  virtual void release() noexcept = 0;

  std::shared_ptr<Engine> engine_;
  bool closing_ = false;  // Close executed

 private:
  struct TimerSlot {
    explicit TimerSlot(const asio::any_io_executor& ex) : timer{ex} {}
    asio::steady_timer timer;
    std::uint64_t serial = 0;  // bumped by every arm and cancel: a late expiry is recognised
  };

  void arm(const tsp::ArmTimer& a);
  void cancel(tsp::TimerKind kind) noexcept;
  EventSink sink();

  SessionInfo info_;
  tsp::ServerSession session_;
  std::array<TimerSlot, tsp::kTimerKinds> timers_;
  bool finished_ = false;
};

class TcpSession final : public SessionBase {
 public:
  TcpSession(std::shared_ptr<Engine> engine, SessionInfo info, tcp::socket socket,
             core::Ipv6Address source);

  const core::Ipv6Address& source() const noexcept { return source_; }
  static asio::awaitable<void> read_loop(std::shared_ptr<TcpSession> self);

 private:
  void send(std::vector<std::byte> bytes) override;
  void close(const tsp::Close& close) override;
  void release() noexcept override;

  static asio::awaitable<void> write_loop(std::shared_ptr<TcpSession> self);
  void arm_write_deadline();
  void flushed();
  void peer_gone(const ErrorCode& ec);
  std::shared_ptr<TcpSession> self() {
    return std::static_pointer_cast<TcpSession>(shared_from_this());
  }

  tcp::socket socket_;
  core::Ipv6Address source_;
  asio::steady_timer io_timer_;  // the deadline of the write in progress, then the close drain
  std::uint64_t io_serial_ = 0;  // bumped whenever io_timer_'s meaning changes
  std::deque<std::vector<std::byte>> writes_;  // front: being written
  std::size_t queued_ = 0;                     // bytes in writes_
  bool writing_ = false;                       // write_loop runs
  bool fin_sent_ = false;
  bool peer_eof_ = false;
  std::array<std::byte, kReadChunk> buffer_{};
};

class UdpSession final : public SessionBase {
 public:
  UdpSession(std::shared_ptr<Engine> engine, SessionInfo info, UdpListener& listener,
             udp::endpoint remote, UdpKey key);

  const UdpKey& key() const noexcept { return key_; }
  // The sequence word of the last datagram fed to the session.
  std::uint32_t last_sequence = 0;

 private:
  void send(std::vector<std::byte> bytes) override;
  void close(const tsp::Close& close) override;
  void release() noexcept override;

  UdpListener& listener_;  // owned by the engine, which outlives its sessions
  udp::endpoint remote_;
  std::optional<asio::ip::address> local_;  // wildcard listener: the address the peer wrote to
  UdpKey key_;
  asio::steady_timer linger_;
};

// ---- the engine (Transport::Impl) ----

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  Engine(asio::io_context& io_context, SessionHandler& h, TransportOptions o)
      : io{io_context},
        handler{h},
        options{std::move(o)},
        metrics{options.counters},
        buckets{static_cast<double>(options.limits.new_sessions_per_second),
                static_cast<double>(options.limits.new_sessions_burst), kMaxBuckets} {
    if (!options.session) throw std::invalid_argument{"TransportOptions::session is required"};
  }

  Result<void> start();
  void stop() noexcept;
  std::vector<BoundEndpoint> endpoints() const;

  void remove(TcpSession& s) noexcept;
  void remove(UdpSession& s) noexcept;

  asio::io_context& io;
  SessionHandler& handler;
  const TransportOptions options;
  Metrics metrics;
  platform::Logger log{"transport"};
  bool started = false;
  bool stopped = false;

  std::unordered_map<std::uint64_t, std::shared_ptr<TcpSession>> tcp_sessions;
  std::unordered_map<UdpKey, std::shared_ptr<UdpSession>, UdpKeyHash> udp_sessions;

 private:
  struct Listeners {
    std::vector<std::unique_ptr<TcpListener>> tcp;
    std::vector<std::unique_ptr<UdpListener>> udp;
  };

  Result<Listeners> bind_all(const std::vector<ListenAddress>& addresses) const;
  Result<std::unique_ptr<TcpListener>> bind_tcp(const ListenAddress& a, std::uint16_t port) const;
  Result<std::unique_ptr<UdpListener>> bind_udp(const ListenAddress& a, std::uint16_t port) const;

  static asio::awaitable<void> accept_loop(std::shared_ptr<Engine> self, TcpListener& l);
  static asio::awaitable<void> receive_loop(std::shared_ptr<Engine> self, UdpListener& l);
  void accepted(tcp::socket socket);
  void received(UdpListener& l, core::Bytes datagram);
  // Whether a new session from `source` may start; counts and logs a refusal.
  bool admit(tsp::Transport t, const core::Ipv6Address& source, std::size_t total,
             std::size_t max_total, std::uint32_t per_source, std::uint32_t max_per_source,
             const std::string& who);
  SessionInfo new_info(tsp::Transport t, const Peer& peer, std::uint16_t port) {
    return SessionInfo{.id = next_id_++,
                       .transport = t,
                       .peer = peer.address,
                       .peer_port = port,
                       .identity = std::nullopt};
  }

  Listeners listeners_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<core::Ipv6Address, std::uint32_t> tcp_per_source_;
  std::unordered_map<core::Ipv6Address, std::uint32_t> udp_per_source_;
  TokenBuckets buckets;

  friend class TcpSession;
  friend class UdpSession;
};

// ---- SessionBase ----

SessionBase::SessionBase(std::shared_ptr<Engine> engine, SessionInfo info)
    : engine_{std::move(engine)},
      info_{std::move(info)},
      session_{engine_->options.session, info_.transport, info_.peer},
      timers_{TimerSlot{engine_->io.get_executor()}, TimerSlot{engine_->io.get_executor()},
              TimerSlot{engine_->io.get_executor()}} {}

void SessionBase::dispatch(const tsp::ServerEvent& event) {
  if (finished_ || engine_->stopped) return;
  const auto keep = shared_from_this();  // a handler may stop the transport
  try {
    auto actions = session_.handle(event);
    if (!info_.identity && session_.identity()) {
      // Before the actions: a request pipelined behind AUTHENTICATE reaches on_action after
      // on_authenticated.
      info_.identity = session_.identity();
      engine_->handler.on_authenticated(info_);
    }
    const auto* expired = std::get_if<tsp::TimerExpired>(&event);
    const bool deadline = expired && expired->timer == tsp::TimerKind::Phase;
    for (auto& action : actions) {
      if (finished_) return;
      if (auto* s = std::get_if<tsp::Send>(&action)) {
        send(std::move(s->bytes));
      } else if (const auto* a = std::get_if<tsp::ArmTimer>(&action)) {
        arm(*a);
      } else if (const auto* c = std::get_if<tsp::CancelTimer>(&action)) {
        cancel(c->timer);
      } else if (const auto* cl = std::get_if<tsp::Close>(&action)) {
        if (deadline) Metrics::inc(engine_->metrics.timeouts);
        close(*cl);
      } else {
        // Everything else is for the DSTM logic (leases, mappings, heartbeats).
        engine_->handler.on_action(info_, action, sink());
      }
    }
  } catch (const std::exception& e) {
    engine_->log.error_limited("session-error", "{} session {} from {} dropped: {}",
                               name_of(info_.transport), info_.id,
                               peer_text(info_.peer, info_.peer_port), e.what());
    finish();
  }
}

void SessionBase::finish() noexcept {
  if (finished_) return;
  finished_ = true;
  const auto keep = shared_from_this();  // release() drops the table's reference
  for (auto& t : timers_) t.timer.cancel();
  release();
  try {
    engine_->handler.on_closed(info_);
  } catch (const std::exception& e) {
    engine_->log.error_limited("handler-error", "on_closed for session {} failed: {}", info_.id,
                               e.what());
  } catch (...) {
  }
}

void SessionBase::arm(const tsp::ArmTimer& a) {
  auto& slot = timers_[tsp::timer_index(a.timer)];
  const auto serial = ++slot.serial;
  slot.timer.expires_after(a.after);
  slot.timer.async_wait([weak = weak_from_this(), kind = a.timer, generation = a.generation,
                         serial](const ErrorCode& ec) {
    if (ec) return;
    const auto self = weak.lock();
    if (!self || self->finished_ || self->timers_[tsp::timer_index(kind)].serial != serial) return;
    self->dispatch(tsp::TimerExpired{kind, generation});
  });
}

void SessionBase::cancel(tsp::TimerKind kind) noexcept {
  auto& slot = timers_[tsp::timer_index(kind)];
  ++slot.serial;
  slot.timer.cancel();
}

EventSink SessionBase::sink() {
  return [weak = weak_from_this()](tsp::ServerEvent event) -> bool {
    const auto self = weak.lock();
    if (!self || self->finished_) return false;
    // Posted, never handled inside the caller: the handler is not re-entered, and the actions
    // of the event being handled now are all executed before this one's.
    asio::post(self->engine_->io, [weak, e = std::move(event)] {
      if (const auto s = weak.lock()) s->dispatch(e);
    });
    return true;
  };
}

// ---- TcpSession ----

TcpSession::TcpSession(std::shared_ptr<Engine> engine, SessionInfo info, tcp::socket socket,
                       core::Ipv6Address source)
    : SessionBase{std::move(engine), std::move(info)},
      socket_{std::move(socket)},
      source_{source},
      io_timer_{engine_->io} {}

asio::awaitable<void> TcpSession::read_loop(std::shared_ptr<TcpSession> self) {
  for (;;) {
    auto [ec, n] = co_await self->socket_.async_read_some(asio::buffer(self->buffer_), kNoThrow);
    if (self->finished()) co_return;
    self->engine_->metrics.received(tsp::Transport::Tcp, n);
    if (ec) {
      self->peer_gone(ec);
      co_return;
    }
    if (self->closing_) continue;  // after Close: read and discard until the peer's FIN
    self->dispatch(tsp::BytesReceived{core::Bytes{self->buffer_.data(), n}});
  }
}

void TcpSession::peer_gone(const ErrorCode& ec) {
  peer_eof_ = true;
  if (!closing_) dispatch(tsp::PeerClosed{});  // the session answers with Close
  if (finished()) return;
  if (ec != asio::error::eof) {
    finish();  // reset or broken: nothing queued can be delivered any more
    return;
  }
  if (!closing_) {
    closing_ = true;
    if (!writing_) flushed();
  } else if (fin_sent_) {
    finish();
  }
}

void TcpSession::send(std::vector<std::byte> bytes) {
  if (closing_) return;
  const std::size_t limit = engine_->options.max_write_queue;
  if (bytes.size() > limit || queued_ > limit - bytes.size()) {
    Metrics::inc(engine_->metrics.write_overflows);
    engine_->log.info_limited("write-queue", "tcp session {} from {}: peer does not read, dropped",
                              info().id, peer_text(info().peer, info().peer_port));
    finish();
    return;
  }
  queued_ += bytes.size();
  writes_.push_back(std::move(bytes));
  if (!writing_) {
    writing_ = true;
    asio::co_spawn(socket_.get_executor(), write_loop(self()), asio::detached);
  }
}

void TcpSession::arm_write_deadline() {
  const auto serial = ++io_serial_;
  io_timer_.expires_after(engine_->options.write_timeout);
  io_timer_.async_wait([weak = std::weak_ptr<TcpSession>{self()}, serial](const ErrorCode& ec) {
    const auto s = weak.lock();
    if (ec || !s || s->finished() || s->io_serial_ != serial) return;
    Metrics::inc(s->engine_->metrics.timeouts);
    s->engine_->log.info_limited("write-timeout", "tcp session {} from {}: write stuck, dropped",
                                 s->info().id, peer_text(s->info().peer, s->info().peer_port));
    s->finish();
  });
}

// One async_write per Send, in order: a Send is never coalesced with the next (gogoc reads each
// reply with one recv()).
asio::awaitable<void> TcpSession::write_loop(std::shared_ptr<TcpSession> self) {
  while (!self->finished() && !self->writes_.empty()) {
    self->arm_write_deadline();
    // A reference into a deque stays valid while send() appends at the back.
    const auto& front = self->writes_.front();
    auto [ec, n] = co_await asio::async_write(self->socket_, asio::buffer(front), kNoThrow);
    if (self->finished()) co_return;
    ++self->io_serial_;
    self->io_timer_.cancel();
    if (ec) {
      self->finish();
      co_return;
    }
    self->engine_->metrics.sent(tsp::Transport::Tcp, n);
    self->queued_ -= front.size();
    self->writes_.pop_front();
  }
  self->writing_ = false;
  if (!self->finished() && self->closing_) self->flushed();
}

void TcpSession::close(const tsp::Close&) {
  if (closing_) return;
  closing_ = true;
  if (!writing_) flushed();
}

// Close and every write before it are done: send our FIN, then wait for the peer's (bounded).
void TcpSession::flushed() {
  ErrorCode ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  fin_sent_ = true;
  if (ec || peer_eof_) {
    finish();
    return;
  }
  const auto serial = ++io_serial_;
  io_timer_.expires_after(kCloseDrain);
  io_timer_.async_wait([weak = std::weak_ptr<TcpSession>{self()}, serial](const ErrorCode& e) {
    const auto s = weak.lock();
    if (!e && s && s->io_serial_ == serial) s->finish();
  });
}

void TcpSession::release() noexcept {
  ErrorCode ec;
  io_timer_.cancel();
  socket_.close(ec);
  engine_->remove(*this);
}

// ---- UdpSession ----

UdpSession::UdpSession(std::shared_ptr<Engine> engine, SessionInfo info, UdpListener& listener,
                       udp::endpoint remote, UdpKey key)
    : SessionBase{std::move(engine), std::move(info)},
      listener_{listener},
      remote_{std::move(remote)},
      local_{listener.destination},
      key_{key},
      linger_{engine_->io} {}

// One datagram per Send. The socket is non-blocking: a reply the kernel cannot take now is
// dropped (counted); the peer retransmits and gets it from the session's reply cache.
void UdpSession::send(std::vector<std::byte> bytes) {
  ErrorCode ec;
  if (local_) {
    send_from(listener_.socket, remote_, *local_, bytes, ec);
  } else {
    listener_.socket.send_to(asio::buffer(bytes), remote_, 0, ec);
  }
  if (ec) {
    engine_->metrics.drop(Drop::SendError);
    engine_->log.warn_limited("udp-send", "udp send to {} failed: {}",
                              peer_text(info().peer, info().peer_port), ec.message());
    return;
  }
  engine_->metrics.sent(tsp::Transport::Udp, bytes.size());
}

void UdpSession::close(const tsp::Close& c) {
  if (closing_) return;
  closing_ = true;
  if (c.linger <= tsp::Duration::zero()) {
    finish();
    return;
  }
  // The session stays to answer retransmissions of its last reply.
  linger_.expires_after(c.linger);
  linger_.async_wait([weak = weak_from_this()](const ErrorCode& ec) {
    if (ec) return;
    if (const auto s = weak.lock()) s->finish();
  });
}

void UdpSession::release() noexcept {
  linger_.cancel();
  engine_->remove(*this);
}

// ---- Engine ----

void Engine::remove(TcpSession& s) noexcept {
  if (tcp_sessions.erase(s.info().id) == 0) return;
  metrics.closed(tsp::Transport::Tcp);
  if (auto it = tcp_per_source_.find(s.source()); it != tcp_per_source_.end())
    if (--it->second == 0) tcp_per_source_.erase(it);
}

void Engine::remove(UdpSession& s) noexcept {
  if (udp_sessions.erase(s.key()) == 0) return;
  metrics.closed(tsp::Transport::Udp);
  if (auto it = udp_per_source_.find(s.key().source); it != udp_per_source_.end())
    if (--it->second == 0) udp_per_source_.erase(it);
}

Result<std::unique_ptr<TcpListener>> Engine::bind_tcp(const ListenAddress& a,
                                                      std::uint16_t port) const {
  auto l = std::make_unique<TcpListener>(io);
  const tcp::endpoint ep{a.address, port};
  ErrorCode ec;
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(asio::socket_base::reuse_address{true}, ec);
  if (!ec && a.address.is_v6()) l->acceptor.set_option(asio::ip::v6_only{true}, ec);
  if (!ec) platform::bind_local(l->acceptor, ep, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  std::uint16_t bound_port = port;
  if (!ec) bound_port = l->acceptor.local_endpoint(ec).port();
  if (ec) return Error{ec, listener_name(tsp::Transport::Tcp, a, port)};
  l->bound = BoundEndpoint{tsp::Transport::Tcp, a.text, bound_port};
  l->name = listener_name(tsp::Transport::Tcp, a, bound_port);
  return l;
}

constexpr int kUdpSocketBuffer = 4 * 1024 * 1024;

// The first datagram of a TSP session: a header and "VERSION=".
bool starts_session(core::Bytes datagram) noexcept {
  const auto d = tsp::parse_udp_datagram(datagram);
  if (!d) return false;
  constexpr std::string_view kVersion = "VERSION=";
  if (d->payload.size() < kVersion.size()) return false;
  for (std::size_t i = 0; i < kVersion.size(); ++i)
    if (static_cast<char>(d->payload[i]) != kVersion[i]) return false;
  return true;
}

Result<std::unique_ptr<UdpListener>> Engine::bind_udp(const ListenAddress& a,
                                                      std::uint16_t port) const {
  auto l = std::make_unique<UdpListener>(io);
  const udp::endpoint ep{a.address, port};
  ErrorCode ec;
  l->socket.open(ep.protocol(), ec);
  if (!ec && a.address.is_v6()) l->socket.set_option(asio::ip::v6_only{true}, ec);
  if (!ec && a.address.is_unspecified()) {
    l->wildcard = true;
    const int on = 1;
    const int level = a.address.is_v6() ? IPPROTO_IPV6 : IPPROTO_IP;
    const int name = a.address.is_v6() ? IPV6_RECVPKTINFO : IP_PKTINFO;
    if (::setsockopt(l->socket.native_handle(), level, name, &on, sizeof on) != 0)
      ec = ErrorCode{errno, boost::system::system_category()};
  }
  if (!ec) platform::bind_local(l->socket, ep, ec);
  if (!ec) l->socket.non_blocking(true, ec);
  // Every UDP client shares this one socket: with the default buffers (about 200 KiB) a burst
  // of a few hundred clients overflows them and each lost datagram costs its client a
  // retransmission timeout. Best effort: the kernel caps these at net.core.[rw]mem_max.
  if (!ec) {
    ErrorCode ignored;
    l->socket.set_option(asio::socket_base::receive_buffer_size{kUdpSocketBuffer}, ignored);
    l->socket.set_option(asio::socket_base::send_buffer_size{kUdpSocketBuffer}, ignored);
  }
  std::uint16_t bound_port = port;
  if (!ec) bound_port = l->socket.local_endpoint(ec).port();
  if (ec) return Error{ec, listener_name(tsp::Transport::Udp, a, port)};
  l->bound = BoundEndpoint{tsp::Transport::Udp, a.text, bound_port};
  l->name = listener_name(tsp::Transport::Udp, a, bound_port);
  return l;
}

// TCP listeners first, so that with port 0 the first one picks the number the others use.
Result<Engine::Listeners> Engine::bind_all(const std::vector<ListenAddress>& addresses) const {
  Listeners out;
  std::uint16_t port = options.listen.port;
  if (options.listen.tcp) {
    for (const auto& a : addresses) {
      auto l = bind_tcp(a, port);
      if (!l) return l.error();
      port = (*l)->bound.port;
      out.tcp.push_back(std::move(*l));
    }
  }
  if (options.listen.udp) {
    for (const auto& a : addresses) {
      auto l = bind_udp(a, port);
      if (!l) return l.error();
      port = (*l)->bound.port;
      (*l)->index = out.udp.size();
      out.udp.push_back(std::move(*l));
    }
  }
  return out;
}

Result<void> Engine::start() {
  if (started || stopped)
    return Error{boost::system::errc::make_error_code(boost::system::errc::already_connected),
                 "the TSP transport starts once"};
  std::vector<ListenAddress> addresses;
  for (const auto& a : options.listen.ipv6)
    addresses.push_back({asio::ip::address_v6{a.bytes()}, a.to_string()});
  for (const auto& a : options.listen.ipv4)
    addresses.push_back({asio::ip::address_v4{a.to_uint()}, a.to_string()});

  // Port 0: the number TCP picked may be taken for UDP (or on another address); release
  // everything and try again with a new number.
  const int attempts = options.listen.port == 0 ? kPortAttempts : 1;
  for (int attempt = 1;; ++attempt) {
    auto bound = bind_all(addresses);
    if (bound) {
      listeners_ = std::move(*bound);
      break;
    }
    if (attempt >= attempts || bound.error().code != boost::system::errc::address_in_use)
      return bound.error();
  }
  started = true;

  auto self = shared_from_this();
  for (auto& l : listeners_.tcp) {
    log.info("listening on {}", l->name);
    asio::co_spawn(io, accept_loop(self, *l), asio::detached);
  }
  for (auto& l : listeners_.udp) {
    log.info("listening on {}", l->name);
    asio::co_spawn(io, receive_loop(self, *l), asio::detached);
  }
  return {};
}

void Engine::stop() noexcept {
  if (stopped) return;
  stopped = true;
  ErrorCode ec;
  for (auto& l : listeners_.tcp) l->acceptor.close(ec);
  for (auto& l : listeners_.udp) l->socket.close(ec);
  // finish() removes the session from its table.
  while (!tcp_sessions.empty()) {
    const auto s = tcp_sessions.begin()->second;
    if (s->finished())
      tcp_sessions.erase(tcp_sessions.begin());  // cannot happen; never loop forever
    else
      s->finish();
  }
  while (!udp_sessions.empty()) {
    const auto s = udp_sessions.begin()->second;
    if (s->finished())
      udp_sessions.erase(udp_sessions.begin());
    else
      s->finish();
  }
}

std::vector<BoundEndpoint> Engine::endpoints() const {
  std::vector<BoundEndpoint> out;
  if (!started || stopped) return out;
  for (const auto& l : listeners_.tcp) out.push_back(l->bound);
  for (const auto& l : listeners_.udp) out.push_back(l->bound);
  return out;
}

bool Engine::admit(tsp::Transport t, const core::Ipv6Address& source, std::size_t total,
                   std::size_t max_total, std::uint32_t per_source, std::uint32_t max_per_source,
                   const std::string& who) {
  std::optional<Reject> reason;
  if (total >= max_total)
    reason = Reject::MaxConnections;
  else if (per_source >= max_per_source)
    reason = Reject::PerSource;
  else if (!buckets.take(source, Clock::now()))
    reason = Reject::Rate;
  if (!reason) return true;
  metrics.reject(t, *reason);
  if (t == tsp::Transport::Udp) metrics.drop(*reason == Reject::Rate ? Drop::Rate : Drop::Limit);
  log.warn_limited(t == tsp::Transport::Tcp ? "tcp-limit" : "udp-limit",
                   "{}: new session from {} refused ({})", name_of(t), who,
                   kRejectNames[static_cast<std::size_t>(*reason)]);
  return false;
}

asio::awaitable<void> Engine::accept_loop(std::shared_ptr<Engine> self, TcpListener& l) {
  for (;;) {
    auto [ec, socket] = co_await l.acceptor.async_accept(kNoThrow);
    if (self->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      self->log.warn_limited("accept", "{}: accept failed: {}", l.name, ec.message());
      asio::steady_timer pause{self->io, kAcceptBackoff};
      co_await pause.async_wait(kNoThrow);
      if (self->stopped) co_return;
      continue;
    }
    self->accepted(std::move(socket));
  }
}

void Engine::accepted(tcp::socket socket) {
  ErrorCode ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) return;  // already gone; the socket closes here
  const Peer peer = peer_of(remote.address());
  const auto per_source = tcp_per_source_.find(peer.source);
  if (!admit(tsp::Transport::Tcp, peer.source, tcp_sessions.size(), options.limits.max_connections,
             per_source == tcp_per_source_.end() ? 0 : per_source->second,
             options.limits.max_connections_per_source, peer_text(peer.address, remote.port()))) {
    // Accepted and closed at once: the peer sees its connection end.
    socket.close(ec);
    return;
  }
  socket.set_option(tcp::no_delay{true}, ec);  // each Send leaves as soon as it is written
  if (const auto size = options.tcp_send_buffer; size > 0)
    socket.set_option(asio::socket_base::send_buffer_size{static_cast<int>(
                          std::min<std::size_t>(size, std::numeric_limits<int>::max()))},
                      ec);
  auto session = std::make_shared<TcpSession>(shared_from_this(),
                                              new_info(tsp::Transport::Tcp, peer, remote.port()),
                                              std::move(socket), peer.source);
  tcp_sessions.emplace(session->info().id, session);
  ++tcp_per_source_[peer.source];
  metrics.opened(tsp::Transport::Tcp);
  session->dispatch(tsp::Start{});
  if (!session->finished())
    asio::co_spawn(io, TcpSession::read_loop(std::move(session)), asio::detached);
}

asio::awaitable<void> Engine::receive_loop(std::shared_ptr<Engine> self, UdpListener& l) {
  if (l.wildcard) {
    // recvmsg for the destination address: wait for readability, then drain (bounded per wake
    // so TCP sessions get their turn).
    for (;;) {
      auto [wait_ec] = co_await l.socket.async_wait(udp::socket::wait_read, kNoThrow);
      if (self->stopped || wait_ec == asio::error::operation_aborted) co_return;
      for (int i = 0; i < 64; ++i) {
        std::size_t n = 0;
        ErrorCode ec;
        if (!receive_with_destination(l, n, ec)) {
          if (ec)
            self->log.warn_limited("udp-receive", "{}: receive failed: {}", l.name, ec.message());
          break;
        }
        self->metrics.received(tsp::Transport::Udp, n);
        self->received(l, core::Bytes{l.buffer.data(), n});
        if (self->stopped) co_return;
      }
    }
  }
  for (;;) {
    auto [ec, n] = co_await l.socket.async_receive_from(asio::buffer(l.buffer), l.sender, kNoThrow);
    if (self->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      self->log.warn_limited("udp-receive", "{}: receive failed: {}", l.name, ec.message());
      continue;
    }
    self->metrics.received(tsp::Transport::Udp, n);
    self->received(l, core::Bytes{l.buffer.data(), n});
  }
}

void Engine::received(UdpListener& l, core::Bytes datagram) {
  const Peer peer = peer_of(l.sender.address());
  const UdpKey key{peer.source, l.sender.port(), l.index};
  if (const auto it = udp_sessions.find(key); it != udp_sessions.end()) {
    const auto session = it->second;
    const auto header = tsp::parse_udp_datagram(datagram);
    const bool retransmission = header && header->header.sequence_word == session->last_sequence;
    if (retransmission || !starts_session(datagram)) {
      if (header) session->last_sequence = header->header.sequence_word;
      session->dispatch(tsp::DatagramReceived{datagram});
      return;
    }
    // A new session from the address and port of an older one (a NAT reusing the port, a
    // client restarting): a session has one VERSION, so the old one is over; let it go. Over
    // UDP an established v4v6 session would otherwise hold the port for the lease's lifetime.
    session->finish();
  }
  // A new peer must at least speak TSP's UDP header before it costs a session.
  if (!tsp::parse_udp_datagram(datagram)) {
    metrics.drop(Drop::Malformed);
    return;
  }
  const auto per_source = udp_per_source_.find(peer.source);
  if (!admit(tsp::Transport::Udp, peer.source, udp_sessions.size(), options.limits.max_udp_sessions,
             per_source == udp_per_source_.end() ? 0 : per_source->second,
             options.limits.max_udp_sessions_per_source, peer_text(peer.address, key.port)))
    return;
  auto session = std::make_shared<UdpSession>(
      shared_from_this(), new_info(tsp::Transport::Udp, peer, key.port), l, l.sender, key);
  udp_sessions.emplace(key, session);
  ++udp_per_source_[peer.source];
  metrics.opened(tsp::Transport::Udp);
  session->dispatch(tsp::Start{});
  if (const auto header = tsp::parse_udp_datagram(datagram))
    session->last_sequence = header->header.sequence_word;
  session->dispatch(tsp::DatagramReceived{datagram});
}

}  // namespace

struct Transport::Impl : Engine {
  using Engine::Engine;
};

Transport::Transport(boost::asio::io_context& io, SessionHandler& handler, TransportOptions options)
    : impl_{std::make_shared<Impl>(io, handler, std::move(options))} {}

Transport::~Transport() {
  stop();
}

Result<void> Transport::start() {
  return impl_->start();
}

void Transport::stop() noexcept {
  impl_->stop();
}

std::vector<BoundEndpoint> Transport::endpoints() const {
  return impl_->endpoints();
}

std::size_t Transport::tcp_sessions() const noexcept {
  return impl_->tcp_sessions.size();
}

std::size_t Transport::udp_sessions() const noexcept {
  return impl_->udp_sessions.size();
}

}  // namespace dstm_server
