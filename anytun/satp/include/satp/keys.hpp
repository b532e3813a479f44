// SATP settings and keys (satp-wire.md sections 3-5): cipher, KDF and auth choices, roles, the
// master key and salt from a passphrase or hex text, and the per-packet key derivation.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "satp/error.hpp"

namespace satp {

// anytun's `-c`: the payload cipher. The key size of each packet key follows from it.
enum class Cipher : std::uint8_t { Null, AesCtr128, AesCtr192, AesCtr256 };
// anytun's `-k`: the PRF of the key derivation. The master key size follows from it.
enum class KdPrf : std::uint8_t { Null, AesCtr128, AesCtr192, AesCtr256 };
// anytun's `-a`: the message authentication.
enum class Auth : std::uint8_t { Null, Sha1 };
// anytun's `-e`. The two ends of a tunnel take different roles; all anycast nodes of one end
// share a role. The values are anytun's sync encoding (0 left, 1 right).
enum class Role : std::uint8_t { Left = 0, Right = 1 };
// Outbound packets are keyed with the own role's labels, inbound ones with the other role's.
enum class Direction : std::uint8_t { Outbound, Inbound };
// What a PRF run derives (one label per purpose and role, section 4).
enum class Purpose : std::uint8_t { EncKey, EncSalt, AuthKey };

inline constexpr std::size_t kSaltSize = 14;      // master salt and packet salt
inline constexpr std::size_t kAuthKeySize = 20;   // HMAC-SHA1 key of each packet
inline constexpr std::size_t kMaxKeySize = 32;    // AES-256
inline constexpr std::size_t kMaxTagLength = 20;  // the whole HMAC-SHA1
inline constexpr std::size_t kDefaultTagLength = 10;
inline constexpr std::size_t kBlockSize = 16;  // an AES block, the size of every counter

// Key sizes in bytes: 0 for Null, 16/24/32 for AES-CTR.
constexpr std::size_t key_size(Cipher c) noexcept {
  return c == Cipher::Null ? 0 : 16 + 8 * (static_cast<std::size_t>(c) - 1);
}
constexpr std::size_t key_size(KdPrf k) noexcept {
  return k == KdPrf::Null ? 0 : 16 + 8 * (static_cast<std::size_t>(k) - 1);
}

// anytun's option values: "null", "aes-ctr" (= 128), "aes-ctr-128", "-192", "-256"; "null",
// "sha1"; "left", "alice", "server" or "right", "bob", "client". nullopt for anything else.
std::optional<Cipher> parse_cipher(std::string_view text) noexcept;
std::optional<KdPrf> parse_kd_prf(std::string_view text) noexcept;
std::optional<Auth> parse_auth(std::string_view text) noexcept;
std::optional<Role> parse_role(std::string_view text) noexcept;
// Canonical names ("aes-ctr-128", "sha1", "left"), accepted by the parsers above.
std::string_view to_string(Cipher c) noexcept;
std::string_view to_string(KdPrf k) noexcept;
std::string_view to_string(Auth a) noexcept;
std::string_view to_string(Role r) noexcept;

// The cipher suite of one connection. anytun's defaults.
struct Settings {
  Cipher cipher = Cipher::AesCtr128;
  KdPrf kd_prf = KdPrf::AesCtr128;
  Auth auth = Auth::Sha1;
  std::size_t tag_length = kDefaultTagLength;  // bytes, 0..20; must be 0 with Auth::Null
  Role role = Role::Left;

  bool operator==(const Settings&) const = default;
};

// Why `s` is unusable ("tag length above 20", ...), or an empty view when it is valid. anytun
// clamps a tag length above 20 and forces 0 with `-a null`; we reject instead, so that a config
// says what runs.
std::string_view settings_problem(const Settings& s) noexcept;

// A master key of 16, 24 or 32 bytes (size() == key_size(kd_prf)); empty for KdPrf::Null.
struct MasterKey {
  std::array<std::uint8_t, kMaxKeySize> bytes{};
  std::size_t size = 0;

  std::span<const std::uint8_t> view() const noexcept { return std::span{bytes}.first(size); }
  bool operator==(const MasterKey& o) const noexcept {
    return size == o.size && std::equal(view().begin(), view().end(), o.view().begin());
  }
};
using MasterSalt = std::array<std::uint8_t, kSaltSize>;

// anytun's `-E`: the key is the last key_size(kd_prf) bytes of SHA-256(passphrase) (empty for
// KdPrf::Null); the salt the last 14 bytes of SHA-1(passphrase).
MasterKey master_key_from_passphrase(std::string_view passphrase, KdPrf kd_prf) noexcept;
MasterSalt master_salt_from_passphrase(std::string_view passphrase) noexcept;
// anytun's `-K` / `-A`: 32, 48 or 64 hex digits; 28 hex digits. Either case. BadHex for a
// non-hex digit, BadKeyLength for another number of digits.
Result<MasterKey> master_key_from_hex(std::string_view hex) noexcept;
Result<MasterSalt> master_salt_from_hex(std::string_view hex) noexcept;

// The PRF label (section 4) for what `own` derives in direction `dir`.
constexpr std::uint32_t label(Role own, Direction dir, Purpose p) noexcept {
  // Rows: purpose; columns: the role whose labels apply (left, right). The first 32 bits of
  // SHA1("1") ... SHA1("6"), as in the SATP draft.
  constexpr std::uint32_t kLabels[3][2] = {
      {0x356A192B, 0xDA4B9237},  // encryption key
      {0x77DE68DA, 0x1B645389},  // encryption salt
      {0xAC3478D6, 0xC1DFD96E},  // auth key
  };
  const bool left = (own == Role::Left) == (dir == Direction::Outbound);
  return kLabels[static_cast<std::size_t>(p)][left ? 0 : 1];
}

using Block = std::array<std::uint8_t, kBlockSize>;

// The initial counter of a PRF run: (salt || 00 00) ^ label@6..9 ^ seq@10..13.
Block kdf_counter(const MasterSalt& salt, std::uint32_t label, std::uint32_t seq) noexcept;
// The initial counter of a payload: (packet salt || 00 00) ^ mux@4..5 ^ sender@6..7 ^
// seq@10..13 (section 5).
Block payload_counter(const std::array<std::uint8_t, kSaltSize>& packet_salt, std::uint16_t mux,
                      std::uint16_t sender_id, std::uint32_t seq) noexcept;

// The keys of one packet. With KdPrf::Null all are zero (as in anytun).
struct PacketKeys {
  std::array<std::uint8_t, kMaxKeySize> enc_key{};
  std::size_t enc_key_size = 0;  // key_size(cipher)
  std::array<std::uint8_t, kSaltSize> enc_salt{};
  std::array<std::uint8_t, kAuthKeySize> auth_key{};

  std::span<const std::uint8_t> enc_key_view() const noexcept {
    return std::span{enc_key}.first(enc_key_size);
  }
};

class Prf;  // src/prf.hpp: the AES state keyed with the master key

// The per-packet key derivation of one connection: PRF_n(master key, label, seq) = the first n
// bytes of AES-CTR keystream from kdf_counter(). The master key schedule is computed once.
// Not thread-safe (one per worker); derive() does not allocate.
class KeyDerivation {
 public:
  // BadKeyLength unless master_key.size == key_size(kd_prf) (any key for KdPrf::Null).
  static Result<KeyDerivation> create(KdPrf kd_prf, Cipher cipher, Role role,
                                      const MasterKey& master_key, const MasterSalt& salt);
  KeyDerivation(KeyDerivation&&) noexcept;
  KeyDerivation& operator=(KeyDerivation&&) noexcept;
  ~KeyDerivation();

  // All three keys of packet `seq` in direction `dir`.
  PacketKeys derive(Direction dir, std::uint32_t seq) const noexcept;
  // The first out.size() bytes of PRF(label, seq); out.size() <= 2 blocks.
  void prf(std::uint32_t label, std::uint32_t seq, std::span<std::uint8_t> out) const noexcept;

 private:
  explicit KeyDerivation(std::unique_ptr<Prf> prf, Cipher cipher, Role role) noexcept;

  std::unique_ptr<Prf> prf_;
  Cipher cipher_;
  Role role_;
};

}  // namespace satp
