// The SATP packet codec over Crypto++: per-packet keys from the sequence number, AES-CTR over
// payload type and payload, HMAC-SHA1 over header and ciphertext, tag = its rightmost t bytes.
#include "satp/packet.hpp"

#include <algorithm>
#include <utility>

#include <cryptopp/aes.h>
#include <cryptopp/hmac.h>
#include <cryptopp/misc.h>
#include <cryptopp/modes.h>
#include <cryptopp/sha.h>

#include "core/bytes.hpp"
#include "prf.hpp"

namespace satp {
namespace {

// Crypto++ takes unsigned char pointers; std::byte and unsigned char may alias.
CryptoPP::byte* u8(std::span<std::byte> b) noexcept {
  return reinterpret_cast<CryptoPP::byte*>(b.data());
}
const CryptoPP::byte* u8(std::span<const std::byte> b) noexcept {
  return reinterpret_cast<const CryptoPP::byte*>(b.data());
}

constexpr std::size_t kDigestSize = CryptoPP::SHA1::DIGESTSIZE;

}  // namespace

class Codec::State {
 public:
  State(const Settings& s, const MasterKey& key, const MasterSalt& salt)
      : settings{s},
        prf{s.kd_prf, key, salt},
        enc_key_size{key_size(s.cipher)},
        tag_length{s.auth == Auth::Null ? 0 : s.tag_length} {
    if (enc_key_size > 0) {
      const std::array<CryptoPP::byte, kMaxKeySize> zero_key{};
      const Block zero_iv{};
      aes.SetKey(zero_key.data(), enc_key_size);
      aes_ctr.SetCipherWithIV(aes, zero_iv.data());
    }
  }

  // Derives the keys of packet `h` in `dir` into keys_.
  void derive(Direction dir, std::uint32_t seq) noexcept {
    prf.derive(settings.role, dir, seq, enc_key_size, tag_length > 0, keys);
  }

  // The full HMAC-SHA1 of `portion` under keys.auth_key.
  void mac(std::span<const std::byte> portion, std::array<CryptoPP::byte, kDigestSize>& digest) {
    // SetKey reuses the HMAC's buffers (same sizes every time): no allocation.
    hmac.SetKey(keys.auth_key.data(), keys.auth_key.size());
    hmac.Update(u8(portion), portion.size());
    hmac.Final(digest.data());
  }

  // Re-keys the payload cipher for packet `h`: the AES key schedule, then the counter. The CTR
  // mode runs over aes (set once in the constructor), so nothing is allocated here;
  // CTR_Mode<AES>::SetKeyWithIV would build a heap-allocated parameter list on every call.
  void start_cipher(const Header& h) {
    const Block ctr = payload_counter(keys.enc_salt, h.mux, h.sender_id, h.seq);
    aes.SetKey(keys.enc_key.data(), enc_key_size);
    aes_ctr.Resynchronize(ctr.data(), static_cast<int>(ctr.size()));
  }

  Settings settings;
  Prf prf;
  std::size_t enc_key_size;
  std::size_t tag_length;
  PacketKeys keys;  // scratch for the packet being processed
  CryptoPP::AES::Encryption aes;
  CryptoPP::CTR_Mode_ExternalCipher::Encryption aes_ctr;
  CryptoPP::HMAC<CryptoPP::SHA1> hmac;
};

Result<Header> read_header(std::span<const std::byte> packet) noexcept {
  core::ByteReader in{packet};
  Header h{.seq = in.u32(), .sender_id = in.u16(), .mux = in.u16()};
  if (!in.ok()) return Errc::Truncated;
  return h;
}

Result<void> check_payload_type(std::uint16_t type,
                                std::span<const std::uint16_t> accepted) noexcept {
  if (std::ranges::find(accepted, type) == accepted.end()) return Errc::BadPayloadType;
  return {};
}

Codec::Codec(std::unique_ptr<State> state) noexcept : state_{std::move(state)} {}
Codec::Codec(Codec&&) noexcept = default;
Codec& Codec::operator=(Codec&&) noexcept = default;
Codec::~Codec() = default;

Result<Codec> Codec::create(const Settings& settings, const MasterKey& master_key,
                            const MasterSalt& master_salt) {
  if (!settings_problem(settings).empty()) return Errc::BadSettings;
  if (settings.kd_prf != KdPrf::Null && master_key.size != key_size(settings.kd_prf))
    return Errc::BadKeyLength;
  try {
    return Codec{std::make_unique<State>(settings, master_key, master_salt)};
  } catch (const CryptoPP::Exception&) {
    // Not expected after the checks above; Crypto++ throws only for bad key lengths.
    return Errc::BadKeyLength;
  }
}

const Settings& Codec::settings() const noexcept {
  return state_->settings;
}

std::size_t Codec::tag_length() const noexcept {
  return state_->tag_length;
}

Result<std::span<std::byte>> Codec::seal(const Header& header, std::uint16_t payload_type,
                                         std::span<const std::byte> payload,
                                         std::span<std::byte> out) noexcept {
  State& st = *state_;
  const std::size_t total = overhead() + payload.size();
  if (total > kMaxPacket) return Errc::TooLong;
  if (total > out.size()) return Errc::NoSpace;
  const auto packet = out.first(total);
  core::ByteWriter w{packet};
  w.u32(header.seq).u16(header.sender_id).u16(header.mux).u16(payload_type);
  const auto encrypted = packet.subspan(kHeaderSize, kPayloadTypeSize + payload.size());
  const auto body = encrypted.subspan(kPayloadTypeSize);
  const bool in_place = payload.empty() || payload.data() == body.data();

  st.derive(Direction::Outbound, header.seq);
  if (st.enc_key_size == 0) {
    if (!in_place) std::ranges::copy(payload, body.begin());
  } else {
    st.start_cipher(header);
    if (in_place) {
      st.aes_ctr.ProcessData(u8(encrypted), u8(encrypted), encrypted.size());
    } else {
      // The keystream continues across calls: 2 bytes of type, then the payload.
      const auto type = encrypted.first(kPayloadTypeSize);
      st.aes_ctr.ProcessData(u8(type), u8(type), type.size());
      st.aes_ctr.ProcessData(u8(body), u8(payload), payload.size());
    }
  }

  if (st.tag_length > 0) {
    std::array<CryptoPP::byte, kDigestSize> digest{};
    st.mac(packet.first(total - st.tag_length), digest);
    // anytun sends the RIGHTMOST t bytes of the HMAC (not the leftmost of the SATP draft).
    const auto tag = packet.last(st.tag_length);
    for (std::size_t i = 0; i < st.tag_length; ++i)
      tag[i] = std::byte{digest[kDigestSize - st.tag_length + i]};
  }
  return packet;
}

Result<Opened> Codec::open(std::span<std::byte> packet) noexcept {
  return open_impl(packet, nullptr);
}

Result<Opened> Codec::open(std::span<std::byte> packet, ReplayWindow& replay) noexcept {
  return open_impl(packet, &replay);
}

Result<Opened> Codec::open_impl(std::span<std::byte> packet, ReplayWindow* replay) noexcept {
  State& st = *state_;
  if (packet.size() > kMaxPacket) return Errc::TooLong;
  if (packet.size() < overhead()) return Errc::Truncated;
  const Header h = *read_header(packet);
  const auto authenticated = packet.first(packet.size() - st.tag_length);
  const auto encrypted = authenticated.subspan(kHeaderSize);

  st.derive(Direction::Inbound, h.seq);
  if (st.tag_length > 0) {
    std::array<CryptoPP::byte, kDigestSize> digest{};
    st.mac(authenticated, digest);
    if (!CryptoPP::VerifyBufsEqual(std::span{digest}.last(st.tag_length).data(),
                                   u8(packet.last(st.tag_length)), st.tag_length))
      return Errc::BadTag;
  }
  // After the tag (so forged packets cannot move the window), before decrypting (so replays
  // cost no AES), as in anytun's receiver.
  if (replay)
    if (auto r = replay->check_and_add(h.sender_id, h.seq); !r) return r.error();

  if (st.enc_key_size > 0) {
    st.start_cipher(h);
    st.aes_ctr.ProcessData(u8(encrypted), u8(encrypted), encrypted.size());
  }
  return Opened{.header = h,
                .payload_type = core::load_be16(encrypted.first(kPayloadTypeSize)),
                .payload = encrypted.subspan(kPayloadTypeSize)};
}

}  // namespace satp
