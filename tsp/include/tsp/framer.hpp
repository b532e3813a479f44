// TCP stream framing for TSP: line phases and Content-length messages (tsp-wire.md 3, 3.1).
//
//   line      = *(any byte but LF) [CR] LF          VERSION, CAPABILITY, AUTHENTICATE, SASL
//                                                  data, status lines
//   message   = "Content-length:" *SP n *SP [CR] LF  n bytes
//
// The n bytes after the Content-length line include everything up to and including the final
// CRLF; in replies the status line is part of them. The framer only cuts frames: it does not
// interpret them. Limits are built in: a line longer than max_line, a Content-length above
// max_body, or more than max_buffered unconsumed bytes is an error, reported before anything is
// allocated for it. Errors are sticky: the stream cannot be resynchronised, the caller closes it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "core/bytes.hpp"
#include "tsp/error.hpp"

namespace tsp {

struct FramerLimits {
  std::size_t max_line = 2048;       // bytes of one line, line end excluded
  std::size_t max_body = 8192;       // largest acceptable Content-length
  std::size_t max_buffered = 65536;  // unconsumed bytes held at once (pipelined messages)
};

// Which side reads: the server tolerates gogoc's NUL after AUTHENTICATE lines; the client knows
// that a 1xxx redirect status line outside Content-length framing is followed by the broker XML.
enum class FramerRole { Server, Client };

enum class FrameKind {
  Line,  // data: the line without CR LF
  Body,  // data: the Content-length bytes, or a redirect status line + CRLF + its XML
};

struct Frame {
  FrameKind kind = FrameKind::Line;
  std::string data;
  bool operator==(const Frame&) const = default;
};

class StreamFramer {
 public:
  explicit StreamFramer(FramerRole role, FramerLimits limits = {}) noexcept
      : role_{role}, limits_{limits} {}

  // Appends received bytes. BufferOverflow (sticky) if the unconsumed bytes would exceed
  // max_buffered; nothing is appended then.
  Result<void> feed(core::Bytes data);
  // Cuts the next complete frame: nullopt when more bytes are needed, an error when the stream
  // is broken (sticky; the same error on every later call).
  Result<std::optional<Frame>> next();

  // Unconsumed bytes.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  // True between frames: no partial frame is held and no optional trailer is awaited.
  bool at_boundary() const noexcept;
  bool failed() const noexcept { return error_.has_value(); }

 private:
  enum class Mode { Header, Body, RedirectXml };

  Result<std::optional<Frame>> next_header();
  Result<std::optional<Frame>> fail(Errc e);
  void consume(std::size_t n) noexcept { pos_ += n; }

  FramerRole role_;
  FramerLimits limits_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::size_t scanned_ = 0;  // bytes after pos_ already searched for the terminator
  Mode mode_ = Mode::Header;
  std::size_t body_length_ = 0;
  std::string redirect_line_;
  bool skip_nul_ = false;  // one NUL may follow an AUTHENTICATE line (gogoc, server side)
  int skip_crlf_ = 0;      // 2: CR or LF may follow the redirect XML, 1: LF may follow
  std::optional<Errc> error_;
};

}  // namespace tsp
