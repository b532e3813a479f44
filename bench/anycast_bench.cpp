// Timing loops for bench/anycast_bench.sh (docs/benchmarks.md, "Anycast resolving"):
//
//   bench_anycast resolve --query SOCK --control SOCK --address A --count N
//       N times: empty anycast-resolver's cache (POST /cache/flush), then time one blocking
//       question for A on the query socket (what the preload library asks on a miss).
//   bench_anycast connect --address A --port P --count N [--flush CONTROL]
//       N times: time socket() + a blocking TCP connect() to [A]:P, then close. Run it plain or
//       under libanycast-preload.so; with --flush the resolver's cache is emptied before each.
//
// Prints one line: "<mode> n=N ok=K p50_us=X p99_us=Y" (after one untimed warm-up round).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "anycast/query.hpp"
#include "core/address.hpp"
#include "platform/control.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string mode;
  std::string query;
  std::string control;
  std::string flush;
  std::string address;
  std::uint16_t port = 0;
  int count = 100;
};

bool flush(const std::string& control) {
  auto r =
      platform::ControlClient{control}.request(platform::Method::Post, "/cache/flush", nullptr);
  return r && r->status == 200;
}

bool resolve_once(const std::string& socket_path, const core::Ipv6Address& address) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::copy(socket_path.begin(), socket_path.end(), sa.sun_path);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    anycast::query::Request request;
    request.flags = anycast::query::kFlagMayWait;
    request.wait_ms = 2000;
    request.address = address.bytes();
    const auto bytes = anycast::query::encode(request);
    std::array<std::uint8_t, 64> buffer{};
    if (::send(fd, bytes.data(), bytes.size(), 0) > 0) {
      const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
      const auto answer =
          n > 0 ? anycast::query::parse_answer(std::span{buffer}.first(static_cast<std::size_t>(n)))
                : std::nullopt;
      ok = answer && answer->status == anycast::query::Status::Unicast;
    }
  }
  ::close(fd);
  return ok;
}

bool connect_once(const core::Ipv6Address& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  const auto& b = address.bytes();
  std::copy(b.begin(), b.end(), sa.sin6_addr.s6_addr);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (argc > 1) a.mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--query")
      a.query = value;
    else if (flag == "--control")
      a.control = value;
    else if (flag == "--flush")
      a.flush = value;
    else if (flag == "--address")
      a.address = value;
    else if (flag == "--port")
      a.port = static_cast<std::uint16_t>(std::stoi(value));
    else if (flag == "--count")
      a.count = std::stoi(value);
  }
  const auto address = core::Ipv6Address::parse(a.address);
  if (!address || (a.mode != "resolve" && a.mode != "connect")) {
    std::fprintf(stderr, "usage: bench_anycast resolve|connect --address A ...\n");
    return 64;
  }
  std::vector<double> micros;
  int ok = 0;
  // One untimed round first: neighbour discovery on the path and the first connection to the
  // resolver belong to no steady-state figure.
  for (int i = -1; i < a.count; ++i) {
    if (a.mode == "resolve" && !flush(a.control)) return 2;
    if (a.mode == "connect" && !a.flush.empty() && !flush(a.flush)) return 2;
    const auto start = Clock::now();
    const bool good =
        a.mode == "resolve" ? resolve_once(a.query, *address) : connect_once(*address, a.port);
    const auto end = Clock::now();
    if (i < 0 || !good) continue;
    ++ok;
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  fmt::print("{} n={} ok={} p50_us={:.1f} p99_us={:.1f}\n", a.mode, a.count, ok,
             percentile(micros, 0.5), percentile(micros, 0.99));
  return ok == a.count ? 0 : 1;
}
