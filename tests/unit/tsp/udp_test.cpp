// Tests for tsp/udp.hpp: the 8-byte header and the retransmit cache.
#include "tsp/udp.hpp"

#include <catch2/catch.hpp>

#include "tsp_test_util.hpp"

using namespace tsp;
using tsp_test::bytes;
using tsp_test::datagram;

TEST_CASE("udp: header layout is 0xF nibble, 28-bit sequence, 32-bit timestamp", "[tsp][udp]") {
  const auto d = datagram(0xF00000F0u, 930, "VERSION=2.0.2\r\n");
  REQUIRE(d.size() == 8 + 15);
  CHECK(d[0] == std::byte{0xF0});
  CHECK(d[3] == std::byte{0xF0});
  CHECK(d[6] == std::byte{0x03});
  CHECK(d[7] == std::byte{0xA2});
  auto p = parse_udp_datagram(d).value();
  CHECK(p.header.sequence_word == 0xF00000F0u);
  CHECK(p.header.sequence() == 0xF0u);
  CHECK(p.header.timestamp == 930);
  CHECK(tsp_test::text({p.payload.begin(), p.payload.end()}) == "VERSION=2.0.2\r\n");
  CHECK(UdpHeader::make(0x123, 7) == UdpHeader{0xF0000123u, 7});
  CHECK(UdpHeader::make(0xFFFFFFFFu, 0).sequence_word == 0xFFFFFFFFu);
}

TEST_CASE("udp: signalling vs tunnelled data, runts", "[tsp][udp]") {
  CHECK(is_signalling(datagram(0xF0000001u, 0, "")));
  // An IPv6 packet on the same v6udpv4 flow starts with nibble 6.
  auto ipv6 = bytes(std::string{"\x60\x00\x00\x00\x00\x08\x3a\x40", 8});
  CHECK_FALSE(is_signalling(ipv6));
  CHECK(parse_udp_datagram(ipv6).error() == make_error_code(Errc::NotSignalling));
  CHECK(parse_udp_datagram(bytes(std::string{"\xF0\x00\x00", 3})).error() ==
        make_error_code(Errc::DatagramTooShort));
  CHECK_FALSE(is_signalling(bytes(std::string{"\xF0\x00\x00", 3})));
  // Header only: an empty payload (a client "read").
  auto empty = parse_udp_datagram(datagram(0xF0000002u, 5, "")).value();
  CHECK(empty.payload.empty());
}

TEST_CASE("udp: encode echoes the header unchanged", "[tsp][udp]") {
  const UdpHeader h{0xF2345678u, 0xDEADBEEFu};
  auto d = encode_udp_datagram(h, core::as_bytes(std::string_view{"200 Success\r\n"}));
  CHECK(parse_udp_datagram(d).value().header == h);
}

TEST_CASE("udp: the reply cache tells new requests, retransmissions and work in progress",
          "[tsp][udp]") {
  UdpReplyCache cache;
  const UdpHeader first{0xF00000F0u, 930};
  CHECK(cache.classify(first) == UdpReplyCache::Verdict::New);
  cache.begin(first);
  CHECK(cache.in_progress());
  CHECK(cache.classify(first) == UdpReplyCache::Verdict::InProgress);
  const auto reply = cache.complete(core::as_bytes(std::string_view{"CAPABILITY\r\n"}));
  CHECK(reply == datagram(0xF00000F0u, 930, "CAPABILITY\r\n"));
  CHECK_FALSE(cache.in_progress());
  // A retransmission keeps the sequence word; its (new) timestamp is echoed.
  const UdpHeader again{0xF00000F0u, 2930};
  CHECK(cache.classify(again) == UdpReplyCache::Verdict::Retransmit);
  CHECK(cache.resend(again) == datagram(0xF00000F0u, 2930, "CAPABILITY\r\n"));
  CHECK(cache.classify(UdpHeader{0xF00000F1u, 931}) == UdpReplyCache::Verdict::New);
}

TEST_CASE("udp: a delayed duplicate of an older request is stale", "[tsp][udp]") {
  UdpReplyCache cache;
  cache.begin(UdpHeader{0xF00000F3u, 1});
  (void)cache.complete({});
  CHECK(cache.classify(UdpHeader{0xF00000F2u, 1}) == UdpReplyCache::Verdict::Stale);
  CHECK(cache.classify(UdpHeader{0xF00000F0u, 1}) == UdpReplyCache::Verdict::Stale);
  CHECK(cache.classify(UdpHeader{0xF00000F4u, 1}) == UdpReplyCache::Verdict::New);
  // Across the 28-bit wrap.
  cache.begin(UdpHeader{0xF0000001u, 1});
  CHECK(cache.classify(UdpHeader{0xFFFFFFFFu, 1}) == UdpReplyCache::Verdict::Stale);
  cache.begin(UdpHeader{0xFFFFFFFFu, 1});
  CHECK(cache.classify(UdpHeader{0xF0000000u, 1}) == UdpReplyCache::Verdict::New);
}
