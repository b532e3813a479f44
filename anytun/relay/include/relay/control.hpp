// The relay's own SATP payload type: control messages between a client and the relay, carried
// encrypted and authenticated inside SATP packets of the client's connection (docs/anytun.md).
//  - Relay mode (draft-gsenger-anycast-relay-00 section 1.1.1.3): the client allocates, refreshes
//    and releases a relay binding; the relay then repeats the client's plain UDP datagrams to a
//    third party and back, rewriting only addresses and ports.
//  - Unicast TCP with anycast initialisation (section 1.1.2.2): over anycast UDP the client asks
//    which unicast TCP endpoint of the answering node to carry its SATP frames to.
//
// Every message: version (1 byte, = 1) | type (1 byte) | request id (4 bytes) | body.
// All integers big-endian. An endpoint is family (1 byte: 4 or 6) | address (4 or 16) | port (2).
//
//   type  name        body
//   1     Allocate    lifetime s (4) | peer endpoint | client endpoint (family 0 = "the
//                     address this request came from", then only the port (2))
//   2     Allocated   binding id (4) | lifetime s (4) | relay endpoint
//   3     Refresh     binding id (4) | lifetime s (4)
//   4     Refreshed   binding id (4) | lifetime s (4)
//   5     Release     binding id (4)
//   6     Released    binding id (4)
//   7     Error       code (2) | reason length (1) | reason (UTF-8, at most 200 bytes)
//   8     Locate      (empty)
//   9     Located     TCP endpoint
//
// Answers carry the request id of their request. decode() is strict: a wrong version, an unknown
// type, a field out of range, or bytes before or after the fields is an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "core/bytes.hpp"
#include "relay/endpoint.hpp"
#include "relay/error.hpp"

namespace relay::control {

// IEEE 802 Local Experimental EtherType 1: the SATP payload type of control messages. A relay
// that does not know it (anytun) drops it like any payload type it does not take.
inline constexpr std::uint16_t kPayloadType = 0x88B5;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kMaxReason = 200;
// The largest encoded message (an Error with the longest reason).
inline constexpr std::size_t kMaxMessage = 6 + 2 + 1 + kMaxReason;

struct Allocate {
  std::uint32_t lifetime = 0;  // seconds asked for; the relay may grant less
  Endpoint peer;               // the third party
  // Where the client's datagrams come from: nullopt address = the source address of the SATP
  // packet that carried this request (the usual case), with `client_port`.
  std::optional<core::Ipv6Address> client_address;
  std::uint16_t client_port = 0;
  bool operator==(const Allocate&) const = default;
};
struct Allocated {
  std::uint32_t binding = 0;
  std::uint32_t lifetime = 0;
  Endpoint relay;  // where the client sends its datagrams, and where the peer sees them from
  bool operator==(const Allocated&) const = default;
};
struct Refresh {
  std::uint32_t binding = 0;
  std::uint32_t lifetime = 0;
  bool operator==(const Refresh&) const = default;
};
struct Refreshed {
  std::uint32_t binding = 0;
  std::uint32_t lifetime = 0;
  bool operator==(const Refreshed&) const = default;
};
struct Release {
  std::uint32_t binding = 0;
  bool operator==(const Release&) const = default;
};
struct Released {
  std::uint32_t binding = 0;
  bool operator==(const Released&) const = default;
};
// Codes of Error.
enum class Code : std::uint16_t {
  BadRequest = 1,      // malformed or not allowed for this connection
  NotAllowed = 2,      // the connection may not use relay mode / this peer
  Exhausted = 3,       // no relay port or binding left
  UnknownBinding = 4,  // refresh or release of a binding this client does not hold
  Unavailable = 5,     // the service (e.g. the TCP transport) is not offered here
};
struct Error {
  Code code = Code::BadRequest;
  std::string reason;  // at most kMaxReason bytes
  bool operator==(const Error&) const = default;
};
struct Locate {
  bool operator==(const Locate&) const = default;
};
struct Located {
  Endpoint tcp;
  bool operator==(const Located&) const = default;
};

using Body = std::variant<Allocate, Allocated, Refresh, Refreshed, Release, Released, Error, Locate,
                          Located>;

struct Message {
  std::uint32_t request = 0;
  Body body;
  bool operator==(const Message&) const = default;
};

// Writes the message into the front of `out`; returns the bytes written (at most kMaxMessage).
// BadField for what decode() would refuse: an Error whose reason is longer than kMaxReason or not
// valid UTF-8, or whose code is not one of Code's. Addresses and ports take any value; an
// IPv4-mapped address (an IPv4 endpoint) is written as family 4. NoSpace if `out` is too small
// (its contents are then unspecified).
Result<std::size_t> encode(const Message& message, core::MutableBytes out) noexcept;
// Strict decode of exactly `bytes` (see above).
Result<Message> decode(core::Bytes bytes);

}  // namespace relay::control
