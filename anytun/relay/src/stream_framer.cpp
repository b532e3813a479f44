// Length-prefixed framing of SATP packets over a byte stream: a growable buffer compacted on
// every feed, frames handed out as views into it.
#include "relay/stream_framer.hpp"

#include <algorithm>
#include <cassert>
#include <cstddef>

namespace relay {

void write_frame_header(std::size_t frame_size, core::MutableBytes out) noexcept {
  assert(frame_size <= kMaxFrameLength && out.size() >= kFrameHeader);
  core::store_be16(out, static_cast<std::uint16_t>(frame_size));
}

StreamFramer::StreamFramer(std::size_t max_frame)
    : max_frame_{std::min(max_frame, kMaxFrameLength)} {}

void StreamFramer::feed(core::Bytes bytes) {
  if (error_) return;
  if (bytes.size() > max_buffered() - buffered()) {
    fail(Errc::NoSpace);
    return;
  }
  // Drop what next() consumed before growing: the views it handed out end here anyway, and the
  // buffer then never holds more than max_buffered() bytes.
  if (start_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  // Grow geometrically, but never past the bound (vector's own growth could double it).
  if (const auto needed = buffer_.size() + bytes.size(); needed > buffer_.capacity())
    buffer_.reserve(std::min(std::max(needed, 2 * buffer_.capacity()), max_buffered()));
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::optional<core::MutableBytes> StreamFramer::next() noexcept {
  if (error_) return std::nullopt;
  const auto in = core::MutableBytes{buffer_}.subspan(start_);
  if (in.size() < kFrameHeader) return std::nullopt;
  const std::size_t length = core::load_be16(in);
  // Judged on the header alone: a hostile length is refused before its bytes are waited for.
  if (length == 0) {
    fail(Errc::BadField);
    return std::nullopt;
  }
  if (length > max_frame_) {
    fail(Errc::FrameTooLong);
    return std::nullopt;
  }
  if (in.size() - kFrameHeader < length) return std::nullopt;
  start_ += kFrameHeader + length;
  return in.subspan(kFrameHeader, length);
}

void StreamFramer::fail(Errc e) noexcept {
  error_ = e;
  buffer_ = std::vector<std::byte>{};  // gives the memory back
  start_ = 0;
}

}  // namespace relay
