// A small metrics registry: named counters and gauges with labels, rendered as JSON and as
// Prometheus text (exposition format 0.0.4).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

namespace platform {

// Label name -> value. Order does not matter: {a,b} and {b,a} name the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. inc() is lock-free and may be called from any thread.
class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down (queue depth, open connections). Lock-free, any thread.
class Gauge {
 public:
  void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::int64_t n) noexcept { value_.fetch_sub(n, std::memory_order_relaxed); }
  std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Registry of metric families. Registration returns a reference that stays valid for the
// registry's lifetime; registering the same (name, labels) again returns the same series, so
// call sites may register lazily (e.g. one series per status code seen).
//
// Names follow Prometheus rules: metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]*
// (not starting with "__"). Counter names conventionally end in "_total". A bad name, a duplicate
// label name, or reusing a name with another type or help text is a programming error and throws
// std::logic_error (at startup, where registration belongs).
//
// Thread safety: registration and snapshots lock a mutex; updates through the returned
// references do not.
class Counters {
 public:
  Counters();
  ~Counters();
  Counters(const Counters&) = delete;
  Counters& operator=(const Counters&) = delete;

  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});

  // A series whose value lives elsewhere (e.g. in a pure library that holds plain integers) and
  // is read by `read` at every snapshot. `read` runs under the registry's lock on the thread that
  // takes the snapshot (to_json/to_prometheus), so what it reads must be safe to read there: for
  // a daemon's loop state, render on the loop thread (the control server does). Registering a
  // series that exists already, as a callback or not, is a programming error (std::logic_error).
  void counter_fn(std::string_view name, std::string_view help, Labels labels,
                  std::function<std::uint64_t()> read);
  void gauge_fn(std::string_view name, std::string_view help, Labels labels,
                std::function<std::int64_t()> read);

  // {"<name>": {"type": "counter"|"gauge", "help": "...",
  //             "series": [{"labels": {"<label>": "<value>"}, "value": <integer>}]}}
  // Families sorted by name, series by labels.
  boost::json::value to_json() const;

  // Prometheus text exposition format 0.0.4: "# HELP", "# TYPE", then one line per series, label
  // values escaped (\\, \", \n). Same order as to_json().
  std::string to_prometheus() const;

 private:
  struct Family;
  Family& family(std::string_view name, std::string_view help, bool is_counter);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

// The Content-Type of to_prometheus() output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace platform
