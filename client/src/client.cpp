// The dstm-client daemon: TSP leases, the 4over6 interface, renewal, keepalive and release, as
// coroutines on one io_context thread.
#include "dstm_client/client.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "anycast_net/query_client.hpp"
#include "dstm_client/keepalive.hpp"
#include "dstm_client/report.hpp"
#include "dstm_client/schedule.hpp"
#include "kernel_link.hpp"
#include "link.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/netlink.hpp"
#include "platform/signals.hpp"
#include "platform/tun.hpp"
#include "tep_io/backend.hpp"
#include "tsp/message.hpp"
#include "tsp_net/client.hpp"

namespace dstm_client {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr Duration kCreateTimeout = 20s;  // one create attempt: connect to accepted offer
// How long a create waits for anycast-resolver to resolve the server (a few probe round trips).
constexpr std::chrono::milliseconds kResolveWait{1000};
constexpr Duration kReplyDeadline = 10s;   // each TSP reply within an attempt
constexpr Duration kReleaseDeadline = 3s;  // delete on SIGINT/SIGTERM, all tries together
constexpr std::uint8_t kHostPrefix = 32;

// Why a new offer is being applied: decides the event printed.
enum class Why { First, Renewal, TepLost, AfterExpiry };

bool is_exists(const platform::NetlinkError& e) {
  return e.code == boost::system::errc::file_exists;
}

std::uint16_t random_echo_id() {
  std::random_device rd;
  return static_cast<std::uint16_t>(rd() & 0xffffu);
}

// The TUN device carries IPv4 only: without IPv6 on it, the kernel sends no router or listener
// solicitations into it (they would only be counted as drops). Best effort.
void disable_ipv6(const std::string& ifname, platform::Logger& log) {
  const auto path = fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname);
  std::ofstream out{path};
  if (out) out << "1\n";
  if (!out) log.debug("could not disable IPv6 on {} ({})", ifname, path);
}

}  // namespace

struct Client::Impl {
  Impl(asio::io_context& i, Options o, std::string pw)
      : io{i},
        options{std::move(o)},
        password{std::move(pw)},
        metrics{counters},
        lease_timer{i},
        keepalive_timer{i},
        stop_signal{i, asio::steady_timer::time_point::max()} {}

  asio::io_context& io;
  const Options options;
  const std::string password;  // SASL only; never logged
  platform::Logger log{"dstm-client"};
  platform::Counters counters;
  detail::Metrics metrics;
  std::optional<platform::NetlinkClient> netlink;
  std::string ifname;
  std::uint32_t ifindex = 0;
  std::optional<int> ready_fd;
  std::uint16_t echo_id = 0;

  State state = State::Connecting;
  std::optional<LeaseInfo> lease;           // the newest lease granted
  std::optional<core::Ipv6Address> pinned;  // the anycast server's member (--anycast-resolver)
  LeaseSchedule schedule;
  TimePoint next_renewal{};
  bool lease_live = false;  // granted and not ended: the interface carries it
  std::optional<core::Ipv4Address> configured_ipv4;
  bool link_up = false;
  std::optional<tsp_net::TunnelSession> session;
  std::optional<KeepaliveMonitor> keepalive;
  std::uint16_t next_sequence = 1;
  Backoff renew_backoff;

  bool stopping = false;        // finish: release (unless release_on_exit is false) and exit
  bool release_on_exit = true;  // false after a --no-renew lease ended
  bool tep_lost = false;
  unsigned lost_misses = 0;
  int exit_code = 0;

  asio::steady_timer lease_timer;      // the lease loop's sleeps; cancelled to wake it
  asio::steady_timer keepalive_timer;  // the keepalive loop's sleeps
  asio::steady_timer stop_signal;      // never expires: request_stop() cancels it

  // Declared last, destroyed first: they call back into the members above.
  std::unique_ptr<platform::ControlServer> control;
  std::unique_ptr<detail::DataPath> link;
  detail::KernelLink* kernel_link = nullptr;  // link, when the backend is the kernel's
  std::optional<platform::SignalWatch> signals;

  // ---- output ----

  void emit(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  void report(std::string_view phase, std::string_view message) {
    log.warn("{}: {}", phase, message);
    emit(error_event(phase, message));
  }

  void announce_ready() {
    if (!ready_fd) return;
    platform::notify_ready(*std::exchange(ready_fd, std::nullopt));
  }

  StatusSnapshot snapshot() const {
    StatusSnapshot s;
    s.state = state;
    s.lease = lease;
    if (lease)
      s.expires_in =
          std::chrono::duration_cast<std::chrono::seconds>(schedule.expires_at - Clock::now())
              .count();
    s.interface = ifname;
    if (link) {
      s.backend = std::string{link->backend()};
      (kernel_link ? s.kernel : s.fast_path) = link->kernel_counters();
    }
    s.renewals = metrics.renewals.value();
    s.tep_changes = metrics.tep_changes.value();
    s.keepalive_sent = metrics.keepalive_sent.value();
    s.keepalive_answered = metrics.keepalive_answered.value();
    s.keepalive_misses = metrics.keepalive_missed.value();
    s.counters = metrics.data_path();
    s.decap_drops = metrics.drops();
    return s;
  }

  // ---- stopping ----

  void request_stop() noexcept {
    if (stopping) return;
    stopping = true;
    stop_signal.cancel();
    lease_timer.cancel();
    keepalive_timer.cancel();
  }

  void fatal(std::string_view phase, std::string_view message) {
    log.error("{}: {}", phase, message);
    emit(error_event(phase, message));
    exit_code = 1;
    request_stop();
  }

  // ---- TSP ----

  // Where to connect, from --source or, when given, `bind` (IPv6 servers only: same family).
  tsp_net::Target target(std::optional<core::Ipv6Address> bind = std::nullopt) const {
    tsp_net::Target t;
    t.address = pinned ? pinned->to_string() : options.server;
    t.port = options.port;
    t.transport = options.transport;
    if (!bind) bind = options.source;
    if (bind && options.server_is_ipv6()) t.source_address = bind->to_string();
    return t;
  }

  tsp::ClientConfig session_config(bool create) const {
    tsp::ClientConfig c;
    c.transport = options.transport;
    if (options.user) {
      c.mechanisms = {tsp::Mechanism::DigestMd5, tsp::Mechanism::Plain};
      c.username = *options.user;
      c.password = password;
    } else {
      c.mechanisms = {tsp::Mechanism::Anonymous};
    }
    c.server_name = options.server;
    c.deadlines.reply = kReplyDeadline;
    if (create) {
      auto t = tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6, options.lifetime);
      // Without --source the server takes the session's source address as ours.
      t.client = tsp::Endpoint{};
      if (options.source)
        t.client->addresses.push_back(tsp::Address{*options.source, std::nullopt});
      c.request = std::move(t);
    }
    return c;
  }

  // With --anycast-resolver: the member of the anycast server to pin the sessions to, or none
  // (the server address as given) when the resolver has no answer. Once pinned, every session
  // (renewals too) goes to that member, which holds our lease, until one fails there.
  asio::awaitable<void> pin_server() {
    const auto server = core::Ipv6Address::parse(options.server);
    if (!options.anycast_resolver || !server || pinned) co_return;
    auto answer = co_await anycast::net::ask_resolver(io.get_executor(), *options.anycast_resolver,
                                                      *server, kResolveWait);
    if (answer.unicast && answer.unicast != pinned)
      log.info("server {} is served by the member at {}", options.server,
               answer.unicast->to_string());
    else if (!answer.unicast)
      log.info("server {}: {}; connecting to it as it is", options.server, answer.note);
    pinned = answer.unicast;
  }

  // One create, bounded by kCreateTimeout, cut short by a stop.
  asio::awaitable<tsp_net::Result<tsp_net::TunnelSession>> attempt() {
    using namespace asio::experimental::awaitable_operators;
    if (stopping) co_return tsp_net::Error{asio::error::operation_aborted};
    co_await pin_server();
    asio::steady_timer timeout{io, kCreateTimeout};
    auto r = co_await (tsp_net::TunnelSession::open(target(), session_config(true)) ||
                       timeout.async_wait(kNoThrow) || stop_signal.async_wait(kNoThrow));
    if (r.index() == 0 && !std::get<0>(r) && pinned) {
      // The member did not take the session: let the resolver pick again for the next attempt.
      co_await anycast::net::report_failed(io.get_executor(), *options.anycast_resolver,
                                           *core::Ipv6Address::parse(options.server), *pinned);
      pinned.reset();
    }
    if (r.index() == 0) co_return std::move(std::get<0>(r));
    if (r.index() == 1) co_return tsp_net::Error{tsp_net::Errc::Deadline};
    co_return tsp_net::Error{asio::error::operation_aborted};
  }

  // The delete, on the tunnel session if it is still open, else from a new session; at most
  // kReleaseDeadline in all. True when the server acknowledged it.
  asio::awaitable<bool> release_lease() {
    using namespace asio::experimental::awaitable_operators;
    const auto deadline = Clock::now() + kReleaseDeadline;
    if (session && session->is_open()) {
      asio::steady_timer t{io, deadline};
      auto r = co_await (session->async_delete() || t.async_wait(kNoThrow));
      if (r.index() == 0 && std::get<0>(r)) co_return true;
      log.warn("delete on the tunnel session: {}",
               r.index() == 0 ? std::get<0>(r).error().message() : std::string{"timed out"});
    }
    session.reset();
    if (Clock::now() + 100ms >= deadline) co_return false;
    asio::steady_timer t{io, deadline};
    // From the IPv6 the lease belongs to: the server finds it by that address.
    const auto bind = options.source ? options.source : std::optional{lease->local};
    auto r = co_await (tsp_net::delete_tunnel(target(bind), session_config(false)) ||
                       t.async_wait(kNoThrow));
    if (r.index() == 0 && std::get<0>(r)) co_return true;
    log.warn("delete from a new session: {}",
             r.index() == 0 ? std::get<0>(r).error().message() : std::string{"timed out"});
    co_return false;
  }

  // ---- the interface ----

  boost::system::result<void, std::string> configure(const LeaseInfo& l) {
    auto failed = [&](std::string_view what, const platform::NetlinkError& e) {
      return fmt::format("{} on {}: {}", what, ifname, e.to_string());
    };
    if (configured_ipv4 && *configured_ipv4 != l.ipv4) {
      if (auto r = netlink->delete_address(ifindex, *configured_ipv4, kHostPrefix); !r)
        log.warn("removing {}/32 from {}: {}", configured_ipv4->to_string(), ifname,
                 r.error().to_string());
      configured_ipv4.reset();
    }
    if (!configured_ipv4) {
      if (auto r = netlink->add_address(ifindex, l.ipv4, kHostPrefix); !r && !is_exists(r.error()))
        return failed(fmt::format("adding {}/32", l.ipv4.to_string()), r.error());
      configured_ipv4 = l.ipv4;
    }
    if (!link_up) {
      if (auto r = netlink->set_link_up(ifindex); !r)
        return failed("setting the link up", r.error());
      link_up = true;
      // The kernel drops a device's routes when it goes down: (re)add them with the link.
      for (const auto& p : options.routes) {
        platform::netlink::Ipv4Route route;
        route.destination = p;
        route.oif = ifindex;
        const auto r = netlink->add_route(route);
        if (r) continue;
        if (!is_exists(r.error()))
          return failed(fmt::format("adding the route {}", p.to_string()), r.error());
        // Ours went with the link; this one belongs to someone else and wins over ours.
        log.warn("a route to {} exists already: that traffic does not use the tunnel",
                 p.to_string());
      }
    }
    return {};
  }

  void interface_down() {
    if (link) link->clear_path();
    if (!link_up) return;
    if (auto r = netlink->set_link_down(ifindex); !r)
      log.warn("setting {} down: {}", ifname, r.error().to_string());
    link_up = false;
  }

  // ---- keepalive ----

  void retire_keepalive() {
    if (keepalive) next_sequence = static_cast<std::uint16_t>(next_sequence + keepalive->sent());
    keepalive.reset();
    keepalive_timer.cancel();
  }

  void restart_keepalive() {
    retire_keepalive();
    if (!lease || !lease->keepalive || lease->keepalive_interval == 0) return;
    keepalive.emplace(KeepaliveConfig{.interval = std::chrono::seconds{lease->keepalive_interval},
                                      .max_misses = options.keepalive_misses},
                      Clock::now(), next_sequence);
  }

  void on_keepalive_reply(std::uint16_t sequence) {
    if (keepalive && keepalive->on_reply(sequence)) metrics.keepalive_answered.inc();
  }

  static asio::awaitable<void> keepalive_loop(std::shared_ptr<Impl> self) {
    auto& d = *self;
    while (!d.stopping) {
      if (!d.keepalive || d.state != State::Up) {
        d.keepalive_timer.expires_at(asio::steady_timer::time_point::max());
        co_await d.keepalive_timer.async_wait(kNoThrow);
        continue;
      }
      const auto missed = d.keepalive->missed();
      const auto step = d.keepalive->poll(Clock::now());
      d.metrics.keepalive_missed.inc(d.keepalive->missed() - missed);
      if (step.probe) {
        d.metrics.keepalive_sent.inc();
        if (!d.link->send_probe(*step.probe))
          d.log.debug("keepalive probe {} could not be sent", *step.probe);
      }
      if (step.lost) {
        d.lost_misses = d.keepalive->consecutive_misses();
        d.retire_keepalive();
        d.tep_lost = true;
        d.lease_timer.cancel();
        continue;
      }
      d.keepalive_timer.expires_at(d.keepalive->next_wakeup());
      co_await d.keepalive_timer.async_wait(kNoThrow);
    }
  }

  // ---- leases ----

  // Takes a new offer into use. False when it cannot be used (reported; fatal() for interface
  // failures, after which the lease is still released on the way out).
  bool apply(tsp_net::TunnelSession s, Why why) {
    std::optional<core::Ipv6Address> local;
    if (const auto* a = std::get_if<core::Ipv6Address>(&s.result().local.address)) local = *a;
    auto info = lease_from_offer(s.result().offer, local);
    if (!info) {
      report(why == Why::Renewal ? "renew" : "create", "unusable offer: " + info.error().message);
      return false;
    }
    const std::optional<LeaseInfo> previous = lease;
    // From here on the server holds a lease for us: keep it so that it is released at exit.
    session = std::move(s);  // the previous session closes (the lease stays)
    lease = *info;
    if (previous && previous->ipv4 != info->ipv4)
      log.warn("the server changed our IPv4 from {} to {}: reconfiguring {}",
               previous->ipv4.to_string(), info->ipv4.to_string(), ifname);
    const detail::Path path{.lease = info->ipv4,
                            .local = info->local,
                            .tep = info->tep_ipv6,
                            .tep_ipv4 = info->tep_ipv4,
                            .keepalive = info->keepalive};
    // The kernel's device is created for the first path's end points: before it is configured.
    if (kernel_link) {
      if (auto ok = link->set_path(path); !ok) {
        fatal("interface",
              fmt::format("ip6tnl {} from {} to {}: {}", ifname, info->local.to_string(),
                          info->tep_ipv6.to_string(), ok.error().message()));
        return false;
      }
      ifindex = kernel_link->ifindex();
    }
    if (auto ok = configure(*info); !ok) {
      fatal("interface", ok.error());
      return false;
    }
    if (!kernel_link) {
      if (auto ok = link->set_path(path); !ok) {
        fatal("interface", fmt::format("tunnel socket on {}: {}", info->local.to_string(),
                                       ok.error().message()));
        return false;
      }
    }
    lease_live = true;
    state = State::Up;
    tep_lost = false;  // a new offer supersedes a loss noticed meanwhile
    schedule = schedule_lease(Clock::now(), info->lifetime);
    next_renewal = schedule.renew_at;
    renew_backoff.reset();
    restart_keepalive();

    const auto previous_ipv4 =
        previous && previous->ipv4 != info->ipv4 ? std::optional{previous->ipv4} : std::nullopt;
    const bool moved = previous && !previous->same_tep(*info);
    if (moved) metrics.tep_changes.inc();
    switch (why) {
      case Why::First:
        emit(up_event(*info, ifname));
        announce_ready();
        break;
      case Why::Renewal:
        metrics.renewals.inc();
        emit(renewed_event(*info, previous_ipv4));
        if (moved) emit(moved_event(*previous, *info));
        break;
      case Why::TepLost:
        emit(moved_event(*previous, *info));
        break;
      case Why::AfterExpiry:
        emit(up_event(*info, ifname, previous_ipv4));
        break;
    }
    constexpr std::string_view kVerb[] = {"up", "renewed", "moved", "up again"};
    log.info("{} {} via TEP {} ({}), lifetime {} s{}", kVerb[static_cast<int>(why)],
             info->ipv4.to_string(), info->tep_ipv6.to_string(), info->tep_ipv4.to_string(),
             info->lifetime,
             info->keepalive ? fmt::format(", keepalive {} every {} s",
                                           info->keepalive->to_string(), info->keepalive_interval)
                             : std::string{});
    return true;
  }

  asio::awaitable<void> sleep_until(TimePoint t) {
    if (stopping) co_return;
    lease_timer.expires_at(t);
    co_await lease_timer.async_wait(kNoThrow);
  }

  asio::awaitable<void> first_lease() {
    Backoff backoff;
    while (!stopping) {
      auto r = co_await attempt();
      if (r && apply(std::move(*r), Why::First)) co_return;
      if (stopping) co_return;
      if (!r) report("create", r.error().message());
      co_await sleep_until(Clock::now() + backoff.next());
    }
  }

  asio::awaitable<void> renew() {
    auto r = co_await attempt();
    if (r && apply(std::move(*r), Why::Renewal)) co_return;
    if (stopping) co_return;
    if (!r) report("renew", r.error().message());
    next_renewal = retry_at(Clock::now(), renew_backoff.next(), schedule.expires_at);
  }

  // The lease ended without a renewal: the interface goes down until a new create succeeds.
  void lease_ended() {
    state = State::Recreating;
    lease_live = false;
    retire_keepalive();
    interface_down();
    log.warn("the lease for {} ended", lease->ipv4.to_string());
    emit(expired_event(lease->ipv4));
  }

  // --no-renew: the lease ended; exit 0 without releasing.
  void end_without_renewal() {
    lease_live = false;
    log.info("the lease for {} ended (--no-renew): exiting without release",
             lease->ipv4.to_string());
    emit(expired_event(lease->ipv4));
    release_on_exit = false;
    request_stop();
  }

  // After a lost TEP (lease_live) or an ended lease: create again, with backoff, until it works.
  asio::awaitable<void> recreate() {
    if (lease_live && lease) {
      log.warn("TEP {} lost after {} unanswered keepalives: creating again",
               lease->tep_ipv6.to_string(), lost_misses);
      emit(tep_lost_event(*lease, lost_misses));
    }
    state = State::Recreating;
    retire_keepalive();
    Backoff backoff;
    while (!stopping) {
      if (lease_live && Clock::now() >= schedule.expires_at) {
        if (options.no_renew) {
          end_without_renewal();
          co_return;
        }
        lease_ended();
      }
      auto r = co_await attempt();
      if (r && apply(std::move(*r), lease_live ? Why::TepLost : Why::AfterExpiry)) co_return;
      if (stopping) co_return;
      if (!r) report("recreate", r.error().message());
      const auto now = Clock::now();
      co_await sleep_until(lease_live ? retry_at(now, backoff.next(), schedule.expires_at)
                                      : now + backoff.next());
    }
  }

  static asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    auto& d = *self;
    co_await d.first_lease();
    while (!d.stopping) {
      const auto now = Clock::now();
      if (d.tep_lost || !d.lease_live) {
        d.tep_lost = false;
        co_await d.recreate();
        continue;
      }
      if (now >= d.schedule.expires_at) {
        if (d.options.no_renew) {
          d.end_without_renewal();
          break;
        }
        d.lease_ended();
        continue;
      }
      if (!d.options.no_renew && now >= d.next_renewal) {
        co_await d.renew();
        continue;
      }
      co_await d.sleep_until(d.options.no_renew ? d.schedule.expires_at
                                                : std::min(d.next_renewal, d.schedule.expires_at));
    }
    co_await d.shutdown();
  }

  asio::awaitable<void> shutdown() {
    retire_keepalive();
    if (release_on_exit && lease) {
      const bool confirmed = co_await release_lease();
      log.info("released {}{}", lease->ipv4.to_string(),
               confirmed ? "" : " (the server did not confirm)");
      emit(released_event(lease->ipv4, confirmed));
    }
    finish();
  }

  // Closes everything that keeps io.run() going. The TUN device goes with its fd, and with it
  // the address and the routes.
  void finish() noexcept {
    request_stop();
    session.reset();
    if (link) link->close();
    link_up = false;
    configured_ipv4.reset();
    if (control) control->stop();
    if (signals) signals->cancel();
  }

  static void spawn(asio::io_context& io, std::shared_ptr<Impl> self,
                    asio::awaitable<void> (*loop)(std::shared_ptr<Impl>)) {
    Impl* raw = self.get();
    asio::co_spawn(io, loop(std::move(self)), [raw](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        raw->log.error("internal error: {}", x.what());
      } catch (...) {
        raw->log.error("internal error");
      }
      raw->exit_code = 1;
      raw->finish();
    });
  }
};

Client::Client(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}

Client::~Client() {
  if (impl_) impl_->finish();
}

boost::system::result<std::unique_ptr<Client>, std::string> Client::start(asio::io_context& io,
                                                                          Options options,
                                                                          std::string password) {
  auto impl = std::make_shared<Impl>(io, std::move(options), std::move(password));
  Impl& d = *impl;
  const Options& o = d.options;
  d.ready_fd = o.ready_fd;
  d.echo_id = random_echo_id();

  auto nl = platform::NetlinkClient::open();
  if (!nl) return fmt::format("netlink: {}", nl.error().message());
  d.netlink.emplace(std::move(*nl));

  const auto choice = tep::io::choose_backend(o.backend, tep::io::probe_kernel_tunnels);
  if (choice.error) return *choice.error;
  if (!choice.note.empty()) d.log.info("{}", choice.note);
  const bool kernel = choice.backend == tep::io::Backend::Kernel;
  const auto inner_mtu = o.tunnel_mtu - static_cast<std::uint32_t>(tep::kEncapOverhead);
  std::optional<platform::TunDevice> tun;
  if (kernel) {
    d.ifname = o.interface;  // created with the first lease, which names its end points
  } else {
    // Offloads: the host's TCP crosses the device as 64 KB super-packets, cut and merged by
    // the link.
    auto device = platform::TunDevice::open(
        platform::TunOptions{.name = o.interface, .vnet_hdr = true, .tso4 = true});
    if (!device) return fmt::format("TUN device {}: {}", o.interface, device.error().message());
    tun.emplace(std::move(*device));
    d.ifname = tun->name();
    d.ifindex = tun->ifindex();
    if (auto r = d.netlink->set_mtu(d.ifindex, inner_mtu); !r)
      return fmt::format("setting the MTU of {} to {}: {}", d.ifname, inner_mtu,
                         r.error().to_string());
    disable_ipv6(d.ifname, d.log);
  }

  if (o.control_socket) {
    const auto dir = std::filesystem::path{*o.control_socket}.parent_path();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) return fmt::format("control socket directory {}: {}", dir.string(), ec.message());
    platform::Router router;
    Impl* raw = &d;
    router.get("/status", [raw](const platform::Request&) {
      return platform::Response::json(status_json(raw->snapshot()));
    });
    d.control = std::make_unique<platform::ControlServer>(
        io, std::move(router),
        platform::ControlServerOptions{
            .path = *o.control_socket, .mode = 0660, .limits = {}, .counters = &d.counters});
    if (auto ok = d.control->start(); !ok)
      return fmt::format("control socket {}: {}", *o.control_socket, ok.error().message());
  }

  Impl* raw = &d;
  auto on_reply = [raw](std::uint16_t s) { raw->on_keepalive_reply(s); };
  if (kernel) {
    auto k = std::make_unique<detail::KernelLink>(io, d.ifname, inner_mtu, d.echo_id, d.metrics,
                                                  d.log, on_reply);
    d.kernel_link = k.get();
    d.link = std::move(k);
  } else {
    try {
      d.link =
          std::make_unique<detail::Link>(io, tun->release(), d.ifindex, o.tunnel_mtu,
                                         choice.backend, d.echo_id, d.metrics, d.log, on_reply);
    } catch (const boost::system::system_error& e) {  // registering the fd with the reactor
      return fmt::format("TUN device {}: {}", d.ifname, e.code().message());
    }
  }
  d.signals = platform::stop_on_signals(io, {SIGINT, SIGTERM}, [raw] {
    raw->log.info("stopping");
    raw->request_stop();
  });
  d.log.info("{} ready (MTU {}); asking {} port {} over {} for a lease", d.ifname, inner_mtu,
             o.server, o.port, o.transport == tsp::Transport::Tcp ? "TCP" : "UDP");

  Impl::spawn(io, impl, &Impl::run);
  Impl::spawn(io, impl, &Impl::keepalive_loop);
  return std::unique_ptr<Client>{new Client{std::move(impl)}};
}

void Client::stop() noexcept {
  impl_->request_stop();
}

int Client::exit_code() const noexcept {
  return impl_->exit_code;
}

}  // namespace dstm_client
