// Values shared by both ends of an exchange: endpoints and the datagrams a state machine asks its
// daemon to send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/address.hpp"

namespace anycast {

struct Endpoint {
  core::Ipv6Address address;
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
};

// A datagram to send. `source` is the IPv6 source to send from (IPV6_PKTINFO); unspecified lets
// the kernel choose.
struct Outgoing {
  core::Ipv6Address source;
  Endpoint destination;
  std::vector<std::byte> bytes;
};

}  // namespace anycast
