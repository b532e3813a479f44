// anytun 0.3.8's sync stream, emitted toward anytun nodes (anytun_sync.hpp).
#include "anytun_sync.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "asio_endpoint.hpp"
#include "platform/bind.hpp"
#include "platform/log.hpp"
#include "satp/sync.hpp"

namespace relay_daemon {
namespace asio = boost::asio;
namespace json = boost::json;
namespace sync = satp::sync;
using tcp = asio::ip::tcp;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
// How far every record after a MUX's first moves the sequence number it tells anytun: more than
// an anytun node seals for one client between two records (2^24 packets: minutes at anytun's
// full rate; the records are rare: a node's connect, a peer move, a changed connection).
constexpr std::uint32_t kSeqStride = 1u << 24;

// The counter label of a satp error code ("bad_frame", ...).
std::string_view reason_of(const boost::system::error_code& ec) {
  if (ec.category() == satp::satp_category())
    return satp::to_string(static_cast<satp::Errc>(ec.value()));
  return "read_error";
}

// What a record says, for the debug log: never the key or the salt.
std::string describe(const sync::Record& record) {
  if (const auto* c = std::get_if<sync::Connection>(&record))
    return fmt::format("connection MUX {} role {} window {}", c->mux, satp::to_string(c->role),
                       c->window_size);
  const auto& r = std::get<sync::Route>(record);
  return fmt::format("route {} -> MUX {}",
                     std::visit([](const auto& p) { return p.to_string(); }, r.prefix), r.mux);
}

// One connected anytun node: what is due to it, and its socket.
struct Node {
  Node(asio::io_context& io, tcp::socket s) : socket{std::move(s)}, wake{io}, deadline{io} {}
  tcp::socket socket;
  asio::steady_timer wake;      // the writer waits here for records to become due
  asio::steady_timer deadline;  // the current write's
  std::string remote;
  std::uint64_t id = 0;
  bool closed = false;
  // Records due: connection records by MUX, then the routes of these MUXes. A set, so a MUX
  // due twice is sent once, with the values it has when it is written.
  std::set<std::uint16_t> connections_due;
  std::set<std::uint16_t> routes_due;
  // The routes of one MUX being written (a MUX has up to 1024, each split into up to 128).
  std::vector<relay::Prefix> route_list;
  std::size_t route_index = 0;
  std::uint16_t route_mux = 0;
  sync::Framer framer;
};

}  // namespace

struct AnytunSync::Impl : std::enable_shared_from_this<AnytunSync::Impl> {
  Impl(asio::io_context& io_, const relay::Engine& engine_, Limits limits_)
      : io{io_}, engine{engine_}, limits{limits_}, acceptor{io_}, log{"anytun-sync"} {}

  asio::io_context& io;
  const relay::Engine& engine;
  Limits limits;
  tcp::acceptor acceptor;
  platform::Logger log;
  relay::Endpoint local;
  bool stopped = false;
  std::map<std::uint64_t, std::shared_ptr<Node>> nodes;
  std::uint64_t next_id = 1;

  // What the nodes were last told of each connection, to find what changed on the tick.
  std::map<std::uint16_t, relay::ConnectionSpec> announced;
  // The sequence number last put in a record per MUX (docs/anytun.md, "which sequence number").
  std::map<std::uint16_t, std::uint32_t> sent_seq;

  // Counters for /status.
  std::uint64_t accepted = 0;
  std::uint64_t records_out = 0;
  std::uint64_t records_in = 0;
  std::uint64_t not_sendable = 0;  // connections anytun's format cannot carry (null kd-prf)
  std::uint64_t removed = 0;       // connections gone here; anytun's format cannot say so
  std::map<std::string, std::uint64_t, std::less<>> errors;

  // ---- what is due ----

  void wake(Node& node) { node.wake.cancel(); }

  void mark(std::uint16_t mux, bool routes) {
    for (auto& [id, node] : nodes) {
      node->connections_due.insert(mux);
      if (routes) node->routes_due.insert(mux);
      wake(*node);
    }
  }

  void detect_changes() {
    const auto muxes = engine.muxes();
    for (const auto mux : muxes) {
      const auto* spec = engine.spec(mux);
      auto it = announced.find(mux);
      if (it != announced.end() && it->second == *spec) continue;
      announced.insert_or_assign(mux, *spec);
      mark(mux, /*routes=*/true);
    }
    for (auto it = announced.begin(); it != announced.end();) {
      if (std::binary_search(muxes.begin(), muxes.end(), it->first)) {
        ++it;
        continue;
      }
      // anytun's sync format has no removal: its nodes keep the connection until they restart.
      ++removed;
      log.info("connection {} is gone here; anytun nodes keep it (their format has no removal)",
               it->first);
      it = announced.erase(it);
    }
  }

  // ---- encoding ----

  // The sequence number for the next record of `mux`. anytun overwrites its counter with every
  // record it receives and seals on from there under its own sender id (measured against 0.3.8),
  // so the value only has to keep that counter from going back over numbers it has used: the
  // first record of a MUX carries our own counter; every later one at least kSeqStride more than
  // the one before, room for what the node sealed in between (docs/anytun.md).
  std::uint32_t next_seq(std::uint16_t mux) {
    const auto own = engine.tx_seq(mux);
    auto [it, first] = sent_seq.try_emplace(mux, own);
    if (!first) {
      // Modulo 2^32, as the counters themselves: our own counter wins when it is ahead.
      const std::uint32_t stepped = it->second + kSeqStride;
      it->second = static_cast<std::uint32_t>(own - stepped) < 0x80000000u ? own : stepped;
    }
    return it->second;
  }

  // The record of `mux` as the engine has it now, appended to out. False if there is none to
  // send (gone, or not expressible in anytun's format).
  bool append_connection(std::uint16_t mux, std::string& out) {
    const auto* spec = engine.spec(mux);
    if (!spec) return false;
    sync::Connection c;
    c.mux = mux;
    c.role = spec->settings.role;
    c.master_salt = spec->salt;
    c.master_key.assign(spec->key.view().begin(), spec->key.view().end());
    // anytun's window_size_t is 16 bits; ours goes to 65536.
    c.window_size = static_cast<std::uint16_t>(std::min<std::uint32_t>(spec->window, 0xffff));
    c.seq_nr = next_seq(mux);
    // A peer over our TCP transport is nothing anytun can send to: "not known" (0.0.0.0), which
    // a receiving anytun takes as "keep yours".
    if (const auto peer = engine.peer(mux); peer && peer->stream == 0) {
      if (peer->endpoint.is_v4())
        c.remote_host = peer->endpoint.v4_address();
      else
        c.remote_host = peer->endpoint.address;
      c.remote_port = peer->endpoint.port;
    }
    auto encoded = sync::encode(c);
    if (!encoded) {
      ++not_sendable;
      return false;
    }
    out += *encoded;
    return true;
  }

  // Encodes what is due to `node` into out, up to about batch_bytes; returns the record count.
  std::size_t fill(Node& node, std::string& out) {
    std::size_t n = 0;
    while (out.size() < limits.batch_bytes) {
      if (!node.connections_due.empty()) {
        const auto mux = *node.connections_due.begin();
        node.connections_due.erase(node.connections_due.begin());
        if (append_connection(mux, out)) ++n;
        continue;
      }
      if (node.route_index < node.route_list.size()) {
        for (const auto& piece : sync::anytun_safe_split(node.route_list[node.route_index]))
          if (auto encoded = sync::encode(sync::Route{piece, node.route_mux})) {
            out += *encoded;
            ++n;
          }
        ++node.route_index;
        continue;
      }
      if (!node.routes_due.empty()) {
        node.route_mux = *node.routes_due.begin();
        node.routes_due.erase(node.routes_due.begin());
        node.route_list.clear();
        node.route_index = 0;
        for (const auto& r : engine.routes().routes_of(node.route_mux))
          node.route_list.push_back(r.prefix);
        continue;
      }
      break;
    }
    return n;
  }

  // ---- connections ----

  void close(Node& node, std::string_view reason) {
    if (node.closed) return;
    node.closed = true;
    if (!reason.empty()) {
      ++errors[std::string{reason}];
      log.warn("anytun node {}: closed ({})", node.remote, reason);
    } else {
      log.info("anytun node {}: disconnected", node.remote);
    }
    boost::system::error_code ignored;
    node.socket.shutdown(tcp::socket::shutdown_both, ignored);
    node.socket.close(ignored);
    node.wake.cancel();
    node.deadline.cancel();
    nodes.erase(node.id);
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    (void)self;
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(as_tuple_awaitable);
      if (stopped) co_return;
      if (ec) {
        // Out of descriptors and the like: count it and retry after a pause, not in a loop.
        ++errors["accept_error"];
        asio::steady_timer pause{io, std::chrono::milliseconds{200}};
        co_await pause.async_wait(as_tuple_awaitable);
        continue;
      }
      boost::system::error_code peer_ec;
      const auto remote = socket.remote_endpoint(peer_ec);
      const auto name = peer_ec ? std::string{"?"} : from_asio(remote).to_string();
      if (nodes.size() >= limits.max_nodes) {
        ++errors["too_many_connections"];
        log.warn("anytun node {}: refused, {} connections already", name, nodes.size());
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      socket.set_option(tcp::no_delay{true}, peer_ec);
      auto node = std::make_shared<Node>(io, std::move(socket));
      node->remote = name;
      node->id = next_id++;
      ++accepted;
      // Changes the others have not heard of yet are due to them; the newcomer gets it all.
      detect_changes();
      nodes.emplace(node->id, node);
      for (const auto mux : engine.muxes()) {
        node->connections_due.insert(mux);
        node->routes_due.insert(mux);
      }
      log.info("anytun node {}: connected, sending {} connections", name, engine.muxes().size());
      asio::co_spawn(io, read_loop(shared_from_this(), node), asio::detached);
      asio::co_spawn(io, write_loop(shared_from_this(), node), asio::detached);
    }
  }

  asio::awaitable<void> write_loop(std::shared_ptr<Impl> self, std::shared_ptr<Node> node) {
    (void)self;
    std::string batch;
    while (!stopped && !node->closed) {
      batch.clear();
      const auto n = fill(*node, batch);
      if (batch.empty()) {
        node->wake.expires_at(asio::steady_timer::time_point::max());
        co_await node->wake.async_wait(as_tuple_awaitable);
        continue;
      }
      node->deadline.expires_after(limits.write_timeout);
      node->deadline.async_wait(
          [weak = std::weak_ptr<Node>{node}, this, self](boost::system::error_code ec) {
            if (ec || stopped) return;
            if (auto stalled = weak.lock()) close(*stalled, "stalled");
          });
      auto [ec, written] =
          co_await asio::async_write(node->socket, asio::buffer(batch), as_tuple_awaitable);
      (void)written;
      node->deadline.cancel();
      if (stopped || node->closed) co_return;
      if (ec) {
        close(*node, "write_error");
        co_return;
      }
      records_out += n;
    }
  }

  asio::awaitable<void> read_loop(std::shared_ptr<Impl> self, std::shared_ptr<Node> node) {
    (void)self;
    std::array<std::byte, 4096> buf{};
    while (!stopped && !node->closed) {
      auto [ec, n] = co_await node->socket.async_read_some(asio::buffer(buf), as_tuple_awaitable);
      if (stopped || node->closed) co_return;
      if (ec == asio::error::eof) {
        close(*node, "");
        co_return;
      }
      if (ec) {
        close(*node, "read_error");
        co_return;
      }
      if (auto fed = node->framer.feed(core::Bytes{buf.data(), n}); !fed) {
        close(*node, reason_of(fed.error()));
        co_return;
      }
      for (;;) {
        auto archive = node->framer.next();
        if (!archive) {
          close(*node, reason_of(archive.error()));
          co_return;
        }
        if (!*archive) break;
        auto record = sync::parse(**archive);
        if (!record) {
          close(*node, reason_of(record.error()));
          co_return;
        }
        // Counted, never applied: an unauthenticated record could redirect a client.
        ++records_in;
        log.debug("anytun node {}: {} received, not applied", node->remote, describe(*record));
      }
    }
  }
};

AnytunSync::AnytunSync(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}

AnytunSync::~AnytunSync() {
  stop();
}

boost::system::result<std::unique_ptr<AnytunSync>, std::string> AnytunSync::start(
    asio::io_context& io, const AnytunSyncConfig& config, const relay::Engine& engine,
    Limits limits) {
  auto impl = std::make_shared<Impl>(io, engine, limits);
  const auto where = to_asio(config.listen);
  boost::system::error_code ec;
  impl->acceptor.open(where.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address{true}, ec);
  if (!ec && where.address().is_v6()) impl->acceptor.set_option(asio::ip::v6_only{true}, ec);
  if (!ec) platform::bind_local(impl->acceptor, where, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fmt::format("anytun_sync TCP {}: {}", config.listen.to_string(), ec.message());
  impl->local = from_asio(impl->acceptor.local_endpoint(ec));
  for (const auto mux : engine.muxes()) impl->announced.insert_or_assign(mux, *engine.spec(mux));
  impl->log.warn(
      "anytun sync stream on TCP {}: it carries every client's master key and salt in clear "
      "text, unauthenticated (anytun's format); serve it on a trusted link only",
      impl->local.to_string());
  asio::co_spawn(io, impl->accept_loop(impl), asio::detached);
  return std::unique_ptr<AnytunSync>{new AnytunSync{std::move(impl)}};
}

void AnytunSync::peer_changed(std::uint16_t mux) {
  if (!impl_->stopped) impl_->mark(mux, /*routes=*/false);
}

void AnytunSync::tick() {
  if (!impl_->stopped) impl_->detect_changes();
}

void AnytunSync::stop() noexcept {
  if (!impl_ || impl_->stopped) return;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  while (!impl_->nodes.empty()) impl_->close(*impl_->nodes.begin()->second, "");
  impl_->stopped = true;
}

json::object AnytunSync::status() const {
  const auto& i = *impl_;
  json::object errors;
  for (const auto& [reason, n] : i.errors) errors[reason] = n;
  return json::object{{"listen", i.local.to_string()},    {"connections", i.nodes.size()},
                      {"accepted", i.accepted},           {"records_out", i.records_out},
                      {"records_in", i.records_in},       {"not_sendable", i.not_sendable},
                      {"removed_unannounced", i.removed}, {"errors", std::move(errors)}};
}

relay::Endpoint AnytunSync::local() const {
  return impl_->local;
}

}  // namespace relay_daemon
