// libFuzzer target: the relay's stream framer (relay/stream_framer.hpp) on a hostile TCP stream.
// Invariants: the stream fed whole, cut at a fuzzer-chosen offset, or fed one byte at a time
// gives the same frames and the same error; every frame is 1..max_frame bytes and the frames
// with their headers are exactly the start of the stream; after a drain the framer holds at most
// one partial frame and its header; an error names the header that caused it.
//
// Input: byte 0 picks the split point (scaled to the input), byte 1 max_frame (1..4081, so that
// FrameTooLong is reachable); the rest is the stream. Inputs are at most 4096 bytes (-max_len),
// far below max_buffered(), so NoSpace never happens and the result depends on the content alone.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/bytes.hpp"
#include "relay/stream_framer.hpp"

#include "fuzz_check.hpp"

namespace {

struct Cut {
  std::vector<std::vector<std::byte>> frames;
  boost::system::error_code error;
  bool operator==(const Cut&) const = default;
};

void drain(relay::StreamFramer& f, Cut& out, std::size_t max_frame) {
  while (auto frame = f.next()) {
    FUZZ_CHECK(!frame->empty() && frame->size() <= max_frame);
    out.frames.emplace_back(frame->begin(), frame->end());
  }
  out.error = f.error();
  FUZZ_CHECK(f.buffered() <= max_frame + 1);
  FUZZ_CHECK(!out.error || f.buffered() == 0);
}

// Feeds `stream` cut at the given ascending offsets, draining after each piece.
Cut cut(fuzz::Bytes stream, const std::vector<std::size_t>& at, std::size_t max_frame) {
  relay::StreamFramer f{max_frame};
  Cut out;
  std::size_t from = 0;
  for (auto to : at) {
    f.feed(stream.subspan(from, to - from));
    drain(f, out, max_frame);
    from = to;
  }
  f.feed(stream.subspan(from));
  drain(f, out, max_frame);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto all = std::as_bytes(std::span{data, size});
  const auto stream = all.subspan(2);
  const std::size_t at = stream.size() * std::to_integer<std::size_t>(all[0]) / 255;
  const std::size_t max_frame = 1 + std::to_integer<std::size_t>(all[1]) * 16;

  const auto whole = cut(stream, {}, max_frame);
  FUZZ_CHECK(cut(stream, {at}, max_frame) == whole);
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  FUZZ_CHECK(cut(stream, every, max_frame) == whole);

  // The frames are the stream's own bytes, each after its header.
  std::size_t pos = 0;
  for (const auto& frame : whole.frames) {
    FUZZ_CHECK(core::load_be16(stream.subspan(pos)) == frame.size());
    FUZZ_CHECK(fuzz::same(stream.subspan(pos + relay::kFrameHeader, frame.size()), frame));
    pos += relay::kFrameHeader + frame.size();
  }
  const auto rest = stream.subspan(pos);
  if (!whole.error) {
    // What is left is an incomplete frame.
    FUZZ_CHECK(rest.size() < relay::kFrameHeader ||
               rest.size() < relay::kFrameHeader + core::load_be16(rest));
    return 0;
  }
  FUZZ_CHECK(rest.size() >= relay::kFrameHeader);
  const std::size_t length = core::load_be16(rest);
  FUZZ_CHECK(whole.error == (length == 0 ? relay::Errc::BadField : relay::Errc::FrameTooLong));
  FUZZ_CHECK(length == 0 || length > max_frame);
  return 0;
}
