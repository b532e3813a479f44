// Logging facade over fmt: component tags, levels, swappable sinks, per-key rate limiting.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace platform {

// Contract for everything logged through this header:
//  * NEVER LOG SECRETS. Passwords, SASL credentials, pre-shared keys, session keys, private keys,
//    tokens and cookies are not formatted into messages, not even at debug level and not even
//    truncated. Log the name of the thing ("key for service 'anytun0' rejected"), never its value.
//  * Per-packet or per-request events are counters (platform/counters.hpp); when such an event also
//    deserves a line, use the *_limited variants so a flood cannot fill the disk.
//  * Logging never throws: a formatting or allocation failure drops the message.
//  * Thread safety: a Logger may be used from several threads; sinks must be thread-safe.

enum class LogLevel { Debug, Info, Warn, Error };

// "debug", "info", "warn", "error".
std::string_view to_string(LogLevel level) noexcept;
// Inverse of to_string (exact lowercase names); nullopt for anything else.
std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;

struct LogRecord {
  std::chrono::system_clock::time_point time;
  LogLevel level = LogLevel::Info;
  std::string_view component;
  std::string_view message;
};

// UTC with milliseconds, as in log lines and GET /logs: "2024-05-01T12:34:56.789Z". Lexical order
// is time order (for years 0000..9999).
std::string format_log_time(std::chrono::system_clock::time_point time);

// The line written by the stderr sink, without the trailing newline:
//   2024-05-01T12:34:56.789Z WARN  [tep] queue full, dropping
// Time is UTC with milliseconds. Control characters in the message are escaped ("\n", "\x01") so a
// record is always exactly one line and a peer cannot forge log lines.
std::string format_log_line(const LogRecord& record);

class LogSink {
 public:
  virtual ~LogSink() = default;
  // Called from whichever thread logs; implementations must be thread-safe and must not throw.
  virtual void write(const LogRecord& record) noexcept = 0;
};

// Writes format_log_line() + '\n' to fd 2 with a single write per record.
std::shared_ptr<LogSink> stderr_sink();

// Process-wide defaults, used by Loggers whose options leave sink/level unset. They are read at
// every write, so changing them affects existing Loggers. set_default_log_sink(nullptr) restores
// stderr.
void set_default_log_sink(std::shared_ptr<LogSink> sink);
std::shared_ptr<LogSink> default_log_sink();
void set_default_log_level(LogLevel level) noexcept;
LogLevel default_log_level() noexcept;

using LogClock = std::function<std::chrono::system_clock::time_point()>;

// At most `burst` messages per key in each window of `interval`.
struct RateLimit {
  unsigned burst = 5;
  std::chrono::milliseconds interval = std::chrono::minutes{1};
};

// Fixed-window limiter keyed by short static strings ("tun-read", "accept"). Keys are meant to be
// a small fixed set; beyond max_keys, expired entries are evicted and then new keys share one
// overflow bucket, so memory stays bounded even if a caller puts peer data in keys. Thread-safe.
class RateLimiter {
 public:
  struct Decision {
    bool allowed = false;
    // When allowed: how many messages for this key were dropped since the last allowed one.
    std::uint64_t suppressed = 0;
  };

  explicit RateLimiter(RateLimit limit, std::size_t max_keys = 256);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  Decision check(std::string_view key, std::chrono::system_clock::time_point now) noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct LoggerOptions {
  std::shared_ptr<LogSink> sink;  // null: default_log_sink() at each write
  std::optional<LogLevel> level;  // unset: default_log_level() at each write
  LogClock clock;                 // null: std::chrono::system_clock::now
  RateLimit rate_limit;           // for the *_limited calls
  std::size_t max_rate_keys = 256;
};

// A tagged logger. Cheap calls when the level is disabled: arguments are not formatted.
//   platform::Logger log{"tep"};
//   log.info("listening on {}", path);
//   log.warn_limited("tun-write", "TUN write failed: {}", ec.message());
// A rate-limited message that follows suppressed ones ends with " (N similar messages suppressed)".
class Logger {
 public:
  explicit Logger(std::string component, LoggerOptions options = {});
  ~Logger();
  Logger(Logger&&) noexcept;
  Logger& operator=(Logger&&) noexcept;
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  const std::string& component() const noexcept { return component_; }
  bool enabled(LogLevel level) const noexcept;

  template <typename... Args>
  void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
    if (!enabled(level)) return;
    try {
      write(level, fmt::format(format, std::forward<Args>(args)...));
    } catch (...) {  // formatting or allocation failed: drop the message, never throw
    }
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) noexcept {
    log(LogLevel::Debug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) noexcept {
    log(LogLevel::Info, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) noexcept {
    log(LogLevel::Warn, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) noexcept {
    log(LogLevel::Error, format, std::forward<Args>(args)...);
  }

  // At most options.rate_limit.burst messages per key per interval; suppressed messages are not
  // formatted. The key is an identifier of the call site, not of the data.
  template <typename... Args>
  void log_limited(LogLevel level, std::string_view key, fmt::format_string<Args...> format,
                   Args&&... args) noexcept {
    if (!enabled(level)) return;
    const auto decision = admit(key);
    if (!decision.allowed) return;
    try {
      write_limited(level, fmt::format(format, std::forward<Args>(args)...), decision.suppressed);
    } catch (...) {  // as in log()
    }
  }
  template <typename... Args>
  void info_limited(std::string_view key, fmt::format_string<Args...> format,
                    Args&&... args) noexcept {
    log_limited(LogLevel::Info, key, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn_limited(std::string_view key, fmt::format_string<Args...> format,
                    Args&&... args) noexcept {
    log_limited(LogLevel::Warn, key, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error_limited(std::string_view key, fmt::format_string<Args...> format,
                     Args&&... args) noexcept {
    log_limited(LogLevel::Error, key, format, std::forward<Args>(args)...);
  }

  // An already formatted message.
  void write(LogLevel level, std::string_view message) noexcept;

 private:
  RateLimiter::Decision admit(std::string_view key) noexcept;
  void write_limited(LogLevel level, std::string_view message, std::uint64_t suppressed) noexcept;

  std::string component_;
  LoggerOptions options_;
  std::unique_ptr<RateLimiter> limiter_;
};

// One record kept by a LogRing. Unlike LogRecord it owns its text.
struct LogLine {
  std::uint64_t seq = 0;  // 1, 2, 3, ... in the order pushed; never reused
  std::chrono::system_clock::time_point time;
  LogLevel level = LogLevel::Info;
  std::string component;
  std::string message;
};

// A page of a LogRing and where the next page starts (GET /logs "next").
struct LogPage {
  std::vector<LogLine> lines;  // oldest first
  // The seq to ask for next: one past the last line returned when `limit` cut the page short,
  // else the seq the next record will get.
  std::uint64_t next = 1;
};

// The last `capacity` log records in memory, for GET /logs on the control socket (the dashboard
// shows them). Bounded: a message is cut at kMaxMessageBytes and a component at
// kMaxComponentBytes (on a UTF-8 boundary, ending in "…"), and invalid UTF-8 becomes U+FFFD, so
// every line is valid JSON text whatever a peer put into a message. Thread-safe.
class LogRing {
 public:
  static constexpr std::size_t kMaxMessageBytes = 4096;
  static constexpr std::size_t kMaxComponentBytes = 64;

  explicit LogRing(std::size_t capacity);  // a capacity of 0 is taken as 1
  ~LogRing();
  LogRing(const LogRing&) = delete;
  LogRing& operator=(const LogRing&) = delete;

  // Adds a record, dropping the oldest when full. Never throws: an allocation failure drops the
  // record.
  void push(const LogRecord& record) noexcept;

  // Lines with seq >= since (oldest first), at most limit, level >= min.
  std::vector<LogLine> since(std::uint64_t since, std::size_t limit, LogLevel min) const;
  // The newest `limit` lines with level >= min, oldest first.
  std::vector<LogLine> tail(std::size_t limit, LogLevel min) const;
  // since() (when `from` is set) or tail() (when not), with the seq to continue from, taken
  // atomically with the lines.
  LogPage page(std::optional<std::uint64_t> from, std::size_t limit, LogLevel min) const;

  // The seq the next pushed record will get (1 for an empty ring).
  std::uint64_t next_seq() const noexcept;
  std::size_t capacity() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Tees the current default sink (see set_default_log_sink) into a new process-wide ring of
// `capacity` lines and returns it; log_ring() returns it from then on, and a ControlServer
// created afterwards serves it as GET /logs. Calling it again replaces the ring (records go to
// the new one only). Setting another default sink later bypasses the ring. Call at start-up,
// before logging from several threads.
std::shared_ptr<LogRing> install_log_ring(std::size_t capacity = 2000);
// The ring installed by install_log_ring(); null when none was.
std::shared_ptr<LogRing> log_ring();

}  // namespace platform
