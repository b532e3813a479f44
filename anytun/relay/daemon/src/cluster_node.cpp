// The relay cluster's TCP links and what moves over them (cluster_node.hpp).
#include "cluster_node.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/array.hpp>

#include "asio_endpoint.hpp"
#include "platform/bind.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "platform/random.hpp"
#include "relay/cluster.hpp"
#include "relay/stream_framer.hpp"
#include "satp/error.hpp"
#include "satp/packet.hpp"

namespace relay_daemon {
namespace asio = boost::asio;
namespace json = boost::json;
namespace cluster = relay::cluster;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
// A link says something at least once per keepalive period (the service's tick), and one that
// has said nothing for kIdleTimeout is taken for dead.
constexpr auto kKeepalive = std::chrono::seconds{1};
constexpr auto kIdleTimeout = 5 * kKeepalive;
// From accept or connect to the peer's Hello: a stranger that trickles bytes without the secret
// does not keep an inbound slot for long.
constexpr auto kHandshakeTimeout = kIdleTimeout;
constexpr auto kConnectTimeout = std::chrono::seconds{5};
constexpr auto kBackoffFirst = std::chrono::milliseconds{250};
constexpr auto kBackoffMax = std::chrono::seconds{8};
// Inbound links at once (a cluster has at most 16 peers each way; the rest is headroom for
// reconnects whose old link has not timed out yet).
constexpr std::size_t kMaxInbound = 64;
// What a link may have queued beyond its dump before it is taken for stuck.
constexpr std::size_t kLiveQueue = std::size_t{1} << 20;
// The largest frame a peer sends: a sealed kMaxRecord.
constexpr std::size_t kMaxFrame =
    satp::kHeaderSize + satp::kPayloadTypeSize + cluster::kMaxRecord + cluster::kTagLength;
// Where one record is sealed (Link::seal: kMaxRecord + 64 always suffices).
constexpr std::size_t kSealRoom = relay::kFrameHeader + kMaxFrame + 64;

cluster::Nonce fresh_nonce() {
  cluster::Nonce n{};
  platform::random_bytes(n);
  return n;
}

// Why Link::receive refused a frame, as a counter label.
std::string_view receive_reason(bool established, const boost::system::error_code& ec) {
  if (!established) return "bad_nonce";
  if (ec.category() == satp::satp_category()) {
    if (ec.value() == static_cast<int>(satp::Errc::BadTag)) return "bad_tag";
    if (ec.value() == static_cast<int>(satp::Errc::Replay)) return "out_of_sequence";
    return "bad_packet";
  }
  return "bad_record";
}

struct LinkConn {
  LinkConn(tcp::socket s, std::span<const std::uint8_t> secret, cluster::Link::Side side_,
           relay::Endpoint remote_, std::uint16_t sender_id)
      : socket{std::move(s)},
        link{secret, side_, fresh_nonce(), sender_id},
        side{side_},
        remote{remote_},
        created{Clock::now()},
        last_rx{created},
        last_tx{created} {}

  tcp::socket socket;
  cluster::Link link;
  relay::StreamFramer framer{kMaxFrame};
  cluster::Link::Side side;
  relay::Endpoint remote;
  std::optional<cluster::Hello> hello;  // the peer node's
  bool ready = false;                   // our Hello and dump are queued: live pushes may follow
  bool closed = false;
  bool writing = false;
  std::vector<std::byte> pending;  // sealed frames not yet handed to the socket
  std::vector<std::byte> in_flight;
  std::size_t queue_limit = std::numeric_limits<std::size_t>::max();
  Clock::time_point created;
  Clock::time_point last_rx;
  Clock::time_point last_tx;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
};

struct Connector {
  relay::Endpoint peer;
  asio::steady_timer timer;  // the connect deadline, then the backoff
};

}  // namespace

struct ClusterNode::Impl : std::enable_shared_from_this<ClusterNode::Impl> {
  asio::io_context& io;
  ClusterConfig config;
  Identity identity;
  ClusterApplier applier;
  std::vector<std::uint8_t> secret;
  platform::Logger log{"satp-relay"};
  tcp::acceptor acceptor{io};
  relay::Endpoint bound;
  std::vector<std::unique_ptr<Connector>> connectors;
  std::vector<std::shared_ptr<LinkConn>> links;
  bool stopped = false;
  std::uint64_t records_in = 0;
  std::uint64_t records_out = 0;
  // Why links closed, and why received records were left alone (the reasons are static names).
  std::map<std::string_view, std::uint64_t> errors;
  std::map<std::string_view, std::uint64_t> ignored;
  // Closures of links that never said Hello are logged at most once a second (anyone who reaches
  // the port can cause them; the counters have them all).
  Clock::time_point stranger_logged{};
  std::uint64_t strangers_unlogged = 0;

  Impl(asio::io_context& io_, ClusterConfig config_, Identity identity_, relay::Engine& engine,
       ClusterApplier::TxStart tx_start)
      : io{io_},
        config{std::move(config_)},
        identity{std::move(identity_)},
        applier{engine, std::move(tx_start), ClusterApplier::Limits{}},
        secret(config.secret.begin(), config.secret.end()) {}

  std::optional<std::string> listen() {
    boost::system::error_code ec;
    const auto ep = to_asio(config.listen);
    acceptor.open(ep.protocol(), ec);
    if (!ec && ep.address().is_v6()) acceptor.set_option(asio::ip::v6_only{true}, ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address{true}, ec);
    if (!ec) platform::bind_local(acceptor, ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fmt::format("cluster listen {}: {}", config.listen.to_string(), ec.message());
    bound = from_asio(acceptor.local_endpoint(ec));
    return std::nullopt;
  }

  std::shared_ptr<LinkConn> make_link(tcp::socket s, cluster::Link::Side side,
                                      relay::Endpoint remote) {
    auto link = std::make_shared<LinkConn>(std::move(s), secret, side, remote, identity.sender_id);
    links.push_back(link);
    return link;
  }

  // ---- sending ----

  void queue_bytes(const std::shared_ptr<LinkConn>& link, std::span<const std::byte> bytes) {
    link->pending.insert(link->pending.end(), bytes.begin(), bytes.end());
    if (link->pending.size() > link->queue_limit) {
      close(link, "send_queue_full");
      return;
    }
    link->last_tx = Clock::now();
    if (!link->writing) {
      link->writing = true;
      asio::co_spawn(io, write_loop(shared_from_this(), link), asio::detached);
    }
  }

  void send(const std::shared_ptr<LinkConn>& link, const cluster::Record& record) {
    if (link->closed) return;
    std::array<std::byte, kSealRoom> buffer{};
    const auto sealed = link->link.seal(record, buffer);
    if (!sealed) {
      // Our own record refused (cannot happen for what the engine holds) or the link's sequence
      // numbers ran out: a new link has fresh keys.
      close(link, "seal_failed");
      return;
    }
    ++link->records_out;
    ++records_out;
    queue_bytes(link, *sealed);
  }

  void broadcast(const cluster::Record& record) {
    // send() may close a link but never changes `links` (run_link removes closed ones).
    for (const auto& link : links)
      if (link->ready && !link->closed) send(link, record);
  }

  asio::awaitable<void> write_loop(std::shared_ptr<Impl> self, std::shared_ptr<LinkConn> link) {
    (void)self;
    while (!link->closed && !link->pending.empty()) {
      std::swap(link->in_flight, link->pending);
      link->pending.clear();
      auto [ec, n] = co_await asio::async_write(link->socket, asio::buffer(link->in_flight),
                                                as_tuple_awaitable);
      (void)n;
      if (ec) {
        close(link, "io_error");
        break;
      }
    }
    link->writing = false;
  }

  // ---- receiving ----

  void close(const std::shared_ptr<LinkConn>& link, std::string_view reason) {
    if (link->closed) return;
    link->closed = true;
    boost::system::error_code ignored_ec;
    link->socket.close(ignored_ec);
    if (stopped) return;
    ++errors[reason];
    if (!link->hello) {
      const auto now = Clock::now();
      if (now - stranger_logged < std::chrono::seconds{1}) {
        ++strangers_unlogged;
        return;
      }
      stranger_logged = now;
      log.warn("cluster link with {} closed before its Hello: {} ({} more such not logged)",
               link->remote.to_string(), reason, std::exchange(strangers_unlogged, 0));
      return;
    }
    const auto who = fmt::format("{} (sender id {})", link->hello->name, link->hello->sender_id);
    if (reason == "closed_by_peer")
      log.info("cluster link with {} {} closed by the peer", link->remote.to_string(), who);
    else
      log.warn("cluster link with {} {} closed: {}", link->remote.to_string(), who, reason);
  }

  void on_established(const std::shared_ptr<LinkConn>& link) {
    send(link, cluster::Hello{identity.sender_id, identity.name});
    for (const auto& record : applier.dump()) send(link, record);
    if (link->closed) return;
    // The dump is as big as the tables are; live records may add kLiveQueue beyond it.
    link->queue_limit = link->pending.size() + kLiveQueue;
    link->ready = true;
  }

  void on_record(const std::shared_ptr<LinkConn>& link, const cluster::Record& record) {
    ++link->records_in;
    ++records_in;
    if (const auto* hello = std::get_if<cluster::Hello>(&record)) {
      if (link->hello) {
        close(link, "second_hello");
      } else if (hello->sender_id == identity.sender_id) {
        // Two nodes sealing with one sender id under one client key reuse keystream.
        log.error("cluster node {} at {} has our sender id {}: refused, give every node its own",
                  hello->name, link->remote.to_string(), hello->sender_id);
        close(link, "sender_id_clash");
      } else {
        link->hello = *hello;
        log.info("cluster link with {} up: node {} (sender id {})", link->remote.to_string(),
                 hello->name, hello->sender_id);
      }
      return;
    }
    if (!link->hello) {
      close(link, "no_hello");
      return;
    }
    if (const auto reason = applier.apply(record); !reason.empty()) ++ignored[reason];
  }

  void on_frame(const std::shared_ptr<LinkConn>& link, core::MutableBytes frame) {
    const bool was_established = link->link.established();
    auto r = link->link.receive(frame);
    if (!r) {
      close(link, receive_reason(was_established, r.error()));
      return;
    }
    if (!was_established) {
      on_established(link);
      return;
    }
    if (*r) on_record(link, **r);
  }

  asio::awaitable<void> run_link(std::shared_ptr<Impl> self, std::shared_ptr<LinkConn> link) {
    (void)self;
    const auto nonce = link->link.nonce_frame();
    queue_bytes(link, nonce);
    std::vector<std::byte> buffer(relay::kMaxFeed);
    while (!link->closed) {
      auto [ec, n] =
          co_await link->socket.async_read_some(asio::buffer(buffer), as_tuple_awaitable);
      if (stopped || link->closed) break;
      if (ec) {
        close(link, ec == asio::error::eof ? "closed_by_peer" : "io_error");
        break;
      }
      link->last_rx = Clock::now();
      link->framer.feed(std::span{buffer}.first(n));
      while (!link->closed) {
        const auto frame = link->framer.next();
        if (!frame) {
          if (link->framer.error()) close(link, "framing");
          break;
        }
        on_frame(link, *frame);
      }
    }
    std::erase(links, link);
  }

  // ---- accepting and connecting ----

  asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    asio::steady_timer pause{io};
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(as_tuple_awaitable);
      if (stopped) co_return;
      if (ec) {
        // Out of descriptors or the like: count it and let the condition pass.
        ++errors["accept_failed"];
        pause.expires_after(kBackoffFirst);
        co_await pause.async_wait(as_tuple_awaitable);
        continue;
      }
      const auto inbound = std::ranges::count_if(
          links, [](const auto& l) { return l->side == cluster::Link::Side::Acceptor; });
      if (static_cast<std::size_t>(inbound) >= kMaxInbound) {
        ++errors["too_many_links"];
        continue;  // `socket` closes
      }
      boost::system::error_code peer_ec;
      const auto remote = from_asio(socket.remote_endpoint(peer_ec));
      auto link = make_link(std::move(socket), cluster::Link::Side::Acceptor, remote);
      asio::co_spawn(io, run_link(self, std::move(link)), asio::detached);
    }
  }

  asio::awaitable<void> connect_loop(std::shared_ptr<Impl> self, Connector& c) {
    using namespace asio::experimental::awaitable_operators;
    auto backoff = std::chrono::milliseconds{kBackoffFirst};
    while (!stopped) {
      tcp::socket socket{io};
      c.timer.expires_after(kConnectTimeout);
      const auto done = co_await (socket.async_connect(to_asio(c.peer), as_tuple_awaitable) ||
                                  c.timer.async_wait(as_tuple_awaitable));
      if (stopped) co_return;
      if (done.index() == 0 && !std::get<0>(std::get<0>(done))) {
        const auto link = make_link(std::move(socket), cluster::Link::Side::Connector, c.peer);
        co_await run_link(self, link);
        if (stopped) co_return;
        if (link->hello) backoff = kBackoffFirst;  // it worked for a while: retry soon
      }
      c.timer.expires_after(backoff);
      co_await c.timer.async_wait(as_tuple_awaitable);
      backoff = std::min(backoff * 2, std::chrono::milliseconds{kBackoffMax});
    }
  }

  // ---- periodic ----

  void tick() {
    for (const auto& record : applier.progress()) broadcast(record);
    const auto now = Clock::now();
    for (const auto& link : links) {
      if (link->closed) continue;
      if (now - link->last_rx > kIdleTimeout)
        close(link, "idle");
      else if (!link->hello && now - link->created > kHandshakeTimeout)
        close(link, "handshake_timeout");
      else if (link->ready && now - link->last_tx >= kKeepalive)
        send(link, cluster::Keepalive{});
    }
  }

  json::object link_json(const LinkConn& l) const {
    json::object o;
    o["remote"] = l.remote.to_string();
    o["direction"] = l.side == cluster::Link::Side::Connector ? "out" : "in";
    o["state"] = l.hello ? "up" : l.link.established() ? "hello" : "nonce";
    o["peer_name"] = l.hello ? json::value(l.hello->name) : json::value(nullptr);
    o["peer_sender_id"] = l.hello ? json::value(l.hello->sender_id) : json::value(nullptr);
    o["records_in"] = l.records_in;
    o["records_out"] = l.records_out;
    o["queued_bytes"] = l.pending.size();
    return o;
  }
};

ClusterNode::ClusterNode(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}
ClusterNode::~ClusterNode() {
  stop();
}

boost::system::result<std::unique_ptr<ClusterNode>, std::string> ClusterNode::start(
    asio::io_context& io, const ClusterConfig& config, Identity identity, relay::Engine& engine,
    ClusterApplier::TxStart tx_start, platform::Counters& counters) {
  auto impl = std::make_shared<Impl>(io, config, std::move(identity), engine, std::move(tx_start));
  if (auto error = impl->listen()) return *error;
  // Read on the loop thread (the control server renders there). The counters may outlive the
  // node: they hold it weakly and read 0 once it is gone.
  const std::weak_ptr<Impl> weak = impl;
  counters.gauge_fn("satp_cluster_links_up", "cluster links past their Hello", {}, [weak] {
    const auto i = weak.lock();
    return i ? std::ranges::count_if(i->links, [](const auto& l) { return l->hello && !l->closed; })
             : 0;
  });
  for (const auto* direction : {"in", "out"})
    counters.counter_fn("satp_cluster_records_total", "cluster records received and sent",
                        {{"direction", direction}}, [weak, in = direction[0] == 'i'] {
                          const auto i = weak.lock();
                          return !i ? 0 : in ? i->records_in : i->records_out;
                        });
  counters.counter_fn("satp_cluster_link_errors_total",
                      "cluster links closed, all reasons (see /status cluster.errors)", {}, [weak] {
                        std::uint64_t n = 0;
                        if (const auto i = weak.lock())
                          for (const auto& [reason, count] : i->errors) n += count;
                        return n;
                      });
  asio::co_spawn(io, impl->accept_loop(impl), asio::detached);
  for (const auto& peer : config.peers) {
    impl->connectors.push_back(
        std::make_unique<Connector>(Connector{peer, asio::steady_timer{io}}));
    asio::co_spawn(io, impl->connect_loop(impl, *impl->connectors.back()), asio::detached);
  }
  impl->log.info("cluster: listening on {}, {} peers", impl->bound.to_string(),
                 config.peers.size());
  return std::unique_ptr<ClusterNode>{new ClusterNode{std::move(impl)}};
}

void ClusterNode::stop() noexcept {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  for (auto& c : impl_->connectors) c->timer.cancel();
  for (const auto& link : impl_->links) impl_->close(link, "stopped");
}

void ClusterNode::peer_changed(std::uint16_t mux, const relay::Peer& peer) {
  if (impl_->stopped) return;
  if (const auto record = ClusterApplier::peer_record(mux, peer)) impl_->broadcast(*record);
}

void ClusterNode::tick() {
  if (!impl_->stopped) impl_->tick();
}

relay::Endpoint ClusterNode::listen_endpoint() const {
  return impl_->bound;
}

json::object ClusterNode::status() const {
  const auto& i = *impl_;
  json::object o;
  o["listen"] = i.bound.to_string();
  json::array links;
  std::size_t up = 0;
  for (const auto& l : i.links) {
    if (l->closed) continue;
    if (l->hello) ++up;
    links.push_back(i.link_json(*l));
  }
  o["links_up"] = up;
  o["links"] = std::move(links);
  o["records_in"] = i.records_in;
  o["records_out"] = i.records_out;
  json::object errors;
  for (const auto& [reason, n] : i.errors) errors[reason] = n;
  o["errors"] = std::move(errors);
  json::object ignored;
  for (const auto& [reason, n] : i.ignored) ignored[reason] = n;
  o["ignored"] = std::move(ignored);
  o["learned_connections"] = i.applier.learned();
  return o;
}

}  // namespace relay_daemon
