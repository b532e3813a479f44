// SATP settings, master key and salt, and the SRTP-like per-packet key derivation over Crypto++
// (satp-wire.md sections 3 and 4).
#include "satp/keys.hpp"

#include <algorithm>
#include <type_traits>
#include <utility>

#include <cryptopp/sha.h>

#include "prf.hpp"

namespace satp {
namespace {

// std::to_underlying is C++23.
template <typename E>
constexpr std::underlying_type_t<E> raw(E e) noexcept {
  return static_cast<std::underlying_type_t<E>>(e);
}

// XORs `v` big-endian into b[at .. at + n).
void xor_be(Block& b, std::size_t at, std::uint32_t v, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    b[at + i] ^= static_cast<std::uint8_t>(v >> (8 * (n - 1 - i)));
}

Block salted(std::span<const std::uint8_t, kSaltSize> salt) noexcept {
  Block b{};  // bytes 14..15 stay zero: the block counter
  std::copy(salt.begin(), salt.end(), b.begin());
  return b;
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes hex text of exactly 2 * out.size() digits.
Result<void> from_hex(std::string_view hex, std::span<std::uint8_t> out) noexcept {
  for (char c : hex)
    if (hex_digit(c) < 0) return Errc::BadHex;
  if (hex.size() != 2 * out.size()) return Errc::BadKeyLength;
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(hex_digit(hex[2 * i]) * 16 + hex_digit(hex[2 * i + 1]));
  return {};
}

// Crypto++ takes unsigned char pointers; std::string_view's chars may alias them.
const CryptoPP::byte* u8(std::string_view s) noexcept {
  return reinterpret_cast<const CryptoPP::byte*>(s.data());
}

}  // namespace

std::optional<Cipher> parse_cipher(std::string_view text) noexcept {
  if (text == "null") return Cipher::Null;
  if (text == "aes-ctr" || text == "aes-ctr-128") return Cipher::AesCtr128;
  if (text == "aes-ctr-192") return Cipher::AesCtr192;
  if (text == "aes-ctr-256") return Cipher::AesCtr256;
  return std::nullopt;
}

std::optional<KdPrf> parse_kd_prf(std::string_view text) noexcept {
  // The same names as the ciphers (anytun's keyDerivationFactory).
  const auto c = parse_cipher(text);
  if (!c) return std::nullopt;
  return static_cast<KdPrf>(raw(*c));
}

std::optional<Auth> parse_auth(std::string_view text) noexcept {
  if (text == "null") return Auth::Null;
  if (text == "sha1") return Auth::Sha1;
  return std::nullopt;
}

std::optional<Role> parse_role(std::string_view text) noexcept {
  if (text == "left" || text == "alice" || text == "server") return Role::Left;
  if (text == "right" || text == "bob" || text == "client") return Role::Right;
  return std::nullopt;
}

std::string_view to_string(Cipher c) noexcept {
  switch (c) {
    case Cipher::Null:
      return "null";
    case Cipher::AesCtr128:
      return "aes-ctr-128";
    case Cipher::AesCtr192:
      return "aes-ctr-192";
    case Cipher::AesCtr256:
      return "aes-ctr-256";
  }
  return "unknown";
}

std::string_view to_string(KdPrf k) noexcept {
  return to_string(static_cast<Cipher>(raw(k)));
}

std::string_view to_string(Auth a) noexcept {
  return a == Auth::Null ? "null" : a == Auth::Sha1 ? "sha1" : "unknown";
}

std::string_view to_string(Role r) noexcept {
  return r == Role::Left ? "left" : r == Role::Right ? "right" : "unknown";
}

std::string_view settings_problem(const Settings& s) noexcept {
  if (raw(s.cipher) > raw(Cipher::AesCtr256)) return "bad cipher";
  if (raw(s.kd_prf) > raw(KdPrf::AesCtr256)) return "bad kd-prf";
  if (raw(s.auth) > raw(Auth::Sha1)) return "bad auth algorithm";
  if (raw(s.role) > raw(Role::Right)) return "bad role";
  if (s.tag_length > kMaxTagLength) return "tag length above 20";
  if (s.auth == Auth::Null && s.tag_length != 0) return "tag length must be 0 with auth null";
  // anytun forces kd-prf null only when cipher and auth are both null; a null PRF with a real
  // cipher gives all-zero packet keys, which anytun accepts, so we accept it too.
  return {};
}

MasterKey master_key_from_passphrase(std::string_view passphrase, KdPrf kd_prf) noexcept {
  std::array<CryptoPP::byte, CryptoPP::SHA256::DIGESTSIZE> digest{};
  CryptoPP::SHA256{}.CalculateDigest(digest.data(), u8(passphrase), passphrase.size());
  MasterKey key;
  key.size = key_size(kd_prf);
  // The LAST size bytes (anytun's calcMasterKey), not the first.
  std::copy(digest.end() - static_cast<std::ptrdiff_t>(key.size), digest.end(), key.bytes.begin());
  return key;
}

MasterSalt master_salt_from_passphrase(std::string_view passphrase) noexcept {
  std::array<CryptoPP::byte, CryptoPP::SHA1::DIGESTSIZE> digest{};
  CryptoPP::SHA1{}.CalculateDigest(digest.data(), u8(passphrase), passphrase.size());
  MasterSalt salt{};
  std::copy(digest.end() - kSaltSize, digest.end(), salt.begin());
  return salt;
}

Result<MasterKey> master_key_from_hex(std::string_view hex) noexcept {
  MasterKey key;
  key.size = hex.size() / 2;
  if (key.size != 16 && key.size != 24 && key.size != 32) {
    // A bad digit is reported before a bad length, as from_hex does.
    if (!std::ranges::all_of(hex, [](char c) { return hex_digit(c) >= 0; })) return Errc::BadHex;
    return Errc::BadKeyLength;
  }
  if (auto r = from_hex(hex, std::span{key.bytes}.first(key.size)); !r) return r.error();
  return key;
}

Result<MasterSalt> master_salt_from_hex(std::string_view hex) noexcept {
  MasterSalt salt{};
  if (auto r = from_hex(hex, salt); !r) return r.error();
  return salt;
}

Block kdf_counter(const MasterSalt& salt, std::uint32_t label, std::uint32_t seq) noexcept {
  Block b = salted(salt);
  xor_be(b, 6, label, 4);
  xor_be(b, 10, seq, 4);
  return b;
}

Block payload_counter(const std::array<std::uint8_t, kSaltSize>& packet_salt, std::uint16_t mux,
                      std::uint16_t sender_id, std::uint32_t seq) noexcept {
  Block b = salted(packet_salt);
  xor_be(b, 4, mux, 2);
  xor_be(b, 6, sender_id, 2);
  xor_be(b, 10, seq, 4);
  return b;
}

// --- Prf ---------------------------------------------------------------------------------

Prf::Prf(KdPrf kd_prf, const MasterKey& master_key, const MasterSalt& salt)
    : null_{kd_prf == KdPrf::Null}, salt_{salt} {
  if (!null_) aes_.SetKey(master_key.bytes.data(), master_key.size);
}

void Prf::run(std::uint32_t label, std::uint32_t seq, std::span<std::uint8_t> out) const noexcept {
  std::array<Block, 2> blocks{};
  const std::size_t n = std::min<std::size_t>((out.size() + kBlockSize - 1) / kBlockSize, 2);
  if (null_) {
    std::fill(out.begin(), out.end(), std::uint8_t{0});
    return;
  }
  blocks[0] = kdf_counter(salt_, label, seq);
  // The low 16 bits of the counter start at 0, so the second block's counter is +1 in the last
  // byte with no carry.
  blocks[1] = blocks[0];
  blocks[1][kBlockSize - 1] = 1;
  std::array<Block, 2> stream{};
  aes_.AdvancedProcessBlocks(blocks[0].data(), nullptr, stream[0].data(), n * kBlockSize, 0);
  const auto bytes = std::as_bytes(std::span{stream});
  for (std::size_t i = 0; i < out.size() && i < n * kBlockSize; ++i)
    out[i] = std::to_integer<std::uint8_t>(bytes[i]);
}

void Prf::derive(Role role, Direction dir, std::uint32_t seq, std::size_t enc_key_size, bool auth,
                 PacketKeys& out) const noexcept {
  out.enc_key_size = enc_key_size;
  if (null_) {
    out.enc_key.fill(0);
    out.enc_salt.fill(0);
    out.auth_key.fill(0);
    return;
  }
  // Up to 5 counter blocks: key (1-2), salt (1), auth key (2), encrypted in one pass.
  std::array<Block, 5> in{};
  std::size_t n = 0;
  const auto add = [&](Purpose p, std::size_t bytes) {
    in[n] = kdf_counter(salt_, label(role, dir, p), seq);
    for (std::size_t i = 1; i * kBlockSize < bytes; ++i) {
      in[n + i] = in[n];
      in[n + i][kBlockSize - 1] = static_cast<std::uint8_t>(i);
    }
    const std::size_t first = n;
    n += (bytes + kBlockSize - 1) / kBlockSize;
    return first;
  };
  const std::size_t key_at = enc_key_size > 0 ? add(Purpose::EncKey, enc_key_size) : 0;
  const std::size_t salt_at = enc_key_size > 0 ? add(Purpose::EncSalt, kSaltSize) : 0;
  const std::size_t auth_at = auth ? add(Purpose::AuthKey, kAuthKeySize) : 0;
  if (n == 0) return;
  std::array<Block, 5> stream{};
  aes_.AdvancedProcessBlocks(in[0].data(), nullptr, stream[0].data(), n * kBlockSize, 0);
  const auto take = [&](std::size_t at, std::span<std::uint8_t> dst) {
    const auto src = std::as_bytes(std::span{stream}.subspan(at));
    for (std::size_t i = 0; i < dst.size(); ++i) dst[i] = std::to_integer<std::uint8_t>(src[i]);
  };
  if (enc_key_size > 0) {
    take(key_at, std::span{out.enc_key}.first(enc_key_size));
    take(salt_at, out.enc_salt);
  }
  if (auth) take(auth_at, out.auth_key);
}

// --- KeyDerivation -----------------------------------------------------------------------

KeyDerivation::KeyDerivation(std::unique_ptr<Prf> prf, Cipher cipher, Role role) noexcept
    : prf_{std::move(prf)}, cipher_{cipher}, role_{role} {}
KeyDerivation::KeyDerivation(KeyDerivation&&) noexcept = default;
KeyDerivation& KeyDerivation::operator=(KeyDerivation&&) noexcept = default;
KeyDerivation::~KeyDerivation() = default;

Result<KeyDerivation> KeyDerivation::create(KdPrf kd_prf, Cipher cipher, Role role,
                                            const MasterKey& master_key, const MasterSalt& salt) {
  if (kd_prf != KdPrf::Null && master_key.size != key_size(kd_prf)) return Errc::BadKeyLength;
  return KeyDerivation{std::make_unique<Prf>(kd_prf, master_key, salt), cipher, role};
}

PacketKeys KeyDerivation::derive(Direction dir, std::uint32_t seq) const noexcept {
  PacketKeys keys;
  prf_->derive(role_, dir, seq, key_size(cipher_), true, keys);
  return keys;
}

void KeyDerivation::prf(std::uint32_t label_value, std::uint32_t seq,
                        std::span<std::uint8_t> out) const noexcept {
  prf_->run(label_value, seq, out);
}

}  // namespace satp
