// Fd: closing.
#include "platform/fd.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <string_view>

#include <unistd.h>

namespace platform {

void Fd::reset(int fd) noexcept {
  // On Linux close() releases the fd even when it fails (EINTR included), so never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void notify_ready(int fd) noexcept {
  constexpr std::string_view kReady = "READY\n";
  [[maybe_unused]] const auto n = ::write(fd, kReady.data(), kReady.size());
  ::close(fd);
}

std::optional<int> parse_descriptor(std::string_view text) noexcept {
  int fd = -1;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (ec != std::errc{} || p != text.data() + text.size() || fd < 0) return std::nullopt;
  return fd;
}

void raise_descriptor_limit(std::size_t at_most) noexcept {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0) return;
  const rlim_t wanted = std::min<rlim_t>(nofile.rlim_max, static_cast<rlim_t>(at_most));
  if (nofile.rlim_cur >= wanted) return;
  nofile.rlim_cur = wanted;
  ::setrlimit(RLIMIT_NOFILE, &nofile);
}

}  // namespace platform
