// Tests for relay/cluster.hpp: every record type byte for byte from the table, round trips, every
// truncation and bad field, the link keys against a value computed outside this code, and two
// links (connector and acceptor) talking, with tampered, replayed and foreign frames refused.
#include "relay/cluster.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "relay/stream_framer.hpp"
#include "support/packet_builder.hpp"

using namespace relay::cluster;
using relay::Endpoint;
using relay::Errc;
using relay::Route;
using test::hex;
using Buffer = std::vector<std::byte>;

namespace {

template <std::size_t N>
std::array<std::uint8_t, N> octets(std::string_view h) {
  const auto b = hex(h);
  REQUIRE(b.size() == N);
  std::array<std::uint8_t, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = std::to_integer<std::uint8_t>(b[i]);
  return out;
}

satp::MasterKey key_of(std::string_view h) {
  satp::MasterKey k;
  const auto b = hex(h);
  REQUIRE(b.size() <= k.bytes.size());
  for (std::size_t i = 0; i < b.size(); ++i) k.bytes[i] = std::to_integer<std::uint8_t>(b[i]);
  k.size = b.size();
  return k;
}

Buffer encoded(const Record& r) {
  Buffer out(kMaxRecord);
  const auto n = encode(r, out);
  REQUIRE(n);
  out.resize(*n);
  return out;
}

Errc decode_error(const Buffer& b) {
  const auto r = decode(b);
  REQUIRE_FALSE(r);
  return static_cast<Errc>(r.error().value());
}

Errc encode_error(const Record& r) {
  Buffer out(kMaxRecord + 64);
  const auto n = encode(r, out);
  REQUIRE_FALSE(n);
  return static_cast<Errc>(n.error().value());
}

Buffer with(Buffer b, std::size_t offset, std::string_view h) {
  const auto patch = hex(h);
  REQUIRE(offset + patch.size() <= b.size());
  std::ranges::copy(patch, b.begin() + static_cast<std::ptrdiff_t>(offset));
  return b;
}

Buffer concat(const Buffer& a, const Buffer& b) {
  Buffer out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Endpoint v4_endpoint(std::string_view a, std::uint16_t port) {
  return Endpoint::v4(test::v4(a), port);
}

Endpoint v6_endpoint(std::string_view a, std::uint16_t port) {
  return Endpoint::v6(test::v6(a), port);
}

// The Connection of the byte-layout test, and its bytes written from the table.
Connection sample_connection() {
  Connection c;
  c.mux = 5;
  c.settings = satp::Settings{.tag_length = 10, .role = satp::Role::Right};
  c.key = key_of("000102030405060708090a0b0c0d0e0f");
  c.salt = octets<14>("101112131415161718191a1b1c1d");
  c.window = 1024;
  c.open_tunnel = true;
  c.relay_mode = true;
  c.peer = v4_endpoint("192.0.2.7", 4444);
  c.tx_seq = 0x01020304;
  c.rx = {{1, 0x0a0b0c0d}, {2, 5}};
  return c;
}

const Buffer kConnectionBytes =
    hex("01 02"                                // version 1, type Connection
        "0005"                                 // mux
        "01 01 01 0a 01"                       // aes-ctr-128, aes-ctr-128, sha1, tag 10, right
        "10 000102030405060708090a0b0c0d0e0f"  // key length, key
        "101112131415161718191a1b1c1d"         // salt
        "00000400"                             // window 1024
        "03"                                   // open tunnel | relay mode
        "04 c0000207 115c"                     // peer 192.0.2.7:4444
        "01020304"                             // tx seq
        "02 0001 0a0b0c0d 0002 00000005");     // two marks

// The largest record there is.
Connection largest_connection() {
  Connection c;
  c.mux = 0xffff;
  c.settings = satp::Settings{
      .cipher = satp::Cipher::AesCtr256, .kd_prf = satp::KdPrf::AesCtr256, .tag_length = 20};
  c.key.size = 32;
  c.key.bytes.fill(0xab);
  c.salt.fill(0xcd);
  c.window = satp::kMaxWindowSize;
  c.peer = v6_endpoint("2001:db8::ffff", 65535);
  c.tx_seq = 0xffffffff;
  for (std::uint16_t i = 0; i < kMaxSenders; ++i) c.rx.push_back({i, 0xfffffff0u + i});
  return c;
}

struct Sample {
  const char* what;
  Record record;
  Buffer bytes;
};

// Every record type (and the variants of its fields), with its bytes from the table.
std::vector<Sample> samples() {
  Connection null_suite;
  null_suite.mux = 0x0102;
  null_suite.settings = satp::Settings{.cipher = satp::Cipher::Null,
                                       .kd_prf = satp::KdPrf::Null,
                                       .auth = satp::Auth::Null,
                                       .tag_length = 0};
  null_suite.salt = octets<14>("2021222324252627282922232425");
  return {
      {"hello", Hello{0x0102, "node-a"}, hex("01 01 0102 06 6e6f64652d61")},
      {"connection", sample_connection(), kConnectionBytes},
      {"connection with the null suite, no peer and no marks", null_suite,
       hex("01 02 0102 00 00 00 00 00 00 2021222324252627282922232425 00000000 00 00 00000000 "
           "00")},
      {"remove", Remove{7}, hex("01 03 0007")},
      {"route add v4", RouteAdd{Route{core::Ipv4Prefix::parse("192.0.2.0/24").value(), 9}},
       hex("01 04 0009 04 18 c0000200")},
      {"route add v4 default", RouteAdd{Route{core::Ipv4Prefix::parse("0.0.0.0/0").value(), 1}},
       hex("01 04 0001 04 00 00000000")},
      {"route remove v6",
       RouteRemove{Route{core::Ipv6Prefix::parse("2001:db8::/32").value(), 0x0102}},
       hex("01 05 0102 06 20 20010db8000000000000000000000000")},
      {"route remove v6 host",
       RouteRemove{Route{core::Ipv6Prefix::parse("2001:db8::1/128").value(), 3}},
       hex("01 05 0003 06 80 20010db8000000000000000000000001")},
      {"peer v6", Peer{3, v6_endpoint("2001:db8::1", 443)},
       hex("01 06 0003 06 20010db8000000000000000000000001 01bb")},
      {"peer v4", Peer{4, v4_endpoint("198.51.100.9", 1)}, hex("01 06 0004 04 c6336409 0001")},
      {"peer none", Peer{3, std::nullopt}, hex("01 06 0003 00")},
      {"progress", Progress{4, 7, {{3, 0xffffffff}}}, hex("01 07 0004 00000007 01 0003 ffffffff")},
      {"progress without marks", Progress{0xfffe, 0, {}}, hex("01 07 fffe 00000000 00")},
      {"keepalive", Keepalive{}, hex("01 08")},
  };
}

// ---- links ----

const std::vector<std::uint8_t> kSecret = {'c', 'l', 'u', 's', 't', 'e', 'r', '-', 's', 'e', 'c'};
constexpr Nonce kConnectorNonce = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                   0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
constexpr Nonce kAcceptorNonce = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
                                  0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};
constexpr std::uint16_t kConnectorId = 11;
constexpr std::uint16_t kAcceptorId = 22;

// A frame without its 2-byte header, as the framer hands it over.
Buffer body_of(std::span<const std::byte> frame) {
  REQUIRE(frame.size() >= relay::kFrameHeader);
  REQUIRE(core::load_be16(frame) == frame.size() - relay::kFrameHeader);
  return {frame.begin() + relay::kFrameHeader, frame.end()};
}

Link connector(const Nonce& nonce = kConnectorNonce) {
  return Link{kSecret, Link::Side::Connector, nonce, kConnectorId};
}
Link acceptor(const Nonce& nonce = kAcceptorNonce) {
  return Link{kSecret, Link::Side::Acceptor, nonce, kAcceptorId};
}

// Hands `from`'s nonce frame to `to`.
void give_nonce(const Link& from, Link& to) {
  auto body = body_of(from.nonce_frame());
  const auto r = to.receive(body);
  REQUIRE(r);
  REQUIRE_FALSE(r->has_value());
  REQUIRE(to.established());
}

struct Pair {
  Link c = connector();
  Link a = acceptor();
  Pair() {
    give_nonce(c, a);
    give_nonce(a, c);
  }
};

Buffer sealed(Link& link, const Record& r) {
  Buffer out(kMaxRecord + 64);
  const auto frame = link.seal(r, out);
  REQUIRE(frame);
  return body_of(*frame);
}

Record received(Link& link, Buffer frame) {
  const auto r = link.receive(frame);
  REQUIRE(r);
  REQUIRE(r->has_value());
  return **r;
}

boost::system::error_code receive_error(Link& link, Buffer frame) {
  const auto r = link.receive(frame);
  REQUIRE_FALSE(r);
  return r.error();
}

// A frame sealed outside Link with the connector's keys and role: a peer that speaks SATP
// correctly but puts something else in the header or payload.
Buffer forged(std::uint32_t seq, std::uint16_t mux, std::uint16_t type, const Buffer& payload) {
  const auto keys = derive_link_keys(kSecret, kConnectorNonce, kAcceptorNonce);
  auto codec = satp::Codec::create(satp::Settings{.tag_length = kTagLength}, keys.key, keys.salt);
  REQUIRE(codec);
  Buffer out(satp::kMaxPacket);
  const auto packet =
      codec->seal({.seq = seq, .sender_id = kConnectorId, .mux = mux}, type, payload, out);
  REQUIRE(packet);
  return {packet->begin(), packet->end()};
}

}  // namespace

TEST_CASE("cluster: each record type encodes to the bytes of the table", "[relay][cluster]") {
  for (const auto& s : samples()) {
    INFO(s.what);
    CHECK(encoded(s.record) == s.bytes);
  }
}

TEST_CASE("cluster: each record type decodes back to itself", "[relay][cluster]") {
  for (const auto& s : samples()) {
    INFO(s.what);
    const auto r = decode(s.bytes);
    REQUIRE(r);
    CHECK(*r == s.record);
    CHECK(r->index() == s.record.index());
  }
  const auto big = decode(encoded(largest_connection()));
  REQUIRE(big);
  CHECK(*big == Record{largest_connection()});
}

TEST_CASE("cluster: a v4-mapped endpoint is sent as family 4", "[relay][cluster]") {
  const Peer p{1, v6_endpoint("::ffff:192.0.2.1", 80)};
  CHECK(encoded(p) == hex("01 06 0001 04 c0000201 0050"));
  CHECK(decode(encoded(p)).value() == Record{p});
}

TEST_CASE("cluster: the largest record is kMaxRecord bytes and fits a sealed frame",
          "[relay][cluster]") {
  CHECK(encoded(largest_connection()).size() == kMaxRecord);
  CHECK(kMaxRecord == 277);
  CHECK(kMaxRecord + satp::kHeaderSize + satp::kPayloadTypeSize + kTagLength <= satp::kMaxPacket);
  Buffer short_by_one(kMaxRecord - 1);
  CHECK(encode(largest_connection(), short_by_one).error() == Errc::NoSpace);
}

TEST_CASE("cluster: encode reports NoSpace for a buffer one byte short", "[relay][cluster]") {
  for (const auto& s : samples()) {
    INFO(s.what);
    Buffer out(s.bytes.size() - 1);
    CHECK(encode(s.record, out).error() == Errc::NoSpace);
    Buffer exact(s.bytes.size());
    CHECK(encode(s.record, exact).value() == s.bytes.size());
  }
}

TEST_CASE("cluster: every truncation of a record is Truncated", "[relay][cluster]") {
  for (const auto& s : samples()) {
    for (std::size_t n = 0; n < s.bytes.size(); ++n) {
      INFO(s.what << " cut to " << n);
      CHECK(decode_error(Buffer(s.bytes.begin(), s.bytes.begin() + static_cast<long>(n))) ==
            Errc::Truncated);
    }
  }
  const auto big = encoded(largest_connection());
  for (std::size_t n = 0; n < big.size(); ++n) {
    INFO("largest cut to " << n);
    CHECK(decode_error(Buffer(big.begin(), big.begin() + static_cast<long>(n))) == Errc::Truncated);
  }
}

TEST_CASE("cluster: a byte after a record is TrailingBytes", "[relay][cluster]") {
  for (const auto& s : samples()) {
    INFO(s.what);
    CHECK(decode_error(concat(s.bytes, hex("00"))) == Errc::TrailingBytes);
  }
}

TEST_CASE("cluster: another version and unknown types are refused", "[relay][cluster]") {
  CHECK(decode_error(hex("00 08")) == Errc::BadVersion);
  CHECK(decode_error(hex("02 08")) == Errc::BadVersion);
  CHECK(decode_error(hex("02")) == Errc::BadVersion);
  CHECK(decode_error(hex("01 00")) == Errc::UnknownType);
  CHECK(decode_error(hex("01 09")) == Errc::UnknownType);
  CHECK(decode_error(hex("01 ff 0000")) == Errc::UnknownType);
}

TEST_CASE("cluster: decode refuses each bad field of a Connection", "[relay][cluster]") {
  const Buffer& c = kConnectionBytes;
  // Offsets: 4 cipher, 5 kd_prf, 6 auth, 7 tag length, 8 role, 9 key length, 10 key, 26 salt,
  // 40 window, 44 flags, 45 peer family, 52 tx seq, 56 count.
  REQUIRE(decode(c));
  CHECK(decode_error(with(c, 4, "04")) == Errc::BadField);         // cipher out of range
  CHECK(decode_error(with(c, 5, "04")) == Errc::BadField);         // kd_prf out of range
  CHECK(decode_error(with(c, 6, "02")) == Errc::BadField);         // auth out of range
  CHECK(decode_error(with(c, 7, "15")) == Errc::BadField);         // tag length 21
  CHECK(decode_error(with(c, 6, "00")) == Errc::BadField);         // auth null with a tag
  CHECK(decode_error(with(c, 8, "02")) == Errc::BadField);         // role out of range
  CHECK(decode_error(with(c, 9, "18")) == Errc::BadField);         // 24-byte key for aes-ctr-128
  CHECK(decode_error(with(c, 9, "00")) == Errc::BadField);         // no key for aes-ctr-128
  CHECK(decode_error(with(c, 9, "11")) == Errc::BadField);         // 17 bytes
  CHECK(decode_error(with(c, 5, "03")) == Errc::BadField);         // 16-byte key for aes-ctr-256
  CHECK(decode_error(with(c, 5, "00")) == Errc::BadField);         // a key with kd_prf null
  CHECK(decode_error(with(c, 40, "00010001")) == Errc::BadField);  // window above 2^16
  CHECK(decode_error(with(c, 44, "04")) == Errc::BadField);        // unknown flag
  CHECK(decode_error(with(c, 44, "80")) == Errc::BadField);
  CHECK(decode_error(with(c, 45, "05")) == Errc::BadField);  // unknown family
  CHECK(decode_error(with(c, 45, "01")) == Errc::BadField);
  // A mark count above kMaxSenders, with the marks there.
  Buffer many(c.begin(), c.begin() + 56);
  many.push_back(std::byte{33});
  for (int i = 0; i < 33; ++i) many = concat(many, hex("0001 00000001"));
  CHECK(decode_error(many) == Errc::BadField);
  // The limits themselves are fine.
  CHECK(decode(with(c, 40, "00010000")));
  CHECK(decode(with(c, 7, "14")));
  CHECK(decode(with(c, 44, "00")));
}

TEST_CASE("cluster: decode refuses bad endpoints prefixes names and counts", "[relay][cluster]") {
  // Peer endpoints.
  CHECK(decode_error(hex("01 06 0003 06 00000000000000000000ffffc0000201 0050")) ==
        Errc::BadField);  // v4-mapped as family 6
  CHECK(decode_error(hex("01 06 0003 05 c0000201 0050")) == Errc::BadField);
  CHECK(decode_error(hex("01 06 0003 ff")) == Errc::BadField);
  // Prefixes.
  CHECK(decode_error(hex("01 04 0009 04 21 c0000200")) == Errc::BadField);  // /33
  CHECK(decode_error(hex("01 04 0009 04 18 c0000201")) == Errc::BadField);  // host bits
  CHECK(decode_error(hex("01 04 0009 04 00 00000001")) == Errc::BadField);
  CHECK(decode_error(hex("01 05 0009 06 81 20010db8000000000000000000000000")) ==
        Errc::BadField);  // /129
  CHECK(decode_error(hex("01 05 0009 06 20 20010db8000000000000000000000001")) ==
        Errc::BadField);                                           // host bits
  CHECK(decode_error(hex("01 04 0009 00 00")) == Errc::BadField);  // no family
  CHECK(decode_error(hex("01 04 0009 05 18 c0000200")) == Errc::BadField);
  CHECK(decode(hex("01 04 0009 04 20 c0000201")));  // a /32 has no host bits
  // Names.
  CHECK(decode_error(hex("01 01 0001 00")) == Errc::BadField);
  Buffer long_name = hex("01 01 0001 41");
  long_name.resize(long_name.size() + 65, std::byte{'x'});
  CHECK(decode_error(long_name) == Errc::BadField);
  Buffer longest = hex("01 01 0001 40");
  longest.resize(longest.size() + 64, std::byte{'x'});
  CHECK(std::get<Hello>(decode(longest).value()).name == std::string(64, 'x'));
  // Mark counts.
  Buffer progress = hex("01 07 0004 00000007 21");
  for (int i = 0; i < 33; ++i) progress = concat(progress, hex("0001 00000001"));
  CHECK(decode_error(progress) == Errc::BadField);
}

TEST_CASE("cluster: encode refuses each bad field", "[relay][cluster]") {
  CHECK(encode_error(Hello{1, ""}) == Errc::BadField);
  CHECK(encode_error(Hello{1, std::string(kMaxName + 1, 'x')}) == Errc::BadField);
  CHECK(encoded(Hello{1, std::string(kMaxName, 'x')}).size() == 5 + kMaxName);

  auto c = sample_connection();
  c.key = key_of("000102030405060708090a0b0c0d0e0f0001020304050607");  // 24 bytes
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.settings.kd_prf = satp::KdPrf::Null;  // the 16-byte key no longer fits
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.settings.tag_length = 21;
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.settings.auth = satp::Auth::Null;
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.settings.cipher = static_cast<satp::Cipher>(4);
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.window = satp::kMaxWindowSize + 1;
  CHECK(encode_error(c) == Errc::BadField);
  c = sample_connection();
  c.rx.resize(kMaxSenders + 1);
  CHECK(encode_error(c) == Errc::BadField);
  Progress p{1, 2, {}};
  p.rx.resize(kMaxSenders + 1);
  CHECK(encode_error(p) == Errc::BadField);
  p.rx.resize(kMaxSenders);
  CHECK(encoded(p).size() == 9 + 6 * kMaxSenders);
}

TEST_CASE("cluster: link keys match SHA-256 computed independently", "[relay][cluster]") {
  // python3: hashlib.sha256(b"satp-relay cluster key" + secret + connector + acceptor), and
  // "... salt", with the secret "documentation-cluster-secret" and nonces a0..af and b0..bf.
  const std::string_view text = "documentation-cluster-secret";
  const std::vector<std::uint8_t> secret(text.begin(), text.end());
  const auto keys = derive_link_keys(secret, kConnectorNonce, kAcceptorNonce);
  CHECK(keys.key == key_of("3a3fd4271ff8f344e2d897454347e53f"));
  CHECK(keys.key.size == 16);
  CHECK(keys.salt == octets<14>("7ec9505bf281988f55d02c2cb1f0"));
}

TEST_CASE("cluster: link keys are deterministic and depend on every input", "[relay][cluster]") {
  const auto base = derive_link_keys(kSecret, kConnectorNonce, kAcceptorNonce);
  const auto again = derive_link_keys(kSecret, kConnectorNonce, kAcceptorNonce);
  CHECK(base.key == again.key);
  CHECK(base.salt == again.salt);

  auto differs = [&](const LinkKeys& k) {
    CHECK_FALSE(k.key == base.key);
    CHECK(k.salt != base.salt);
  };
  for (std::size_t i = 0; i < kSecret.size(); ++i) {
    auto s = kSecret;
    s[i] ^= 0x01;
    differs(derive_link_keys(s, kConnectorNonce, kAcceptorNonce));
  }
  auto longer = kSecret;
  longer.push_back(0);
  differs(derive_link_keys(longer, kConnectorNonce, kAcceptorNonce));
  differs(derive_link_keys({}, kConnectorNonce, kAcceptorNonce));
  for (std::size_t i = 0; i < kNonceSize; ++i) {
    auto n = kConnectorNonce;
    n[i] ^= 0x80;
    differs(derive_link_keys(kSecret, n, kAcceptorNonce));
    n = kAcceptorNonce;
    n[i] ^= 0x80;
    differs(derive_link_keys(kSecret, kConnectorNonce, n));
  }
  differs(derive_link_keys(kSecret, kAcceptorNonce, kConnectorNonce));  // the sides matter
}

TEST_CASE("cluster: the nonce frame is a frame header and the nonce", "[relay][cluster]") {
  const auto c = connector();
  CHECK(Buffer(c.nonce_frame().begin(), c.nonce_frame().end()) ==
        hex("0010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"));
  CHECK_FALSE(c.established());
  CHECK_FALSE(c.peer_sender_id());
}

TEST_CASE("cluster: connector and acceptor exchange records both ways", "[relay][cluster]") {
  Pair p;
  const auto s = samples();
  for (std::size_t i = 0; i < s.size(); ++i) {
    INFO(s[i].what);
    const auto to_acceptor = sealed(p.c, s[i].record);
    // The clear SATP header: seq, the sender's id, MUX 0; then the record and a 20-byte tag.
    CHECK(Buffer(to_acceptor.begin(), to_acceptor.begin() + 8) ==
          concat(hex("000000"), concat(Buffer{static_cast<std::byte>(i)}, hex("000b 0000"))));
    CHECK(to_acceptor.size() == 8 + 2 + s[i].bytes.size() + kTagLength);
    CHECK(received(p.a, to_acceptor) == s[i].record);
    CHECK(p.a.peer_sender_id() == kConnectorId);

    const auto to_connector = sealed(p.a, s[i].record);
    CHECK(Buffer(to_connector.begin(), to_connector.begin() + 8) ==
          concat(hex("000000"), concat(Buffer{static_cast<std::byte>(i)}, hex("0016 0000"))));
    CHECK(received(p.c, to_connector) == s[i].record);
    CHECK(p.c.peer_sender_id() == kAcceptorId);
  }
  // The record is encrypted: its bytes do not show in the frame.
  const auto frame = sealed(p.c, Hello{1, "a-distinctive-name"});
  CHECK(std::ranges::search(frame, core::as_bytes("distinctive")).empty());
  CHECK(received(p.a, frame) == Record{Hello{1, "a-distinctive-name"}});
}

TEST_CASE("cluster: the largest record seals into kMaxRecord + 64 bytes", "[relay][cluster]") {
  Pair p;
  Buffer out(kMaxRecord + 64);
  const auto frame = p.c.seal(largest_connection(), out);
  REQUIRE(frame);
  CHECK(frame->size() == relay::kFrameHeader + 8 + 2 + kMaxRecord + kTagLength);
  CHECK(received(p.a, body_of(*frame)) == Record{largest_connection()});
}

TEST_CASE("cluster: a failed seal uses no sequence number and does not break the link",
          "[relay][cluster]") {
  Pair p;
  Buffer small(relay::kFrameHeader + 8 + 2 + 2 + kTagLength - 1);  // a keepalive is 2 bytes
  CHECK(p.c.seal(Keepalive{}, small).error() == Errc::NoSpace);
  Buffer tiny(3);
  CHECK(p.c.seal(Keepalive{}, tiny).error() == Errc::NoSpace);
  Buffer room(kMaxRecord + 64);
  CHECK(p.c.seal(Hello{1, ""}, room).error() == Errc::BadField);
  small.push_back(std::byte{0});
  const auto frame = p.c.seal(Keepalive{}, small);
  REQUIRE(frame);
  CHECK(received(p.a, body_of(*frame)) == Record{Keepalive{}});  // seq 0
}

TEST_CASE("cluster: seal before the nonce exchange is refused", "[relay][cluster]") {
  auto c = connector();
  Buffer out(kMaxRecord + 64);
  CHECK(c.seal(Keepalive{}, out).error() == Errc::NotAllowed);
}

TEST_CASE("cluster: receive before the nonce refuses a frame of another size", "[relay][cluster]") {
  for (std::size_t size : {0u, 1u, 15u}) {
    auto a = acceptor();
    CHECK(receive_error(a, Buffer(size)) == Errc::Truncated);
    CHECK_FALSE(a.established());
  }
  for (std::size_t size : {17u, 100u}) {
    auto a = acceptor();
    CHECK(receive_error(a, Buffer(size)) == Errc::TrailingBytes);
    CHECK_FALSE(a.established());
    // Broken for good: the right nonce now is refused with the same error, and so is seal.
    CHECK(receive_error(a, body_of(connector().nonce_frame())) == Errc::TrailingBytes);
    Buffer out(kMaxRecord + 64);
    CHECK(a.seal(Keepalive{}, out).error() == Errc::TrailingBytes);
  }
}

TEST_CASE("cluster: a flipped bit anywhere in a sealed frame is refused", "[relay][cluster]") {
  auto frame = [] {
    Pair p;
    return sealed(p.c, Progress{4, 7, {{3, 9}}});
  }();
  for (std::size_t i = 0; i < frame.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      INFO("byte " << i << " bit " << bit);
      Pair p;  // the same nonces: the same keys, so the untouched frame would open
      auto bad = frame;
      bad[i] ^= std::byte(1u << bit);
      CHECK(receive_error(p.a, bad) == satp::Errc::BadTag);
    }
  }
  Pair p;
  CHECK(received(p.a, frame) == Record{Progress{4, 7, {{3, 9}}}});
}

TEST_CASE("cluster: replayed and reordered frames are refused and break the link",
          "[relay][cluster]") {
  {
    Pair p;
    const auto first = sealed(p.c, Remove{1});
    const auto second = sealed(p.c, Remove{2});
    CHECK(received(p.a, first) == Record{Remove{1}});
    CHECK(receive_error(p.a, first) == satp::Errc::Replay);
    CHECK(receive_error(p.a, second) == satp::Errc::Replay);  // broken: the same error
    Buffer out(kMaxRecord + 64);
    CHECK(p.a.seal(Keepalive{}, out).error() == satp::Errc::Replay);
  }
  {
    Pair p;
    const auto first = sealed(p.c, Remove{1});
    const auto second = sealed(p.c, Remove{2});
    CHECK(receive_error(p.a, second) == satp::Errc::Replay);
    CHECK(receive_error(p.a, first) == satp::Errc::Replay);
  }
  {
    Pair p;  // a gap
    (void)sealed(p.c, Remove{1});
    CHECK(receive_error(p.a, sealed(p.c, Remove{2})) == satp::Errc::Replay);
  }
}

TEST_CASE("cluster: a frame of a recorded old link fails the tag", "[relay][cluster]") {
  Pair old_link;
  const auto recorded = sealed(old_link.c, Hello{1, "node-a"});
  // The attacker replays the old connector's nonce and frames; the acceptor's nonce is new.
  auto c = connector();
  auto a = acceptor(Nonce{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb,
                          0xbc, 0xbd, 0xbe, 0xbe});
  give_nonce(c, a);
  CHECK(receive_error(a, recorded) == satp::Errc::BadTag);
}

TEST_CASE("cluster: a frame reflected back to its sender fails the tag", "[relay][cluster]") {
  Pair p;
  CHECK(receive_error(p.c, sealed(p.c, Keepalive{})) == satp::Errc::BadTag);
}

TEST_CASE("cluster: another secret gives other keys", "[relay][cluster]") {
  auto c = connector();
  Link a{std::vector<std::uint8_t>{'o', 't', 'h', 'e', 'r'}, Link::Side::Acceptor, kAcceptorNonce,
         kAcceptorId};
  give_nonce(c, a);
  give_nonce(a, c);
  CHECK(receive_error(a, sealed(c, Keepalive{})) == satp::Errc::BadTag);
}

TEST_CASE("cluster: an authentic frame with another MUX payload type or record is refused",
          "[relay][cluster]") {
  const auto keepalive = encoded(Keepalive{});
  {
    Pair p;  // the forging helper matches what Link seals
    CHECK(received(p.a, forged(0, kClusterMux, kPayloadType, keepalive)) == Record{Keepalive{}});
  }
  {
    Pair p;
    CHECK(receive_error(p.a, forged(0, 7, kPayloadType, keepalive)) == Errc::BadField);
  }
  {
    Pair p;
    CHECK(receive_error(p.a, forged(0, kClusterMux, satp::kPayloadIpv4, keepalive)) ==
          Errc::BadField);
  }
  {
    Pair p;
    CHECK(receive_error(p.a, forged(0, kClusterMux, kPayloadType, hex("01 09"))) ==
          Errc::UnknownType);
    CHECK(receive_error(p.a, forged(1, kClusterMux, kPayloadType, keepalive)) == Errc::UnknownType);
  }
  {
    Pair p;
    CHECK(receive_error(p.a, forged(0, kClusterMux, kPayloadType, {})) == Errc::Truncated);
  }
}

TEST_CASE("cluster: a moved link keeps its state", "[relay][cluster]") {
  Pair p;
  CHECK(received(p.a, sealed(p.c, Remove{1})) == Record{Remove{1}});
  Link moved = std::move(p.a);
  CHECK(moved.established());
  CHECK(received(moved, sealed(p.c, Remove{2})) == Record{Remove{2}});
  Link assigned = acceptor();
  assigned = std::move(moved);
  CHECK(received(assigned, sealed(p.c, Remove{3})) == Record{Remove{3}});
}
