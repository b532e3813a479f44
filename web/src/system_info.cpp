// /proc readers and their parsers.
#include "web/system_info.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <vector>

namespace web {

namespace {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || text.empty()) return std::nullopt;
  return v;
}

// Whitespace-separated fields of one line.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const auto start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::string_view line_at(std::string_view text, std::size_t& pos) {
  const auto end = text.find('\n', pos);
  const auto line = text.substr(pos, end == std::string_view::npos ? end : end - pos);
  pos = end == std::string_view::npos ? text.size() : end + 1;
  return line;
}

std::optional<std::string> read_small_file(const char* path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) return std::nullopt;
  std::string text;
  // /proc files report size 0: read up to a bound instead of by size.
  std::array<char, 4096> buffer{};
  while (text.size() < 1024 * 1024 && in.read(buffer.data(), buffer.size()).gcount() > 0)
    text.append(buffer.data(), static_cast<std::size_t>(in.gcount()));
  return text;
}

}  // namespace

std::optional<CpuTimes> parse_proc_stat(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto f = fields(line_at(text, pos));
    if (f.empty() || f[0] != "cpu") continue;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if (f.size() < 5) return std::nullopt;
    CpuTimes t;
    for (std::size_t i = 1; i < f.size() && i <= 8; ++i) {
      const auto v = parse_u64(f[i]);
      if (!v) return std::nullopt;
      t.total += *v;
      if (i != 4 && i != 5) t.busy += *v;
    }
    return t;
  }
  return std::nullopt;
}

double cpu_percent(const CpuTimes& before, const CpuTimes& after) noexcept {
  if (after.total <= before.total || after.busy < before.busy) return 0.0;
  const auto busy = static_cast<double>(after.busy - before.busy);
  const auto total = static_cast<double>(after.total - before.total);
  return std::min(100.0, 100.0 * busy / total);
}

std::optional<MemoryInfo> parse_meminfo(std::string_view text) {
  std::optional<std::uint64_t> total;
  std::optional<std::uint64_t> available;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto f = fields(line_at(text, pos));
    if (f.size() != 3 || f[2] != "kB") continue;
    const auto kib = parse_u64(f[1]);
    if (!kib || *kib > (std::uint64_t{1} << 53)) continue;
    if (f[0] == "MemTotal:") total = *kib * 1024;
    if (f[0] == "MemAvailable:") available = *kib * 1024;
  }
  if (!total || !available) return std::nullopt;
  return MemoryInfo{*total, *available};
}

std::optional<std::int64_t> parse_uptime(std::string_view text) {
  const auto f = fields(text.substr(0, text.find('\n')));
  if (f.empty()) return std::nullopt;
  const auto whole = f[0].substr(0, f[0].find('.'));
  const auto v = parse_u64(whole);
  if (!v || *v > (std::uint64_t{1} << 62)) return std::nullopt;
  return static_cast<std::int64_t>(*v);
}

std::optional<CpuTimes> read_cpu_times() {
  const auto text = read_small_file("/proc/stat");
  return text ? parse_proc_stat(*text) : std::nullopt;
}

std::optional<MemoryInfo> read_memory() {
  const auto text = read_small_file("/proc/meminfo");
  return text ? parse_meminfo(*text) : std::nullopt;
}

std::optional<std::int64_t> read_uptime() {
  const auto text = read_small_file("/proc/uptime");
  return text ? parse_uptime(*text) : std::nullopt;
}

std::string read_hostname() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return {};
  return std::string{name.data()};
}

}  // namespace web
