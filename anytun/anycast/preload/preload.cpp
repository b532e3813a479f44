// libanycast-preload.so: the hooked socket calls. A destination the resolver names an anycast
// address is replaced by the unicast address of one member; getpeername and the source of
// received datagrams show the anycast address again (docs/anycast.md, "Unmodified programs").
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "answer_cache.hpp"
#include "diag.hpp"
#include "fd_table.hpp"
#include "hooks.hpp"
#include "real.hpp"
#include "resolver_link.hpp"

namespace anycast::preload {
namespace {

using query::Address;
using query::Status;

// Messages of one sendmmsg call that can be rewritten (their names live on the stack).
constexpr unsigned int kSendBatch = 32;
// recvmmsg never receives more than UIO_MAXIOV messages in one call.
constexpr unsigned int kMaxRecvBatch = 1024;

// Never anycast, so never worth a query: multicast, link-local, IPv4-mapped, :: and ::1.
bool could_be_anycast(const Address& a) noexcept {
  if (a[0] == 0xff) return false;
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return false;
  const bool zero_prefix = std::all_of(a.begin(), a.begin() + 10, [](auto b) { return b == 0; });
  if (zero_prefix && a[10] == 0xff && a[11] == 0xff) return false;
  if (zero_prefix && std::all_of(a.begin() + 10, a.begin() + 15, [](auto b) { return b == 0; }) &&
      a[15] <= 1)
    return false;
  return true;
}

// The address of a destination the library may rewrite: a whole sockaddr_in6 (IPv4, other
// families and short lengths pass through untouched) that could be anycast.
std::optional<Address> destination(const void* addr, socklen_t len) noexcept {
  if (addr == nullptr || len < sizeof(sockaddr_in6) || len > sizeof(sockaddr_storage))
    return std::nullopt;
  sockaddr_in6 sin6{};
  std::memcpy(&sin6, addr, sizeof sin6);
  if (sin6.sin6_family != AF_INET6) return std::nullopt;
  Address a{};
  std::memcpy(a.data(), &sin6.sin6_addr, a.size());
  if (!could_be_anycast(a)) return std::nullopt;
  return a;
}

// The caller's sockaddr with another address; port, flowinfo, scope_id and length kept.
sockaddr_storage with_address(const void* addr, socklen_t len, const Address& address) noexcept {
  sockaddr_storage out{};
  std::memcpy(&out, addr, len);
  std::memcpy(reinterpret_cast<unsigned char*>(&out) + offsetof(sockaddr_in6, sin6_addr),
              address.data(), address.size());
  return out;
}

bool is_blocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) == 0;
}

struct Route {
  bool rewrite = false;
  Address unicast{};
};

// Where a call to `target` goes: the cache, else the resolver (waiting up to the blocking or the
// shorter non-blocking budget; never for MSG_DONTWAIT), else as it is (fail open, with a line on
// stderr).
Route route(const Runtime& rt, int fd, const Address& target, bool dont_wait) noexcept {
  const SavedErrno keep;
  const std::uint64_t now = now_ns();
  if (const auto hit = cache_find(target, now))
    return {hit->status == Status::Unicast, hit->unicast};

  const std::uint16_t budget =
      dont_wait ? 0 : (is_blocking(fd) ? rt.settings.wait_ms : rt.settings.nonblocking_wait_ms);
  const bool may_wait = budget > 0;
  query::Request request;
  request.op = query::Op::Resolve;
  request.flags = may_wait ? query::kFlagMayWait : 0;
  request.wait_ms = budget;
  request.address = target;
  const LinkReply reply = link_ask(rt, request);

  const auto text = to_text(target);
  const char* socket = rt.settings.socket_path[0] != '\0' ? rt.settings.socket_path
                                                          : "(ANYCAST_RESOLVER_SOCKET too long)";
  switch (reply.outcome) {
    case LinkOutcome::Answered:
      break;
    case LinkOutcome::Unreachable: {
      char buffer[128];
      note(Reason::Unreachable, "resolver %s unreachable (%s): using %s as it is", socket,
           ::strerror_r(reply.error, buffer, sizeof buffer), text.text);
      return {};
    }
    case LinkOutcome::Timeout:
      note(Reason::Timeout, "no answer from resolver %s in %d ms: using %s as it is", socket,
           int{budget} + kAnswerMarginMs, text.text);
      return {};
    case LinkOutcome::BadAnswer:
      note(Reason::BadAnswer, "malformed answer from resolver %s: using %s as it is", socket,
           text.text);
      return {};
    case LinkOutcome::Busy:
      return {};
  }
  switch (reply.answer.status) {
    case Status::Unicast:
      if (reply.answer.unicast == Address{}) {
        note(Reason::BadAnswer, "resolver %s named :: for %s: using it as it is", socket,
             text.text);
        return {};
      }
      cache_store(target, reply.answer, now);
      return {true, reply.answer.unicast};
    case Status::PassThrough:
      cache_store(target, reply.answer, now);
      return {};
    case Status::Pending:
      note(Reason::Pending, "%s is not resolved yet: using it as it is", text.text);
      return {};
    case Status::Refused:
      note(Reason::Refused, "resolver %s refused the query for %s: using it as it is", socket,
           text.text);
      return {};
  }
  return {};
}

// After a connect: whether a connection (attempt) now exists, so the table follows it.
// EALREADY and EISCONN (a program polling a connect in progress) leave things as they are.
bool connection_started(int rc, int error) noexcept {
  return rc == 0 || error == EINPROGRESS || error == EINTR;
}

// The member's unicast address did not take the connection: worth a new resolution. Seen at
// once by a blocking connect, and by a non-blocking one only for routing errors (a later
// failure of a non-blocking connect shows in SO_ERROR, which the library does not watch).
bool member_failed(int error) noexcept {
  return error == ECONNREFUSED || error == ETIMEDOUT || error == EHOSTUNREACH ||
         error == ENETUNREACH;
}

void report_failed(const Runtime& rt, const Address& anycast, const Address& unicast) noexcept {
  cache_forget(anycast);
  query::Request request;
  request.op = query::Op::Failed;
  request.address = anycast;
  request.unicast = unicast;
  link_tell(rt, request);
}

// A received source (or peer) equal to fd's unicast becomes its anycast address again.
void show_anycast(int fd, void* name, socklen_t len) noexcept {
  if (name == nullptr || len != sizeof(sockaddr_in6)) return;
  sockaddr_in6 sin6{};
  std::memcpy(&sin6, name, sizeof sin6);
  if (sin6.sin6_family != AF_INET6) return;
  const auto m = fd_lookup(fd);
  if (!m || std::memcmp(&sin6.sin6_addr, m->unicast.data(), m->unicast.size()) != 0) return;
  std::memcpy(static_cast<unsigned char*>(name) + offsetof(sockaddr_in6, sin6_addr),
              m->anycast.data(), m->anycast.size());
}

// Copies a name the kernel gave us into the caller's buffer as the kernel would have: cut to
// the caller's room, with the full length reported.
void hand_back(const sockaddr_storage& name, socklen_t len, void* to, socklen_t* to_len) noexcept {
  std::memcpy(to, &name, std::min(*to_len, len));
  *to_len = len;
}

}  // namespace
}  // namespace anycast::preload

using namespace anycast::preload;

extern "C" {

int anycast_preload_connect(int fd, const sockaddr* addr, socklen_t len) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().connect(fd, addr, len);
  const auto target = in_fd_table(fd) ? destination(addr, len) : std::nullopt;
  const Route r = target ? route(*rt, fd, *target, false) : Route{};
  if (!r.rewrite) {
    const int rc = rt->real.connect(fd, addr, len);
    if (connection_started(rc, errno)) fd_clear(fd);
    return rc;
  }
  const sockaddr_storage to = with_address(addr, len, r.unicast);
  const int rc = rt->real.connect(fd, reinterpret_cast<const sockaddr*>(&to), len);
  if (connection_started(rc, errno)) {
    fd_record(fd, {*target, r.unicast});
  } else if (member_failed(errno)) {
    report_failed(*rt, *target, r.unicast);
  }
  return rc;
}

ssize_t anycast_preload_sendto(int fd, const void* buf, std::size_t n, int flags,
                               const sockaddr* addr, socklen_t len) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().sendto(fd, buf, n, flags, addr, len);
  const auto target = in_fd_table(fd) ? destination(addr, len) : std::nullopt;
  const Route r = target ? route(*rt, fd, *target, (flags & MSG_DONTWAIT) != 0) : Route{};
  if (!r.rewrite) return rt->real.sendto(fd, buf, n, flags, addr, len);
  const sockaddr_storage to = with_address(addr, len, r.unicast);
  // Before the send: the answer may be read by another thread as soon as it is out.
  fd_record(fd, {*target, r.unicast});
  return rt->real.sendto(fd, buf, n, flags, reinterpret_cast<const sockaddr*>(&to), len);
}

ssize_t anycast_preload_sendmsg(int fd, const msghdr* msg, int flags) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().sendmsg(fd, msg, flags);
  const auto target = in_fd_table(fd) && msg != nullptr
                          ? destination(msg->msg_name, msg->msg_namelen)
                          : std::nullopt;
  const Route r = target ? route(*rt, fd, *target, (flags & MSG_DONTWAIT) != 0) : Route{};
  if (!r.rewrite) return rt->real.sendmsg(fd, msg, flags);
  sockaddr_storage to = with_address(msg->msg_name, msg->msg_namelen, r.unicast);
  msghdr rewritten = *msg;
  rewritten.msg_name = &to;
  fd_record(fd, {*target, r.unicast});
  return rt->real.sendmsg(fd, &rewritten, flags);
}

int anycast_preload_sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().sendmmsg(fd, vec, vlen, flags);
  if (!in_fd_table(fd) || vec == nullptr) return rt->real.sendmmsg(fd, vec, vlen, flags);
  // The rewritten names live here, so one call covers at most kSendBatch messages from the
  // first rewritten one; sendmmsg may send fewer messages than asked, and callers send the rest.
  sockaddr_storage names[kSendBatch];
  void* originals[kSendBatch] = {};
  unsigned int first = vlen;
  unsigned int end = vlen;
  for (unsigned int i = 0; i < end; ++i) {
    msghdr& h = vec[i].msg_hdr;
    const auto target = destination(h.msg_name, h.msg_namelen);
    if (!target) continue;
    const Route r = route(*rt, fd, *target, (flags & MSG_DONTWAIT) != 0);
    if (!r.rewrite) continue;
    if (first == vlen) {
      first = i;
      end = std::min(vlen, i + kSendBatch);
    }
    const unsigned int slot = i - first;
    names[slot] = with_address(h.msg_name, h.msg_namelen, r.unicast);
    originals[slot] = h.msg_name;
    h.msg_name = &names[slot];
    fd_record(fd, {*target, r.unicast});
  }
  const int sent = rt->real.sendmmsg(fd, vec, end, flags);
  // The caller's array gets its own names back (the kernel only wrote msg_len).
  for (unsigned int i = first; i < end; ++i) {
    if (originals[i - first] != nullptr) vec[i].msg_hdr.msg_name = originals[i - first];
  }
  return sent;
}

ssize_t anycast_preload_recvfrom(int fd, void* buf, std::size_t n, int flags, sockaddr* addr,
                                 socklen_t* len) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().recvfrom(fd, buf, n, flags, addr, len);
  if (addr == nullptr || len == nullptr || !fd_mapped(fd))
    return rt->real.recvfrom(fd, buf, n, flags, addr, len);
  // Into a whole sockaddr first: a caller's short buffer would hide the address we compare.
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  const ssize_t got =
      rt->real.recvfrom(fd, buf, n, flags, reinterpret_cast<sockaddr*>(&from), &from_len);
  if (got < 0) return got;
  show_anycast(fd, &from, from_len);
  hand_back(from, from_len, addr, len);
  return got;
}

ssize_t anycast_preload_recvmsg(int fd, msghdr* msg, int flags) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().recvmsg(fd, msg, flags);
  if (msg == nullptr || msg->msg_name == nullptr || !fd_mapped(fd))
    return rt->real.recvmsg(fd, msg, flags);
  void* const name = msg->msg_name;
  socklen_t room = msg->msg_namelen;
  sockaddr_storage from{};
  msg->msg_name = &from;
  msg->msg_namelen = sizeof from;
  const ssize_t got = rt->real.recvmsg(fd, msg, flags);
  msg->msg_name = name;
  if (got < 0) {
    msg->msg_namelen = room;
    return got;
  }
  const socklen_t from_len = msg->msg_namelen;
  show_anycast(fd, &from, from_len);
  hand_back(from, from_len, name, &room);
  msg->msg_namelen = room;
  return got;
}

int anycast_preload_recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags,
                             timespec* timeout) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().recvmmsg(fd, vec, vlen, flags, timeout);
  if (vec == nullptr || !fd_mapped(fd)) return rt->real.recvmmsg(fd, vec, vlen, flags, timeout);
  // Rewritten in place, and only where the caller's buffer holds a whole sockaddr_in6: the
  // kernel reports the full length even when it cut the name.
  const unsigned int checked = std::min(vlen, kMaxRecvBatch);
  std::uint64_t roomy[kMaxRecvBatch / 64] = {};
  for (unsigned int i = 0; i < checked; ++i) {
    const msghdr& h = vec[i].msg_hdr;
    if (h.msg_name != nullptr && h.msg_namelen >= sizeof(sockaddr_in6))
      roomy[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  const int got = rt->real.recvmmsg(fd, vec, vlen, flags, timeout);
  if (got <= 0) return got;
  for (unsigned int i = 0; i < std::min(static_cast<unsigned int>(got), checked); ++i) {
    if ((roomy[i / 64] >> (i % 64) & 1u) != 0)
      show_anycast(fd, vec[i].msg_hdr.msg_name, vec[i].msg_hdr.msg_namelen);
  }
  return got;
}

int anycast_preload_getpeername(int fd, sockaddr* addr, socklen_t* len) noexcept {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().getpeername(fd, addr, len);
  if (addr == nullptr || len == nullptr || !fd_mapped(fd))
    return rt->real.getpeername(fd, addr, len);
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof peer;
  const int rc = rt->real.getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len);
  if (rc != 0) return rc;
  show_anycast(fd, &peer, peer_len);
  hand_back(peer, peer_len, addr, len);
  return rc;
}

int anycast_preload_close(int fd) {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().close(fd);
  // Before the real close: afterwards the number may already belong to a new socket.
  fd_clear(fd);
  return rt->real.close(fd);
}

int anycast_preload_dup2(int from, int to) noexcept {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().dup2(from, to);
  const int rc = rt->real.dup2(from, to);
  if (rc >= 0 && from != to) fd_copy(from, to);
  return rc;
}

int anycast_preload_dup3(int from, int to, int flags) noexcept {
  const Runtime* rt = runtime();
  if (rt == nullptr) return syscalls().dup3(from, to, flags);
  const int rc = rt->real.dup3(from, to, flags);
  if (rc >= 0) fd_copy(from, to);
  return rc;
}

// glibc's, in no public header.
[[noreturn]] void __chk_fail() noexcept;

// Programs built with _FORTIFY_SOURCE call this instead of recvfrom when the compiler knows the
// buffer's size; glibc's own would go around the hook.
__attribute__((visibility("default"))) ssize_t __recvfrom_chk(int fd, void* buf, std::size_t n,
                                                              std::size_t room, int flags,
                                                              sockaddr* addr, socklen_t* len) {
  if (n > room) __chk_fail();
  return anycast_preload_recvfrom(fd, buf, n, flags, addr, len);
}

// The exported names: aliases, so that the wrappers keep a hidden address of their own.
#define ANYCAST_PRELOAD_EXPORT(target) __attribute__((visibility("default"), alias(#target)))
ANYCAST_PRELOAD_EXPORT(anycast_preload_connect)
int connect(int fd, const sockaddr* addr, socklen_t len);
ANYCAST_PRELOAD_EXPORT(anycast_preload_sendto)
ssize_t sendto(int fd, const void* buf, std::size_t n, int flags, const sockaddr* addr,
               socklen_t len);
ANYCAST_PRELOAD_EXPORT(anycast_preload_sendmsg)
ssize_t sendmsg(int fd, const msghdr* msg, int flags);
ANYCAST_PRELOAD_EXPORT(anycast_preload_sendmmsg)
int sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags);
ANYCAST_PRELOAD_EXPORT(anycast_preload_recvfrom)
ssize_t recvfrom(int fd, void* buf, std::size_t n, int flags, sockaddr* addr, socklen_t* len);
ANYCAST_PRELOAD_EXPORT(anycast_preload_recvmsg)
ssize_t recvmsg(int fd, msghdr* msg, int flags);
ANYCAST_PRELOAD_EXPORT(anycast_preload_recvmmsg)
int recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout);
ANYCAST_PRELOAD_EXPORT(anycast_preload_getpeername)
int getpeername(int fd, sockaddr* addr, socklen_t* len) noexcept;
ANYCAST_PRELOAD_EXPORT(anycast_preload_close)
int close(int fd);
ANYCAST_PRELOAD_EXPORT(anycast_preload_dup2)
int dup2(int from, int to) noexcept;
ANYCAST_PRELOAD_EXPORT(anycast_preload_dup3)
int dup3(int from, int to, int flags) noexcept;

}  // extern "C"
