// Locating a file's clusters in a FAT file system: the boot sector's BPB, the directories from
// the root down, the cluster chain through the first FAT.
#include "fwimage/fat.hpp"

#include <array>
#include <optional>

#include <fmt/format.h>

#include "le.hpp"

namespace fwimage {

namespace {

Error bad(std::string why) {
  return fail(Errc::BadDisk, "FAT: " + std::move(why));
}

enum class FatType { Fat12, Fat16, Fat32 };

struct Volume {
  FatType type = FatType::Fat16;
  std::uint64_t cluster_bytes = 0;
  std::uint64_t fat_offset = 0;    // the first FAT
  std::uint64_t root_offset = 0;   // FAT12/16: the fixed root directory
  std::uint64_t root_bytes = 0;    // FAT12/16
  std::uint32_t root_cluster = 0;  // FAT32
  std::uint64_t data_offset = 0;   // cluster 2
  std::uint32_t clusters = 0;      // data clusters (2 .. clusters + 1)
};

Result<Volume> read_volume(const ReadAt& read, std::uint64_t fs_bytes) {
  std::array<std::byte, 512> boot{};
  if (fs_bytes < boot.size()) return bad("file system smaller than a boot sector");
  if (auto r = read(0, boot); !r) return r.error();
  if (boot[510] != std::byte{0x55} || boot[511] != std::byte{0xaa})
    return bad("no boot sector signature");
  const std::uint32_t sector = le16(boot, 11);
  const std::uint32_t per_cluster = std::to_integer<std::uint32_t>(boot[13]);
  const std::uint32_t reserved = le16(boot, 14);
  const std::uint32_t fats = std::to_integer<std::uint32_t>(boot[16]);
  const std::uint32_t root_entries = le16(boot, 17);
  const std::uint32_t total = le16(boot, 19) != 0 ? le16(boot, 19) : le32(boot, 32);
  const std::uint32_t fat_sectors = le16(boot, 22) != 0 ? le16(boot, 22) : le32(boot, 36);
  if (sector != 512 && sector != 1024 && sector != 2048 && sector != 4096)
    return bad(fmt::format("sector size {}", sector));
  if (per_cluster == 0 || (per_cluster & (per_cluster - 1)) != 0)
    return bad(fmt::format("{} sectors per cluster", per_cluster));
  if (reserved == 0 || fats == 0 || fat_sectors == 0) return bad("no FAT");
  if (std::uint64_t{total} * sector > fs_bytes) return bad("larger than its partition");

  Volume v;
  v.cluster_bytes = std::uint64_t{sector} * per_cluster;
  const std::uint64_t root_sectors = (std::uint64_t{root_entries} * 32 + sector - 1) / sector;
  const std::uint64_t meta = reserved + std::uint64_t{fats} * fat_sectors + root_sectors;
  if (meta >= total) return bad("no data area");
  v.clusters = static_cast<std::uint32_t>((total - meta) / per_cluster);
  v.type = v.clusters < 4085    ? FatType::Fat12
           : v.clusters < 65525 ? FatType::Fat16
                                : FatType::Fat32;
  v.fat_offset = std::uint64_t{reserved} * sector;
  v.root_offset = (reserved + std::uint64_t{fats} * fat_sectors) * sector;
  v.root_bytes = root_sectors * sector;
  v.data_offset = meta * sector;
  if (v.type == FatType::Fat32) {
    v.root_cluster = le32(boot, 44);
  } else if (root_entries == 0) {
    return bad("FAT12/16 without a root directory");
  }
  // The FAT must hold an entry for every cluster.
  const std::uint64_t need = v.type == FatType::Fat12   ? (std::uint64_t{v.clusters} + 2) * 3 / 2
                             : v.type == FatType::Fat16 ? (std::uint64_t{v.clusters} + 2) * 2
                                                        : (std::uint64_t{v.clusters} + 2) * 4;
  if (need > std::uint64_t{fat_sectors} * sector) return bad("FAT smaller than its clusters");
  return v;
}

// The FAT entry of `cluster`: the next cluster, or nullopt at the end of the chain.
Result<std::optional<std::uint32_t>> next_cluster(const ReadAt& read, const Volume& v,
                                                  std::uint32_t cluster) {
  std::array<std::byte, 4> raw{};
  std::uint32_t next = 0;
  std::uint32_t end = 0;
  switch (v.type) {
    case FatType::Fat12: {
      if (auto r = read(v.fat_offset + cluster + cluster / 2, std::span{raw}.first(2)); !r)
        return r.error();
      const std::uint32_t pair = le16(raw, 0);
      next = (cluster & 1) != 0 ? pair >> 4 : pair & 0xfff;
      end = 0xff8;
      break;
    }
    case FatType::Fat16:
      if (auto r = read(v.fat_offset + std::uint64_t{cluster} * 2, std::span{raw}.first(2)); !r)
        return r.error();
      next = le16(raw, 0);
      end = 0xfff8;
      break;
    case FatType::Fat32:
      if (auto r = read(v.fat_offset + std::uint64_t{cluster} * 4, raw); !r) return r.error();
      next = le32(raw, 0) & 0x0fffffff;
      end = 0x0ffffff8;
      break;
  }
  if (next >= end) return std::optional<std::uint32_t>{};
  if (next < 2 || next - 2 >= v.clusters)
    return bad(fmt::format("broken chain at cluster {}", cluster));
  return std::optional<std::uint32_t>{next};
}

// The extents of the chain from `first`, at most `limit` bytes (the file's size) or, for a
// directory (limit nullopt), the whole chain.
Result<std::vector<Extent>> chain(const ReadAt& read, const Volume& v, std::uint32_t first,
                                  std::optional<std::uint64_t> limit) {
  std::vector<Extent> out;
  std::uint64_t covered = 0;
  std::uint32_t steps = 0;
  std::optional<std::uint32_t> at = first;
  if (first < 2 || first - 2 >= v.clusters)
    return bad(fmt::format("first cluster {} out of range", first));
  while (at && (!limit || covered < *limit)) {
    if (++steps > v.clusters) return bad("cluster chain loops");
    const std::uint64_t offset = v.data_offset + std::uint64_t{*at - 2} * v.cluster_bytes;
    std::uint64_t length = v.cluster_bytes;
    if (limit) length = std::min(length, *limit - covered);
    if (!out.empty() && out.back().offset + out.back().length == offset)
      out.back().length += length;
    else
      out.push_back({offset, length});
    covered += length;
    auto next = next_cluster(read, v, *at);
    if (!next) return next.error();
    at = *next;
  }
  if (limit && covered < *limit) return bad("cluster chain shorter than the file");
  return out;
}

// "grubenv" -> "GRUBENV    "; nullopt when not a valid 8.3 name.
std::optional<std::array<char, 11>> short_name(std::string_view name) {
  std::array<char, 11> out;
  out.fill(' ');
  const auto dot = name.find('.');
  const auto base = name.substr(0, dot);
  const auto ext = dot == std::string_view::npos ? std::string_view{} : name.substr(dot + 1);
  if (base.empty() || base.size() > 8 || ext.size() > 3 || ext.find('.') != std::string_view::npos)
    return std::nullopt;
  auto put = [](char c) -> std::optional<char> {
    if (c >= 'a' && c <= 'z') return static_cast<char>(c - 'a' + 'A');
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-') return c;
    return std::nullopt;
  };
  for (std::size_t i = 0; i < base.size(); ++i) {
    auto c = put(base[i]);
    if (!c) return std::nullopt;
    out[i] = *c;
  }
  for (std::size_t i = 0; i < ext.size(); ++i) {
    auto c = put(ext[i]);
    if (!c) return std::nullopt;
    out[8 + i] = *c;
  }
  return out;
}

struct Entry {
  bool directory = false;
  std::uint32_t cluster = 0;
  std::uint64_t size = 0;
};

// Looks `name` up in the directory stored in `extents`.
Result<std::optional<Entry>> find_entry(const ReadAt& read, const Volume& v,
                                        const std::vector<Extent>& extents,
                                        const std::array<char, 11>& name) {
  std::array<std::byte, 32> e{};
  std::uint32_t seen = 0;
  for (const auto& x : extents) {
    for (std::uint64_t at = 0; at + 32 <= x.length; at += 32) {
      if (++seen > kMaxFatDirectoryEntries) return bad("directory too large");
      if (auto r = read(x.offset + at, e); !r) return r.error();
      if (e[0] == std::byte{0}) return std::optional<Entry>{};  // end of directory
      const auto attr = std::to_integer<std::uint8_t>(e[11]);
      if (e[0] == std::byte{0xe5} || attr == 0x0f || (attr & 0x08) != 0) continue;
      bool same = true;
      for (std::size_t i = 0; i < 11; ++i) same = same && std::to_integer<char>(e[i]) == name[i];
      if (!same) continue;
      std::uint32_t cluster = le16(e, 26);
      if (v.type == FatType::Fat32) cluster |= std::uint32_t{le16(e, 20)} << 16;
      return std::optional<Entry>{
          Entry{.directory = (attr & 0x10) != 0, .cluster = cluster, .size = le32(e, 28)}};
    }
  }
  return std::optional<Entry>{};
}

}  // namespace

Result<FatFile> locate_fat_file(const ReadAt& read, std::uint64_t fs_bytes, std::string_view path) {
  auto volume = read_volume(read, fs_bytes);
  if (!volume) return volume.error();
  const Volume& v = *volume;

  std::vector<Extent> dir;
  if (v.type == FatType::Fat32) {
    auto root = chain(read, v, v.root_cluster, std::nullopt);
    if (!root) return root.error();
    dir = std::move(*root);
  } else {
    dir.push_back({v.root_offset, v.root_bytes});
  }
  if (path.empty() || path.front() != '/')
    return bad(fmt::format("{}: not an absolute path", path));
  path.remove_prefix(1);
  while (true) {
    const auto slash = path.find('/');
    const auto component = path.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    auto name = short_name(component);
    if (!name) return bad(fmt::format("{}: not an 8.3 name", component));
    auto entry = find_entry(read, v, dir, *name);
    if (!entry) return entry.error();
    if (!*entry) return bad(fmt::format("{}: not found", component));
    const Entry& found = **entry;
    if (last) {
      if (found.directory) return bad(fmt::format("{}: a directory", component));
      FatFile file{.size = found.size, .extents = {}};
      if (found.size == 0) return file;
      auto extents = chain(read, v, found.cluster, found.size);
      if (!extents) return extents.error();
      file.extents = std::move(*extents);
      return file;
    }
    if (!found.directory) return bad(fmt::format("{}: not a directory", component));
    auto next = chain(read, v, found.cluster, std::nullopt);
    if (!next) return next.error();
    dir = std::move(*next);
    path.remove_prefix(slash + 1);
  }
}

}  // namespace fwimage
