// libFuzzer target: the resolver query protocol (anycast/query.hpp). Invariants: whatever
// parses as a request or an answer encodes back to exactly the same bytes, and only inputs of
// the exact size parse.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "anycast/query.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in{data, size};
  if (const auto request = anycast::query::parse_request(in)) {
    FUZZ_CHECK(size == anycast::query::kRequestSize);
    const auto again = anycast::query::encode(*request);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
    FUZZ_CHECK(anycast::query::parse_request(again) == request);
  }
  if (const auto answer = anycast::query::parse_answer(in)) {
    FUZZ_CHECK(size == anycast::query::kAnswerSize);
    const auto again = anycast::query::encode(*answer);
    FUZZ_CHECK(std::equal(again.begin(), again.end(), in.begin(), in.end()));
    FUZZ_CHECK(anycast::query::parse_answer(again) == answer);
  }
  return 0;
}
