// Tests for anycast/wire.hpp: round trips of every message, exact RFC 6275 byte layouts
// (alignment, padding, header length) and every malformed datagram with its error.
#include "anycast/wire.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "anycast_test_util.hpp"

using namespace anycast;
using anycast_test::addr;
using anycast_test::bytes;
using anycast_test::cat;
using anycast_test::Datagram;
using anycast_test::octets;
using anycast_test::with;

namespace {

const auto kAnycast = addr("2001:db8:a::1");
const auto kUnicast = addr("2001:db8:1::2");

const Nonce128 kNonce{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
                      0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff};
const Cookie kCookie{1, 2, 3, 4, 5, 6, 7, 8};
const KeygenToken kToken{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
const Authenticator kAuth{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};

// Options start empty; the caller fills in the ones it wants.
BindingUpdate bu(std::uint16_t sequence, std::uint16_t flags, std::uint16_t lifetime) {
  BindingUpdate b;
  b.sequence = sequence;
  b.flags = flags;
  b.lifetime = lifetime;
  return b;
}

BindingAck ba(BaStatus status, std::uint16_t sequence, std::uint16_t lifetime) {
  BindingAck b;
  b.status = status;
  b.sequence = sequence;
  b.lifetime = lifetime;
  return b;
}

BindingUpdate full_bu() {
  auto b = bu(42, kBuFlagAck, 1);
  b.home_address = kAnycast;
  b.nonce_indices = NonceIndices{0x1234, 0x5678};
  b.authenticator = kAuth;
  return b;
}

BindingAck full_ba() {
  auto b = ba(BaStatus::Accepted, 42, 4);
  b.authenticator = kAuth;
  return b;
}

struct Named {
  std::string name;
  Message message;
};

std::vector<Named> valid_messages() {
  const auto bare_bu = bu(7, 0, 1);
  auto bu_no_auth = full_bu();
  bu_no_auth.authenticator.reset();
  auto bu_only_nonces = bu(0xffff, kBuFlagAck | kBuFlagHome | 0x0fff, 0xffff);
  bu_only_nonces.nonce_indices = NonceIndices{0, 0xffff};
  auto bu_hoa_auth = bu(1, 0, 0);
  bu_hoa_auth.home_address = kUnicast;
  bu_hoa_auth.authenticator = kAuth;
  auto ba_plain = ba(BaStatus::SequenceOutOfWindow, 9, 0);
  ba_plain.key_management = true;
  const auto ba_expired = ba(BaStatus::ExpiredNonces, 3, 0);
  return {
      {"probe", {0, Probe{0, kNonce}}},
      {"probe with B", {0, Probe{kProbeFlagBinding, kNonce}}},
      {"probe answer", {0, ProbeAnswer{kProbeFlagBinding, 16, kNonce, kAnycast, kUnicast}}},
      {"probe answer without B", {0, ProbeAnswer{0, 0xffff, kNonce, kUnicast, kUnicast}}},
      {"HoTI", {0, Hoti{kCookie}}},
      {"CoTI", {0, Coti{kCookie}}},
      {"HoT", {0, Hot{0x1234, kCookie, kToken}}},
      {"CoT", {0, Cot{0xffff, kCookie, kToken}}},
      {"BU with every option and E", {kFlagEquivalent, full_bu()}},
      {"BU with every option, no E", {0, full_bu()}},
      {"BU without options", {kFlagEquivalent, bare_bu}},
      {"BU without authenticator", {kFlagEquivalent, bu_no_auth}},
      {"BU with nonce indices only, all flags", {0, bu_only_nonces}},
      {"BU with home address and authenticator", {kFlagEquivalent, bu_hoa_auth}},
      {"BA with authenticator", {0, full_ba()}},
      {"BA 135 with K", {0, ba_plain}},
      {"BA 138", {0, ba_expired}},
  };
}

bool has_authenticator(const Message& m) {
  if (const auto* bu = std::get_if<BindingUpdate>(&m.body)) return bu->authenticator.has_value();
  if (const auto* ba = std::get_if<BindingAck>(&m.body)) return ba->authenticator.has_value();
  return false;
}

boost::system::error_code error_of(const Datagram& d) {
  auto r = parse(d);
  return r ? boost::system::error_code{} : r.error();
}

// BU header and body up to the options: sequence 42, A, lifetime 1, E in the shim.
Datagram bu_start(int header_len) {
  return bytes({0xac, 0x01, 0x80, 0x03, 0x3b, header_len, 0x05, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x80,
                0x00, 0x00, 0x01});
}

Datagram auth_option() {
  return cat(bytes({0x05, 0x0c}), Datagram(12, std::byte{0xa5}));
}

}  // namespace

TEST_CASE("wire: every message survives encode and parse", "[anycast][wire]") {
  for (const auto& [name, message] : valid_messages()) {
    INFO(name);
    const auto encoded = encode(message);
    auto parsed = parse(encoded);
    REQUIRE(parsed);
    CHECK(parsed->message == message);
    CHECK(encoded.size() <= kMaxDatagram);
    if (std::holds_alternative<Probe>(message.body)) {
      CHECK(encoded.size() == kProbeMinSize);
    } else if (!std::holds_alternative<ProbeAnswer>(message.body)) {
      // The MH after the shim is whole 8-octet units and its Header Len says how many.
      CHECK((encoded.size() - kShimSize) % 8 == 0);
      CHECK((std::to_integer<std::size_t>(encoded[5]) + 1) * 8 == encoded.size() - kShimSize);
    }
    if (has_authenticator(message)) {
      REQUIRE(parsed->authenticated.size() == encoded.size() - 12);
      CHECK(parsed->authenticated.data() == encoded.data());
      CHECK(authenticated_portion(encoded).size() == encoded.size() - 12);
    } else {
      CHECK(parsed->authenticated.empty());
      CHECK(authenticated_portion(encoded).empty());
    }
  }
}

TEST_CASE("wire: a probe is the shim, flags, reserved, nonce and zeros up to 112 bytes",
          "[anycast][wire]") {
  const auto expected = cat(bytes({0xac, 0x01, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00}),
                            cat(Datagram(kNonce.size()), Datagram(88)));
  auto e = expected;
  for (std::size_t i = 0; i < kNonce.size(); ++i) e[8 + i] = std::byte{kNonce[i]};
  CHECK(encode({0, Probe{kProbeFlagBinding, kNonce}}) == e);
}

TEST_CASE("wire: a probe answer carries ttl, nonce, anycast and unicast", "[anycast][wire]") {
  Datagram nonce(kNonce.size());
  for (std::size_t i = 0; i < kNonce.size(); ++i) nonce[i] = std::byte{kNonce[i]};
  const auto expected = cat(
      cat(cat(bytes({0xac, 0x01, 0x00, 0x02, 0x80, 0x00, 0x00, 0x10}), nonce), octets(kAnycast)),
      octets(kUnicast));
  CHECK(encode({0, ProbeAnswer{kProbeFlagBinding, 16, kNonce, kAnycast, kUnicast}}) == expected);
}

TEST_CASE("wire: HoTI is 16 MH bytes with Header Len 1", "[anycast][wire]") {
  CHECK(encode({0, Hoti{kCookie}}) ==
        bytes({0xac, 0x01, 0x00, 0x03,                             // shim: kind MH
               0x3b, 0x01, 0x01, 0x00, 0x00, 0x00,                 // proto 59, len 1, HoTI, cksum 0
               0x00, 0x00,                                         // reserved
               0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));  // home init cookie
}

TEST_CASE("wire: HoT is 24 MH bytes with Header Len 2", "[anycast][wire]") {
  CHECK(encode({0, Hot{0x1234, kCookie, kToken}}) ==
        bytes({0xac, 0x01, 0x00, 0x03,                             // shim
               0x3b, 0x02, 0x03, 0x00, 0x00, 0x00,                 // proto 59, len 2, HoT
               0x12, 0x34,                                         // home nonce index
               0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,     // cookie
               0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18}));  // keygen token
}

TEST_CASE("wire: a BU aligns Home Address 8n+6, Nonce Indices 2n and the BAD 8n+2, last",
          "[anycast][wire]") {
  const auto expected = cat(
      cat(bytes({0xac, 0x01, 0x80, 0x03,              // shim: E, kind MH
                 0x3b, 0x06, 0x05, 0x00, 0x00, 0x00,  // proto 59, len 6 (56 bytes), BU, cksum 0
                 0x00, 0x2a, 0x80, 0x00, 0x00, 0x01,  // sequence 42, A, lifetime 1
                 0x01, 0x00,                          // PadN(0) at 12: Home Address at 14
                 0xc9, 0x10}),                        // Home Address option, 16 bytes
          octets(kAnycast)),
      bytes({0x04, 0x04, 0x12, 0x34, 0x56, 0x78,  // Nonce Indices at 32
             0x01, 0x02, 0x00, 0x00,              // PadN(2) at 38: BAD at 42 = 8*5+2
             0x05, 0x0c, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}));
  const auto encoded = encode({kFlagEquivalent, full_bu()});
  CHECK(encoded == expected);
  CHECK(encoded.size() == 60);
}

TEST_CASE("wire: a BA pads with PadN(4) so the BAD starts at 18", "[anycast][wire]") {
  CHECK(
      encode({0, full_ba()}) ==
      bytes({0xac, 0x01, 0x00, 0x03,              // shim
             0x3b, 0x03, 0x06, 0x00, 0x00, 0x00,  // proto 59, len 3 (32 bytes), BA
             0x00, 0x00, 0x00, 0x2a, 0x00, 0x04,  // status 0, K 0, sequence 42, lifetime 4
             0x01, 0x04, 0x00, 0x00, 0x00, 0x00,  // PadN(4) at 12
             0x05, 0x0c, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}));
}

TEST_CASE("wire: a BU without options is padded to 16 bytes with PadN(2)", "[anycast][wire]") {
  CHECK(encode({kFlagEquivalent, bu(1, 0, 1)}) ==
        bytes({0xac, 0x01, 0x80, 0x03, 0x3b, 0x01, 0x05, 0x00, 0x00, 0x00,
               0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x00, 0x00}));
}

TEST_CASE("wire: the BA K flag is the top bit after the status", "[anycast][wire]") {
  auto expired = ba(BaStatus::ExpiredHomeNonce, 1, 0);
  expired.key_management = true;
  const auto e = encode({0, expired});
  CHECK(e[10] == std::byte{136});
  CHECK(e[11] == std::byte{0x80});
}

TEST_CASE("wire: every truncation of a valid message is Truncated or ShortProbe",
          "[anycast][wire]") {
  for (const auto& [name, message] : valid_messages()) {
    const auto encoded = encode(message);
    const bool probe = std::holds_alternative<Probe>(message.body);
    for (std::size_t n = 0; n < encoded.size(); ++n) {
      INFO(name << " cut to " << n);
      const Datagram cut(encoded.begin(), encoded.begin() + static_cast<std::ptrdiff_t>(n));
      const auto expected = probe && n >= kShimSize ? Errc::ShortProbe : Errc::Truncated;
      CHECK(error_of(cut) == expected);
    }
  }
}

TEST_CASE("wire: malformed datagrams are dropped with their reason", "[anycast][wire]") {
  const auto hot = encode({0, Hot{0x1234, kCookie, kToken}});
  const auto hoti = encode({0, Hoti{kCookie}});
  const auto probe = encode({0, Probe{kProbeFlagBinding, kNonce}});
  const auto answer = encode({0, ProbeAnswer{0, 16, kNonce, kAnycast, kUnicast}});
  const auto bu_bytes = encode({kFlagEquivalent, full_bu()});
  const auto ba_bytes = encode({0, full_ba()});
  const auto nonces = bytes({0x04, 0x04, 0x00, 0x01, 0x00, 0x02});
  const auto hoa = cat(bytes({0xc9, 0x10}), octets(kAnycast));

  struct Case {
    std::string name;
    Datagram datagram;
    Errc expected;
  };
  const std::vector<Case> cases{
      {"bad magic", with(hot, 0, 0xad), Errc::BadMagic},
      {"bad version 0", with(hot, 1, 0), Errc::BadVersion},
      {"bad version 2", with(hot, 1, 2), Errc::BadVersion},
      {"reserved shim flag 0x40", with(hot, 2, 0x40), Errc::BadFlags},
      {"reserved shim flag 0x01", with(bu_bytes, 2, 0x81), Errc::BadFlags},
      {"kind 0", with(hot, 3, 0), Errc::UnknownKind},
      {"kind 4", with(hot, 3, 4), Errc::UnknownKind},
      {"kind 255", with(hot, 3, 255), Errc::UnknownKind},
      {"over kMaxDatagram", cat(probe, Datagram(kMaxDatagram - probe.size() + 1)), Errc::BadLength},
      // Probes.
      {"probe 111 bytes", Datagram(probe.begin(), probe.end() - 1), Errc::ShortProbe},
      {"probe flag 0x4000", with(probe, 4, 0xc0), Errc::BadFlags},
      {"probe flag 0x0001", with(probe, 5, 0x01), Errc::BadFlags},
      {"probe reserved", with(probe, 7, 0x01), Errc::BadFlags},
      {"probe padding not zero", with(probe, 111, 0x01), Errc::BadLength},
      {"probe padding not zero at 24", with(probe, 24, 0x80), Errc::BadLength},
      {"probe padding past 112 not zero", cat(probe, bytes({0, 0, 1})), Errc::BadLength},
      {"probe with E", with(probe, 2, 0x80), Errc::BadFlags},
      {"probe answer one byte long", cat(answer, bytes({0})), Errc::BadLength},
      {"probe answer flag 0x0001", with(answer, 5, 0x01), Errc::BadFlags},
      {"probe answer with E", with(answer, 2, 0x80), Errc::BadFlags},
      // MH header.
      {"payload proto 6", with(hot, 4, 6), Errc::BadPayloadProto},
      {"header len above the datagram", with(hot, 5, 3), Errc::Truncated},
      {"header len below the datagram", with(hot, 5, 1), Errc::BadLength},
      {"HoTI in 8 bytes", with(Datagram(hoti.begin(), hoti.begin() + 12), 5, 0), Errc::BadLength},
      {"HoT in 16 bytes", with(Datagram(hot.begin(), hot.begin() + 20), 5, 1), Errc::BadLength},
      {"BU in 8 bytes", bytes({0xac, 1, 0x80, 3, 0x3b, 0, 5, 0, 0, 0, 0, 1}), Errc::BadLength},
      {"trailing byte after the MH", cat(hot, bytes({0})), Errc::BadLength},
      {"trailing unit after the MH", cat(hot, Datagram(8)), Errc::BadLength},
      {"MH type 0 (BRR)", with(hot, 6, 0), Errc::UnknownKind},
      {"MH type 7 (BE)", with(hot, 6, 7), Errc::UnknownKind},
      {"MH type 255", with(hot, 6, 255), Errc::UnknownKind},
      {"checksum high byte", with(hot, 8, 0x12), Errc::BadChecksum},
      {"checksum low byte", with(hot, 9, 0x01), Errc::BadChecksum},
      {"E on HoTI", with(hoti, 2, 0x80), Errc::BadFlags},
      {"E on HoT", with(hot, 2, 0x80), Errc::BadFlags},
      {"E on BA", with(ba_bytes, 2, 0x80), Errc::BadFlags},
      // Options.
      {"PadN overruns the MH", cat(bu_start(1), bytes({0x01, 0x03, 0x00, 0x00})), Errc::BadOption},
      {"option header overruns the MH", cat(bu_start(1), bytes({0x00, 0x00, 0x00, 0x01})),
       Errc::BadOption},
      {"Home Address at 8n+4", cat(cat(bu_start(3), hoa), bytes({0x01, 0x00})), Errc::BadOption},
      {"Home Address of 8 bytes",
       cat(bu_start(2), bytes({0x01, 0x00, 0xc9, 0x08, 1, 2, 3, 4, 5, 6, 7, 8})), Errc::BadOption},
      {"Nonce Indices at an odd offset",
       cat(bu_start(2), bytes({0x00, 0x04, 0x04, 0, 1, 0, 2, 0x01, 0x03, 0, 0, 0})),
       Errc::BadOption},
      {"Nonce Indices of 2 bytes", cat(bu_start(1), bytes({0x04, 0x02, 0x00, 0x01})),
       Errc::BadOption},
      {"Nonce Indices twice", cat(cat(bu_start(2), nonces), nonces), Errc::BadOption},
      {"Home Address twice",
       cat(cat(cat(cat(bu_start(6), bytes({0x01, 0x00})), hoa), bytes({0x01, 0x04, 0, 0, 0, 0})),
           hoa),
       Errc::BadOption},
      {"BAD at 8n+4",
       cat(cat(cat(bu_start(4), bytes({0x01, 0x06, 0, 0, 0, 0, 0, 0})), auth_option()),
           bytes({0, 0, 0, 0, 0, 0})),
       Errc::BadOption},
      {"BAD not last",
       cat(cat(cat(bu_start(4), bytes({0x01, 0x04, 0, 0, 0, 0})), auth_option()),
           cat(nonces, bytes({0x01, 0x00}))),
       Errc::BadOption},
      {"Pad1 after BAD",
       cat(cat(cat(bu_start(4), bytes({0x01, 0x04, 0, 0, 0, 0})), auth_option()),
           bytes({0, 0, 0, 0, 0, 0, 0, 0})),
       Errc::BadOption},
      {"BAD of 10 bytes",
       cat(cat(bu_start(3), bytes({0x01, 0x04, 0, 0, 0, 0, 0x05, 0x0a})), Datagram(12)),
       Errc::BadOption},
      {"Binding Refresh Advice", cat(bu_start(1), bytes({0x02, 0x02, 0x00, 0x01})),
       Errc::BadOption},
      {"Alternate CoA", cat(cat(bu_start(3), bytes({0x01, 0x00, 0x03, 0x10})), octets(kUnicast)),
       Errc::BadOption},
      {"unknown option 200", cat(bu_start(1), bytes({0xc8, 0x02, 0x00, 0x00})), Errc::BadOption},
      {"Home Address in a BA",
       cat(bytes({0xac, 1, 0, 3, 0x3b, 3, 6, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x01, 0x00}), hoa),
       Errc::BadOption},
      {"Nonce Indices in a BA",
       cat(cat(bytes({0xac, 1, 0, 3, 0x3b, 2, 6, 0, 0, 0, 0, 0, 0, 1, 0, 0}), nonces),
           bytes({0x01, 0x04, 0, 0, 0, 0})),
       Errc::BadOption},
      {"BAD in a HoT", cat(cat(with(hot, 5, 4), bytes({0x01, 0x00})), auth_option()),
       Errc::BadOption},
      {"PadN overrunning a HoTI", cat(with(hoti, 5, 2), bytes({0, 0, 0, 0, 0, 0, 0x01, 0x07})),
       Errc::BadOption},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(error_of(c.datagram) == c.expected);
  }
}

TEST_CASE("wire: pads and reserved fields are accepted where RFC 6275 says to ignore them",
          "[anycast][wire]") {
  // HoTI with a Pad1 run and a PadN with non-zero content after the cookie.
  const auto hoti = cat(with(encode({0, Hoti{kCookie}}), 5, 2),
                        bytes({0x00, 0x00, 0x01, 0x04, 0xff, 0xff, 0xff, 0xff}));
  auto p = parse(hoti);
  REQUIRE(p);
  CHECK(p->message == Message{0, Hoti{kCookie}});
  // The MH reserved byte and the HoTI reserved field.
  auto reserved = with(with(encode({0, Hoti{kCookie}}), 7, 0xff), 10, 0xff);
  CHECK(parse(reserved));
  // The BA reserved bits after K.
  auto parsed_ba = parse(with(encode({0, full_ba()}), 11, 0x7f));
  REQUIRE(parsed_ba);
  CHECK(parsed_ba->message == Message{0, full_ba()});
}

TEST_CASE("wire: a longer probe with zero padding is accepted", "[anycast][wire]") {
  auto probe = cat(encode({0, Probe{0, kNonce}}), Datagram(kMaxDatagram - kProbeMinSize));
  REQUIRE(probe.size() == kMaxDatagram);
  auto p = parse(probe);
  REQUIRE(p);
  CHECK(p->message == Message{0, Probe{0, kNonce}});
}

TEST_CASE("wire: the authenticated portion is everything but the last 12 bytes",
          "[anycast][wire]") {
  const auto encoded = encode({kFlagEquivalent, full_bu()});
  const auto portion = authenticated_portion(encoded);
  CHECK(portion.data() == encoded.data());
  CHECK(portion.size() == encoded.size() - 12);
  CHECK(authenticated_portion(encode({0, Hot{}})).empty());
  CHECK(authenticated_portion(bytes({1, 2, 3})).empty());
}
