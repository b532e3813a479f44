// The relay's control messages (relay/control.hpp): written and read field by field through the
// core's checked writer and reader.
#include "relay/control.hpp"

#include <array>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace relay::control {
namespace {

constexpr std::uint8_t kFamilyPort = 0;  // Allocate's client endpoint: no address, a port
constexpr std::uint8_t kFamily4 = 4;
constexpr std::uint8_t kFamily6 = 6;

enum class Type : std::uint8_t {
  Allocate = 1,
  Allocated,
  Refresh,
  Refreshed,
  Release,
  Released,
  Error,
  Locate,
  Located,
};

// Body lists the messages in type order, so a body's type is its index + 1.
template <std::size_t I, typename T>
constexpr bool kAt = std::is_same_v<std::variant_alternative_t<I, Body>, T>;
static_assert(kAt<0, Allocate> && kAt<1, Allocated> && kAt<2, Refresh> && kAt<3, Refreshed> &&
              kAt<4, Release> && kAt<5, Released> && kAt<6, Error> && kAt<7, Locate> &&
              kAt<8, Located>);

bool known(Code code) noexcept {
  switch (code) {
    case Code::BadRequest:
    case Code::NotAllowed:
    case Code::Exhausted:
    case Code::UnknownBinding:
    case Code::Unavailable:
      return true;
  }
  return false;
}

bool continuation(std::uint8_t b) noexcept {
  return (b & 0xc0) == 0x80;
}

// RFC 3629 section 4: no overlong forms, no surrogates (U+D800..DFFF), nothing above U+10FFFF.
bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  while (i < s.size()) {
    const std::uint8_t b = at(i);
    std::size_t n = 0;  // continuation bytes
    std::uint8_t lo = 0x80;
    std::uint8_t hi = 0xbf;  // range of the first continuation byte
    if (b < 0x80) {
      n = 0;
    } else if (b >= 0xc2 && b <= 0xdf) {
      n = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      if (b == 0xe0) lo = 0xa0;  // overlong below U+0800
      if (b == 0xed) hi = 0x9f;  // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      if (b == 0xf0) lo = 0x90;  // overlong below U+10000
      if (b == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return false;  // a stray continuation byte, C0/C1 (overlong ASCII) or F5..FF
    }
    if (n > s.size() - i - 1) return false;
    if (n > 0 && (at(i + 1) < lo || at(i + 1) > hi)) return false;
    for (std::size_t k = 2; k <= n; ++k)
      if (!continuation(at(i + k))) return false;
    i += n + 1;
  }
  return true;
}

// --- Writing ----------------------------------------------------------------------------------

// Family and address of an address held in Endpoint's form.
void write_address(core::ByteWriter& w, const core::Ipv6Address& a) noexcept {
  if (a.is_v4_mapped()) {
    const auto& b = a.bytes();
    w.u8(kFamily4).array(std::array<std::uint8_t, 4>{b[12], b[13], b[14], b[15]});
  } else {
    w.u8(kFamily6).array(a.bytes());
  }
}

void write_endpoint(core::ByteWriter& w, const Endpoint& e) noexcept {
  write_address(w, e.address);
  w.u16(e.port);
}

void write_body(core::ByteWriter& w, const Allocate& m) noexcept {
  w.u32(m.lifetime);
  write_endpoint(w, m.peer);
  if (m.client_address)
    write_address(w, *m.client_address);
  else
    w.u8(kFamilyPort);
  w.u16(m.client_port);
}
void write_body(core::ByteWriter& w, const Allocated& m) noexcept {
  w.u32(m.binding).u32(m.lifetime);
  write_endpoint(w, m.relay);
}
void write_body(core::ByteWriter& w, const Refresh& m) noexcept {
  w.u32(m.binding).u32(m.lifetime);
}
void write_body(core::ByteWriter& w, const Refreshed& m) noexcept {
  w.u32(m.binding).u32(m.lifetime);
}
void write_body(core::ByteWriter& w, const Release& m) noexcept {
  w.u32(m.binding);
}
void write_body(core::ByteWriter& w, const Released& m) noexcept {
  w.u32(m.binding);
}
void write_body(core::ByteWriter& w, const Error& m) noexcept {
  w.u16(static_cast<std::uint16_t>(m.code)).u8(static_cast<std::uint8_t>(m.reason.size()));
  w.text(m.reason);
}
void write_body(core::ByteWriter&, const Locate&) noexcept {}
void write_body(core::ByteWriter& w, const Located& m) noexcept {
  write_endpoint(w, m.tcp);
}

// --- Reading ----------------------------------------------------------------------------------

// An address of `family` in Endpoint's form (IPv4 mapped).
Result<core::Ipv6Address> read_address(core::ByteReader& in, std::uint8_t family) noexcept {
  if (family == kFamily4) {
    const core::Ipv4Address a{in.array<4>()};
    if (!in.ok()) return Errc::Truncated;
    return Endpoint::v4(a, 0).address;
  }
  if (family == kFamily6) {
    const core::Ipv6Address a{in.array<16>()};
    if (!in.ok()) return Errc::Truncated;
    // One encoding per address: an IPv4 one travels as family 4.
    if (a.is_v4_mapped()) return Errc::BadField;
    return a;
  }
  return Errc::BadField;
}

Result<Endpoint> read_endpoint(core::ByteReader& in) noexcept {
  const auto family = in.u8();
  if (!in.ok()) return Errc::Truncated;
  auto address = read_address(in, family);
  if (!address) return address.error();
  const auto port = in.u16();
  if (!in.ok()) return Errc::Truncated;
  return Endpoint{*address, port};
}

Result<Body> read_allocate(core::ByteReader& in) noexcept {
  Allocate m;
  m.lifetime = in.u32();
  auto peer = read_endpoint(in);  // a short lifetime fails the reader: Truncated here
  if (!peer) return peer.error();
  m.peer = *peer;
  const auto family = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (family != kFamilyPort) {
    auto address = read_address(in, family);
    if (!address) return address.error();
    m.client_address = *address;
  }
  m.client_port = in.u16();
  if (!in.ok()) return Errc::Truncated;
  return Body{m};
}

Result<Body> read_allocated(core::ByteReader& in) noexcept {
  Allocated m;
  m.binding = in.u32();
  m.lifetime = in.u32();
  auto relay = read_endpoint(in);
  if (!relay) return relay.error();
  m.relay = *relay;
  return Body{m};
}

// Refresh and Refreshed share their body.
template <typename M>
Result<Body> read_binding_lifetime(core::ByteReader& in) noexcept {
  M m;
  m.binding = in.u32();
  m.lifetime = in.u32();
  if (!in.ok()) return Errc::Truncated;
  return Body{m};
}

// Release and Released share their body.
template <typename M>
Result<Body> read_binding(core::ByteReader& in) noexcept {
  M m;
  m.binding = in.u32();
  if (!in.ok()) return Errc::Truncated;
  return Body{m};
}

Result<Body> read_error(core::ByteReader& in) {
  const auto code = static_cast<Code>(in.u16());
  const auto length = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (!known(code) || length > kMaxReason) return Errc::BadField;
  const auto bytes = in.bytes(length);
  if (!in.ok()) return Errc::Truncated;
  std::string reason;
  reason.reserve(bytes.size());
  for (auto b : bytes) reason.push_back(static_cast<char>(std::to_integer<unsigned char>(b)));
  if (!valid_utf8(reason)) return Errc::BadField;
  return Body{Error{code, std::move(reason)}};
}

Result<Body> read_located(core::ByteReader& in) noexcept {
  auto tcp = read_endpoint(in);
  if (!tcp) return tcp.error();
  return Body{Located{*tcp}};
}

Result<Body> read_body(Type type, core::ByteReader& in) {
  switch (type) {
    case Type::Allocate:
      return read_allocate(in);
    case Type::Allocated:
      return read_allocated(in);
    case Type::Refresh:
      return read_binding_lifetime<Refresh>(in);
    case Type::Refreshed:
      return read_binding_lifetime<Refreshed>(in);
    case Type::Release:
      return read_binding<Release>(in);
    case Type::Released:
      return read_binding<Released>(in);
    case Type::Error:
      return read_error(in);
    case Type::Locate:
      return Body{Locate{}};
    case Type::Located:
      return read_located(in);
  }
  return Errc::UnknownType;
}

}  // namespace

Result<std::size_t> encode(const Message& message, core::MutableBytes out) noexcept {
  if (const auto* e = std::get_if<Error>(&message.body);
      e && (!known(e->code) || e->reason.size() > kMaxReason || !valid_utf8(e->reason)))
    return Errc::BadField;
  core::ByteWriter w{out};
  w.u8(kVersion).u8(static_cast<std::uint8_t>(message.body.index() + 1)).u32(message.request);
  std::visit([&](const auto& body) { write_body(w, body); }, message.body);
  if (!w.ok()) return Errc::NoSpace;
  return w.size();
}

Result<Message> decode(core::Bytes bytes) {
  core::ByteReader in{bytes};
  const auto version = in.u8();
  if (!in.ok()) return Errc::Truncated;
  // The version decides how the rest reads, so it is judged before anything else.
  if (version != kVersion) return Errc::BadVersion;
  const auto type = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (type < static_cast<std::uint8_t>(Type::Allocate) ||
      type > static_cast<std::uint8_t>(Type::Located))
    return Errc::UnknownType;
  Message m;
  m.request = in.u32();
  if (!in.ok()) return Errc::Truncated;
  auto body = read_body(static_cast<Type>(type), in);
  if (!body) return body.error();
  if (in.remaining() != 0) return Errc::TrailingBytes;
  m.body = std::move(*body);
  return m;
}

}  // namespace relay::control
