// Stream framer: lines, Content-length messages, gogoc's trailing NUL, redirect XML.
#include "tsp/framer.hpp"

#include <variant>

#include "text.hpp"
#include "tsp/status.hpp"

namespace tsp {
namespace {

constexpr std::string_view kContentLength = "Content-length:";
constexpr std::string_view kTunnelEnd = "</tunnel>";

// The value of a Content-length header line: optional blanks, digits, optional blanks.
std::variant<std::size_t, Errc> parse_content_length(std::string_view value, std::size_t max_body) {
  auto v = value;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return Errc::BadContentLength;
  for (char c : v)
    if (!detail::is_digit(c)) return Errc::BadContentLength;  // sign, hex, text
  // All digits: anything above max_body (or too long to represent) is too large.
  const auto n = detail::parse_decimal(v, max_body);
  if (!n) return Errc::BodyTooLarge;
  return static_cast<std::size_t>(*n);
}

// A 1xxx status line: four digits starting with 1, then a space or the end.
bool is_redirect_line(std::string_view line) {
  if (line.size() < 4 || line[0] != '1') return false;
  auto status = parse_status_line(line);
  return status && status->is_redirect();
}

}  // namespace

Result<void> StreamFramer::feed(core::Bytes data) {
  if (error_) return *error_;
  if (data.size() > limits_.max_buffered - buffered()) {
    error_ = Errc::BufferOverflow;
    return *error_;
  }
  // Drop the consumed prefix before growing, so the buffer stays within max_buffered.
  if (pos_ > 0 && (pos_ >= buf_.size() / 2 || buf_.size() + data.size() > limits_.max_buffered)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.reserve(buf_.size() + data.size());
  for (auto b : data) buf_.push_back(static_cast<char>(b));
  return {};
}

bool StreamFramer::at_boundary() const noexcept {
  return !error_ && mode_ == Mode::Header && buffered() == 0 && skip_crlf_ == 0;
}

Result<std::optional<Frame>> StreamFramer::fail(Errc e) {
  error_ = e;
  return e;
}

Result<std::optional<Frame>> StreamFramer::next() {
  if (error_) return *error_;
  // Optional trailers that belong to the previous frame.
  if (skip_nul_ && buffered() > 0) {
    if (buf_[pos_] == '\0') consume(1);
    skip_nul_ = false;
  }
  while (skip_crlf_ > 0 && buffered() > 0) {
    const char c = buf_[pos_];
    if (skip_crlf_ == 2 && c == '\r') {
      consume(1);
      skip_crlf_ = 1;
    } else if (c == '\n') {
      consume(1);
      skip_crlf_ = 0;
    } else {
      skip_crlf_ = 0;
    }
  }

  switch (mode_) {
    case Mode::Header:
      return next_header();
    case Mode::Body: {
      if (buffered() < body_length_) return std::optional<Frame>{};
      Frame f{FrameKind::Body, buf_.substr(pos_, body_length_)};
      consume(body_length_);
      mode_ = Mode::Header;
      scanned_ = 0;
      return std::optional<Frame>{std::move(f)};
    }
    case Mode::RedirectXml: {
      const auto view = std::string_view{buf_}.substr(pos_);
      const auto from = scanned_ >= kTunnelEnd.size() ? scanned_ - kTunnelEnd.size() : 0;
      const auto end = view.find(kTunnelEnd, from);
      if (end == std::string_view::npos) {
        scanned_ = view.size();
        if (view.size() + redirect_line_.size() > limits_.max_body) return fail(Errc::BodyTooLarge);
        return std::optional<Frame>{};
      }
      const auto xml_size = end + kTunnelEnd.size();
      if (xml_size + redirect_line_.size() > limits_.max_body) return fail(Errc::BodyTooLarge);
      Frame f{FrameKind::Body, redirect_line_ + "\r\n" + std::string{view.substr(0, xml_size)}};
      consume(xml_size);
      redirect_line_.clear();
      mode_ = Mode::Header;
      scanned_ = 0;
      skip_crlf_ = 2;
      return std::optional<Frame>{std::move(f)};
    }
  }
  return std::optional<Frame>{};
}

Result<std::optional<Frame>> StreamFramer::next_header() {
  const auto view = std::string_view{buf_}.substr(pos_);
  const auto lf = view.find('\n', scanned_);
  if (lf == std::string_view::npos) {
    scanned_ = view.size();
    // max_line content + a CR that may still be followed by LF.
    if (view.size() > limits_.max_line + 1) return fail(Errc::LineTooLong);
    return std::optional<Frame>{};
  }
  auto line = view.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > limits_.max_line) return fail(Errc::LineTooLong);
  scanned_ = 0;

  if (detail::istarts_with(line, kContentLength)) {
    auto n = parse_content_length(line.substr(kContentLength.size()), limits_.max_body);
    if (const auto* e = std::get_if<Errc>(&n)) return fail(*e);
    consume(lf + 1);
    mode_ = Mode::Body;
    body_length_ = std::get<std::size_t>(n);
    return next();
  }

  Frame f{FrameKind::Line, std::string{line}};
  consume(lf + 1);
  if (role_ == FramerRole::Server && detail::istarts_with(f.data, "AUTHENTICATE")) {
    skip_nul_ = true;
  } else if (role_ == FramerRole::Client && is_redirect_line(f.data)) {
    redirect_line_ = std::move(f.data);
    mode_ = Mode::RedirectXml;
    return next();
  }
  return std::optional<Frame>{std::move(f)};
}

}  // namespace tsp
