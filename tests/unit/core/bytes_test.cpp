// Tests for core/bytes.hpp: sticky bounds checks, big-endian order.
#include "core/bytes.hpp"

#include <catch2/catch.hpp>
#include <vector>

using core::ByteReader;
using core::ByteWriter;

namespace {
std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}
}  // namespace

TEST_CASE("byte reader: reads big-endian fields in order", "[core][bytes]") {
  auto buf = bytes({0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01});
  ByteReader in{buf};
  CHECK(in.u16() == 0x1234);
  CHECK(in.u32() == 0x56789abcu);
  CHECK(in.u8() == 0xde);
  CHECK(in.remaining() == 2);
  CHECK(in.ok());
}

TEST_CASE("byte reader: a short read fails sticky and returns zeros", "[core][bytes]") {
  auto buf = bytes({0x12, 0x34, 0x56});
  ByteReader in{buf};
  CHECK(in.u16() == 0x1234);
  CHECK(in.u32() == 0);  // only one byte left
  CHECK_FALSE(in.ok());
  CHECK(in.u8() == 0);  // stays failed even though a byte was left before
  CHECK(in.bytes(0).empty());
  CHECK_FALSE(in.ok());
  CHECK(in.remaining() == 0);
}

TEST_CASE("byte reader: u64 and arrays", "[core][bytes]") {
  auto buf = bytes({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  ByteReader in{buf};
  CHECK(in.u64() == 0x0102030405060708ull);
  CHECK(in.array<2>() == std::array<std::uint8_t, 2>{9, 10});
  CHECK(in.ok());
  CHECK(in.array<1>() == std::array<std::uint8_t, 1>{0});
  CHECK_FALSE(in.ok());
}

TEST_CASE("byte writer: writes big-endian and stops at the end", "[core][bytes]") {
  std::vector<std::byte> out(7);
  ByteWriter w{out};
  w.u16(0x1234).u32(0xdeadbeef);
  CHECK(w.ok());
  CHECK(w.size() == 6);
  w.u16(0xffff);  // does not fit: nothing written
  CHECK_FALSE(w.ok());
  w.u8(0xaa);  // sticky: even a fitting write is refused now
  CHECK(out == bytes({0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0}));
  CHECK(w.written().size() == 6);
}

TEST_CASE("byte writer: reserve then patch", "[core][bytes]") {
  std::vector<std::byte> out(4);
  ByteWriter w{out};
  auto len = w.reserve(2);
  w.u16(7);
  core::store_be16(len, static_cast<std::uint16_t>(w.size()));
  CHECK(out == bytes({0, 4, 0, 7}));
  CHECK(core::load_be32(out) == 0x00040007u);
}
