// Fd: closing.
#include "platform/fd.hpp"

#include <sys/resource.h>

#include <algorithm>

#include <unistd.h>

namespace platform {

void Fd::reset(int fd) noexcept {
  // On Linux close() releases the fd even when it fails (EINTR included), so never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
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
