// Tests for platform/fd.hpp: ownership, move, release, close on destruction.
#include "platform/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cerrno>

namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

std::array<int, 2> make_pipe() {
  std::array<int, 2> fds{-1, -1};
  REQUIRE(::pipe2(fds.data(), O_CLOEXEC) == 0);
  return fds;
}

}  // namespace

TEST_CASE("fd: closes what it owns when destroyed", "[fd]") {
  const auto [r, w] = make_pipe();
  {
    platform::Fd a{r};
    platform::Fd b{w};
    CHECK(a.valid());
    CHECK(a.get() == r);
  }
  CHECK_FALSE(is_open(r));
  CHECK_FALSE(is_open(w));
}

TEST_CASE("fd: a default fd owns nothing", "[fd]") {
  platform::Fd none;
  CHECK_FALSE(none.valid());
  CHECK_FALSE(static_cast<bool>(none));
  CHECK(none.get() == -1);
}

TEST_CASE("fd: moving transfers ownership exactly once", "[fd]") {
  const auto [r, w] = make_pipe();
  platform::Fd keep_w{w};
  platform::Fd a{r};
  platform::Fd b{std::move(a)};
  CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(b.get() == r);
  platform::Fd c;
  c = std::move(b);
  CHECK(c.get() == r);
  CHECK(is_open(r));
  c = platform::Fd{};  // assigning closes the old one
  CHECK_FALSE(is_open(r));
}

TEST_CASE("fd: release gives the fd up without closing it", "[fd]") {
  const auto [r, w] = make_pipe();
  platform::Fd keep_w{w};
  int raw = -1;
  {
    platform::Fd a{r};
    raw = a.release();
    CHECK_FALSE(a.valid());
  }
  CHECK(raw == r);
  CHECK(is_open(r));
  platform::Fd{raw};  // closes it
  CHECK_FALSE(is_open(r));
}

TEST_CASE("fd: reset closes the old fd and owns the new one", "[fd]") {
  const auto [r, w] = make_pipe();
  platform::Fd a{r};
  a.reset(w);
  CHECK_FALSE(is_open(r));
  CHECK(a.get() == w);
  a.reset();
  CHECK_FALSE(is_open(w));
}

TEST_CASE("parse_descriptor takes a plain decimal number and nothing else", "[platform][fd]") {
  CHECK(platform::parse_descriptor("3") == 3);
  CHECK(platform::parse_descriptor("0") == 0);
  CHECK_FALSE(platform::parse_descriptor(""));
  CHECK_FALSE(platform::parse_descriptor("-1"));
  CHECK_FALSE(platform::parse_descriptor("3x"));
  CHECK_FALSE(platform::parse_descriptor(" 3"));
  CHECK_FALSE(platform::parse_descriptor("99999999999"));
}

TEST_CASE("notify_ready writes READY and closes the descriptor", "[platform][fd]") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  platform::Fd read_end{p[0]};
  platform::notify_ready(p[1]);
  char buffer[16] = {};
  CHECK(::read(read_end.get(), buffer, sizeof buffer) == 6);
  CHECK(std::string_view{buffer, 6} == "READY\n");
  CHECK(::read(read_end.get(), buffer, sizeof buffer) == 0);  // the write end is closed
}
