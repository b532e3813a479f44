// Vocabulary shared by the server and client sessions: the transport-level actions a session
// asks its daemon to perform, and the events the daemon feeds back.
//
// Sessions are pure state machines: (state, event) -> (state, actions). They read no clock and do
// no I/O. Every deadline is an ArmTimer action; the daemon runs the timer and feeds TimerExpired
// back. Event payloads that are views (core::Bytes) only need to live for the handle() call.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include <boost/system/error_code.hpp>

#include "core/address.hpp"
#include "core/bytes.hpp"

namespace tsp {

using Duration = std::chrono::milliseconds;

enum class TimerKind {
  Phase,          // the deadline of the current phase
  DeferredReply,  // TCP: send the held-back reply ("200 Success" after rspauth)
  Retransmit,     // client over UDP: resend the outstanding datagram
};
inline constexpr std::size_t kTimerKinds = 3;
// 0, 1, 2: an index for a daemon's per-kind timer array.
constexpr std::size_t timer_index(TimerKind kind) noexcept {
  return static_cast<std::size_t>(kind);
}

// Write these bytes as one unit: one TCP write (never coalesced with the next Send: gogoc reads
// each reply with a single recv()), or one UDP datagram (header included).
struct Send {
  std::vector<std::byte> bytes;
  bool operator==(const Send&) const = default;
};

// Start (or restart) the timer of this kind; an armed timer of the same kind is replaced. Feed
// back TimerExpired with the same generation; expiries of older generations are ignored.
struct ArmTimer {
  TimerKind timer = TimerKind::Phase;
  Duration after{0};
  std::uint64_t generation = 0;
  bool operator==(const ArmTimer&) const = default;
};

struct CancelTimer {
  TimerKind timer = TimerKind::Phase;
  bool operator==(const CancelTimer&) const = default;
};

// End the session once the Sends before it are written. TCP: close the connection. UDP: keep the
// session for `linger` so that it can answer retransmissions of its last datagram, then drop it.
// reason is empty for a normal end.
struct Close {
  boost::system::error_code reason;
  Duration linger{0};
  bool operator==(const Close&) const = default;
};

struct Start {};
// TCP bytes as read.
struct BytesReceived {
  core::Bytes data;
};
// One UDP datagram, 8-byte header included.
struct DatagramReceived {
  core::Bytes datagram;
};
struct TimerExpired {
  TimerKind timer = TimerKind::Phase;
  std::uint64_t generation = 0;
};
// TCP: the peer closed its side (or the connection broke).
struct PeerClosed {};

// A leased IPv4 and the client IPv6 that holds it: the answer to a TEP query.
struct Mapping {
  core::Ipv4Address ipv4;
  core::Ipv6Address ipv6;
  std::uint32_t lifetime = 0;  // seconds left
  bool operator==(const Mapping&) const = default;
};

// The transport peer's address as the daemon saw it. IPv4-mapped IPv6 addresses are treated as
// IPv4.
using PeerAddress = std::variant<std::monostate, core::Ipv4Address, core::Ipv6Address>;

}  // namespace tsp
