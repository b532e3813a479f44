// Tests for fwimage/fat.hpp on file systems made by mkfs.fat and filled by mtools: FAT12, 16
// and 32, a file found by its path with the bytes mtools wrote, a fragmented file's extents,
// missing names and a broken boot sector refused.
#include "fwimage/fat.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <catch2/catch.hpp>

#include "support/daemon_process.hpp"

using namespace fwimage;

namespace {

void run(const std::string& cmd) {
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::vector<std::byte> load(const std::filesystem::path& p) {
  std::ifstream in{p, std::ios::binary};
  std::vector<char> raw{std::istreambuf_iterator<char>{in}, {}};
  std::vector<std::byte> out;
  for (char c : raw) out.push_back(static_cast<std::byte>(c));
  return out;
}

ReadAt reader(const std::vector<std::byte>& fs) {
  return [&fs](std::uint64_t offset, std::span<std::byte> out) -> Result<void> {
    if (offset > fs.size() || out.size() > fs.size() - offset)
      return fail(Errc::BadDisk, "past the end");
    std::copy_n(fs.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
    return {};
  };
}

std::string content(const std::vector<std::byte>& fs, const FatFile& f) {
  std::string out;
  for (auto x : f.extents)
    for (std::uint64_t i = 0; i < x.length; ++i)
      out.push_back(std::to_integer<char>(fs[x.offset + i]));
  return out;
}

}  // namespace

TEST_CASE("fat: a file is found by path in FAT12 FAT16 and FAT32", "[fwimage]") {
  struct Kind {
    const char* fat;
    unsigned kib;
  };
  for (auto kind : {Kind{"12", 2048}, Kind{"16", 16384}, Kind{"32", 40960}}) {
    SECTION(std::string{"FAT"} + kind.fat) {
      test::TempDir dir;
      const auto img = dir / "fs.img";
      std::string env(1024, '#');
      env.replace(0, 25, "# GRUB Environment Block\n");
      const auto file = dir.write("grubenv", env);
      dir.write("other", "other file");
      run("mkfs.fat -F " + std::string{kind.fat} + " -C '" + img.string() + "' " +
          std::to_string(kind.kib) + " >/dev/null");
      run("mmd -i '" + img.string() + "' ::/EFI ::/grub && mcopy -i '" + img.string() + "' '" +
          (dir / "other").string() + "' ::/EFI/other && mcopy -i '" + img.string() + "' '" +
          file.string() + "' ::/grub/grubenv");
      const auto fs = load(img);
      const auto found = locate_fat_file(reader(fs), fs.size(), "/grub/grubenv");
      REQUIRE(found);
      CHECK(found->size == 1024);
      CHECK(content(fs, *found) == env);
      CHECK(content(fs, locate_fat_file(reader(fs), fs.size(), "/efi/OTHER").value()) ==
            "other file");

      const auto missing = locate_fat_file(reader(fs), fs.size(), "/grub/grub.cfg");
      REQUIRE_FALSE(missing);
      CHECK(missing.error().code == Errc::BadDisk);
      CHECK_FALSE(locate_fat_file(reader(fs), fs.size(), "/grub"));
      CHECK_FALSE(locate_fat_file(reader(fs), fs.size(), "/grub/grubenv/x"));
      CHECK_FALSE(locate_fat_file(reader(fs), fs.size(), "/grub/long-name.text"));
    }
  }
}

TEST_CASE("fat: a fragmented file's extents follow its cluster chain", "[fwimage]") {
  test::TempDir dir;
  const auto img = dir / "fs.img";
  // 512-byte clusters; a, b, then a is replaced by a file of three clusters that must reuse a's
  // cluster and continue after b's.
  run("mkfs.fat -F 12 -s 1 -C '" + img.string() + "' 1024 >/dev/null");
  dir.write("a", std::string(500, 'a'));
  dir.write("b", std::string(500, 'b'));
  std::string big(1400, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  dir.write("big", big);
  run("mcopy -i '" + img.string() + "' '" + (dir / "a").string() + "' ::/a && mcopy -i '" +
      img.string() + "' '" + (dir / "b").string() + "' ::/b && mdel -i '" + img.string() +
      "' ::/a && mcopy -i '" + img.string() + "' '" + (dir / "big").string() + "' ::/big");
  const auto fs = load(img);
  const auto found = locate_fat_file(reader(fs), fs.size(), "/big");
  REQUIRE(found);
  CHECK(found->extents.size() >= 2);
  CHECK(content(fs, *found) == big);
}

TEST_CASE("fat: a boot sector that is not FAT is refused", "[fwimage]") {
  std::vector<std::byte> zeros(64 * 1024);
  const auto r = locate_fat_file(reader(zeros), zeros.size(), "/grub/grubenv");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::BadDisk);
}
