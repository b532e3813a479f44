// An owned file descriptor: closed on destruction, move-only.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace platform {

// Raises the soft limit on open descriptors to the hard limit, at most `at_most`: a daemon or
// tool holding one socket per peer should be limited by its own configuration, not by the usual
// soft 1024. Best effort: a failure leaves the limit as it was.
void raise_descriptor_limit(std::size_t at_most = 65536) noexcept;

// The daemons' readiness signal (--ready-fd N): writes "READY\n" to fd and closes it, once
// every listener, device and socket the daemon promises is up. Best effort: a supervisor that
// went away must not stop the daemon.
void notify_ready(int fd) noexcept;
// The value of a --ready-fd argument: a decimal descriptor number >= 0, nothing else.
std::optional<int> parse_descriptor(std::string_view text) noexcept;

// Owns one fd (or none: -1). Not thread-safe; the fd itself may be used from any thread.
class Fd {
 public:
  Fd() noexcept = default;
  // Takes ownership of fd (which may be -1).
  explicit Fd(int fd) noexcept : fd_{fd} {}
  Fd(Fd&& other) noexcept : fd_{other.release()} {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  // Gives up ownership (e.g. to an asio::posix::stream_descriptor) and returns the fd.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the owned fd, if any, and owns fd instead. close() errors are ignored: the fd is
  // released either way and there is nothing useful to retry.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace platform
