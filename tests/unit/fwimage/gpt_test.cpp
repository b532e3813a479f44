// Tests for fwimage/gpt.hpp: a table written by sfdisk is read by name; a flipped byte in the
// header or the entries, a cut entry array or a partition past the usable LBAs is refused.
#include "fwimage/gpt.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>

#include "support/daemon_process.hpp"

using namespace fwimage;

namespace {

struct Table {
  std::vector<std::byte> disk;
  std::uint64_t sectors() const { return disk.size() / 512; }
  core::Bytes header() const { return std::span{disk}.subspan(512, 512); }
  std::span<std::byte> entries(const GptHeader& h) {
    return std::span{disk}.subspan(h.entries_lba * 512, h.entries_bytes());
  }
};

// A 5 MiB disk image partitioned by sfdisk.
Table sfdisk_table() {
  test::TempDir dir;
  const auto img = dir / "disk.img";
  const auto script = dir.write("t",
                                "label: gpt\nunit: sectors\n"
                                "start=2048, size=2048, name=bios\n"
                                "size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\n"
                                "size=2048, name=slotA\n");
  const std::string cmd = "truncate -s 5M '" + img.string() + "' && sfdisk -q '" + img.string() +
                          "' < '" + script.string() + "' >/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in{img, std::ios::binary};
  std::vector<char> raw{std::istreambuf_iterator<char>{in}, {}};
  Table t;
  for (char c : raw) t.disk.push_back(static_cast<std::byte>(c));
  return t;
}

}  // namespace

TEST_CASE("gpt: partitions of an sfdisk table are found by name", "[fwimage]") {
  auto t = sfdisk_table();
  const auto h = parse_gpt_header(t.header(), t.sectors());
  REQUIRE(h);
  CHECK(h->entry_size == 128);
  const auto parts = parse_gpt_entries(*h, t.entries(*h));
  REQUIRE(parts);
  REQUIRE(parts->size() == 3);
  const auto* boot = find_partition(*parts, "boot");
  REQUIRE(boot != nullptr);
  CHECK(boot->first_lba == 4096);
  CHECK(boot->last_lba == 6143);
  CHECK(boot->type[0] == 0x28);  // C12A7328 stored little-endian
  CHECK(find_partition(*parts, "slotA")->first_lba == 6144);
  CHECK(find_partition(*parts, "slotB") == nullptr);
}

TEST_CASE("gpt: a flipped byte in the header or the entries is refused", "[fwimage]") {
  auto t = sfdisk_table();
  const auto h = parse_gpt_header(t.header(), t.sectors()).value();

  for (std::size_t at : std::array<std::size_t, 6>{0, 12, 20, 40, 80, 91}) {
    auto copy = t;
    copy.disk[512 + at] ^= std::byte{0x01};
    INFO(at);
    const auto r = parse_gpt_header(copy.header(), copy.sectors());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::BadDisk);
  }
  auto e = t.entries(h);
  e[56 + 2] ^= std::byte{0x20};  // the first entry's name
  const auto r = parse_gpt_entries(h, e);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("CRC32") != std::string::npos);
  CHECK_FALSE(parse_gpt_entries(h, e.first(e.size() - 128)));
}

TEST_CASE("gpt: a table larger than the disk is refused", "[fwimage]") {
  auto t = sfdisk_table();
  const auto r = parse_gpt_header(t.header(), 1024);  // the disk said to be 512 KiB
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::BadDisk);
  CHECK_FALSE(parse_gpt_header(t.header().first(100), t.sectors()));
}

TEST_CASE("gpt: crc32 is IEEE 802.3's", "[fwimage]") {
  const std::string check = "123456789";
  CHECK(crc32(std::as_bytes(std::span{check})) == 0xcbf43926u);
}
