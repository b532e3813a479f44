// The SATP packet codec (satp-wire.md sections 2, 5, 6, 8): seals a payload into
// header | AES-CTR(payload type | payload) | rightmost HMAC-SHA1 bytes, and opens one in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "satp/error.hpp"
#include "satp/keys.hpp"
#include "satp/replay.hpp"

namespace satp {

// Wire layout (all big-endian):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                        sequence number                        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |           sender ID           |              MUX              |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -
//   |      payload type (enc)       |     payload (enc) ...         |  | encrypted
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  -
//   |            auth tag: the LAST t bytes of HMAC-SHA1 ...        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The tag covers header and ciphertext (encrypt-then-MAC).
inline constexpr std::size_t kHeaderSize = 8;
inline constexpr std::size_t kPayloadTypeSize = 2;
// anytun 0.3.8 reads at most this many bytes of UDP payload (MAX_PACKET_LENGTH); a longer packet
// would be cut short there and fail its tag.
inline constexpr std::size_t kMaxPacket = 1600;

// Payload types (EtherTypes). A tun takes IPv4/IPv6, a tap Ethernet.
inline constexpr std::uint16_t kPayloadIpv4 = 0x0800;
inline constexpr std::uint16_t kPayloadIpv6 = 0x86DD;
inline constexpr std::uint16_t kPayloadEthernet = 0x6558;

struct Header {
  std::uint32_t seq = 0;
  std::uint16_t sender_id = 0;
  std::uint16_t mux = 0;

  bool operator==(const Header&) const = default;
};

// The clear header, NOT authenticated: only for picking the connection (by MUX) whose Codec then
// opens the packet. Truncated if shorter than the header.
Result<Header> read_header(std::span<const std::byte> packet) noexcept;

// An opened packet. `payload` is a view into the caller's packet buffer, decrypted in place.
struct Opened {
  Header header;
  std::uint16_t payload_type = 0;
  std::span<std::byte> payload;
};

// BadPayloadType unless `type` is one of `accepted` (anytun drops the others silently).
Result<void> check_payload_type(std::uint16_t type,
                                std::span<const std::uint16_t> accepted) noexcept;
inline constexpr std::uint16_t kTunPayloadTypes[] = {kPayloadIpv4, kPayloadIpv6};
inline constexpr std::uint16_t kTapPayloadTypes[] = {kPayloadEthernet};

// Seals and opens the packets of one connection (one MUX, master key, role). Each packet gets
// fresh keys from its sequence number; the Crypto++ objects are members, re-keyed per packet,
// so seal and open never allocate. Not thread-safe: one Codec per worker thread.
class Codec {
 public:
  // BadKeyLength if the master key does not fit settings.kd_prf; BadSettings if
  // settings_problem(settings) is not empty.
  static Result<Codec> create(const Settings& settings, const MasterKey& master_key,
                              const MasterSalt& master_salt);
  Codec(Codec&&) noexcept;
  Codec& operator=(Codec&&) noexcept;
  ~Codec();

  const Settings& settings() const noexcept;
  std::size_t tag_length() const noexcept;
  // Bytes added to a payload: header, payload type and tag (20 with the defaults).
  std::size_t overhead() const noexcept { return kHeaderSize + kPayloadTypeSize + tag_length(); }
  // The largest payload whose packet fits kMaxPacket (1580 with the defaults).
  std::size_t max_payload() const noexcept { return kMaxPacket - overhead(); }

  // Writes header | ciphertext | tag for `payload` into the front of `out` and returns that
  // part of `out` (overhead() + payload.size() bytes). The caller owns the sequence number:
  // never reuse (seq, sender_id, mux) under one master key. `payload` is either disjoint from
  // `out` or exactly out[10 .. 10 + n) (built in place in headroom: no copy). TooLong if the
  // packet would exceed kMaxPacket, NoSpace if `out` is too small.
  Result<std::span<std::byte>> seal(const Header& header, std::uint16_t payload_type,
                                    std::span<const std::byte> payload,
                                    std::span<std::byte> out) noexcept;

  // Checks the lengths, verifies the tag (constant time), then decrypts payload type and payload
  // in place. Truncated below overhead(), TooLong above kMaxPacket, BadTag. With `replay`, an
  // authenticated packet is then checked against and recorded in the window (Errc::Replay) before
  // anything is decrypted. The payload type is returned, not checked (see check_payload_type).
  // On error the buffer is left as it was.
  Result<Opened> open(std::span<std::byte> packet) noexcept;
  Result<Opened> open(std::span<std::byte> packet, ReplayWindow& replay) noexcept;

 private:
  class State;  // the Crypto++ objects (src/packet.cpp)

  explicit Codec(std::unique_ptr<State> state) noexcept;
  Result<Opened> open_impl(std::span<std::byte> packet, ReplayWindow* replay) noexcept;

  std::unique_ptr<State> state_;
};

}  // namespace satp
