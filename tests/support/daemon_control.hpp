// Talking to a daemon under test through its control socket across an in-process restart, when
// the socket is briefly missing. Header-only; the tests that include it link appl::platform.
// Include as "support/daemon_control.hpp".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "platform/control.hpp"

namespace test {

// One request; a transport error (the daemon down, or between two generations) as nullopt.
inline std::optional<platform::Response> try_control(const std::string& socket,
                                                     platform::Method method,
                                                     const std::string& target,
                                                     const boost::json::value& body = nullptr) {
  auto r = platform::ControlClient{socket}.request(method, target, body);
  if (!r) return std::nullopt;
  return *r;
}

// Polls GET /status until the daemon answers as generation `g` (a reload closes and reopens the
// control socket, and no readiness pipe survives it); nullopt when `timeout` passes first.
inline std::optional<boost::json::object> await_generation(
    const std::string& socket, std::uint64_t g, std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = try_control(socket, platform::Method::Get, "/status"); r && r->status == 200) {
      const auto& o = r->body.as_object();
      if (o.at("generation").to_number<std::uint64_t>() == g) return o;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  return std::nullopt;
}

}  // namespace test
