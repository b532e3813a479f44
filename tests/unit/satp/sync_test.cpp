// Tests for satp/sync.hpp: anytun 0.3.8's sync records byte for byte, round trips, the framer.
#include "satp/sync.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

using namespace satp;
using namespace satp::sync;

namespace {

// satp-wire.md 11, verbatim (the §9 master key and salt of passphrase satp-interop-test).
constexpr std::string_view kSpecConnection =
    "00210 22 serialization::archive 18 0 0 10 connection 0 0 5 0 0 0 0 0 128 0 0 14 16 240 149 "
    "237 97 26 24 19 144 122 82 44 125 224 16 79 225 48 28 216 89 172 63 209 255 13 150 74 111 "
    "182 226 0 0 64 0 10 fd00:aa::2 4444";
constexpr std::string_view kSpecRoute =
    "00071 22 serialization::archive 18 0 0 5 route 0 0 0 0 16 0 0 0 9 10.99.0.0 5";

std::vector<std::uint8_t> hex(std::string_view h) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoul(std::string{h.substr(i, 2)}, nullptr, 16)));
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view h) {
  std::array<std::uint8_t, N> out{};
  auto v = hex(h);
  REQUIRE(v.size() == N);
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

Connection spec_connection() {
  Connection c;
  c.mux = 5;
  c.role = Role::Left;
  c.master_salt = hex_array<14>("10f095ed611a1813907a522c7de0");
  c.master_key = hex("4fe1301cd859ac3fd1ff0d964a6fb6e2");
  c.window_size = 64;
  c.seq_nr = 0;
  c.remote_host = core::Ipv6Address::parse("fd00:aa::2").value();
  c.remote_port = 4444;
  return c;
}

Route route4(std::string_view prefix, std::uint16_t mux) {
  return Route{core::Ipv4Prefix::parse(prefix).value(), mux};
}
Route route6(std::string_view prefix, std::uint16_t mux) {
  return Route{core::Ipv6Prefix::parse(prefix).value(), mux};
}

// A frame's archive: what the framer hands to parse().
std::string_view body(std::string_view frame) {
  return frame.substr(kHeaderSize);
}

Errc error_of(const Result<Record>& r) {
  REQUIRE_FALSE(r);
  return static_cast<Errc>(r.error().value());
}

// Feeds `parts` in order and collects archives until the first error (if any).
struct Cut {
  std::vector<std::string> archives;
  std::optional<Errc> error;
};
Cut cut(const std::vector<std::string_view>& parts, FramerLimits limits = {}) {
  Framer f{limits};
  Cut out;
  for (auto p : parts) {
    if (auto fed = f.feed(core::as_bytes(p)); !fed) {
      out.error = static_cast<Errc>(fed.error().value());
      return out;
    }
    while (true) {
      auto next = f.next();
      if (!next) {
        out.error = static_cast<Errc>(next.error().value());
        return out;
      }
      if (!*next) break;
      out.archives.push_back(std::move(**next));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("sync: the spec's connection example is emitted byte for byte", "[satp][sync]") {
  CHECK(encode(spec_connection()).value() == kSpecConnection);
}

TEST_CASE("sync: the spec's route example is emitted byte for byte", "[satp][sync]") {
  CHECK(encode(route4("10.99.0.0/16", 5)).value() == kSpecRoute);
}

TEST_CASE("sync: the spec's examples parse to their records", "[satp][sync]") {
  CHECK(parse(body(kSpecConnection)).value() == Record{spec_connection()});
  CHECK(parse(body(kSpecRoute)).value() == Record{route4("10.99.0.0/16", 5)});
  CHECK(std::get<Connection>(parse(body(kSpecConnection)).value()).has_remote());
}

TEST_CASE("sync: frames written by anytun-config 0.3.8 parse and re-encode to the same bytes",
          "[satp][sync]") {
  // Captured from the Debian binary: -m 5 -e right -E satp-interop-test -k aes-ctr-256 -R
  // 2001:db8:1::/48; -m 65535 -e right -K 0001..17 -A 0102..0e -k aes-ctr-192 -w 65535 -r
  // 192.0.2.1 -o 65535 -R 192.0.2.0/24; -m 1 -E x -r 2001:db8::1 -o 1 -R 0.0.0.0/0 -R ::/0
  // -R 2001:db8::1/128.
  const std::string_view frame = GENERATE(
      std::string_view{
          "00262 22 serialization::archive 18 0 0 10 connection 0 0 5 0 0 0 0 1 256 0 0 14 16 "
          "240 149 237 97 26 24 19 144 122 82 44 125 224 32 228 121 73 52 119 170 38 207 255 116 "
          "33 177 46 99 59 255 79 225 48 28 216 89 172 63 209 255 13 150 74 111 182 226 0 0 0 0 "
          "7 0.0.0.0 4444"},
      std::string_view{
          "00075 22 serialization::archive 18 0 0 5 route 0 0 0 0 48 0 0 1 12 2001:db8:1:: 5"},
      std::string_view{
          "00205 22 serialization::archive 18 0 0 10 connection 0 0 65535 0 0 0 0 1 192 0 0 14 1 "
          "2 3 4 5 6 7 8 9 10 11 12 13 14 24 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 "
          "20 21 22 23 0 0 65535 0 9 192.0.2.1 65535"},
      std::string_view{
          "00075 22 serialization::archive 18 0 0 5 route 0 0 0 0 24 0 0 0 9 192.0.2.0 65535"},
      std::string_view{
          "00205 22 serialization::archive 18 0 0 10 connection 0 0 1 0 0 0 0 0 128 0 0 14 41 "
          "132 171 170 253 124 59 81 101 3 120 92 32 114 16 200 83 15 177 144 60 196 219 2 37 "
          "135 23 146 26 72 129 0 0 0 0 11 2001:db8::1 1"},
      std::string_view{
          "00068 22 serialization::archive 18 0 0 5 route 0 0 0 0 0 0 0 0 7 0.0.0.0 1"},
      std::string_view{"00063 22 serialization::archive 18 0 0 5 route 0 0 0 0 0 0 0 1 2 :: 1"},
      std::string_view{
          "00075 22 serialization::archive 18 0 0 5 route 0 0 0 0 128 0 0 1 11 2001:db8::1 1"});
  CAPTURE(frame);
  auto record = parse(body(frame));
  REQUIRE(record);
  CHECK(encode(*record).value() == frame);
}

TEST_CASE("sync: anytun-config's records hold the values given on its command line",
          "[satp][sync]") {
  auto c = std::get<Connection>(
      parse(body("00205 22 serialization::archive 18 0 0 10 connection 0 0 65535 0 0 0 0 1 192 0 "
                 "0 14 1 2 3 4 5 6 7 8 9 10 11 12 13 14 24 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
                 "16 17 18 19 20 21 22 23 0 0 65535 0 9 192.0.2.1 65535"))
          .value());
  CHECK(c.mux == 65535);
  CHECK(c.role == Role::Right);
  CHECK(c.master_salt == hex_array<14>("0102030405060708090a0b0c0d0e"));
  CHECK(c.master_key == hex("000102030405060708090a0b0c0d0e0f1011121314151617"));
  CHECK(c.window_size == 65535);
  CHECK(c.seq_nr == 0);
  CHECK(c.remote_host == RemoteAddress{core::Ipv4Address::parse("192.0.2.1").value()});
  CHECK(c.remote_port == 65535);
  // Without -r anytun writes 0.0.0.0: no endpoint known yet.
  auto unknown = std::get<Connection>(
      parse(body("00262 22 serialization::archive 18 0 0 10 connection 0 0 5 0 0 0 0 1 256 0 0 "
                 "14 16 240 149 237 97 26 24 19 144 122 82 44 125 224 32 228 121 73 52 119 170 38 "
                 "207 255 116 33 177 46 99 59 255 79 225 48 28 216 89 172 63 209 255 13 150 74 "
                 "111 182 226 0 0 0 0 7 0.0.0.0 4444"))
          .value());
  CHECK_FALSE(unknown.has_remote());
  CHECK(unknown.master_key.size() == 32);
}

TEST_CASE("sync: IPv4 and IPv6 routes round-trip", "[satp][sync]") {
  const Route r =
      GENERATE(route4("0.0.0.0/0", 0), route4("192.0.2.0/24", 1), route4("192.0.2.255/32", 65535),
               route6("::/0", 2), route6("2001:db8::/32", 3), route6("2001:db8:0:1::/64", 4),
               route6("2001:db8::1/128", 5), route6("::ffff:192.0.2.1/128", 6));
  auto frame = encode(r).value();
  CAPTURE(frame);
  CHECK(parse(body(frame)).value() == Record{r});
}

TEST_CASE("sync: connections with keys of 128, 192 and 256 bits round-trip", "[satp][sync]") {
  const std::size_t key_size = GENERATE(16u, 24u, 32u);
  Connection c;
  c.mux = 65535;
  c.role = Role::Right;
  for (std::size_t i = 0; i < c.master_salt.size(); ++i)
    c.master_salt[i] = static_cast<std::uint8_t>(255 - i);
  for (std::size_t i = 0; i < key_size; ++i)
    c.master_key.push_back(static_cast<std::uint8_t>(i * 11));
  c.window_size = 65535;
  c.seq_nr = 4294967295u;
  c.remote_host = core::Ipv6Address::parse("2001:db8::7").value();
  c.remote_port = 65535;
  auto frame = encode(c).value();
  CAPTURE(frame);
  CHECK(frame.find(" " + std::to_string(key_size * 8) + " 0 0 14 ") != std::string::npos);
  CHECK(parse(body(frame)).value() == Record{c});
  c.remote_host = core::Ipv4Address{};
  c.remote_port = 0;
  CHECK(parse(body(encode(c).value())).value() == Record{c});
}

TEST_CASE("sync: a route's host bits are cleared as anytun's tree ignores them", "[satp][sync]") {
  // anytun-config -R 10.1.2.3/8 writes the address as typed.
  CHECK(parse("22 serialization::archive 18 0 0 5 route 0 0 0 0 8 0 0 0 8 10.1.2.3 1").value() ==
        Record{route4("10.0.0.0/8", 1)});
  CHECK(parse("22 serialization::archive 18 0 0 5 route 0 0 0 0 33 0 0 1 16 2001:db8:ffff::1 1")
            .value() == Record{route6("2001:db8:8000::/33", 1)});
}

TEST_CASE("sync: routes that hang anytun 0.3.8 are refused and split into ones it takes",
          "[satp][sync]") {
  // anytun-config and anytun-showtables spin forever on these (checked by hand).
  const RoutePrefix bad =
      GENERATE(RoutePrefix{core::Ipv4Prefix::parse("192.0.2.128/25").value()},
               RoutePrefix{core::Ipv4Prefix::parse("192.0.2.252/30").value()},
               RoutePrefix{core::Ipv4Prefix::parse("10.192.0.0/10").value()},
               RoutePrefix{core::Ipv4Prefix::parse("128.0.0.0/1").value()},
               RoutePrefix{core::Ipv6Prefix::parse("2001:db8:8000::/33").value()});
  CAPTURE(bad);
  CHECK_FALSE(anytun_can_take(bad));
  CHECK(encode(Route{bad, 1}).error() == Errc::Unsupported);
  const auto parts = anytun_safe_split(bad);
  REQUIRE(!parts.empty());
  REQUIRE(parts.size() <= 128);
  for (const auto& p : parts) {
    CHECK(anytun_can_take(p));
    CHECK(encode(Route{p, 1}));
  }
  std::visit(
      [&](const auto& whole) {
        using P = std::decay_t<decltype(whole)>;
        // At the next byte boundary, all inside, all distinct: together exactly the whole.
        const unsigned length = (whole.length() / 8 + 1) * 8;
        CHECK(parts.size() == std::size_t{1} << (length - whole.length()));
        for (std::size_t i = 0; i < parts.size(); ++i) {
          const auto& q = std::get<P>(parts[i]);
          CHECK(q.length() == length);
          CHECK(whole.contains(q));
          if (i > 0) CHECK(std::get<P>(parts[i - 1]).network() < q.network());
        }
      },
      bad);
}

TEST_CASE("sync: prefixes anytun 0.3.8 takes are kept whole", "[satp][sync]") {
  const RoutePrefix good = GENERATE(RoutePrefix{core::Ipv4Prefix::parse("192.0.2.0/25").value()},
                                    RoutePrefix{core::Ipv4Prefix::parse("192.0.2.128/26").value()},
                                    RoutePrefix{core::Ipv4Prefix::parse("192.0.2.248/30").value()},
                                    RoutePrefix{core::Ipv4Prefix::parse("192.0.2.255/32").value()},
                                    RoutePrefix{core::Ipv4Prefix::parse("0.0.0.0/0").value()},
                                    RoutePrefix{core::Ipv6Prefix::parse("2001:db8::/31").value()});
  CAPTURE(good);
  CHECK(anytun_can_take(good));
  CHECK(anytun_safe_split(good) == std::vector<RoutePrefix>{good});
}

TEST_CASE("sync: encode checks the key and the caller's buffer", "[satp][sync]") {
  auto c = spec_connection();
  c.master_key.resize(20);
  CHECK(encode(c).error() == Errc::BadKeyLength);
  c.master_key.clear();
  CHECK(encode(c).error() == Errc::BadKeyLength);

  std::array<char, 256> big{};
  auto n = encode(spec_connection(), big);
  REQUIRE(n);
  CHECK(std::string_view{big.data(), *n} == kSpecConnection);
  std::array<char, 70> small{};
  CHECK(encode(route4("10.99.0.0/16", 5), small).error() == Errc::NoSpace);
  std::array<char, 77> exact{};
  CHECK(encode(route4("10.99.0.0/16", 5), exact).value() == 77);
}

TEST_CASE("sync framer: a dump on accept is cut into the same records at every split",
          "[satp][sync][framer]") {
  // What a listener sends on accept: every connection, then the IPv4 and the IPv6 routes.
  auto c2 = spec_connection();
  c2.mux = 6;
  c2.role = Role::Right;
  c2.master_key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  c2.remote_host = core::Ipv4Address::parse("192.0.2.9").value();
  c2.remote_port = 4445;
  auto c3 = spec_connection();
  c3.mux = 7;
  c3.master_key = hex("ffeeddccbbaa99887766554433221100ffeeddccbbaa9988");
  c3.remote_host = core::Ipv4Address{};
  const std::vector<Record> dump{spec_connection(),
                                 c2,
                                 c3,
                                 route4("10.99.0.0/16", 5),
                                 route4("192.0.2.64/26", 6),
                                 route6("2001:db8:6::/48", 6),
                                 route6("2001:db8:7::1/128", 7)};
  std::string stream;
  std::vector<std::string> expected;
  for (const auto& r : dump) {
    auto frame = encode(r).value();
    expected.emplace_back(body(frame));
    stream += frame;
  }
  // Whole, and cut once at every offset.
  CHECK(cut({stream}).archives == expected);
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    const std::string_view s{stream};
    auto got = cut({s.substr(0, i), s.substr(i)});
    CAPTURE(i);
    REQUIRE_FALSE(got.error);
    REQUIRE(got.archives == expected);
  }
  // One byte at a time.
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view{stream}.substr(i, 1));
  auto got = cut(bytes);
  CHECK_FALSE(got.error);
  CHECK(got.archives == expected);
  // And every archive parses back to its record.
  for (std::size_t i = 0; i < dump.size(); ++i) CHECK(parse(got.archives[i]).value() == dump[i]);
}

TEST_CASE("sync framer: malformed headers are BadFrame", "[satp][sync][framer]") {
  const std::string_view input = GENERATE(
      std::string_view{"0071 22 serialization"},    // 4 digits
      std::string_view{"000071 22 serialization"},  // 6 digits
      std::string_view{"0007a 22 serialization"}, std::string_view{" 0071 22 serialization"},
      std::string_view{"+0071 22 serialization"}, std::string_view{"00071\n22 serialization"},
      std::string_view{"00000 "}, std::string_view{"\n00071 22 serialization"});
  CAPTURE(input);
  auto got = cut({input});
  CHECK(got.archives.empty());
  CHECK(got.error == Errc::BadFrame);
}

TEST_CASE("sync framer: an incomplete frame waits for more bytes", "[satp][sync][framer]") {
  Framer f;
  REQUIRE(f.feed(core::as_bytes(kSpecRoute.substr(0, 5))));
  CHECK(f.next().value() == std::nullopt);
  REQUIRE(f.feed(core::as_bytes(kSpecRoute.substr(5, 50))));
  CHECK(f.next().value() == std::nullopt);
  CHECK_FALSE(f.at_boundary());
  REQUIRE(f.feed(core::as_bytes(kSpecRoute.substr(55))));
  CHECK(f.next().value() == std::string{body(kSpecRoute)});
  CHECK(f.at_boundary());
}

TEST_CASE("sync framer: records above max_record and input above max_buffered are refused",
          "[satp][sync][framer]") {
  // The length is judged as soon as the header is in, before the body arrives.
  auto big = cut({"00301 "}, FramerLimits{.max_record = 300, .max_buffered = 1000});
  CHECK(big.error == Errc::BadFrame);
  auto fits = cut({kSpecConnection}, FramerLimits{.max_record = 210, .max_buffered = 216});
  CHECK(fits.archives.size() == 1);
  CHECK_FALSE(fits.error);

  // Held bytes count until next() consumes them: 216 + 77 > 250.
  Framer f{FramerLimits{.max_record = 210, .max_buffered = 250}};
  REQUIRE(f.feed(core::as_bytes(kSpecConnection)));
  CHECK(f.feed(core::as_bytes(kSpecRoute)).error() == Errc::NoSpace);
  CHECK(f.next().error() == Errc::NoSpace);
}

TEST_CASE("sync framer: errors are sticky", "[satp][sync][framer]") {
  Framer f;
  REQUIRE(f.feed(core::as_bytes(std::string_view{"x0071 "})));
  CHECK(f.next().error() == Errc::BadFrame);
  CHECK(f.failed());
  CHECK(f.feed(core::as_bytes(kSpecRoute)).error() == Errc::BadFrame);
  CHECK(f.next().error() == Errc::BadFrame);
}

TEST_CASE(
    "sync: records of other kinds, the null kd-prf, Ethernet and other versions are "
    "Unsupported",
    "[satp][sync]") {
  const std::string_view archive = GENERATE(
      // anyrtpproxy's record kind.
      std::string_view{"22 serialization::archive 18 0 0 3 rtp 0 0 1"},
      // anytun-config -k null: key length 0, empty salt and key.
      std::string_view{"22 serialization::archive 18 0 0 10 connection 0 0 1 0 0 0 0 0 0 0 0 0 0 "
                       "0 0 0 0 7 0.0.0.0 4444"},
      // Address type 2.
      std::string_view{
          "22 serialization::archive 18 0 0 5 route 0 0 0 0 48 0 0 2 17 00:11:22:33:44:55 1"},
      // Another Boost.
      std::string_view{"22 serialization::archive 19 0 0 5 route 0 0 0 0 16 0 0 0 9 10.99.0.0 5"},
      std::string_view{"22 serialization::archive 17 0 0 5 route 0 0 0 0 16 0 0 0 9 10.99.0.0 5"});
  CAPTURE(archive);
  CHECK(error_of(parse(archive)) == Errc::Unsupported);
}

namespace {

// The spec's connection archive with one token replaced: `from` must occur exactly once.
std::string conn_with(std::string_view from, std::string_view to) {
  std::string s{body(kSpecConnection)};
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(s.find(from, at + 1) == std::string::npos);
  return s.replace(at, from.size(), to);
}
std::string route_with(std::string_view from, std::string_view to) {
  std::string s{body(kSpecRoute)};
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(s.find(from, at + 1) == std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("sync: malformed archives are rejected with their error", "[satp][sync]") {
  struct Case {
    const char* what;
    std::string archive;
    Errc error;
  };
  const std::string conn{body(kSpecConnection)};
  const std::string route{body(kSpecRoute)};
  const std::vector<Case> cases{
      {"empty", "", Errc::BadArchive},
      {"bad signature", conn_with("serialization::archive", "serialization::archivx"),
       Errc::BadArchive},
      {"signature size off", conn_with("22 serialization", "21 serialization"), Errc::BadArchive},
      {"version not a number", conn_with("archive 18", "archive x8"), Errc::BadArchive},
      {"tracked SyncCommand", conn_with("18 0 0 10", "18 1 0 10"), Errc::BadArchive},
      {"class version 1", conn_with("connection 0 0 5 0 0", "connection 0 1 5 0 0"),
       Errc::BadArchive},
      {"kind size past the end", "22 serialization::archive 18 0 0 99 connection",
       Errc::BadArchive},
      {"kind without its space", "22 serialization::archive 18 0 0 10", Errc::BadArchive},
      {"two spaces", conn_with("5 0 0 0 0 0 128", "5  0 0 0 0 0 128"), Errc::BadArchive},
      {"newline separator", conn_with("18 0 0 10", "18\n0 0 10"), Errc::BadArchive},
      {"trailing space", conn + " ", Errc::BadArchive},
      {"trailing newline", conn + "\n", Errc::BadArchive},
      {"trailing token", conn + " 7", Errc::BadArchive},
      {"route trailing garbage", route + "x", Errc::BadArchive},
      {"truncated in the key", conn.substr(0, 150), Errc::BadRecord},
      {"truncated before the port", conn.substr(0, conn.size() - 5), Errc::BadRecord},
      {"truncated in the host", conn.substr(0, conn.size() - 8), Errc::BadRecord},
      {"MUX negative", conn_with("connection 0 0 5 ", "connection 0 0 -5 "), Errc::BadRecord},
      {"MUX 65536", conn_with("connection 0 0 5 ", "connection 0 0 65536 "), Errc::BadRecord},
      {"MUX huge", conn_with("connection 0 0 5 ", "connection 0 0 99999999999999999999999 "),
       Errc::BadRecord},
      {"MUX leading zero", conn_with("connection 0 0 5 ", "connection 0 0 05 "), Errc::BadRecord},
      {"MUX with sign", conn_with("connection 0 0 5 ", "connection 0 0 +5 "), Errc::BadRecord},
      {"role 2", conn_with("0 0 0 0 0 128", "0 0 0 0 2 128"), Errc::BadRecord},
      {"key length 129", conn_with(" 128 ", " 129 "), Errc::BadRecord},
      {"key length 192 with a 16-byte key", conn_with(" 128 ", " 192 "), Errc::BadRecord},
      {"salt of 13 bytes", conn_with(" 14 16 240", " 13 16 240"), Errc::BadRecord},
      {"key count 17", conn_with(" 224 16 79", " 224 17 79"), Errc::BadRecord},
      {"key count 15", conn_with(" 224 16 79", " 224 15 79"), Errc::BadRecord},
      {"byte 256", conn_with(" 240 149 ", " 256 149 "), Errc::BadRecord},
      {"byte not a number", conn_with(" 240 149 ", " 24O 149 "), Errc::BadRecord},
      {"SeqWindow tracked", conn_with("226 0 0 64", "226 1 0 64"), Errc::BadArchive},
      {"window 65536", conn_with(" 64 0 10", " 65536 0 10"), Errc::BadRecord},
      {"seq 2^32", conn_with(" 64 0 10", " 64 4294967296 10"), Errc::BadRecord},
      {"host size past the end", conn_with("10 fd00:aa::2 4444", "99 fd00:aa::2 4444"),
       Errc::BadRecord},
      {"host not an address", conn_with("10 fd00:aa::2", "10 fd00:aa::g"), Errc::BadRecord},
      {"host with a zone", conn_with("10 fd00:aa::2", "12 fe80::1%eth0"), Errc::BadRecord},
      {"host name", conn_with("10 fd00:aa::2", "10 anytun.org"), Errc::BadRecord},
      {"port 65536", conn_with("fd00:aa::2 4444", "fd00:aa::2 65536"), Errc::BadRecord},
      {"port missing", conn_with("fd00:aa::2 4444", "fd00:aa::2"), Errc::BadRecord},
      {"prefix length 33", route_with(" 16 0 0 0 ", " 33 0 0 0 "), Errc::BadRecord},
      {"prefix length 256", route_with(" 16 0 0 0 ", " 256 0 0 0 "), Errc::BadRecord},
      {"address type 3", route_with(" 16 0 0 0 9", " 16 0 0 3 9"), Errc::BadRecord},
      {"IPv6 text with type 0", route_with("9 10.99.0.0", "10 2001:db8::"), Errc::BadRecord},
      {"IPv4 text with type 1", route_with(" 16 0 0 0 9", " 16 0 0 1 9"), Errc::BadRecord},
      {"route MUX 65536", route_with("10.99.0.0 5", "10.99.0.0 65536"), Errc::BadRecord},
      {"route MUX missing", route_with("10.99.0.0 5", "10.99.0.0"), Errc::BadRecord},
      {"NetworkAddress tracked", route_with(" 16 0 0 0 ", " 16 1 0 0 "), Errc::BadArchive},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what, c.archive);
    CHECK(error_of(parse(c.archive)) == c.error);
  }
}
