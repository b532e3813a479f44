// The relay node and client services: sockets, TUN and engine on one io_context (service.hpp).
#include "relay_daemon/service.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <variant>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "anytun_sync.hpp"
#include "bindings.hpp"
#include "client_bindings.hpp"
#include "cluster_node.hpp"
#include "open_tunnel.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"
#include "platform/netlink.hpp"
#include "platform/random.hpp"
#include "platform/tun.hpp"
#include "relay/engine.hpp"
#include "tcp.hpp"
#include "tep_io/data_path.hpp"
#include "udp.hpp"

namespace relay_daemon {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBatch = 64;
// Batches handled per readiness wake-up before yielding to the other handles.
constexpr int kRoundsPerWake = 8;
constexpr int kSocketBuffer = 4 * 1024 * 1024;
constexpr auto kTick = std::chrono::seconds{1};
// Sequence numbers reserved ahead in the state file: a restart resumes above the reservation,
// so no (seq, sender, MUX) is ever sealed twice under one key, at one file write per 2^20
// packets of a connection.
constexpr std::uint32_t kSeqReservation = 1u << 20;

std::uint64_t random_u64() {
  std::array<std::uint8_t, 8> b{};
  platform::random_bytes(b);
  std::uint64_t v = 0;
  for (const auto x : b) v = v << 8 | x;
  return v;
}

relay::ConnectionSpec to_spec(const ConnectionConfig& c) {
  relay::ConnectionSpec s;
  s.mux = c.mux;
  s.settings = c.settings;
  s.key = c.key;
  s.salt = c.salt;
  s.window = c.window;
  if (c.remote) s.peer = relay::Peer{*c.remote, 0};
  s.routes = c.routes;
  s.open_tunnel = c.open_tunnel;
  s.relay_mode = c.relay_mode;
  return s;
}

json::object stats_json(const relay::ConnectionStats& s) {
  json::object drops;
  for (const auto& [reason, n] : s.drops.by_reason) drops[reason] = n;
  return json::object{{"rx_packets", s.rx_packets},
                      {"rx_bytes", s.rx_bytes},
                      {"tx_packets", s.tx_packets},
                      {"tx_bytes", s.tx_bytes},
                      {"control", s.control},
                      {"peer_changes", s.peer_changes},
                      {"sender_restarts", s.sender_restarts},
                      {"drops", std::move(drops)}};
}

std::string prefix_text(const relay::Prefix& p) {
  return std::visit([](const auto& x) { return x.to_string(); }, p);
}

// The next transmit sequence numbers per MUX, reserved ahead in a small JSON file
// ({"<mux>": <first free seq>}), replaced atomically (write, fsync, rename).
class SeqStore {
 public:
  explicit SeqStore(std::optional<std::string> path) : path_{std::move(path)} {
    if (!path_) return;
    std::ifstream in{*path_};
    if (!in) return;
    const std::string text{std::istreambuf_iterator<char>{in}, {}};
    boost::system::error_code ec;
    const auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return;  // unreadable: start() picks random numbers
    for (const auto& [key, value] : v.as_object()) {
      if (!value.is_int64() && !value.is_uint64()) continue;
      const auto n = value.to_number<std::uint64_t>();
      std::uint16_t mux = 0;
      if (std::sscanf(std::string{key}.c_str(), "%hu", &mux) == 1 && n <= 0xffffffffu)
        reserved_[mux] = static_cast<std::uint32_t>(n);
    }
  }

  // Where `mux` starts: above the stored reservation, or a random point in the lower half of
  // the space without a file (a restart then very likely starts past what it sealed before).
  std::uint32_t start(std::uint16_t mux) {
    if (const auto it = reserved_.find(mux); it != reserved_.end()) return it->second;
    return static_cast<std::uint32_t>(random_u64() & 0x7fffffffu);
  }

  // Keeps the reservation of each connection ahead of its counter; writes the file when one
  // moved. Returns false if the file could not be written.
  bool update(const relay::Engine& engine) {
    if (!path_) return true;
    bool changed = false;
    for (const auto mux : engine.muxes()) {
      const auto seq = engine.tx_seq(mux);
      auto it = reserved_.find(mux);
      // 64-bit sums: a reservation saturates at the last number (the engine's "exhausted")
      // instead of wrapping to one a restart would reuse.
      const auto wanted =
          std::min<std::uint64_t>(std::uint64_t{seq} + kSeqReservation, 0xffffffffu);
      if (it == reserved_.end() || std::uint64_t{seq} + kSeqReservation / 2 > it->second) {
        if (it != reserved_.end() && it->second == wanted) continue;
        reserved_[mux] = static_cast<std::uint32_t>(wanted);
        changed = true;
      }
    }
    return !changed || write();
  }

 private:
  bool write() const {
    json::object o;
    for (const auto& [mux, seq] : reserved_) o[std::to_string(mux)] = seq;
    const auto tmp = *path_ + ".tmp";
    {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path{*path_}.parent_path(), ec);
      platform::Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
      if (!fd) return false;
      const auto text = json::serialize(o);
      if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
          ::fsync(fd.get()) != 0)
        return false;
    }
    return std::rename(tmp.c_str(), path_->c_str()) == 0;
  }

  std::optional<std::string> path_;
  std::map<std::uint16_t, std::uint32_t> reserved_;
};

}  // namespace

struct Service::Impl : std::enable_shared_from_this<Service::Impl>,
                       relay::Sink,
                       tep::io::PacketConsumer,
                       TcpTransport::Handler {
  asio::io_context& io;
  platform::Logger log;
  bool is_client = false;
  std::string name;
  std::uint16_t sender_id = 0;
  std::optional<TcpConfig> tcp;
  relay::Engine engine;
  SeqStore seqs;
  std::vector<UdpSocket> sockets;
  std::vector<std::unique_ptr<asio::posix::stream_descriptor>> socket_waits;
  std::optional<tep::io::TunPort> tun;
  std::optional<tep::io::TunSource> tun_source;
  std::optional<tep::io::TunWriter> tun_writer;
  std::optional<asio::posix::stream_descriptor> tun_wait;
  std::string tun_name;
  tep::io::PacketBatch batch{kBatch};
  std::vector<relay::Endpoint> sources;
  asio::steady_timer tick_timer{io};
  std::unique_ptr<ClusterNode> cluster;     // with /anytun/relay/cluster
  std::unique_ptr<AnytunSync> anytun_sync;  // anytun's own sync stream, when configured
  bool stopped = false;
  // Counted here, shown in /status and /metrics.
  std::uint64_t tun_drops = 0;       // packets for the TUN on a node without one
  std::uint64_t no_socket = 0;       // packets for a peer of a family no socket serves
  std::uint64_t receive_errors = 0;  // socket or device read errors
  std::uint64_t state_errors = 0;    // state file writes that failed
  std::uint64_t udp_rx = 0;          // datagrams received
  // SATP over TCP (/anytun/relay/tcp, or a client with transport tcp).
  std::unique_ptr<TcpTransport> tcp_transport;
  std::unique_ptr<TcpClient> tcp_client;

  // The modes' parts, when configured: a relay's open tunnel routes and relay bindings, a
  // client's bindings.
  std::unique_ptr<OpenTunnel> open_tunnel;
  std::unique_ptr<RelayBindings> relay_bindings;
  std::optional<ClientBindings> client_bindings;

  Impl(asio::io_context& io_, std::string component, relay::EngineOptions options,
       std::optional<std::string> state_file)
      : io{io_},
        log{std::move(component)},
        engine{std::move(options)},
        seqs{std::move(state_file)} {}

  static relay::Engine::Clock::time_point now() { return relay::Engine::Clock::now(); }

  // ---- relay::Sink ----

  void to_peer(const relay::Peer& peer, core::Bytes packet) override {
    if (peer.stream != 0) {
      if (tcp_transport) (void)tcp_transport->send(peer.stream, packet);  // a drop is counted
      return;
    }
    for (auto& s : sockets)
      if (s.is_v4() == peer.endpoint.is_v4()) {
        s.queue(peer.endpoint, packet);
        return;
      }
    ++no_socket;
  }

  void to_tun(core::MutableBytes frame, std::size_t offset, std::size_t length) override {
    if (!tun_writer) {
      ++tun_drops;
      return;
    }
    tun_writer->queue(frame, offset, length);
  }

  void control(std::uint16_t mux, const relay::Peer& from,
               const relay::control::Message& message) override {
    namespace ctl = relay::control;
    if (is_client) {
      if (tcp_client) tcp_client->control(message);
      const auto note = client_bindings ? client_bindings->answer(message, now()) : std::nullopt;
      if (const auto* e = std::get_if<ctl::Error>(&message.body))
        log.warn("relay refused request {}: {}", message.request, note.value_or(e->reason));
      else if (note)
        log.info("{}", *note);
      return;
    }
    ctl::Message answer{message.request, ctl::Error{ctl::Code::Unavailable, "not offered here"}};
    if (std::holds_alternative<ctl::Locate>(message.body) && tcp)
      answer.body = ctl::Located{tcp->advertise.value_or(*tcp_transport->listening())};
    else if (std::holds_alternative<ctl::Locate>(message.body))
      answer.body = ctl::Error{ctl::Code::Unavailable, "no TCP transport on this node"};
    else if (relay_bindings && RelayBindings::handles(message.body))
      answer.body =
          relay_bindings->answer(mux, engine.spec(mux)->relay_mode, from.endpoint, message, now());
    else if (!std::holds_alternative<ctl::Allocate>(message.body) &&
             !std::holds_alternative<ctl::Refresh>(message.body) &&
             !std::holds_alternative<ctl::Release>(message.body))
      return;  // answers are for clients; a relay ignores them
    (void)engine.send_control(mux, answer, *this);
  }

  void peer_changed(std::uint16_t mux, const relay::Peer& peer) override {
    log.info("connection {}: peer is now {}", mux, peer.endpoint.to_string());
    if (cluster) cluster->peer_changed(mux, peer);
    if (anytun_sync) anytun_sync->peer_changed(mux);
  }

  // ---- tep::io::PacketConsumer (TUN reads) ----

  void packet(core::MutableBytes frame, std::size_t headroom) override {
    engine.from_tun(frame, headroom, frame.size() - headroom, *this, now());
  }
  void flush() override {
    for (auto& s : sockets) s.flush();
    if (tcp_transport) tcp_transport->flush();
  }

  // ---- TcpTransport::Handler ----

  bool tcp_frame(const relay::Peer& from, core::MutableBytes packet) override {
    const auto header = satp::read_header(packet);
    const auto* stats = header ? engine.stats(header->mux) : nullptr;
    const auto opened = stats ? stats->rx_packets : 0;
    engine.from_network(from, packet, 0, packet.size(), *this, now());
    return stats && stats->rx_packets != opened;
  }
  void tcp_frames_done() override {
    if (tun_writer) tun_writer->flush();
    flush();
  }
  void tcp_closed(const relay::Peer& peer) override {
    if (tcp_client) {
      tcp_client->closed(peer);
      return;
    }
    // The stream was its peer: the connection waits for the client's next packet.
    for (const auto mux : engine.muxes())
      if (engine.peer(mux) == peer) engine.set_peer(mux, std::nullopt);
  }

  // ---- setup ----

  std::optional<std::string> open_sockets(const std::vector<relay::Endpoint>& endpoints) {
    for (const auto& e : endpoints) {
      auto s = UdpSocket::open(e, kSocketBuffer);
      if (!s) return fmt::format("UDP {}: {}", e.to_string(), s.error().message());
      socket_waits.push_back(
          std::make_unique<asio::posix::stream_descriptor>(io, ::dup(s->native_handle())));
      sockets.push_back(std::move(*s));
    }
    return std::nullopt;
  }

  std::optional<std::string> open_tun(const TunConfig& config) {
    auto nl = platform::NetlinkClient::open();
    if (!nl) return fmt::format("netlink: {}", nl.error().message());
    // Offloads: TCP crosses the device as 64 KB super-packets, cut and merged here.
    auto device = platform::TunDevice::open(
        platform::TunOptions{.name = config.name, .vnet_hdr = true, .tso4 = true});
    if (!device) return fmt::format("TUN device {}: {}", config.name, device.error().message());
    const auto ifindex = device->ifindex();
    tun_name = device->name();
    if (auto ok = nl->set_mtu(ifindex, config.mtu); !ok)
      return fmt::format("MTU of {}: {}", tun_name, ok.error().to_string());
    for (const auto& a : config.addresses) {
      const auto ok = std::visit(
          [&](const auto& address) { return nl->add_address(ifindex, address, a.length); },
          a.address);
      if (!ok) return fmt::format("address on {}: {}", tun_name, ok.error().to_string());
    }
    if (auto ok = nl->set_link_up(ifindex); !ok)
      return fmt::format("bringing {} up: {}", tun_name, ok.error().to_string());
    platform::Fd queue = device->release(0);
    tun_wait.emplace(io, ::dup(queue.get()));
    tun.emplace(std::move(queue), /*vnet_hdr=*/true);
    tun_source.emplace(*tun, kBatch);
    tun_writer.emplace(*tun, /*coalesce=*/true);
    return std::nullopt;
  }

  std::optional<std::string> open_tcp(const TcpConfig& config) {
    tcp_transport = std::make_unique<TcpTransport>(
        io, *this,
        TcpOptions{.max_streams = config.max_connections,
                   .send_queue_bytes = TcpOptions{}.send_queue_bytes,
                   .idle_timeout = std::chrono::seconds{config.idle_timeout}});
    const auto bound = tcp_transport->listen(config.listen);
    if (!bound)
      return fmt::format("TCP {}: {}", config.listen.to_string(), bound.error().message());
    return std::nullopt;
  }

  // The client's stream: one at a time; three keepalives unanswered end it.
  void open_tcp_client(const ClientConfig& config) {
    tcp_transport =
        std::make_unique<TcpTransport>(io, *this,
                                       TcpOptions{.max_streams = 1,
                                                  .send_queue_bytes = TcpOptions{}.send_queue_bytes,
                                                  .idle_timeout = std::chrono::seconds{45}});
    tcp_client =
        std::make_unique<TcpClient>(io, engine, *this, *tcp_transport, config.connection.mux,
                                    config.server, [this] { flush(); });
  }

  void start_loops() {
    auto self = shared_from_this();
    for (std::size_t i = 0; i < sockets.size(); ++i)
      asio::co_spawn(io, socket_loop(self, i), asio::detached);
    if (tun_wait) asio::co_spawn(io, tun_loop(self), asio::detached);
    schedule_tick();
  }

  // ---- loops ----

  asio::awaitable<void> socket_loop(std::shared_ptr<Impl> self, std::size_t index) {
    (void)self;
    while (!stopped) {
      auto [ec] = co_await socket_waits[index]->async_wait(asio::posix::descriptor_base::wait_read,
                                                           as_tuple_awaitable);
      if (ec || stopped) co_return;
      for (int round = 0; round < kRoundsPerWake; ++round) {
        const auto n = sockets[index].receive(batch, sources);
        if (!n) {
          ++receive_errors;
          break;
        }
        if (*n == 0) break;
        const auto t = now();
        udp_rx += *n;
        for (std::size_t i = 0; i < *n; ++i) {
          if (tcp_client && !tcp_client->admit_udp()) continue;
          engine.from_network(relay::Peer{sources[i], 0}, batch.frame(i), batch.offset(i),
                              batch.length(i), *this, t);
        }
        if (tcp_client) tcp_client->restore_peer();
        if (tun_writer) tun_writer->flush();
        flush();
      }
    }
  }

  asio::awaitable<void> tun_loop(std::shared_ptr<Impl> self) {
    (void)self;
    while (!stopped) {
      auto [ec] = co_await tun_wait->async_wait(asio::posix::descriptor_base::wait_read,
                                                as_tuple_awaitable);
      if (ec || stopped) co_return;
      for (int round = 0; round < kRoundsPerWake; ++round) {
        const auto n = tun_source->drain(*this);
        if (!n) {
          ++receive_errors;
          break;
        }
        if (*n == 0) break;
      }
    }
  }

  void schedule_tick() {
    tick_timer.expires_after(kTick);
    tick_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->engine.tick(now());
      if (self->relay_bindings)
        self->relay_bindings->tick(now(), [&](std::uint16_t mux) {
          const auto* spec = self->engine.spec(mux);
          return spec && spec->relay_mode;
        });
      self->send_binding_requests();
      if (!self->seqs.update(self->engine)) ++self->state_errors;
      if (self->cluster) self->cluster->tick();
      if (self->anytun_sync) self->anytun_sync->tick();
      self->schedule_tick();
    });
  }

  // A client's binding requests that are due, over its connection.
  void send_binding_requests() {
    if (!client_bindings) return;
    for (const auto& m : client_bindings->due(now()))
      (void)engine.send_control(engine.muxes().front(), m, *this);
    flush();
  }

  std::optional<std::string> add_connection(const ConnectionConfig& c) {
    if (auto ok = engine.add(to_spec(c), seqs.start(c.mux)); !ok)
      return fmt::format("connection {}: {}", c.mux, ok.error().message());
    return std::nullopt;
  }

  // ---- reporting ----

  json::object client_json(std::uint16_t mux) const {
    const auto* spec = engine.spec(mux);
    const auto* stats = engine.stats(mux);
    json::object o = stats_json(*stats);
    o["mux"] = mux;
    o["role"] = std::string{satp::to_string(spec->settings.role)};
    o["cipher"] = std::string{satp::to_string(spec->settings.cipher)};
    o["auth"] = std::string{satp::to_string(spec->settings.auth)};
    const auto peer = engine.peer(mux);
    o["peer"] = peer ? json::value(peer->endpoint.to_string()) : json::value(nullptr);
    o["transport"] = peer && peer->stream != 0 ? "tcp" : "udp";
    json::array routes;
    for (const auto& r : engine.routes().routes_of(mux))
      routes.push_back(json::value(prefix_text(r.prefix)));
    o["routes"] = std::move(routes);
    o["tx_seq"] = engine.tx_seq(mux);
    // The replay window's high-water mark per sender id (what a cluster takeover carries over).
    json::object marks;
    for (const auto& [sender, max] : engine.rx_marks(mux)) marks[std::to_string(sender)] = max;
    o["rx_marks"] = std::move(marks);
    o["open_tunnel"] = spec->open_tunnel;
    o["relay_mode"] = spec->relay_mode;
    return o;
  }

  void register_metrics(platform::Counters& counters) {
    const std::string role = is_client ? "client" : "relay";
    const auto sum = [this](auto field) {
      return [this, field] {
        std::uint64_t n = 0;
        for (const auto mux : engine.muxes()) n += engine.stats(mux)->*field;
        return n;
      };
    };
    const platform::Labels labels{{"role", role}};
    counters.counter_fn("satp_rx_packets_total", "SATP packets opened from peers", labels,
                        sum(&relay::ConnectionStats::rx_packets));
    counters.counter_fn("satp_rx_bytes_total", "inner bytes received from peers", labels,
                        sum(&relay::ConnectionStats::rx_bytes));
    counters.counter_fn("satp_tx_packets_total", "SATP packets sealed toward peers", labels,
                        sum(&relay::ConnectionStats::tx_packets));
    counters.counter_fn("satp_tx_bytes_total", "inner bytes sent to peers", labels,
                        sum(&relay::ConnectionStats::tx_bytes));
    counters.counter_fn("satp_drops_total", "packets dropped (all reasons, see /clients)", labels,
                        [this] {
                          std::uint64_t n = engine.drops().total() + tun_drops + no_socket;
                          for (const auto mux : engine.muxes())
                            n += engine.stats(mux)->drops.total();
                          for (const auto& s : sockets) n += s.send_drops();
                          return n;
                        });
    counters.gauge_fn("satp_connections", "SATP connections known", labels,
                      [this] { return static_cast<std::int64_t>(engine.muxes().size()); });
    if (tcp_transport) tcp_transport->register_metrics(counters, role);
  }
};

Service::Service(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}
Service::~Service() {
  stop();
}

void Service::stop() noexcept {
  if (!impl_ || impl_->stopped) return;
  if (impl_->client_bindings) {  // best effort: the relay would let them expire anyway
    for (const auto& m : impl_->client_bindings->release_all())
      (void)impl_->engine.send_control(impl_->engine.muxes().front(), m, *impl_);
    impl_->flush();
  }
  if (impl_->relay_bindings) impl_->relay_bindings->stop();
  impl_->stopped = true;
  impl_->tick_timer.cancel();
  if (impl_->tcp_client) impl_->tcp_client->stop();
  if (impl_->tcp_transport) impl_->tcp_transport->stop();
  if (impl_->cluster) impl_->cluster->stop();
  for (auto& w : impl_->socket_waits) {
    boost::system::error_code ignored;
    w->cancel(ignored);
    w->close(ignored);
  }
  if (impl_->tun_wait) {
    boost::system::error_code ignored;
    impl_->tun_wait->cancel(ignored);
    impl_->tun_wait->close(ignored);
  }
  if (impl_->anytun_sync) impl_->anytun_sync->stop();
  (void)impl_->seqs.update(impl_->engine);
}

boost::system::result<std::unique_ptr<Service>, std::string> Service::start_relay(
    asio::io_context& io, const RelayConfig& config, platform::Counters& counters) {
  relay::EngineOptions options;
  options.sender_id = config.sender_id;
  options.seed = random_u64();
  if (config.open_tunnel)
    options.nat = relay::NatConfig{
        .address4 = config.open_tunnel->address4,
        .address6 = config.open_tunnel->address6,
        .port_first = config.open_tunnel->port_first,
        .port_last = config.open_tunnel->port_last,
        .max_mappings = config.open_tunnel->max_mappings,
        .max_mappings_per_client = config.open_tunnel->max_mappings_per_client,
    };
  auto impl = std::make_shared<Impl>(io, "satp-relay", std::move(options), config.state_file);
  impl->name = config.name;
  impl->sender_id = config.sender_id;
  impl->tcp = config.tcp;
  for (const auto& c : config.connections)
    if (auto error = impl->add_connection(c)) return *error;
  if (auto error = impl->open_sockets(config.listen)) return *error;
  if (config.tun)
    if (auto error = impl->open_tun(*config.tun)) return *error;
  if (config.open_tunnel) {
    auto open_tunnel = OpenTunnel::start(*config.open_tunnel, impl->tun_name, impl->log);
    if (!open_tunnel) return open_tunnel.error();
    impl->open_tunnel = std::move(*open_tunnel);
    impl->open_tunnel->register_metrics(counters, *impl->engine.nat());
  }
  if (config.relay_mode) {
    impl->relay_bindings =
        std::make_unique<RelayBindings>(io, *config.relay_mode, random_u64(), impl->log);
    impl->relay_bindings->register_metrics(counters);
  }
  if (config.tcp)
    if (auto error = impl->open_tcp(*config.tcp)) return *error;
  if (!impl->seqs.update(impl->engine)) return std::string{"state file: cannot write it"};
  if (config.cluster) {
    auto node = ClusterNode::start(
        io, *config.cluster, {config.name, config.sender_id}, impl->engine,
        [seqs = &impl->seqs](std::uint16_t mux) { return seqs->start(mux); }, counters);
    if (!node) return node.error();
    impl->cluster = std::move(*node);
  }
  if (config.anytun_sync) {
    auto sync = AnytunSync::start(io, *config.anytun_sync, impl->engine);
    if (!sync) return sync.error();
    impl->anytun_sync = std::move(*sync);
  }
  impl->register_metrics(counters);
  impl->start_loops();
  std::string endpoints;
  for (const auto& s : impl->sockets) endpoints += " " + s.local().to_string();
  if (impl->tcp_transport) endpoints += ", TCP " + impl->tcp_transport->listening()->to_string();
  impl->log.info("relay {} (sender id {}) serving {} connections on UDP{}{}", config.name,
                 config.sender_id, config.connections.size(), endpoints,
                 impl->tun_name.empty() ? "" : ", TUN " + impl->tun_name);
  return std::unique_ptr<Service>{new Service{std::move(impl)}};
}

boost::system::result<std::unique_ptr<Service>, std::string> Service::start_client(
    asio::io_context& io, const ClientConfig& config, platform::Counters& counters) {
  relay::EngineOptions options;
  options.sender_id = config.sender_id;
  options.default_mux = config.connection.mux;
  options.seed = random_u64();
  auto impl = std::make_shared<Impl>(io, "satp-client", std::move(options), config.state_file);
  impl->is_client = true;
  impl->name = "client";
  impl->sender_id = config.sender_id;
  auto connection = config.connection;
  connection.remote = config.server;
  if (auto error = impl->add_connection(connection)) return *error;
  const auto any = config.server.is_v4() ? relay::Endpoint::v4(core::Ipv4Address{}, 0)
                                         : relay::Endpoint{core::Ipv6Address{}, 0};
  if (auto error = impl->open_sockets({any})) return *error;
  if (config.tun)
    if (auto error = impl->open_tun(*config.tun)) return *error;
  if (!config.bindings.empty())
    impl->client_bindings.emplace(config.bindings, static_cast<std::uint32_t>(random_u64()));
  if (config.transport == Transport::Tcp) impl->open_tcp_client(config);
  if (!impl->seqs.update(impl->engine)) return std::string{"state file: cannot write it"};
  impl->register_metrics(counters);
  impl->start_loops();
  impl->send_binding_requests();
  if (impl->tcp_client) impl->tcp_client->start();
  impl->log.info("client of {} (MUX {}) from UDP {}{}", config.server.to_string(),
                 config.connection.mux, impl->sockets.front().local().to_string(),
                 impl->tun_name.empty() ? "" : ", TUN " + impl->tun_name);
  return std::unique_ptr<Service>{new Service{std::move(impl)}};
}

json::object Service::status() const {
  const auto& i = *impl_;
  json::object o;
  o["role"] = i.is_client ? "client" : "relay";
  o["name"] = i.name;
  o["sender_id"] = i.sender_id;
  json::array udp;
  for (const auto& s : i.sockets) udp.push_back(json::value(s.local().to_string()));
  o["udp"] = std::move(udp);
  o["tun"] = i.tun_name.empty() ? json::value(nullptr) : json::value(i.tun_name);
  o["connections"] = i.engine.muxes().size();
  json::object drops;
  for (const auto& [reason, n] : i.engine.drops().by_reason) drops[reason] = n;
  if (i.tun_drops) drops["no_tun"] = i.tun_drops;
  if (i.no_socket) drops["no_socket"] = i.no_socket;
  std::uint64_t send_drops = 0;
  for (const auto& s : i.sockets) send_drops += s.send_drops();
  if (send_drops) drops["send_buffer_full"] = send_drops;
  o["drops"] = std::move(drops);
  o["receive_errors"] = i.receive_errors;
  o["state_file_errors"] = i.state_errors;
  std::uint64_t udp_sent = 0;
  for (const auto& s : i.sockets) udp_sent += s.sent();
  o["udp_rx_packets"] = i.udp_rx;
  o["udp_tx_packets"] = udp_sent;
  if (i.is_client) o["transport"] = i.tcp_client ? "tcp" : "udp";
  if (i.tcp_transport) {
    auto tcp = i.tcp_transport->status();
    if (i.tcp && i.tcp_transport->listening())
      tcp["advertise"] = i.tcp->advertise.value_or(*i.tcp_transport->listening()).to_string();
    if (i.tcp_client)
      for (const auto& [key, value] : i.tcp_client->status()) tcp[key] = value;
    o["tcp"] = std::move(tcp);
  }
  if (const auto* nat = i.engine.nat()) o["nat_mappings"] = nat->size();
  if (i.open_tunnel) o["open_tunnel"] = i.open_tunnel->status(i.engine.nat());
  if (i.relay_bindings) o["relay_mode"] = i.relay_bindings->status();
  if (i.cluster) o["cluster"] = i.cluster->status();
  if (i.anytun_sync) o["anytun_sync"] = i.anytun_sync->status();
  return o;
}

json::array Service::clients() const {
  json::array out;
  for (const auto mux : impl_->engine.muxes()) out.push_back(impl_->client_json(mux));
  return out;
}

std::vector<relay::Endpoint> Service::udp_endpoints() const {
  std::vector<relay::Endpoint> out;
  for (const auto& s : impl_->sockets) out.push_back(s.local());
  return out;
}

void Service::add_routes(platform::Router& router, const std::string& prefix) {
  router.get(prefix + "/clients", [this](const platform::Request&) {
    return platform::Response::json(json::object{{"clients", clients()}});
  });
  router.get(prefix + "/clients/{mux}", [this](const platform::Request& request) {
    unsigned mux = 0;
    const auto text = std::string{*request.param("mux")};
    if (std::sscanf(text.c_str(), "%u", &mux) != 1 || mux > 0xffff || std::to_string(mux) != text)
      return platform::Response::error(400, "mux must be a number 0..65535");
    if (!impl_->engine.contains(static_cast<std::uint16_t>(mux)))
      return platform::Response::error(404, fmt::format("no connection with MUX {}", mux));
    return platform::Response::json(impl_->client_json(static_cast<std::uint16_t>(mux)));
  });
  if (impl_->relay_bindings || impl_->client_bindings)
    router.get(prefix + "/bindings", [this](const platform::Request&) {
      const auto t = Impl::now();
      return platform::Response::json(
          json::object{{"bindings", impl_->relay_bindings ? impl_->relay_bindings->list(t)
                                                          : impl_->client_bindings->list(t)}});
    });
  if (impl_->cluster)
    router.get(prefix + "/cluster", [this](const platform::Request&) {
      return platform::Response::json(impl_->cluster->status());
    });
}

}  // namespace relay_daemon
