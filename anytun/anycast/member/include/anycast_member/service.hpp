// The anycast member service (docs/anycast.md): the ARR/UDP socket on [listen]:port feeding
// anycast::Member, a per-source probe budget, the expiry timer and the optional kernel anycast
// membership, on a host's io_context (the anycast-member daemon, or another daemon later).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "anycast/error.hpp"
#include "anycast/rr.hpp"
#include "anycast_member/config.hpp"

namespace boost::asio {
class io_context;
}

namespace platform {
class Counters;
}

namespace anycast_member {

// Source addresses the probe budget remembers at once; the least recently seen is forgotten.
inline constexpr std::size_t kMaxRateLimitedSources = 16384;

struct ServiceOptions {
  // The time of the state machine and the probe budget; null: anycast::Clock::now. Tests freeze
  // it to make the budget exact.
  std::function<anycast::Time()> clock;
};

class Service {
 public:
  // Opens the socket on [config.listen]:config.port, joins every anycast address on
  // config.join's interface when set, and starts serving. Counters are registered in `counters`
  // (anycast_member_*_total, anycast_member_drops_total{reason}), which must outlive the
  // service. The error says what failed ("join 2001:db8::1 on eth0: Operation not permitted").
  // Call on the io_context's thread (or before it runs).
  static boost::system::result<std::unique_ptr<Service>, std::string> start(
      boost::asio::io_context& io, const Config& config, platform::Counters& counters,
      ServiceOptions options = {});
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // The member's part of GET /status: "counters" {probes, probes_answered, liveness_answered,
  // exchanges_started, hot_received, cot_received, binding_updates_sent,
  // binding_acks_accepted, send_errors, receive_errors}, "drops" {errc name: n, every Errc},
  // "pending", "anycast" [...], "unicast", "listen", "port" (the bound one), "join" (the
  // interface or null), "rate_limited_sources" (sources the probe budget remembers).
  boost::json::object status() const;

  // The bound UDP port (config.port, or the kernel's choice for 0).
  std::uint16_t port() const noexcept;
  std::uint64_t drops(anycast::Errc reason) const noexcept;

  // Closes the socket (the anycast memberships go with it) and the timer; the service's
  // coroutines end once the io_context runs. Idempotent; nothing is counted after it.
  void stop() noexcept;

 private:
  struct Impl;
  explicit Service(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace anycast_member
