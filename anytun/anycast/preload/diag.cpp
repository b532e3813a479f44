// Errno, clock, address text and the rate-limited stderr lines of the preload library.
#include "diag.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace anycast::preload {
namespace {

constexpr std::uint64_t kLineIntervalNs = 1'000'000'000;

std::atomic<bool> g_quiet{false};
// When the last line of each reason was written; 0 = never.
std::atomic<std::uint64_t> g_last_line[static_cast<std::size_t>(Reason::Count)]{};

}  // namespace

std::uint64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void set_quiet(bool quiet) noexcept {
  g_quiet.store(quiet, std::memory_order_relaxed);
}

void note(Reason reason, const char* format, ...) noexcept {
  if (g_quiet.load(std::memory_order_relaxed)) return;
  SavedErrno keep;
  auto& last = g_last_line[static_cast<std::size_t>(reason)];
  const std::uint64_t now = now_ns();
  std::uint64_t seen = last.load(std::memory_order_relaxed);
  if (seen != 0 && now - seen < kLineIntervalNs) return;
  // Only the thread that moves the stamp writes, so racing threads give one line.
  if (!last.compare_exchange_strong(seen, now == 0 ? 1 : now, std::memory_order_relaxed)) return;

  char line[512];
  constexpr char kPrefix[] = "anycast-preload: ";
  constexpr std::size_t kPrefixLength = sizeof kPrefix - 1;
  for (std::size_t i = 0; i < kPrefixLength; ++i) line[i] = kPrefix[i];
  std::va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(line + kPrefixLength, sizeof line - kPrefixLength - 1, format, args);
  va_end(args);
  if (n < 0) return;
  std::size_t length = kPrefixLength + static_cast<std::size_t>(n);
  if (length > sizeof line - 2) length = sizeof line - 2;
  line[length++] = '\n';
  // One write: lines of several threads or processes do not interleave. Nothing to do on error.
  [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line, length);
}

AddressText to_text(const query::Address& address) noexcept {
  AddressText out{};
  if (::inet_ntop(AF_INET6, address.data(), out.text, sizeof out.text) == nullptr)
    out.text[0] = '\0';
  return out;
}

}  // namespace anycast::preload
