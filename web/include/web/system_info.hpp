// What the overview shows about the box itself: CPU load, memory, uptime and host name, read from
// /proc. The parsers are pure (tests feed text); the readers return nullopt when a file cannot be
// read or parsed, which the API shows as null rather than a made-up figure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace web {

// The aggregate "cpu" line of /proc/stat, in clock ticks since boot.
struct CpuTimes {
  std::uint64_t busy = 0;   // everything but idle and iowait
  std::uint64_t total = 0;  // every field (guest time is already in user and nice)
  bool operator==(const CpuTimes&) const = default;
};
std::optional<CpuTimes> parse_proc_stat(std::string_view text);

// Busy share between two samples in percent (0..100); 0 when no time passed.
double cpu_percent(const CpuTimes& before, const CpuTimes& after) noexcept;

// /proc/meminfo's MemTotal and MemAvailable, in bytes.
struct MemoryInfo {
  std::uint64_t total = 0;
  std::uint64_t available = 0;
  bool operator==(const MemoryInfo&) const = default;
};
std::optional<MemoryInfo> parse_meminfo(std::string_view text);

// The first field of /proc/uptime, in whole seconds.
std::optional<std::int64_t> parse_uptime(std::string_view text);

std::optional<CpuTimes> read_cpu_times();
std::optional<MemoryInfo> read_memory();
std::optional<std::int64_t> read_uptime();
std::string read_hostname();  // "" when unknown

}  // namespace web
