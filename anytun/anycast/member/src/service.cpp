// The member service: datagrams from the ARR/UDP socket through the probe budget into
// anycast::Member, and the datagrams it asks for back out.
#include "anycast_member/service.hpp"
#include "platform/random.hpp"

#include <net/if.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>

#include "anycast/member.hpp"
#include "anycast/wire.hpp"
#include "anycast_member/rate_limit.hpp"
#include "anycast_net/udp.hpp"
#include "platform/counters.hpp"
#include "platform/log.hpp"

namespace anycast_member {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using anycast::Errc;

constexpr auto kExpireInterval = std::chrono::seconds{1};
constexpr std::size_t kErrcCount = static_cast<std::size_t>(Errc::Unsolicited);

// Errors of anycast::parse and the Member are all Errc; anything else would be a bug in them and
// is still counted rather than lost.
Errc to_errc(const boost::system::error_code& ec) noexcept {
  if (ec.category() == anycast::anycast_category() && ec.value() >= 1 &&
      static_cast<std::size_t>(ec.value()) <= kErrcCount)
    return static_cast<Errc>(ec.value());
  return Errc::UnknownKind;
}

std::string endpoint_text(const anycast::Endpoint& e) {
  return fmt::format("[{}]:{}", e.address.to_string(), e.port);
}

}  // namespace

struct Service::Impl {
  struct Named {
    const char* name;
    platform::Counter* counter;
  };

  Impl(asio::io_context& io, const Config& settings, platform::Counters& counters,
       ServiceOptions options, anycast::net::DatagramSocket bound)
      : config{settings},
        clock{options.clock ? std::move(options.clock) : [] { return anycast::Clock::now(); }},
        socket{std::move(bound)},
        member{anycast::MemberSettings{.anycast = config.anycast,
                                       .unicast = config.unicast,
                                       .answer_ttl_seconds = config.answer_ttl,
                                       .max_pending = config.max_pending},
               [](std::span<std::uint8_t> out) { platform::random_bytes(out); }},
        limit{config.probes_per_second, kMaxRateLimitedSources},
        timer{io},
        port{socket.local_port()} {
    const auto counter = [&](const char* name, const char* help) -> platform::Counter& {
      auto& c = counters.counter(fmt::format("anycast_member_{}_total", name), help);
      named.push_back(Named{name, &c});
      return c;
    };
    probes = &counter("probes", "ARR/UDP probes received");
    probes_answered = &counter("probes_answered", "probes to an anycast address answered");
    liveness_answered =
        &counter("liveness_answered", "liveness probes (to the unicast address) answered");
    exchanges_started = &counter("exchanges_started", "return-routability exchanges started");
    hot_received = &counter("hot_received", "Home Test messages received");
    cot_received = &counter("cot_received", "Care-of Test messages received");
    binding_updates_sent = &counter("binding_updates_sent", "Binding Updates sent");
    binding_acks_accepted = &counter("binding_acks_accepted", "Binding Acknowledgements accepted");
    send_errors = &counter("send_errors", "datagrams the socket refused to send");
    receive_errors = &counter("receive_errors", "failed reads from the socket");
    for (std::size_t i = 1; i <= kErrcCount; ++i)
      drops[i] = &counters.counter(
          "anycast_member_drops_total", "datagrams dropped, by reason (anycast::Errc)",
          {{"reason", std::string{anycast::to_string(static_cast<Errc>(i))}}});
  }

  void drop(Errc reason) { drops[static_cast<std::size_t>(reason)]->inc(); }

  void send(const std::vector<anycast::Outgoing>& out) {
    for (const auto& o : out) {
      if (auto ec = socket.send(o)) {
        send_errors->inc();
        log.warn_limited("send", "cannot send to {} from {}: {}", endpoint_text(o.destination),
                         o.source.to_string(), ec.message());
      }
    }
  }

  void finish(const anycast::Result<std::vector<anycast::Outgoing>>& out) {
    if (!out) {
      drop(to_errc(out.error()));
      return;
    }
    send(*out);
  }

  // The Member counts what it did; these counters follow its totals.
  void follow_member_stats() {
    const auto& now = member.stats();
    exchanges_started->inc(now.exchanges_started - seen.exchanges_started);
    binding_updates_sent->inc(now.binding_updates_sent - seen.binding_updates_sent);
    binding_acks_accepted->inc(now.binding_acks_accepted - seen.binding_acks_accepted);
    seen = now;
  }

  void handle(const anycast::net::DatagramSocket::Received& r, std::span<const std::byte> bytes) {
    // Larger than any ARR/UDP datagram.
    if (r.truncated) return drop(Errc::BadLength);
    const auto parsed = anycast::parse(bytes);
    if (!parsed) return drop(to_errc(parsed.error()));
    const auto now = clock();
    const auto& body = parsed->message.body;
    if (const auto* probe = std::get_if<anycast::Probe>(&body)) {
      probes->inc();
      if (!limit.admit(r.from.address, now)) return drop(Errc::RateLimited);
      const auto out = member.on_probe(now, *probe, r.from, r.to);
      if (out) (r.to == config.unicast ? liveness_answered : probes_answered)->inc();
      finish(out);
    } else if (const auto* hot = std::get_if<anycast::Hot>(&body)) {
      hot_received->inc();
      finish(member.on_hot(now, *hot, r.from, r.to));
    } else if (const auto* cot = std::get_if<anycast::Cot>(&body)) {
      cot_received->inc();
      finish(member.on_cot(now, *cot, r.from, r.to));
    } else if (const auto* ack = std::get_if<anycast::BindingAck>(&body)) {
      if (auto done = member.on_binding_ack(now, *ack, parsed->authenticated, r.from, r.to); !done)
        drop(to_errc(done.error()));
    } else {
      // A probe answer, HoTI, CoTI or BU: messages for a resolver, not for a member.
      drop(Errc::UnknownKind);
    }
    follow_member_stats();
  }

  static asio::awaitable<void> receive_loop(std::shared_ptr<Impl> self) {
    std::array<std::byte, anycast::kMaxDatagram> buffer{};
    while (!self->stopped) {
      auto r = co_await self->socket.receive(buffer);
      if (self->stopped) co_return;
      if (!r) {
        self->receive_errors->inc();
        self->log.warn_limited("receive", "receive failed: {}", r.error().message());
        continue;
      }
      self->handle(*r, std::span{buffer}.first(r->size));
    }
  }

  static asio::awaitable<void> expire_loop(std::shared_ptr<Impl> self) {
    while (!self->stopped) {
      self->timer.expires_after(kExpireInterval);
      auto [ec] = co_await self->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || self->stopped) co_return;
      self->member.expire(self->clock());
    }
  }

  json::object status() const {
    json::object counters;
    for (const auto& n : named) counters[n.name] = n.counter->value();
    json::object dropped;
    for (std::size_t i = 1; i <= kErrcCount; ++i)
      dropped[anycast::to_string(static_cast<Errc>(i))] = drops[i]->value();
    json::array anycast;
    for (const auto& a : config.anycast) anycast.emplace_back(a.to_string());
    json::object o;
    o["counters"] = std::move(counters);
    o["drops"] = std::move(dropped);
    o["pending"] = member.pending();
    o["anycast"] = std::move(anycast);
    o["unicast"] = config.unicast.to_string();
    o["listen"] = config.listen.to_string();
    o["port"] = port;
    o["join"] = config.join ? json::value(config.join->interface) : json::value(nullptr);
    o["rate_limited_sources"] = limit.sources();
    return o;
  }

  void stop() noexcept {
    if (stopped) return;
    stopped = true;
    timer.cancel();
    socket.close();
  }

  Config config;
  std::function<anycast::Time()> clock;
  anycast::net::DatagramSocket socket;
  anycast::Member member;
  SourceRateLimit limit;
  asio::steady_timer timer;
  std::uint16_t port = 0;
  platform::Logger log{"anycast-member"};
  bool stopped = false;

  std::vector<Named> named;  // for status(), in registration order
  platform::Counter* probes = nullptr;
  platform::Counter* probes_answered = nullptr;
  platform::Counter* liveness_answered = nullptr;
  platform::Counter* exchanges_started = nullptr;
  platform::Counter* hot_received = nullptr;
  platform::Counter* cot_received = nullptr;
  platform::Counter* binding_updates_sent = nullptr;
  platform::Counter* binding_acks_accepted = nullptr;
  platform::Counter* send_errors = nullptr;
  platform::Counter* receive_errors = nullptr;
  std::array<platform::Counter*, kErrcCount + 1> drops{};  // by Errc value; [0] unused
  anycast::MemberStats seen;
};

Service::Service(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}

Service::~Service() {
  stop();
}

boost::system::result<std::unique_ptr<Service>, std::string> Service::start(
    asio::io_context& io, const Config& config, platform::Counters& counters,
    ServiceOptions options) {
  auto socket = anycast::net::DatagramSocket::open(io.get_executor(), config.listen, config.port);
  if (!socket)
    return fmt::format("ARR/UDP socket [{}]:{}: {}", config.listen.to_string(), config.port,
                       socket.error().message());
  if (config.join) {
    const auto ifindex = ::if_nametoindex(config.join->interface.c_str());
    if (ifindex == 0)
      return fmt::format(
          "interface {}: {}", config.join->interface,
          boost::system::error_code{errno, boost::system::system_category()}.message());
    for (const auto& a : config.anycast)
      if (auto ec = socket->join_anycast(a, ifindex))
        return fmt::format("join {} on {}: {}", a.to_string(), config.join->interface,
                           ec.message());
  }
  auto impl = std::make_shared<Impl>(io, config, counters, std::move(options), std::move(*socket));
  asio::co_spawn(io, Impl::receive_loop(impl), asio::detached);
  asio::co_spawn(io, Impl::expire_loop(impl), asio::detached);
  impl->log.info("answering for {} anycast addresses as {} on [{}]:{}{}", config.anycast.size(),
                 config.unicast.to_string(), config.listen.to_string(), impl->port,
                 config.join ? fmt::format(" (joined on {})", config.join->interface) : "");
  return std::unique_ptr<Service>{new Service{std::move(impl)}};
}

json::object Service::status() const {
  return impl_->status();
}

std::uint16_t Service::port() const noexcept {
  return impl_->port;
}

std::uint64_t Service::drops(anycast::Errc reason) const noexcept {
  const auto i = static_cast<std::size_t>(reason);
  return i >= 1 && i <= kErrcCount ? impl_->drops[i]->value() : 0;
}

void Service::stop() noexcept {
  impl_->stop();
}

}  // namespace anycast_member
