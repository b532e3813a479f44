// The relay cluster's sync records (the table in cluster.hpp, read and written through the
// checked byte reader and writer) and links: nonce exchange, the SHA-256 link keys, and SATP
// sealing with gapless sequence numbers.
#include "relay/cluster.hpp"

#include <algorithm>
#include <string_view>
#include <type_traits>
#include <utility>

#include <cryptopp/sha.h>

#include "core/overloaded.hpp"
#include "relay/stream_framer.hpp"
#include "satp/replay.hpp"

namespace relay::cluster {
namespace {

// The type byte of a record is its alternative's index in Record plus one.
template <std::size_t Type, typename T>
constexpr bool kTypeIs = std::is_same_v<std::variant_alternative_t<Type - 1, Record>, T>;
static_assert(kTypeIs<1, Hello> && kTypeIs<2, Connection> && kTypeIs<3, Remove> &&
              kTypeIs<4, RouteAdd> && kTypeIs<5, RouteRemove> && kTypeIs<6, Peer> &&
              kTypeIs<7, Progress> && kTypeIs<8, Keepalive> && std::variant_size_v<Record> == 8);

constexpr std::uint8_t kFlagOpenTunnel = 0x01;
constexpr std::uint8_t kFlagRelayMode = 0x02;
constexpr std::uint8_t kFamilyNone = 0;
constexpr std::uint8_t kFamily4 = 4;
constexpr std::uint8_t kFamily6 = 6;

constexpr std::size_t kSealOverhead = satp::kHeaderSize + satp::kPayloadTypeSize + kTagLength;
// Where the record goes in Link::seal's output: after the frame header, the SATP header and the
// payload type, so that it is encrypted in place.
constexpr std::size_t kRecordOffset = kFrameHeader + satp::kHeaderSize + satp::kPayloadTypeSize;
static_assert(kMaxRecord + kSealOverhead <= satp::kMaxPacket);
static_assert(kFrameHeader + kSealOverhead + kMaxRecord <= kMaxRecord + 64);
// A link seals at most 2^32 records: its sequence numbers are 32-bit and never reused.
constexpr std::uint64_t kSeqSpace = std::uint64_t{1} << 32;

// ---- encoding ----

Result<void> check_marks(const std::vector<SenderMark>& rx) noexcept {
  if (rx.size() > kMaxSenders) return Errc::BadField;
  return {};
}

Result<void> check(const Hello& h) noexcept {
  if (h.name.empty() || h.name.size() > kMaxName) return Errc::BadField;
  return {};
}

Result<void> check(const Connection& c) noexcept {
  if (!satp::settings_problem(c.settings).empty()) return Errc::BadField;
  if (c.key.size != satp::key_size(c.settings.kd_prf)) return Errc::BadField;
  if (c.window > satp::kMaxWindowSize) return Errc::BadField;
  return check_marks(c.rx);
}

Result<void> check(const Progress& p) noexcept {
  return check_marks(p.rx);
}

// The other records have no field that can be out of range (prefixes are valid by
// construction: core::Ipv4Prefix::make refuses host bits).
template <typename T>
Result<void> check(const T&) noexcept {
  return {};
}

void put_endpoint(core::ByteWriter& w, const std::optional<Endpoint>& e) noexcept {
  if (!e) {
    w.u8(kFamilyNone);
  } else if (e->is_v4()) {
    w.u8(kFamily4).array(e->v4_address().bytes()).u16(e->port);
  } else {
    w.u8(kFamily6).array(e->address.bytes()).u16(e->port);
  }
}

void put_prefix(core::ByteWriter& w, const Prefix& prefix) noexcept {
  std::visit(core::Overloaded{
                 [&](const core::Ipv4Prefix& p) {
                   w.u8(kFamily4).u8(static_cast<std::uint8_t>(p.length()));
                   w.array(p.network().bytes());
                 },
                 [&](const core::Ipv6Prefix& p) {
                   w.u8(kFamily6).u8(static_cast<std::uint8_t>(p.length()));
                   w.array(p.network().bytes());
                 },
             },
             prefix);
}

void put_marks(core::ByteWriter& w, std::uint32_t tx_seq,
               const std::vector<SenderMark>& rx) noexcept {
  w.u32(tx_seq).u8(static_cast<std::uint8_t>(rx.size()));
  for (const auto& m : rx) w.u16(m.sender_id).u32(m.max);
}

void put(core::ByteWriter& w, const Hello& h) noexcept {
  w.u16(h.sender_id).u8(static_cast<std::uint8_t>(h.name.size())).text(h.name);
}

void put(core::ByteWriter& w, const Connection& c) noexcept {
  const auto& s = c.settings;
  w.u16(c.mux)
      .u8(static_cast<std::uint8_t>(s.cipher))
      .u8(static_cast<std::uint8_t>(s.kd_prf))
      .u8(static_cast<std::uint8_t>(s.auth))
      .u8(static_cast<std::uint8_t>(s.tag_length))
      .u8(static_cast<std::uint8_t>(s.role))
      .u8(static_cast<std::uint8_t>(c.key.size));
  for (const auto b : c.key.view()) w.u8(b);
  w.array(c.salt).u32(c.window);
  w.u8(static_cast<std::uint8_t>((c.open_tunnel ? kFlagOpenTunnel : 0) |
                                 (c.relay_mode ? kFlagRelayMode : 0)));
  put_endpoint(w, c.peer);
  put_marks(w, c.tx_seq, c.rx);
}

void put(core::ByteWriter& w, const Remove& r) noexcept {
  w.u16(r.mux);
}

void put(core::ByteWriter& w, const RouteAdd& r) noexcept {
  w.u16(r.route.mux);
  put_prefix(w, r.route.prefix);
}

void put(core::ByteWriter& w, const RouteRemove& r) noexcept {
  w.u16(r.route.mux);
  put_prefix(w, r.route.prefix);
}

void put(core::ByteWriter& w, const Peer& p) noexcept {
  w.u16(p.mux);
  put_endpoint(w, p.peer);
}

void put(core::ByteWriter& w, const Progress& p) noexcept {
  w.u16(p.mux);
  put_marks(w, p.tx_seq, p.rx);
}

void put(core::ByteWriter&, const Keepalive&) noexcept {}

// ---- decoding ----
// Every reader checks ok() before judging what it read: a truncated valid record is always
// Truncated, never BadField from the zeros a failed read returns.

Result<std::optional<Endpoint>> get_endpoint(core::ByteReader& in) {
  const std::uint8_t family = in.u8();
  if (!in.ok()) return Errc::Truncated;
  switch (family) {
    case kFamilyNone:
      return std::optional<Endpoint>{};
    case kFamily4: {
      const core::Ipv4Address a{in.array<4>()};
      const std::uint16_t port = in.u16();
      if (!in.ok()) return Errc::Truncated;
      return std::optional{Endpoint::v4(a, port)};
    }
    case kFamily6: {
      const core::Ipv6Address a{in.array<16>()};
      const std::uint16_t port = in.u16();
      if (!in.ok()) return Errc::Truncated;
      // One endpoint, one encoding: an IPv4 peer is sent as family 4.
      if (a.is_v4_mapped()) return Errc::BadField;
      return std::optional{Endpoint::v6(a, port)};
    }
    default:
      return Errc::BadField;
  }
}

// A route record: mux | family | length | address. The prefix is built straight into the
// record (a Result<Prefix> in between trips GCC 12's -Wmaybe-uninitialized inside variant2).
template <typename T>
Result<Record> get_route(core::ByteReader& in) {
  const std::uint16_t mux = in.u16();
  const std::uint8_t family = in.u8();
  const std::uint8_t length = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (family == kFamily4) {
    const core::Ipv4Address a{in.array<4>()};
    if (!in.ok()) return Errc::Truncated;
    auto p = core::Ipv4Prefix::make(a, length);  // refuses a length above 32 and host bits
    if (!p) return Errc::BadField;
    return T{Route{.prefix = *p, .mux = mux}};
  }
  if (family == kFamily6) {
    const core::Ipv6Address a{in.array<16>()};
    if (!in.ok()) return Errc::Truncated;
    auto p = core::Ipv6Prefix::make(a, length);
    if (!p) return Errc::BadField;
    return T{Route{.prefix = *p, .mux = mux}};
  }
  return Errc::BadField;
}

Result<std::vector<SenderMark>> get_marks(core::ByteReader& in) {
  const std::uint8_t count = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (count > kMaxSenders) return Errc::BadField;
  std::vector<SenderMark> rx(count);
  for (auto& m : rx) m = SenderMark{.sender_id = in.u16(), .max = in.u32()};
  if (!in.ok()) return Errc::Truncated;
  return rx;
}

Result<Record> get_hello(core::ByteReader& in) {
  Hello h;
  h.sender_id = in.u16();
  const std::uint8_t length = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (length == 0 || length > kMaxName) return Errc::BadField;
  const auto name = in.bytes(length);
  if (!in.ok()) return Errc::Truncated;
  h.name.resize(length);
  std::ranges::transform(name, h.name.begin(), [](std::byte b) { return static_cast<char>(b); });
  return h;
}

Result<Record> get_connection(core::ByteReader& in) {
  Connection c;
  c.mux = in.u16();
  c.settings = satp::Settings{.cipher = static_cast<satp::Cipher>(in.u8()),
                              .kd_prf = static_cast<satp::KdPrf>(in.u8()),
                              .auth = static_cast<satp::Auth>(in.u8()),
                              .tag_length = in.u8(),
                              .role = static_cast<satp::Role>(in.u8())};
  const std::uint8_t key_length = in.u8();
  if (!in.ok()) return Errc::Truncated;
  // settings_problem also refuses enum values out of range, before key_size() trusts kd_prf.
  if (!satp::settings_problem(c.settings).empty()) return Errc::BadField;
  if (key_length != satp::key_size(c.settings.kd_prf)) return Errc::BadField;
  const auto key = in.bytes(key_length);
  c.salt = in.array<satp::kSaltSize>();
  c.window = in.u32();
  const std::uint8_t flags = in.u8();
  if (!in.ok()) return Errc::Truncated;
  std::ranges::transform(key, c.key.bytes.begin(),
                         [](std::byte b) { return std::to_integer<std::uint8_t>(b); });
  c.key.size = key_length;
  if (c.window > satp::kMaxWindowSize) return Errc::BadField;
  if ((flags & ~(kFlagOpenTunnel | kFlagRelayMode)) != 0) return Errc::BadField;
  c.open_tunnel = (flags & kFlagOpenTunnel) != 0;
  c.relay_mode = (flags & kFlagRelayMode) != 0;
  auto peer = get_endpoint(in);
  if (!peer) return peer.error();
  c.peer = *peer;
  c.tx_seq = in.u32();
  auto rx = get_marks(in);
  if (!rx) return rx.error();
  c.rx = std::move(*rx);
  return c;
}

Result<Record> get_peer(core::ByteReader& in) {
  Peer p;
  p.mux = in.u16();
  if (!in.ok()) return Errc::Truncated;
  auto peer = get_endpoint(in);
  if (!peer) return peer.error();
  p.peer = *peer;
  return p;
}

Result<Record> get_progress(core::ByteReader& in) {
  Progress p;
  p.mux = in.u16();
  p.tx_seq = in.u32();
  auto rx = get_marks(in);  // a failed read above makes this one fail too
  if (!rx) return rx.error();
  p.rx = std::move(*rx);
  return p;
}

Result<Record> get_body(std::uint8_t type, core::ByteReader& in) {
  switch (type) {
    case 1:
      return get_hello(in);
    case 2:
      return get_connection(in);
    case 3: {
      const Remove r{.mux = in.u16()};
      if (!in.ok()) return Errc::Truncated;
      return r;
    }
    case 4:
      return get_route<RouteAdd>(in);
    case 5:
      return get_route<RouteRemove>(in);
    case 6:
      return get_peer(in);
    case 7:
      return get_progress(in);
    case 8:
      return Keepalive{};
    default:
      return Errc::UnknownType;
  }
}

// ---- links ----

using Digest = std::array<CryptoPP::byte, CryptoPP::SHA256::DIGESTSIZE>;

Digest link_hash(std::string_view label, std::span<const std::uint8_t> secret,
                 const Nonce& connector, const Nonce& acceptor) noexcept {
  CryptoPP::SHA256 sha;
  // Crypto++ takes unsigned char pointers; char and unsigned char may alias.
  sha.Update(reinterpret_cast<const CryptoPP::byte*>(label.data()), label.size());
  sha.Update(secret.data(), secret.size());
  sha.Update(connector.data(), connector.size());
  sha.Update(acceptor.data(), acceptor.size());
  Digest d{};
  sha.Final(d.data());
  return d;
}

}  // namespace

Result<std::size_t> encode(const Record& record, core::MutableBytes out) noexcept {
  const auto valid = std::visit([](const auto& r) { return check(r); }, record);
  if (!valid) return valid.error();
  core::ByteWriter w{out};
  w.u8(kVersion).u8(static_cast<std::uint8_t>(record.index() + 1));
  std::visit([&w](const auto& r) { put(w, r); }, record);
  if (!w.ok()) return Errc::NoSpace;
  return w.size();
}

Result<Record> decode(core::Bytes bytes) {
  core::ByteReader in{bytes};
  const std::uint8_t version = in.u8();
  if (!in.ok()) return Errc::Truncated;
  if (version != kVersion) return Errc::BadVersion;
  const std::uint8_t type = in.u8();
  if (!in.ok()) return Errc::Truncated;
  auto record = get_body(type, in);
  if (record && in.remaining() > 0) return Errc::TrailingBytes;
  return record;
}

LinkKeys derive_link_keys(std::span<const std::uint8_t> secret, const Nonce& connector,
                          const Nonce& acceptor) noexcept {
  LinkKeys keys;
  const Digest key = link_hash("satp-relay cluster key", secret, connector, acceptor);
  keys.key.size = satp::key_size(satp::KdPrf::AesCtr128);
  std::copy_n(key.begin(), keys.key.size, keys.key.bytes.begin());
  const Digest salt = link_hash("satp-relay cluster salt", secret, connector, acceptor);
  std::copy_n(salt.begin(), keys.salt.size(), keys.salt.begin());
  return keys;
}

struct Link::State {
  State(std::span<const std::uint8_t> s, Side d, const Nonce& n, std::uint16_t id)
      : secret{s.begin(), s.end()}, side{d}, own_nonce{n}, sender_id{id} {
    core::ByteWriter{nonce_frame}.u16(kNonceSize).array(own_nonce);
  }

  std::vector<std::uint8_t> secret;
  Side side;
  Nonce own_nonce;
  std::uint16_t sender_id;
  std::array<std::byte, kFrameHeader + kNonceSize> nonce_frame{};
  std::optional<satp::Codec> codec;  // set once the peer's nonce arrived
  std::uint64_t tx_seq = 0;          // the next to seal; kSeqSpace when spent
  std::uint64_t rx_seq = 0;          // the next expected; kSeqSpace matches no header
  std::optional<std::uint16_t> peer_sender_id;
  boost::system::error_code broken;  // the first receive() error, returned ever after

  Result<std::optional<Record>> take_nonce(core::Bytes frame);
  Result<std::optional<Record>> open(core::MutableBytes frame);
};

Result<std::optional<Record>> Link::State::take_nonce(core::Bytes frame) {
  if (frame.size() < kNonceSize) return Errc::Truncated;
  if (frame.size() > kNonceSize) return Errc::TrailingBytes;
  Nonce peer{};
  std::ranges::transform(frame, peer.begin(),
                         [](std::byte b) { return std::to_integer<std::uint8_t>(b); });
  const bool connector = side == Side::Connector;
  const LinkKeys keys = connector ? derive_link_keys(secret, own_nonce, peer)
                                  : derive_link_keys(secret, peer, own_nonce);
  // The roles give the two directions different packet keys under the one master key, so a
  // frame reflected back to its sender fails its tag.
  const satp::Settings settings{.cipher = satp::Cipher::AesCtr128,
                                .kd_prf = satp::KdPrf::AesCtr128,
                                .auth = satp::Auth::Sha1,
                                .tag_length = kTagLength,
                                .role = connector ? satp::Role::Left : satp::Role::Right};
  auto created = satp::Codec::create(settings, keys.key, keys.salt);
  if (!created) return created.error();
  codec = std::move(*created);
  return std::optional<Record>{};
}

Result<std::optional<Record>> Link::State::open(core::MutableBytes frame) {
  // No replay window: a link is one ordered stream, so anything but the next number is a replay
  // (or a reordering, which TCP does not do).
  auto opened = codec->open(frame);
  if (!opened) return opened.error();
  if (opened->header.seq != rx_seq) return satp::Errc::Replay;
  ++rx_seq;
  if (opened->header.mux != kClusterMux || opened->payload_type != kPayloadType)
    return Errc::BadField;
  peer_sender_id = opened->header.sender_id;
  auto record = decode(opened->payload);
  if (!record) return record.error();
  return std::optional{std::move(*record)};
}

Link::Link(std::span<const std::uint8_t> secret, Side side, const Nonce& own_nonce,
           std::uint16_t sender_id)
    : state_{std::make_unique<State>(secret, side, own_nonce, sender_id)} {}

Link::Link(Link&&) noexcept = default;
Link& Link::operator=(Link&&) noexcept = default;
Link::~Link() = default;

std::span<const std::byte> Link::nonce_frame() const noexcept {
  return state_->nonce_frame;
}

bool Link::established() const noexcept {
  return state_->codec.has_value();
}

std::optional<std::uint16_t> Link::peer_sender_id() const noexcept {
  return state_->peer_sender_id;
}

Result<std::optional<Record>> Link::receive(core::MutableBytes frame) {
  State& st = *state_;
  if (st.broken) return st.broken;
  auto r = st.codec ? st.open(frame) : st.take_nonce(frame);
  if (!r) st.broken = r.error();
  return r;
}

Result<core::MutableBytes> Link::seal(const Record& record, core::MutableBytes out) {
  State& st = *state_;
  if (st.broken) return st.broken;
  if (!st.codec) return Errc::NotAllowed;
  if (st.tx_seq == kSeqSpace) return satp::Errc::Replay;
  if (out.size() < kRecordOffset) return Errc::NoSpace;
  const auto length = encode(record, out.subspan(kRecordOffset));
  if (!length) return length.error();
  const auto packet = out.subspan(kFrameHeader);
  const satp::Header header{
      .seq = static_cast<std::uint32_t>(st.tx_seq), .sender_id = st.sender_id, .mux = kClusterMux};
  // The record already sits where the payload goes: sealed in place.
  const auto payload = packet.subspan(satp::kHeaderSize + satp::kPayloadTypeSize, *length);
  // encode() fitted the record into `out`, so only the tag can lack room (kMaxRecord keeps
  // every record below satp::kMaxPacket).
  const auto sealed = st.codec->seal(header, kPayloadType, payload, packet);
  if (!sealed) return Errc::NoSpace;
  write_frame_header(sealed->size(), out);
  ++st.tx_seq;
  return out.first(kFrameHeader + sealed->size());
}

}  // namespace relay::cluster
