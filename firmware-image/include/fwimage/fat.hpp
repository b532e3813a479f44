// Where a file lies inside a FAT12/16/32 file system (Microsoft's FAT specification 1.03), so
// that the upgrade tool reads and rewrites /grub/grubenv in place, without mounting, exactly as
// GRUB's save_env does (GRUB writes the file's existing sectors, never the FAT or a directory):
// a power cut can tear the 1024 bytes (the grubenv parser refuses a torn block) but never the
// file system. Only short (8.3) names are matched; long-name entries are skipped, so a path
// component must be a valid 8.3 name (compared case-insensitively). Pure: the caller reads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "fwimage/error.hpp"

namespace fwimage {

// Fills `out` with the bytes at `offset` from the file system's start.
using ReadAt = std::function<Result<void>(std::uint64_t offset, std::span<std::byte> out)>;

struct Extent {
  std::uint64_t offset = 0;  // from the file system's start
  std::uint64_t length = 0;
  bool operator==(const Extent&) const = default;
};

struct FatFile {
  std::uint64_t size = 0;
  std::vector<Extent> extents;  // in file order, covering exactly `size` bytes
};

inline constexpr std::uint32_t kMaxFatDirectoryEntries = 65536;

// `path` is absolute ("/grub/grubenv"). BadDisk when the boot sector is not FAT, the path is
// not found or not a regular file, or a cluster chain is broken (out of range, a loop, shorter
// than the size); read errors are passed on.
Result<FatFile> locate_fat_file(const ReadAt& read, std::uint64_t fs_bytes, std::string_view path);

}  // namespace fwimage
