// libFuzzer target: the SATP packet codec. The first input byte picks a cipher suite and
// direction; the rest is opened as a received packet (with and without a replay window), and is
// also sealed as a payload and opened again by the peer. Invariants: opening never crashes and
// never reads or writes outside the packet; an opened payload lies inside the packet with the
// lengths of the layout; a sealed packet opens to the same header, type and payload, and fails
// its tag at the sender's own role (whenever there is a tag).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "fuzz_check.hpp"
#include "satp/packet.hpp"

namespace {

constexpr std::string_view kPassphrase = "satp-interop-test";

// The suites: anytun's default, the extremes of the tag length, AES-256, null everything.
const satp::Settings kSuites[] = {
    {},
    {.tag_length = 20},
    {.tag_length = 0},
    {.tag_length = 4},
    {.cipher = satp::Cipher::AesCtr256, .kd_prf = satp::KdPrf::AesCtr192},
    {.cipher = satp::Cipher::Null},
    {.cipher = satp::Cipher::Null,
     .kd_prf = satp::KdPrf::Null,
     .auth = satp::Auth::Null,
     .tag_length = 0},
    {.cipher = satp::Cipher::AesCtr192, .auth = satp::Auth::Null, .tag_length = 0},
};
constexpr std::size_t kSuiteCount = std::size(kSuites);

satp::Codec make(satp::Settings s, satp::Role role) {
  s.role = role;
  auto c = satp::Codec::create(s, satp::master_key_from_passphrase(kPassphrase, s.kd_prf),
                               satp::master_salt_from_passphrase(kPassphrase));
  FUZZ_CHECK(c.has_value());
  return std::move(*c);
}

// Codecs are built once: [suite][role].
struct Codecs {
  std::vector<satp::Codec> left, right;
  Codecs() {
    for (const auto& s : kSuites) {
      left.push_back(make(s, satp::Role::Left));
      right.push_back(make(s, satp::Role::Right));
    }
  }
};

void check_open(satp::Codec& c, fuzz::Bytes input, satp::ReplayWindow* window) {
  std::vector<std::byte> buf(input.begin(), input.end());
  const std::vector<std::byte> before = buf;
  auto r = window ? c.open(buf, *window) : c.open(buf);
  if (!r) {
    FUZZ_CHECK(buf == before);  // nothing is decrypted unless the packet is accepted
    return;
  }
  FUZZ_CHECK(buf.size() >= c.overhead() && buf.size() <= satp::kMaxPacket);
  FUZZ_CHECK(fuzz::within(r->payload, buf));
  FUZZ_CHECK(r->payload.size() + c.overhead() == buf.size());
  FUZZ_CHECK(r->header == satp::read_header(before).value());
  // Without a tag anything well-sized opens; the header stays in clear.
  FUZZ_CHECK(fuzz::same(std::span{buf}.first(satp::kHeaderSize),
                        std::span{before}.first(satp::kHeaderSize)));
}

void check_round_trip(satp::Codec& sender, satp::Codec& receiver, fuzz::Bytes input) {
  core::ByteReader in{input};
  const satp::Header h{.seq = in.u32(), .sender_id = in.u16(), .mux = in.u16()};
  const std::uint16_t type = in.u16();
  auto payload = in.peek_rest();
  if (payload.size() > sender.max_payload()) payload = payload.first(sender.max_payload());

  std::array<std::byte, satp::kMaxPacket> out{};
  auto sealed = sender.seal(h, type, payload, out);
  FUZZ_CHECK(sealed.has_value());
  FUZZ_CHECK(sealed->size() == payload.size() + sender.overhead());
  std::vector<std::byte> wire(sealed->begin(), sealed->end());

  // In place in headroom gives the same bytes.
  std::array<std::byte, satp::kMaxPacket> room{};
  const auto body =
      std::span{room}.subspan(satp::kHeaderSize + satp::kPayloadTypeSize, payload.size());
  std::ranges::copy(payload, body.begin());
  auto again = sender.seal(h, type, body, room);
  FUZZ_CHECK(again.has_value() && fuzz::same(*again, wire));

  // The sender's own role derives the other inbound keys (unless the PRF is null: all zero).
  if (sender.tag_length() > 0 && sender.settings().kd_prf != satp::KdPrf::Null) {
    std::vector<std::byte> copy = wire;
    auto wrong = sender.open(copy);
    FUZZ_CHECK(!wrong && wrong.error() == satp::Errc::BadTag);
  }
  auto opened = receiver.open(wire);
  FUZZ_CHECK(opened.has_value());
  FUZZ_CHECK(opened->header == h);
  FUZZ_CHECK(opened->payload_type == type);
  FUZZ_CHECK(fuzz::same(opened->payload, payload));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Codecs codecs;
  static satp::ReplayWindow window{64, 4};
  if (size == 0) return 0;
  const auto input = std::as_bytes(std::span{data, size});
  const std::size_t suite = std::to_integer<std::size_t>(input[0]) % kSuiteCount;
  const bool to_left = (std::to_integer<unsigned>(input[0]) & 0x80) != 0;
  auto& receiver = to_left ? codecs.left[suite] : codecs.right[suite];
  auto& sender = to_left ? codecs.right[suite] : codecs.left[suite];
  const auto rest = input.subspan(1);

  check_open(receiver, rest, nullptr);
  check_open(receiver, rest, &window);
  check_round_trip(sender, receiver, rest);
  return 0;
}
