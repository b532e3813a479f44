// Setting up the runtime once: the real functions through dlsym(RTLD_NEXT), the environment,
// and the fork and thread-exit handlers of the cache and the resolver connection.
#include "real.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "answer_cache.hpp"
#include "anycast/query.hpp"
#include "diag.hpp"
#include "hooks.hpp"
#include "resolver_link.hpp"

namespace anycast::preload {
namespace {

// Plain system calls, for hooks re-entered while dlsym runs (see runtime()).
int sys_connect(int fd, const sockaddr* addr, socklen_t len) {
  return static_cast<int>(::syscall(SYS_connect, fd, addr, len));
}
ssize_t sys_sendto(int fd, const void* buf, std::size_t n, int flags, const sockaddr* addr,
                   socklen_t len) {
  return ::syscall(SYS_sendto, fd, buf, n, flags, addr, len);
}
ssize_t sys_sendmsg(int fd, const msghdr* msg, int flags) {
  return ::syscall(SYS_sendmsg, fd, msg, flags);
}
int sys_sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
  return static_cast<int>(::syscall(SYS_sendmmsg, fd, vec, vlen, flags));
}
ssize_t sys_recvfrom(int fd, void* buf, std::size_t n, int flags, sockaddr* addr, socklen_t* len) {
  return ::syscall(SYS_recvfrom, fd, buf, n, flags, addr, len);
}
ssize_t sys_recvmsg(int fd, msghdr* msg, int flags) {
  return ::syscall(SYS_recvmsg, fd, msg, flags);
}
int sys_recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout) {
  return static_cast<int>(::syscall(SYS_recvmmsg, fd, vec, vlen, flags, timeout));
}
int sys_getpeername(int fd, sockaddr* addr, socklen_t* len) {
  return static_cast<int>(::syscall(SYS_getpeername, fd, addr, len));
}
int sys_close(int fd) {
  return static_cast<int>(::syscall(SYS_close, fd));
}
int sys_dup3(int from, int to, int flags) {
  return static_cast<int>(::syscall(SYS_dup3, from, to, flags));
}
int sys_dup2(int from, int to) {
#ifdef SYS_dup2
  return static_cast<int>(::syscall(SYS_dup2, from, to));
#else
  // dup3 refuses from == to, where dup2 checks that the descriptor is open.
  if (from == to) return ::syscall(SYS_fcntl, from, F_GETFD) < 0 ? -1 : to;
  return sys_dup3(from, to, 0);
#endif
}

constexpr Real kSyscalls{sys_connect,  sys_sendto,  sys_sendmsg,  sys_sendmmsg,
                         sys_recvfrom, sys_recvmsg, sys_recvmmsg, sys_getpeername,
                         sys_close,    sys_dup2,    sys_dup3};

pthread_once_t g_once = PTHREAD_ONCE_INIT;
Runtime g_runtime{};
// Set while this thread runs the setup: a hook it re-enters must not wait on g_once (the same
// thread would wait for itself).
constinit thread_local bool t_setting_up __attribute__((tls_model("initial-exec"))) = false;

[[noreturn]] void die(const char* name, const char* why) noexcept {
  char line[160];
  const int n = std::snprintf(line, sizeof line, "anycast-preload: %s: %s\n", name, why);
  if (n > 0) {
    [[maybe_unused]] const ssize_t w = ::write(
        STDERR_FILENO, line,
        static_cast<std::size_t>(n) < sizeof line ? static_cast<std::size_t>(n) : sizeof line - 1);
  }
  std::abort();
}

// The next definition of `name` after this library; never the library's own wrapper (a
// circular reference would recurse until the stack ends).
template <typename Fn>
Fn next(const char* name, Fn own) noexcept {
  void* found = ::dlsym(RTLD_NEXT, name);
  if (found == nullptr) die(name, "no definition after the preload library");
  if (found == reinterpret_cast<void*>(own)) die(name, "dlsym(RTLD_NEXT) found the wrapper itself");
  return reinterpret_cast<Fn>(found);
}

std::uint16_t wait_ms_from_env(const char* name, std::uint16_t fallback) noexcept {
  const char* text = std::getenv(name);
  if (text == nullptr) return fallback;
  std::uint32_t value = 0;
  std::size_t digits = 0;
  for (; text[digits] >= '0' && text[digits] <= '9' && digits < 6; ++digits)
    value = value * 10 + static_cast<std::uint32_t>(text[digits] - '0');
  if (digits == 0 || text[digits] != '\0' || value > kMaxWaitMs) {
    note(Reason::BadSetting, "%s=\"%.32s\" is not a number 0..%u: using %u", name, text,
         unsigned{kMaxWaitMs}, unsigned{fallback});
    return fallback;
  }
  return static_cast<std::uint16_t>(value);
}

void socket_path_from_env(char (&out)[kSocketPathRoom]) noexcept {
  const char* path = std::getenv(query::kSocketEnv);
  if (path == nullptr || path[0] == '\0') path = query::kDefaultSocket;
  const std::size_t length = std::strlen(path);
  // Too long for sun_path: left empty, every query then fails open with ENAMETOOLONG.
  if (length >= kSocketPathRoom) {
    out[0] = '\0';
    return;
  }
  std::memcpy(out, path, length + 1);
}

void set_up() noexcept {
  const SavedErrno keep;
  t_setting_up = true;
  Real& r = g_runtime.real;
  r.connect = next("connect", &anycast_preload_connect);
  r.sendto = next("sendto", &anycast_preload_sendto);
  r.sendmsg = next("sendmsg", &anycast_preload_sendmsg);
  r.sendmmsg = next("sendmmsg", &anycast_preload_sendmmsg);
  r.recvfrom = next("recvfrom", &anycast_preload_recvfrom);
  r.recvmsg = next("recvmsg", &anycast_preload_recvmsg);
  r.recvmmsg = next("recvmmsg", &anycast_preload_recvmmsg);
  r.getpeername = next("getpeername", &anycast_preload_getpeername);
  r.close = next("close", &anycast_preload_close);
  r.dup2 = next("dup2", &anycast_preload_dup2);
  r.dup3 = next("dup3", &anycast_preload_dup3);

  const char* quiet = std::getenv("ANYCAST_PRELOAD_QUIET");
  set_quiet(quiet != nullptr && std::strcmp(quiet, "1") == 0);
  socket_path_from_env(g_runtime.settings.socket_path);
  g_runtime.settings.wait_ms = wait_ms_from_env("ANYCAST_PRELOAD_WAIT_MS", kDefaultWaitMs);
  g_runtime.settings.nonblocking_wait_ms =
      wait_ms_from_env("ANYCAST_PRELOAD_NONBLOCK_WAIT_MS", kDefaultNonBlockingWaitMs);

  cache_set_up();
  link_set_up(g_runtime.real);
  t_setting_up = false;
}

// Reads the environment early, before a program gets the chance to clear it.
__attribute__((constructor)) void on_load() {
  runtime();
}

}  // namespace

const Runtime* runtime() noexcept {
  if (t_setting_up) return nullptr;
  ::pthread_once(&g_once, set_up);
  return &g_runtime;
}

const Real& syscalls() noexcept {
  return kSyscalls;
}

}  // namespace anycast::preload
