// What dstm-client tells the world, without I/O: the lease it holds (read from the server's
// offer), one JSON line per state change (stdout), and GET /status (control socket).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "core/address.hpp"
#include "dstm_client/failure.hpp"
#include "tsp/message.hpp"

namespace dstm_client {

// A lease as the client uses it.
struct LeaseInfo {
  core::Ipv4Address ipv4;      // ours
  core::Ipv6Address local;     // our tunnel end point (the IPv6 the lease is bound to)
  core::Ipv6Address tep_ipv6;  // the assigned TEP
  core::Ipv4Address tep_ipv4;
  std::optional<core::Ipv4Address> keepalive;  // set only with an interval > 0
  std::uint32_t keepalive_interval = 0;        // seconds
  std::uint32_t lifetime = 0;                  // seconds, from the offer

  bool same_tep(const LeaseInfo& o) const noexcept {
    return tep_ipv6 == o.tep_ipv6 && tep_ipv4 == o.tep_ipv4;
  }
  bool operator==(const LeaseInfo&) const = default;
};

// Reads the accepted offer. The client endpoint's IPv6 is our tunnel end; when the offer lacks it,
// `session_local` (the TSP socket's local IPv6) is used. Errors: a missing client IPv4,
// TEP IPv6 or TEP IPv4, a missing lifetime, no IPv6 for our end, or addresses that cannot be
// tunnel end points (unspecified, multicast).
boost::system::result<LeaseInfo, Failure> lease_from_offer(
    const tsp::Tunnel& offer, std::optional<core::Ipv6Address> session_local);

// ---- events: one JSON object per line, without the line end ----

// {"event":"up","ipv4","tep_ipv6","tep_ipv4","keepalive","lifetime","interface"}; with
// "previous_ipv4" when the address changed since the last lease.
std::string up_event(const LeaseInfo& lease, std::string_view interface,
                     std::optional<core::Ipv4Address> previous_ipv4 = std::nullopt);
// {"event":"renewed","ipv4","tep_ipv6","tep_ipv4","lifetime"[,"previous_ipv4"]}
std::string renewed_event(const LeaseInfo& lease,
                          std::optional<core::Ipv4Address> previous_ipv4 = std::nullopt);
// {"event":"tep_lost","ipv4","tep_ipv6","tep_ipv4","keepalive","misses"}
std::string tep_lost_event(const LeaseInfo& lease, unsigned misses);
// {"event":"moved","ipv4","from_tep_ipv6","from_tep_ipv4","tep_ipv6","tep_ipv4","lifetime"
//  [,"previous_ipv4"]}
std::string moved_event(const LeaseInfo& from, const LeaseInfo& to);
// {"event":"released","ipv4","confirmed"}: confirmed when the server acknowledged the delete.
std::string released_event(core::Ipv4Address ipv4, bool confirmed);
// {"event":"expired","ipv4"}
std::string expired_event(core::Ipv4Address ipv4);
// {"event":"error","phase","message"}; phase: "create", "renew", "interface", "release"...
std::string error_event(std::string_view phase, std::string_view message);

// ---- GET /status ----

enum class State { Connecting, Up, Recreating };
std::string_view to_string(State s) noexcept;

struct StatusSnapshot {
  State state = State::Connecting;
  std::optional<LeaseInfo> lease;          // the newest lease, if any was ever granted
  std::optional<std::int64_t> expires_in;  // seconds (negative once expired)
  std::string interface;
  // The data path in use: "kernel" (ip6tnl), "bpf" (fast path attached) or "user".
  std::string backend = "user";
  std::uint64_t renewals = 0;
  std::uint64_t tep_changes = 0;
  std::uint64_t keepalive_sent = 0;
  std::uint64_t keepalive_answered = 0;
  std::uint64_t keepalive_misses = 0;
  // Data-path counters by name, in the order given ("encapsulated", "decapsulated",
  // "dropped_not_ours"...), and the decapsulation drops by reason (tep::drop_reason_name).
  std::vector<std::pair<std::string, std::uint64_t>> counters;
  std::vector<std::pair<std::string, std::uint64_t>> decap_drops;
  // The BPF fast path's counters (tep::bpf::Counters by name) while it is attached; empty
  // otherwise.
  std::vector<std::pair<std::string, std::uint64_t>> fast_path;
  // The ip6tnl device's statistics (tx_packets, rx_bytes...) with the kernel backend; else empty.
  std::vector<std::pair<std::string, std::uint64_t>> kernel;
};

// {"state","ipv4","local_ipv6","tep_ipv6","tep_ipv4","keepalive","keepalive_interval",
//  "lifetime","expires_in","interface","backend","renewals","tep_changes","keepalive_sent",
//  "keepalive_answered","keepalive_misses","counters": {..., "decap_drops": {reason: n}},
//  "fast_path": {name: n} (only while the BPF fast path is attached),
//  "kernel": {name: n} (only with the kernel backend: the ip6tnl device's statistics)}.
// Lease fields are null without a lease; keepalive fields are null without a keepalive.
boost::json::value status_json(const StatusSnapshot& s);

}  // namespace dstm_client
