// A lease: one client's hold on one IPv4 address of the pool, with its times and TEP.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "core/address.hpp"

namespace dstm_server {

// Seconds on the daemon's clock. The library never reads a clock: every operation that needs
// the time takes `now` from the caller (the daemon passes Unix time; tests pass what they like).
using Seconds = std::int64_t;

enum class LeaseState : std::uint8_t {
  // Granted and not yet expired: TEPs may hold the mapping, queries are answered.
  active = 1,
  // Expired and withdrawn from the TEPs; the address is held for the grace period so the same
  // client gets it back (see LeaseTable).
  expired = 2,
};

struct Lease {
  core::Ipv4Address ipv4;
  core::Ipv6Address client;  // the client's IPv6 address, the tunnel's far end
  std::string identity;      // authenticated user name; empty for an anonymous client
  std::string tep;           // name of the TEP the client was given
  Seconds granted_at = 0;    // start of the current active period
  Seconds expires_at = 0;
  LeaseState state = LeaseState::active;

  friend bool operator==(const Lease&, const Lease&) = default;
};

// Text forms for logs and test output: "active", and
// "192.0.2.1 -> 2001:db8::1 identity='alice' tep='tep-a' granted=10 expires=20 active".
std::ostream& operator<<(std::ostream& os, LeaseState s);
std::ostream& operator<<(std::ostream& os, const Lease& l);

}  // namespace dstm_server
