// Sysctls through /proc/sys, as the kernel applies them: in the network namespace of the thread
// that opens the file (per-interface keys under net/ipv4/conf/<ifname>/ and net/ipv6/conf/...).
#pragma once

#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace platform {

// "/proc/sys/net/<family>/conf/<ifname>/<key>", family "ipv4" or "ipv6".
std::string interface_sysctl_path(std::string_view family, std::string_view ifname,
                                  std::string_view key);

// Writes value (the kernel parses it). Errors: errno of open or write (ENOENT for an unknown
// interface or key, EACCES/EPERM without CAP_NET_ADMIN over the namespace, EINVAL for a value the
// kernel rejects).
Result<void> write_sysctl(const std::string& path, std::string_view value);

// The value's first line without its newline. Errors: errno of open or read.
Result<std::string> read_sysctl(const std::string& path);

}  // namespace platform
