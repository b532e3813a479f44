// anytun 0.3.8's sync stream (satp-wire.md 11): connection and route records, their exact bytes,
// and a framer over the TCP stream. Pure codec: no I/O, no Boost.Serialization.
//
// A frame is
//
//   NNNNN SP archive        NNNNN: the archive's size in bytes, exactly 5 decimal digits
//
// and the archive is the Boost.Serialization text_oarchive that anytun 0.3.8 (Boost 1.74, archive
// library version 18) writes for its SyncCommand: single-space separated tokens, strings as
// "<size> <bytes>", integers in decimal, a "0 0" class preamble (tracking, class version) the
// first time each class appears. The layouts, token by token:
//
//   22 serialization::archive 18  0 0  10 connection  0 0 MUX  0 0  0 0 ROLE BITS
//     0 0 14 <14 salt bytes>  KEYLEN <key bytes>  0 0 WINDOW  SEQ  <size> HOST  PORT
//   22 serialization::archive 18  0 0  5 route  0 0  0 0 LENGTH  0 0 TYPE  <size> ADDR  MUX
//
// The second SyncBuffer (the key) has no preamble: Boost writes one per class, not per object.
// The encoder writes exactly these bytes; the parser takes exactly these bytes (single spaces, no
// leading zeros, nothing after the last token), which is what every anytun 0.3.8 emits. Nothing
// here throws on input; every rejection is a satp::Errc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "satp/error.hpp"
#include "satp/keys.hpp"

namespace satp::sync {

// The Boost archive library version anytun 0.3.8 on Debian 12 (Boost 1.74) writes. The parser
// takes this one only (others: Unsupported): the token layout above is verified for it alone.
inline constexpr unsigned kArchiveVersion = 18;
inline constexpr std::size_t kLengthDigits = 5;
inline constexpr std::size_t kHeaderSize = kLengthDigits + 1;  // "NNNNN "
inline constexpr std::size_t kMaxArchiveSize = 99999;          // what 5 digits can say
inline constexpr std::size_t kSaltSize = 14;

// anytun's -e, the same as the packet codec's; the wire value is the enum's (0 left, 1 right).
using Role = satp::Role;

// The peer's outer address as anytun writes it. 0.0.0.0 (or ::) means "not known yet": anytun
// writes it for a connection without -r, and a receiving anytun keeps its own endpoint then.
using RemoteAddress = std::variant<core::Ipv4Address, core::Ipv6Address>;

// One anytun connection: everything a node needs to serve the client of this MUX.
struct Connection {
  std::uint16_t mux = 0;
  Role role = Role::Left;
  // The kd-prf key length is not stored apart: anytun requires it to be 8 x the key's size, so
  // it is master_key.size() * 8 on the wire (128, 192 or 256).
  std::array<std::uint8_t, kSaltSize> master_salt{};
  std::vector<std::uint8_t> master_key;  // 16, 24 or 32 bytes (secret: never log it)
  std::uint16_t window_size = 0;         // anytun's window_size_t is 16 bits; 0 = no replay check
  std::uint32_t seq_nr = 0;              // the sender's TX sequence number when written
  RemoteAddress remote_host = core::Ipv4Address{};
  std::uint16_t remote_port = 0;

  bool has_remote() const noexcept;  // remote_host is neither 0.0.0.0 nor ::
  bool operator==(const Connection&) const = default;
};

// A route: inner destinations in `prefix` go to the connection with this MUX. anytun ignores the
// bits past the length when it builds its tree, so the parser clears them (10.1.2.3/8 is read
// as 10.0.0.0/8); the prefix types then hold the network as the rest of the project does.
// Ethernet routes (address type 2) exist in anytun's format but not in its CLI; they parse as
// Unsupported.
using RoutePrefix = std::variant<core::Ipv4Prefix, core::Ipv6Prefix>;

struct Route {
  RoutePrefix prefix;
  std::uint16_t mux = 0;
  bool operator==(const Route&) const = default;
};

using Record = std::variant<Connection, Route>;

// anytun 0.3.8 spins forever (100% CPU, routing table locked) inserting a prefix whose length is
// not a multiple of 8 and whose partial last byte runs up to 0xff: 192.0.2.128/25,
// 192.0.2.252/30, 10.192.0.0/10, 2001:db8:8000::/33 (seen with anytun-config and
// anytun-showtables; its tree fills the child slots of that byte with an 8-bit counter that
// wraps). Such a route must never reach a real anytun.
bool anytun_can_take(const RoutePrefix& prefix) noexcept;
// The same destinations as prefixes anytun can take: `prefix` itself when it can, else its
// sub-prefixes at the next multiple of 8 (at most 128 of them), in address order.
std::vector<RoutePrefix> anytun_safe_split(const RoutePrefix& prefix);

// The full frame ("NNNNN " + archive), exactly as anytun 0.3.8 writes it. BadKeyLength for a
// master key of other than 16, 24 or 32 bytes; Unsupported for a route anytun cannot take
// (split it first).
Result<std::string> encode(const Record& record);
// The same bytes into `out`; returns how many. NoSpace if they do not fit (nothing useful is
// left in `out` then).
Result<std::size_t> encode(const Record& record, std::span<char> out);

// One archive (a frame's body, without "NNNNN "). Errors:
//   BadArchive   not a Boost text archive of the shape above: bad signature, a class preamble
//                other than "0 0", separators other than one space, bytes after the last token
//   Unsupported  a well-formed archive of another library version, a record kind other than
//                "connection" or "route" (anyrtpproxy's "rtp"), a null kd-prf (key length 0), an
//                Ethernet route
//   BadRecord    a field missing, not a number, out of range (MUX, port, window > 65535, bytes >
//                255, role > 1, prefix length past the address), a key length other than 128,
//                192, 256, a salt of other than 14 bytes, a key of other than BITS/8 bytes, a
//                host or route address that does not parse
Result<Record> parse(std::string_view archive) noexcept;

struct FramerLimits {
  std::size_t max_record = 4096;     // largest archive accepted (anytun's are about 300 bytes)
  std::size_t max_buffered = 65536;  // unconsumed bytes held at once; at least max_record + 6
};

// Cuts archives out of the byte stream read from an anytun sync listener. Errors are sticky: the
// stream has no resynchronisation point, the caller closes the connection.
//   BadFrame  the 6 header bytes are not 5 ASCII digits and a space, the length is 0 (anytun
//             would wait forever) or above max_record (reported as soon as the header is in)
//   NoSpace   feed() would hold more than max_buffered unconsumed bytes; nothing is appended
class Framer {
 public:
  explicit Framer(FramerLimits limits = {}) noexcept;

  Result<void> feed(core::Bytes data);
  // The next complete archive (without its header), nullopt when more bytes are needed.
  Result<std::optional<std::string>> next();

  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  bool at_boundary() const noexcept { return buffered() == 0; }
  bool failed() const noexcept { return error_.has_value(); }

 private:
  Result<std::optional<std::string>> fail(Errc e);

  FramerLimits limits_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::optional<Errc> error_;
};

}  // namespace satp::sync
