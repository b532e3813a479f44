// dstm_load: load generator for a running dstm-server over TSP (creates or TEP queries), with
// rate, latency percentiles and errors by kind (bench/README.md).
#include <signal.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/address.hpp"
#include "platform/fd.hpp"
#include "platform/signals.hpp"
#include "tsp_net/client.hpp"

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kUsage = R"(usage: dstm_load --server ADDR [options]
Load generator for a running dstm-server: N concurrent TSP clients doing creates (create, accept,
close) or TEP queries, then a summary (rate, p50/p99 latency, errors by kind).

  --server ADDR          server address, numeric IPv4 or IPv6 (required)
  --port N               TSP port (default 3653)
  --transport tcp|udp    (default tcp)
  --mode M               create | query | pipelined-query (default create)
                           create           each client: create + accept, close, repeat
                           query            each client: one query session, one query at a time
                           pipelined-query  each client: one query session, --depth in flight
  --clients N            concurrent clients (default 1)
  --count N              total operations (default 1000), or
  --duration S           run for S seconds (fractions allowed), then finish in-flight operations
  --auth A               anonymous | plain | digest (default anonymous)
  --user U, --password P credentials for plain and digest
  --ipv4-range PREFIX    queries: the addresses asked, cycled (e.g. 198.51.100.0/24; required)
  --depth N              pipelined-query: queries in flight per session (default 64)
  --source-prefix P      creates: bind client i to P + i + 1 (an IPv6 prefix made local, below)
  --new-source-per-create  with --source-prefix: a fresh source (a new lease) for every create
  --lifetime S           creates: requested lifetime in seconds (default: the server's)
  --timeout-ms N         reply deadline (TCP) / initial retransmission timeout (UDP) (default 10000)
  --json                 also print the summary as one JSON line (last line of output)

Creates and source addresses. The server requires a v4v6 create to come from its client IPv6 and
keeps one sticky lease per (client IPv6, user). Over loopback every client would be ::1 and renew
one and the same lease; the server also limits new sessions per source address (limits in the
server config). Give each client its own address from a prefix made local on lo:

  ip -6 route add local 2001:db8:100::/64 dev lo
  dstm_load --server ::1 --mode create --clients 16 --source-prefix 2001:db8:100::/64

(a "local" route makes every address of the prefix local without adding each one; the tool binds
with IP_FREEBIND). Remove it with: ip -6 route del local 2001:db8:100::/64 dev lo.
Creates go over IPv6 (--server ::1): over IPv4 the server cannot check the client IPv6 and
refuses the create (502). Queries must authenticate as a TEP user of the server (--auth
plain|digest --user U; anonymous queries get 300).

Exit status: 0 if at least one operation succeeded, 1 if none did, 64 for a usage error.
)";

enum class Mode { Create, Query, PipelinedQuery };

struct Options {
  std::string server;
  std::uint16_t port = tsp_net::kTspPort;
  tsp::Transport transport = tsp::Transport::Tcp;
  Mode mode = Mode::Create;
  std::uint64_t clients = 1;
  std::optional<std::uint64_t> count;
  std::optional<double> duration;
  tsp::Mechanism auth = tsp::Mechanism::Anonymous;
  std::string user;
  std::string password;
  std::optional<core::Ipv4Prefix> ipv4_range;
  std::uint64_t depth = 64;
  std::optional<core::Ipv6Prefix> source_prefix;
  bool new_source_per_create = false;
  std::optional<std::uint32_t> lifetime;
  std::chrono::milliseconds timeout{10'000};
  bool json = false;
};

[[noreturn]] void usage_error(std::string_view message) {
  fmt::print(stderr, "dstm_load: {}\n(dstm_load --help for the options)\n", message);
  std::exit(64);
}

template <typename T>
T number(std::string_view option, std::string_view text, T min, T max) {
  T v{};
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || v < min || v > max)
    usage_error(fmt::format("{}: expected a number from {} to {}", option, min, max));
  return v;
}

std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::Create:
      return "create";
    case Mode::Query:
      return "query";
    case Mode::PipelinedQuery:
      return "pipelined-query";
  }
  return "?";
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage_error(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", kUsage);
      std::exit(0);
    } else if (arg == "--server") {
      o.server = value();
    } else if (arg == "--port") {
      o.port = number<std::uint16_t>(arg, value(), 1, 65535);
    } else if (arg == "--transport") {
      const auto v = value();
      if (v == "tcp")
        o.transport = tsp::Transport::Tcp;
      else if (v == "udp")
        o.transport = tsp::Transport::Udp;
      else
        usage_error("--transport: expected tcp or udp");
    } else if (arg == "--mode") {
      const auto v = value();
      if (v == "create")
        o.mode = Mode::Create;
      else if (v == "query")
        o.mode = Mode::Query;
      else if (v == "pipelined-query")
        o.mode = Mode::PipelinedQuery;
      else
        usage_error("--mode: expected create, query or pipelined-query");
    } else if (arg == "--clients") {
      o.clients = number<std::uint64_t>(arg, value(), 1, 100'000);
    } else if (arg == "--count") {
      o.count = number<std::uint64_t>(arg, value(), 1, 1'000'000'000);
    } else if (arg == "--duration") {
      const auto v = std::string{value()};
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (end != v.c_str() + v.size() || !(d > 0) || d > 86400)
        usage_error("--duration: expected seconds, more than 0 and at most 86400");
      o.duration = d;
    } else if (arg == "--auth") {
      const auto v = value();
      if (v == "anonymous")
        o.auth = tsp::Mechanism::Anonymous;
      else if (v == "plain")
        o.auth = tsp::Mechanism::Plain;
      else if (v == "digest")
        o.auth = tsp::Mechanism::DigestMd5;
      else
        usage_error("--auth: expected anonymous, plain or digest");
    } else if (arg == "--user") {
      o.user = value();
    } else if (arg == "--password") {
      o.password = value();
    } else if (arg == "--ipv4-range") {
      auto p = core::Ipv4Prefix::parse(value());
      if (!p) usage_error("--ipv4-range: expected an IPv4 prefix such as 198.51.100.0/24");
      o.ipv4_range = *p;
    } else if (arg == "--depth") {
      o.depth = number<std::uint64_t>(arg, value(), 1, 10'000);
    } else if (arg == "--source-prefix") {
      auto p = core::Ipv6Prefix::parse(value());
      if (!p) usage_error("--source-prefix: expected an IPv6 prefix such as 2001:db8:100::/64");
      o.source_prefix = *p;
    } else if (arg == "--new-source-per-create") {
      o.new_source_per_create = true;
    } else if (arg == "--lifetime") {
      o.lifetime = number<std::uint32_t>(arg, value(), 1, 0x7fffffff);
    } else if (arg == "--timeout-ms") {
      o.timeout = std::chrono::milliseconds{number<std::uint32_t>(arg, value(), 1, 3'600'000)};
    } else if (arg == "--json") {
      o.json = true;
    } else {
      usage_error(fmt::format("unknown option {}", arg));
    }
  }

  // Cross-option rules, all before any socket.
  if (o.server.empty()) usage_error("--server is required");
  const bool v6_server = o.server.find(':') != std::string::npos;
  if (v6_server ? !core::Ipv6Address::parse(o.server) : !core::Ipv4Address::parse(o.server))
    usage_error("--server: expected a numeric IPv4 or IPv6 address");
  if (o.count && o.duration) usage_error("--count and --duration exclude each other");
  if (!o.count && !o.duration) o.count = 1000;
  if (o.auth != tsp::Mechanism::Anonymous && o.user.empty())
    usage_error("--auth plain|digest needs --user (and --password)");
  if (o.mode == Mode::Create) {
    if (o.ipv4_range) usage_error("--ipv4-range is for the query modes");
    if (o.new_source_per_create && !o.source_prefix)
      usage_error("--new-source-per-create needs --source-prefix");
    if (o.source_prefix) {
      if (!v6_server) usage_error("--source-prefix needs an IPv6 --server");
      // Every source used must lie inside the prefix.
      const auto needed = o.new_source_per_create ? o.count.value_or(0) : o.clients;
      const unsigned host_bits = 128 - o.source_prefix->length();
      if (o.new_source_per_create && !o.count)
        usage_error("--new-source-per-create needs --count (one source per create)");
      if (host_bits < 64 && needed + 1 >= (std::uint64_t{1} << host_bits))
        usage_error("--source-prefix is too small for the sources needed");
    }
  } else {
    if (!o.ipv4_range) usage_error("the query modes need --ipv4-range");
    if (o.source_prefix) usage_error("--source-prefix is for --mode create");
  }
  if (o.mode != Mode::PipelinedQuery) o.depth = 1;
  return o;
}

// The n-th address of the prefix (n counted from the network address; n fits the host bits).
core::Ipv6Address nth_address(const core::Ipv6Prefix& p, std::uint64_t n) {
  auto bytes = p.network().bytes();
  std::uint64_t carry = n;
  for (std::size_t i = 16; i-- > 0 && carry != 0;) {
    const std::uint64_t sum = std::uint64_t{bytes[i]} + (carry & 0xff);
    bytes[i] = static_cast<std::uint8_t>(sum & 0xff);
    carry = (carry >> 8) + (sum >> 8);
  }
  return core::Ipv6Address{bytes};
}

// Results of every operation, on the io_context thread.
struct Stats {
  std::uint64_t ok = 0;
  std::vector<double> latencies_ms;  // successful operations
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t found = 0;       // queries: 200 with a mapping
  std::uint64_t not_leased = 0;  // queries: 501

  void record_ok(Clock::duration took) {
    ++ok;
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(took).count());
  }
  void record_error(const tsp_net::Error& error, std::string_view prefix = {}) {
    std::string kind{prefix};
    if (error.status)
      kind += fmt::format("status {}", error.status->code);
    else
      kind += fmt::format("{}: {}", error.code.category().name(), error.code.message());
    ++errors[kind];
  }
  template <typename T>
  void record(Clock::duration took, const tsp_net::Result<T>& r) {
    if (r)
      record_ok(took);
    else
      record_error(r.error());
  }
  std::uint64_t failed() const {
    std::uint64_t n = 0;
    for (const auto& [kind, count] : errors) n += count;
    return n;
  }
};

class Load {
 public:
  explicit Load(Options o) : o_{std::move(o)} {}

  asio::awaitable<void> run() {
    const auto ex = co_await asio::this_coro::executor;
    start_ = Clock::now();
    if (o_.duration)
      end_ = start_ + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(*o_.duration));
    auto remaining = std::make_shared<std::uint64_t>(o_.clients);
    auto all_done = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
    for (std::uint64_t i = 0; i < o_.clients; ++i) {
      asio::co_spawn(
          ex,
          [this, i, remaining, all_done]() -> asio::awaitable<void> {
            if (o_.mode == Mode::Create)
              co_await create_client(i);
            else
              co_await query_client();
            if (--*remaining == 0) all_done->cancel();
          },
          asio::detached);
    }
    if (*remaining > 0) co_await all_done->async_wait(asio::as_tuple(asio::use_awaitable));
    stop_ = Clock::now();
  }

  void stop() noexcept { stopping_ = true; }
  const Stats& stats() const noexcept { return stats_; }
  double seconds() const { return std::chrono::duration<double>(stop_ - start_).count(); }
  const Options& options() const noexcept { return o_; }

 private:
  // A ticket per operation: false once the count is reached, the time is up, or on Ctrl-C.
  std::optional<std::uint64_t> ticket() {
    if (stopping_) return std::nullopt;
    if (o_.count && issued_ >= *o_.count) return std::nullopt;
    if (end_ && Clock::now() >= *end_) return std::nullopt;
    return issued_++;
  }

  tsp::ClientConfig base_config() const {
    tsp::ClientConfig c;
    c.transport = o_.transport;
    c.mechanisms = {o_.auth};
    c.username = o_.user;
    c.password = o_.password;
    c.server_name = o_.server;
    c.deadlines.reply = o_.timeout;
    c.deadlines.rto_initial = o_.timeout;
    return c;
  }

  tsp_net::Target target() const {
    return tsp_net::Target{.address = o_.server,
                           .port = o_.port,
                           .transport = o_.transport,
                           .source_address = {},
                           .freebind = false};
  }

  asio::awaitable<void> create_client(std::uint64_t index) {
    for (;;) {
      const auto op = ticket();
      if (!op) co_return;
      auto t = target();
      auto config = base_config();
      config.request =
          tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6, o_.lifetime);
      // An empty <client> lets the server take the source address; with a source prefix the
      // request names it, as gogoc names its own address.
      config.request->client = tsp::Endpoint{};
      if (o_.source_prefix) {
        const auto source =
            nth_address(*o_.source_prefix, (o_.new_source_per_create ? *op : index) + 1);
        t.source_address = source.to_string();
        t.freebind = true;
        config.request->client->addresses.push_back(tsp::Address{source, std::nullopt});
      }
      const auto t0 = Clock::now();
      const auto r = co_await tsp_net::create_tunnel(std::move(t), std::move(config));
      stats_.record(Clock::now() - t0, r);
    }
  }

  core::Ipv4Address next_query_address() {
    const auto& p = *o_.ipv4_range;
    const auto n = static_cast<std::uint32_t>(queried_++ % p.size());
    return core::Ipv4Address{p.network().to_uint() + n};
  }

  // One query session with `depth` lanes; a new session when it failed and work remains.
  asio::awaitable<void> query_client() {
    const auto ex = co_await asio::this_coro::executor;
    for (;;) {
      if (stopping_ || (o_.count && issued_ >= *o_.count) || (end_ && Clock::now() >= *end_))
        co_return;
      auto config = base_config();
      config.max_in_flight = std::min<std::uint64_t>(o_.depth, 64);
      auto opened = co_await tsp_net::QuerySession::open(target(), config);
      if (!opened) {
        // Counts as one failed operation, so that an unreachable server ends a --count run.
        if (ticket()) stats_.record_error(opened.error(), "open: ");
        continue;
      }
      auto session = std::make_shared<tsp_net::QuerySession>(std::move(*opened));
      auto lanes = std::make_shared<std::uint64_t>(o_.depth);
      auto lanes_done = std::make_shared<asio::steady_timer>(ex, Clock::time_point::max());
      for (std::uint64_t l = 0; l < o_.depth; ++l) {
        asio::co_spawn(
            ex,
            [this, session, lanes, lanes_done]() -> asio::awaitable<void> {
              while (session->is_open() && ticket()) {
                const auto t1 = Clock::now();
                const auto r = co_await session->query(next_query_address());
                const auto took = Clock::now() - t1;
                if (!r) {
                  stats_.record_error(r.error());
                } else if (r->status.code == 200 || r->status.code == 501) {
                  stats_.record_ok(took);
                  ++(r->mapping ? stats_.found : stats_.not_leased);
                } else {
                  // Answered, but refused (e.g. 300: the user is not a TEP of the server).
                  stats_.record_error(tsp_net::Error{tsp::Errc::ErrorStatus, r->status});
                }
              }
              if (--*lanes == 0) lanes_done->cancel();
            },
            asio::detached);
      }
      if (*lanes > 0) co_await lanes_done->async_wait(asio::as_tuple(asio::use_awaitable));
      session->close();
    }
  }

  Options o_;
  Stats stats_;
  std::uint64_t issued_ = 0;
  std::uint64_t queried_ = 0;
  bool stopping_ = false;
  Clock::time_point start_{};
  Clock::time_point stop_{};
  std::optional<Clock::time_point> end_;
};

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  // Nearest rank.
  const auto rank =
      static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

void report(const Load& load) {
  const auto& o = load.options();
  const auto& s = load.stats();
  auto sorted = s.latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  const double secs = load.seconds();
  const double rate = secs > 0 ? static_cast<double>(s.ok) / secs : 0;
  const std::string_view unit = o.mode == Mode::Create ? "creates/s" : "queries/s";
  const auto p50 = percentile(sorted, 50);
  const auto p99 = percentile(sorted, 99);
  const auto max = sorted.empty() ? 0.0 : sorted.back();
  const bool v6 = o.server.find(':') != std::string::npos;

  fmt::print("dstm_load: mode {} over {} to {}{}{}:{}, {} client(s){}, auth {}\n",
             mode_name(o.mode), o.transport == tsp::Transport::Tcp ? "tcp" : "udp", v6 ? "[" : "",
             o.server, v6 ? "]" : "", o.port, o.clients,
             o.mode == Mode::PipelinedQuery ? fmt::format(" x depth {}", o.depth) : "",
             tsp::mechanism_name(o.auth));
  fmt::print("  operations: {} ok, {} failed in {:.3f} s\n", s.ok, s.failed(), secs);
  fmt::print("  rate:       {:.1f} {} (successful)\n", rate, unit);
  if (o.mode != Mode::Create)
    fmt::print("  answers:    {} found, {} not leased (501)\n", s.found, s.not_leased);
  fmt::print("  latency ms: p50 {:.3f}  p90 {:.3f}  p99 {:.3f}  max {:.3f}\n", p50,
             percentile(sorted, 90), p99, max);
  if (!s.errors.empty()) {
    fmt::print("  errors:\n");
    for (const auto& [kind, count] : s.errors) fmt::print("    {:>8}  {}\n", count, kind);
  }
  if (o.json) {
    boost::json::object errors;
    for (const auto& [kind, count] : s.errors) errors[kind] = count;
    boost::json::object j{
        {"tool", "dstm_load"},
        {"mode", mode_name(o.mode)},
        {"transport", o.transport == tsp::Transport::Tcp ? "tcp" : "udp"},
        {"server", o.server},
        {"port", o.port},
        {"clients", o.clients},
        {"depth", o.depth},
        {"auth", tsp::mechanism_name(o.auth)},
        {"ok", s.ok},
        {"failed", s.failed()},
        {"seconds", secs},
        {"rate", rate},
        {"rate_unit", unit},
        {"p50_ms", p50},
        {"p99_ms", p99},
        {"max_ms", max},
        {"found", s.found},
        {"not_leased", s.not_leased},
        {"errors", std::move(errors)},
    };
    fmt::print("{}\n", boost::json::serialize(j));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Load load{parse(argc, argv)};
  platform::raise_descriptor_limit();
  asio::io_context io{1};
  // Ctrl-C: stop issuing, let in-flight operations finish, report.
  auto watch = platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] { load.stop(); });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await load.run();
        watch.cancel();
      },
      asio::detached);
  io.run();
  report(load);
  return load.stats().ok > 0 ? 0 : 1;
}
