// SATP over a byte stream (the TCP transport and the cluster channel): each frame is a 2-byte
// big-endian length followed by that many bytes (one SATP packet). The framer cuts a stream
// into frames with a bound on frame size and on buffered bytes; errors are sticky.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "relay/error.hpp"

namespace relay {

inline constexpr std::size_t kFrameHeader = 2;
// The most a 2-byte length can say.
inline constexpr std::size_t kMaxFrameLength = 65535;
// The most bytes one feed() should bring (one socket read's worth); see StreamFramer.
inline constexpr std::size_t kMaxFeed = 65536;

// Writes the 2-byte length of `frame_size` into out[0..2). Precondition: frame_size <= 65535 and
// out.size() >= 2.
void write_frame_header(std::size_t frame_size, core::MutableBytes out) noexcept;

// Use: feed() what one read returned, then call next() until it returns nullopt. Drained that
// way, the framer holds at most one partial frame and its header (max_frame + 1 bytes) between
// reads, and max_frame + kFrameHeader + kMaxFeed while a read is being cut. That is also the hard
// bound (max_buffered()): a feed() that would hold more unconsumed bytes (a read larger than
// kMaxFeed, or feeding without draining) is NoSpace and appends nothing.
//
// Errors, sticky (the stream has no resynchronisation point; the caller closes it), reported by
// next() as soon as the offending frame's header is in, after the frames before it:
//   BadField      a frame of length 0
//   FrameTooLong  a frame longer than max_frame
//   NoSpace       see above
// After an error feed() and next() do nothing and the framer holds no bytes.
class StreamFramer {
 public:
  // max_frame above kMaxFrameLength means kMaxFrameLength (no header can say more).
  explicit StreamFramer(std::size_t max_frame = 1600);

  // Appends received bytes (see above for the bound).
  void feed(core::Bytes bytes);
  // The next complete frame, nullopt when none is complete yet (check error() then). A view
  // valid until the next feed(): the frames of one read can all be used until then (opened in
  // place, queued for a batched write).
  std::optional<core::MutableBytes> next() noexcept;
  const boost::system::error_code& error() const noexcept { return error_; }
  // Unconsumed bytes held.
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }
  std::size_t max_buffered() const noexcept { return max_frame_ + kFrameHeader + kMaxFeed; }

 private:
  void fail(Errc e) noexcept;

  std::size_t max_frame_;
  std::vector<std::byte> buffer_;
  std::size_t start_ = 0;  // first unconsumed byte of buffer_
  boost::system::error_code error_;
};

}  // namespace relay
