// Relay mode on the client: the bindings' state machine (see client_bindings.hpp).
#include "client_bindings.hpp"

#include <algorithm>
#include <variant>

#include <fmt/core.h>
#include <boost/json/object.hpp>

namespace relay_daemon {
namespace json = boost::json;
namespace ctl = relay::control;

namespace {

const char* state_name(ClientBindings::State s) noexcept {
  switch (s) {
    case ClientBindings::State::Allocating:
      return "allocating";
    case ClientBindings::State::Allocated:
      return "allocated";
    case ClientBindings::State::Refreshing:
      return "refreshing";
    case ClientBindings::State::Refused:
      return "refused";
  }
  return "unknown";
}

std::int64_t seconds_until(ClientBindings::Clock::time_point t,
                           ClientBindings::Clock::time_point now) {
  return std::max<std::int64_t>(0,
                                std::chrono::duration_cast<std::chrono::seconds>(t - now).count());
}

}  // namespace

ClientBindings::ClientBindings(const std::vector<BindingConfig>& bindings,
                               std::uint32_t first_request)
    : request_{first_request} {
  for (const auto& b : bindings) entries_.emplace_back().config = b;
}

void ClientBindings::restart(Entry& e, Clock::time_point at) {
  e.state = State::Allocating;
  e.request.reset();
  e.next_send = at;
  e.backoff = kFirstBackoff;
  e.relay.reset();
  e.binding = 0;
  e.lifetime = 0;
}

std::vector<ctl::Message> ClientBindings::due(Clock::time_point now) {
  std::vector<ctl::Message> out;
  for (auto& e : entries_) {
    if (e.state == State::Refused && now >= e.next_send) restart(e, now);
    if (e.state == State::Allocated && now >= e.refresh_at) {
      e.state = State::Refreshing;
      e.request.reset();
      e.next_send = now;
      e.backoff = kFirstBackoff;
    }
    if (e.state == State::Refreshing && now > e.expires) restart(e, now);
    if (e.state != State::Allocating && e.state != State::Refreshing) continue;
    if (now < e.next_send) continue;
    if (!e.request) e.request = next_request();
    auto& m = out.emplace_back();
    m.request = *e.request;
    if (e.state == State::Allocating)
      m.body = ctl::Allocate{.lifetime = 0,
                             .peer = e.config.peer,
                             .client_address = std::nullopt,
                             .client_port = e.config.client_port};
    else
      m.body = ctl::Refresh{e.binding, e.lifetime};
    e.next_send = now + e.backoff;
    e.backoff = std::min<Clock::duration>(e.backoff * 2, kMaxBackoff);
  }
  return out;
}

std::optional<std::string> ClientBindings::answer(const ctl::Message& message,
                                                  Clock::time_point now) {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const Entry& e) { return e.request == message.request; });
  if (it == entries_.end()) return std::nullopt;
  auto& e = *it;
  const auto name =
      fmt::format("binding to {} from port {}", e.config.peer.to_string(), e.config.client_port);
  const auto hold = [&](std::uint32_t lifetime) {
    e.state = State::Allocated;
    e.request.reset();
    e.lifetime = lifetime;
    e.expires = now + std::chrono::seconds{lifetime};
    e.refresh_at = now + std::chrono::seconds{lifetime} / 2;
    e.error.clear();
  };
  if (const auto* a = std::get_if<ctl::Allocated>(&message.body);
      a && e.state == State::Allocating) {
    e.binding = a->binding;
    e.relay = a->relay;
    hold(a->lifetime);
    return fmt::format("{}: relay endpoint {} for {} s", name, a->relay.to_string(), a->lifetime);
  }
  if (const auto* r = std::get_if<ctl::Refreshed>(&message.body);
      r && e.state == State::Refreshing && r->binding == e.binding) {
    hold(r->lifetime);
    return fmt::format("{}: refreshed for {} s", name, r->lifetime);
  }
  if (const auto* err = std::get_if<ctl::Error>(&message.body)) {
    if (e.state == State::Refreshing && err->code == ctl::Code::UnknownBinding) {
      restart(e, now);
      return fmt::format("{}: the relay no longer knows it ({}); allocating again", name,
                         err->reason);
    }
    e.state = State::Refused;
    e.request.reset();
    e.relay.reset();
    e.error = err->reason;
    e.next_send = now + kRetryAfterError;
    return fmt::format("{}: refused ({}); trying again in {} s", name, err->reason,
                       kRetryAfterError.count());
  }
  return std::nullopt;  // an answer of another kind under this id: not for this state
}

std::vector<ctl::Message> ClientBindings::release_all() {
  std::vector<ctl::Message> out;
  for (auto& e : entries_) {
    if (e.relay) {
      auto& m = out.emplace_back();
      m.request = next_request();
      m.body = ctl::Release{e.binding};
    }
    restart(e, Clock::time_point{});
  }
  return out;
}

json::array ClientBindings::list(Clock::time_point now) const {
  json::array out;
  for (const auto& e : entries_) {
    json::object o{{"peer", e.config.peer.to_string()},
                   {"client_port", e.config.client_port},
                   {"state", state_name(e.state)}};
    o["relay"] = e.relay ? json::value(e.relay->to_string()) : json::value(nullptr);
    o["binding"] = e.relay ? json::value(e.binding) : json::value(nullptr);
    o["lifetime"] = e.relay ? json::value(e.lifetime) : json::value(nullptr);
    o["expires_in"] = e.relay ? json::value(seconds_until(e.expires, now)) : json::value(nullptr);
    o["error"] = e.error.empty() ? json::value(nullptr) : json::value(e.error);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace relay_daemon
