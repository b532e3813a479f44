// libFuzzer target: anytun's sync stream (satp/sync.hpp) from a hostile sync listener.
// Invariants: cutting the stream at a fuzzer-chosen offset gives the same archives and the same
// error; every archive the parser accepts re-encodes to a frame that parses to the same record
// (but a route that would hang anytun, which is refused and split instead);
// nothing throws or reads out of bounds.
//
// Input: byte 0 picks the split point (scaled to the input); the rest is the stream. The rest is
// also given to parse() as one archive, so the fuzzer reaches the record parser without first
// having to find a valid frame header.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "satp/sync.hpp"

#include "fuzz_check.hpp"

namespace {

struct Cut {
  std::vector<std::string> archives;
  std::optional<boost::system::error_code> error;
  bool operator==(const Cut&) const = default;
};

// Inputs are at most 4096 bytes (-max_len) and max_buffered is larger, so feeding never fails
// for lack of room and the result depends on the content alone.
Cut cut(const std::vector<core::Bytes>& parts) {
  satp::sync::Framer f{satp::sync::FramerLimits{.max_record = 2048, .max_buffered = 8192}};
  Cut out;
  for (auto p : parts) {
    if (auto fed = f.feed(p); !fed) {
      out.error = fed.error();
      return out;
    }
    while (true) {
      auto next = f.next();
      if (!next) {
        out.error = next.error();
        return out;
      }
      if (!*next) break;
      FUZZ_CHECK(!(*next)->empty() && (*next)->size() <= 2048);
      out.archives.push_back(std::move(**next));
    }
  }
  return out;
}

// An accepted record re-encodes, and the frame parses back to it.
void round_trip(std::string_view archive) {
  auto record = satp::sync::parse(archive);
  if (!record) return;
  auto frame = satp::sync::encode(*record);
  // The one refusal: a route that would hang a real anytun (it parses, we never send it).
  if (const auto* route = std::get_if<satp::sync::Route>(&*record);
      route && !satp::sync::anytun_can_take(route->prefix)) {
    FUZZ_CHECK(!frame && frame.error() == satp::Errc::Unsupported);
    for (const auto& p : satp::sync::anytun_safe_split(route->prefix))
      FUZZ_CHECK(satp::sync::encode(satp::sync::Route{p, route->mux}).has_value());
    return;
  }
  FUZZ_CHECK(frame.has_value());
  FUZZ_CHECK(frame->size() > satp::sync::kHeaderSize);
  auto again = satp::sync::parse(std::string_view{*frame}.substr(satp::sync::kHeaderSize));
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *record);
  // The frame also passes the framer whole.
  auto framed = cut({core::as_bytes(*frame)});
  FUZZ_CHECK(!framed.error && framed.archives.size() == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto all = std::as_bytes(std::span{data, size});
  const auto stream = all.subspan(1);
  const std::size_t at = stream.size() * std::to_integer<std::size_t>(all[0]) / 255;

  const auto whole = cut({stream});
  const auto split = cut({stream.first(at), stream.subspan(at)});
  FUZZ_CHECK(whole == split);
  for (const auto& a : whole.archives) round_trip(a);

  std::string direct;
  for (auto b : stream) direct.push_back(static_cast<char>(std::to_integer<unsigned char>(b)));
  round_trip(direct);
  return 0;
}
