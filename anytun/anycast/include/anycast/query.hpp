// The resolver's query protocol: what the LD_PRELOAD library (and dstm-client) ask
// anycast-resolver over its Unix socket (SOCK_SEQPACKET, one message per query and one per
// answer). Fixed sizes, big-endian, header-only so the preload library needs nothing else.
//
// Request, 40 bytes:  'A' 'Q' version op | u16 flags | u16 wait_ms | 16-byte address |
//                     16-byte unicast (op Failed: the member address that failed; else zero)
// Answer, 24 bytes:   'A' 'R' version status | u32 ttl_ms | 16-byte unicast
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace anycast::query {

inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kRequestSize = 40;
inline constexpr std::size_t kAnswerSize = 24;
inline constexpr char kDefaultSocket[] = "/run/anycast-resolver/query.sock";
// The environment variable that names another socket for the preload library.
inline constexpr char kSocketEnv[] = "ANYCAST_RESOLVER_SOCKET";

using Address = std::array<std::uint8_t, 16>;

enum class Op : std::uint8_t {
  Resolve = 1,  // which unicast address to use for `address`
  Failed = 2,   // a connection to `unicast` (the member of `address`) failed: rebind. No answer.
};

// Request flags.
inline constexpr std::uint16_t kFlagMayWait = 0x0001;  // the caller blocks: wait up to wait_ms

struct Request {
  Op op = Op::Resolve;
  std::uint16_t flags = 0;
  std::uint16_t wait_ms = 0;
  Address address{};
  Address unicast{};
  bool operator==(const Request&) const = default;
};

enum class Status : std::uint8_t {
  Unicast = 0,      // use `unicast` instead of the address, for at most ttl_ms
  PassThrough = 1,  // not an anycast destination: use the address as it is, for ttl_ms
  Pending = 2,      // not resolved within the budget (resolution continues): use it as it is
  Refused = 3,      // the request was malformed
};

struct Answer {
  Status status = Status::Refused;
  std::uint32_t ttl_ms = 0;
  Address unicast{};
  bool operator==(const Answer&) const = default;
};

namespace detail {
constexpr void put16(std::span<std::uint8_t> out, std::size_t at, std::uint16_t v) noexcept {
  out[at] = static_cast<std::uint8_t>(v >> 8);
  out[at + 1] = static_cast<std::uint8_t>(v & 0xff);
}
constexpr std::uint16_t get16(std::span<const std::uint8_t> in, std::size_t at) noexcept {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}
}  // namespace detail

constexpr std::array<std::uint8_t, kRequestSize> encode(const Request& r) noexcept {
  std::array<std::uint8_t, kRequestSize> out{};
  out[0] = 'A';
  out[1] = 'Q';
  out[2] = kVersion;
  out[3] = static_cast<std::uint8_t>(r.op);
  detail::put16(out, 4, r.flags);
  detail::put16(out, 6, r.wait_ms);
  for (std::size_t i = 0; i < 16; ++i) out[8 + i] = r.address[i];
  for (std::size_t i = 0; i < 16; ++i) out[24 + i] = r.unicast[i];
  return out;
}

// nullopt for anything but exactly one well-formed request (size, magic, version, op, no unknown
// flag bits).
constexpr std::optional<Request> parse_request(std::span<const std::uint8_t> in) noexcept {
  if (in.size() != kRequestSize || in[0] != 'A' || in[1] != 'Q' || in[2] != kVersion)
    return std::nullopt;
  if (in[3] != static_cast<std::uint8_t>(Op::Resolve) &&
      in[3] != static_cast<std::uint8_t>(Op::Failed))
    return std::nullopt;
  Request r;
  r.op = static_cast<Op>(in[3]);
  r.flags = detail::get16(in, 4);
  if ((r.flags & ~kFlagMayWait) != 0) return std::nullopt;
  r.wait_ms = detail::get16(in, 6);
  for (std::size_t i = 0; i < 16; ++i) r.address[i] = in[8 + i];
  for (std::size_t i = 0; i < 16; ++i) r.unicast[i] = in[24 + i];
  return r;
}

constexpr std::array<std::uint8_t, kAnswerSize> encode(const Answer& a) noexcept {
  std::array<std::uint8_t, kAnswerSize> out{};
  out[0] = 'A';
  out[1] = 'R';
  out[2] = kVersion;
  out[3] = static_cast<std::uint8_t>(a.status);
  detail::put16(out, 4, static_cast<std::uint16_t>(a.ttl_ms >> 16));
  detail::put16(out, 6, static_cast<std::uint16_t>(a.ttl_ms & 0xffff));
  for (std::size_t i = 0; i < 16; ++i) out[8 + i] = a.unicast[i];
  return out;
}

constexpr std::optional<Answer> parse_answer(std::span<const std::uint8_t> in) noexcept {
  if (in.size() != kAnswerSize || in[0] != 'A' || in[1] != 'R' || in[2] != kVersion)
    return std::nullopt;
  if (in[3] > static_cast<std::uint8_t>(Status::Refused)) return std::nullopt;
  Answer a;
  a.status = static_cast<Status>(in[3]);
  a.ttl_ms = (std::uint32_t{detail::get16(in, 4)} << 16) | detail::get16(in, 6);
  for (std::size_t i = 0; i < 16; ++i) a.unicast[i] = in[8 + i];
  return a;
}

}  // namespace anycast::query
