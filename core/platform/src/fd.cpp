// Fd: closing.
#include "platform/fd.hpp"

#include <unistd.h>

namespace platform {

void Fd::reset(int fd) noexcept {
  // On Linux close() releases the fd even when it fails (EINTR included), so never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace platform
