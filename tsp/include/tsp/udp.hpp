// The 8-byte header of TSP over UDP ("reliable UDP", RFC 5572; tsp-wire.md 2) and the server's
// retransmit memory.
//
//    0       4                               32
//    +-------+-------------------------------+
//    |  0xF  |   sequence number (28 bits)   |
//    +-------+-------------------------------+
//    |            timestamp (32 bits)        |
//    +---------------------------------------+
//    |  TSP message (text / Content-length + XML)
//
// A first nibble other than 0xF marks tunnelled data (v6udpv4 shares the flow), not signalling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "tsp/error.hpp"

namespace tsp {

inline constexpr std::size_t kUdpHeaderSize = 8;
inline constexpr std::uint32_t kSignallingMask = 0xF0000000u;
// gogoc's first sequence word (compatibility with old HexOS servers).
inline constexpr std::uint32_t kGogocFirstSequence = 0xF00000F0u;

struct UdpHeader {
  std::uint32_t sequence_word = kSignallingMask;  // nibble + 28-bit sequence, as on the wire
  std::uint32_t timestamp = 0;                    // opaque to the server; echoed

  constexpr std::uint32_t sequence() const noexcept { return sequence_word & ~kSignallingMask; }
  // A header with the 0xF nibble and the low 28 bits of seq.
  static constexpr UdpHeader make(std::uint32_t seq, std::uint32_t timestamp) noexcept {
    return {kSignallingMask | (seq & ~kSignallingMask), timestamp};
  }
  bool operator==(const UdpHeader&) const = default;
};

struct UdpDatagram {
  UdpHeader header;
  core::Bytes payload;  // view into the parsed datagram
};

// True if the datagram starts with a TSP header (first nibble 0xF, at least 8 bytes).
bool is_signalling(core::Bytes datagram) noexcept;
// DatagramTooShort below 8 bytes, NotSignalling for tunnelled data.
Result<UdpDatagram> parse_udp_datagram(core::Bytes datagram) noexcept;
std::vector<std::byte> encode_udp_datagram(const UdpHeader& header, core::Bytes payload);

// Server-side retransmit memory for one peer. gogoc retransmits with the same sequence word
// (its timestamp may change) and expects the same answer; the reply payload is cached per request
// and resent behind the retransmitted header, so the state machine sees each request once.
class UdpReplyCache {
 public:
  enum class Verdict {
    New,         // a request not seen before: process it
    Retransmit,  // the last answered request again: resend(header)
    InProgress,  // the request being processed (reply not ready yet): drop, the peer retries
    Stale,       // older than the current request (a delayed duplicate): drop
  };

  Verdict classify(const UdpHeader& h) const noexcept;
  // Starts processing a new request; the previous cached reply is forgotten.
  void begin(const UdpHeader& h) noexcept;
  // Builds the reply to the request in progress (its header echoed) and caches the payload.
  std::vector<std::byte> complete(core::Bytes payload);
  // The cached reply behind the header of a retransmission (echoed unchanged).
  std::vector<std::byte> resend(const UdpHeader& h) const;
  bool in_progress() const noexcept { return current_.has_value() && !done_; }
  // The header of the request in progress or last answered.
  std::optional<UdpHeader> current() const noexcept { return current_; }

 private:
  std::optional<UdpHeader> current_;
  bool done_ = false;
  std::vector<std::byte> payload_;
};

}  // namespace tsp
