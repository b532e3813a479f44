// Logger, sinks, the per-key rate limiter and the in-memory log ring.
#include "platform/log.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <unordered_map>

namespace platform {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "unknown";
}

std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
  for (auto level : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error})
    if (text == to_string(level)) return level;
  return std::nullopt;
}

namespace {

std::string_view level_tag(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug:
      return "DEBUG";
    case LogLevel::Info:
      return "INFO ";
    case LogLevel::Warn:
      return "WARN ";
    case LogLevel::Error:
      return "ERROR";
  }
  return "?    ";
}

void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", u);
    } else {
      out += c;
    }
  }
}

class StderrSink final : public LogSink {
 public:
  void write(const LogRecord& record) noexcept override {
    try {
      std::string line = format_log_line(record);
      line += '\n';
      // One write(2) per record so lines from several processes sharing stderr do not interleave
      // mid-line; the mutex covers the rare partial write.
      std::lock_guard lock{mutex_};
      std::string_view rest = line;
      while (!rest.empty()) {
        const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        rest.remove_prefix(static_cast<std::size_t>(n));
      }
    } catch (...) {  // allocation failure: drop the record
    }
  }

 private:
  std::mutex mutex_;
};

struct Defaults {
  std::mutex mutex;
  std::shared_ptr<LogSink> sink;
  std::atomic<LogLevel> level{LogLevel::Info};
};

Defaults& defaults() {
  static Defaults d;
  return d;
}

}  // namespace

std::string format_log_time(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto since_epoch = time.time_since_epoch();
  auto secs = duration_cast<seconds>(since_epoch);
  auto millis = duration_cast<milliseconds>(since_epoch - secs).count();
  if (millis < 0) {  // floor, for times before the epoch
    secs -= seconds{1};
    millis += 1000;
  }
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::string format_log_line(const LogRecord& record) {
  std::string out = fmt::format("{} {} [", format_log_time(record.time), level_tag(record.level));
  append_escaped(out, record.component);
  out += "] ";
  append_escaped(out, record.message);
  return out;
}

std::shared_ptr<LogSink> stderr_sink() {
  static const auto sink = std::make_shared<StderrSink>();
  return sink;
}

void set_default_log_sink(std::shared_ptr<LogSink> sink) {
  auto& d = defaults();
  std::lock_guard lock{d.mutex};
  d.sink = std::move(sink);
}

std::shared_ptr<LogSink> default_log_sink() {
  auto& d = defaults();
  {
    std::lock_guard lock{d.mutex};
    if (d.sink) return d.sink;
  }
  return stderr_sink();
}

void set_default_log_level(LogLevel level) noexcept {
  defaults().level.store(level);
}
LogLevel default_log_level() noexcept {
  return defaults().level.load();
}

// --- RateLimiter -------------------------------------------------------------------------------

struct RateLimiter::State {
  struct Window {
    std::chrono::system_clock::time_point start;
    unsigned count = 0;
    std::uint64_t suppressed = 0;
  };

  RateLimit limit;
  std::size_t max_keys = 1;
  std::mutex mutex;
  // Transparent hashing: looking up a key does not build a std::string.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const noexcept {
      return std::hash<std::string_view>{}(k);
    }
  };
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> windows;

  bool expired(const Window& w, std::chrono::system_clock::time_point now) const {
    // A clock that stepped backwards also starts a new window.
    return now < w.start || now - w.start >= limit.interval;
  }

  Window& window_for(std::string_view key, std::chrono::system_clock::time_point now) {
    if (auto it = windows.find(key); it != windows.end()) return it->second;
    if (windows.size() >= max_keys) {
      // Evicting a window with suppressed messages would lose their count; keep those.
      std::erase_if(windows, [&](const auto& kv) {
        return expired(kv.second, now) && kv.second.suppressed == 0;
      });
    }
    // An empty key cannot be produced by callers' literals in practice; it is the overflow bucket.
    if (windows.size() >= max_keys) return windows[std::string{}];
    return windows.emplace(std::string{key}, Window{}).first->second;
  }
};

RateLimiter::RateLimiter(RateLimit limit, std::size_t max_keys)
    : state_{std::make_unique<State>()} {
  state_->limit = limit;
  state_->max_keys = max_keys == 0 ? 1 : max_keys;
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Decision RateLimiter::check(std::string_view key,
                                         std::chrono::system_clock::time_point now) noexcept {
  try {
    std::lock_guard lock{state_->mutex};
    auto& w = state_->window_for(key, now);
    if (w.count == 0 || state_->expired(w, now)) {
      w.start = now;
      w.count = 0;
    }
    if (w.count >= state_->limit.burst) {
      ++w.suppressed;
      return {};
    }
    ++w.count;
    return {true, std::exchange(w.suppressed, 0)};
  } catch (...) {  // allocation failure: let the message through rather than lose it silently
    return {true, 0};
  }
}

// --- Logger ------------------------------------------------------------------------------------

Logger::Logger(std::string component, LoggerOptions options)
    : component_{std::move(component)},
      options_{std::move(options)},
      limiter_{std::make_unique<RateLimiter>(options_.rate_limit, options_.max_rate_keys)} {}

Logger::~Logger() = default;
Logger::Logger(Logger&&) noexcept = default;
Logger& Logger::operator=(Logger&&) noexcept = default;

bool Logger::enabled(LogLevel level) const noexcept {
  const LogLevel min = options_.level ? *options_.level : default_log_level();
  return level >= min;
}

void Logger::write(LogLevel level, std::string_view message) noexcept {
  try {
    const auto now = options_.clock ? options_.clock() : std::chrono::system_clock::now();
    const auto sink = options_.sink ? options_.sink : default_log_sink();
    sink->write(LogRecord{now, level, component_, message});
  } catch (...) {  // a throwing clock or allocation failure: drop the record
  }
}

RateLimiter::Decision Logger::admit(std::string_view key) noexcept {
  try {
    const auto now = options_.clock ? options_.clock() : std::chrono::system_clock::now();
    return limiter_->check(key, now);
  } catch (...) {
    return {true, 0};
  }
}

void Logger::write_limited(LogLevel level, std::string_view message,
                           std::uint64_t suppressed) noexcept {
  if (suppressed == 0) return write(level, message);
  try {
    write(level, fmt::format("{} ({} similar messages suppressed)", message, suppressed));
  } catch (...) {
  }
}

// --- LogRing ------------------------------------------------------------------------------------

namespace {

// The length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if it does not start with one.
std::size_t utf8_sequence(std::string_view s) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](std::size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;  // overlong
    if (b0 == 0xED && byte(1) > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;  // overlong
    if (b0 == 0xF4 && byte(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// `text` as valid UTF-8 of at most max_bytes: invalid bytes become U+FFFD, and a text that does
// not fit is cut at a character boundary and ends in "…".
std::string bounded_utf8(std::string_view text, std::size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  static constexpr std::string_view kEllipsis = "\xE2\x80\xA6";     // U+2026
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + kReplacement.size());
  // The length at the last character boundary that leaves room for the ellipsis.
  std::size_t cut = 0;
  while (!text.empty() && out.size() <= max_bytes) {
    if (out.size() + kEllipsis.size() <= max_bytes) cut = out.size();
    const std::size_t n = utf8_sequence(text);
    out += n == 0 ? kReplacement : text.substr(0, n);
    text.remove_prefix(std::max<std::size_t>(n, 1));
  }
  if (out.size() <= max_bytes && text.empty()) return out;
  out.resize(cut);
  if (cut + kEllipsis.size() <= max_bytes) out += kEllipsis;
  return out;
}

}  // namespace

struct LogRing::State {
  mutable std::mutex mutex;
  std::size_t capacity = 1;
  std::deque<LogLine> lines;  // seq increasing by one from front to back
  std::uint64_t next_seq = 1;

  // Index of the first line with seq >= seq (binary search: seqs are sorted).
  std::size_t lower_bound(std::uint64_t seq) const {
    const auto it = std::lower_bound(lines.begin(), lines.end(), seq,
                                     [](const LogLine& l, std::uint64_t s) { return l.seq < s; });
    return static_cast<std::size_t>(it - lines.begin());
  }
};

LogRing::LogRing(std::size_t capacity) : state_{std::make_unique<State>()} {
  state_->capacity = std::max<std::size_t>(capacity, 1);
}

LogRing::~LogRing() = default;

void LogRing::push(const LogRecord& record) noexcept {
  try {
    // Built outside the lock, so loggers on other threads do not wait for the UTF-8 pass; the
    // seq is given under the lock, so seqs follow the order of the lines.
    LogLine line{0, record.time, record.level, bounded_utf8(record.component, kMaxComponentBytes),
                 bounded_utf8(record.message, kMaxMessageBytes)};
    std::lock_guard lock{state_->mutex};
    auto& lines = state_->lines;
    if (lines.size() >= state_->capacity) lines.pop_front();
    line.seq = state_->next_seq;
    lines.push_back(std::move(line));
    ++state_->next_seq;
  } catch (...) {  // allocation failure: the record is lost
  }
}

LogPage LogRing::page(std::optional<std::uint64_t> from, std::size_t limit, LogLevel min) const {
  LogPage out;
  std::lock_guard lock{state_->mutex};
  const auto& lines = state_->lines;
  out.next = state_->next_seq;
  if (limit == 0) return out;
  if (from) {
    for (std::size_t i = state_->lower_bound(*from); i < lines.size(); ++i) {
      if (lines[i].level < min) continue;
      if (out.lines.size() == limit) {
        out.next = out.lines.back().seq + 1;
        break;
      }
      out.lines.push_back(lines[i]);
    }
    return out;
  }
  // The newest `limit` matching lines: walk back to find the first of them, then copy forward.
  std::size_t first = lines.size();
  std::size_t found = 0;
  while (first > 0 && found < limit) {
    --first;
    if (lines[first].level >= min) ++found;
  }
  for (std::size_t i = first; i < lines.size(); ++i)
    if (lines[i].level >= min) out.lines.push_back(lines[i]);
  return out;
}

std::vector<LogLine> LogRing::since(std::uint64_t since, std::size_t limit, LogLevel min) const {
  return page(since, limit, min).lines;
}

std::vector<LogLine> LogRing::tail(std::size_t limit, LogLevel min) const {
  return page(std::nullopt, limit, min).lines;
}

std::uint64_t LogRing::next_seq() const noexcept {
  std::lock_guard lock{state_->mutex};
  return state_->next_seq;
}

std::size_t LogRing::capacity() const noexcept {
  return state_->capacity;
}

namespace {

// Passes every record on to the sink that was the default, and keeps it in the ring.
class TeeSink final : public LogSink {
 public:
  TeeSink(std::shared_ptr<LogSink> next, std::shared_ptr<LogRing> ring)
      : next_{std::move(next)}, ring_{std::move(ring)} {}
  void write(const LogRecord& record) noexcept override {
    next_->write(record);
    ring_->push(record);
  }
  const std::shared_ptr<LogSink>& next() const noexcept { return next_; }

 private:
  std::shared_ptr<LogSink> next_;
  std::shared_ptr<LogRing> ring_;
};

struct InstalledRing {
  std::mutex mutex;
  std::shared_ptr<LogRing> ring;
};

InstalledRing& installed_ring() {
  static InstalledRing r;
  return r;
}

}  // namespace

std::shared_ptr<LogRing> install_log_ring(std::size_t capacity) {
  auto ring = std::make_shared<LogRing>(capacity);
  auto& installed = installed_ring();
  std::lock_guard lock{installed.mutex};
  auto next = default_log_sink();
  // A second install replaces the first ring instead of feeding both.
  if (const auto* tee = dynamic_cast<const TeeSink*>(next.get())) next = tee->next();
  set_default_log_sink(std::make_shared<TeeSink>(std::move(next), ring));
  installed.ring = ring;
  return ring;
}

std::shared_ptr<LogRing> log_ring() {
  auto& installed = installed_ring();
  std::lock_guard lock{installed.mutex};
  return installed.ring;
}

}  // namespace platform
