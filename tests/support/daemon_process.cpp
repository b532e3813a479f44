#include "support/daemon_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace test {

namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds{0};
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "appl-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw_errno("mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(std::string_view name, std::string_view content) const {
  const auto file = path_ / name;
  std::ofstream out{file, std::ios::binary | std::ios::trunc};
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
  return file;
}

DaemonProcess::DaemonProcess(std::vector<std::string> argv, std::filesystem::path log_file)
    : log_file_{std::move(log_file)} {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  const int log_fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw_errno("open log");
  argv.emplace_back("--ready-fd");
  argv.emplace_back("3");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0 ||
        ::dup2(pipe_fds[1], 3) < 0)
      ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(pipe_fds[1]);
  ready_ = pipe_fds[0];
  pid_ = pid;
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd_ < 0) {
    const int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid_ = -1;
    throw std::system_error(e, std::generic_category(), "pidfd_open");
  }
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) kill();
  if (pidfd_ >= 0) ::close(pidfd_);
  if (ready_ >= 0) ::close(ready_);
}

bool DaemonProcess::wait_ready(std::chrono::milliseconds timeout) {
  if (ready_ < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string got;
  while (got.find('\n') == std::string::npos) {
    pollfd p{.fd = ready_, .events = POLLIN, .revents = 0};
    const int n = ::poll(&p, 1, static_cast<int>(remaining(deadline).count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    char buf[64];
    const auto r = ::read(ready_, buf, sizeof buf);
    if (r <= 0) return false;  // closed without READY: the daemon failed to start
    got.append(buf, static_cast<std::size_t>(r));
  }
  return got.starts_with("READY");
}

ExitStatus DaemonProcess::reap(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return {};
  pollfd p{.fd = pidfd_, .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    ::kill(pid_, SIGKILL);
    ::poll(&p, 1, -1);
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  ExitStatus s;
  if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

ExitStatus DaemonProcess::kill() {
  if (pid_ <= 0) return {};
  ::kill(pid_, SIGKILL);
  return reap(std::chrono::milliseconds{10'000});
}

ExitStatus DaemonProcess::terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return {};
  ::kill(pid_, SIGTERM);
  return reap(timeout);
}

ExitStatus DaemonProcess::wait(std::chrono::milliseconds timeout) {
  return reap(timeout);
}

std::string DaemonProcess::log() const {
  std::ifstream in{log_file_};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace test
