// An ordinary program for the preload tests: it makes the socket calls its command line asks
// for and prints what it saw, one line per observation ("word key=value ..."), so that the test
// can run it under LD_PRELOAD=libanycast-preload.so. "errno" is errno after the call, set to EDOM
// before it: a call that succeeds leaves it so, whatever the library did meanwhile. "ref" is the
// same for the call made as a raw system call, which the library cannot see.
//
//   tcp ADDR PORT                       blocking connect, then getpeername
//   tcp-nb ADDR PORT flag|fcntl         non-blocking connect (SOCK_NONBLOCK or O_NONBLOCK set by
//                                       fcntl), waits for it (poll, 5 s), SO_ERROR, getpeername
//   udp-connect ADDR PORT [nb|short]    UDP connect (non-blocking / addrlen 24), getpeername
//   udp-sendto ADDR PORT                sendto "ping", poll, recvfrom
//   udp-sendmsg ADDR PORT               sendmsg, recvmsg
//   udp-sendmmsg ADDR PORT              sendmmsg of two datagrams, recvmmsg of both
//   udp-chk ADDR PORT                   sendto, __recvfrom_chk (what fortified programs call)
//   udp-short ADDR PORT                 sendto, recvfrom into a 16-byte sockaddr
//   threads N ADDR PORT                 N threads connect (blocking) at once
//   fork-tcp ADDR PORT                  the child does "tcp ADDR PORT"; the parent waits for it
//   dup ADDR PORT                       the per-fd table across dup2, dup3, close, reuse
//   pid                                 prints the pid
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" ssize_t __recvfrom_chk(int fd, void* buf, std::size_t n, std::size_t room, int flags,
                                  sockaddr* addr, socklen_t* len);

namespace {

constexpr int kWaitMs = 5000;
// errno before each observed call (no socket call sets it).
constexpr int kSentinel = EDOM;

// One write(2) per line: nothing buffered in stdio is duplicated by fork or lost by _exit.
void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
  char line[512];
  std::va_list args;
  va_start(args, format);
  const int n = std::vsnprintf(line, sizeof line - 1, format, args);
  va_end(args);
  if (n <= 0) return;
  std::size_t length = std::min(static_cast<std::size_t>(n), sizeof line - 2);
  line[length++] = '\n';
  if (::write(STDOUT_FILENO, line, length) < 0) std::exit(3);
}

const char* errno_name(int e) {
  if (e == 0) return "0";
  const char* name = ::strerrorname_np(e);
  return name != nullptr ? name : "unknown";
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "probe_app: %s\n", why);
  std::exit(2);
}

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = 0;
};

Target target(const char* text, const char* port_text) {
  Target t;
  const auto port = static_cast<std::uint16_t>(std::strtoul(port_text, nullptr, 10));
  sockaddr_in6 six{};
  sockaddr_in four{};
  if (::inet_pton(AF_INET6, text, &six.sin6_addr) == 1) {
    six.sin6_family = AF_INET6;
    six.sin6_port = htons(port);
    std::memcpy(&t.addr, &six, sizeof six);
    t.len = sizeof six;
    t.family = AF_INET6;
  } else if (::inet_pton(AF_INET, text, &four.sin_addr) == 1) {
    four.sin_family = AF_INET;
    four.sin_port = htons(port);
    std::memcpy(&t.addr, &four, sizeof four);
    t.len = sizeof four;
    t.family = AF_INET;
  } else {
    usage("bad address");
  }
  return t;
}

const sockaddr* sa(const Target& t) {
  return reinterpret_cast<const sockaddr*>(&t.addr);
}

std::string text(const sockaddr_storage& s, socklen_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (s.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 six{};
    std::memcpy(&six, &s, sizeof six);
    ::inet_ntop(AF_INET6, &six.sin6_addr, host, sizeof host);
    return "[" + std::string{host} + "]:" + std::to_string(ntohs(six.sin6_port));
  }
  if (s.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in four{};
    std::memcpy(&four, &s, sizeof four);
    ::inet_ntop(AF_INET, &four.sin_addr, host, sizeof host);
    return std::string{host} + ":" + std::to_string(ntohs(four.sin_port));
  }
  return "none";
}

std::string peer_of(int fd) {
  sockaddr_storage s{};
  socklen_t len = sizeof s;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&s), &len) != 0)
    return std::string{"error:"} + errno_name(errno);
  return text(s, len);
}

// The errno of the same connect made by a raw system call on a fresh socket of the same kind.
int reference_connect(const Target& t, int type, socklen_t len) {
  const int fd = ::socket(t.family, type | SOCK_CLOEXEC, 0);
  errno = kSentinel;
  ::syscall(SYS_connect, fd, sa(t), len);
  const int e = errno;
  ::close(fd);
  return e;
}

bool wait_for(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, kWaitMs) == 1;
}

void tcp(const char* word, const Target& t) {
  const int fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  errno = kSentinel;
  const int rc = ::connect(fd, sa(t), t.len);
  const int e = errno;
  say("%s pid=%d rc=%d errno=%s peer=%s", word, static_cast<int>(::getpid()), rc, errno_name(e),
      rc == 0 ? peer_of(fd).c_str() : "none");
  ::close(fd);
}

void tcp_nonblocking(const Target& t, const std::string& how) {
  int fd = -1;
  if (how == "flag") {
    fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  } else if (how == "fcntl") {
    fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  } else {
    usage("tcp-nb: flag or fcntl");
  }
  errno = kSentinel;
  const int rc = ::connect(fd, sa(t), t.len);
  const int e = errno;
  int so_error = -1;
  if (rc == 0 || e == EINPROGRESS) {
    if (wait_for(fd, POLLOUT)) {
      socklen_t len = sizeof so_error;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    }
  }
  say("tcp-nb rc=%d errno=%s so_error=%s peer=%s", rc, errno_name(e),
      so_error < 0 ? "none" : errno_name(so_error), so_error == 0 ? peer_of(fd).c_str() : "none");
  ::close(fd);
}

void udp_connect(const Target& t, const std::string& how) {
  const int type = SOCK_DGRAM | (how == "nb" ? SOCK_NONBLOCK : 0);
  // "short": the 24-byte sockaddr_in6 of RFC 2133 (no scope id), which the kernel accepts.
  const socklen_t len = how == "short" ? 24 : t.len;
  const int fd = ::socket(t.family, type | SOCK_CLOEXEC, 0);
  errno = kSentinel;
  const int rc = ::connect(fd, sa(t), len);
  const int e = errno;
  say("udp-connect rc=%d errno=%s ref=%s peer=%s", rc, errno_name(e),
      errno_name(reference_connect(t, type, len)), rc == 0 ? peer_of(fd).c_str() : "none");
  ::close(fd);
}

int udp_socket(const Target& t) {
  return ::socket(t.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

void udp_sendto(const Target& t, const std::string& how) {
  const int fd = udp_socket(t);
  errno = kSentinel;
  const ssize_t sent = ::sendto(fd, "ping", 4, 0, sa(t), t.len);
  const int e = errno;
  char data[16] = {};
  sockaddr_storage from{};
  socklen_t len = how == "short" ? sizeof(sockaddr) : sizeof from;
  ssize_t got = -1;
  if (sent == 4 && wait_for(fd, POLLIN)) {
    auto* name = reinterpret_cast<sockaddr*>(&from);
    got = how == "chk" ? __recvfrom_chk(fd, data, sizeof data - 1, sizeof data, 0, name, &len)
                       : ::recvfrom(fd, data, sizeof data - 1, 0, name, &len);
  }
  if (how == "short") {
    // A 16-byte buffer holds the family, port, flow label and the first 8 address bytes.
    char head[17] = {};
    for (std::size_t i = 0; i < 8; ++i)
      std::snprintf(head + 2 * i, 3, "%02x", reinterpret_cast<unsigned char*>(&from)[8 + i]);
    say("udp-short sent=%zd got=%zd len=%u head=%s", sent, got, len, head);
  } else {
    say("udp-%s sent=%zd errno=%s got=%zd data=%s source=%s", how.c_str(), sent, errno_name(e), got,
        data, got > 0 ? text(from, len).c_str() : "none");
  }
  ::close(fd);
}

void udp_sendmsg(const Target& t) {
  const int fd = udp_socket(t);
  char ping[] = "ping";
  iovec out{ping, 4};
  msghdr m{};
  m.msg_name = const_cast<sockaddr*>(sa(t));
  m.msg_namelen = t.len;
  m.msg_iov = &out;
  m.msg_iovlen = 1;
  const ssize_t sent = ::sendmsg(fd, &m, 0);
  char data[16] = {};
  iovec in{data, sizeof data - 1};
  sockaddr_storage from{};
  msghdr r{};
  r.msg_name = &from;
  r.msg_namelen = sizeof from;
  r.msg_iov = &in;
  r.msg_iovlen = 1;
  ssize_t got = -1;
  if (sent == 4 && wait_for(fd, POLLIN)) got = ::recvmsg(fd, &r, 0);
  say("udp-sendmsg sent=%zd got=%zd data=%s source=%s name_is_ours=%d", sent, got, data,
      got > 0 ? text(from, r.msg_namelen).c_str() : "none", r.msg_name == &from ? 1 : 0);
  ::close(fd);
}

void udp_sendmmsg(const Target& t) {
  const int fd = udp_socket(t);
  char one[] = "one";
  char two[] = "two";
  iovec out[2] = {{one, 3}, {two, 3}};
  mmsghdr m[2] = {};
  for (int i = 0; i < 2; ++i) {
    m[i].msg_hdr.msg_name = const_cast<sockaddr*>(sa(t));
    m[i].msg_hdr.msg_namelen = t.len;
    m[i].msg_hdr.msg_iov = &out[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  const int sent = ::sendmmsg(fd, m, 2, 0);
  const bool names_back = m[0].msg_hdr.msg_name == sa(t) && m[1].msg_hdr.msg_name == sa(t);
  char data[2][16] = {};
  iovec in[2] = {{data[0], 15}, {data[1], 15}};
  sockaddr_storage from[2] = {};
  mmsghdr r[2] = {};
  for (int i = 0; i < 2; ++i) {
    r[i].msg_hdr.msg_name = &from[i];
    r[i].msg_hdr.msg_namelen = sizeof from[i];
    r[i].msg_hdr.msg_iov = &in[i];
    r[i].msg_hdr.msg_iovlen = 1;
  }
  int got = 0;
  // Both echoes, in one or two calls.
  while (sent == 2 && got < 2 && wait_for(fd, POLLIN)) {
    const int n =
        ::recvmmsg(fd, r + got, static_cast<unsigned int>(2 - got), MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    got += n;
  }
  say("udp-sendmmsg sent=%d names_back=%d got=%d data=%s,%s source=%s,%s", sent, names_back ? 1 : 0,
      got, data[0], data[1], got > 0 ? text(from[0], r[0].msg_hdr.msg_namelen).c_str() : "none",
      got > 1 ? text(from[1], r[1].msg_hdr.msg_namelen).c_str() : "none");
  ::close(fd);
}

void threads(int count, const Target& t) {
  pthread_barrier_t start;
  ::pthread_barrier_init(&start, nullptr, static_cast<unsigned int>(count));
  std::vector<std::string> lines(static_cast<std::size_t>(count));
  std::vector<std::thread> workers;
  for (int i = 0; i < count; ++i) {
    workers.emplace_back([&, i] {
      const int fd = ::socket(t.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ::pthread_barrier_wait(&start);
      errno = kSentinel;
      const int rc = ::connect(fd, sa(t), t.len);
      const int e = errno;
      lines[static_cast<std::size_t>(i)] = "thread rc=" + std::to_string(rc) +
                                           " errno=" + errno_name(e) +
                                           " peer=" + (rc == 0 ? peer_of(fd) : "none");
      ::close(fd);
    });
  }
  for (auto& w : workers) w.join();
  ::pthread_barrier_destroy(&start);
  for (const auto& line : lines) say("%s", line.c_str());
}

void fork_tcp(const Target& t) {
  const pid_t child = ::fork();
  if (child == 0) {
    tcp("child", t);
    ::_exit(0);
  }
  int status = -1;
  if (child > 0) ::waitpid(child, &status, 0);
  say("fork child=%d exit=%d", static_cast<int>(child),
      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

// The table follows descriptors: dup2/dup3 copy the mapping, a descriptor replaced by dup2 or
// closed and reused by another socket loses it.
void dup_table(const Target& anycast, const Target& direct) {
  const int original = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(original, sa(anycast), anycast.len) != 0) usage("dup: connect failed");
  constexpr int kDup2 = 200;
  constexpr int kDup3 = 201;
  ::dup2(original, kDup2);
  ::dup3(original, kDup3, O_CLOEXEC);
  say("dup-copies dup2=%s dup3=%s", peer_of(kDup2).c_str(), peer_of(kDup3).c_str());
  ::close(original);
  say("dup-after-close dup2=%s", peer_of(kDup2).c_str());

  // The lowest free number is `original`'s, which had a mapping; connected out of the library's
  // sight, so only close can have cleared it.
  const int reused = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::syscall(SYS_connect, reused, sa(direct), direct.len) != 0) usage("dup: connect failed");
  say("dup-reused same_fd=%d peer=%s", reused == original ? 1 : 0, peer_of(reused).c_str());

  ::dup2(reused, kDup3);
  say("dup-replaced dup3=%s", peer_of(kDup3).c_str());
  for (const int fd : {kDup2, kDup3, reused}) ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size();) {
    const std::string& word = args[i];
    // The command at i needs `count` arguments after it.
    auto need = [&](std::size_t count) {
      if (i + count >= args.size()) usage("missing arguments");
    };
    if (word == "pid") {
      say("pid pid=%d", static_cast<int>(::getpid()));
      i += 1;
    } else if (word == "tcp" || word == "fork-tcp" || word == "dup" || word == "udp-sendmsg" ||
               word == "udp-sendmmsg") {
      need(2);
      const Target t = target(args[i + 1].c_str(), args[i + 2].c_str());
      if (word == "tcp") tcp("tcp", t);
      if (word == "fork-tcp") fork_tcp(t);
      if (word == "dup") dup_table(t, target("::1", args[i + 2].c_str()));
      if (word == "udp-sendmsg") udp_sendmsg(t);
      if (word == "udp-sendmmsg") udp_sendmmsg(t);
      i += 3;
    } else if (word == "tcp-nb") {
      need(3);
      tcp_nonblocking(target(args[i + 1].c_str(), args[i + 2].c_str()), args[i + 3]);
      i += 4;
    } else if (word == "udp-connect") {
      need(2);
      const bool variant = i + 3 < args.size() && (args[i + 3] == "nb" || args[i + 3] == "short");
      udp_connect(target(args[i + 1].c_str(), args[i + 2].c_str()), variant ? args[i + 3] : "");
      i += variant ? 4 : 3;
    } else if (word == "udp-sendto" || word == "udp-chk" || word == "udp-short") {
      need(2);
      udp_sendto(target(args[i + 1].c_str(), args[i + 2].c_str()),
                 word == "udp-sendto" ? "sendto" : word.substr(4));
      i += 3;
    } else if (word == "threads") {
      need(3);
      threads(std::atoi(args[i + 1].c_str()), target(args[i + 2].c_str(), args[i + 3].c_str()));
      i += 4;
    } else {
      usage(("unknown command " + word).c_str());
    }
  }
  return 0;
}
