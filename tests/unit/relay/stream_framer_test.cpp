// Tests for relay/stream_framer.hpp: frame headers, frames cut the same at every split of the
// stream, the length limits, sticky errors and the bound on buffered bytes.
#include "relay/stream_framer.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <vector>

#include "support/packet_builder.hpp"

using relay::Errc;
using relay::StreamFramer;
using test::hex;
using Frame = std::vector<std::byte>;

namespace {

// A frame of `size` bytes counting up from `seed`, with its header in front.
Frame framed(std::size_t size, unsigned seed = 0) {
  Frame out(relay::kFrameHeader + size);
  relay::write_frame_header(size, out);
  for (std::size_t i = 0; i < size; ++i)
    out[relay::kFrameHeader + i] = static_cast<std::byte>((seed + i) & 0xff);
  return out;
}

Frame body_of(const Frame& f) {
  return {f.begin() + relay::kFrameHeader, f.end()};
}

Frame concat(const std::vector<Frame>& parts) {
  Frame out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// What a reader sees: the frames, then the error (if any).
struct Cut {
  std::vector<Frame> frames;
  boost::system::error_code error;
  bool operator==(const Cut&) const = default;
};

// Takes every complete frame; the drained framer is checked against its bound.
void drain(StreamFramer& f, Cut& out, std::size_t max_frame) {
  while (auto frame = f.next()) out.frames.emplace_back(frame->begin(), frame->end());
  out.error = f.error();
  CHECK(f.buffered() <= max_frame + 1);
}

// Feeds `stream` cut at the given offsets (ascending), draining after each piece.
Cut cut(core::Bytes stream, const std::vector<std::size_t>& at, std::size_t max_frame = 1600) {
  StreamFramer f{max_frame};
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

TEST_CASE("stream framer: the header is the length as 2 bytes big-endian",
          "[relay][stream_framer]") {
  Frame out(2);
  relay::write_frame_header(0x0102, out);
  CHECK(out == hex("0102"));
  relay::write_frame_header(65535, out);
  CHECK(out == hex("ffff"));
  relay::write_frame_header(1, out);
  CHECK(out == hex("0001"));
}

TEST_CASE("stream framer: frames in one piece come out in order", "[relay][stream_framer]") {
  const auto c = cut(hex("0003 616263  0001 7a  0002 ffff"), {});
  CHECK(c.frames == std::vector<Frame>{hex("616263"), hex("7a"), hex("ffff")});
  CHECK_FALSE(c.error);
}

TEST_CASE("stream framer: a frame is handed out once it is complete", "[relay][stream_framer]") {
  StreamFramer f;
  f.feed(hex("00"));
  CHECK(f.next() == std::nullopt);
  CHECK(f.buffered() == 1);
  f.feed(hex("03 6162"));
  CHECK(f.next() == std::nullopt);
  CHECK(f.buffered() == 4);
  f.feed(hex("63 00"));
  const auto frame = f.next();
  REQUIRE(frame);
  CHECK(Frame(frame->begin(), frame->end()) == hex("616263"));
  CHECK(f.next() == std::nullopt);
  CHECK(f.buffered() == 1);
  CHECK_FALSE(f.error());
}

TEST_CASE("stream framer: a frame can be changed in place", "[relay][stream_framer]") {
  // The caller opens SATP packets where they lie.
  StreamFramer f;
  f.feed(hex("0002 0102 0001 03"));
  auto frame = f.next();
  REQUIRE(frame);
  (*frame)[0] = std::byte{0xaa};
  CHECK(Frame(frame->begin(), frame->end()) == hex("aa02"));
  frame = f.next();
  REQUIRE(frame);
  CHECK(Frame(frame->begin(), frame->end()) == hex("03"));
}

TEST_CASE("stream framer: a stream split at every offset gives the same frames",
          "[relay][stream_framer]") {
  const std::vector<Frame> parts{framed(1), framed(1600, 7), framed(0x100, 1), framed(300, 2),
                                 framed(2, 3)};
  const auto stream = concat(parts);
  std::vector<Frame> expected;
  for (const auto& p : parts) expected.push_back(body_of(p));
  const Cut whole = cut(stream, {});
  REQUIRE(whole.frames == expected);
  REQUIRE_FALSE(whole.error);
  for (std::size_t at = 0; at <= stream.size(); ++at) {
    CAPTURE(at);
    REQUIRE(cut(stream, {at}) == whole);
  }
  // And one byte at a time.
  std::vector<std::size_t> every;
  for (std::size_t at = 1; at < stream.size(); ++at) every.push_back(at);
  CHECK(cut(stream, every) == whole);
}

TEST_CASE("stream framer: a broken stream split at every offset gives the same frames and error",
          "[relay][stream_framer]") {
  struct Case {
    const char* name;
    Frame tail;
    Errc error;
  };
  const auto c = GENERATE(Case{"length 0", hex("0000 616263"), Errc::BadField},
                          Case{"one over max_frame", hex("0641 61"), Errc::FrameTooLong},
                          Case{"the largest length", hex("ffff"), Errc::FrameTooLong});
  CAPTURE(c.name);
  const auto stream = concat({framed(5), framed(1600, 1), c.tail, framed(3)});
  const Cut whole = cut(stream, {});
  REQUIRE(whole.frames == std::vector<Frame>{body_of(framed(5)), body_of(framed(1600, 1))});
  REQUIRE(whole.error == c.error);
  for (std::size_t at = 0; at <= stream.size(); ++at) {
    CAPTURE(at);
    REQUIRE(cut(stream, {at}) == whole);
  }
}

TEST_CASE("stream framer: max_frame is allowed and one more is refused at the header",
          "[relay][stream_framer]") {
  CHECK(cut(framed(100), {}, 100).frames == std::vector<Frame>{body_of(framed(100))});
  StreamFramer f{100};
  // The header alone is enough to refuse: its bytes are not waited for.
  f.feed(hex("0065"));
  CHECK(f.next() == std::nullopt);
  CHECK(f.error() == Errc::FrameTooLong);
}

TEST_CASE("stream framer: max_frame above what 2 bytes can say means 65535",
          "[relay][stream_framer]") {
  StreamFramer f{1'000'000};
  CHECK(f.max_buffered() == relay::kMaxFrameLength + relay::kFrameHeader + relay::kMaxFeed);
  f.feed(framed(65535));
  CHECK(f.next()->size() == 65535);
  CHECK_FALSE(f.error());
}

TEST_CASE("stream framer: errors are sticky and the framer lets its bytes go",
          "[relay][stream_framer]") {
  StreamFramer f;
  f.feed(concat({hex("0000"), framed(4)}));
  CHECK(f.next() == std::nullopt);
  CHECK(f.error() == Errc::BadField);
  CHECK(f.buffered() == 0);
  f.feed(framed(4));
  CHECK(f.next() == std::nullopt);
  CHECK(f.next() == std::nullopt);
  CHECK(f.error() == Errc::BadField);
  CHECK(f.buffered() == 0);
}

TEST_CASE("stream framer: a drained framer holds at most one partial frame and its header",
          "[relay][stream_framer]") {
  StreamFramer f{1600};
  // A complete frame and all but the last byte of the largest one, in one read.
  auto stream = concat({framed(10), framed(1600)});
  stream.pop_back();
  f.feed(stream);
  CHECK(f.next()->size() == 10);
  CHECK(f.next() == std::nullopt);
  CHECK(f.buffered() == 1600 + 1);
  // A full read on top of that still fits.
  f.feed(Frame(relay::kMaxFeed));
  CHECK_FALSE(f.error());
  CHECK(f.buffered() == 1600 + 1 + relay::kMaxFeed);
  CHECK(f.next()->size() == 1600);
}

TEST_CASE("stream framer: feeding past max_buffered is refused and appends nothing",
          "[relay][stream_framer]") {
  SECTION("one read larger than the bound") {
    StreamFramer f{100};
    REQUIRE(f.max_buffered() == 100 + 2 + relay::kMaxFeed);
    f.feed(Frame(f.max_buffered() + 1));
    CHECK(f.error() == Errc::NoSpace);
    CHECK(f.buffered() == 0);
    CHECK(f.next() == std::nullopt);
  }
  SECTION("reads fed without draining") {
    StreamFramer f{100};
    const auto frames = concat(std::vector<Frame>(1000, framed(100)));  // 102000 bytes
    f.feed(core::Bytes{frames}.first(f.max_buffered()));
    CHECK_FALSE(f.error());
    CHECK(f.buffered() == f.max_buffered());
    f.feed(hex("00"));
    CHECK(f.error() == Errc::NoSpace);
    CHECK(f.buffered() == 0);
  }
  SECTION("what next() consumed no longer counts") {
    StreamFramer f{100};
    const auto frames = concat(std::vector<Frame>(1000, framed(100)));
    f.feed(core::Bytes{frames}.first(f.max_buffered()));
    CHECK(f.next()->size() == 100);
    f.feed(core::Bytes{frames}.subspan(f.max_buffered(), 102));
    CHECK_FALSE(f.error());
    CHECK(f.buffered() == f.max_buffered());
  }
}
