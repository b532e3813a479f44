// Tests for fwimage/tar.hpp: archives round trip and read with tar(1); climbing or absolute
// names, links, bad checksums and archives cut at every offset are refused.
#include "fwimage/tar.hpp"

#include <cstdlib>
#include <fstream>

#include <catch2/catch.hpp>

#include "support/daemon_process.hpp"

using namespace fwimage;

namespace {

std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> v;
  for (char c : s) v.push_back(static_cast<std::byte>(c));
  return v;
}

const std::vector<TarEntry> kEntries{
    {.name = "etc/appl/appliance.json",
     .directory = false,
     .mode = 0600,
     .mtime = 1763800000,
     .data = bytes("{}\n")},
    {.name = "var/lib/appl/web/tls", .directory = true, .mode = 0700, .mtime = 0, .data = {}},
    {.name = "var/lib/appl/web/web.db",
     .directory = false,
     .mode = 0600,
     .mtime = 0,
     .data = std::vector<std::byte>(1500, std::byte{7})},
    {.name = "empty", .directory = false, .mode = 0644, .mtime = 0, .data = {}},
};

}  // namespace

TEST_CASE("tar: an archive round trips and tar(1) lists and extracts it", "[fwimage]") {
  const auto archive = write_tar(kEntries);
  CHECK(archive.size() % 512 == 0);
  CHECK(parse_tar(archive).value() == kEntries);

  test::TempDir dir;
  const auto file = dir / "a.tar";
  std::ofstream{file, std::ios::binary}.write(reinterpret_cast<const char*>(archive.data()),
                                              static_cast<std::streamsize>(archive.size()));
  const auto cmd = "cd '" + dir.path().string() +
                   "' && tar -xf a.tar && cmp -s etc/appl/appliance.json - <<< '{}'";
  CHECK(std::system(("bash -c \"" + cmd + "\"").c_str()) == 0);
}

TEST_CASE("tar: an archive cut anywhere is refused", "[fwimage]") {
  const auto archive = write_tar(kEntries);
  // The two end blocks make the last 1024 bytes optional padding for readers that stop at the
  // first; everything shorter than the first end block is cut.
  for (std::size_t n = 0; n < archive.size() - 1024; ++n) {
    const auto r = parse_tar(std::span{archive}.first(n));
    INFO(n);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::BadSettings);
  }
}

TEST_CASE("tar: names that leave the root and other entry types are refused", "[fwimage]") {
  for (const char* name : {"../etc/passwd", "a/../../b", "./x", "a//b"}) {
    auto archive = write_tar({{.name = name, .data = bytes("x")}});
    INFO(name);
    CHECK_FALSE(parse_tar(archive));
  }
  auto twice = write_tar({{.name = "a", .data = bytes("1")}, {.name = "a", .data = bytes("2")}});
  CHECK_FALSE(parse_tar(twice));

  auto link = write_tar({{.name = "a", .data = {}}});
  link[156] = std::byte{'2'};  // a symbolic link, checksum fixed up below
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i)
    sum += (i >= 148 && i < 156) ? ' ' : std::to_integer<unsigned>(link[i]);
  const auto digits = std::to_string(sum);
  for (std::size_t i = 0; i < 8; ++i) link[148 + i] = std::byte{0};
  std::string oct;
  for (unsigned v = sum; v > 0; v /= 8) oct.insert(oct.begin(), static_cast<char>('0' + v % 8));
  for (std::size_t i = 0; i < oct.size(); ++i) link[148 + i] = static_cast<std::byte>(oct[i]);
  const auto r = parse_tar(link);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("type '2'") != std::string::npos);

  auto flipped = write_tar({{.name = "a", .data = bytes("1")}});
  flipped[0] ^= std::byte{0x01};
  CHECK(parse_tar(flipped).error().message.find("checksum") != std::string::npos);
}
