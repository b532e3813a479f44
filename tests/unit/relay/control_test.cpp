// Tests for relay/control.hpp: every message type byte for byte (written out by hand from the
// header's table), round trips, and every way decode() refuses a message.
#include "relay/control.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "support/packet_builder.hpp"

using namespace relay::control;
using relay::Endpoint;
using relay::Errc;
using test::hex;
using test::v4;
using test::v6;

namespace {

// The v4-mapped form Endpoint and Allocate hold IPv4 addresses in.
core::Ipv6Address v4_mapped(std::string_view text) {
  return Endpoint::v4(v4(text), 0).address;
}

std::vector<std::byte> encoded(const Message& m) {
  std::vector<std::byte> out(kMaxMessage);
  const auto n = encode(m, out);
  REQUIRE(n.has_value());
  out.resize(*n);
  return out;
}

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A message and its bytes, written out by hand from the table in control.hpp.
struct Sample {
  std::string_view name;
  Message message;
  std::string_view bytes;
};

const std::vector<Sample>& samples() {
  static const std::vector<Sample> all{
      {"Allocate, IPv4 peer, client by port",
       {0x01020304, Allocate{600, Endpoint::v4(v4("198.51.100.7"), 5000), std::nullopt, 4444}},
       "01 01 01020304  00000258  04 c6336407 1388  00 115c"},
      {"Allocate, IPv6 peer, IPv4 client",
       {0x01020304,
        Allocate{0xffffffff, Endpoint::v6(v6("2001:db8::7"), 53), v4_mapped("192.0.2.1"), 4444}},
       "01 01 01020304  ffffffff  06 20010db8000000000000000000000007 0035  04 c0000201 115c"},
      {"Allocate, IPv4 peer, IPv6 client",
       {0, Allocate{0, Endpoint::v4(v4("203.0.113.9"), 0), v6("2001:db8::1"), 0}},
       "01 01 00000000  00000000  04 cb007109 0000  06 20010db8000000000000000000000001 0000"},
      {"Allocated",
       {0x0a0b0c0d, Allocated{0xdeadbeef, 300, Endpoint::v6(v6("2001:db8::5"), 40000)}},
       "01 02 0a0b0c0d  deadbeef 0000012c  06 20010db8000000000000000000000005 9c40"},
      {"Allocated, IPv4 relay",
       {1, Allocated{1, 2, Endpoint::v4(v4("192.0.2.10"), 65535)}},
       "01 02 00000001  00000001 00000002  04 c000020a ffff"},
      {"Refresh", {7, Refresh{1, 3600}}, "01 03 00000007  00000001 00000e10"},
      {"Refreshed", {7, Refreshed{1, 1800}}, "01 04 00000007  00000001 00000708"},
      {"Release", {0xffffffff, Release{0x80000001}}, "01 05 ffffffff  80000001"},
      {"Released", {0xffffffff, Released{0x80000001}}, "01 06 ffffffff  80000001"},
      {"Error", {9, Error{Code::Exhausted, "no port"}}, "01 07 00000009  0003 07 6e6f20706f7274"},
      {"Error, empty reason", {9, Error{Code::Unavailable, ""}}, "01 07 00000009  0005 00"},
      {"Error, UTF-8 reason",
       {9, Error{Code::NotAllowed, "d\xc3\xa9j\xc3\xa0 \xe2\x82\xac"}},
       "01 07 00000009  0002 0a 64c3a96ac3a020e282ac"},
      {"Locate", {0, Locate{}}, "01 08 00000000"},
      {"Located",
       {0x11, Located{Endpoint::v4(v4("203.0.113.5"), 443)}},
       "01 09 00000011  04 cb007105 01bb"},
      {"Located, IPv6",
       {0x11, Located{Endpoint::v6(v6("2001:db8::443"), 443)}},
       "01 09 00000011  06 20010db8000000000000000000000443 01bb"},
  };
  return all;
}

// A message with a valid header and `body` (hex).
std::vector<std::byte> message(std::string_view type, std::string_view body) {
  return hex("01" + std::string{type} + "00000001" + std::string{body});
}

Errc decode_error(const std::vector<std::byte>& bytes) {
  const auto r = decode(bytes);
  REQUIRE_FALSE(r.has_value());
  return static_cast<Errc>(r.error().value());
}

std::string reason_of(std::string_view hex_text) {
  std::string out;
  for (auto b : hex(hex_text)) out.push_back(static_cast<char>(std::to_integer<unsigned char>(b)));
  return out;
}

}  // namespace

TEST_CASE("control: each message type is written byte for byte", "[relay][control]") {
  for (const auto& s : samples()) {
    CAPTURE(s.name);
    CHECK(encoded(s.message) == hex(s.bytes));
  }
}

TEST_CASE("control: each message type's bytes decode to the message", "[relay][control]") {
  for (const auto& s : samples()) {
    CAPTURE(s.name);
    CHECK(decode(hex(s.bytes)).value() == s.message);
  }
}

TEST_CASE("control: messages round trip through encode and decode", "[relay][control]") {
  const std::string longest(kMaxReason, 'x');
  const std::vector<Message> messages{
      {0, Allocate{}},  // 0.0.0.0:0 peer, client by port 0
      {0xffffffff, Allocate{1, Endpoint::v6(v6("::"), 1), v6("::"), 65535}},
      {5, Allocate{86400, Endpoint::v6(v6("2001:db8::ffff:1"), 9), v4_mapped("0.0.0.0"), 1}},
      {6, Allocated{0, 0, Endpoint::v4(v4("255.255.255.255"), 0)}},
      {7, Error{Code::BadRequest, longest}},
      {8, Error{Code::UnknownBinding, reason_of("00 7f c280 dfbf e0a080 ed9fbf ee8080 efbfbf "
                                                "f0908080 f48fbfbf")}},
      {9, Located{Endpoint::v6(v6("fe80::1"), 4444)}},
  };
  for (const auto& m : messages) {
    const auto bytes = encoded(m);
    CHECK(bytes.size() <= kMaxMessage);
    CHECK(decode(bytes).value() == m);
  }
}

TEST_CASE("control: the longest message is kMaxMessage bytes", "[relay][control]") {
  const Message m{1, Error{Code::BadRequest, std::string(kMaxReason, 'a')}};
  std::vector<std::byte> out(kMaxMessage);
  CHECK(encode(m, out).value() == kMaxMessage);
}

TEST_CASE("control: every truncation of every message type is refused as truncated",
          "[relay][control]") {
  for (const auto& s : samples()) {
    const auto bytes = hex(s.bytes);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      CAPTURE(s.name, n);
      CHECK(decode_error({bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)}) ==
            Errc::Truncated);
    }
  }
}

TEST_CASE("control: a byte after the last field is refused", "[relay][control]") {
  for (const auto& s : samples()) {
    CAPTURE(s.name);
    CHECK(decode_error(concat(hex(s.bytes), hex("00"))) == Errc::TrailingBytes);
  }
}

TEST_CASE("control: another version is refused before anything else is read", "[relay][control]") {
  const auto version = GENERATE(0, 2, 0xff);
  CAPTURE(version);
  for (const auto& s : samples()) {
    auto bytes = hex(s.bytes);
    bytes[0] = std::byte{static_cast<unsigned char>(version)};
    CHECK(decode_error(bytes) == Errc::BadVersion);
  }
  CHECK(decode_error({std::byte{static_cast<unsigned char>(version)}}) == Errc::BadVersion);
}

TEST_CASE("control: an unknown type is refused", "[relay][control]") {
  CHECK(decode_error(hex("01 00 00000001")) == Errc::UnknownType);
  CHECK(decode_error(hex("01 0a 00000001")) == Errc::UnknownType);
  CHECK(decode_error(hex("01 ff 00000001 00000000")) == Errc::UnknownType);
  CHECK(decode_error(hex("01 0a")) == Errc::UnknownType);
}

TEST_CASE("control: an endpoint of another family is refused", "[relay][control]") {
  const auto family = GENERATE(as<std::string_view>{}, "00", "01", "05", "07", "ff");
  CAPTURE(family);
  const std::string f{family};
  // Each endpoint position; the bytes after the family would suit family 4.
  CHECK(decode_error(message("01", "00000258 " + f + " c6336407 1388  00 115c")) == Errc::BadField);
  CHECK(decode_error(message("02", "00000001 00000002 " + f + " c000020a ffff")) == Errc::BadField);
  CHECK(decode_error(message("09", f + " cb007105 01bb")) == Errc::BadField);
  if (family != "00")
    CHECK(decode_error(message("01", "00000258 04 c6336407 1388 " + f + " c0000201 115c")) ==
          Errc::BadField);
}

TEST_CASE("control: family 0 is only the client endpoint of Allocate", "[relay][control]") {
  CHECK(decode_error(message("01", "00000258 00 1388  00 115c")) == Errc::BadField);
  CHECK(decode_error(message("02", "00000001 00000002 00 ffff")) == Errc::BadField);
  CHECK(decode_error(message("09", "00 01bb")) == Errc::BadField);
  CHECK(decode(message("01", "00000258 04 c6336407 1388 00 115c")).has_value());
}

TEST_CASE("control: an IPv4-mapped address as family 6 is refused", "[relay][control]") {
  const std::string mapped = "06 00000000000000000000ffff c0000201";
  CHECK(decode_error(message("01", "00000258 " + mapped + " 1388  00 115c")) == Errc::BadField);
  CHECK(decode_error(message("01", "00000258 04 c6336407 1388 " + mapped + " 115c")) ==
        Errc::BadField);
  CHECK(decode_error(message("02", "00000001 00000002 " + mapped + " ffff")) == Errc::BadField);
  CHECK(decode_error(message("09", mapped + " 01bb")) == Errc::BadField);
  // Other addresses with an embedded IPv4 address are plain IPv6 ones (::192.0.2.1, NAT64).
  CHECK(decode(message("09", "06 000000000000000000000000 c0000201 01bb")).has_value());
  CHECK(decode(message("09", "06 0064ff9b0000000000000000 c0000201 01bb")).has_value());
}

TEST_CASE("control: an IPv4-mapped address is written as family 4", "[relay][control]") {
  const Message m{1, Located{Endpoint::v6(v6("::ffff:192.0.2.1"), 443)}};
  CHECK(encoded(m) == hex("01 09 00000001  04 c0000201 01bb"));
  CHECK(decode(encoded(m)).value() == m);
}

TEST_CASE("control: an Error code outside Code is refused", "[relay][control]") {
  CHECK(decode_error(message("07", "0000 00")) == Errc::BadField);
  CHECK(decode_error(message("07", "0006 00")) == Errc::BadField);
  CHECK(decode_error(message("07", "ffff 00")) == Errc::BadField);
  for (int code = 1; code <= 5; ++code) {
    CAPTURE(code);
    CHECK(decode(message("07", "000" + std::to_string(code) + " 00")).has_value());
  }
  std::vector<std::byte> out(kMaxMessage);
  CHECK(encode({1, Error{static_cast<Code>(0), ""}}, out).error() == Errc::BadField);
  CHECK(encode({1, Error{static_cast<Code>(6), ""}}, out).error() == Errc::BadField);
}

TEST_CASE("control: a reason longer than kMaxReason is refused", "[relay][control]") {
  const std::string at_max = std::string(2 * kMaxReason, '6');  // kMaxReason 'f' bytes in hex
  CHECK(decode(message("07", "0001 c8 " + at_max)).has_value());
  CHECK(decode_error(message("07", "0001 c9 " + at_max + "66")) == Errc::BadField);
  CHECK(decode_error(message("07", "0001 ff " + at_max + std::string(110, '6'))) == Errc::BadField);
  // Refused on the length alone, before the bytes are there.
  CHECK(decode_error(message("07", "0001 c9")) == Errc::BadField);
  std::vector<std::byte> out(kMaxMessage + 1);
  CHECK(encode({1, Error{Code::BadRequest, std::string(kMaxReason + 1, 'f')}}, out).error() ==
        Errc::BadField);
}

TEST_CASE("control: a reason that is not UTF-8 is refused", "[relay][control]") {
  const auto bad = GENERATE(as<std::string_view>{},
                            "80",        // a stray continuation byte
                            "bf",        //
                            "c0af",      // overlong '/'
                            "c1bf",      // overlong U+007F
                            "e080af",    // overlong, 3 bytes
                            "f08080af",  // overlong, 4 bytes
                            "eda080",    // surrogate U+D800
                            "edbfbf",    // surrogate U+DFFF
                            "f4908080",  // above U+10FFFF
                            "f5808080",  // no such lead byte
                            "fe", "ff",  //
                            "c3",        // cut at the end
                            "e282",      //
                            "f09f98",    //
                            "c328",      // a continuation byte missing
                            "e228a1",    //
                            "e28228",    //
                            "f0289f98", "f09f2898", "f09f9828");
  CAPTURE(bad);
  const auto reason = reason_of(bad);
  const auto length = static_cast<int>(reason.size()) + 2;
  const std::string len_hex{"0123456789abcdef"[length / 16], "0123456789abcdef"[length % 16]};
  // Between valid characters, so that only the bad sequence can be blamed.
  CHECK(decode_error(message("07", "0001 " + len_hex + " 61" + std::string{bad} + "62")) ==
        Errc::BadField);
  std::vector<std::byte> out(kMaxMessage);
  CHECK(encode({1, Error{Code::BadRequest, "a" + reason + "b"}}, out).error() == Errc::BadField);
}

TEST_CASE("control: encode refuses a buffer too small for the message", "[relay][control]") {
  for (const auto& s : samples()) {
    const auto size = hex(s.bytes).size();
    std::vector<std::byte> out(size);
    CAPTURE(s.name);
    CHECK(encode(s.message, out).value() == size);
    for (std::size_t n = 0; n < size; ++n) {
      CAPTURE(n);
      CHECK(encode(s.message, core::MutableBytes{out}.first(n)).error() == Errc::NoSpace);
    }
  }
}
