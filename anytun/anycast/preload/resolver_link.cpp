// One connection to the resolver per thread, checked by pid and by socket identity before use.
#include "resolver_link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <span>

#include "diag.hpp"

namespace anycast::preload {
namespace {

struct Link {
  int fd = -1;
  pid_t pid = 0;  // the process that opened fd
  dev_t dev = 0;  // fd's identity: the program may have closed it and reused the number
  ino_t ino = 0;
  bool exit_hook = false;  // the thread-exit destructor is armed
};

// initial-exec: the library is loaded at start-up, and this model never allocates on first
// use in a new thread.
constinit thread_local Link t_link __attribute__((tls_model("initial-exec")));
// Set during a query: a signal handler that connects on the same thread must not put its request
// between ours and our answer.
constinit thread_local bool t_busy __attribute__((tls_model("initial-exec"))) = false;

class BusyScope {
 public:
  BusyScope() noexcept { t_busy = true; }
  ~BusyScope() { t_busy = false; }
  BusyScope(const BusyScope&) = delete;
  BusyScope& operator=(const BusyScope&) = delete;
};

pthread_key_t g_exit_key;
bool g_exit_key_ok = false;
const Real* g_real = nullptr;

// Pthread cancellation points (poll, recv) must not end the thread inside a query: the
// connection would be left half-used. The cancellation is acted on at the real call instead.
class NoCancel {
 public:
  NoCancel() noexcept { ::pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_); }
  ~NoCancel() { ::pthread_setcancelstate(old_, nullptr); }
  NoCancel(const NoCancel&) = delete;
  NoCancel& operator=(const NoCancel&) = delete;

 private:
  int old_ = PTHREAD_CANCEL_ENABLE;
};

// Whether t_link.fd is still the socket this process opened (not the parent's, not a number the
// program reused after closing ours).
bool still_ours(const Link& link) noexcept {
  struct stat st {};
  return ::fstat(link.fd, &st) == 0 && st.st_dev == link.dev && st.st_ino == link.ino;
}

void drop(const Real& real, Link& link) noexcept {
  // Only our own socket is closed: a reused number belongs to the program now.
  if (link.fd >= 0 && still_ours(link)) real.close(link.fd);
  link.fd = -1;
}

void close_at_thread_exit(void*) {
  if (g_real != nullptr && t_link.fd >= 0 && t_link.pid == ::getpid()) drop(*g_real, t_link);
}

// A child of fork() lets go of the forking thread's connection at once, so the resolver sees it
// end when the parent's thread ends. (A child made by a raw clone() runs no fork handlers: the
// pid check in link_fd() covers it.)
void close_inherited_in_child() {
  if (g_real != nullptr) drop(*g_real, t_link);
}

// The thread's connection, opened if needed; -1 with `error` set if there is none.
int link_fd(const Runtime& rt, int& error) noexcept {
  Link& link = t_link;
  const pid_t pid = ::getpid();
  if (link.fd >= 0) {
    if (link.pid == pid && still_ours(link)) return link.fd;
    // A forked child closes its copy of the parent's connection (the parent keeps using it).
    if (link.pid != pid) drop(rt.real, link);
    link.fd = -1;
  }
  if (rt.settings.socket_path[0] == '\0') {
    error = ENAMETOOLONG;
    return -1;
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = errno;
    return -1;
  }
  // Never 0, 1 or 2: a program that closed its standard streams reopens them by number.
  if (fd <= STDERR_FILENO) {
    const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    error = errno;
    rt.real.close(fd);
    if (high < 0) return -1;
    fd = high;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, rt.settings.socket_path, std::strlen(rt.settings.socket_path) + 1);
  struct stat st {};
  // Non-blocking: a full backlog (EAGAIN) is an error, not a wait.
  if (rt.real.connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
      ::fstat(fd, &st) != 0) {
    error = errno;
    rt.real.close(fd);
    return -1;
  }
  link = Link{fd, pid, st.st_dev, st.st_ino, link.exit_hook};
  if (!link.exit_hook && g_exit_key_ok) {
    link.exit_hook = ::pthread_setspecific(g_exit_key, &t_link) == 0;
  }
  return fd;
}

enum class Sent { Ok, Broken, Failed };

Sent send_request(const Runtime& rt, const query::Request& request, int& error) noexcept {
  const int fd = link_fd(rt, error);
  if (fd < 0) return Sent::Failed;
  const auto bytes = query::encode(request);
  const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(bytes.size())) return Sent::Ok;
  error = n < 0 ? errno : EMSGSIZE;
  drop(rt.real, t_link);
  // The resolver closes idle connections: such a link shows as broken on its next use.
  return error == EPIPE || error == ECONNRESET || error == ENOTCONN ? Sent::Broken : Sent::Failed;
}

enum class Received { Ok, Closed, Timeout, Bad, Failed };

Received receive_answer(const Runtime& rt, int budget_ms, query::Answer& answer,
                        int& error) noexcept {
  const int fd = t_link.fd;
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(budget_ms) * 1'000'000u;
  for (;;) {
    const std::uint64_t now = now_ns();
    if (now >= deadline) break;
    pollfd p{fd, POLLIN, 0};
    // Rounded up: a poll of 0 ms would spin.
    const int left_ms = static_cast<int>((deadline - now + 999'999u) / 1'000'000u);
    const int ready = ::poll(&p, 1, left_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      error = errno;
      drop(rt.real, t_link);
      return Received::Failed;
    }
    if (ready == 0) continue;
    std::array<std::uint8_t, 64> buffer{};
    // MSG_TRUNC: the real length of an oversized message, so that it is refused, not cut.
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      error = n < 0 ? errno : ECONNRESET;
      drop(rt.real, t_link);
      return Received::Closed;
    }
    if (static_cast<std::size_t>(n) > buffer.size()) {
      drop(rt.real, t_link);
      return Received::Bad;
    }
    const auto parsed = query::parse_answer(std::span{buffer}.first(static_cast<std::size_t>(n)));
    if (!parsed) {
      drop(rt.real, t_link);
      return Received::Bad;
    }
    answer = *parsed;
    return Received::Ok;
  }
  // The answer may still come: this connection is done, the next query opens another.
  drop(rt.real, t_link);
  return Received::Timeout;
}

}  // namespace

void link_set_up(const Real& real) noexcept {
  g_real = &real;
  g_exit_key_ok = ::pthread_key_create(&g_exit_key, close_at_thread_exit) == 0;
  ::pthread_atfork(nullptr, nullptr, close_inherited_in_child);
}

LinkReply link_ask(const Runtime& rt, const query::Request& request) noexcept {
  if (t_busy) return {LinkOutcome::Busy, {}, 0};
  const SavedErrno keep;
  const NoCancel no_cancel;
  const BusyScope busy;
  const int budget_ms =
      ((request.flags & query::kFlagMayWait) != 0 ? request.wait_ms : 0) + kAnswerMarginMs;
  LinkReply reply;
  // A connection the resolver closed while idle fails on first use: one more try on a new one.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const Sent sent = send_request(rt, request, reply.error);
    if (sent == Sent::Broken && attempt == 0) continue;
    if (sent != Sent::Ok) {
      reply.outcome = LinkOutcome::Unreachable;
      return reply;
    }
    switch (receive_answer(rt, budget_ms, reply.answer, reply.error)) {
      case Received::Ok:
        reply.outcome = LinkOutcome::Answered;
        return reply;
      case Received::Closed:
        if (attempt == 0) continue;
        reply.outcome = LinkOutcome::Unreachable;
        return reply;
      case Received::Timeout:
        reply.outcome = LinkOutcome::Timeout;
        return reply;
      case Received::Bad:
        reply.outcome = LinkOutcome::BadAnswer;
        return reply;
      case Received::Failed:
        reply.outcome = LinkOutcome::Unreachable;
        return reply;
    }
  }
  reply.outcome = LinkOutcome::Unreachable;
  return reply;
}

void link_tell(const Runtime& rt, const query::Request& request) noexcept {
  if (t_busy) return;
  const SavedErrno keep;
  const NoCancel no_cancel;
  const BusyScope busy;
  int error = 0;
  if (send_request(rt, request, error) == Sent::Broken) send_request(rt, request, error);
}

}  // namespace anycast::preload
