// getrandom(2) until the span is full (random.hpp).
#include "platform/random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace platform {

void random_bytes(std::span<std::uint8_t> out) noexcept {
  std::size_t done = 0;
  while (done < out.size()) {
    const auto got = ::getrandom(out.data() + done, out.size() - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::abort();
    }
    done += static_cast<std::size_t>(got);
  }
}

}  // namespace platform
