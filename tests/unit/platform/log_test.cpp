// Tests for the logging facade: line format, levels, sinks, rate limiting with an injected clock.
#include "platform/log.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using platform::LogLevel;
using TimePoint = std::chrono::system_clock::time_point;

struct Captured {
  LogLevel level;
  std::string component;
  std::string message;
  std::string line;
};

class CaptureSink final : public platform::LogSink {
 public:
  void write(const platform::LogRecord& r) noexcept override {
    std::lock_guard lock{mutex_};
    records_.push_back(
        {r.level, std::string{r.component}, std::string{r.message}, platform::format_log_line(r)});
  }
  std::vector<Captured> records() const {
    std::lock_guard lock{mutex_};
    return records_;
  }
  std::vector<std::string> messages() const {
    std::vector<std::string> out;
    for (const auto& r : records()) out.push_back(r.message);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Captured> records_;
};

// 2024-05-01T12:34:56.789Z
constexpr auto kT0 = TimePoint{std::chrono::seconds{1714566896} + std::chrono::milliseconds{789}};

struct FakeClock {
  TimePoint now = kT0;
  platform::LogClock fn() {
    return [this] { return now; };
  }
};

// Filled field by field: GCC 12 warns about designated initializers that omit members.
platform::LoggerOptions options(std::shared_ptr<platform::LogSink> sink,
                                std::optional<LogLevel> level = std::nullopt,
                                platform::LogClock clock = {}, platform::RateLimit rate = {}) {
  platform::LoggerOptions o;
  o.sink = std::move(sink);
  o.level = level;
  o.clock = std::move(clock);
  o.rate_limit = rate;
  return o;
}

// A type whose formatting is observable, to prove disabled and suppressed messages cost nothing.
struct Counted {
  int* formats;
};

}  // namespace

template <>
struct fmt::formatter<Counted> : fmt::formatter<int> {
  auto format(const Counted& c, fmt::format_context& ctx) const {
    ++*c.formats;
    return fmt::formatter<int>::format(*c.formats, ctx);
  }
};

TEST_CASE("log: a line is UTC time with milliseconds, level, component tag, message",
          "[platform]") {
  platform::LogRecord r{kT0, LogLevel::Warn, "tep", "queue full, dropping"};
  CHECK(platform::format_log_line(r) ==
        "2024-05-01T12:34:56.789Z WARN  [tep] queue full, dropping");
  r.level = LogLevel::Error;
  r.time = TimePoint{};
  CHECK(platform::format_log_line(r) ==
        "1970-01-01T00:00:00.000Z ERROR [tep] queue full, dropping");
}

TEST_CASE("log: control characters are escaped so a record stays one line", "[platform]") {
  const platform::LogRecord r{kT0, LogLevel::Info, "web", "user said \"hi\"\nFAKE ERROR\r\t\x01"};
  CHECK(platform::format_log_line(r) ==
        "2024-05-01T12:34:56.789Z INFO  [web] user said \"hi\"\\nFAKE ERROR\\r\\t\\x01");
}

TEST_CASE("log: fmt-style arguments are formatted and tagged with the component", "[platform]") {
  auto sink = std::make_shared<CaptureSink>();
  FakeClock clock;
  platform::Logger log{"dstm-server", options(sink, LogLevel::Debug, clock.fn())};
  log.info("lease {} for {}s", "192.0.2.7", 3600);
  log.debug("{:>4}|{:x}", 7, 255);
  log.warn("plain");
  log.error("{}", std::string_view{"e"});

  const auto records = sink->records();
  REQUIRE(records.size() == 4);
  CHECK(records[0].message == "lease 192.0.2.7 for 3600s");
  CHECK(records[0].level == LogLevel::Info);
  CHECK(records[0].component == "dstm-server");
  CHECK(records[0].line ==
        "2024-05-01T12:34:56.789Z INFO  [dstm-server] lease 192.0.2.7 for 3600s");
  CHECK(records[1].message == "   7|ff");
  CHECK(records[1].level == LogLevel::Debug);
  CHECK(records[2].level == LogLevel::Warn);
  CHECK(records[3].level == LogLevel::Error);
}

TEST_CASE("log: messages below the level are dropped without formatting", "[platform]") {
  auto sink = std::make_shared<CaptureSink>();
  platform::Logger log{"tep", options(sink, LogLevel::Warn)};
  int formats = 0;
  log.debug("{}", Counted{&formats});
  log.info("{}", Counted{&formats});
  log.warn("{}", Counted{&formats});
  CHECK(formats == 1);
  CHECK(sink->messages() == std::vector<std::string>{"1"});
  CHECK_FALSE(log.enabled(LogLevel::Info));
  CHECK(log.enabled(LogLevel::Error));
}

TEST_CASE("log: the default sink and level apply to loggers without their own", "[platform]") {
  auto sink = std::make_shared<CaptureSink>();
  platform::Logger log{"anytun"};  // created before the defaults change: read at each write
  platform::set_default_log_sink(sink);
  platform::set_default_log_level(LogLevel::Debug);
  log.debug("one");
  platform::set_default_log_level(LogLevel::Error);
  log.warn("two");
  log.error("three");
  platform::set_default_log_sink(nullptr);
  platform::set_default_log_level(LogLevel::Info);
  CHECK(sink->messages() == std::vector<std::string>{"one", "three"});
  CHECK(platform::default_log_sink() == platform::stderr_sink());
}

TEST_CASE("log: level names round-trip", "[platform]") {
  for (auto level : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    INFO(platform::to_string(level));
    CHECK(platform::parse_log_level(platform::to_string(level)) == level);
  }
  CHECK_FALSE(platform::parse_log_level("WARN").has_value());
  CHECK_FALSE(platform::parse_log_level("").has_value());
}

TEST_CASE("log: rate-limited messages stop after the burst and report the suppressed count",
          "[platform]") {
  auto sink = std::make_shared<CaptureSink>();
  FakeClock clock;
  platform::Logger log{"tep", options(sink, std::nullopt, clock.fn(), {3, 10s})};
  int formats = 0;
  for (int i = 0; i < 10; ++i) log.warn_limited("tun-write", "write failed #{}", i);
  log.warn_limited("tun-write", "{}", Counted{&formats});  // suppressed: never formatted
  CHECK(formats == 0);
  CHECK(sink->messages() ==
        std::vector<std::string>{"write failed #0", "write failed #1", "write failed #2"});

  clock.now += 9999ms;  // same window
  log.warn_limited("tun-write", "still failing");
  CHECK(sink->records().size() == 3);

  clock.now += 1ms;  // the window has ended: resumes and says how many were dropped
  log.warn_limited("tun-write", "write failed again");
  log.warn_limited("tun-write", "and again");
  const auto messages = sink->messages();
  REQUIRE(messages.size() == 5);
  CHECK(messages[3] == "write failed again (9 similar messages suppressed)");
  CHECK(messages[4] == "and again");
}

TEST_CASE("log: rate limits are per key and respect the level", "[platform]") {
  auto sink = std::make_shared<CaptureSink>();
  FakeClock clock;
  platform::Logger log{"tep", options(sink, LogLevel::Warn, clock.fn(), {1, 1s})};
  log.error_limited("a", "a1");
  log.error_limited("a", "a2");
  log.error_limited("b", "b1");
  log.info_limited("c", "below level");
  log.log_limited(LogLevel::Warn, "c", "c1");
  CHECK(sink->messages() == std::vector<std::string>{"a1", "b1", "c1"});
}

TEST_CASE("rate limiter: a clock stepping backwards starts a new window", "[platform]") {
  platform::RateLimiter limiter{{1, 60s}};
  CHECK(limiter.check("k", kT0).allowed);
  CHECK_FALSE(limiter.check("k", kT0 + 1s).allowed);
  const auto d = limiter.check("k", kT0 - 1h);
  CHECK(d.allowed);
  CHECK(d.suppressed == 1);
}

TEST_CASE("rate limiter: distinct keys beyond the bound share one bucket", "[platform]") {
  platform::RateLimiter limiter{{1, 60s}, /*max_keys=*/2};
  CHECK(limiter.check("a", kT0).allowed);
  CHECK(limiter.check("b", kT0).allowed);
  // Full, nothing expired: new keys go to the overflow bucket, which allows one per window.
  CHECK(limiter.check("peer-198.51.100.1", kT0).allowed);
  CHECK_FALSE(limiter.check("peer-198.51.100.2", kT0).allowed);
  CHECK_FALSE(limiter.check("peer-198.51.100.3", kT0).allowed);
  // Existing keys keep their own windows.
  CHECK_FALSE(limiter.check("a", kT0).allowed);
  // Once windows expire, their slots are reused by new keys.
  CHECK(limiter.check("c", kT0 + 61s).allowed);
}

// --- LogRing -----------------------------------------------------------------------------------

namespace {

platform::LogRecord record(LogLevel level, std::string_view message, TimePoint time = kT0) {
  return platform::LogRecord{time, level, "tep", message};
}

std::vector<std::uint64_t> seqs(const std::vector<platform::LogLine>& lines) {
  std::vector<std::uint64_t> out;
  for (const auto& l : lines) out.push_back(l.seq);
  return out;
}

std::vector<std::string> texts(const std::vector<platform::LogLine>& lines) {
  std::vector<std::string> out;
  for (const auto& l : lines) out.push_back(l.message);
  return out;
}

}  // namespace

TEST_CASE("log: format_log_time is UTC with milliseconds", "[platform]") {
  CHECK(platform::format_log_time(kT0) == "2024-05-01T12:34:56.789Z");
  CHECK(platform::format_log_time(TimePoint{}) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("log ring: keeps the newest lines, numbered from 1, and pages them by seq",
          "[platform]") {
  platform::LogRing ring{3};
  CHECK(ring.next_seq() == 1);
  CHECK(ring.since(0, 10, LogLevel::Debug).empty());
  for (int i = 1; i <= 5; ++i) ring.push(record(LogLevel::Info, fmt::format("m{}", i)));
  CHECK(ring.next_seq() == 6);

  // Lines 1 and 2 fell out; seq is never reused.
  const auto all = ring.since(0, 10, LogLevel::Debug);
  CHECK(seqs(all) == std::vector<std::uint64_t>{3, 4, 5});
  CHECK(texts(all) == std::vector<std::string>{"m3", "m4", "m5"});
  CHECK(all[0].component == "tep");
  CHECK(all[0].level == LogLevel::Info);
  CHECK(all[0].time == kT0);

  CHECK(seqs(ring.since(4, 10, LogLevel::Debug)) == std::vector<std::uint64_t>{4, 5});
  CHECK(seqs(ring.since(3, 2, LogLevel::Debug)) == std::vector<std::uint64_t>{3, 4});
  CHECK(ring.since(6, 10, LogLevel::Debug).empty());
  CHECK(ring.since(1000, 10, LogLevel::Debug).empty());
  CHECK(ring.since(0, 0, LogLevel::Debug).empty());
}

TEST_CASE("log ring: the level filter, tail, and where the next page starts", "[platform]") {
  platform::LogRing ring{10};
  const LogLevel levels[] = {LogLevel::Debug, LogLevel::Warn, LogLevel::Info,
                             LogLevel::Error, LogLevel::Warn, LogLevel::Debug};
  for (auto level : levels) ring.push(record(level, platform::to_string(level)));

  CHECK(seqs(ring.since(0, 10, LogLevel::Warn)) == std::vector<std::uint64_t>{2, 4, 5});
  CHECK(seqs(ring.since(0, 10, LogLevel::Error)) == std::vector<std::uint64_t>{4});
  // tail: the newest matching lines, still oldest first.
  CHECK(seqs(ring.tail(2, LogLevel::Debug)) == std::vector<std::uint64_t>{5, 6});
  CHECK(seqs(ring.tail(2, LogLevel::Info)) == std::vector<std::uint64_t>{4, 5});
  CHECK(seqs(ring.tail(100, LogLevel::Warn)) == std::vector<std::uint64_t>{2, 4, 5});

  // A page cut by the limit continues after its last line; a complete one at the ring's end.
  auto page = ring.page(1, 2, LogLevel::Warn);
  CHECK(seqs(page.lines) == std::vector<std::uint64_t>{2, 4});
  CHECK(page.next == 5);
  page = ring.page(page.next, 2, LogLevel::Warn);
  CHECK(seqs(page.lines) == std::vector<std::uint64_t>{5});
  CHECK(page.next == 7);
  page = ring.page(page.next, 2, LogLevel::Warn);
  CHECK(page.lines.empty());
  CHECK(page.next == 7);
  CHECK(ring.page(std::nullopt, 1, LogLevel::Debug).next == 7);
}

TEST_CASE("log ring: text is bounded and always valid UTF-8", "[platform]") {
  platform::LogRing ring{10};
  const std::string ellipsis = "\xE2\x80\xA6";
  const std::string replacement = "\xEF\xBF\xBD";

  ring.push(record(LogLevel::Info, std::string(10'000, 'x')));
  // 3-byte characters that do not divide the limit: the cut falls on a character boundary.
  std::string wide;
  for (int i = 0; i < 2000; ++i) wide += "\xE2\x82\xAC";  // U+20AC
  ring.push(record(LogLevel::Info, wide));
  // Invalid: a lone continuation byte, an overlong '/', a surrogate, a truncated sequence.
  ring.push(record(LogLevel::Info,
                   "a\x80"
                   "b\xC0\xAF"
                   "c\xED\xA0\x80"
                   "d\xE2\x82"));
  ring.push(record(LogLevel::Info, "caf\xC3\xA9 \xF0\x9F\x98\x80 ok"));  // valid: unchanged
  ring.push(platform::LogRecord{kT0, LogLevel::Info, std::string(100, 'c'), "short"});
  const std::string exact(platform::LogRing::kMaxMessageBytes, 'y');
  ring.push(record(LogLevel::Info, exact));

  const auto lines = ring.since(0, 10, LogLevel::Debug);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].message.size() <= platform::LogRing::kMaxMessageBytes);
  CHECK(lines[0].message.size() > platform::LogRing::kMaxMessageBytes - 4);
  CHECK(lines[0].message.ends_with(ellipsis));
  CHECK(lines[1].message.size() <= platform::LogRing::kMaxMessageBytes);
  CHECK(lines[1].message.ends_with("\xE2\x82\xAC" + ellipsis));
  CHECK(lines[1].message.size() % 3 == 0);
  CHECK(lines[2].message == "a" + replacement + "b" + replacement + replacement + "c" +
                                replacement + replacement + replacement + "d" + replacement +
                                replacement);
  CHECK(lines[3].message == "caf\xC3\xA9 \xF0\x9F\x98\x80 ok");
  CHECK(lines[4].component.size() <= platform::LogRing::kMaxComponentBytes);
  CHECK(lines[4].component.ends_with(ellipsis));
  CHECK(lines[5].message == exact);  // exactly at the limit: kept whole
}

TEST_CASE("log ring: records pushed from several threads all land, in seq order", "[platform]") {
  platform::LogRing ring{10'000};
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&ring, t] {
        for (int i = 0; i < kEach; ++i) ring.push(record(LogLevel::Info, fmt::format("{}", t)));
      });
  }
  const auto lines = ring.since(0, 10'000, LogLevel::Debug);
  REQUIRE(lines.size() == std::size_t{kThreads * kEach});
  for (std::size_t i = 0; i < lines.size(); ++i) CHECK(lines[i].seq == i + 1);
  CHECK(ring.next_seq() == kThreads * kEach + 1);
}

TEST_CASE("log ring: install_log_ring tees the default sink, and a second install replaces it",
          "[platform]") {
  auto capture = std::make_shared<CaptureSink>();
  const auto previous = platform::default_log_sink();
  platform::set_default_log_sink(capture);
  platform::Logger log{"dstm-server"};

  const auto first = platform::install_log_ring(10);
  CHECK(platform::log_ring() == first);
  log.info("one");
  const auto second = platform::install_log_ring(10);
  CHECK(platform::log_ring() == second);
  log.warn("two");
  platform::set_default_log_sink(previous);
  log.info("not kept: the ring is bypassed once another default sink is set");

  // The sink that was the default got everything, once each.
  CHECK(capture->messages() == std::vector<std::string>{"one", "two"});
  CHECK(texts(first->since(0, 10, LogLevel::Debug)) == std::vector<std::string>{"one"});
  const auto lines = second->since(0, 10, LogLevel::Debug);
  CHECK(texts(lines) == std::vector<std::string>{"two"});
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].component == "dstm-server");
  CHECK(lines[0].level == LogLevel::Warn);
}
