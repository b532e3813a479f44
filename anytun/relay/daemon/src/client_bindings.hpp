// Relay mode on the client (draft-gsenger-anycast-relay-00 section 1.1.1.3): the bindings a
// client holds at its relay (/anytun/client/bindings), as a state machine without I/O. The
// service sends what due() returns over its connection and hands the relay's answers to
// answer().
//
// Per binding:
//   allocating --Allocated--> allocated --half the lifetime--> refreshing --Refreshed--> allocated
//   allocating/refreshing --Error--> refused --kRetryAfterError--> allocating (a new request)
//   refreshing --UnknownBinding, or the lifetime ran out unanswered--> allocating
// A request is retransmitted under the same request id (so the relay recognises it) with a
// backoff doubling from 1 s to at most kMaxBackoff, until answered. Answers to other request ids
// (stale, duplicated) are ignored. Request ids come from one counter with a random start, so a
// restarted client does not repeat its former ones.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/array.hpp>

#include "relay/control.hpp"
#include "relay/endpoint.hpp"
#include "relay_daemon/config.hpp"

namespace relay_daemon {

class ClientBindings {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kFirstBackoff{1};
  static constexpr std::chrono::seconds kMaxBackoff{30};
  static constexpr std::chrono::seconds kRetryAfterError{30};

  enum class State { Allocating, Allocated, Refreshing, Refused };

  struct Entry {
    BindingConfig config;
    State state = State::Allocating;
    std::optional<std::uint32_t> request;  // outstanding request id
    Clock::time_point next_send;           // when to send (again)
    Clock::duration backoff = kFirstBackoff;
    std::uint32_t binding = 0;
    std::optional<relay::Endpoint> relay;
    std::uint32_t lifetime = 0;
    Clock::time_point refresh_at;
    Clock::time_point expires;
    std::string error;  // the relay's last refusal
  };

  // Every binding starts allocating at once (due() at any time sends their Allocates).
  ClientBindings(const std::vector<BindingConfig>& bindings, std::uint32_t first_request);

  // The requests to send now: first sends, retransmissions, refreshes.
  std::vector<relay::control::Message> due(Clock::time_point now);
  // An answer from the relay. A line for the log when it was an answer to one of ours.
  std::optional<std::string> answer(const relay::control::Message& message, Clock::time_point now);
  // Release for each held binding (on stop); every binding is back to allocating.
  std::vector<relay::control::Message> release_all();

  const std::vector<Entry>& entries() const noexcept { return entries_; }
  // GET /bindings: {peer, client_port, relay (endpoint or null), lifetime, state, ...} each.
  boost::json::array list(Clock::time_point now) const;

 private:
  std::uint32_t next_request() noexcept { return request_++; }
  void restart(Entry& e, Clock::time_point at);

  std::vector<Entry> entries_;
  std::uint32_t request_;
};

}  // namespace relay_daemon
