// Tests for tsp/framer.hpp: lines, Content-length messages, gogoc's NUL, redirects, limits.
#include "tsp/framer.hpp"

#include <catch2/catch.hpp>

#include "tsp_test_util.hpp"

using namespace tsp;
using tsp_test::bytes;

namespace {

Frame line(std::string s) {
  return Frame{FrameKind::Line, std::move(s)};
}
Frame body(std::string s) {
  return Frame{FrameKind::Body, std::move(s)};
}

// Feeds everything, then cuts frames until more input is needed or an error.
std::vector<Frame> frames(StreamFramer& f, std::string_view input,
                          std::optional<Errc>* error = nullptr) {
  std::vector<Frame> out;
  if (auto fed = f.feed(core::as_bytes(input)); !fed) {
    if (error) *error = static_cast<Errc>(fed.error().value());
    return out;
  }
  while (true) {
    auto next = f.next();
    if (!next) {
      if (error) *error = static_cast<Errc>(next.error().value());
      return out;
    }
    if (!*next) return out;
    out.push_back(**next);
  }
}

}  // namespace

TEST_CASE("framer: lines end at LF, an optional CR is removed", "[tsp][framer]") {
  StreamFramer f{FramerRole::Server};
  CHECK(frames(f, "VERSION=2.0.2\r\nAUTHENTICATE PLAIN\nabc") ==
        std::vector{line("VERSION=2.0.2"), line("AUTHENTICATE PLAIN")});
  CHECK_FALSE(f.at_boundary());
  CHECK(frames(f, "\r\n") == std::vector{line("abc")});
  CHECK(f.at_boundary());
}

TEST_CASE("framer: Content-length counts every byte after its line, CRLF included",
          "[tsp][framer]") {
  const std::string accept = "<tunnel action=\"accept\"></tunnel>\r\n";
  REQUIRE(accept.size() == 35);
  StreamFramer f{FramerRole::Server};
  CHECK(frames(f, "Content-length: 35\r\n" + accept) == std::vector{body(accept)});
  CHECK(f.at_boundary());
}

TEST_CASE("framer: the header is matched case-insensitively, blanks around the number",
          "[tsp][framer]") {
  StreamFramer f{FramerRole::Server};
  CHECK(frames(f, "content-LENGTH:\t3 \r\nabcContent-length:0\r\n") ==
        std::vector{body("abc"), body("")});
}

TEST_CASE("framer: the status line is inside a reply's count", "[tsp][framer]") {
  const std::string content = "200 Success\r\n<tunnel action=\"info\"></tunnel>\r\n";
  StreamFramer f{FramerRole::Client};
  CHECK(frames(f, "Content-length: " + std::to_string(content.size()) + "\r\n" + content) ==
        std::vector{body(content)});
}

TEST_CASE("framer: one NUL after an AUTHENTICATE line is dropped (server)", "[tsp][framer]") {
  StreamFramer f{FramerRole::Server};
  // gogoc's PLAIN on TCP: the NUL of the AUTHENTICATE line, then the credentials' own NUL.
  const std::string plain{"AUTHENTICATE PLAIN\r\n\0\0alice\0secret\r\n", 37};
  CHECK(frames(f, plain) ==
        std::vector{line("AUTHENTICATE PLAIN"), line(std::string{"\0alice\0secret", 13})});
  StreamFramer g{FramerRole::Server};
  const std::string anon{"AUTHENTICATE ANONYMOUS\r\n\0Content-length: 0\r\n", 45};
  CHECK(frames(g, anon) == std::vector{line("AUTHENTICATE ANONYMOUS"), body("")});
  // Only after AUTHENTICATE, and only one.
  StreamFramer h{FramerRole::Server};
  CHECK(frames(h, std::string{"VERSION=2.0.2\r\n\0x\r\n", 19}) ==
        std::vector{line("VERSION=2.0.2"), line(std::string{"\0x", 2})});
}

TEST_CASE("framer: a redirect line outside framing carries its XML (client)", "[tsp][framer]") {
  const std::string xml =
      "<tunnel action=\"info\" type=\"*\"><broker><address type=\"ipv4\">192.0.2.9</address>"
      "</broker></tunnel>";
  StreamFramer f{FramerRole::Client};
  CHECK(frames(f, "1302 Unsupported client version\r\n" + xml + "\r\n200 Success\r\n") ==
        std::vector{body("1302 Unsupported client version\r\n" + xml), line("200 Success")});
  // A server does not treat such a line specially.
  StreamFramer g{FramerRole::Server};
  CHECK(frames(g, "1302 x\r\n") == std::vector{line("1302 x")});
}

TEST_CASE("framer: limits are errors before any allocation", "[tsp][framer]") {
  const FramerLimits limits{.max_line = 48, .max_body = 64, .max_buffered = 128};
  struct Case {
    const char* name;
    std::string input;
    Errc error;
  };
  const Case cases[] = {
      {"line over max_line", std::string(49, 'a') + "\r\n", Errc::LineTooLong},
      {"unterminated line over max_line", std::string(50, 'a'), Errc::LineTooLong},
      {"negative length", "Content-length: -1\r\n", Errc::BadContentLength},
      {"hex length", "Content-length: 0x10\r\n", Errc::BadContentLength},
      {"empty length", "Content-length:\r\n", Errc::BadContentLength},
      {"two numbers", "Content-length: 1 2\r\n", Errc::BadContentLength},
      {"length over max_body", "Content-length: 65\r\n", Errc::BodyTooLarge},
      {"huge length", "Content-length: 99999999999999999999999\r\n", Errc::BodyTooLarge},
      {"huge length over a line", "Content-length: " + std::string(40, '9'), Errc::LineTooLong},
      {"more than max_buffered", std::string(129, '\n'), Errc::BufferOverflow},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    StreamFramer f{FramerRole::Server, limits};
    std::optional<Errc> error;
    frames(f, c.input, &error);
    CHECK(error == c.error);
    CHECK(f.failed());
    // Sticky: the stream stays broken.
    CHECK_FALSE(f.next());
    CHECK_FALSE(f.feed(bytes("x")));
  }
}

TEST_CASE("framer: a lying (too large) Content-length waits, it does not allocate",
          "[tsp][framer]") {
  StreamFramer f{FramerRole::Server,
                 FramerLimits{.max_line = 64, .max_body = 100, .max_buffered = 256}};
  CHECK(frames(f, "Content-length: 100\r\n<tunnel/>\r\n").empty());
  CHECK_FALSE(f.failed());
  CHECK_FALSE(f.at_boundary());
  CHECK(f.buffered() == 11);
}

TEST_CASE("framer: a too small Content-length cuts the body short", "[tsp][framer]") {
  StreamFramer f{FramerRole::Server};
  CHECK(frames(f, "Content-length: 10\r\n<tunnel action=\"accept\"></tunnel>\r\n") ==
        std::vector{body("<tunnel ac"), line("tion=\"accept\"></tunnel>")});
}

TEST_CASE("framer: consumed input does not count against max_buffered", "[tsp][framer]") {
  StreamFramer f{FramerRole::Server,
                 FramerLimits{.max_line = 16, .max_body = 64, .max_buffered = 32}};
  for (int i = 0; i < 100; ++i)
    CHECK(frames(f, "0123456789\r\n") == std::vector{line("0123456789")});
}
