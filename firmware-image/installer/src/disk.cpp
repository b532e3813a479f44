// Disk access for the upgrade tool: the appliance disk found through sysfs, pread/pwrite/fsync on
// a device or image file, the GPT by name, the grubenv file's sectors.
#include "fwinstall/disk.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace fwinstall {

namespace {

Error io_error(const std::filesystem::path& path, std::string_view what, int err) {
  return fwimage::fail(fwimage::Errc::Io,
                       fmt::format("{}: {}: {}", path.string(), what, std::strerror(err)));
}

// A uevent file's KEY=VALUE lines: the value of `key`, if the file has it. uevent files are a
// few hundred bytes; more than 64 KiB is not one.
std::optional<std::string> uevent_value(const std::filesystem::path& dir, std::string_view key) {
  std::ifstream in{dir / "uevent"};
  std::string line;
  std::size_t total = 0;
  while (std::getline(in, line)) {
    total += line.size() + 1;
    if (total > 64 * 1024) return std::nullopt;
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == '=')
      return line.substr(key.size() + 1);
  }
  return std::nullopt;
}

}  // namespace

Result<std::filesystem::path> find_appliance_disk(const std::filesystem::path& sys,
                                                  const std::filesystem::path& dev) {
  namespace fs = std::filesystem;
  const std::array<std::string, 3> wanted{std::string{kBootPartition},
                                          std::string{slot_partition(fwimage::Slot::A)},
                                          std::string{slot_partition(fwimage::Slot::B)}};
  const auto block = sys / "class" / "block";
  // Each disk's sysfs directory (resolved: /sys/class/block/* are links into /sys/devices) and
  // the wanted names among its partitions.
  std::map<fs::path, std::set<std::string>> found;
  std::error_code ec;
  fs::directory_iterator it{block, ec};
  if (ec)
    return fwimage::fail(fwimage::Errc::Io, fmt::format("{}: cannot list the block devices: {}",
                                                        block.string(), ec.message()));
  for (; it != fs::directory_iterator{}; it.increment(ec)) {
    if (ec)
      return fwimage::fail(fwimage::Errc::Io, fmt::format("{}: cannot list the block devices: {}",
                                                          block.string(), ec.message()));
    // A device that goes away while we look (a USB stick pulled) is simply not a candidate.
    std::error_code entry_ec;
    const auto partition = fs::canonical(it->path(), entry_ec);
    if (entry_ec || !fs::exists(partition / "partition", entry_ec)) continue;
    const auto name = uevent_value(partition, "PARTNAME");
    if (!name || std::find(wanted.begin(), wanted.end(), *name) == wanted.end()) continue;
    found[partition.parent_path()].insert(*name);
  }

  std::vector<fs::path> disks;
  for (const auto& [dir, names] : found) {
    if (names.size() != wanted.size()) continue;
    const auto devname = uevent_value(dir, "DEVNAME");
    if (!devname || devname->empty())
      return fwimage::fail(fwimage::Errc::BadDisk,
                           fmt::format("{}: a disk without DEVNAME= in its uevent", dir.string()));
    disks.push_back(dev / *devname);
  }
  std::sort(disks.begin(), disks.end());
  if (disks.empty())
    return fwimage::fail(
        fwimage::Errc::BadDisk,
        fmt::format("no disk has partitions named {}, {} and {} (looked in {}); name the disk "
                    "with --disk",
                    wanted[0], wanted[1], wanted[2], block.string()));
  if (disks.size() > 1) {
    std::string list;
    for (const auto& d : disks) list += (list.empty() ? "" : ", ") + d.string();
    return fwimage::fail(
        fwimage::Errc::BadUsage,
        fmt::format("more than one disk has partitions named {}, {} and {}: {} (an appliance "
                    "image on a USB stick?); name the appliance's disk with --disk",
                    wanted[0], wanted[1], wanted[2], list));
  }
  return disks.front();
}

std::string_view slot_partition(fwimage::Slot slot) noexcept {
  return slot == fwimage::Slot::A ? "slotA" : "slotB";
}

Disk::Disk(int fd, std::filesystem::path path, std::uint64_t size) noexcept
    : fd_{fd}, path_{std::move(path)}, size_{size} {}

Disk::Disk(Disk&& other) noexcept
    : fd_{std::exchange(other.fd_, -1)}, path_{std::move(other.path_)}, size_{other.size_} {}

Disk& Disk::operator=(Disk&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    size_ = other.size_;
  }
  return *this;
}

Disk::~Disk() {
  if (fd_ >= 0) ::close(fd_);
}

Result<Disk> Disk::open(const std::filesystem::path& path, bool writable) {
  const int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return io_error(path, "open", errno);
  Disk disk{fd, path, 0};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error(path, "stat", errno);
  if (S_ISBLK(st.st_mode)) {
    std::uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return io_error(path, "BLKGETSIZE64", errno);
    disk.size_ = bytes;
  } else if (S_ISREG(st.st_mode)) {
    disk.size_ = static_cast<std::uint64_t>(st.st_size);
  } else {
    return fwimage::fail(fwimage::Errc::BadDisk,
                         fmt::format("{}: neither a block device nor a file", path.string()));
  }
  return disk;
}

Result<void> Disk::read(std::uint64_t offset, std::span<std::byte> out) const {
  if (offset > size_ || out.size() > size_ - offset)
    return fwimage::fail(fwimage::Errc::BadDisk,
                         fmt::format("{}: read past the end of the disk", path_.string()));
  std::size_t done = 0;
  while (done < out.size()) {
    const auto n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path_, "read", errno);
    if (n == 0) return io_error(path_, "read", EIO);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> Disk::write(std::uint64_t offset, std::span<const std::byte> bytes) {
  if (offset > size_ || bytes.size() > size_ - offset)
    return fwimage::fail(fwimage::Errc::BadDisk,
                         fmt::format("{}: write past the end of the disk", path_.string()));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n =
        ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error(path_, "write", errno);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> Disk::sync() {
  if (::fsync(fd_) != 0) return io_error(path_, "fsync", errno);
  return {};
}

Result<Region> Disk::partition(std::string_view name) const {
  std::vector<std::byte> sector(kSector);
  if (auto r = read(kSector, sector); !r) return r.error();
  auto header = fwimage::parse_gpt_header(sector, size_ / kSector);
  if (!header) return header.error();
  std::vector<std::byte> entries(static_cast<std::size_t>(header->entries_bytes()));
  if (auto r = read(header->entries_lba * kSector, entries); !r) return r.error();
  auto parts = fwimage::parse_gpt_entries(*header, entries);
  if (!parts) return parts.error();
  const auto* p = fwimage::find_partition(*parts, name);
  if (p == nullptr)
    return fwimage::fail(fwimage::Errc::BadDisk,
                         fmt::format("{}: no partition named '{}'", path_.string(), name));
  return Region{p->first_lba * kSector, (p->last_lba - p->first_lba + 1) * kSector};
}

Result<BootEnvironment> BootEnvironment::locate(const Disk& disk) {
  auto boot = disk.partition(kBootPartition);
  if (!boot) return boot.error();
  const auto base = boot->offset;
  auto file = fwimage::locate_fat_file(
      [&](std::uint64_t offset, std::span<std::byte> out) -> Result<void> {
        if (offset > boot->size || out.size() > boot->size - offset)
          return fwimage::fail(fwimage::Errc::BadDisk, "FAT: read past the boot partition");
        return disk.read(base + offset, out);
      },
      boot->size, kGrubenvPath);
  if (!file) return file.error();
  if (file->size != fwimage::kGrubenvSize)
    return fwimage::fail(fwimage::Errc::BadDisk,
                         fmt::format("boot partition: {} is {} bytes, not {}", kGrubenvPath,
                                     file->size, fwimage::kGrubenvSize));
  BootEnvironment env;
  for (auto x : file->extents) env.extents_.push_back({base + x.offset, x.length});
  return env;
}

Result<fwimage::Environment> BootEnvironment::read(const Disk& disk) const {
  std::vector<std::byte> block(fwimage::kGrubenvSize);
  std::size_t at = 0;
  for (auto x : extents_) {
    if (auto r = disk.read(x.offset, std::span{block}.subspan(at, x.length)); !r) return r.error();
    at += x.length;
  }
  return fwimage::parse_grubenv(block);
}

Result<void> BootEnvironment::write(Disk& disk, const fwimage::Environment& env) const {
  auto block = fwimage::format_grubenv(env);
  if (!block) return block.error();
  std::size_t at = 0;
  for (auto x : extents_) {
    if (auto r = disk.write(x.offset, std::span{*block}.subspan(at, x.length)); !r)
      return r.error();
    at += x.length;
  }
  return disk.sync();
}

}  // namespace fwinstall
