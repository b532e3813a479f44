// The client's data path: TUN <-> 4over6 tunnel, batch by batch on the io_context thread.
#include "link.hpp"

#include <chrono>
#include <exception>
#include <span>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/icmp.hpp"
#include "dstm_client/packets.hpp"
#include "tep_bpf/fast_path.hpp"
#include "tep_io/data_path.hpp"
#include "tep_io/packet_io.hpp"

namespace dstm_client::detail {

namespace asio = boost::asio;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kBatch = 16;
// Batches drained from one side before the loop lets other work run (fairness between the two
// directions, the control socket and the timers).
constexpr int kRoundsPerTurn = 8;
// After a read error, pause before waiting again: an fd in an error state is always "ready".
constexpr std::chrono::milliseconds kErrorPause{50};
// ICMP "fragmentation needed" written back to the host, at most per second.
constexpr unsigned kFragNeededPerSecond = 100;

// Waits for readiness of an fd owned elsewhere: the descriptor is released, never closed.
class Watch {
 public:
  Watch(asio::io_context& io, int fd) : d_{io, fd} {}
  ~Watch() { stop(); }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // Cancels a pending wait (it completes with operation_aborted) and gives the fd back.
  void stop() noexcept {
    if (!d_.is_open()) return;
    boost::system::error_code ec;
    d_.cancel(ec);
    [[maybe_unused]] const int fd = d_.release();
  }
  asio::awaitable<boost::system::error_code> readable() {
    auto [ec] = co_await d_.async_wait(asio::posix::descriptor_base::wait_read, kNoThrow);
    co_return ec;
  }

 private:
  asio::posix::stream_descriptor d_;
};

enum class Drain { Done, More, Error };

// The client's two labelled series: drops by reason, I/O errors by operation.
platform::Counter& dropped(platform::Counters& c, std::string_view reason) {
  return c.counter("dstm_client_dropped_total", "Packets dropped, by reason",
                   {{"reason", std::string{reason}}});
}
platform::Counter& io_error(platform::Counters& c, std::string_view op) {
  return c.counter("dstm_client_io_errors_total", "I/O errors, by operation",
                   {{"op", std::string{op}}});
}

}  // namespace

// ---- Metrics ----

Metrics::Metrics(platform::Counters& c)
    : encapsulated{c.counter("dstm_client_encapsulated_total",
                             "IPv4 packets sent into the tunnel (fragments counted each)")},
      decapsulated{c.counter("dstm_client_decapsulated_total",
                             "Inner IPv4 packets written to the TUN device")},
      fragmented{c.counter("dstm_client_fragmented_total",
                           "TUN packets fragmented to fit the tunnel MTU")},
      frag_needed_sent{c.counter("dstm_client_frag_needed_sent_total",
                                 "ICMP fragmentation-needed messages written back to the host")},
      dropped_too_big{dropped(c, "too_big")},
      dropped_not_ours{dropped(c, "not_ours")},
      dropped_source{dropped(c, "source_not_leased")},
      dropped_not_ipv4{dropped(c, "not_ipv4")},
      dropped_malformed{dropped(c, "malformed")},
      dropped_no_lease{dropped(c, "no_lease")},
      tun_read_errors{io_error(c, "tun_read")},
      tun_write_errors{io_error(c, "tun_write")},
      tunnel_read_errors{io_error(c, "tunnel_read")},
      tunnel_send_errors{io_error(c, "tunnel_send")},
      tunnel_send_dropped{dropped(c, "tunnel_busy")},
      keepalive_sent{c.counter("dstm_client_keepalive_sent_total", "Keepalive probes sent")},
      keepalive_answered{
          c.counter("dstm_client_keepalive_answered_total", "Keepalive probes answered in time")},
      keepalive_missed{
          c.counter("dstm_client_keepalive_missed_total", "Keepalive probes not answered in time")},
      keepalive_replies{c.counter("dstm_client_keepalive_replies_total",
                                  "Keepalive echo replies received (in time or late)")},
      renewals{c.counter("dstm_client_renewals_total", "Leases renewed")},
      tep_changes{c.counter("dstm_client_tep_changes_total", "Moves to another TEP")} {
  for (std::size_t i = 0; i < tep::kDropReasonCount; ++i) {
    const auto reason = tep::drop_reason_name(static_cast<tep::DropReason>(i));
    decap_drops[i] = &c.counter("dstm_client_decap_drops_total",
                                "Tunnel packets dropped by decapsulation, by reason",
                                {{"reason", std::string{reason}}});
  }
}

std::vector<std::pair<std::string, std::uint64_t>> Metrics::data_path() const {
  return {{"encapsulated", encapsulated.value()},
          {"decapsulated", decapsulated.value()},
          {"fragmented", fragmented.value()},
          {"frag_needed_sent", frag_needed_sent.value()},
          {"dropped_not_ours", dropped_not_ours.value()},
          {"dropped_source_not_leased", dropped_source.value()},
          {"dropped_too_big", dropped_too_big.value()},
          {"dropped_not_ipv4", dropped_not_ipv4.value()},
          {"dropped_malformed", dropped_malformed.value()},
          {"dropped_no_lease", dropped_no_lease.value()},
          {"dropped_tunnel_busy", tunnel_send_dropped.value()},
          {"keepalive_replies", keepalive_replies.value()},
          {"tun_read_errors", tun_read_errors.value()},
          {"tun_write_errors", tun_write_errors.value()},
          {"tunnel_read_errors", tunnel_read_errors.value()},
          {"tunnel_send_errors", tunnel_send_errors.value()}};
}

std::vector<std::pair<std::string, std::uint64_t>> Metrics::drops() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (std::size_t i = 0; i < tep::kDropReasonCount; ++i)
    out.emplace_back(tep::drop_reason_name(static_cast<tep::DropReason>(i)),
                     decap_drops[i]->value());
  return out;
}

// ---- Link ----

struct TunnelSide {
  TunnelSide(asio::io_context& io, tep::io::TunnelPort p)
      : port{std::move(p)}, sender{std::in_place, *port}, watch{io, port->receive_handle()} {}
  void close() noexcept {
    closed = true;
    watch.stop();
    sender.reset();
    port.reset();
  }
  std::optional<tep::io::TunnelPort> port;
  std::optional<tep::io::TunnelSender> sender;
  tep::io::SenderCounters accounted{};  // what Metrics already has of sender's counters
  Watch watch;
  bool closed = false;
};

struct Link::Impl : tep::io::PacketConsumer, std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& i, platform::Fd fd, std::uint32_t tun_index, std::size_t mtu,
       tep::io::Backend b, std::uint16_t id, Metrics& me, platform::Logger& l,
       std::function<void(std::uint16_t)> reply)
      : io{i},
        tun_ifindex{tun_index},
        backend{b},
        tun{std::in_place, std::move(fd), /*vnet_hdr=*/true},
        source{std::in_place, *tun, kBatch},
        writer{std::in_place, *tun, /*coalesce=*/true},
        tun_watch{std::in_place, i, tun->native_handle()},
        tunnel_mtu{mtu},
        echo_id{id},
        m{me},
        log{l},
        on_reply{std::move(reply)},
        pause{i} {
    probe_frame.resize(tep::io::kHeadroom + kProbeSize);
    scratch.resize(tep::io::kHeadroom + tep::io::kMaxPacket);
  }

  asio::io_context& io;
  std::uint32_t tun_ifindex;
  tep::io::Backend backend;  // Auto becomes User once the fast path failed to load
  std::unique_ptr<tep::bpf::FastPath> fast_path;
  std::optional<Path> fast_path_for;  // the path fast_path was opened for
  std::optional<tep::io::TunPort> tun;
  std::optional<tep::io::TunSource> source;
  std::optional<tep::io::TunWriter> writer;
  std::uint64_t writer_errors_accounted = 0;
  std::optional<Watch> tun_watch;
  std::size_t tunnel_mtu;
  std::uint16_t echo_id;
  Metrics& m;
  platform::Logger& log;
  std::function<void(std::uint16_t)> on_reply;
  asio::steady_timer pause;

  std::optional<Path> path;
  std::shared_ptr<TunnelSide> tunnel;
  tep::io::PacketBatch from_tunnel{kBatch};
  std::vector<std::byte> scratch;      // fragments and ICMP errors, with headroom
  std::vector<std::byte> probe_frame;  // keepalive probes, with headroom
  std::uint16_t probe_ip_id = 0;
  std::chrono::steady_clock::time_point frag_needed_window{};
  unsigned frag_needed_in_window = 0;
  bool closed = false;

  tep::Endpoints ends() const noexcept { return {.src = path->local, .dst = path->tep}; }

  static void spawn(asio::io_context& io, asio::awaitable<void> loop, platform::Logger& log) {
    asio::co_spawn(io, std::move(loop), [&log](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        log.error("data path loop ended: {}", x.what());
      } catch (...) {
        log.error("data path loop ended");
      }
    });
  }

  // ---- sending into the tunnel ----

  // Brings Metrics up to date with the sender's counters (it may flush on its own when full).
  void account(TunnelSide& side) {
    const auto& now = side.sender->counters();
    m.encapsulated.inc(now.sent - side.accounted.sent);
    m.tunnel_send_errors.inc(now.errors - side.accounted.errors);
    m.tunnel_send_dropped.inc(now.dropped - side.accounted.dropped);
    if (now.errors != side.accounted.errors)
      log.warn_limited("tunnel-send", "sending to the TEP failed ({} packets so far)", now.errors);
    side.accounted = now;
  }
  // Queued: leaves at the next flush (the bytes lie in the TUN source's storage).
  void queue(core::Bytes packet) {
    if (!tunnel || !tunnel->sender) {
      m.dropped_no_lease.inc();
      return;
    }
    tunnel->sender->queue(packet);
  }
  // The TUN source's flush, before it reuses the storage of what was queued.
  void flush() override {
    if (!tunnel || !tunnel->sender) return;
    tunnel->sender->flush();
    account(*tunnel);
  }
  bool send_one(core::Bytes packet) {
    if (!tunnel || !tunnel->sender) {
      m.dropped_no_lease.inc();
      return false;
    }
    const auto before = tunnel->sender->counters().sent;
    tunnel->sender->send(packet);
    const bool sent = tunnel->sender->counters().sent != before;
    account(*tunnel);
    return sent;
  }

  // ---- TUN -> tunnel ----

  // One IPv4 packet from the TUN source (a segment of a super-packet, or a packet as read) at
  // frame[headroom] up to the end of frame.
  void packet(core::MutableBytes frame, std::size_t headroom) override {
    const auto packet = frame.subspan(headroom);
    if (!path) {
      m.dropped_no_lease.inc();
      return;
    }
    switch (classify_outbound(packet, path->lease, tunnel_mtu)) {
      case Outbound::Encapsulate: {
        const auto outer = tep::encapsulate(frame, headroom, ends());
        if (!outer) {
          m.dropped_malformed.inc();
          return;
        }
        queue(*outer);
        return;
      }
      case Outbound::Fragment:
        fragment(packet);
        return;
      case Outbound::FragmentationNeeded:
        too_big(packet);
        return;
      case Outbound::NotIpv4:
        m.dropped_not_ipv4.inc();
        return;
      case Outbound::Malformed:
        m.dropped_malformed.inc();
        return;
      case Outbound::SourceNotLeased:
        m.dropped_source.inc();
        return;
    }
  }

  void fragment(core::Bytes packet) {
    flush();  // what came before goes first
    const auto count = tep::fragment_count(packet, tunnel_mtu);
    if (!count) {
      m.dropped_malformed.inc();
      return;
    }
    m.fragmented.inc();
    const core::MutableBytes buffer{scratch};
    for (std::size_t k = 0; k < *count; ++k) {
      const auto piece =
          tep::write_fragment(packet, tunnel_mtu, k, buffer.subspan(tep::io::kHeadroom));
      if (!piece) {
        m.dropped_malformed.inc();
        return;
      }
      const auto outer = tep::encapsulate(buffer.first(tep::io::kHeadroom + piece->size()),
                                          tep::io::kHeadroom, ends());
      if (!outer) {
        m.dropped_malformed.inc();
        return;
      }
      send_one(*outer);
    }
  }

  void too_big(core::Bytes packet) {
    m.dropped_too_big.inc();
    if (!core::icmpv4_error_allowed(packet)) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - frag_needed_window >= std::chrono::seconds{1}) {
      frag_needed_window = now;
      frag_needed_in_window = 0;
    }
    if (frag_needed_in_window >= kFragNeededPerSecond) return;
    ++frag_needed_in_window;
    const auto icmp = tep::write_fragmentation_needed(scratch, path->tep_ipv4, packet, tunnel_mtu);
    if (!icmp) return;
    writer->write(*icmp);
    m.frag_needed_sent.inc();
    account_writer();
  }

  void account_writer() {
    const auto errors = writer->counters().errors;
    m.tun_write_errors.inc(errors - writer_errors_accounted);
    writer_errors_accounted = errors;
  }

  Drain drain_tun() {
    for (int round = 0; round < kRoundsPerTurn; ++round) {
      const auto n = source->drain(*this);
      if (!n) {
        m.tun_read_errors.inc();
        log.warn_limited("tun-read", "reading the TUN device failed: {}", n.error().message());
        return Drain::Error;
      }
      if (*n == 0) return Drain::Done;
    }
    return Drain::More;
  }

  // ---- tunnel -> TUN ----

  void inbound(core::MutableBytes packet) {
    const auto d = tep::decapsulate(packet);
    if (!d) {
      m.decap_drops[static_cast<std::size_t>(d.error())]->inc();
      return;
    }
    if (!path) {
      m.dropped_no_lease.inc();
      return;
    }
    const auto verdict = classify_inbound(d->inner, path->lease, path->keepalive, echo_id);
    switch (verdict.kind) {
      case Inbound::Kind::NotOurs:
        m.dropped_not_ours.inc();
        return;
      case Inbound::Kind::KeepaliveReply:
        m.keepalive_replies.inc();
        if (on_reply) on_reply(verdict.sequence);
        return;
      case Inbound::Kind::Deliver:
        // Written (merged with its flow's neighbours) when the batch is done.
        if (const auto at = from_tunnel.locate(d->inner))
          writer->queue(from_tunnel.frame(at->frame), at->offset, d->inner.size());
        else
          writer->write(d->inner);
        m.decapsulated.inc();
        return;
    }
  }

  Drain drain_tunnel(TunnelSide& side) {
    for (int round = 0; round < kRoundsPerTurn; ++round) {
      const auto n = side.port->receive(from_tunnel);
      if (!n) {
        m.tunnel_read_errors.inc();
        log.warn_limited("tunnel-read", "reading the tunnel failed: {}", n.error().message());
        return Drain::Error;
      }
      if (*n == 0) return Drain::Done;
      for (std::size_t i = 0; i < *n; ++i) {
        inbound(from_tunnel.packet(i));
        if (closed || side.closed) {    // a callback closed us
          if (writer) writer->flush();  // before the batch's frames are reused
          return Drain::Done;
        }
      }
      writer->flush();
      account_writer();
    }
    return Drain::More;
  }

  // ---- the loops ----
  // Asio's reactor is edge-triggered: a side is drained until it reports nothing waiting before
  // the loop waits for readiness again.

  asio::awaitable<void> pause_after_error() {
    pause.expires_after(kErrorPause);
    co_await pause.async_wait(kNoThrow);
  }

  static asio::awaitable<void> tun_loop(std::shared_ptr<Impl> self) {
    while (!self->closed) {
      const Drain d = self->drain_tun();
      if (self->closed) break;
      if (d == Drain::More) {
        co_await asio::post(self->io, asio::use_awaitable);
        continue;
      }
      if (d == Drain::Error) {
        co_await self->pause_after_error();
        continue;
      }
      const auto ec = co_await self->tun_watch->readable();
      if (self->closed || ec == asio::error::operation_aborted) break;
      if (ec) {
        self->log.warn_limited("tun-wait", "waiting on the TUN device failed: {}", ec.message());
        co_await self->pause_after_error();
      }
    }
  }

  static asio::awaitable<void> tunnel_loop(std::shared_ptr<Impl> self,
                                           std::shared_ptr<TunnelSide> side) {
    while (!self->closed && !side->closed) {
      const Drain d = self->drain_tunnel(*side);
      if (self->closed || side->closed) break;
      if (d == Drain::More) {
        co_await asio::post(self->io, asio::use_awaitable);
        continue;
      }
      if (d == Drain::Error) {
        co_await self->pause_after_error();
        continue;
      }
      const auto ec = co_await side->watch.readable();
      if (self->closed || side->closed || ec == asio::error::operation_aborted) break;
      if (ec) {
        self->log.warn_limited("tunnel-wait", "waiting on the tunnel failed: {}", ec.message());
        co_await self->pause_after_error();
      }
    }
  }

  // Puts the fast path in front for `p` (reopened when the end point or keepalive changed).
  platform::Result<void> update_fast_path(const Path& p) {
    if (backend == tep::io::Backend::User) return {};
    if (!fast_path || fast_path_for->local != p.local || fast_path_for->keepalive != p.keepalive) {
      fast_path.reset();
      std::string why;
      auto fp = tep::bpf::FastPath::open(tep::bpf::FastPathConfig{.role = tep::bpf::Role::Client,
                                                                  .tun_ifindex = tun_ifindex,
                                                                  .uplinks = {},
                                                                  .local = p.local,
                                                                  .tunnel_mtu = tunnel_mtu,
                                                                  .hop_limit = 64,
                                                                  .flow_label = true,
                                                                  .keepalive = p.keepalive,
                                                                  .max_bindings = 1},
                                         &why);
      if (!fp) {
        if (backend == tep::io::Backend::Bpf) {
          log.error("BPF fast path: {} ({})", why, fp.error().message());
          return fp.error();
        }
        log.warn("data path: user space only, the BPF fast path did not load: {} ({})", why,
                 fp.error().message());
        backend = tep::io::Backend::User;
        return {};
      }
      fast_path = std::move(*fp);
      log.info("data path: BPF fast path in front of user space");
    }
    fast_path_for = p;
    return fast_path->set_client_path(p.lease, p.tep);
  }

  void close() noexcept {
    if (closed) return;
    closed = true;
    // The fast path first: it redirects into the TUN device that is about to go.
    fast_path.reset();
    path.reset();
    pause.cancel();
    if (tunnel) tunnel->close();
    tunnel.reset();
    // The watch lets go of the fd first; closing the fd then removes the device.
    tun_watch.reset();
    writer.reset();
    source.reset();
    tun.reset();
  }
};

Link::Link(asio::io_context& io, platform::Fd tun_queue, std::uint32_t tun_ifindex,
           std::size_t tunnel_mtu, tep::io::Backend backend, std::uint16_t echo_id,
           Metrics& metrics, platform::Logger& log,
           std::function<void(std::uint16_t)> on_keepalive_reply)
    : impl_{std::make_shared<Impl>(io, std::move(tun_queue), tun_ifindex, tunnel_mtu, backend,
                                   echo_id, metrics, log, std::move(on_keepalive_reply))} {
  Impl::spawn(io, Impl::tun_loop(impl_), log);
}

Link::~Link() {
  close();
}

platform::Result<void> Link::set_path(const Path& path) {
  auto& d = *impl_;
  if (d.closed) return boost::system::error_code{asio::error::bad_descriptor};
  if (!d.tunnel || d.tunnel->port->local() != path.local) {
    if (d.tunnel) d.tunnel->close();
    d.tunnel.reset();
    auto port = tep::io::TunnelPort::open(tep::io::TunnelOptions{.local = path.local});
    if (!port) {
      d.path.reset();
      return port.error();
    }
    try {
      d.tunnel = std::make_shared<TunnelSide>(d.io, std::move(*port));
    } catch (const boost::system::system_error& e) {  // registering the fd with the reactor
      d.path.reset();
      return e.code();
    }
    Impl::spawn(d.io, Impl::tunnel_loop(impl_, d.tunnel), d.log);
  }
  if (auto ok = d.update_fast_path(path); !ok) {
    d.path.reset();
    return ok.error();
  }
  d.path = path;
  return {};
}

void Link::clear_path() noexcept {
  impl_->path.reset();
  if (impl_->fast_path) (void)impl_->fast_path->clear_client_path();
}

std::string_view Link::backend() const noexcept {
  return impl_->fast_path ? "bpf" : "user";
}

std::vector<std::pair<std::string, std::uint64_t>> Link::kernel_counters() const {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  if (!impl_->fast_path) return out;
  impl_->fast_path->counters().for_each(
      [&](std::string_view name, std::string_view, std::uint64_t value) {
        out.emplace_back(name, value);
      });
  return out;
}

bool Link::send_probe(std::uint16_t sequence) {
  auto& d = *impl_;
  if (d.closed || !d.path || !d.path->keepalive) return false;
  const core::MutableBytes frame{d.probe_frame};
  const auto probe =
      write_probe(frame.subspan(tep::io::kHeadroom), Probe{.lease = d.path->lease,
                                                           .keepalive = *d.path->keepalive,
                                                           .echo_id = d.echo_id,
                                                           .sequence = sequence,
                                                           .ip_id = d.probe_ip_id++});
  if (!probe) return false;
  const auto outer = tep::encapsulate(frame.first(tep::io::kHeadroom + probe->size()),
                                      tep::io::kHeadroom, d.ends());
  if (!outer) return false;
  return d.send_one(*outer);
}

void Link::close() noexcept {
  if (impl_) impl_->close();
}

}  // namespace dstm_client::detail
