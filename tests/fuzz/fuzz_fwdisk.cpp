// libFuzzer target: the on-disk formats fw-upgrade reads (fwimage/gpt.hpp, fat.hpp, tar.hpp).
// Input: a mode byte, then:
//   0  a GPT: the first 512 bytes as LBA 1, the rest as the entry array (its CRC checked like
//      any other field). Never crashes; partitions returned lie in the usable LBAs.
//   1  a FAT file system image, read through an in-memory reader that refuses reads past its
//      end: locate /grub/grubenv; extents returned lie inside the image and cover its size.
//   2  a ustar archive: an archive parsed writes back to one that parses to the same entries.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fwimage/fat.hpp"
#include "fwimage/gpt.hpp"
#include "fwimage/tar.hpp"

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto input = std::as_bytes(std::span{data, size}).subspan(1);
  switch (data[0] % 3) {
    case 0: {
      if (input.size() < 512) return 0;
      const auto h = fwimage::parse_gpt_header(input.first(512), 1u << 20);
      if (!h) return 0;
      const auto rest = input.subspan(512);
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(h->entries_bytes(), rest.size()));
      const auto parts = fwimage::parse_gpt_entries(*h, rest.first(n));
      if (!parts) return 0;
      for (const auto& p : *parts)
        FUZZ_CHECK(p.first_lba <= p.last_lba && p.first_lba >= h->first_usable &&
                   p.last_lba <= h->last_usable);
      return 0;
    }
    case 1: {
      const fwimage::ReadAt read = [&](std::uint64_t offset,
                                       std::span<std::byte> out) -> fwimage::Result<void> {
        if (offset > input.size() || out.size() > input.size() - offset)
          return fwimage::fail(fwimage::Errc::BadDisk, "past the end");
        std::copy_n(input.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
        return {};
      };
      const auto file = fwimage::locate_fat_file(read, input.size(), "/grub/grubenv");
      if (!file) return 0;
      std::uint64_t covered = 0;
      for (auto x : file->extents) {
        FUZZ_CHECK(x.offset <= input.size() && x.length <= input.size() - x.offset);
        covered += x.length;
      }
      FUZZ_CHECK(covered == file->size);
      return 0;
    }
    default: {
      const auto entries = fwimage::parse_tar(input);
      if (!entries) return 0;
      const auto again = fwimage::parse_tar(fwimage::write_tar(*entries));
      FUZZ_CHECK(again && *again == *entries);
      return 0;
    }
  }
}
