// Running a helper program from the dashboard (fw-upgrade, the reboot command) without blocking
// its thread: posix_spawn, standard output read line by line on the io_context, a deadline after
// which the child is killed by its PID. Standard input is /dev/null; standard error is
// dstm-web's (the helper's messages land in its log stream).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace web::detail {

inline constexpr std::size_t kMaxChildOutput = 1024 * 1024;  // more is dropped

struct ChildResult {
  int exit_code = -1;  // -1: did not exit by itself (not started, killed at the deadline)
  std::string output;  // standard output, at most kMaxChildOutput bytes
  std::string error;   // why it could not be started, or "timed out"
  std::string last_line() const;  // the last non-empty line of output
};

// argv[0] is the program's absolute path. on_line gets each complete line of output as it
// arrives (without the newline).
boost::asio::awaitable<ChildResult> run_child(std::vector<std::string> argv,
                                              std::chrono::milliseconds timeout,
                                              std::function<void(std::string_view)> on_line = {});

}  // namespace web::detail
