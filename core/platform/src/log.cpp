// Logger, sinks and the per-key rate limiter.
#include "platform/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>
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

std::string format_log_line(const LogRecord& record) {
  using namespace std::chrono;
  const auto since_epoch = record.time.time_since_epoch();
  auto secs = duration_cast<seconds>(since_epoch);
  auto millis = duration_cast<milliseconds>(since_epoch - secs).count();
  if (millis < 0) {  // floor, for times before the epoch
    secs -= seconds{1};
    millis += 1000;
  }
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::string out = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {} [",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, millis, level_tag(record.level));
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

}  // namespace platform
