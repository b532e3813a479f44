// The resolver service: sockets and coroutines around the pure cache and correspondent. Every
// datagram and query is handled to the end on the loop thread; the cache's Actions become
// datagrams and wake-ups, and one timer follows the cache's next wake-up.
#include "anycast_resolver/service.hpp"
#include "platform/random.hpp"

#include <netinet/icmp6.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <list>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/icmp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "anycast/correspondent.hpp"
#include "anycast/query.hpp"
#include "anycast/wire.hpp"
#include "anycast_net/seq_packet.hpp"
#include "anycast_net/udp.hpp"
#include "anycast_resolver/cache.hpp"
#include "core/bytes.hpp"
#include "core/icmp.hpp"
#include "core/overloaded.hpp"
#include "platform/control.hpp"
#include "platform/counters.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"

namespace anycast_resolver {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using anycast::Errc;
using SeqPacket = anycast::net::SeqPacketProtocol;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Query connections at once, and how long one may sit idle between requests.
constexpr std::size_t kMaxConnections = 256;
constexpr auto kConnectionIdle = 60s;
// The correspondent forgets old BU sequence records on this period.
constexpr auto kHousekeeping = 30s;
// An accept that fails (EMFILE...) is retried after this pause rather than at once.
constexpr auto kAcceptRetry = 100ms;
constexpr std::size_t kMaxListedEntries = 10'000;
constexpr std::size_t kErrcCount = static_cast<std::size_t>(Errc::Unsolicited) + 1;
constexpr std::size_t kNonceSize = std::tuple_size_v<anycast::Nonce128>;

Time now() {
  return anycast::Clock::now();
}

void system_random(std::span<std::uint8_t> out) {
  platform::random_bytes(out);
}

std::int64_t ms_between(Time from, Time to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// Why parse_request() refused a request, for the drop counters.
Errc query_error(std::span<const std::uint8_t> in) {
  namespace q = anycast::query;
  if (in.size() < q::kRequestSize) return Errc::Truncated;
  if (in.size() > q::kRequestSize) return Errc::BadLength;
  if (in[0] != 'A' || in[1] != 'Q') return Errc::BadMagic;
  if (in[2] != q::kVersion) return Errc::BadVersion;
  if (in[3] != static_cast<std::uint8_t>(q::Op::Resolve) &&
      in[3] != static_cast<std::uint8_t>(q::Op::Failed))
    return Errc::UnknownKind;
  return Errc::BadFlags;
}

std::string_view learned_by_name(LearnedBy by) {
  switch (by) {
    case LearnedBy::ProbeAnswer:
      return "probe_answer";
    case LearnedBy::EchoReply:
      return "echo_reply";
    case LearnedBy::BindingUpdate:
      return "binding_update";
  }
  return "probe_answer";
}

json::object entry_json(const EntryView& v, Time t) {
  json::object o;
  o["anycast"] = v.anycast.to_string();
  o["state"] = to_string(v.state);
  o["verified"] = v.binding && v.binding->verified;
  if (v.binding) {
    o["unicast"] = v.binding->unicast.to_string();
    o["learned_by"] = learned_by_name(v.binding->learned_by);
    if (v.binding->verified) o["sequence"] = v.binding->sequence;
  }
  o["expires_in_ms"] = std::max<std::int64_t>(0, ms_between(t, v.expires));
  o["renewing"] = v.renewing;
  o["renewals"] = v.renewals;
  o["rebinds"] = v.rebinds;
  o["liveness_misses"] = v.liveness_misses;
  o["last_used_ms_ago"] = std::max<std::int64_t>(0, ms_between(v.last_used, t));
  return o;
}

// Whether a process accepts connections on the Unix seqpacket socket at `path`.
bool someone_answers(asio::io_context& io, const std::string& path) {
  SeqPacket::socket probe{io};
  boost::system::error_code ec;
  probe.connect(SeqPacket::endpoint{path}, ec);
  return !ec;
}

}  // namespace

struct Service::Impl : std::enable_shared_from_this<Impl> {
  // One query connection. The timer bounds its idle time and, while a query waits for a
  // resolution, that wait.
  struct Connection {
    Connection(SeqPacket::socket s, asio::io_context& io) : socket{std::move(s)}, timer{io} {}
    SeqPacket::socket socket;
    asio::steady_timer timer;
    bool broken = false;  // an answer could not be written: close
  };

  // Counters of the I/O around the cache (the cache counts its decisions).
  struct Stats {
    std::uint64_t queries = 0;
    std::uint64_t pending_answers = 0;
    std::uint64_t probes_sent = 0;
    std::uint64_t icmp_probes_sent = 0;
    std::uint64_t hoti_answered = 0;
    std::uint64_t coti_answered = 0;
    std::uint64_t send_errors = 0;
  };

  asio::io_context& io;
  Config config;
  ServiceOptions options;
  platform::Logger log{"anycast-resolver"};
  platform::Counters counters;
  Cache cache;
  anycast::Correspondent correspondent;
  Stats stats;
  std::array<std::uint64_t, kErrcCount> drops{};

  core::Ipv6Address source;  // of probes: config.source or unspecified
  std::optional<anycast::net::DatagramSocket> udp;
  std::optional<asio::ip::icmp::socket> icmp;
  std::uint16_t echo_id = 0;
  std::uint16_t echo_sequence = 0;
  std::optional<SeqPacket::acceptor> acceptor;
  bool created_socket_file = false;
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
  std::list<std::shared_ptr<Connection>> connections;
  std::unordered_map<WaiterId, asio::steady_timer*> waiting;
  asio::steady_timer tick_timer;
  std::optional<Time> tick_at;  // what tick_timer waits for; nullopt: nothing scheduled
  asio::steady_timer housekeeping_timer;
  asio::steady_timer accept_retry;
  std::unique_ptr<platform::ControlServer> control;
  bool stopped = false;

  Impl(asio::io_context& i, Config c, ServiceOptions o)
      : io{i},
        config{std::move(c)},
        options{std::move(o)},
        cache{cache_settings(config), system_random},
        correspondent{anycast::CorrespondentSettings{}, now(), system_random},
        source{config.source.value_or(core::Ipv6Address{})},
        tick_timer{i},
        housekeeping_timer{i},
        accept_retry{i} {}

  bool secure() const { return config.policy == Policy::Secure; }

  void drop(Errc e) {
    const auto i = static_cast<std::size_t>(e);
    if (i < drops.size()) ++drops[i];
  }
  void drop(const boost::system::error_code& ec) {
    if (ec.category() == anycast::anycast_category()) drop(static_cast<Errc>(ec.value()));
  }

  // ---- setup ----

  std::optional<std::string> open_sockets() {
    auto socket = anycast::net::DatagramSocket::open(io.get_executor(), source, 0);
    if (!socket)
      return fmt::format("ARR/UDP socket on [{}]:0: {}", source.to_string(),
                         socket.error().message());
    udp.emplace(std::move(*socket));
    if (config.methods.icmp) {
      if (auto error = open_icmp()) return error;
    }
    if (auto error = open_query_socket()) return error;
    return std::nullopt;
  }

  std::optional<std::string> open_icmp() {
    boost::system::error_code ec;
    asio::ip::icmp::socket s{io};
    s.open(asio::ip::icmp::v6(), ec);
    if (ec) return fmt::format("raw ICMPv6 socket: {}", ec.message());
    // Only echo replies: the kernel copies every ICMPv6 message to each raw socket otherwise.
    icmp6_filter filter{};
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filter);
    if (::setsockopt(s.native_handle(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) != 0)
      return fmt::format("ICMP6_FILTER: {}", std::strerror(errno));
    if (!source.is_unspecified()) {
      s.bind(asio::ip::icmp::endpoint{asio::ip::address_v6{source.bytes()}, 0}, ec);
      if (ec) return fmt::format("raw ICMPv6 socket on {}: {}", source.to_string(), ec.message());
    }
    s.non_blocking(true, ec);
    if (ec) return fmt::format("raw ICMPv6 socket: {}", ec.message());
    std::array<std::uint8_t, 2> id{};
    system_random(id);
    echo_id = static_cast<std::uint16_t>((id[0] << 8) | id[1]);
    icmp.emplace(std::move(s));
    return std::nullopt;
  }

  std::optional<std::string> open_query_socket() {
    const std::string& path = config.socket;
    const auto fail = [&](std::string_view why) {
      return fmt::format("query socket {}: {}", path, why);
    };
    std::error_code dir_error;
    std::filesystem::create_directories(std::filesystem::path{path}.parent_path(), dir_error);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) return fail("exists and is not a socket");
      if (someone_answers(io, path)) return fail("another process serves it");
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(std::strerror(errno));
      log.info("removed stale query socket {}", path);
    }
    SeqPacket::acceptor a{io};
    boost::system::error_code ec;
    a.open(SeqPacket{}, ec);
    if (!ec) a.bind(SeqPacket::endpoint{path}, ec);
    if (ec) return fail(ec.message());
    created_socket_file = true;
    // Every local program may ask (the preload library runs in any user's processes).
    if (::chmod(path.c_str(), 0666) != 0 || ::lstat(path.c_str(), &st) != 0) {
      const std::string why = std::strerror(errno);
      unlink_socket_file();
      return fail(why);
    }
    socket_dev = st.st_dev;
    socket_ino = st.st_ino;
    a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      unlink_socket_file();
      return fail(ec.message());
    }
    acceptor.emplace(std::move(a));
    return std::nullopt;
  }

  void unlink_socket_file() noexcept {
    if (!created_socket_file) return;
    created_socket_file = false;
    struct stat st {};
    // Only our own file: a new resolver may have replaced it since.
    if (::lstat(config.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
        (socket_ino == 0 || (st.st_dev == socket_dev && st.st_ino == socket_ino)))
      ::unlink(config.socket.c_str());
  }

  // ---- counters ----

  struct Named {
    const char* name;
    const char* help;
    const std::uint64_t* value;
  };

  std::vector<Named> counter_table() const {
    const auto& c = cache.stats();
    return {
        {"queries", "Resolve queries", &stats.queries},
        {"hits", "queries answered with a bound unicast address", &c.hits},
        {"misses", "queries that found no usable binding", &c.misses},
        {"pass_through", "queries answered PassThrough (not resolvable, or negative)",
         &c.pass_through},
        {"pending_answers", "queries answered Pending", &stats.pending_answers},
        {"failed_reports", "Failed reports that dropped a binding", &c.failed_reports},
        {"probes_sent", "ARR/UDP probes sent by resolutions", &stats.probes_sent},
        {"icmp_probes_sent", "ICMPv6 echo requests sent by resolutions", &stats.icmp_probes_sent},
        {"answers_accepted", "probe answers that made a binding", &c.answers_accepted},
        {"answers_ignored_secure", "probe answers and echo replies ignored by the secure policy",
         &c.answers_ignored_secure},
        {"icmp_answers_accepted", "echo replies that made a binding", &c.icmp_answers_accepted},
        {"icmp_from_anycast", "echo replies from the anycast address itself (nothing learned)",
         &c.icmp_from_anycast},
        {"hoti_answered", "HoTIs answered with a HoT", &stats.hoti_answered},
        {"coti_answered", "CoTIs answered with a CoT", &stats.coti_answered},
        {"bindings_verified", "Binding Updates that verified and made a binding",
         &c.bindings_verified},
        {"renewals", "bindings renewed through the anycast address", &c.renewals},
        {"rebinds", "new bindings naming another member than before", &c.rebinds},
        {"liveness_probes", "liveness probes sent to bound members", &c.liveness_probes},
        {"liveness_failures", "bindings dropped after unanswered liveness probes",
         &c.liveness_failures},
        {"resolutions_failed", "resolutions that got no binding in their attempts",
         &c.resolutions_failed},
        {"send_errors", "datagrams the kernel refused to send", &stats.send_errors},
    };
  }

  void register_metrics() {
    for (const auto& n : counter_table()) {
      const auto* value = n.value;
      counters.counter_fn(fmt::format("anycast_resolver_{}_total", n.name), n.help, {},
                          [value] { return *value; });
    }
    for (std::size_t i = 1; i < kErrcCount; ++i)
      counters.counter_fn("anycast_resolver_drops_total",
                          "datagrams and queries dropped, by reason",
                          {{"reason", std::string{anycast::to_string(static_cast<Errc>(i))}}},
                          [this, i] { return drops[i]; });
    counters.gauge_fn("anycast_resolver_entries", "cache entries", {},
                      [this] { return static_cast<std::int64_t>(cache.size()); });
    counters.gauge_fn("anycast_resolver_waiters", "queries waiting for a resolution", {},
                      [this] { return static_cast<std::int64_t>(cache.waiters()); });
  }

  // ---- the cache's actions ----

  void send(const anycast::Outgoing& out) {
    if (udp->send(out)) ++stats.send_errors;
  }

  bool send_probe(const core::Ipv6Address& to, const anycast::Nonce128& nonce, bool binding) {
    anycast::Message m{
        .flags = 0,
        .body = anycast::Probe{.flags = binding ? anycast::kProbeFlagBinding : std::uint16_t{0},
                               .nonce = nonce}};
    const auto error = udp->send(anycast::Outgoing{
        .source = source, .destination = {to, config.port}, .bytes = anycast::encode(m)});
    if (error) ++stats.send_errors;
    return !error;
  }

  bool send_echo(const core::Ipv6Address& to, const anycast::Nonce128& nonce) {
    std::array<std::byte, core::kIcmpHeaderLength + kNonceSize> buffer{};
    core::ByteWriter out{buffer};
    // The kernel computes the ICMPv6 checksum on raw ICMPv6 sockets (RFC 3542 section 3.1).
    if (!core::write_icmpv6_echo(out, core::EchoKind::request,
                                 core::IcmpEcho{.id = echo_id,
                                                .sequence = echo_sequence++,
                                                .data = std::as_bytes(std::span{nonce})},
                                 source, to)) {
      ++stats.send_errors;
      return false;
    }
    boost::system::error_code ec;
    icmp->send_to(asio::buffer(out.written().data(), out.size()),
                  asio::ip::icmp::endpoint{asio::ip::address_v6{to.bytes()}, 0}, 0, ec);
    if (ec) ++stats.send_errors;
    return !ec;
  }

  void perform(Actions& actions) {
    for (auto& action : actions) {
      std::visit(core::Overloaded{
                     [&](const SendProbe& p) {
                       if (config.methods.udp && send_probe(p.anycast, p.nonce, secure()))
                         ++stats.probes_sent;
                       if (icmp && send_echo(p.anycast, p.nonce)) ++stats.icmp_probes_sent;
                     },
                     [&](const SendLiveness& l) {
                       if (l.learned_by == LearnedBy::EchoReply && icmp)
                         send_echo(l.unicast, l.nonce);
                       else
                         send_probe(l.unicast, l.nonce, /*binding=*/false);
                     },
                     [&](const WakeWaiters& w) {
                       for (const auto id : w.waiters)
                         if (const auto it = waiting.find(id); it != waiting.end())
                           it->second->cancel();
                     },
                 },
                 action);
    }
    actions.clear();
    rearm();
  }

  // Wakes the timer loop when the cache now wants to run earlier than the timer waits.
  void rearm() {
    const auto next = cache.next_wakeup();
    if (next && (!tick_at || *next < *tick_at)) tick_timer.cancel();
  }

  asio::awaitable<void> timer_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    while (!stopped) {
      tick_at = cache.next_wakeup();
      tick_timer.expires_at(tick_at.value_or(Time::max()));
      co_await tick_timer.async_wait(kNoThrow);
      if (stopped) co_return;
      tick_at.reset();
      Actions actions;
      cache.poll(now(), actions);
      perform(actions);
    }
  }

  asio::awaitable<void> housekeeping_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    while (!stopped) {
      housekeeping_timer.expires_after(kHousekeeping);
      auto [ec] = co_await housekeeping_timer.async_wait(kNoThrow);
      if (ec || stopped) co_return;
      correspondent.expire(now());
    }
  }

  // ---- ARR/UDP ----

  asio::awaitable<void> udp_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    std::vector<std::byte> buffer(anycast::kMaxDatagram);
    while (!stopped) {
      auto received = co_await udp->receive(buffer);
      if (stopped) co_return;
      if (!received) {
        if (received.error() == asio::error::operation_aborted) co_return;
        log.warn_limited("udp-receive", "ARR/UDP receive failed: {}", received.error().message());
        continue;
      }
      if (received->truncated) {
        drop(Errc::BadLength);  // larger than any ARR/UDP datagram
        continue;
      }
      on_datagram(*received, std::span<const std::byte>{buffer}.first(received->size));
    }
  }

  void on_datagram(const anycast::net::DatagramSocket::Received& r,
                   std::span<const std::byte> bytes) {
    auto parsed = anycast::parse(bytes);
    if (!parsed) {
      drop(parsed.error());
      return;
    }
    const auto t = now();
    Actions actions;
    std::visit(core::Overloaded{
                   [&](const anycast::ProbeAnswer& a) {
                     if (auto taken = cache.on_probe_answer(t, a, r.from.address, actions); !taken)
                       drop(taken.error());
                     else if (*taken == Taken::Bound)
                       log.debug("{} bound to {} (probe answer)", a.anycast.to_string(),
                                 a.unicast.to_string());
                   },
                   [&](const anycast::Hoti& hoti) {
                     if (!secure() || !cache.expects_hoti(r.from.address))
                       return drop(Errc::Unsolicited);
                     send(correspondent.on_hoti(t, hoti, r.from, r.to));
                     ++stats.hoti_answered;
                   },
                   [&](const anycast::Coti& coti) {
                     if (!secure() || !cache.expects_coti()) return drop(Errc::Unsolicited);
                     send(correspondent.on_coti(t, coti, r.from, r.to));
                     ++stats.coti_answered;
                   },
                   [&](const anycast::BindingUpdate& bu) {
                     if (!secure()) return drop(Errc::Unsolicited);
                     on_binding_update(t, parsed->message.flags, bu, parsed->authenticated, r,
                                       actions);
                   },
                   // What a resolver sends, never receives.
                   [&](const auto&) { drop(Errc::UnknownKind); },
               },
               parsed->message.body);
    perform(actions);
  }

  void on_binding_update(Time t, std::uint8_t shim_flags, const anycast::BindingUpdate& bu,
                         std::span<const std::byte> authenticated,
                         const anycast::net::DatagramSocket::Received& r, Actions& actions) {
    auto outcome = correspondent.on_binding_update(t, shim_flags, bu, authenticated, r.from, r.to);
    if (!outcome) return drop(outcome.error());
    if (outcome->binding) {
      // A BA is sent only for a binding taken: an accepting BA for one refused would mislead.
      if (auto ok = cache.on_verified_binding(t, *outcome->binding, actions); !ok)
        return drop(ok.error());
      log.debug("{} bound to {} (verified, sequence {})", outcome->binding->anycast.to_string(),
                outcome->binding->unicast.to_string(), outcome->binding->sequence);
    } else if (outcome->rejected) {
      drop(outcome->rejected);
    }
    if (outcome->ack) send(*outcome->ack);
  }

  // ---- ICMPv6 echo ----

  asio::awaitable<void> icmp_loop([[maybe_unused]] std::shared_ptr<Impl> self) {
    std::array<std::byte, 1280> buffer{};
    asio::ip::icmp::endpoint from;
    while (!stopped) {
      auto [ec, n] = co_await icmp->async_receive_from(asio::buffer(buffer), from, kNoThrow);
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        log.warn_limited("icmp-receive", "ICMPv6 receive failed: {}", ec.message());
        continue;
      }
      const auto message = core::parse_icmpv6(std::span<const std::byte>{buffer}.first(n));
      // A raw socket sees every echo reply of the host: other programs' pings are not ours.
      if (!message || message->type != core::icmpv6_type::kEchoReply || message->code != 0 ||
          message->echo_id() != echo_id || !from.address().is_v6())
        continue;
      if (message->body.size() < kNonceSize) {
        drop(Errc::Truncated);
        continue;
      }
      anycast::Nonce128 nonce{};
      for (std::size_t i = 0; i < kNonceSize; ++i)
        nonce[i] = std::to_integer<std::uint8_t>(message->body[i]);
      const core::Ipv6Address source_address{from.address().to_v6().to_bytes()};
      Actions actions;
      if (auto taken = cache.on_echo_reply(now(), nonce, source_address, actions); !taken)
        drop(taken.error());
      perform(actions);
    }
  }

  // ---- the query socket ----

  asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
    while (!stopped) {
      auto [ec, socket] = co_await acceptor->async_accept(kNoThrow);
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        log.warn_limited("accept", "query socket accept failed: {}", ec.message());
        accept_retry.expires_after(kAcceptRetry);
        co_await accept_retry.async_wait(kNoThrow);
        continue;
      }
      if (connections.size() >= kMaxConnections) {
        drop(Errc::TableFull);
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      boost::system::error_code ignored;
      socket.non_blocking(true, ignored);  // answers are written without waiting
      auto conn = std::make_shared<Connection>(std::move(socket), io);
      connections.push_back(conn);
      asio::co_spawn(io, serve(self, conn), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Impl> self, std::shared_ptr<Connection> conn) {
    using namespace asio::experimental::awaitable_operators;
    // One byte more than a request, so that a longer message shows as such.
    std::array<std::uint8_t, anycast::query::kRequestSize + 1> buffer{};
    while (!stopped && !conn->broken) {
      conn->timer.expires_after(kConnectionIdle);
      asio::socket_base::message_flags flags{};
      auto r = co_await (conn->socket.async_receive(asio::buffer(buffer), flags, kNoThrow) ||
                         conn->timer.async_wait(kNoThrow));
      if (stopped || r.index() == 1) break;  // stopping, or idle too long
      const auto [ec, n] = std::get<0>(r);
      if (ec || n == 0) break;  // closed by the peer
      co_await handle_request(self, conn, std::span<const std::uint8_t>{buffer}.first(n));
    }
    boost::system::error_code ignored;
    conn->socket.close(ignored);
    connections.remove(conn);
  }

  // Answers one request; a Resolve that may wait waits here, so answers keep the order of the
  // requests on the connection (the answer does not name the address).
  asio::awaitable<void> handle_request([[maybe_unused]] std::shared_ptr<Impl> self,
                                       std::shared_ptr<Connection> conn,
                                       std::span<const std::uint8_t> bytes) {
    namespace q = anycast::query;
    const auto request = q::parse_request(bytes);
    if (!request) {
      drop(query_error(bytes));
      answer(*conn, q::Answer{.status = q::Status::Refused, .ttl_ms = 0, .unicast = {}});
      co_return;
    }
    const core::Ipv6Address address{request->address};
    Actions actions;
    if (request->op == q::Op::Failed) {
      if (auto ok = cache.failed(now(), address, core::Ipv6Address{request->unicast}, actions); !ok)
        drop(ok.error());
      else
        log.info_limited("failed-report", "{}: a connection to {} failed, resolving again",
                         address.to_string(), core::Ipv6Address{request->unicast}.to_string());
      perform(actions);
      co_return;
    }
    ++stats.queries;
    const auto decision = cache.query(now(), address, actions);
    perform(actions);
    if (decision.dropped) drop(*decision.dropped);
    auto reply = decision.answer;
    if (decision.resolving && (request->flags & q::kFlagMayWait) != 0) {
      const auto budget = cache.wait_budget(request->wait_ms);
      if (budget > 0ms) {
        if (const auto id = cache.add_waiter(address)) {
          conn->timer.expires_after(budget);
          waiting.emplace(*id, &conn->timer);
          co_await conn->timer.async_wait(kNoThrow);
          waiting.erase(*id);
          cache.remove_waiter(*id);
          if (stopped) co_return;
          reply = cache.settle(now(), address);
        } else {
          drop(Errc::TableFull);  // max_waiters queries wait already
        }
      }
    }
    if (reply.status == q::Status::Pending) ++stats.pending_answers;
    answer(*conn, reply);
  }

  void answer(Connection& conn, const anycast::query::Answer& a) {
    const auto bytes = anycast::query::encode(a);
    boost::system::error_code ec;
    conn.socket.send(asio::buffer(bytes), 0, ec);
    // A peer that does not read its answers (its buffer is full) is not waited for.
    if (ec) conn.broken = true;
  }

  // ---- the control socket ----

  json::object counters_json() const {
    json::object o;
    for (const auto& n : counter_table()) o[n.name] = *n.value;
    return o;
  }

  json::object drops_json() const {
    json::object o;
    for (std::size_t i = 1; i < kErrcCount; ++i)
      o[anycast::to_string(static_cast<Errc>(i))] = drops[i];
    return o;
  }

  json::object status() const {
    json::object o;
    o["version"] = options.version;
    o["pid"] = ::getpid();
    o["policy"] = to_string(config.policy);
    json::array methods;
    if (config.methods.udp) methods.emplace_back("udp");
    if (config.methods.icmp) methods.emplace_back("icmp");
    o["methods"] = std::move(methods);
    json::array prefixes;
    for (const auto& p : config.prefixes) prefixes.emplace_back(p.to_string());
    o["prefixes"] = std::move(prefixes);
    o["probe_all"] = config.probe_all;
    o["entries"] = cache.size();
    o["resolving"] = cache.resolving();
    o["waiters"] = cache.waiters();
    o["connections"] = connections.size();
    o["port"] = udp ? udp->local_port() : 0;
    o["member_port"] = config.port;
    o["query_socket"] = config.socket;
    o["counters"] = counters_json();
    o["drops"] = drops_json();
    return o;
  }

  platform::Response list_cache() const {
    const auto t = now();
    json::array entries;
    cache.for_each([&](const EntryView& v) {
      if (entries.size() < kMaxListedEntries) entries.emplace_back(entry_json(v, t));
    });
    json::object o;
    o["total"] = cache.size();
    o["entries"] = std::move(entries);
    return platform::Response::json(std::move(o));
  }

  platform::Router router() {
    platform::Router r;
    std::weak_ptr<Impl> weak = shared_from_this();
    auto with = [weak](auto fn) {
      return [weak, fn](const platform::Request& req) -> platform::Response {
        auto self = weak.lock();
        if (!self || self->stopped) return platform::Response::error(503, "stopping");
        return fn(*self, req);
      };
    };
    r.get("/status", with([](Impl& s, const platform::Request&) {
            return platform::Response::json(s.status());
          }));
    r.get("/cache", with([](Impl& s, const platform::Request&) { return s.list_cache(); }));
    r.get("/cache/{anycast}", with([](Impl& s, const platform::Request& req) {
            const auto a = core::Ipv6Address::parse(*req.param("anycast"));
            if (!a) return platform::Response::error(400, "not an IPv6 address");
            const auto v = s.cache.find(*a);
            if (!v) return platform::Response::error(404, "no entry for that address");
            return platform::Response::json(entry_json(*v, now()));
          }));
    r.post("/cache/flush", with([](Impl& s, const platform::Request&) {
             Actions actions;
             const auto n = s.cache.flush(actions);
             s.perform(actions);
             s.log.info("cache flushed by the operator ({} entries)", n);
             return platform::Response::json(json::object{{"flushed", n}});
           }));
    return r;
  }

  std::optional<std::string> start_control() {
    std::error_code dir_error;
    std::filesystem::create_directories(std::filesystem::path{config.control_socket}.parent_path(),
                                        dir_error);
    control = std::make_unique<platform::ControlServer>(
        io, router(),
        platform::ControlServerOptions{
            .path = config.control_socket, .mode = 0660, .limits = {}, .counters = &counters});
    if (auto ok = control->start(); !ok)
      return fmt::format("control socket {}: {}", config.control_socket, ok.error().message());
    return std::nullopt;
  }

  void stop() noexcept {
    if (stopped) return;
    stopped = true;
    boost::system::error_code ignored;
    tick_timer.cancel();
    housekeeping_timer.cancel();
    accept_retry.cancel();
    if (udp) udp->close();
    if (icmp) icmp->close(ignored);
    if (acceptor) acceptor->close(ignored);
    unlink_socket_file();
    for (const auto& c : connections) {
      c->timer.cancel();
      c->socket.close(ignored);
    }
    if (control) control->stop();
    log.info("stopped");
  }
};

Service::Service(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}

Service::~Service() {
  stop();
}

boost::system::result<std::unique_ptr<Service>, std::string> Service::start(
    asio::io_context& io, Config config, ServiceOptions options) {
  auto impl = std::make_shared<Impl>(io, std::move(config), std::move(options));
  if (auto error = impl->open_sockets()) {
    impl->stop();
    return *error;
  }
  impl->register_metrics();
  if (auto error = impl->start_control()) {
    impl->stop();
    return *error;
  }
  asio::co_spawn(io, impl->udp_loop(impl), asio::detached);
  if (impl->icmp) asio::co_spawn(io, impl->icmp_loop(impl), asio::detached);
  asio::co_spawn(io, impl->accept_loop(impl), asio::detached);
  asio::co_spawn(io, impl->timer_loop(impl), asio::detached);
  asio::co_spawn(io, impl->housekeeping_loop(impl), asio::detached);

  const auto& c = impl->config;
  std::string prefixes;
  for (const auto& p : c.prefixes) prefixes += (prefixes.empty() ? "" : ", ") + p.to_string();
  impl->log.info("resolving {}{} (policy {}, {}{}), probing from [{}]:{} to port {}",
                 c.probe_all ? "every global destination" : "",
                 c.probe_all ? "" : (prefixes.empty() ? "nothing (no prefixes)" : prefixes),
                 to_string(c.policy), c.methods.udp ? "ARR/UDP" : "",
                 c.methods.icmp ? (c.methods.udp ? " and ICMPv6 echo" : "ICMPv6 echo") : "",
                 impl->source.to_string(), impl->udp->local_port(), c.port);
  impl->log.info("query socket {}, control socket {}", c.socket, c.control_socket);
  if (impl->options.ready_fd) platform::notify_ready(*impl->options.ready_fd);
  return std::unique_ptr<Service>{new Service{std::move(impl)}};
}

void Service::stop() noexcept {
  impl_->stop();
}

std::uint16_t Service::port() const noexcept {
  return impl_->udp ? impl_->udp->local_port() : 0;
}

}  // namespace anycast_resolver
