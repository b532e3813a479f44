// Tests for satp/keys.hpp: the master key and salt, the labels and role rule, the KDF and payload
// counters and the per-packet keys of satp-wire.md section 9, option names and settings checks.
#include "satp/keys.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace satp;

namespace {

constexpr std::string_view kPassphrase = "satp-interop-test";

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (auto v : b) {
    out += kDigits[v >> 4];
    out += kDigits[v & 0xf];
  }
  return out;
}

KeyDerivation kdf(Role role, KdPrf kd = KdPrf::AesCtr128, Cipher c = Cipher::AesCtr128) {
  return KeyDerivation::create(kd, c, role, master_key_from_passphrase(kPassphrase, kd),
                               master_salt_from_passphrase(kPassphrase))
      .value();
}

}  // namespace

TEST_CASE("keys: passphrase gives the master key and salt of section 9", "[satp][keys]") {
  CHECK(to_hex(master_key_from_passphrase(kPassphrase, KdPrf::AesCtr128).view()) ==
        "4fe1301cd859ac3fd1ff0d964a6fb6e2");
  CHECK(to_hex(master_salt_from_passphrase(kPassphrase)) == "10f095ed611a1813907a522c7de0");
}

TEST_CASE("keys: master key is the last kd-prf bytes of SHA-256", "[satp][keys]") {
  // python3: hashlib.sha256(b"satp-interop-test").hexdigest()[-48:], [-64:]
  CHECK(to_hex(master_key_from_passphrase(kPassphrase, KdPrf::AesCtr192).view()) ==
        "ff7421b12e633bff4fe1301cd859ac3fd1ff0d964a6fb6e2");
  CHECK(to_hex(master_key_from_passphrase(kPassphrase, KdPrf::AesCtr256).view()) ==
        "e479493477aa26cfff7421b12e633bff4fe1301cd859ac3fd1ff0d964a6fb6e2");
  CHECK(master_key_from_passphrase(kPassphrase, KdPrf::Null).size == 0);
}

TEST_CASE("keys: master key and salt from hex text", "[satp][keys]") {
  const auto key = master_key_from_hex("4FE1301CD859AC3FD1FF0D964A6FB6E2");
  REQUIRE(key);
  CHECK(*key == master_key_from_passphrase(kPassphrase, KdPrf::AesCtr128));
  CHECK(master_key_from_hex(std::string(48, 'a'))->size == 24);
  CHECK(master_key_from_hex(std::string(64, '0'))->size == 32);
  const auto salt = master_salt_from_hex("10f095ed611a1813907a522c7de0");
  REQUIRE(salt);
  CHECK(*salt == master_salt_from_passphrase(kPassphrase));
}

TEST_CASE("keys: bad hex text is rejected with its reason", "[satp][keys]") {
  struct Case {
    std::string text;
    Errc error;
  };
  const Case cases[] = {
      {"", Errc::BadKeyLength},
      {std::string(30, 'a'), Errc::BadKeyLength},
      {std::string(33, 'a'), Errc::BadKeyLength},
      {std::string(40, 'a'), Errc::BadKeyLength},
      {std::string(66, 'a'), Errc::BadKeyLength},
      {std::string(31, 'a') + "g", Errc::BadHex},
      {"0x" + std::string(30, 'a'), Errc::BadHex},
      {std::string(16, 'a') + " " + std::string(15, 'a'), Errc::BadHex},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(master_key_from_hex(c.text).error() == c.error);
  }
  CHECK(master_salt_from_hex(std::string(26, 'a')).error() == Errc::BadKeyLength);
  CHECK(master_salt_from_hex(std::string(30, 'a')).error() == Errc::BadKeyLength);
  CHECK(master_salt_from_hex(std::string(27, 'a') + "z").error() == Errc::BadHex);
}

TEST_CASE("keys: labels follow the role rule", "[satp][keys]") {
  CHECK(label(Role::Left, Direction::Outbound, Purpose::EncKey) == 0x356A192B);
  CHECK(label(Role::Left, Direction::Outbound, Purpose::EncSalt) == 0x77DE68DA);
  CHECK(label(Role::Left, Direction::Outbound, Purpose::AuthKey) == 0xAC3478D6);
  CHECK(label(Role::Right, Direction::Outbound, Purpose::EncKey) == 0xDA4B9237);
  CHECK(label(Role::Right, Direction::Outbound, Purpose::EncSalt) == 0x1B645389);
  CHECK(label(Role::Right, Direction::Outbound, Purpose::AuthKey) == 0xC1DFD96E);
  // Inbound uses the other role's labels: what one side sends, the other receives.
  for (auto p : {Purpose::EncKey, Purpose::EncSalt, Purpose::AuthKey}) {
    CHECK(label(Role::Left, Direction::Inbound, p) == label(Role::Right, Direction::Outbound, p));
    CHECK(label(Role::Right, Direction::Inbound, p) == label(Role::Left, Direction::Outbound, p));
  }
}

TEST_CASE("keys: seq 0 keys of a left sender match section 9", "[satp][keys]") {
  const auto k = kdf(Role::Left).derive(Direction::Outbound, 0);
  CHECK(to_hex(k.enc_key_view()) == "58f117a1d20a6935ea5b8441baaef629");
  CHECK(to_hex(k.enc_salt) == "5522460298de81707f94867d7cfa");
  CHECK(to_hex(k.auth_key) == "0f3962d905be1df3d9adeb5490955f2a451adbee");
  // The right peer receiving them derives the same keys.
  const auto in = kdf(Role::Right).derive(Direction::Inbound, 0);
  CHECK(in.enc_key == k.enc_key);
  CHECK(in.enc_salt == k.enc_salt);
  CHECK(in.auth_key == k.auth_key);
}

TEST_CASE("keys: seq 0 keys of a right sender match section 9", "[satp][keys]") {
  const auto k = kdf(Role::Right).derive(Direction::Outbound, 0);
  CHECK(to_hex(k.enc_key_view()) == "63e430f88d38ccb71c9632b38ffc2d09");
  CHECK(to_hex(k.enc_salt) == "77891f3a25d76c8cbd64f5238658");
  CHECK(to_hex(k.auth_key) == "8ddd8e65aea4e53f93246a020f715b0daeebcde6");
  const auto in = kdf(Role::Left).derive(Direction::Inbound, 0);
  CHECK(in.auth_key == k.auth_key);
}

TEST_CASE("keys: KDF counter, packet keys and payload counter of the anytun packet",
          "[satp][keys]") {
  const auto salt = master_salt_from_passphrase(kPassphrase);
  const auto enc_label = label(Role::Left, Direction::Outbound, Purpose::EncKey);
  CHECK(to_hex(kdf_counter(salt, enc_label, 1)) == "10f095ed611a2d798951522c7de10000");
  const auto k = kdf(Role::Left).derive(Direction::Outbound, 1);
  CHECK(to_hex(k.enc_key_view()) == "1b2760564dc4b3d0a7112689f30e0e98");
  CHECK(to_hex(k.enc_salt) == "5c0ae39a5f79da441e4436006b76");
  CHECK(to_hex(k.auth_key) == "b837bc67acc746a0be42786767b9b40783b20f90");
  CHECK(to_hex(payload_counter(k.enc_salt, /*mux=*/3, /*sender_id=*/7, /*seq=*/1)) ==
        "5c0ae39a5f7ada431e4436006b770000");
}

TEST_CASE("keys: prf gives the leftmost keystream bytes", "[satp][keys]") {
  const auto d = kdf(Role::Left);
  std::array<std::uint8_t, 20> auth{};
  d.prf(0xAC3478D6, 1, auth);
  CHECK(to_hex(auth) == "b837bc67acc746a0be42786767b9b40783b20f90");
  std::array<std::uint8_t, 5> shorter{};
  d.prf(0xAC3478D6, 1, shorter);
  CHECK(to_hex(shorter) == "b837bc67ac");
}

TEST_CASE("keys: packet key size follows the cipher, not the kd-prf", "[satp][keys]") {
  const auto k256 =
      kdf(Role::Left, KdPrf::AesCtr128, Cipher::AesCtr256).derive(Direction::Outbound, 1);
  REQUIRE(k256.enc_key_size == 32);
  // The first 16 bytes are the same PRF output as for a 128-bit packet key.
  CHECK(to_hex(k256.enc_key_view().first(16)) == "1b2760564dc4b3d0a7112689f30e0e98");
  const auto k192 =
      kdf(Role::Left, KdPrf::AesCtr256, Cipher::AesCtr192).derive(Direction::Outbound, 1);
  CHECK(k192.enc_key_size == 24);
}

TEST_CASE("keys: a null kd-prf gives all-zero packet keys", "[satp][keys]") {
  const auto k = kdf(Role::Left, KdPrf::Null).derive(Direction::Outbound, 5);
  CHECK(to_hex(k.enc_key_view()) == std::string(32, '0'));
  CHECK(to_hex(k.enc_salt) == std::string(28, '0'));
  CHECK(to_hex(k.auth_key) == std::string(40, '0'));
}

TEST_CASE("keys: a master key of the wrong size is rejected", "[satp][keys]") {
  const auto salt = master_salt_from_passphrase(kPassphrase);
  const auto k128 = master_key_from_passphrase(kPassphrase, KdPrf::AesCtr128);
  CHECK(
      KeyDerivation::create(KdPrf::AesCtr256, Cipher::AesCtr128, Role::Left, k128, salt).error() ==
      Errc::BadKeyLength);
  CHECK(KeyDerivation::create(KdPrf::Null, Cipher::AesCtr128, Role::Left, MasterKey{}, salt));
}

TEST_CASE("keys: anytun option names parse", "[satp][keys]") {
  CHECK(parse_cipher("null") == Cipher::Null);
  CHECK(parse_cipher("aes-ctr") == Cipher::AesCtr128);
  CHECK(parse_cipher("aes-ctr-128") == Cipher::AesCtr128);
  CHECK(parse_cipher("aes-ctr-192") == Cipher::AesCtr192);
  CHECK(parse_cipher("aes-ctr-256") == Cipher::AesCtr256);
  CHECK_FALSE(parse_cipher("aes-ctr-512"));
  CHECK_FALSE(parse_cipher("AES-CTR"));
  CHECK(parse_kd_prf("aes-ctr") == KdPrf::AesCtr128);
  CHECK(parse_kd_prf("aes-ctr-256") == KdPrf::AesCtr256);
  CHECK(parse_kd_prf("null") == KdPrf::Null);
  CHECK_FALSE(parse_kd_prf(""));
  CHECK(parse_auth("sha1") == Auth::Sha1);
  CHECK(parse_auth("null") == Auth::Null);
  CHECK_FALSE(parse_auth("sha256"));
  for (auto name : {"left", "alice", "server"}) CHECK(parse_role(name) == Role::Left);
  for (auto name : {"right", "bob", "client"}) CHECK(parse_role(name) == Role::Right);
  CHECK_FALSE(parse_role("middle"));
}

TEST_CASE("keys: canonical names parse back", "[satp][keys]") {
  for (auto c : {Cipher::Null, Cipher::AesCtr128, Cipher::AesCtr192, Cipher::AesCtr256})
    CHECK(parse_cipher(to_string(c)) == c);
  for (auto k : {KdPrf::Null, KdPrf::AesCtr128, KdPrf::AesCtr192, KdPrf::AesCtr256})
    CHECK(parse_kd_prf(to_string(k)) == k);
  for (auto a : {Auth::Null, Auth::Sha1}) CHECK(parse_auth(to_string(a)) == a);
  for (auto r : {Role::Left, Role::Right}) CHECK(parse_role(to_string(r)) == r);
}

TEST_CASE("keys: settings are checked, not clamped", "[satp][keys]") {
  CHECK(settings_problem(Settings{}).empty());
  CHECK(settings_problem(Settings{.tag_length = 20}).empty());
  CHECK(settings_problem(Settings{.tag_length = 0}).empty());
  CHECK(settings_problem(Settings{.auth = Auth::Null, .tag_length = 0}).empty());
  CHECK(settings_problem(Settings{.tag_length = 21}) == "tag length above 20");
  CHECK(settings_problem(Settings{.auth = Auth::Null}) == "tag length must be 0 with auth null");
  CHECK(settings_problem(Settings{.cipher = static_cast<Cipher>(9)}) == "bad cipher");
  CHECK(settings_problem(Settings{.role = static_cast<Role>(2)}) == "bad role");
}
