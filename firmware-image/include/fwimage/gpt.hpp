// The GUID partition table (UEFI 2.10, section 5.3) as the upgrade tool reads it: the primary
// header at LBA 1 and its entry array, both checked against their CRC32, partitions found by
// name. Pure: the caller reads the sectors. The backup header at the end of the disk is not read:
// the tool never writes the table, and a primary table that does not check is refused (fix the
// disk with a partitioning tool; the tool does not guess).
//
//   header (LBA 1, little-endian)          entry (entry_size bytes each, >= 128)
//   0   8  "EFI PART"                      0   16  type GUID (all zero: unused)
//   8   4  revision                        16  16  unique GUID
//   12  4  header size (92..sector)        32  8   first LBA
//   16  4  CRC32 of the header (as 0)      40  8   last LBA (inclusive)
//   24  8  this header's LBA (1)           48  8   attributes
//   32  8  backup header's LBA             56  72  name, UTF-16LE, NUL-padded
//   40  8  first usable LBA
//   48  8  last usable LBA
//   56 16  disk GUID
//   72  8  entry array LBA
//   80  4  number of entries
//   84  4  entry size
//   88  4  CRC32 of the entry array
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "fwimage/error.hpp"

namespace fwimage {

inline constexpr std::uint32_t kMaxGptEntries = 1024;
inline constexpr std::uint32_t kMaxGptEntrySize = 4096;

struct GptHeader {
  std::uint64_t first_usable = 0;
  std::uint64_t last_usable = 0;
  std::uint64_t entries_lba = 0;
  std::uint32_t entry_count = 0;
  std::uint32_t entry_size = 0;
  std::uint32_t entries_crc = 0;

  std::uint64_t entries_bytes() const noexcept { return std::uint64_t{entry_count} * entry_size; }
};

struct GptPartition {
  std::string name;  // the UTF-16LE name up to its first NUL; units above 0x7f become '?'
  std::array<std::uint8_t, 16> type{};
  std::uint64_t first_lba = 0;
  std::uint64_t last_lba = 0;  // inclusive
};

// `sector` is LBA 1 (its whole size is the sector size); `disk_sectors` the disk's size in
// sectors. BadDisk with the reason: no signature, a header size out of bounds, a CRC that does not
// match, LBAs outside the disk, entries above the bounds.
Result<GptHeader> parse_gpt_header(core::Bytes sector, std::uint64_t disk_sectors);
// The used entries of `entries` (the header's entries_bytes() read at entries_lba). BadDisk when
// the CRC does not match or a used entry lies outside the usable LBAs or ends before it starts.
Result<std::vector<GptPartition>> parse_gpt_entries(const GptHeader& header, core::Bytes entries);

// The partition named `name`, or nullptr.
const GptPartition* find_partition(const std::vector<GptPartition>& parts,
                                   std::string_view name) noexcept;

std::uint32_t crc32(core::Bytes bytes) noexcept;  // IEEE 802.3, as GPT and zlib compute it

}  // namespace fwimage
