// /proc/sys reads and writes with errno kept (iostreams would lose it).
#include "platform/sysctl.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "platform/fd.hpp"

namespace platform {

std::string interface_sysctl_path(std::string_view family, std::string_view ifname,
                                  std::string_view key) {
  std::string path{"/proc/sys/net/"};
  path.append(family).append("/conf/").append(ifname).append("/").append(key);
  return path;
}

Result<void> write_sysctl(const std::string& path, std::string_view value) {
  Fd fd{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (!fd) return errno_code(errno);
  // One write: the kernel parses a sysctl from the first write at offset 0.
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return errno_code(errno);
  if (static_cast<std::size_t>(n) != value.size()) return errno_code(EIO);
  return {};
}

Result<std::string> read_sysctl(const std::string& path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return errno_code(errno);
  std::array<char, 256> buf{};
  const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
  if (n < 0) return errno_code(errno);
  std::string value(buf.data(), static_cast<std::size_t>(n));
  if (const auto nl = value.find('\n'); nl != std::string::npos) value.resize(nl);
  return value;
}

}  // namespace platform
