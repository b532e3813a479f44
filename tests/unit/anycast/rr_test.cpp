// Tests for anycast/rr.hpp: known answers for the RFC 6275 section 5.2 tokens, Kbm and
// authenticator (computed independently with Python's hmac/hashlib), nonce rotation under an
// injected clock, and the 16-bit sequence comparison.
#include "anycast/rr.hpp"

#include <catch2/catch.hpp>
#include <vector>

#include "anycast_test_util.hpp"

using namespace anycast;
using namespace std::chrono_literals;
using anycast_test::addr;
using anycast_test::at;
using anycast_test::bytes;
using anycast_test::cat;
using anycast_test::Datagram;
using anycast_test::kT0;
using anycast_test::octets;

namespace {

// Inputs of the known-answer tests.
const NodeKey kKcn{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
const auto kHome = addr("2001:db8:a::1");
const auto kCareOf = addr("2001:db8:1::2");
const auto kCorrespondent = addr("2001:db8:c::1");
const Nonce kHomeNonce{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17};
const Nonce kCareOfNonce{0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27};

// python3: hmac.new(kcn, home + nonce_h + b'\x00', hashlib.sha1).digest()[:8]
const KeygenToken kHomeToken{0x69, 0x55, 0x5e, 0x0b, 0xcc, 0xf8, 0x21, 0xd4};
// python3: hmac.new(kcn, coa + nonce_c + b'\x01', hashlib.sha1).digest()[:8]
const KeygenToken kCareOfToken{0xa1, 0x6a, 0x84, 0xc5, 0xa5, 0xc3, 0x8f, 0x83};
// python3: hashlib.sha1(home_token + care_of_token).digest()
const BindingKey kKbm{0x9b, 0xcb, 0x29, 0x53, 0x28, 0xd4, 0xc7, 0x2f, 0xf0, 0x16,
                      0x58, 0x81, 0xa4, 0x00, 0x93, 0xab, 0x21, 0xe8, 0xc4, 0xd9};
// python3: hmac.new(kbm, coa + cn + bu_without_authenticator, hashlib.sha1).digest()[:12]
const Authenticator kAuthenticator{0x4d, 0x5f, 0x9b, 0x04, 0x16, 0x74,
                                   0x50, 0xdc, 0x2a, 0x77, 0xb8, 0x56};

// The BU the authenticator was computed over (the 48 bytes before the authenticator).
Datagram bu_without_authenticator() {
  return cat(cat(bytes({0xac, 0x01, 0x80, 0x03, 0x3b, 0x06, 0x05, 0x00, 0x00, 0x00,
                        0x00, 0x2a, 0x80, 0x00, 0x00, 0x01, 0x01, 0x00, 0xc9, 0x10}),
                 octets(kHome)),
             bytes({0x04, 0x04, 0x12, 0x34, 0x56, 0x78, 0x01, 0x02, 0x00, 0x00, 0x05, 0x0c}));
}

BindingUpdate kat_bu(std::optional<Authenticator> a) {
  BindingUpdate bu;
  bu.sequence = 42;
  bu.flags = kBuFlagAck;
  bu.lifetime = 1;
  bu.home_address = kHome;
  bu.nonce_indices = NonceIndices{0x1234, 0x5678};
  bu.authenticator = a;
  return bu;
}

}  // namespace

TEST_CASE("rr: keygen tokens match the RFC 6275 5.2.5 known answers", "[anycast][rr]") {
  CHECK(home_keygen_token(kKcn, kHome, kHomeNonce) == kHomeToken);
  CHECK(care_of_keygen_token(kKcn, kCareOf, kCareOfNonce) == kCareOfToken);
  // The trailing octet separates the two: same inputs, different token.
  CHECK(home_keygen_token(kKcn, kHome, kHomeNonce) !=
        care_of_keygen_token(kKcn, kHome, kHomeNonce));
}

TEST_CASE("rr: Kbm is SHA1 of the home token then the care-of token", "[anycast][rr]") {
  CHECK(binding_key(kHomeToken, kCareOfToken) == kKbm);
  CHECK(binding_key(kCareOfToken, kHomeToken) != kKbm);
}

TEST_CASE("rr: the authenticator covers care-of, correspondent and the datagram", "[anycast][rr]") {
  const auto data = bu_without_authenticator();
  CHECK(authenticator(kKbm, kCareOf, kCorrespondent, data) == kAuthenticator);
  CHECK(authenticator(kKbm, kCorrespondent, kCareOf, data) != kAuthenticator);
}

TEST_CASE("rr: seal writes the known authenticator into an encoded BU", "[anycast][rr]") {
  auto encoded = encode({kFlagEquivalent, kat_bu(Authenticator{})});
  REQUIRE(encoded.size() == 60);
  CHECK(Datagram(encoded.begin(), encoded.end() - 12) == bu_without_authenticator());
  REQUIRE(seal(encoded, kKbm, kCareOf, kCorrespondent));
  CHECK(encode({kFlagEquivalent, kat_bu(kAuthenticator)}) == encoded);
  // Not a BU/BA with authorization data: nothing written.
  auto hot = encode({0, Hot{}});
  const auto before = hot;
  CHECK_FALSE(seal(hot, kKbm, kCareOf, kCorrespondent));
  CHECK(hot == before);
  auto bare = encode({kFlagEquivalent, kat_bu(std::nullopt)});
  CHECK_FALSE(seal(bare, kKbm, kCareOf, kCorrespondent));
}

TEST_CASE("rr: authenticator comparison sees a difference in any byte", "[anycast][rr]") {
  CHECK(authenticator_equal(kAuthenticator, kAuthenticator));
  for (std::size_t i = 0; i < kAuthenticator.size(); ++i) {
    auto other = kAuthenticator;
    other[i] ^= 0x01;
    CHECK_FALSE(authenticator_equal(kAuthenticator, other));
  }
}

TEST_CASE("rr: sequence numbers compare modulo 2^16", "[anycast][rr]") {
  struct Row {
    std::uint16_t a, b;
    bool newer;
  };
  const std::vector<Row> rows{
      {1, 0, true},
      {0, 0, false},
      {0, 1, false},
      {0x7fff, 0, true},
      {0x8000, 0, false},
      {0x8001, 0, false},
      {0, 0xffff, true},
      {0xffff, 0, false},
      {5, 0xfff0, true},
      {0x8000, 0x0001, true},
      {0x0001, 0x8000, false},
      {0xffff, 0x8000, true},
      {0x7fff, 0xffff, false},
      {0x8000, 0x8000, false},
  };
  for (const auto& r : rows) {
    INFO(r.a << " vs " << r.b);
    CHECK(sequence_newer(r.a, r.b) == r.newer);
  }
}

TEST_CASE("rr: the nonce table rotates every 30 s and keeps the same nonce in between",
          "[anycast][rr]") {
  NonceTable table{kT0, anycast_test::counter_random()};
  const auto [i0, n0] = table.current(kT0);
  CHECK(table.current(at(29'999ms)) == std::pair{i0, n0});
  const auto [i1, n1] = table.current(at(30s));
  CHECK(i1 == static_cast<std::uint16_t>(i0 + 1));
  CHECK(n1 != n0);
  CHECK(table.find(i0, at(30s)) == n0);
  CHECK(table.find(i1, at(30s)) == n1);
  CHECK_FALSE(table.find(static_cast<std::uint16_t>(i1 + 1), at(30s)));
}

TEST_CASE("rr: the nonce table accepts the last 8 nonces and none older than 240 s",
          "[anycast][rr]") {
  NonceTable table{kT0, anycast_test::counter_random()};
  std::vector<std::pair<std::uint16_t, Nonce>> issued;
  for (int k = 0; k <= 10; ++k) issued.push_back(table.current(kT0 + k * 30s));
  const auto now = kT0 + 10 * 30s;
  for (int k = 0; k <= 10; ++k) {
    INFO("nonce " << k);
    const auto found = table.find(issued[static_cast<std::size_t>(k)].first, now);
    if (k >= 3) {
      CHECK(found == issued[static_cast<std::size_t>(k)].second);
    } else {
      CHECK_FALSE(found);
    }
  }
}

TEST_CASE("rr: a nonce nobody rotated out expires 240 s after it was made", "[anycast][rr]") {
  NonceTable table{kT0, anycast_test::counter_random()};
  const auto [index, nonce] = table.current(kT0);
  CHECK(table.find(index, at(239'999ms)) == nonce);
  CHECK_FALSE(table.find(index, at(240s)));
  // Handing out a nonce after a long pause makes a fresh one at once.
  const auto [later, fresh] = table.current(at(1000s));
  CHECK(later != index);
  CHECK(table.find(later, at(1000s)) == fresh);
}

TEST_CASE("rr: nonce indices start at a random value and wrap", "[anycast][rr]") {
  // The first two random bytes are the start index: 0xff 0xff.
  NonceTable table{kT0, [](std::span<std::uint8_t> out) {
                     for (auto& b : out) b = 0xff;
                   }};
  CHECK(table.current(kT0).first == 0xffff);
  CHECK(table.current(at(30s)).first == 0x0000);
  CHECK(table.find(0xffff, at(30s)));
}
