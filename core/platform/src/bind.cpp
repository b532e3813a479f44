#include "platform/bind.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <string>

namespace platform {

bool ipv6_tentative(const Ipv6Bytes& address) {
  constexpr unsigned kTentative = 0x40;  // IFA_F_TENTATIVE, in the file's hex flags column
  constexpr const char* kHex = "0123456789abcdef";
  std::string want;
  for (const auto b : address) {
    want += kHex[b >> 4];
    want += kHex[b & 0xf];
  }
  // "/proc/net" would be the main thread's namespace, not this thread's.
  std::ifstream in{"/proc/thread-self/net/if_inet6"};
  std::string hex, index, prefix, scope, flags, name;
  while (in >> hex >> index >> prefix >> scope >> flags >> name)
    if (hex == want) return (std::stoul(flags, nullptr, 16) & kTentative) != 0;
  return false;
}

bool allow_tentative_bind(int fd, const Ipv6Bytes& address) {
  if (!ipv6_tentative(address)) return false;
  const int on = 1;
  return ::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on) == 0;
}

}  // namespace platform
