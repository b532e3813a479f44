#include "tep_daemon/daemon.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "core/ipv4.hpp"
#include "platform/config.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/netlink.hpp"
#include "platform/signals.hpp"
#include "platform/tun.hpp"
#include "relay_daemon/service.hpp"
#include "tep/engine.hpp"
#include "tep_bpf/fast_path.hpp"
#include "tep_io/backend.hpp"
#include "tep_io/data_path.hpp"
#include "tep_io/kernel_tunnels.hpp"
#include "tep_io/packet_io.hpp"
#include "tsp_net/client.hpp"

namespace tep_daemon {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kTick = 100ms;
constexpr std::size_t kBatch = 32;
// Batches drained per readiness wake-up before the loop yields to other work.
constexpr int kRoundsPerWake = 8;
constexpr std::size_t kLatencySamples = 1024;
// Concurrent queries while revalidating the bindings after a reconnect.
constexpr std::size_t kRevalidateWindow = 32;
constexpr auto kRetryMin = 1s;
constexpr auto kRetryMax = 10s;
constexpr std::size_t kMaxListedBindings = 10'000;
// ip6tnl devices at most (backend kernel): each is a net device with its sysctls and costs a
// netlink round trip to create and an RCU grace period to delete; bindings beyond stay in user
// space.
constexpr std::size_t kKernelMaxDevices = 4096;

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
// The control socket takes whole config documents (POST /config/check).
constexpr std::size_t kControlBodyLimit = 1024 * 1024;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Best-effort write of a per-interface sysctl in this process's network namespace.
bool write_sysctl(const std::string& path, std::string_view value) {
  std::ofstream f{path};
  f << value;
  return static_cast<bool>(f.flush());
}

std::string read_sysctl(const std::string& path) {
  std::ifstream f{path};
  std::string value;
  f >> value;
  return value;
}

// The last kLatencySamples query round trips, for p50/p99 on the control socket.
class LatencyWindow {
 public:
  void add(std::chrono::microseconds d) {
    if (samples_.size() < kLatencySamples)
      samples_.push_back(d);
    else
      samples_[next_] = d;
    next_ = (next_ + 1) % kLatencySamples;
  }
  json::object summary() const {
    json::object o;
    if (samples_.empty()) return o;
    auto sorted = samples_;
    std::sort(sorted.begin(), sorted.end());
    const auto at = [&](double q) {
      const auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1));
      return static_cast<double>(sorted[i].count()) / 1000.0;
    };
    o["samples"] = sorted.size();
    o["p50_ms"] = at(0.50);
    o["p99_ms"] = at(0.99);
    o["max_ms"] = static_cast<double>(sorted.back().count()) / 1000.0;
    return o;
  }

 private:
  std::vector<std::chrono::microseconds> samples_;
  std::size_t next_ = 0;
};

std::string_view origin_name(tep::BindingOrigin o) {
  return o == tep::BindingOrigin::Traffic ? "traffic" : "query";
}

}  // namespace

struct Daemon::Impl final : tep::Engine::Sink,
                            tep::io::PacketConsumer,
                            tep::BindingObserver,
                            std::enable_shared_from_this<Impl> {
  asio::io_context& io;
  Config config;
  DaemonOptions options;
  platform::Logger log{"tep"};
  platform::Counters counters;
  platform::Counter& icmp_send_errors =
      counters.counter("tep_icmp_send_errors_total", "ICMP errors the host stack could not send");
  platform::Counter& receive_errors =
      counters.counter("tep_receive_errors_total", "failed reads from the TUN or tunnel socket");

  std::optional<platform::NetlinkClient> netlink;
  std::uint32_t ifindex = 0;
  std::optional<tep::io::TunPort> tun;
  std::optional<tep::io::TunnelPort> tunnel;
  platform::Fd icmp_socket;  // raw IPv4 (IPPROTO_RAW: header included) for the TEP's own errors
  std::optional<asio::posix::stream_descriptor> tun_wait;
  std::optional<asio::posix::stream_descriptor> tunnel_wait;
  tep::io::PacketBatch tunnel_batch{kBatch};
  std::optional<tep::io::TunSource> tun_source;
  std::optional<tep::io::TunnelSender> sender;
  std::optional<tep::io::TunWriter> writer;
  tep::TimePoint batch_time{};  // `now` for the packets of the batch being drained
  std::unique_ptr<tep::Engine> engine;
  // The in-kernel fast path in front of the above, when it loaded (config.backend); it mirrors
  // the engine's binding table.
  std::unique_ptr<tep::bpf::FastPath> fast_path;
  std::uint64_t fast_path_errors = 0;  // map updates the kernel refused
  // Or the kernel's ip6tnl devices, one per bound client (backend "kernel"), which mirror it too.
  std::unique_ptr<tep::io::KernelTunnels> kernel;
  std::uint64_t kernel_copies = 0;  // the raw socket's copies of packets the kernel forwarded
  mutable tep::bpf::Counters fast_path_snapshot{};  // see fast_path_counters()
  mutable std::optional<tep::TimePoint> fast_path_read;
  asio::steady_timer tick_timer;

  // The DSTM server.
  std::optional<tsp_net::QuerySession> session;
  std::uint64_t generation = 0;  // one per opened session
  std::uint64_t connects = 0;
  std::uint64_t heartbeats = 0;
  std::uint32_t heartbeat_interval = 10;
  std::optional<std::chrono::steady_clock::time_point> last_heartbeat;
  std::string last_error;
  LatencyWindow latency;
  std::vector<core::Ipv4Address> deferred;  // misses while no session was up
  asio::steady_timer retry_timer;
  asio::steady_timer heartbeat_timer;

  // The anycast relay hosted here (config.relay), on this io_context; its routes are under /relay
  // on the control socket, which is declared after it and so goes first.
  std::unique_ptr<relay_daemon::Service> relay;
  std::unique_ptr<platform::ControlServer> control;
  std::optional<platform::SignalWatch> signals;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Without a restart loop (options.restarter null): generation 0, no config file.
  platform::DaemonLife own_life{.generation = 0,
                                .started_at = unix_now(),
                                .config_file = std::nullopt,
                                .last_reload = std::nullopt};
  bool stopped = false;

  Impl(asio::io_context& i, Config c, DaemonOptions o)
      : io{i},
        config{std::move(c)},
        options{std::move(o)},
        tick_timer{i},
        retry_timer{i},
        heartbeat_timer{i} {}

  static tep::TimePoint now() { return tep::Clock::now(); }
  bool connected() const { return session && session->is_open(); }

  // ---- the engine's output ----

  // Packets that lie in the batch being worked on are queued and leave together (one sendmmsg,
  // or merged into TCP super-packets for the TUN); the engine's own (queued packets it
  // releases, ICMP, keepalive replies, fragments) leave at once, after what is queued.
  void to_ipv4(core::Bytes packet) override {
    if (const auto at = tunnel_batch.locate(packet))
      writer->queue(tunnel_batch.frame(at->frame), at->offset, packet.size());
    else
      writer->write(packet);
  }
  void to_tunnel(core::Bytes packet) override {
    if (tun_source->owns(packet))
      sender->queue(packet);
    else
      sender->send(packet);
  }
  // From the TUN source: one IPv4 packet fit for the wire, encapsulated in place by the engine.
  void packet(core::MutableBytes frame, std::size_t headroom) override {
    engine->from_ipv4(frame, headroom, batch_time);
  }
  void flush() override { sender->flush(); }

  // ---- the binding table, mirrored into the fast path's map ----

  void bound(core::Ipv4Address address, const core::Ipv6Address& client) override {
    if (kernel) {
      if (!kernel->bind(address, client) && !kernel->last_error().empty())
        log.warn_limited("kernel-bind", "{} stays in user space: {}", address.to_string(),
                         kernel->last_error());
      return;
    }
    if (!fast_path->bind(address, client)) ++fast_path_errors;
  }
  void unbound(core::Ipv4Address address) override {
    if (kernel) {
      kernel->unbind(address);
      return;
    }
    if (!fast_path->unbind(address)) ++fast_path_errors;
  }
  void cleared() override {
    if (kernel) {
      kernel->clear();
      return;
    }
    if (!fast_path->clear()) ++fast_path_errors;
  }

  // The fast path's counters, read from the kernel at most every 100 ms (a scrape asks for each
  // series separately).
  // The snapshot is updated in place, so references into it stay valid.
  const tep::bpf::Counters& fast_path_counters() const {
    const auto t = now();
    if (!fast_path_read || t - *fast_path_read >= kTick) {
      fast_path_snapshot = fast_path->counters();
      fast_path_read = t;
    }
    return fast_path_snapshot;
  }
  void icmp_error(core::Bytes packet) override {
    const auto ip = core::parse_ipv4(packet);
    if (!ip) return;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(ip->header.dst.to_uint());
    if (::sendto(icmp_socket.get(), packet.data(), packet.size(), MSG_DONTWAIT,
                 reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0)
      icmp_send_errors.inc();
  }
  void query(core::Ipv4Address address) override {
    // Deferred: the engine is in the middle of handling a packet.
    asio::post(io, [self = shared_from_this(), address] { self->start_query(address); });
  }

  // ---- setup ----

  std::optional<std::string> open_data_plane() {
    const auto choice = tep::io::choose_backend(config.backend, tep::io::probe_kernel_tunnels);
    if (choice.error) return *choice.error;
    if (!choice.note.empty()) log.info("{}", choice.note);
    auto nl = platform::NetlinkClient::open();
    if (!nl) return fmt::format("netlink: {}", nl.error().message());
    netlink.emplace(std::move(*nl));

    // Offloads: TCP crosses the device as 64 KB super-packets, cut and merged here.
    auto device = platform::TunDevice::open(
        platform::TunOptions{.name = config.interface, .vnet_hdr = true, .tso4 = true});
    if (!device)
      return fmt::format("TUN device {}: {}", config.interface, device.error().message());
    ifindex = device->ifindex();
    const std::string conf = "/proc/sys/net/ipv4/conf/" + device->name() + "/";
    // Decapsulated packets' sources are routed back into this device, so rp_filter passes
    // them; loose mode still, for pools whose prefixes are also routed elsewhere.
    if (!write_sysctl(conf + "rp_filter", "2"))
      log.warn("cannot set rp_filter on {}: decapsulated packets may be dropped", device->name());
    // The device carries IPv4 only; without this the kernel sends it IPv6 router solicitations.
    (void)write_sysctl("/proc/sys/net/ipv6/conf/" + device->name() + "/disable_ipv6", "1");
    if (auto ok = netlink->set_mtu(ifindex, config.tunnel_mtu); !ok)
      return fmt::format("MTU of {}: {}", device->name(), ok.error().to_string());
    if (auto ok = netlink->set_link_up(ifindex); !ok)
      return fmt::format("bringing {} up: {}", device->name(), ok.error().to_string());
    for (const auto& prefix : config.pool) {
      if (auto ok = netlink->add_route(platform::netlink::Ipv4Route{.destination = prefix,
                                                                    .gateway = std::nullopt,
                                                                    .oif = ifindex,
                                                                    .metric = std::nullopt});
          !ok)
        return fmt::format("route {} dev {}: {}", prefix.to_string(), device->name(),
                           ok.error().to_string());
    }
    if (read_sysctl("/proc/sys/net/ipv4/ip_forward") != "1")
      log.warn(
          "IPv4 forwarding is off (net.ipv4.ip_forward=0): decapsulated packets will not "
          "leave this host");
    std::string pool;
    for (const auto& p : config.pool) pool += (pool.empty() ? "" : ", ") + p.to_string();
    log.info("TUN device {} (MTU {}), pool routed into it: {}", device->name(), config.tunnel_mtu,
             pool);
    platform::Fd queue = device->release(0);
    tun_wait.emplace(io, ::dup(queue.get()));
    tun.emplace(std::move(queue), /*vnet_hdr=*/true);
    tun_source.emplace(*tun, kBatch);
    writer.emplace(*tun, /*coalesce=*/true);

    auto port = tep::io::TunnelPort::open(tep::io::TunnelOptions{.local = config.ipv6});
    if (!port)
      return fmt::format("tunnel socket on {}: {}", config.ipv6.to_string(),
                         port.error().message());
    tunnel.emplace(std::move(*port));
    sender.emplace(*tunnel);
    icmp_socket.reset(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
    if (!icmp_socket)
      return fmt::format("raw IPv4 socket for ICMP errors: {}", std::strerror(errno));
    tunnel_wait.emplace(io, ::dup(tunnel->receive_handle()));
    log.info("tunnel end point {}", config.ipv6.to_string());

    tep::EngineConfig ec;
    ec.local = config.ipv6;
    ec.router = config.ipv4;
    ec.keepalive = config.keepalive;
    ec.pool = config.pool;
    ec.tunnel_mtu = config.tunnel_mtu;
    ec.encap.hop_limit = config.hop_limit;
    ec.bindings = config.bindings;
    ec.queue = config.miss_queue;
    ec.icmp_rate = config.icmp_rate;
    ec.icmp_burst = config.icmp_rate;
    engine = std::make_unique<tep::Engine>(std::move(ec), *this);
    if (choice.backend == tep::io::Backend::Kernel) {
      if (auto error = open_kernel(config.backend == tep::io::Backend::Auto)) return error;
    }
    if (!kernel) {
      if (auto error = open_fast_path(choice.backend)) return error;
    }
    register_metrics();
    return std::nullopt;
  }

  // The kernel backend: ip6tnl devices in front of the user-space path (which keeps the misses,
  // the TUN device and the raw socket), fed from the engine's binding table. With "auto" a
  // failure here falls back to the BPF fast path, else it fails the start.
  std::optional<std::string> open_kernel(bool fallback) {
    auto k = tep::io::KernelTunnels::open(tep::io::KernelTunnelsConfig{
        .prefix = config.interface,
        .local = config.ipv6,
        .inner_mtu = config.tunnel_mtu - static_cast<std::uint32_t>(tep::kEncapOverhead),
        .hop_limit = config.hop_limit,
        .keepalive = config.keepalive,
        .max_devices = std::min<std::size_t>(kKernelMaxDevices, config.bindings.max_bindings)});
    if (!k) {
      if (!fallback) return fmt::format("kernel backend: {}", k.error());
      log.warn("data path: the kernel backend did not start: {}", k.error());
      return std::nullopt;
    }
    kernel = std::move(*k);
    engine->bindings().set_observer(this);
    log.info("data path: kernel ip6tnl devices per client in front of user space (catch-all {})",
             kernel->catch_all_name());
    return std::nullopt;
  }

  // The BPF fast path (backend bpf or auto): attached in front of the TUN device and the
  // uplinks, fed from the engine's binding table. In "auto" mode a failure leaves the
  // user-space path alone in charge, which is said once.
  std::optional<std::string> open_fast_path(tep::io::Backend backend) {
    if (backend == tep::io::Backend::User) return std::nullopt;
    std::string why;
    auto fp = tep::bpf::FastPath::open(
        tep::bpf::FastPathConfig{.role = tep::bpf::Role::Tep,
                                 .tun_ifindex = ifindex,
                                 .uplinks = {},
                                 .local = config.ipv6,
                                 .tunnel_mtu = config.tunnel_mtu,
                                 .hop_limit = config.hop_limit,
                                 .flow_label = true,
                                 .keepalive = config.keepalive,
                                 .max_bindings = config.bindings.max_bindings},
        &why);
    if (!fp) {
      if (backend == tep::io::Backend::Bpf)
        return fmt::format("BPF fast path: {} ({})", why, fp.error().message());
      log.warn("data path: user space only, the BPF fast path did not load: {} ({})", why,
               fp.error().message());
      return std::nullopt;
    }
    fast_path = std::move(*fp);
    engine->bindings().set_observer(this);
    log.info("data path: BPF fast path in front of user space");
    return std::nullopt;
  }

  // The engine's counters, read at each /metrics or /counters on the loop thread (the control
  // server's), where the engine lives.
  void register_metrics() {
    const auto& c = engine->counters();
    c.for_each([&](std::string_view name, std::string_view help, const std::uint64_t& value) {
      counters.counter_fn(fmt::format("tep_{}_total", name), help, {}, [&value] { return value; });
    });
    for (std::size_t i = 0; i < tep::kDropReasonCount; ++i)
      counters.counter_fn(
          "tep_decap_drops_total", "decapsulation drops by reason",
          {{"reason", std::string{tep::drop_reason_name(static_cast<tep::DropReason>(i))}}},
          [&c, i] { return c.decap_drops[i]; });
    // The I/O around the engine (tep_io): offloads and batching.
    const auto io_counter = [&](std::string_view name, std::string_view help,
                                const std::uint64_t& value) {
      counters.counter_fn(name, help, {}, [&value] { return value; });
    };
    const auto& in = tun_source->counters();
    io_counter("tep_tun_super_packets_total", "TCP super-packets read from the TUN device",
               in.super_packets);
    io_counter("tep_tun_segments_total", "segments cut from them", in.segments);
    io_counter("tep_tun_checksums_completed_total", "partial checksums completed", in.checksums);
    io_counter("tep_tun_bad_offload_total",
               "TUN packets dropped: the offload header did not describe the packet",
               in.bad_offload);
    const auto& out = writer->counters();
    io_counter("tep_tun_writes_total", "writes to the TUN device", out.written);
    io_counter("tep_tun_merged_super_packets_total",
               "TCP super-packets written to the TUN device (merged segments)", out.super_packets);
    io_counter("tep_tun_write_errors_total", "writes the TUN device refused", out.errors);
    const auto& tx = sender->counters();
    io_counter("tep_tunnel_send_errors_total", "IPv6 packets the kernel refused to send",
               tx.errors);
    io_counter("tep_tunnel_send_dropped_total",
               "IPv6 packets dropped: the tunnel socket's buffer was full", tx.dropped);
    if (fast_path) {
      fast_path_snapshot.for_each(
          [&](std::string_view name, std::string_view help, const std::uint64_t& value) {
            counters.counter_fn(fmt::format("tep_bpf_{}_total", name), help, {}, [this, &value] {
              fast_path_counters();
              return value;
            });
          });
      counters.counter_fn("tep_bpf_map_errors_total", "binding map updates the kernel refused", {},
                          [this] { return fast_path_errors; });
    }
    if (kernel) {
      const auto& kc = kernel->counters();
      io_counter("tep_kernel_devices_created_total", "ip6tnl devices created for clients",
                 kc.devices_created);
      io_counter("tep_kernel_devices_deleted_total", "ip6tnl devices deleted", kc.devices_deleted);
      io_counter("tep_kernel_errors_total",
                 "bindings the kernel backend could not take (netlink, sysctl)", kc.errors);
      io_counter("tep_kernel_over_limit_total",
                 "bindings left to user space: the device limit was reached", kc.over_limit);
      io_counter("tep_kernel_copies_total",
                 "raw-socket copies of packets the kernel forwarded, dropped", kernel_copies);
      counters.gauge_fn("tep_kernel_devices", "ip6tnl devices for clients", {},
                        [this] { return static_cast<std::int64_t>(kernel->devices()); });
    }
    const auto gauge = [&](std::string_view name, std::string_view help, auto read) {
      counters.gauge_fn(name, help, {}, [read] { return static_cast<std::int64_t>(read()); });
    };
    gauge("tep_bindings", "live bindings in the table",
          [this] { return engine->bindings().size(); });
    gauge("tep_negative_entries", "addresses cached as not leased",
          [this] { return engine->bindings().negative_size(); });
    gauge("tep_queued_packets", "packets waiting for the server's answer",
          [this] { return engine->queue().packets(); });
    gauge("tep_server_connected", "1 while the session to the DSTM server is up",
          [this] { return connected() ? 1 : 0; });
  }

  // ---- the data path ----

  asio::awaitable<void> tun_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    while (!stopped) {
      auto [ec] = co_await tun_wait->async_wait(asio::posix::descriptor_base::wait_read,
                                                as_tuple_awaitable);
      if (ec || stopped) co_return;
      for (int round = 0; round < kRoundsPerWake; ++round) {
        batch_time = now();
        auto n = tun_source->drain(*this);
        if (!n) {
          receive_errors.inc();
          break;
        }
        if (*n == 0) break;
      }
    }
  }

  asio::awaitable<void> tunnel_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    while (!stopped) {
      auto [ec] = co_await tunnel_wait->async_wait(asio::posix::descriptor_base::wait_read,
                                                   as_tuple_awaitable);
      if (ec || stopped) co_return;
      for (int round = 0; round < kRoundsPerWake; ++round) {
        auto n = tunnel->receive(tunnel_batch);
        if (!n) {
          receive_errors.inc();
          break;
        }
        if (*n == 0) break;
        const auto t = now();
        for (std::size_t i = 0; i < *n; ++i) {
          const auto packet = tunnel_batch.packet(i);
          // The raw socket sees every packet, also those an ip6tnl device took: the kernel
          // forwarded them already.
          if (kernel) {
            const auto sources = tep::io::tunnel_sources(packet);
            if (sources && kernel->carries(sources->first, sources->second)) {
              ++kernel_copies;
              continue;
            }
          }
          engine->from_tunnel(packet, t);
        }
        writer->flush();
      }
    }
  }

  void schedule_tick() {
    tick_timer.expires_after(kTick);
    tick_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->engine->tick(now());
      self->schedule_tick();
    });
  }

  // ---- the DSTM server ----

  tsp::ClientConfig session_config() const {
    tsp::ClientConfig c;
    c.transport = config.server.transport;
    c.mechanisms = {tsp::Mechanism::DigestMd5, tsp::Mechanism::Plain};
    c.username = config.server.user;
    c.password = config.server.password;
    c.server_name = config.server.address;
    c.tep_ipv4 = config.ipv4;
    c.tep_ipv6 = config.ipv6;
    return c;
  }

  tsp_net::Target target() const {
    return tsp_net::Target{.address = config.server.address,
                           .port = config.server.port,
                           .transport = config.server.transport,
                           .source_address = {},
                           .freebind = false};
  }

  void start_query(core::Ipv4Address address) {
    if (stopped) return;
    if (!connected()) {
      // Asked once the session is up (a TEP just started, or the server is back); until then
      // the packets wait in the miss queue, which drops them at its deadline.
      if (deferred.size() < config.miss_queue.max_addresses) deferred.push_back(address);
      return;
    }
    asio::co_spawn(io, run_query(shared_from_this(), address), asio::detached);
  }

  void ask_deferred() {
    auto addresses = std::exchange(deferred, {});
    for (const auto& a : addresses)
      if (engine->queue().waiting(a)) start_query(a);
  }

  // Asks the server and feeds the answer to the engine. A failed revalidation keeps the binding.
  asio::awaitable<void> run_query([[maybe_unused]] std::shared_ptr<Impl> self,
                                  core::Ipv4Address address, bool revalidation = false) {
    const auto t0 = std::chrono::steady_clock::now();
    auto answer = co_await session->query(address);
    if (stopped) co_return;
    const auto t = now();
    if (!answer) {
      if (!revalidation) engine->answer_failed(address, t);
      co_return;
    }
    latency.add(std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0));
    if (answer->mapping)
      engine->answer_leased(address, answer->mapping->ipv6,
                            std::chrono::seconds{answer->mapping->lifetime}, t);
    else if (answer->status.code == 501)
      engine->answer_not_leased(address, t);
    else if (!revalidation)
      engine->answer_failed(address, t);
  }

  // After a reconnect the server may have withdrawn mappings this TEP was never told about (it
  // restarted, or the heartbeat carrying them was lost): ask again about every binding, while
  // the bindings keep carrying traffic.
  void revalidate(std::uint64_t gen) {
    struct Work {
      std::vector<core::Ipv4Address> addresses;
      std::size_t next = 0;
    };
    auto work = std::make_shared<Work>(Work{engine->bindings().addresses()});
    if (work->addresses.empty()) return;
    log.info("revalidating {} bindings with the server", work->addresses.size());
    auto self = shared_from_this();
    for (std::size_t i = 0; i < std::min(kRevalidateWindow, work->addresses.size()); ++i)
      asio::co_spawn(io, revalidate_worker(self, work, gen), asio::detached);
  }

  template <typename Work>
  asio::awaitable<void> revalidate_worker(std::shared_ptr<Impl> self, std::shared_ptr<Work> work,
                                          std::uint64_t gen) {
    while (!stopped && gen == generation && connected() && work->next < work->addresses.size())
      co_await run_query(self, work->addresses[work->next++], true);
  }

  asio::awaitable<void> heartbeat_loop([[maybe_unused]] std::shared_ptr<Impl> self,
                                       std::uint64_t gen) {
    while (!stopped && gen == generation && connected()) {
      auto answer = co_await session->heartbeat();
      if (stopped || gen != generation) co_return;
      if (!answer) co_return;  // the session failed: server_loop reconnects
      ++heartbeats;
      last_heartbeat = std::chrono::steady_clock::now();
      if (answer->status.code == 200) {
        heartbeat_interval = std::max<std::uint32_t>(1, answer->interval);
        if (answer->flush) engine->flush();
        for (const auto& a : answer->withdrawn) engine->withdraw(a);
      } else {
        log.warn("the server refused the heartbeat: {} {} (is '{}' a TEP user there?)",
                 answer->status.code, answer->status.text, config.server.user);
      }
      heartbeat_timer.expires_after(std::chrono::seconds{heartbeat_interval});
      auto [ec] = co_await heartbeat_timer.async_wait(as_tuple_awaitable);
      if (ec) co_return;
    }
  }

  asio::awaitable<void> server_loop(std::shared_ptr<Impl> self) {
    auto retry = std::chrono::duration_cast<std::chrono::milliseconds>(kRetryMin);
    while (!stopped) {
      auto opened = co_await tsp_net::QuerySession::open(target(), session_config());
      if (stopped) co_return;
      if (opened) {
        session.emplace(std::move(*opened));
        const auto gen = ++generation;
        ++connects;
        last_error.clear();
        retry = std::chrono::duration_cast<std::chrono::milliseconds>(kRetryMin);
        log.info("connected to the DSTM server {} as {} ({})", session->peer().to_string(),
                 config.server.user, tsp::mechanism_name(session->mechanism()));
        asio::co_spawn(io, heartbeat_loop(self, gen), asio::detached);
        ask_deferred();
        revalidate(gen);
        const auto closed = co_await session->wait_closed();
        if (stopped) co_return;
        ++generation;
        heartbeat_timer.cancel();
        last_error = closed.message();
        log.warn("the DSTM server session ended: {}", last_error);
        session.reset();
      } else {
        const auto message = opened.error().message();
        if (message != last_error) log.warn("cannot reach the DSTM server: {}", message);
        last_error = message;
      }
      retry_timer.expires_after(retry);
      auto [ec] = co_await retry_timer.async_wait(as_tuple_awaitable);
      if (ec || stopped) co_return;
      retry = std::min(retry * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kRetryMax));
    }
  }

  // ---- the control socket ----

  json::object counters_json() const {
    json::object o;
    const auto& c = engine->counters();
    c.for_each([&](std::string_view name, std::string_view, std::uint64_t v) { o[name] = v; });
    for (std::size_t i = 0; i < tep::kDropReasonCount; ++i)
      o[fmt::format("decap_{}", tep::drop_reason_name(static_cast<tep::DropReason>(i)))] =
          c.decap_drops[i];
    o["tun_write_errors"] = writer->counters().errors;
    o["tunnel_send_errors"] = sender->counters().errors;
    o["tunnel_send_dropped"] = sender->counters().dropped;
    o["receive_errors"] = receive_errors.value();
    o["tun_super_packets"] = tun_source->counters().super_packets;
    o["tun_segments"] = tun_source->counters().segments;
    o["tun_bad_offload"] = tun_source->counters().bad_offload;
    o["tun_merged_super_packets"] = writer->counters().super_packets;
    return o;
  }

  json::object status() const {
    const auto t = now();
    json::object server;
    server["address"] = config.server.address;
    server["port"] = config.server.port;
    server["transport"] = config.server.transport == tsp::Transport::Tcp ? "tcp" : "udp";
    server["user"] = config.server.user;
    server["connected"] = connected();
    server["connects"] = connects;
    server["heartbeats"] = heartbeats;
    server["heartbeat_interval"] = heartbeat_interval;
    if (last_heartbeat)
      server["last_heartbeat_ago"] =
          std::chrono::duration_cast<std::chrono::seconds>(t - *last_heartbeat).count();
    if (connected()) server["in_flight"] = session->in_flight();
    if (!last_error.empty()) server["last_error"] = last_error;
    server["query_latency"] = latency.summary();
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(t - started).count();
    server["query_rate"] =
        uptime > 0 ? static_cast<double>(engine->counters().queries) / static_cast<double>(uptime)
                   : 0.0;

    json::object queue;
    queue["addresses"] = engine->queue().addresses();
    queue["packets"] = engine->queue().packets();
    queue["bytes"] = engine->queue().bytes();

    json::object o;
    o["name"] = config.name;
    o["version"] = options.version;
    o["uptime"] = uptime;
    o["ipv6"] = config.ipv6.to_string();
    o["ipv4"] = config.ipv4.to_string();
    o["keepalive"] = config.keepalive ? json::value(config.keepalive->to_string()) : nullptr;
    o["interface"] = config.interface;
    o["tunnel_mtu"] = config.tunnel_mtu;
    json::array pool;
    for (const auto& p : config.pool) pool.emplace_back(p.to_string());
    o["pool"] = std::move(pool);
    o["server"] = std::move(server);
    o["bindings"] = engine->bindings().size();
    o["negative"] = engine->bindings().negative_size();
    o["queue"] = std::move(queue);
    o["counters"] = counters_json();
    o["backend"] = kernel ? "kernel" : fast_path ? "bpf" : "user";
    o["relay"] = config.relay ? json::value(config.relay->name) : json::value(nullptr);
    platform::add_life_to_status(o, options.restarter ? options.restarter->life() : own_life);
    if (fast_path) {
      json::object fp;
      fast_path_counters().for_each(
          [&](std::string_view name, std::string_view, std::uint64_t value) { fp[name] = value; });
      fp["map_errors"] = fast_path_errors;
      o["fast_path"] = std::move(fp);
    }
    if (kernel) {
      const auto& kc = kernel->counters();
      o["kernel"] = json::object{{"devices", kernel->devices()},
                                 {"routes", kernel->routes()},
                                 {"devices_created", kc.devices_created},
                                 {"devices_deleted", kc.devices_deleted},
                                 {"errors", kc.errors},
                                 {"over_limit", kc.over_limit},
                                 {"copies_dropped", kernel_copies},
                                 {"last_error", kernel->last_error()}};
    }
    return o;
  }

  // GET /bindings?search=TEXT&limit=N: bindings whose IPv4 or client IPv6 contains TEXT.
  platform::Response bindings(const platform::Request& r) const {
    std::size_t limit = 1000;
    if (auto l = r.query_param("limit")) {
      try {
        limit = std::min<std::size_t>(std::stoul(std::string{*l}), kMaxListedBindings);
      } catch (...) {
        return platform::Response::error(400, "limit must be a number");
      }
    }
    const std::string search{r.query_param("search").value_or("")};
    const auto t = now();
    json::array list;
    std::size_t matched = 0;
    engine->bindings().for_each([&](core::Ipv4Address a, const tep::Binding& b) {
      if (b.expires <= t) return;
      const auto ipv4 = a.to_string();
      const auto client = b.client.to_string();
      if (!search.empty() && ipv4.find(search) == std::string::npos &&
          client.find(search) == std::string::npos)
        return;
      ++matched;
      if (list.size() >= limit) return;
      json::object e;
      e["ipv4"] = ipv4;
      e["client"] = client;
      e["origin"] = origin_name(b.origin);
      e["expires_in"] = std::chrono::duration_cast<std::chrono::seconds>(b.expires - t).count();
      e["age"] = std::chrono::duration_cast<std::chrono::seconds>(t - b.learned).count();
      // Both data paths' traffic: what the fast path moved never reached the engine.
      tep::bpf::BindingTraffic fast{};
      if (fast_path) fast = fast_path->traffic(a).value_or(fast);
      // Or what the kernel carried through the client's ip6tnl device.
      if (kernel) {
        if (const auto k = kernel->traffic(b.client)) {
          fast.packets_to_client = k->packets_to_client;
          fast.bytes_to_client = k->bytes_to_client;
          fast.packets_from_client = k->packets_from_client;
          fast.bytes_from_client = k->bytes_from_client;
        }
      }
      e["packets_to_client"] = b.packets_to_client + fast.packets_to_client;
      e["bytes_to_client"] = b.bytes_to_client + fast.bytes_to_client;
      e["packets_from_client"] = b.packets_from_client + fast.packets_from_client;
      e["bytes_from_client"] = b.bytes_from_client + fast.bytes_from_client;
      list.emplace_back(std::move(e));
    });
    std::sort(list.begin(), list.end(), [](const json::value& x, const json::value& y) {
      return core::Ipv4Address::parse(x.at("ipv4").as_string()).value().to_uint() <
             core::Ipv4Address::parse(y.at("ipv4").as_string()).value().to_uint();
    });
    json::object o;
    o["total"] = matched;
    o["bindings"] = std::move(list);
    return platform::Response::json(std::move(o));
  }

  platform::Router router() {
    platform::Router r;
    std::weak_ptr<Impl> weak = shared_from_this();
    auto with = [weak](auto fn) {
      return [weak, fn](const platform::Request& req) -> platform::Response {
        auto self = weak.lock();
        if (!self || !self->engine) return platform::Response::error(503, "stopping");
        return fn(*self, req);
      };
    };
    r.get("/status", with([](Impl& d, const platform::Request&) {
            return platform::Response::json(d.status());
          }));
    r.get("/bindings", with([](Impl& d, const platform::Request& req) { return d.bindings(req); }));
    r.post("/bindings/flush", with([](Impl& d, const platform::Request&) {
             const auto n = d.engine->bindings().size();
             d.engine->flush();
             d.log.info("bindings flushed by the operator ({})", n);
             return platform::Response::json(json::object{{"flushed", n}});
           }));
    r.add(platform::Method::Delete, "/bindings/{ipv4}",
          with([](Impl& d, const platform::Request& req) {
            const auto a = core::Ipv4Address::parse(*req.param("ipv4"));
            if (!a) return platform::Response::error(400, "not an IPv4 address");
            if (!d.engine->bindings().find(*a, now()))
              return platform::Response::error(404, "no binding for that address");
            d.engine->bindings().erase(*a);
            return platform::Response::json(json::object{{"removed", a->to_string()}});
          }));
    r.post("/config/check", [](const platform::Request& req) {
      return platform::check_config_request(req, [](std::string_view document) {
        auto teps = parse_config_document(document);
        return teps ? platform::ConfigErrors{} : teps.error();
      });
    });
    r.post("/reload", with([](Impl& d, const platform::Request&) { return d.reload(); }));
    if (relay) {
      r.get("/relay/status", with([](Impl& d, const platform::Request&) {
              return platform::Response::json(d.relay->status());
            }));
      relay->add_routes(r, "/relay");
    }
    return r;
  }

  // POST /reload and SIGHUP. A restart stops this daemon after the answer has been written (a
  // stopping control server finishes the response in progress); main then starts the next one.
  platform::Response reload() {
    if (!options.restarter)
      return platform::Response::error(409, "this daemon was not started by a restart loop");
    auto decision = options.restarter->reload();
    if (decision.restart) asio::post(io, [self = shared_from_this()] { self->stop(); });
    return std::move(decision.response);
  }

  void stop() noexcept {
    if (stopped) return;
    stopped = true;
    log.info("stopping");
    tick_timer.cancel();
    retry_timer.cancel();
    heartbeat_timer.cancel();
    if (session) session->close();
    // The fast path first: its programs redirect into the TUN device that is about to go. The
    // kernel's devices go too (their routes with them).
    if (engine) engine->bindings().set_observer(nullptr);
    fast_path.reset();
    kernel.reset();
    boost::system::error_code ignored;
    if (tun_wait) tun_wait->close(ignored);
    if (tunnel_wait) tunnel_wait->close(ignored);
    // Closing the TUN queue removes the device, and the kernel removes its routes with it, so a
    // restarted daemon can create it again under the same name.
    tun_source.reset();
    writer.reset();
    sender.reset();
    tun.reset();
    tunnel.reset();
    if (control) control->stop();
    if (relay) relay->stop();
    if (signals) signals->cancel();
  }
};

platform::ConfigResult<platform::LoadedConfig<Config>> load_config(std::string_view document,
                                                                   std::string_view name) {
  auto teps = parse_config_document(document);
  if (!teps) return {boost::system::in_place_error, teps.error()};
  std::string error;
  const auto* chosen = select_tep(*teps, name, error);
  if (!chosen)
    return {boost::system::in_place_error, platform::ConfigErrors{{"/tep", std::move(error)}}};
  // The document parsed above, so this parse cannot fail; the TEP's element of the "tep" array
  // is at the same index as its Config.
  auto json = platform::parse_json(document);
  if (!json) return {boost::system::in_place_error, json.error()};
  const auto index = static_cast<std::size_t>(chosen - teps->data());
  platform::LoadedConfig<Config> loaded{*chosen, json->at("tep").at(index)};
  // The relay this TEP hosts, read (and checked) by the relay's own parser. Its section joins
  // the TEP's in what a reload compares, so that a change to either restarts both.
  const auto* host = json->as_object().if_contains("anytun");
  host = host && host->is_object() ? host->as_object().if_contains("relay") : nullptr;
  host = host && host->is_object() ? host->as_object().if_contains("hosted_by_tep") : nullptr;
  if (host && host->is_string() && host->as_string() == chosen->name) {
    auto anytun = relay_daemon::parse_config_document(document);
    if (!anytun) return {boost::system::in_place_error, anytun.error()};
    loaded.config.relay = anytun->relay;
    loaded.section =
        json::object{{"tep", std::move(loaded.section)}, {"relay", json->at("anytun").at("relay")}};
  }
  return loaded;
}

Daemon::Daemon(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}

Daemon::~Daemon() {
  stop();
}

boost::system::result<std::unique_ptr<Daemon>, std::string> Daemon::start(asio::io_context& io,
                                                                          Config config,
                                                                          DaemonOptions options) {
  auto d = std::make_shared<Impl>(io, std::move(config), std::move(options));
  if (auto error = d->open_data_plane()) return *error;
  if (d->config.relay) {
    auto relay = relay_daemon::Service::start_relay(io, *d->config.relay, d->counters);
    if (!relay) return fmt::format("relay {}: {}", d->config.relay->name, relay.error());
    d->relay = std::move(*relay);
  }

  const auto dir = std::filesystem::path{d->config.control_socket}.parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  platform::ControlLimits limits;
  limits.max_body_bytes = kControlBodyLimit;
  d->control = std::make_unique<platform::ControlServer>(
      io, d->router(),
      platform::ControlServerOptions{.path = d->config.control_socket,
                                     .mode = 0660,
                                     .limits = limits,
                                     .counters = &d->counters});
  if (auto ok = d->control->start(); !ok)
    return fmt::format("control socket {}: {}", d->config.control_socket, ok.error().message());
  d->log.info("control socket {}", d->config.control_socket);

  asio::co_spawn(io, d->tun_loop(d), asio::detached);
  asio::co_spawn(io, d->tunnel_loop(d), asio::detached);
  asio::co_spawn(io, d->server_loop(d), asio::detached);
  d->schedule_tick();

  std::unique_ptr<Daemon> daemon{new Daemon{d}};
  Daemon* raw = daemon.get();
  d->signals = platform::stop_on_signals(
      io, {SIGINT, SIGTERM}, [raw] { raw->stop(); }, [raw = d.get()] { (void)raw->reload(); });
  if (d->options.ready_fd) platform::notify_ready(*d->options.ready_fd);
  return daemon;
}

void Daemon::stop() noexcept {
  impl_->stop();
}

}  // namespace tep_daemon
