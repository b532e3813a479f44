// Running one of the appliance's daemons as a real child process in a test: a private working
// directory, a readiness pipe (--ready-fd), the daemon's stderr kept in a file, and cleanup by
// PID however the test ends. Include as "support/daemon_process.hpp".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace test {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }
  // Writes a file in the directory and returns its path.
  std::filesystem::path write(std::string_view name, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// How a daemon ended.
struct ExitStatus {
  std::optional<int> code;    // exited
  std::optional<int> signal;  // killed by a signal
};

// A daemon started with `--ready-fd 3` appended to argv (fd 3 is the write end of a pipe),
// stdin /dev/null, stdout and stderr appended to `log_file`. The child dies with the test
// (PR_SET_PDEATHSIG) and is SIGKILLed and reaped on destruction if still running.
class DaemonProcess {
 public:
  DaemonProcess(std::vector<std::string> argv, std::filesystem::path log_file);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Waits for "READY\n" on the pipe. False if the daemon exited or closed the pipe first, or
  // the timeout passed.
  bool wait_ready(std::chrono::milliseconds timeout);
  // SIGKILL now and reap.
  ExitStatus kill();
  // SIGTERM, then wait up to `timeout` (SIGKILL after it).
  ExitStatus terminate(std::chrono::milliseconds timeout);
  // Waits for the daemon to exit by itself, up to `timeout` (SIGKILL after it).
  ExitStatus wait(std::chrono::milliseconds timeout);
  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }
  // The log so far (for failure messages).
  std::string log() const;

 private:
  ExitStatus reap(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int ready_ = -1;  // read end of the readiness pipe
  std::filesystem::path log_file_;
};

}  // namespace test
