// Tests of libanycast-preload.so: probe_app (an ordinary program) runs under LD_PRELOAD against a
// small resolver that speaks query.hpp on a real Unix SOCK_SEQPACKET socket, a TCP listener and
// a UDP echo on ::1. The "anycast" addresses are 2001:db8::/32 addresses the resolver maps to
// ::1, so a call that reaches the listener or the echo was rewritten. Calls that go out as they
// are use UDP connect (nothing leaves the host); their errno is compared with the same call made
// as a raw system call, out of the library's sight (see probe_app.cpp for the EDOM sentinel).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "anycast/query.hpp"
#include "support/daemon_process.hpp"

extern char** environ;

namespace {

namespace q = anycast::query;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

q::Address address(std::string_view text) {
  q::Address a{};
  const std::string s{text};
  REQUIRE(::inet_pton(AF_INET6, s.c_str(), a.data()) == 1);
  return a;
}

q::Answer unicast(std::string_view to, std::uint32_t ttl_ms = 60000) {
  return {q::Status::Unicast, ttl_ms, address(to)};
}
q::Answer with_status(q::Status status, std::uint32_t ttl_ms = 0) {
  return {status, ttl_ms, {}};
}

std::uint16_t local_port(int fd) {
  sockaddr_in6 sa{};
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  return ntohs(sa.sin6_port);
}

int loopback_socket(int type) {
  const int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

// A pipe whose write end wakes a thread blocked in poll.
struct StopPipe {
  StopPipe() { REQUIRE(::pipe2(fds.data(), O_CLOEXEC) == 0); }
  ~StopPipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void stop() { REQUIRE(::write(fds[1], "x", 1) == 1); }
  int wait_fd() const { return fds[0]; }
  std::array<int, 2> fds{};
};

// The resolver's side of query.hpp: answers from a script per address (the last answer
// repeats; unknown addresses get PassThrough with ttl 0), no answer to Failed, Refused to
// malformed requests. Records every request with its connection and the peer's pid.
class FakeResolver {
 public:
  struct Seen {
    q::Request request;
    int connection = 0;
    pid_t pid = 0;
    int closed_before = 0;  // connections the library had closed when this request came
  };

  explicit FakeResolver(std::filesystem::path path) : path_(std::move(path)) {
    listener_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const std::string p = path_.string();
    REQUIRE(p.size() < sizeof sa.sun_path);
    std::copy(p.begin(), p.end(), sa.sun_path);
    // Bound and listening before any probe starts: the readiness the probes rely on.
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(listener_, 64) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeResolver() {
    stop_.stop();
    thread_.join();
    for (const auto& c : connections_) ::close(c.fd);
    ::close(listener_);
  }
  FakeResolver(const FakeResolver&) = delete;
  FakeResolver& operator=(const FakeResolver&) = delete;

  const std::filesystem::path& path() const { return path_; }

  void answer(std::string_view to, std::vector<q::Answer> answers) {
    const std::lock_guard lock{mutex_};
    scripts_[address(to)] = std::deque<q::Answer>(answers.begin(), answers.end());
  }
  // Requests for this address get no answer at all.
  void stay_silent(std::string_view to) {
    const std::lock_guard lock{mutex_};
    silent_.insert(address(to));
  }
  // Requests for this address get 24 bytes that are no answer.
  void garble(std::string_view to) {
    const std::lock_guard lock{mutex_};
    garbled_.insert(address(to));
  }
  // Nothing is answered until this many Resolve requests wait; then all of them are.
  void hold_until(std::size_t count) {
    const std::lock_guard lock{mutex_};
    hold_until_ = count;
  }
  // Every connection is closed right after its first answer.
  void close_after_answer() {
    const std::lock_guard lock{mutex_};
    close_after_answer_ = true;
  }

  std::vector<Seen> seen() const {
    const std::lock_guard lock{mutex_};
    return seen_;
  }
  bool wait_for_requests(std::size_t count) {
    std::unique_lock lock{mutex_};
    return changed_.wait_for(lock, kDeadline, [&] { return seen_.size() >= count; });
  }

 private:
  struct Connection {
    int fd;
    int id;
    pid_t pid;
  };

  void run() {
    for (;;) {
      std::vector<pollfd> fds{{stop_.wait_fd(), POLLIN, 0}, {listener_, POLLIN, 0}};
      for (const auto& c : connections_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) return;
      if (fds[1].revents != 0) accept_one();
      std::vector<int> closed;
      for (std::size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0 && !serve(connections_[i - 2])) closed.push_back(fds[i].fd);
      }
      for (const int fd : closed) {
        ::close(fd);
        std::erase_if(connections_, [&](const Connection& c) { return c.fd == fd; });
      }
    }
  }

  void accept_one() {
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    connections_.push_back({fd, ++last_id_, cred.pid});
  }

  // False when the connection is to be closed.
  bool serve(const Connection& c) {
    std::array<std::uint8_t, 128> buffer{};
    const ssize_t n = ::recv(c.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) {
      const std::lock_guard lock{mutex_};
      ++peer_closed_;
      return false;
    }
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    const auto request = q::parse_request(std::span{buffer}.first(static_cast<std::size_t>(n)));
    std::unique_lock lock{mutex_};
    if (!request) return send(c, q::encode(with_status(q::Status::Refused)));
    seen_.push_back({*request, c.id, c.pid, peer_closed_});
    changed_.notify_all();
    if (request->op == q::Op::Failed || silent_.contains(request->address)) return true;
    if (garbled_.contains(request->address)) {
      std::array<std::uint8_t, q::kAnswerSize> junk{};
      junk.fill('X');
      return send(c, junk);
    }
    q::Answer answer = with_status(q::Status::PassThrough);
    if (auto it = scripts_.find(request->address); it != scripts_.end() && !it->second.empty()) {
      answer = it->second.front();
      if (it->second.size() > 1) it->second.pop_front();
    }
    if (hold_until_ > 0) {
      held_.push_back({c.fd, q::encode(answer)});
      if (held_.size() < hold_until_) return true;
      for (const auto& [fd, bytes] : held_) ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      held_.clear();
      hold_until_ = 0;
      return true;
    }
    return send(c, q::encode(answer)) && !close_after_answer_;
  }

  template <std::size_t N>
  static bool send(const Connection& c, const std::array<std::uint8_t, N>& bytes) {
    return ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(N);
  }

  std::filesystem::path path_;
  int listener_ = -1;
  StopPipe stop_;
  std::vector<Connection> connections_;  // the thread's own
  int last_id_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<q::Address, std::deque<q::Answer>> scripts_;
  std::set<q::Address> silent_;
  std::set<q::Address> garbled_;
  std::size_t hold_until_ = 0;
  bool close_after_answer_ = false;
  std::vector<std::pair<int, std::array<std::uint8_t, q::kAnswerSize>>> held_;
  std::vector<Seen> seen_;
  int peer_closed_ = 0;
  std::thread thread_;
};

// A TCP listener on [::1]:port that accepts only when asked: the kernel completes the
// handshakes.
struct TcpListener {
  TcpListener() : fd(loopback_socket(SOCK_STREAM | SOCK_NONBLOCK)) {
    REQUIRE(::listen(fd, 128) == 0);
  }
  ~TcpListener() { ::close(fd); }
  // Connections that reached the listener so far (accepted and closed here).
  int accept_all() {
    int count = 0;
    for (;;) {
      const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return count;
      ::close(c);
      ++count;
    }
  }
  std::string port() const { return std::to_string(local_port(fd)); }
  int fd;
};

// A port on ::1 with nothing listening: connects are refused.
struct ClosedPort {
  ClosedPort() : fd(loopback_socket(SOCK_STREAM)) {}
  ~ClosedPort() { ::close(fd); }
  std::string port() const { return std::to_string(local_port(fd)); }
  int fd;
};

// A UDP echo on [::1]:port.
class UdpEcho {
 public:
  UdpEcho() : fd_(loopback_socket(SOCK_DGRAM)) {
    thread_ = std::thread([this] { run(); });
  }
  ~UdpEcho() {
    stop_.stop();
    thread_.join();
    ::close(fd_);
  }
  UdpEcho(const UdpEcho&) = delete;
  UdpEcho& operator=(const UdpEcho&) = delete;
  std::string port() const { return std::to_string(local_port(fd_)); }

 private:
  void run() {
    for (;;) {
      std::array<pollfd, 2> fds{{{stop_.wait_fd(), POLLIN, 0}, {fd_, POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) return;
      std::array<char, 256> data{};
      sockaddr_in6 from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(fd_, data.data(), data.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
      if (n > 0) {
        ::sendto(fd_, data.data(), static_cast<std::size_t>(n), 0,
                 reinterpret_cast<sockaddr*>(&from), len);
      }
    }
  }
  int fd_;
  StopPipe stop_;
  std::thread thread_;
};

// What probe_app printed: lines "word key=value ...".
struct ProbeRun {
  int exit_code = -1;
  std::string out;
  std::string err;

  std::vector<std::map<std::string, std::string>> all(std::string_view word) const {
    std::vector<std::map<std::string, std::string>> found;
    std::istringstream lines{out};
    for (std::string line; std::getline(lines, line);) {
      std::istringstream tokens{line};
      std::string first;
      tokens >> first;
      if (first != word) continue;
      std::map<std::string, std::string> fields;
      for (std::string token; tokens >> token;) {
        const auto eq = token.find('=');
        if (eq != std::string::npos) fields[token.substr(0, eq)] = token.substr(eq + 1);
      }
      found.push_back(std::move(fields));
    }
    return found;
  }
  std::map<std::string, std::string> one(std::string_view word) const {
    auto found = all(word);
    REQUIRE(found.size() == 1);
    return found.front();
  }
  std::vector<std::string> err_lines() const {
    std::vector<std::string> lines;
    std::istringstream in{err};
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
};

// Runs probe_app under LD_PRELOAD with the resolver socket `socket` and more environment
// variables; reads its stdout and stderr to EOF (bounded by kDeadline, then SIGKILL).
ProbeRun run_probe(const std::vector<std::string>& args, const std::string& socket,
                   const std::vector<std::string>& env = {}) {
  std::vector<std::string> environment;
  std::string asan = "ASAN_OPTIONS=verify_asan_link_order=0";
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view var{*e};
    if (var.starts_with("LD_PRELOAD=") || var.starts_with("ANYCAST_")) continue;
    // A sanitizer build preloads an instrumented library after the runtime: allowed here.
    if (var.starts_with("ASAN_OPTIONS=")) {
      asan = std::string{var} + ":verify_asan_link_order=0";
      continue;
    }
    environment.emplace_back(var);
  }
  environment.push_back(asan);
  environment.push_back(std::string{"LD_PRELOAD="} + ANYCAST_PRELOAD_SO);
  environment.push_back(std::string{q::kSocketEnv} + "=" + socket);
  for (const auto& e : env) environment.push_back(e);

  std::vector<std::string> argv_strings{ANYCAST_PRELOAD_PROBE};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::array<int, 2> out{};
  std::array<int, 2> err{};
  REQUIRE(::pipe2(out.data(), O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err.data(), O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);
  ProbeRun run;
  if (spawned != 0 || pid <= 0) {
    ::close(out[0]);
    ::close(err[0]);
    FAIL("posix_spawn: " << std::strerror(spawned));
  }

  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  std::array<pollfd, 2> fds{{{out[0], POLLIN, 0}, {err[0], POLLIN, 0}}};
  std::array<std::string*, 2> sinks{&run.out, &run.err};
  bool late = false;
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      late = true;
      break;
    }
    if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      std::array<char, 4096> chunk{};
      const ssize_t n = ::read(fds[i].fd, chunk.data(), chunk.size());
      if (n > 0) {
        sinks[i]->append(chunk.data(), static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
  }
  for (const auto& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  if (late) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO("stdout:\n" << run.out << "stderr:\n" << run.err);
  REQUIRE_FALSE(late);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  REQUIRE(run.exit_code == 0);
  return run;
}

// The resolver, a listener, a closed port and an echo, all on loopback, for one test.
struct Preload {
  test::TempDir dir;
  FakeResolver resolver{dir / "query.sock"};
  TcpListener listener;
  ClosedPort closed;
  UdpEcho echo;

  ProbeRun run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    return run_probe(args, resolver.path().string(), env);
  }
  std::string tcp() const { return listener.port(); }
  std::string udp() const { return echo.port(); }
};

std::string at(std::string_view addr, const std::string& port) {
  return "[" + std::string{addr} + "]:" + port;
}

}  // namespace

TEST_CASE(
    "preload: a blocking connect reaches the unicast address and getpeername shows the anycast",
    "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:a::1", {unicast("::1")});
  const auto run = p.run({"tcp", "2001:db8:a::1", p.tcp()});
  const auto tcp = run.one("tcp");
  CHECK(tcp.at("rc") == "0");
  // The library's own calls (fcntl, the query) left errno alone.
  CHECK(tcp.at("errno") == "EDOM");
  CHECK(tcp.at("peer") == at("2001:db8:a::1", p.tcp()));
  CHECK(p.listener.accept_all() == 1);
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].request.op == q::Op::Resolve);
  CHECK(seen[0].request.flags == q::kFlagMayWait);
  CHECK(seen[0].request.wait_ms == 300);
  CHECK(seen[0].request.address == address("2001:db8:a::1"));
  CHECK(run.err.empty());
}

TEST_CASE("preload: ANYCAST_PRELOAD_WAIT_MS is the wait of blocking queries", "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:a::1", {unicast("::1")});
  SECTION("a number") {
    const auto run = p.run({"tcp", "2001:db8:a::1", p.tcp()}, {"ANYCAST_PRELOAD_WAIT_MS=120"});
    CHECK(run.one("tcp").at("rc") == "0");
    REQUIRE(p.resolver.seen().size() == 1);
    CHECK(p.resolver.seen()[0].request.wait_ms == 120);
    CHECK(run.err.empty());
  }
  SECTION("not a number: the default, and one line says so") {
    const auto run = p.run({"tcp", "2001:db8:a::1", p.tcp()}, {"ANYCAST_PRELOAD_WAIT_MS=soon"});
    CHECK(run.one("tcp").at("rc") == "0");
    REQUIRE(p.resolver.seen().size() == 1);
    CHECK(p.resolver.seen()[0].request.wait_ms == 300);
    const auto lines = run.err_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].starts_with("anycast-preload: ANYCAST_PRELOAD_WAIT_MS=\"soon\""));
  }
}

TEST_CASE("preload: sendto reaches the unicast address and recvfrom shows the anycast as source",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:a::2", {unicast("::1")});
  const auto run = p.run({"udp-sendto", "2001:db8:a::2", p.udp(), "udp-chk", "2001:db8:a::2",
                          p.udp(), "udp-short", "2001:db8:a::2", p.udp()});
  const auto plain = run.one("udp-sendto");
  CHECK(plain.at("sent") == "4");
  CHECK(plain.at("errno") == "EDOM");
  CHECK(plain.at("data") == "ping");
  CHECK(plain.at("source") == at("2001:db8:a::2", p.udp()));
  // What fortified programs call instead of recvfrom.
  const auto chk = run.one("udp-chk");
  CHECK(chk.at("data") == "ping");
  CHECK(chk.at("source") == at("2001:db8:a::2", p.udp()));
  // A sockaddr too short for IPv6 gets the kernel's treatment: cut, with the full length.
  const auto cut = run.one("udp-short");
  CHECK(cut.at("got") == "4");
  CHECK(cut.at("len") == "28");
  CHECK(cut.at("head") == "20010db8000a0000");
  // One answer, reused from the cache for ttl_ms.
  CHECK(p.resolver.seen().size() == 1);
  CHECK(run.err.empty());
}

TEST_CASE("preload: sendmsg and sendmmsg are rewritten, recvmsg and recvmmsg show the anycast",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:a::3", {unicast("::1")});
  const auto run =
      p.run({"udp-sendmsg", "2001:db8:a::3", p.udp(), "udp-sendmmsg", "2001:db8:a::3", p.udp()});
  const auto msg = run.one("udp-sendmsg");
  CHECK(msg.at("sent") == "4");
  CHECK(msg.at("data") == "ping");
  CHECK(msg.at("source") == at("2001:db8:a::3", p.udp()));
  CHECK(msg.at("name_is_ours") == "1");
  const auto mmsg = run.one("udp-sendmmsg");
  CHECK(mmsg.at("sent") == "2");
  CHECK(mmsg.at("names_back") == "1");
  CHECK(mmsg.at("got") == "2");
  CHECK(mmsg.at("data") == "one,two");
  CHECK(mmsg.at("source") == at("2001:db8:a::3", p.udp()) + "," + at("2001:db8:a::3", p.udp()));
  CHECK(run.err.empty());
}

TEST_CASE("preload: a non-blocking call waits briefly, on Pending it goes out as it is",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:b::1", {with_status(q::Status::Pending), unicast("::1")});
  p.resolver.answer("2001:db8:b::2", {unicast("::1")});
  const auto run = p.run({"udp-connect", "2001:db8:b::1", p.udp(), "nb",  // Pending
                          "tcp-nb", "2001:db8:b::1", p.tcp(), "flag",     // now bound
                          "tcp-nb", "2001:db8:b::2", p.tcp(), "fcntl"});
  // The first went to the address as it is, with the errno the kernel gives that call.
  const auto first = run.one("udp-connect");
  CHECK(first.at("errno") == first.at("ref"));
  if (first.at("rc") == "0") CHECK(first.at("peer") == at("2001:db8:b::1", p.udp()));
  // The next ones were rewritten and kept the non-blocking semantics (EINPROGRESS or done).
  const auto nb = run.all("tcp-nb");
  REQUIRE(nb.size() == 2);
  for (const auto& c : nb) {
    CHECK(((c.at("rc") == "0" && c.at("errno") == "EDOM") || c.at("errno") == "EINPROGRESS"));
    CHECK(c.at("so_error") == "0");
  }
  CHECK(nb[0].at("peer") == at("2001:db8:b::1", p.tcp()));
  CHECK(nb[1].at("peer") == at("2001:db8:b::2", p.tcp()));
  CHECK(p.listener.accept_all() == 2);
  // Each asked with the short non-blocking budget (100 ms), so that a program connecting
  // non-blocking is pinned on its first connection when the resolver is quick enough.
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 3);
  for (const auto& s : seen) {
    CHECK(s.request.flags == q::kFlagMayWait);
    CHECK(s.request.wait_ms == 100);
  }
  const auto lines = run.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "anycast-preload: 2001:db8:b::1 is not resolved yet: using it as it is");
}

TEST_CASE("preload: ANYCAST_PRELOAD_NONBLOCK_WAIT_MS=0 makes non-blocking calls never wait",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:b::2", {unicast("::1")});
  const auto run =
      p.run({"tcp-nb", "2001:db8:b::2", p.tcp(), "fcntl"}, {"ANYCAST_PRELOAD_NONBLOCK_WAIT_MS=0"});
  CHECK(run.one("tcp-nb").at("peer") == at("2001:db8:b::2", p.tcp()));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].request.flags == 0);
  CHECK(seen[0].request.wait_ms == 0);
}

TEST_CASE("preload: IPv4, IPv4-mapped, loopback and short addresses go out without a query",
          "[anycast-preload]") {
  Preload p;
  const auto run = p.run({"udp-connect", "127.0.0.1", p.udp(),               //
                          "udp-connect", "::ffff:127.0.0.1", p.udp(),        //
                          "udp-connect", "2001:db8:f::2", p.udp(), "short",  // 24 bytes
                          "tcp", "::1", p.tcp(),                             //
                          "udp-connect", "2001:db8:f::1", p.udp()});         // a marker
  const auto udp = run.all("udp-connect");
  REQUIRE(udp.size() == 4);
  CHECK(udp[0].at("peer") == "127.0.0.1:" + p.udp());
  CHECK(udp[1].at("peer") == at("::ffff:127.0.0.1", p.udp()));
  CHECK(udp[2].at("errno") == udp[2].at("ref"));
  CHECK(run.one("tcp").at("peer") == at("::1", p.tcp()));
  // Requests of one thread arrive in order, so the marker's is the last one.
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].request.address == address("2001:db8:f::1"));
}

TEST_CASE("preload: without a resolver the call goes out as it is, with one line on stderr",
          "[anycast-preload]") {
  Preload p;
  const std::vector<std::string> twice{"udp-connect", "2001:db8:c::1", p.udp(),
                                       "udp-connect", "2001:db8:c::1", p.udp()};
  const std::string missing = (p.dir / "missing.sock").string();
  SECTION("a line, once") {
    const auto run = run_probe(twice, missing);
    for (const auto& c : run.all("udp-connect")) CHECK(c.at("errno") == c.at("ref"));
    const auto lines = run.err_lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "anycast-preload: resolver " + missing +
                          " unreachable (No such file or directory): using 2001:db8:c::1 as it is");
  }
  SECTION("ANYCAST_PRELOAD_QUIET=1: no line") {
    const auto run = run_probe(twice, missing, {"ANYCAST_PRELOAD_QUIET=1"});
    for (const auto& c : run.all("udp-connect")) CHECK(c.at("errno") == c.at("ref"));
    CHECK(run.err.empty());
  }
}

TEST_CASE("preload: a Refused or malformed answer is failed open", "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:5::1", {with_status(q::Status::Refused)});
  p.resolver.garble("2001:db8:5::2");
  p.resolver.answer("2001:db8:5::3", {unicast("::1", 0)});
  const auto run = p.run({"udp-connect", "2001:db8:5::1", p.udp(),  //
                          "udp-connect", "2001:db8:5::2", p.udp(),  //
                          "udp-connect", "2001:db8:5::3", p.udp()});
  const auto udp = run.all("udp-connect");
  REQUIRE(udp.size() == 3);
  CHECK(udp[0].at("errno") == udp[0].at("ref"));
  if (udp[0].at("rc") == "0") CHECK(udp[0].at("peer") == at("2001:db8:5::1", p.udp()));
  CHECK(udp[1].at("errno") == udp[1].at("ref"));
  if (udp[1].at("rc") == "0") CHECK(udp[1].at("peer") == at("2001:db8:5::2", p.udp()));
  // The malformed answer closed that connection; the next query opened a new one.
  CHECK(udp[2].at("peer") == at("2001:db8:5::3", p.udp()));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].connection == seen[0].connection);
  CHECK(seen[2].connection != seen[1].connection);
  const auto lines = run.err_lines();
  REQUIRE(lines.size() == 2);
  const std::string socket = p.resolver.path().string();
  CHECK(lines[0] == "anycast-preload: resolver " + socket +
                        " refused the query for 2001:db8:5::1: using it as it is");
  CHECK(lines[1] == "anycast-preload: malformed answer from resolver " + socket +
                        ": using 2001:db8:5::2 as it is");
}

TEST_CASE("preload: a resolver that does not answer in time is given up on that connection",
          "[anycast-preload]") {
  Preload p;
  p.resolver.stay_silent("2001:db8:7::1");
  p.resolver.answer("2001:db8:7::2", {unicast("::1")});
  // Blocking, with no wait granted: the library waits only its margin.
  const auto run =
      p.run({"udp-connect", "2001:db8:7::1", p.udp(), "udp-connect", "2001:db8:7::2", p.udp()},
            {"ANYCAST_PRELOAD_WAIT_MS=0"});
  const auto udp = run.all("udp-connect");
  REQUIRE(udp.size() == 2);
  CHECK(udp[0].at("errno") == udp[0].at("ref"));
  CHECK(udp[1].at("peer") == at("2001:db8:7::2", p.udp()));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].request.flags == 0);  // a budget of 0 asks for no wait at all
  CHECK(seen[0].request.wait_ms == 0);
  // A late answer on the old connection can never be taken for the next one.
  CHECK(seen[1].connection != seen[0].connection);
  const auto lines = run.err_lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "anycast-preload: no answer from resolver " + p.resolver.path().string() +
                        " in 50 ms: using 2001:db8:7::1 as it is");
}

TEST_CASE("preload: a connection the resolver closed is replaced without failing open",
          "[anycast-preload]") {
  Preload p;
  p.resolver.close_after_answer();
  p.resolver.answer("2001:db8:8::1", {unicast("::1", 0)});
  const auto run = p.run({"udp-connect", "2001:db8:8::1", p.udp(),  //
                          "udp-connect", "2001:db8:8::1", p.udp(),  //
                          "udp-connect", "2001:db8:8::1", p.udp()});
  for (const auto& c : run.all("udp-connect")) CHECK(c.at("peer") == at("2001:db8:8::1", p.udp()));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].connection != seen[1].connection);
  CHECK(seen[1].connection != seen[2].connection);
  CHECK(run.err.empty());
}

TEST_CASE("preload: eight threads connect at once, each over its own resolver connection",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:d::1", {unicast("::1")});
  // No answer before all eight wait: none of them can take it from the cache, and no lock is
  // held across a query (or the others could not ask).
  p.resolver.hold_until(8);
  p.resolver.answer("2001:db8:d::2", {unicast("::1")});
  const auto run =
      p.run({"threads", "8", "2001:db8:d::1", p.tcp(), "tcp", "2001:db8:d::2", p.tcp()},
            {"ANYCAST_PRELOAD_WAIT_MS=10000"});
  const auto threads = run.all("thread");
  REQUIRE(threads.size() == 8);
  for (const auto& t : threads) {
    CHECK(t.at("rc") == "0");
    CHECK(t.at("errno") == "EDOM");
    CHECK(t.at("peer") == at("2001:db8:d::1", p.tcp()));
  }
  CHECK(p.listener.accept_all() == 9);
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 9);
  std::set<int> connections;
  for (const auto& s : seen) connections.insert(s.connection);
  CHECK(connections.size() == 9);
  // The threads had ended (joined) before the main thread asked: their connections were
  // closed at thread exit, not left open until the process ends.
  CHECK(seen[8].request.address == address("2001:db8:d::2"));
  CHECK(seen[8].closed_before == 8);
  CHECK(run.err.empty());
}

TEST_CASE("preload: a forked child asks over a connection of its own", "[anycast-preload]") {
  Preload p;
  for (const char* a : {"2001:db8:e::1", "2001:db8:e::2", "2001:db8:e::3"})
    p.resolver.answer(a, {unicast("::1")});
  const auto run = p.run({"pid",                            //
                          "tcp", "2001:db8:e::2", p.tcp(),  // the parent's connection opens
                          "fork-tcp", "2001:db8:e::1", p.tcp(), "tcp", "2001:db8:e::3",
                          p.tcp()});  // and still works
  const int parent = std::stoi(run.one("pid").at("pid"));
  const auto child = run.one("child");
  CHECK(child.at("rc") == "0");
  CHECK(child.at("errno") == "EDOM");
  CHECK(child.at("peer") == at("2001:db8:e::1", p.tcp()));
  CHECK(run.one("fork").at("exit") == "0");
  const auto tcp = run.all("tcp");
  REQUIRE(tcp.size() == 2);
  CHECK(tcp[0].at("peer") == at("2001:db8:e::2", p.tcp()));
  CHECK(tcp[1].at("peer") == at("2001:db8:e::3", p.tcp()));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].request.address == address("2001:db8:e::2"));
  CHECK(seen[0].pid == parent);
  CHECK(seen[1].request.address == address("2001:db8:e::1"));
  CHECK(seen[1].pid == std::stoi(child.at("pid")));
  CHECK(seen[1].connection != seen[0].connection);
  CHECK(seen[2].request.address == address("2001:db8:e::3"));
  CHECK(seen[2].connection == seen[0].connection);
  CHECK(run.err.empty());
}

TEST_CASE("preload: a refused connect to the unicast address reports Failed and asks again",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:9::1", {unicast("::1")});
  const auto run =
      p.run({"tcp", "2001:db8:9::1", p.closed.port(), "tcp", "2001:db8:9::1", p.closed.port()});
  for (const auto& c : run.all("tcp")) CHECK(c.at("errno") == "ECONNREFUSED");
  REQUIRE(p.resolver.wait_for_requests(4));
  const auto seen = p.resolver.seen();
  REQUIRE(seen.size() == 4);
  for (const std::size_t i : {0u, 2u}) {
    CHECK(seen[i].request.op == q::Op::Resolve);
    CHECK(seen[i].request.address == address("2001:db8:9::1"));
  }
  for (const std::size_t i : {1u, 3u}) {
    CHECK(seen[i].request.op == q::Op::Failed);
    CHECK(seen[i].request.flags == 0);
    CHECK(seen[i].request.address == address("2001:db8:9::1"));
    CHECK(seen[i].request.unicast == address("::1"));
  }
  CHECK(run.err.empty());
}

TEST_CASE("preload: dup2, dup3 and close keep the per-descriptor table right",
          "[anycast-preload]") {
  Preload p;
  p.resolver.answer("2001:db8:6::1", {unicast("::1")});
  const auto run = p.run({"dup", "2001:db8:6::1", p.tcp()});
  const std::string anycast = at("2001:db8:6::1", p.tcp());
  const std::string direct = at("::1", p.tcp());
  const auto copies = run.one("dup-copies");
  CHECK(copies.at("dup2") == anycast);
  CHECK(copies.at("dup3") == anycast);
  CHECK(run.one("dup-after-close").at("dup2") == anycast);
  CHECK(run.one("dup-replaced").at("dup3") == direct);
  const auto reused = run.one("dup-reused");
  CHECK(reused.at("same_fd") == "1");
  CHECK(reused.at("peer") == direct);
}

TEST_CASE("preload: answers are reused for their ttl_ms", "[anycast-preload]") {
  Preload p;
  const std::vector<std::string> twice{"tcp", "2001:db8:4::1", p.tcp(),
                                       "tcp", "2001:db8:4::1", p.tcp()};
  SECTION("a ttl: one query") {
    p.resolver.answer("2001:db8:4::1", {unicast("::1", 60000)});
    const auto run = p.run(twice);
    for (const auto& c : run.all("tcp")) CHECK(c.at("peer") == at("2001:db8:4::1", p.tcp()));
    CHECK(p.resolver.seen().size() == 1);
  }
  SECTION("ttl 0: a query each time") {
    p.resolver.answer("2001:db8:4::1", {unicast("::1", 0)});
    const auto run = p.run(twice);
    for (const auto& c : run.all("tcp")) CHECK(c.at("peer") == at("2001:db8:4::1", p.tcp()));
    CHECK(p.resolver.seen().size() == 2);
  }
  SECTION("PassThrough is kept too") {
    p.resolver.answer("2001:db8:4::1", {with_status(q::Status::PassThrough, 60000)});
    const auto run =
        p.run({"udp-connect", "2001:db8:4::1", p.udp(), "udp-connect", "2001:db8:4::1", p.udp()});
    for (const auto& c : run.all("udp-connect")) CHECK(c.at("errno") == c.at("ref"));
    CHECK(p.resolver.seen().size() == 1);
  }
}
