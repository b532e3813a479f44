// libFuzzer target: the relay's control messages (relay/control.hpp) from a hostile client.
// Invariants: decode() never throws or reads out of bounds; a message it accepts re-encodes to
// exactly the input (one encoding per message) within kMaxMessage bytes; every shorter prefix of
// it is Truncated and one more byte is TrailingBytes; encode() refuses a buffer one byte short.
//
// Input: the message bytes.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/bytes.hpp"
#include "relay/control.hpp"

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = std::as_bytes(std::span{data, size});
  const auto message = relay::control::decode(input);
  if (!message) return 0;

  std::vector<std::byte> out(relay::control::kMaxMessage);
  const auto written = relay::control::encode(*message, out);
  FUZZ_CHECK(written.has_value());
  FUZZ_CHECK(fuzz::same(fuzz::Bytes{out}.first(*written), input));

  for (std::size_t n = 0; n < size; ++n)
    FUZZ_CHECK(relay::control::decode(input.first(n)).error() == relay::Errc::Truncated);
  std::vector<std::byte> longer(input.begin(), input.end());
  longer.push_back(std::byte{0});
  FUZZ_CHECK(relay::control::decode(longer).error() == relay::Errc::TrailingBytes);

  FUZZ_CHECK(relay::control::encode(*message, core::MutableBytes{out}.first(size - 1)).error() ==
             relay::Errc::NoSpace);
  return 0;
}
