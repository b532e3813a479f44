// The library's wrappers under their own hidden names. The exported connect, sendto, ... are
// aliases of these, so the setup can tell whether dlsym(RTLD_NEXT) found the library itself.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>

#define ANYCAST_PRELOAD_HIDDEN __attribute__((visibility("hidden")))

extern "C" {
ANYCAST_PRELOAD_HIDDEN int anycast_preload_connect(int fd, const sockaddr* addr, socklen_t len);
ANYCAST_PRELOAD_HIDDEN ssize_t anycast_preload_sendto(int fd, const void* buf, std::size_t n,
                                                      int flags, const sockaddr* addr,
                                                      socklen_t len);
ANYCAST_PRELOAD_HIDDEN ssize_t anycast_preload_sendmsg(int fd, const msghdr* msg, int flags);
ANYCAST_PRELOAD_HIDDEN int anycast_preload_sendmmsg(int fd, mmsghdr* vec, unsigned int vlen,
                                                    int flags);
ANYCAST_PRELOAD_HIDDEN ssize_t anycast_preload_recvfrom(int fd, void* buf, std::size_t n, int flags,
                                                        sockaddr* addr, socklen_t* len);
ANYCAST_PRELOAD_HIDDEN ssize_t anycast_preload_recvmsg(int fd, msghdr* msg, int flags);
ANYCAST_PRELOAD_HIDDEN int anycast_preload_recvmmsg(int fd, mmsghdr* vec, unsigned int vlen,
                                                    int flags, timespec* timeout);
ANYCAST_PRELOAD_HIDDEN int anycast_preload_getpeername(int fd, sockaddr* addr,
                                                       socklen_t* len) noexcept;
ANYCAST_PRELOAD_HIDDEN int anycast_preload_close(int fd);
ANYCAST_PRELOAD_HIDDEN int anycast_preload_dup2(int from, int to) noexcept;
ANYCAST_PRELOAD_HIDDEN int anycast_preload_dup3(int from, int to, int flags) noexcept;
}
