// libFuzzer target: the relay cluster's records and links. The whole input is decoded as a
// record; it is also read as a script of frames delivered to a Link acceptor after a valid nonce
// exchange with a genuine connector:
//   0 len bytes          a raw frame from the fuzzer
//   1 len bytes          `bytes` decoded as a record; if valid, sealed by the connector and
//                        delivered (and sealed back by the acceptor to the connector)
//   2 len bytes pos bit  the same, with one bit of the sealed frame flipped
//   3                    the last genuine frame again
// Invariants: a decoded record re-encodes to the same bytes, within kMaxRecord; a frame the
// acceptor accepts is byte for byte what the connector seals for that record at that sequence
// number (so nothing is accepted that does not carry the genuine tag); genuine frames are
// accepted while the link is whole; tampered frames fail the tag and replays are replays; after
// the first error every receive returns that error.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "fuzz_check.hpp"
#include "relay/cluster.hpp"
#include "relay/stream_framer.hpp"

namespace {

using relay::cluster::Link;
using relay::cluster::Nonce;
using relay::cluster::Record;
using Buffer = std::vector<std::byte>;

constexpr std::array<std::uint8_t, 8> kSecret = {'f', 'u', 'z', 'z', 's', 'e', 'c', 'r'};
constexpr Nonce kConnectorNonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr Nonce kAcceptorNonce = {17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
constexpr std::size_t kRoom = relay::cluster::kMaxRecord + 64;

// decode(), and if it accepts, the re-encode round trip.
std::optional<Record> check_decode(fuzz::Bytes bytes) {
  auto r = relay::cluster::decode(bytes);
  if (!r) return std::nullopt;
  std::array<std::byte, relay::cluster::kMaxRecord> out{};
  const auto n = relay::cluster::encode(*r, out);
  FUZZ_CHECK(n.has_value());
  FUZZ_CHECK(fuzz::same(std::span{out}.first(*n), bytes));
  return std::move(*r);
}

Buffer body(std::span<const std::byte> frame) {
  FUZZ_CHECK(frame.size() >= relay::kFrameHeader);
  FUZZ_CHECK(core::load_be16(frame) == frame.size() - relay::kFrameHeader);
  return {frame.begin() + relay::kFrameHeader, frame.end()};
}

Buffer seal(Link& link, const Record& r) {
  std::array<std::byte, kRoom> out{};
  const auto frame = link.seal(r, out);
  FUZZ_CHECK(frame.has_value());
  return body(*frame);
}

void give_nonce(const Link& from, Link& to) {
  auto nonce = body(from.nonce_frame());
  const auto r = to.receive(nonce);
  FUZZ_CHECK(r.has_value() && !r->has_value() && to.established());
}

class Script {
 public:
  Script()
      : connector_{kSecret, Link::Side::Connector, kConnectorNonce, 1},
        acceptor_{kSecret, Link::Side::Acceptor, kAcceptorNonce, 2} {
    give_nonce(connector_, acceptor_);
    give_nonce(acceptor_, connector_);
  }

  // A frame from the fuzzer: refused, unless it is exactly the genuine next frame.
  void raw(fuzz::Bytes frame) {
    Buffer copy(frame.begin(), frame.end());
    const auto r = deliver(copy);
    if (!r) return;
    FUZZ_CHECK(r->has_value());
    FUZZ_CHECK(fuzz::same(seal(connector_, **r), frame));
  }

  // A genuine frame of `record`: accepted while the link is whole, and answered.
  void genuine(const Record& record) {
    last_ = seal(connector_, record);
    Buffer copy = *last_;
    const auto r = deliver(copy);
    if (broken_) return;
    FUZZ_CHECK(r.has_value() && r->has_value() && **r == record);
    auto back = seal(acceptor_, record);
    const auto answer = connector_.receive(back);
    FUZZ_CHECK(answer.has_value() && answer->has_value() && **answer == record);
  }

  void tampered(const Record& record, std::size_t pos, unsigned bit) {
    Buffer frame = seal(connector_, record);
    frame[pos % frame.size()] ^= std::byte(1u << (bit % 8));
    const bool was_broken = broken_.has_value();
    const auto r = deliver(frame);
    FUZZ_CHECK(!r.has_value());
    if (!was_broken) FUZZ_CHECK(r.error() == satp::Errc::BadTag);
  }

  void replay() {
    if (!last_) return;
    Buffer copy = *last_;
    const bool was_broken = broken_.has_value();
    const auto r = deliver(copy);
    FUZZ_CHECK(!r.has_value());
    if (!was_broken) FUZZ_CHECK(r.error() == satp::Errc::Replay);
  }

 private:
  relay::Result<std::optional<Record>> deliver(Buffer& frame) {
    auto r = acceptor_.receive(frame);
    if (broken_) {
      FUZZ_CHECK(!r.has_value() && r.error() == *broken_);
    } else if (!r) {
      broken_ = r.error();
    }
    return r;
  }

  Link connector_;
  Link acceptor_;
  std::optional<Buffer> last_;
  std::optional<boost::system::error_code> broken_;
};

void run_script(fuzz::Bytes input) {
  Script script;
  core::ByteReader in{input};
  while (in.remaining() > 0) {
    const std::uint8_t op = in.u8() % 4;
    if (op == 3) {
      script.replay();
      continue;
    }
    const auto bytes = in.bytes(in.u8());
    if (!in.ok()) return;
    if (op == 0) {
      script.raw(bytes);
      continue;
    }
    const auto record = check_decode(bytes);
    if (op == 2) {
      const std::uint16_t pos = in.u16();
      const std::uint8_t bit = in.u8();
      if (record && in.ok()) script.tampered(*record, pos, bit);
    } else if (record) {
      script.genuine(*record);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = std::as_bytes(std::span{data, size});
  check_decode(input);

  // Before the nonce: only a 16-byte frame is one.
  Link early{kSecret, Link::Side::Acceptor, kAcceptorNonce, 2};
  Buffer copy(input.begin(), input.end());
  const auto first = early.receive(copy);
  FUZZ_CHECK(first.has_value() == (size == relay::cluster::kNonceSize));

  run_script(input);
  return 0;
}
