// The TCP service on each anycast member in the anycast lab tests: a minimal HTTP/1.0 server that
// says which member answered and on which of its addresses, and streams a checkable body that
// pauses half-way until the test has moved the anycast route.
//
//   anycast_service --name NAME --port N --ready-fd FD
//   GET /who           -> "NAME <local address>\n"
//   GET /stream?bytes=N -> N bytes, byte i = kPattern(i); after N/2 it waits for /resume (30 s max)
//   GET /wait-half     -> blocks until a stream reached its half (30 s max): "half\n" or 504
//   GET /resume        -> lets the paused streams go on
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace {

using namespace std::chrono_literals;

std::mutex mutex;
std::condition_variable changed;
// A stream that reached its half waits for the next /resume; /wait-half consumes one half.
unsigned halves = 0;
unsigned resumes = 0;
std::string name = "member";

std::uint8_t pattern(std::uint64_t i) {
  return static_cast<std::uint8_t>((i * 131 + (i >> 11)) & 0xff);
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void respond(int fd, std::string_view status, std::string_view body) {
  std::string out = "HTTP/1.0 ";
  out += status;
  out += "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n";
  out += body;
  send_all(fd, out);
}

void stream(int fd, std::uint64_t bytes) {
  std::string head =
      "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
      "Content-Length: " +
      std::to_string(bytes) + "\r\nConnection: close\r\n\r\n";
  if (!send_all(fd, head)) return;
  std::array<char, 16384> chunk{};
  std::uint64_t sent = 0;
  auto send_until = [&](std::uint64_t end) {
    while (sent < end) {
      const auto n = std::min<std::uint64_t>(chunk.size(), end - sent);
      for (std::uint64_t k = 0; k < n; ++k) chunk[k] = static_cast<char>(pattern(sent + k));
      if (!send_all(fd, {chunk.data(), static_cast<std::size_t>(n)})) return false;
      sent += n;
    }
    return true;
  };
  if (!send_until(bytes / 2)) return;
  {
    std::unique_lock lock{mutex};
    ++halves;
    const unsigned seen = resumes;
    changed.notify_all();
    changed.wait_for(lock, 30s, [&] { return resumes != seen; });
  }
  send_until(bytes);
}

void serve(int fd) {
  std::string request;
  std::array<char, 1024> buffer{};
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
    const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    request.append(buffer.data(), static_cast<std::size_t>(n));
  }
  const auto line_end = request.find("\r\n");
  const std::string_view line = std::string_view{request}.substr(0, line_end);
  const auto path_start = line.find(' ');
  const auto path_end = line.find(' ', path_start + 1);
  const auto path = path_start == std::string_view::npos
                        ? std::string_view{}
                        : line.substr(path_start + 1, path_end - path_start - 1);

  sockaddr_in6 local{};
  socklen_t length = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  std::array<char, INET6_ADDRSTRLEN> text{};
  ::inet_ntop(AF_INET6, &local.sin6_addr, text.data(), text.size());

  if (path == "/who") {
    respond(fd, "200 OK", name + " " + text.data() + "\n");
  } else if (path.starts_with("/stream?bytes=")) {
    stream(fd, std::strtoull(std::string{path.substr(14)}.c_str(), nullptr, 10));
  } else if (path == "/wait-half") {
    std::unique_lock lock{mutex};
    const bool ok = changed.wait_for(lock, 30s, [] { return halves > 0; });
    if (ok) --halves;
    lock.unlock();
    respond(fd, ok ? "200 OK" : "504 Gateway Timeout", ok ? "half\n" : "no stream\n");
  } else if (path == "/resume") {
    {
      std::lock_guard lock{mutex};
      ++resumes;
    }
    changed.notify_all();
    respond(fd, "200 OK", "resumed\n");
  } else {
    respond(fd, "404 Not Found", "unknown\n");
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int ready_fd = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--name") name = argv[i + 1];
    if (flag == "--port") port = std::atoi(argv[i + 1]);
    if (flag == "--ready-fd") ready_fd = std::atoi(argv[i + 1]);
  }
  ::signal(SIGPIPE, SIG_IGN);
  const int listener = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in6 address{};
  address.sin6_family = AF_INET6;
  address.sin6_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener, 4096) != 0) {
    std::perror("anycast_service: bind/listen");
    return 1;
  }
  if (ready_fd >= 0) {
    (void)!::write(ready_fd, "READY\n", 6);
    ::close(ready_fd);
  }
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread{serve, fd}.detach();
  }
}
