// The settings backup's container: POSIX ustar (POSIX.1-2001, pax's "ustar" interchange format),
// regular files and directories only, so that `tar -tvf` and `tar -xf` read a backup anywhere.
// Pure: whole archives in memory (a settings backup is bounded by kMaxArchive).
//
//   header block (512 bytes)      name[100] mode[8] uid[8] gid[8] size[12] mtime[12]
//                                 chksum[8] typeflag[1] linkname[100] "ustar\0" "00"
//                                 uname[32] gname[32] devmajor[8] devminor[8] prefix[155]
//   the file's bytes, padded with zeros to a multiple of 512; two zero blocks end the archive.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "fwimage/error.hpp"

namespace fwimage {

inline constexpr std::size_t kTarBlock = 512;
inline constexpr std::uint64_t kMaxArchive = 64 * 1024 * 1024;

struct TarEntry {
  std::string name;  // relative, '/'-separated, no "." or ".." component, < 100 bytes
  bool directory = false;
  std::uint32_t mode = 0600;
  std::uint64_t mtime = 0;
  std::vector<std::byte> data;  // empty for a directory
  bool operator==(const TarEntry&) const = default;
};

// Precondition: names as above.
std::vector<std::byte> write_tar(const std::vector<TarEntry>& entries);
// BadSettings: a checksum that does not match, not ustar, an entry type other than a file or a
// directory, a name that is absolute or climbs ("..") or repeats, sizes past the archive's end,
// no end blocks, or an archive above kMaxArchive.
Result<std::vector<TarEntry>> parse_tar(core::Bytes archive);

}  // namespace fwimage
