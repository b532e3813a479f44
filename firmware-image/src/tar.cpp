// ustar archives of files and directories: the settings backup's format.
#include "fwimage/tar.hpp"

#include <array>
#include <optional>
#include <set>

#include <fmt/format.h>

namespace fwimage {

namespace {

Error bad(std::string why) {
  return fail(Errc::BadSettings, "backup archive: " + std::move(why));
}

void put_text(std::span<std::byte> field, std::string_view text) {
  for (std::size_t i = 0; i < text.size() && i < field.size(); ++i)
    field[i] = static_cast<std::byte>(text[i]);
}

// An octal number in a field of `width` bytes: width - 1 digits and a NUL.
void put_octal(std::span<std::byte> field, std::uint64_t value) {
  put_text(field, fmt::format("{:0{}o}", value, field.size() - 1));
}

std::uint32_t checksum(core::Bytes header) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i)
    sum += (i >= 148 && i < 156) ? ' ' : std::to_integer<std::uint32_t>(header[i]);
  return sum;
}

// Octal digits, optionally padded with spaces or NULs; nullopt otherwise.
std::optional<std::uint64_t> octal(core::Bytes field) {
  std::uint64_t value = 0;
  std::size_t i = 0;
  while (i < field.size() && field[i] == std::byte{' '}) ++i;
  bool digits = false;
  for (; i < field.size(); ++i) {
    const char c = std::to_integer<char>(field[i]);
    if (c < '0' || c > '7') break;
    if (value > (std::uint64_t{1} << 60)) return std::nullopt;
    value = value * 8 + static_cast<std::uint64_t>(c - '0');
    digits = true;
  }
  for (; i < field.size(); ++i)
    if (field[i] != std::byte{' '} && field[i] != std::byte{0}) return std::nullopt;
  if (!digits) return std::nullopt;
  return value;
}

std::string text(core::Bytes field) {
  std::string out;
  for (auto b : field) {
    if (b == std::byte{0}) break;
    out.push_back(std::to_integer<char>(b));
  }
  return out;
}

bool safe_name(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    auto end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const auto part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return name.find('\0') == std::string_view::npos;
}

}  // namespace

std::vector<std::byte> write_tar(const std::vector<TarEntry>& entries) {
  std::vector<std::byte> out;
  for (const auto& e : entries) {
    std::array<std::byte, kTarBlock> h{};
    const std::span<std::byte> b{h};
    put_text(b.subspan(0, 100), e.directory ? e.name + "/" : e.name);
    put_octal(b.subspan(100, 8), e.mode);
    put_octal(b.subspan(108, 8), 0);
    put_octal(b.subspan(116, 8), 0);
    put_octal(b.subspan(124, 12), e.directory ? 0 : e.data.size());
    put_octal(b.subspan(136, 12), e.mtime);
    h[156] = static_cast<std::byte>(e.directory ? '5' : '0');
    put_text(b.subspan(257, 6), std::string_view{"ustar\0", 6});
    put_text(b.subspan(263, 2), "00");
    put_text(b.subspan(265, 32), "root");
    put_text(b.subspan(297, 32), "root");
    put_text(b.subspan(148, 8), fmt::format("{:06o}", checksum(h)));
    h[154] = std::byte{0};
    h[155] = std::byte{' '};
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), e.data.begin(), e.data.end());
    out.resize(out.size() + (kTarBlock - e.data.size() % kTarBlock) % kTarBlock);
  }
  out.resize(out.size() + 2 * kTarBlock);
  return out;
}

Result<std::vector<TarEntry>> parse_tar(core::Bytes archive) {
  if (archive.size() > kMaxArchive) return bad(fmt::format("larger than {} bytes", kMaxArchive));
  std::vector<TarEntry> out;
  std::set<std::string> names;
  std::size_t at = 0;
  while (true) {
    if (archive.size() - at < kTarBlock) return bad("ends without its end blocks");
    const auto h = archive.subspan(at, kTarBlock);
    bool zero = true;
    for (auto b : h) zero = zero && b == std::byte{0};
    if (zero) return out;  // the end (a second zero block and padding may follow)
    const auto sum = octal(h.subspan(148, 8));
    if (!sum || *sum != checksum(h)) return bad(fmt::format("header checksum at {}", at));
    if (text(h.subspan(257, 6)) != "ustar") return bad("not a ustar archive");
    const char type = std::to_integer<char>(h[156]);
    if (type != '0' && type != '\0' && type != '5')
      return bad(fmt::format("entry at {}: type '{}' is not a file or directory", at, type));
    std::string name = text(h.subspan(0, 100));
    if (const auto prefix = text(h.subspan(345, 155)); !prefix.empty()) name = prefix + "/" + name;
    TarEntry e;
    e.directory = type == '5';
    if (e.directory && !name.empty() && name.back() == '/') name.pop_back();
    if (!safe_name(name)) return bad(fmt::format("entry name '{}' is not a relative path", name));
    if (!names.insert(name).second) return bad(fmt::format("entry '{}' repeated", name));
    const auto mode = octal(h.subspan(100, 8));
    const auto size = octal(h.subspan(124, 12));
    const auto mtime = octal(h.subspan(136, 12));
    if (!mode || !size || !mtime) return bad(fmt::format("entry '{}': bad number field", name));
    at += kTarBlock;
    const std::uint64_t data_size = e.directory ? 0 : *size;
    if (data_size > archive.size() - at) return bad(fmt::format("entry '{}' truncated", name));
    e.name = std::move(name);
    e.mode = static_cast<std::uint32_t>(*mode & 07777);
    e.mtime = *mtime;
    const auto data = archive.subspan(at, static_cast<std::size_t>(data_size));
    e.data.assign(data.begin(), data.end());
    const std::uint64_t padded = (data_size + kTarBlock - 1) / kTarBlock * kTarBlock;
    if (padded > archive.size() - at) return bad(fmt::format("entry '{}' truncated", name));
    at += static_cast<std::size_t>(padded);
    out.push_back(std::move(e));
  }
}

}  // namespace fwimage
