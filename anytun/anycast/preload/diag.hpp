// Small helpers of the preload library: errno kept for the application, the monotonic clock,
// IPv6 text and rate-limited stderr lines.
#pragma once

#include <netinet/in.h>

#include <cerrno>
#include <cstdint>

#include "anycast/query.hpp"

namespace anycast::preload {

// Puts errno back on scope exit: around the library's own calls, so that the application sees
// the errno of the real call only.
class SavedErrno {
 public:
  SavedErrno() noexcept : value_(errno) {}
  ~SavedErrno() { errno = value_; }
  SavedErrno(const SavedErrno&) = delete;
  SavedErrno& operator=(const SavedErrno&) = delete;

 private:
  int value_;
};

// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call, no allocation).
std::uint64_t now_ns() noexcept;

// Why a line goes to stderr; each reason is limited on its own.
enum class Reason : std::uint8_t {
  Unreachable,
  Timeout,
  Pending,
  Refused,
  BadAnswer,
  BadSetting,
  Count,
};

// ANYCAST_PRELOAD_QUIET=1: no lines at all. Set once by the initialisation.
void set_quiet(bool quiet) noexcept;

// Writes "anycast-preload: <text>\n" to stderr in one write(2), at most one line per reason per
// second per process. Formats into a stack buffer: no allocation.
void note(Reason reason, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

// An IPv6 address as text, in a buffer that lives as long as the value.
struct AddressText {
  char text[INET6_ADDRSTRLEN];
};
AddressText to_text(const query::Address& address) noexcept;

}  // namespace anycast::preload
