// Tests for satp/packet.hpp (and satp/error.hpp): the section 9 packets of satp-wire.md sealed
// and opened byte for byte, round trips over every cipher suite, bad tags, every truncation,
// lengths, roles, replays, and no heap allocation per packet.
#include "satp/packet.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "support/packet_builder.hpp"

using namespace satp;
using test::hex;

// Counts heap allocations made while a test asks for it (the "no allocation per packet" check).
// This replaces the global operator new and delete (single and array forms) of the whole
// unit_satp binary; nothing else changes. Not under AddressSanitizer: libstdc++'s own
// allocations would then come from the sanitizer's operator new and end in ours.
// Crypto++ allocates its SecBlocks with malloc, which this does not see: that the loop below makes
// no malloc/calloc/realloc/posix_memalign call was checked with gdb breakpoints.
#if defined(__SANITIZE_ADDRESS__)
#define SATP_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SATP_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SATP_COUNT_ALLOCATIONS
#define SATP_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

#if SATP_COUNT_ALLOCATIONS
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void* operator new[](std::size_t n) {
  return ::operator new(n);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

namespace {

using Bytes = std::vector<std::byte>;

constexpr std::string_view kPassphrase = "satp-interop-test";

// Section 9: the packet anytun (role left, -s 7 -m 3) sent, seq 1.
const Bytes kAnytunPacket = hex(
    "00000001000700039b76856421b13f1ae8de957d235b0cc0a730c557ac686a4a7e9dbaa21e909f3826ce54a821d8"
    "ecf86ecdfb1e744c117ba07b2bf9f08012f46b650033edca95a7d8a62505b1e8ff01ba92092f602aabe3d9dc0319"
    "164cc2c7d2b31125c6f90b20");
// Its plaintext: an 84-byte ICMP echo 10.232.0.1 -> 10.232.0.2.
const Bytes kEcho = hex(
    "4500005492554000400192810ae800010ae8000208002d5c29720001ebbc016b00000000ea350b00000000001011"
    "12131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637");
// Section 9: the packet anytun accepted (role right, seq 100, sender 0x0102, MUX 3).
const Bytes kAcceptedPacket = hex(
    "000000640102000351f04caa8e2801e7ae5e047f8a7121c5c99c29ae2c5492f09ccb0ec0e9be29eb3c8af4a315a"
    "adf01");

Bytes counting(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(i);
  return b;
}

Codec codec(Settings s = {}, std::string_view passphrase = kPassphrase) {
  return Codec::create(s, master_key_from_passphrase(passphrase, s.kd_prf),
                       master_salt_from_passphrase(passphrase))
      .value();
}

Settings as(Role r, Settings s = {}) {
  s.role = r;
  return s;
}

Bytes seal(Codec& c, const Header& h, std::uint16_t type, const Bytes& payload) {
  Bytes out(kMaxPacket + 64);
  const auto r = c.seal(h, type, payload, out);
  REQUIRE(r);
  return Bytes(r->begin(), r->end());
}

Bytes span_bytes(std::span<const std::byte> s) {
  return Bytes(s.begin(), s.end());
}

}  // namespace

TEST_CASE("packet: opening the anytun packet of section 9 gives the ICMP echo", "[satp][packet]") {
  auto c = codec(as(Role::Right));
  Bytes buf = kAnytunPacket;
  REQUIRE(buf.size() == 104);
  const auto opened = c.open(buf);
  REQUIRE(opened);
  CHECK(opened->header == Header{.seq = 1, .sender_id = 7, .mux = 3});
  CHECK(opened->payload_type == kPayloadIpv4);
  CHECK(span_bytes(opened->payload) == kEcho);
  CHECK(opened->payload.data() == buf.data() + 10);  // decrypted in place
}

TEST_CASE("packet: sealing as anytun did reproduces its packet", "[satp][packet]") {
  auto c = codec(as(Role::Left));
  CHECK(seal(c, {.seq = 1, .sender_id = 7, .mux = 3}, kPayloadIpv4, kEcho) == kAnytunPacket);
}

TEST_CASE("packet: the full HMAC of the anytun packet ends in its tag", "[satp][packet]") {
  // The HMAC covers header and ciphertext only, so a 20-byte tag is the full HMAC.
  auto c = codec(as(Role::Left, Settings{.tag_length = 20}));
  const auto sealed = seal(c, {.seq = 1, .sender_id = 7, .mux = 3}, kPayloadIpv4, kEcho);
  CHECK(span_bytes(std::span{sealed}.last(20)) == hex("7b874b139263d5c35425c2c7d2b31125c6f90b20"));
  CHECK(span_bytes(std::span{kAnytunPacket}.last(10)) == hex("c2c7d2b31125c6f90b20"));
  CHECK(span_bytes(std::span{sealed}.first(94)) == span_bytes(std::span{kAnytunPacket}.first(94)));
}

TEST_CASE("packet: sealing the second vector gives the bytes anytun accepted", "[satp][packet]") {
  auto c = codec(as(Role::Right));
  const auto sealed =
      seal(c, {.seq = 100, .sender_id = 0x0102, .mux = 3}, kPayloadIpv4, counting(28));
  CHECK(sealed == kAcceptedPacket);
  auto peer = codec(as(Role::Left));
  Bytes buf = sealed;
  const auto opened = peer.open(buf);
  REQUIRE(opened);
  CHECK(span_bytes(opened->payload) == counting(28));
}

TEST_CASE("packet: other suites match an independent implementation", "[satp][packet]") {
  // python3 with the `cryptography` package, written from satp-wire.md sections 3-6.
  {
    auto c = codec(Settings{.cipher = Cipher::AesCtr256,
                            .kd_prf = KdPrf::AesCtr256,
                            .tag_length = 20,
                            .role = Role::Left});
    CHECK(seal(c, {.seq = 0x12345678, .sender_id = 9, .mux = 0x4242}, kPayloadIpv6, counting(40)) ==
          hex("1234567800094242291ac7cc641659a07d7494faf71afc651ae980beee2efeb7d188d325ecc04dfc"
              "3851b896dec10d5813a8298d3e0adfadaa1dec2f8f0921ecd03d23201db6"));
  }
  {
    auto c = codec(Settings{.cipher = Cipher::AesCtr128,
                            .kd_prf = KdPrf::AesCtr192,
                            .tag_length = 4,
                            .role = Role::Right});
    const std::string_view text = "hello satp";
    const Bytes payload(std::as_bytes(std::span{text}).begin(),
                        std::as_bytes(std::span{text}).end());
    CHECK(seal(c, {.seq = 0xffffffff, .sender_id = 1, .mux = 2}, kPayloadEthernet, payload) ==
          hex("ffffffff0001000248b56642b802ff9a0b434640b4246c61"));
  }
}

TEST_CASE("packet: every suite and tag length round-trips", "[satp][packet]") {
  const Bytes payload = counting(1000);
  for (auto cipher : {Cipher::Null, Cipher::AesCtr128, Cipher::AesCtr192, Cipher::AesCtr256})
    for (auto kd : {KdPrf::Null, KdPrf::AesCtr128, KdPrf::AesCtr192, KdPrf::AesCtr256})
      for (auto auth : {Auth::Null, Auth::Sha1})
        for (std::size_t tag : {0u, 4u, 10u, 20u}) {
          if (auth == Auth::Null && tag != 0) continue;
          const Settings s{.cipher = cipher, .kd_prf = kd, .auth = auth, .tag_length = tag};
          INFO(to_string(cipher) << " " << to_string(kd) << " " << to_string(auth) << " " << tag);
          auto left = codec(as(Role::Left, s));
          auto right = codec(as(Role::Right, s));
          REQUIRE(left.overhead() == 10 + tag);
          for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16},
                                std::size_t{17}, payload.size(), left.max_payload()}) {
            const Bytes p = counting(n);
            const Header h{.seq = static_cast<std::uint32_t>(n * 7919), .sender_id = 5, .mux = 9};
            Bytes wire = seal(left, h, kPayloadIpv6, p);
            REQUIRE(wire.size() == n + left.overhead());
            if (cipher != Cipher::Null && kd != KdPrf::Null && n >= 16)
              CHECK(span_bytes(std::span{wire}.subspan(10, n)) != p);
            const auto opened = right.open(wire);
            REQUIRE(opened);
            CHECK(opened->header == h);
            CHECK(opened->payload_type == kPayloadIpv6);
            CHECK(span_bytes(opened->payload) == p);
          }
        }
}

TEST_CASE("packet: sealing in place in headroom gives the same bytes", "[satp][packet]") {
  auto c = codec();
  const Header h{.seq = 42, .sender_id = 1, .mux = 2};
  Bytes buf(kMaxPacket);
  const auto payload = std::span{buf}.subspan(kHeaderSize + kPayloadTypeSize, kEcho.size());
  std::ranges::copy(kEcho, payload.begin());
  const auto r = c.seal(h, kPayloadIpv4, payload, buf);
  REQUIRE(r);
  CHECK(r->data() == buf.data());
  CHECK(span_bytes(*r) == seal(c, h, kPayloadIpv4, kEcho));
}

TEST_CASE("packet: the null cipher leaves the payload in clear", "[satp][packet]") {
  auto c = codec(Settings{.cipher = Cipher::Null});
  const auto wire = seal(c, {.seq = 1}, kPayloadIpv4, kEcho);
  CHECK(span_bytes(std::span{wire}.subspan(8, 2)) == hex("0800"));
  CHECK(span_bytes(std::span{wire}.subspan(10, kEcho.size())) == kEcho);
  auto none = codec(
      Settings{.cipher = Cipher::Null, .kd_prf = KdPrf::Null, .auth = Auth::Null, .tag_length = 0});
  CHECK(seal(none, {.seq = 1, .sender_id = 2, .mux = 3}, 0x86dd, hex("abcd")) ==
        hex("00000001 0002 0003 86dd abcd"));
}

TEST_CASE("packet: a changed byte anywhere fails the tag and leaves the buffer", "[satp][packet]") {
  auto c = codec(as(Role::Right));
  for (std::size_t i = 0; i < kAnytunPacket.size(); ++i) {
    for (std::byte flip : {std::byte{0x01}, std::byte{0x80}}) {
      Bytes buf = kAnytunPacket;
      buf[i] ^= flip;
      const Bytes before = buf;
      INFO("byte " << i);
      const auto r = c.open(buf);
      REQUIRE_FALSE(r);
      CHECK(r.error() == Errc::BadTag);
      CHECK(buf == before);
    }
  }
}

TEST_CASE("packet: every truncation is rejected", "[satp][packet]") {
  auto c = codec(as(Role::Right));
  for (std::size_t n = 0; n < kAnytunPacket.size(); ++n) {
    Bytes buf(kAnytunPacket.begin(), kAnytunPacket.begin() + static_cast<std::ptrdiff_t>(n));
    INFO("length " << n);
    const auto r = c.open(buf);
    REQUIRE_FALSE(r);
    CHECK(r.error() == (n < c.overhead() ? Errc::Truncated : Errc::BadTag));
  }
}

TEST_CASE("packet: short packets without a tag need a header and a payload type",
          "[satp][packet]") {
  auto c = codec(Settings{.auth = Auth::Null, .tag_length = 0});
  for (std::size_t n = 0; n < 10; ++n) {
    Bytes buf(n);
    CHECK(c.open(buf).error() == Errc::Truncated);
  }
  Bytes ten(10);
  const auto r = c.open(ten);
  REQUIRE(r);
  CHECK(r->payload.empty());
}

TEST_CASE("packet: lengths above what anytun reads are refused", "[satp][packet]") {
  auto c = codec();
  CHECK(c.max_payload() == 1580);
  Bytes out(2000);
  CHECK(c.seal({}, kPayloadIpv4, counting(1580), out)->size() == kMaxPacket);
  CHECK(c.seal({}, kPayloadIpv4, counting(1581), out).error() == Errc::TooLong);
  Bytes small(kEcho.size() + 19);
  CHECK(c.seal({}, kPayloadIpv4, kEcho, small).error() == Errc::NoSpace);
  Bytes big(kMaxPacket + 1);
  CHECK(c.open(big).error() == Errc::TooLong);
  Bytes max = seal(c, {.seq = 3}, kPayloadIpv4, counting(1580));
  auto peer = codec(as(Role::Right));
  CHECK(peer.open(max));
}

TEST_CASE("packet: a peer with the same role cannot open", "[satp][packet]") {
  auto c = codec(as(Role::Left));
  Bytes buf = kAnytunPacket;
  CHECK(c.open(buf).error() == Errc::BadTag);
  Bytes other_key = kAnytunPacket;
  CHECK(codec(as(Role::Right), "another passphrase").open(other_key).error() == Errc::BadTag);
}

TEST_CASE("packet: the replay window is checked after the tag", "[satp][packet]") {
  auto c = codec(as(Role::Right));
  ReplayWindow window{64};
  Bytes forged = kAnytunPacket;
  forged.back() ^= std::byte{1};
  CHECK(c.open(forged, window).error() == Errc::BadTag);
  CHECK(window.senders() == 0);  // a forgery does not enter the window
  Bytes first = kAnytunPacket;
  CHECK(c.open(first, window));
  Bytes again = kAnytunPacket;
  CHECK(c.open(again, window).error() == Errc::Replay);
  CHECK(again == kAnytunPacket);  // not decrypted
  Bytes without = kAnytunPacket;
  CHECK(c.open(without));  // without a window, anytun's default
}

TEST_CASE("packet: payload types are checked against what the device takes", "[satp][packet]") {
  CHECK(check_payload_type(kPayloadIpv4, kTunPayloadTypes));
  CHECK(check_payload_type(kPayloadIpv6, kTunPayloadTypes));
  CHECK(check_payload_type(kPayloadEthernet, kTunPayloadTypes).error() == Errc::BadPayloadType);
  CHECK(check_payload_type(kPayloadEthernet, kTapPayloadTypes));
  CHECK(check_payload_type(kPayloadIpv4, kTapPayloadTypes).error() == Errc::BadPayloadType);
}

TEST_CASE("packet: the clear header is read without keys", "[satp][packet]") {
  CHECK(read_header(kAnytunPacket).value() == Header{.seq = 1, .sender_id = 7, .mux = 3});
  for (std::size_t n = 0; n < kHeaderSize; ++n)
    CHECK(read_header(std::span{kAnytunPacket}.first(n)).error() == Errc::Truncated);
}

TEST_CASE("packet: a codec is not built from bad settings or keys", "[satp][packet]") {
  const auto salt = master_salt_from_passphrase(kPassphrase);
  const auto k128 = master_key_from_passphrase(kPassphrase, KdPrf::AesCtr128);
  CHECK(Codec::create(Settings{.tag_length = 21}, k128, salt).error() == Errc::BadSettings);
  CHECK(Codec::create(Settings{.auth = Auth::Null}, k128, salt).error() == Errc::BadSettings);
  CHECK(Codec::create(Settings{.kd_prf = KdPrf::AesCtr256}, k128, salt).error() ==
        Errc::BadKeyLength);
  CHECK(Codec::create(Settings{.kd_prf = KdPrf::Null}, MasterKey{}, salt));
}

TEST_CASE("packet: sealing and opening allocate nothing", "[satp][packet]") {
  auto left = codec(as(Role::Left));
  auto right = codec(as(Role::Right, Settings{.cipher = Cipher::AesCtr256}));
  auto right256 = codec(as(Role::Left, Settings{.cipher = Cipher::AesCtr256}));
  ReplayWindow window{64};
  Bytes out(kMaxPacket);
  Bytes in = kAnytunPacket;
  // Warm up: the first use of a sender id in the window, and the first HMAC keying of a codec
  // (Crypto++ sizes its buffer then), allocate.
  REQUIRE(codec(as(Role::Right)).open(in, window));
  REQUIRE(left.seal({.seq = 1}, kPayloadIpv4, kEcho, out));
  const auto warm = right256.seal({.seq = 1, .sender_id = 8}, kPayloadIpv4, kEcho, out);
  REQUIRE(warm);
  REQUIRE(right.open(*warm));
  g_allocations = 0;
  g_counting = true;
  bool ok = true;
  for (std::uint32_t seq = 2; seq < 50; ++seq) {
    const auto sealed = left.seal({.seq = seq, .sender_id = 7, .mux = 3}, kPayloadIpv4, kEcho, out);
    ok = ok && sealed.has_value();
    const auto sealed256 = right256.seal({.seq = seq, .sender_id = 7, .mux = 3}, kPayloadIpv4,
                                         kEcho, std::span{out}.first(200));
    ok = ok && sealed256.has_value() && right.open(*sealed256, window).has_value();
  }
  g_counting = false;
  CHECK(ok);
  if (SATP_COUNT_ALLOCATIONS) CHECK(g_allocations == 0);
}

TEST_CASE("error: every code has a distinct snake_case name", "[satp][error]") {
  std::set<std::string> names;
  for (int v = static_cast<int>(Errc::Truncated); v <= static_cast<int>(Errc::Unsupported); ++v) {
    const auto name = std::string{to_string(static_cast<Errc>(v))};
    INFO(v);
    CHECK(name != "unknown");
    for (char ch : name) CHECK(((ch >= 'a' && ch <= 'z') || ch == '_'));
    CHECK(names.insert(name).second);
  }
  CHECK(to_string(Errc::BadTag) == "bad_tag");
  CHECK(to_string(Errc::BadPayloadType) == "bad_payload_type");
  const boost::system::error_code ec = Errc::Replay;
  CHECK(std::string{ec.category().name()} == "satp");
  CHECK(ec.message() == "replay");
  CHECK(ec == Errc::Replay);
}
