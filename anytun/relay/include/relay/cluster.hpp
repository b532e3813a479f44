// The relay cluster's own sync channel (docs/anytun.md): relay nodes that share an anycast
// address push each other their connections (MUX, keys, role, peer endpoint, sequence
// high-water marks) and routes, so that a node the routing moves a client to continues the
// session without a new handshake. Unlike anytun's sync stream (satp/sync.hpp: clear text,
// unauthenticated, master keys readable by anyone on the path) every record here is a SATP
// packet sealed under a per-link key.
//
// A link is one TCP connection between two nodes, framed as in stream_framer.hpp. Each side first
// sends one frame of 16 random bytes in clear (its nonce). Both then derive the link's master key
// and salt from the cluster secret and the two nonces (derive_link_keys), the connecting side
// sealing as Role::Left and the accepting side as Role::Right, and seal every further frame with
// AES-CTR-128, HMAC-SHA1 and the full 20-byte tag, MUX kClusterMux, sequence numbers from 0 with no
// gap: a frame whose sequence number is not the next one is an error (the stream is broken). Fresh
// nonces make every link's keystream new and a recorded link useless to replay.
//
// Record (the SATP payload, payload type kPayloadType):
//   version (1 byte, = 1) | type (1) | body; integers big-endian.
//   1 Hello       sender id (2) | name length (1) | name (1..64 bytes)
//   2 Connection  mux (2) | cipher (1) | kd_prf (1) | auth (1) | tag length (1) | role (1) |
//                 key length (1: 0, 16, 24, 32) | key | salt (14) | window size (4) |
//                 flags (1: bit 0 open tunnel, bit 1 relay mode) | peer endpoint |
//                 tx seq (4) | count (1, at most kMaxSenders) | count x (sender id (2) | rx max
//                 (4))
//   3 Remove      mux (2)
//   4 RouteAdd    mux (2) | prefix
//   5 RouteRemove mux (2) | prefix
//   6 Peer        mux (2) | peer endpoint                       (the client's source moved)
//   7 Progress    mux (2) | tx seq (4) | count (1) | count x (sender id (2) | rx max (4))
//   8 Keepalive   (empty)
// A peer endpoint is family (1: 0 none, 4, 6) | address (0, 4 or 16) | port (0 or 2); a prefix is
// family (1: 4 or 6) | length (1) | address (4 or 16), host bits zero.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "relay/endpoint.hpp"
#include "relay/error.hpp"
#include "relay/prefix_table.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"

namespace relay::cluster {

// IEEE 802 Local Experimental EtherType 2.
inline constexpr std::uint16_t kPayloadType = 0x88B6;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::uint16_t kClusterMux = 0;
inline constexpr std::size_t kNonceSize = 16;
inline constexpr std::size_t kMaxName = 64;
inline constexpr std::size_t kMaxSenders = 32;
inline constexpr std::size_t kTagLength = 20;

struct Hello {
  std::uint16_t sender_id = 0;
  std::string name;
  bool operator==(const Hello&) const = default;
};
struct SenderMark {
  std::uint16_t sender_id = 0;
  std::uint32_t max = 0;  // the highest sequence number accepted from this sender
  bool operator==(const SenderMark&) const = default;
};
struct Connection {
  std::uint16_t mux = 0;
  satp::Settings settings;
  satp::MasterKey key;
  satp::MasterSalt salt{};
  std::uint32_t window = 0;
  bool open_tunnel = false;
  bool relay_mode = false;
  std::optional<Endpoint> peer;
  std::uint32_t tx_seq = 0;  // the next sequence number the sending node would use
  std::vector<SenderMark> rx;
  bool operator==(const Connection&) const = default;
};
struct Remove {
  std::uint16_t mux = 0;
  bool operator==(const Remove&) const = default;
};
struct RouteAdd {
  Route route;
  bool operator==(const RouteAdd&) const = default;
};
struct RouteRemove {
  Route route;
  bool operator==(const RouteRemove&) const = default;
};
struct Peer {
  std::uint16_t mux = 0;
  std::optional<Endpoint> peer;
  bool operator==(const Peer&) const = default;
};
struct Progress {
  std::uint16_t mux = 0;
  std::uint32_t tx_seq = 0;
  std::vector<SenderMark> rx;
  bool operator==(const Progress&) const = default;
};
struct Keepalive {
  bool operator==(const Keepalive&) const = default;
};

using Record =
    std::variant<Hello, Connection, Remove, RouteAdd, RouteRemove, Peer, Progress, Keepalive>;

// The largest encoded record: a Connection with a 32-byte key, an IPv6 peer and kMaxSenders
// marks (version and type, mux, five settings bytes, key length, key, salt, window, flags, peer,
// tx seq, count, marks). It fits one SATP packet (cluster.cpp checks).
inline constexpr std::size_t kMaxRecord =
    2 + 2 + 5 + 1 + 32 + 14 + 4 + 1 + 19 + 4 + 1 + kMaxSenders * 6;

// Into the front of `out`; the bytes written. NoSpace; BadField for a name of 0 or more than
// kMaxName bytes, more than kMaxSenders marks, a key whose length does not match its kd_prf,
// settings that satp::settings_problem rejects, or a window above satp::kMaxWindowSize (which a
// satp::ReplayWindow could not take).
Result<std::size_t> encode(const Record& record, core::MutableBytes out) noexcept;
// Strict decode of exactly `bytes`: the checks of encode, plus version, type, lengths, enum
// values (cipher, kd_prf, auth, role), unknown flag bits, families (an IPv4-mapped address sent
// as family 6 included), prefix lengths and host bits. Allocates at most kMaxName bytes or
// kMaxSenders marks.
Result<Record> decode(core::Bytes bytes);

using Nonce = std::array<std::uint8_t, kNonceSize>;

// The link's master key (AES-128: 16 bytes) and salt:
//   key  = the first 16 bytes of SHA-256("satp-relay cluster key"  | secret | connector | acceptor)
//   salt = the first 14 bytes of SHA-256("satp-relay cluster salt" | secret | connector | acceptor)
struct LinkKeys {
  satp::MasterKey key;
  satp::MasterSalt salt{};
};
LinkKeys derive_link_keys(std::span<const std::uint8_t> secret, const Nonce& connector,
                          const Nonce& acceptor) noexcept;

// The state of one end of a link: nonce exchange, then sealing and opening records. Pure (the
// caller moves the bytes and supplies the nonce from a CSPRNG). Not thread-safe.
class Link {
 public:
  enum class Side { Connector, Acceptor };
  // `secret` is the cluster secret (copied); `sender_id` goes into every sealed header.
  Link(std::span<const std::uint8_t> secret, Side side, const Nonce& own_nonce,
       std::uint16_t sender_id);
  Link(Link&&) noexcept;
  Link& operator=(Link&&) noexcept;
  ~Link();

  // The first frame to send (frame header and nonce: 2 + 16 bytes), before any record.
  std::span<const std::byte> nonce_frame() const noexcept;
  // Whether the peer's nonce arrived (records can be opened and sealed only then).
  bool established() const noexcept;

  // One received frame (without its 2-byte header): the first is the peer's nonce (exactly 16
  // bytes, else Truncated/TrailingBytes) and yields nullopt; every later one is opened (satp
  // errors: bad tag...; relay::Errc::BadField for a wrong MUX or payload type; a sequence
  // number other than the next expected is satp::Errc::Replay) and decoded. Any error breaks the
  // link for good: that and every later receive() and seal() return the same error, and the
  // caller closes the connection. Decrypts in place.
  Result<std::optional<Record>> receive(core::MutableBytes frame);
  // Frame header + sealed record into the front of `out`; NoSpace if too small (kMaxRecord + 64
  // always suffices), encode()'s BadField for an invalid record (neither uses up a sequence
  // number nor breaks the link). NotAllowed before established(); the error of a broken link;
  // satp::Errc::Replay once 2^32 records were sealed (a further one would reuse a sequence
  // number under the link's key: reconnect).
  Result<core::MutableBytes> seal(const Record& record, core::MutableBytes out);
  // The sender id in the peer's sealed headers (recorded, not checked), once a record arrived.
  std::optional<std::uint16_t> peer_sender_id() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace relay::cluster
