// GPT parsing: the primary header and its entries, checked against their CRC32s.
#include "fwimage/gpt.hpp"

#include <fmt/format.h>
#include <boost/crc.hpp>

#include "le.hpp"

namespace fwimage {

namespace {

constexpr std::string_view kSignature = "EFI PART";
constexpr std::size_t kHeaderMin = 92;
constexpr std::size_t kEntryMin = 128;
constexpr std::size_t kNameOffset = 56;
constexpr std::size_t kNameBytes = 72;

Error bad(std::string why) {
  return fail(Errc::BadDisk, "GPT: " + std::move(why));
}

}  // namespace

std::uint32_t crc32(core::Bytes bytes) noexcept {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

Result<GptHeader> parse_gpt_header(core::Bytes sector, std::uint64_t disk_sectors) {
  if (sector.size() < 512) return bad("sector shorter than 512 bytes");
  for (std::size_t i = 0; i < kSignature.size(); ++i)
    if (std::to_integer<char>(sector[i]) != kSignature[i]) return bad("no GPT header at LBA 1");
  const std::uint32_t header_size = le32(sector, 12);
  if (header_size < kHeaderMin || header_size > sector.size())
    return bad(fmt::format("header size {} out of bounds", header_size));
  // The CRC covers the header with its own CRC field read as zero.
  std::vector<std::byte> copy(sector.begin(), sector.begin() + header_size);
  for (std::size_t i = 16; i < 20; ++i) copy[i] = std::byte{0};
  if (crc32(copy) != le32(sector, 16)) return bad("header CRC32 does not match");
  if (le64(sector, 24) != 1) return bad("primary header does not say it is at LBA 1");

  GptHeader h{.first_usable = le64(sector, 40),
              .last_usable = le64(sector, 48),
              .entries_lba = le64(sector, 72),
              .entry_count = le32(sector, 80),
              .entry_size = le32(sector, 84),
              .entries_crc = le32(sector, 88)};
  if (h.entry_count == 0 || h.entry_count > kMaxGptEntries)
    return bad(fmt::format("{} entries (1..{})", h.entry_count, kMaxGptEntries));
  if (h.entry_size < kEntryMin || h.entry_size > kMaxGptEntrySize || h.entry_size % 8 != 0)
    return bad(fmt::format("entry size {} out of bounds", h.entry_size));
  if (h.first_usable > h.last_usable || h.last_usable >= disk_sectors)
    return bad("usable LBAs outside the disk");
  const std::uint64_t entry_sectors = (h.entries_bytes() + sector.size() - 1) / sector.size();
  if (h.entries_lba < 2 || h.entries_lba >= disk_sectors ||
      entry_sectors > disk_sectors - h.entries_lba)
    return bad("entry array outside the disk");
  return h;
}

Result<std::vector<GptPartition>> parse_gpt_entries(const GptHeader& header, core::Bytes entries) {
  if (entries.size() != header.entries_bytes())
    return bad(fmt::format("entry array of {} bytes, header says {}", entries.size(),
                           header.entries_bytes()));
  if (crc32(entries) != header.entries_crc) return bad("entry array CRC32 does not match");
  std::vector<GptPartition> out;
  for (std::uint32_t i = 0; i < header.entry_count; ++i) {
    const auto e = entries.subspan(std::size_t{i} * header.entry_size, header.entry_size);
    GptPartition p;
    bool used = false;
    for (std::size_t b = 0; b < 16; ++b) {
      p.type[b] = std::to_integer<std::uint8_t>(e[b]);
      used = used || p.type[b] != 0;
    }
    if (!used) continue;
    p.first_lba = le64(e, 32);
    p.last_lba = le64(e, 40);
    for (std::size_t at = kNameOffset; at < kNameOffset + kNameBytes; at += 2) {
      const std::uint16_t unit = le16(e, at);
      if (unit == 0) break;
      p.name.push_back(unit < 0x80 ? static_cast<char>(unit) : '?');
    }
    if (p.first_lba > p.last_lba || p.first_lba < header.first_usable ||
        p.last_lba > header.last_usable)
      return bad(fmt::format("entry {} ({}) outside the usable LBAs", i + 1, p.name));
    out.push_back(std::move(p));
  }
  return out;
}

const GptPartition* find_partition(const std::vector<GptPartition>& parts,
                                   std::string_view name) noexcept {
  for (const auto& p : parts)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace fwimage
