#include "platform/bind.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <cstring>
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

int bind_local(int fd, const sockaddr* address, socklen_t length) {
  if (::bind(fd, address, length) == 0) return 0;
  const int error = errno;  // before the file reads below
  if (error != EADDRNOTAVAIL || address->sa_family != AF_INET6) return error;
  Ipv6Bytes bytes{};
  std::memcpy(bytes.data(), reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr,
              bytes.size());
  const int on = 1;
  if (!ipv6_tentative(bytes) ||
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &on, sizeof on) != 0)
    return error;
  return ::bind(fd, address, length) == 0 ? 0 : errno;
}

}  // namespace platform
