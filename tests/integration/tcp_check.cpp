// A checked TCP transfer for the relay lab tests: every byte of the stream is verified against a
// position-dependent pattern, so a dropped, duplicated, reordered or corrupted segment that TCP
// let through (or a wrong decryption) fails the transfer.
//
//   tcp_check serve --listen ADDR --port N [--ready-fd FD]   answers requests until killed;
//                                                            prints "peer ADDR PORT" for each
//                                                            connection it accepts
//   tcp_check put --to ADDR --port N --bytes B               sends B bytes; the server checks
//   tcp_check get --to ADDR --port N --bytes B               receives B bytes and checks them
//
// A request is one line, "put B\n" or "get B\n". For put the server answers "ok\n" or
// "bad <offset>\n" after the last byte. Exit status 0 when the transfer checked out, 1 otherwise,
// 2 for usage errors. Every socket operation has a 30 s timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr int kTimeoutSeconds = 30;
constexpr std::uint64_t kMaxBytes = 1ull << 34;

std::uint8_t pattern(std::uint64_t i) {
  return static_cast<std::uint8_t>((i * 131u) ^ (i >> 8) ^ (i >> 16));
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

bool parse_address(const char* text, int port, Address& out) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (::inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    out.length = sizeof(sockaddr_in);
    return true;
  }
  if (::inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    out.length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

void set_timeouts(int fd) {
  const timeval tv{kTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const auto k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

bool read_line(int fd, std::string& line) {
  line.clear();
  char c = 0;
  while (line.size() < 64) {
    if (::recv(fd, &c, 1, 0) != 1) return false;
    if (c == '\n') return true;
    line.push_back(c);
  }
  return false;
}

bool send_pattern(int fd, std::uint64_t bytes) {
  std::array<std::uint8_t, 65536> buf{};
  for (std::uint64_t off = 0; off < bytes;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - off));
    for (std::size_t i = 0; i < n; ++i) buf[i] = pattern(off + i);
    if (!send_all(fd, buf.data(), n)) return false;
    off += n;
  }
  return true;
}

// The offset of the first wrong or missing byte, or `bytes` when all arrived intact.
std::uint64_t check_pattern(int fd, std::uint64_t bytes) {
  std::array<std::uint8_t, 65536> buf{};
  std::uint64_t off = 0;
  while (off < bytes) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - off));
    const auto n = ::recv(fd, buf.data(), want, 0);
    if (n <= 0) return off;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i)
      if (buf[i] != pattern(off + i)) return off + i;
    off += static_cast<std::uint64_t>(n);
  }
  return off;
}

void serve_one(int fd) {
  set_timeouts(fd);
  std::string line;
  if (read_line(fd, line)) {
    const auto bytes = std::strtoull(line.c_str() + 4, nullptr, 10);
    if (line.rfind("put ", 0) == 0 && bytes <= kMaxBytes) {
      const auto at = check_pattern(fd, bytes);
      const auto answer = at == bytes ? std::string{"ok\n"} : "bad " + std::to_string(at) + "\n";
      send_all(fd, answer.data(), answer.size());
    } else if (line.rfind("get ", 0) == 0 && bytes <= kMaxBytes) {
      send_pattern(fd, bytes);
    }
  }
  ::shutdown(fd, SHUT_WR);
  char drain[256];
  while (::recv(fd, drain, sizeof drain, 0) > 0) {
  }
  ::close(fd);
}

int serve(const Address& at, int ready_fd) {
  const int fd = ::socket(at.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&at.storage), at.length) != 0 ||
      ::listen(fd, 16) != 0) {
    std::perror("tcp_check: bind/listen");
    return 1;
  }
  if (ready_fd >= 0) {
    (void)!::write(ready_fd, "READY\n", 6);
    ::close(ready_fd);
  }
  for (;;) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int c = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC);
    if (c < 0) continue;
    // Who the connection came from (a test checks what a NAT left of the source), at once.
    std::array<char, INET6_ADDRSTRLEN> text{};
    const bool v4 = peer.ss_family == AF_INET;
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&peer);
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(peer.ss_family, v4 ? static_cast<const void*>(&in4->sin_addr) : &in6->sin6_addr,
                text.data(), text.size());
    std::printf("peer %s %u\n", text.data(), unsigned{ntohs(v4 ? in4->sin_port : in6->sin6_port)});
    std::fflush(stdout);
    std::thread{serve_one, c}.detach();
  }
}

int client(bool put, const Address& to, std::uint64_t bytes) {
  const int fd = ::socket(to.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_timeouts(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to.storage), to.length) != 0) {
    std::perror("tcp_check: connect");
    return 1;
  }
  const auto request = std::string{put ? "put " : "get "} + std::to_string(bytes) + "\n";
  if (!send_all(fd, request.data(), request.size())) return 1;
  if (put) {
    std::string answer;
    if (!send_pattern(fd, bytes) || !read_line(fd, answer)) {
      std::fprintf(stderr, "tcp_check: put: no answer\n");
      return 1;
    }
    std::printf("%s\n", answer.c_str());
    return answer == "ok" ? 0 : 1;
  }
  const auto at = check_pattern(fd, bytes);
  std::printf(at == bytes ? "ok\n" : "bad %llu\n", static_cast<unsigned long long>(at));
  return at == bytes ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string_view mode = argv[1];
  const char* address = nullptr;
  int port = 0;
  int ready_fd = -1;
  std::uint64_t bytes = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string_view key = argv[i];
    if (key == "--listen" || key == "--to")
      address = argv[i + 1];
    else if (key == "--port")
      port = std::atoi(argv[i + 1]);
    else if (key == "--ready-fd")
      ready_fd = std::atoi(argv[i + 1]);
    else if (key == "--bytes")
      bytes = std::strtoull(argv[i + 1], nullptr, 10);
    else
      return 2;
  }
  Address a;
  if (!address || port <= 0 || port > 65535 || !parse_address(address, port, a)) return 2;
  if (mode == "serve") return serve(a, ready_fd);
  if ((mode == "put" || mode == "get") && bytes <= kMaxBytes)
    return client(mode == "put", a, bytes);
  return 2;
}
