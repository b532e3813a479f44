// The appliance disk as the upgrade tool uses it: a block device (/dev/sda, /dev/nvme0n1, /dev/vda)
// or a disk image file, found through sysfs when it is not named, its GPT partitions found by name
// (docs/firmware.md, "Disk layout"), and the boot environment /grub/grubenv inside the `boot` FAT
// partition, read and rewritten in place (fwimage/fat.hpp). Errors are fwimage::Error (Io with the
// path and errno text, BadDisk, BadEnvironment, BadUsage).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "fwimage/error.hpp"
#include "fwimage/fat.hpp"
#include "fwimage/gpt.hpp"
#include "fwimage/grubenv.hpp"
#include "fwimage/slots.hpp"

namespace fwinstall {

using fwimage::Error;
using fwimage::Result;

inline constexpr std::uint64_t kSector = 512;
inline constexpr std::string_view kBootPartition = "boot";
inline constexpr std::string_view kGrubenvPath = "/grub/grubenv";

std::string_view slot_partition(fwimage::Slot slot) noexcept;  // "slotA", "slotB"

// The whole-disk block device that holds partitions named `boot`, `slotA` and `slotB`, as the
// kernel reports them under `sys` (class/block/*/uevent: PARTNAME= is the GPT partition name,
// DEVNAME= the node under `dev`; a partition's directory has a `partition` file and its parent
// directory is the disk's). A disk with only some of the names does not count. BadDisk when no
// disk holds all three; BadUsage, naming them, when several do (an appliance image on a USB stick
// plugged into a running box): the caller must name the disk. Io when sysfs cannot be read.
Result<std::filesystem::path> find_appliance_disk(const std::filesystem::path& sys,
                                                  const std::filesystem::path& dev);

// A byte range of the disk.
struct Region {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

// An open disk (RAII file descriptor). Reads and writes are whole or an error.
class Disk {
 public:
  static Result<Disk> open(const std::filesystem::path& path, bool writable);
  Disk(Disk&& other) noexcept;
  Disk& operator=(Disk&& other) noexcept;
  ~Disk();

  const std::filesystem::path& path() const noexcept { return path_; }
  std::uint64_t size() const noexcept { return size_; }
  Result<void> read(std::uint64_t offset, std::span<std::byte> out) const;
  Result<void> write(std::uint64_t offset, std::span<const std::byte> bytes);
  Result<void> sync();  // fsync: what was written is on the medium

  // The partition named `name` (GPT, checked), as a byte range.
  Result<Region> partition(std::string_view name) const;

 private:
  Disk(int fd, std::filesystem::path path, std::uint64_t size) noexcept;
  int fd_ = -1;
  std::filesystem::path path_;
  std::uint64_t size_ = 0;
};

// The grubenv file in the boot partition: where its bytes are, and reading and rewriting it.
class BootEnvironment {
 public:
  // BadDisk when there is no `boot` partition or no /grub/grubenv of exactly 1024 bytes.
  static Result<BootEnvironment> locate(const Disk& disk);

  Result<fwimage::Environment> read(const Disk& disk) const;
  // Formats `env`, writes it over the file's sectors and syncs the disk.
  Result<void> write(Disk& disk, const fwimage::Environment& env) const;

 private:
  std::vector<fwimage::Extent> extents_;  // absolute disk offsets
};

}  // namespace fwinstall
