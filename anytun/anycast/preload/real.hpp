// The real socket functions (the next definitions after the library's own, found with
// dlsym(RTLD_NEXT)) and the settings from the environment, set up once per process.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace anycast::preload {

struct Real {
  int (*connect)(int, const sockaddr*, socklen_t);
  ssize_t (*sendto)(int, const void*, std::size_t, int, const sockaddr*, socklen_t);
  ssize_t (*sendmsg)(int, const msghdr*, int);
  int (*sendmmsg)(int, mmsghdr*, unsigned int, int);
  ssize_t (*recvfrom)(int, void*, std::size_t, int, sockaddr*, socklen_t*);
  ssize_t (*recvmsg)(int, msghdr*, int);
  int (*recvmmsg)(int, mmsghdr*, unsigned int, int, timespec*);
  int (*getpeername)(int, sockaddr*, socklen_t*);
  int (*close)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
};

inline constexpr std::uint16_t kDefaultWaitMs = 300;
// A non-blocking caller on a miss waits this long at most: bounded and short, so that a program
// that connects non-blocking (curl, most event loops) is pinned on its first connection, and the
// real connect keeps its EINPROGRESS semantics. 0: never wait.
inline constexpr std::uint16_t kDefaultNonBlockingWaitMs = 100;
inline constexpr std::uint16_t kMaxWaitMs = 60000;
// The room of sockaddr_un::sun_path.
inline constexpr std::size_t kSocketPathRoom = 108;

struct Settings {
  // ANYCAST_RESOLVER_SOCKET or query::kDefaultSocket; empty if it does not fit sun_path.
  char socket_path[kSocketPathRoom];
  // ANYCAST_PRELOAD_WAIT_MS: how long a blocking caller lets the resolver resolve.
  std::uint16_t wait_ms;
  // ANYCAST_PRELOAD_NONBLOCK_WAIT_MS: the same for a non-blocking caller.
  std::uint16_t nonblocking_wait_ms;
};

struct Runtime {
  Real real;
  Settings settings;
};

// The runtime, set up on first use under pthread_once (hooks may run before the library's
// constructor: another library's constructor can connect). nullptr only on the thread that is
// setting it up, when dlsym's own work re-enters a hook (an allocator that closes a file): the
// hook then hands the call to syscalls() untouched.
const Runtime* runtime() noexcept;

// The same functions as plain system calls, for the re-entrant case above.
const Real& syscalls() noexcept;

}  // namespace anycast::preload
