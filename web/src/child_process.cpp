// run_child: posix_spawn with a pipe on standard output, read through an Asio descriptor.
#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

extern char** environ;

namespace web::detail {

namespace asio = boost::asio;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// How often a child that closed its output is checked for having exited.
constexpr std::chrono::milliseconds kReapPoll{20};

}  // namespace

std::string ChildResult::last_line() const {
  auto end = output.find_last_not_of('\n');
  if (end == std::string::npos) return {};
  const auto start = output.rfind('\n', end);
  return output.substr(start == std::string::npos ? 0 : start + 1,
                       start == std::string::npos ? end + 1 : end - start);
}

asio::awaitable<ChildResult> run_child(std::vector<std::string> argv,
                                       std::chrono::milliseconds timeout,
                                       std::function<void(std::string_view)> on_line) {
  ChildResult result;
  auto executor = co_await asio::this_coro::executor;
  if (argv.empty()) {
    result.error = "no program";
    co_return result;
  }
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    result.error = std::string{"pipe: "} + std::strerror(errno);
    co_return result;
  }
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    result.error = argv[0] + ": " + std::strerror(rc);
    co_return result;
  }

  // The deadline kills the child by its PID (only while it has not been reaped), which ends the
  // output and the wait below.
  auto reaped = std::make_shared<bool>(false);
  auto timed_out = std::make_shared<bool>(false);
  asio::steady_timer deadline{executor, timeout};
  deadline.async_wait([pid, reaped, timed_out](boost::system::error_code ec) {
    if (ec || *reaped) return;
    *timed_out = true;
    ::kill(pid, SIGKILL);
  });

  asio::posix::stream_descriptor reader{executor, out[0]};
  std::array<char, 4096> buffer{};
  std::string pending;
  for (;;) {
    auto [ec, n] = co_await reader.async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec) break;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = buffer[i];
      if (result.output.size() < kMaxChildOutput) result.output.push_back(c);
      if (c != '\n') {
        if (pending.size() < kMaxChildOutput) pending.push_back(c);
        continue;
      }
      if (on_line) on_line(pending);
      pending.clear();
    }
  }
  if (!pending.empty() && on_line) on_line(pending);

  // Output closed: the child is exiting (or closed it and goes on: the deadline still applies).
  asio::steady_timer poll{executor};
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    poll.expires_after(kReapPoll);
    co_await poll.async_wait(kNoThrow);
  }
  *reaped = true;
  deadline.cancel();
  if (WIFEXITED(status) && !*timed_out) result.exit_code = WEXITSTATUS(status);
  if (*timed_out) result.error = "timed out";
  co_return result;
}

}  // namespace web::detail
