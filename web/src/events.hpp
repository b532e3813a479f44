// Server-Sent Events of GET /api/events: one bounded queue per open stream, fed by one sampler
// for all of them. Private to web; single-threaded (the App's io_context).
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "web/daemons.hpp"
#include "web/http.hpp"

namespace web::detail {

// One open event stream. next() returns queued messages, then waits for more; after cancel() it
// returns nullopt at once (what was queued is dropped).
class Subscriber final : public EventStream {
 public:
  // A slow reader loses the oldest messages beyond this many (the ticks are snapshots: only
  // the newest matters).
  static constexpr std::size_t kQueue = 16;

  Subscriber(boost::asio::any_io_executor executor, std::string session_key);
  boost::asio::awaitable<std::optional<std::string>> next() override;
  void cancel() noexcept override;

  void push(std::string message);
  bool cancelled() const noexcept { return cancelled_; }
  const std::string& session_key() const noexcept { return session_key_; }

 private:
  void wake() noexcept;
  std::deque<std::string> queue_;
  bool cancelled_ = false;
  boost::asio::steady_timer wake_;
  std::string session_key_;
};

struct EventHub {
  static constexpr std::size_t kPerSession = 4;
  static constexpr std::size_t kTotal = 64;

  // The open streams (expired entries are dropped as they are found).
  std::vector<std::weak_ptr<Subscriber>> subscribers;
  std::vector<std::shared_ptr<Subscriber>> live();
  std::size_t count_for(const std::string& session_key);

  // The sampler runs while there are streams.
  bool sampling = false;
  std::optional<boost::asio::steady_timer> sampler_timer;
  // The previous sample, for rates.
  std::map<std::string, Traffic> last_traffic;
  std::optional<std::chrono::steady_clock::time_point> last_time;
};

// "event: <name>\ndata: <json>\n\n"
std::string sse_message(std::string_view event, const boost::json::value& data);

}  // namespace web::detail
