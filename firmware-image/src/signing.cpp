// Ed25519 through Crypto++ (signing.hpp).
#include "fwimage/signing.hpp"

#include <sys/random.h>

#include <cryptopp/osrng.h>
#include <cryptopp/xed25519.h>

#include "fwimage/manifest.hpp"

namespace fwimage {
namespace {

constexpr std::string_view kSecretTag = "ed25519-secret ";
constexpr std::string_view kPublicTag = "ed25519-public ";

template <typename Key>
Result<Key> parse_key(std::string_view text, std::string_view tag, std::string_view what) {
  if (text.ends_with('\n')) text.remove_suffix(1);
  Key key{};
  if (!text.starts_with(tag) || !from_hex(text.substr(tag.size()), key))
    return fail(Errc::BadKey, std::string{what} + " key file must be one line \"" +
                                  std::string{tag} + "<64 hex digits>\"");
  return key;
}

}  // namespace

SecretKey generate_secret_key() {
  SecretKey key{};
  std::size_t got = 0;
  while (got < key.size()) {
    const auto n = ::getrandom(key.data() + got, key.size() - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  return key;
}

PublicKey public_key_of(const SecretKey& secret) {
  const CryptoPP::ed25519::Signer signer{secret.data()};
  const auto& key = static_cast<const CryptoPP::ed25519PrivateKey&>(signer.GetPrivateKey());
  PublicKey out{};
  std::copy_n(key.GetPublicKeyBytePtr(), out.size(), out.begin());
  return out;
}

Signature sign(core::Bytes message, const SecretKey& secret) {
  const CryptoPP::ed25519::Signer signer{secret.data()};
  Signature sig{};
  // Ed25519 is deterministic: the generator is not used.
  signer.SignMessage(CryptoPP::NullRNG(), reinterpret_cast<const CryptoPP::byte*>(message.data()),
                     message.size(), sig.data());
  return sig;
}

bool verify(core::Bytes message, const Signature& signature, const PublicKey& key) {
  const CryptoPP::ed25519::Verifier verifier{key.data()};
  return verifier.VerifyMessage(reinterpret_cast<const CryptoPP::byte*>(message.data()),
                                message.size(), signature.data(), signature.size());
}

std::string format_secret_key(const SecretKey& key) {
  return std::string{kSecretTag} + to_hex(key) + "\n";
}
std::string format_public_key(const PublicKey& key) {
  return std::string{kPublicTag} + to_hex(key) + "\n";
}
Result<SecretKey> parse_secret_key(std::string_view text) {
  return parse_key<SecretKey>(text, kSecretTag, "a secret");
}
Result<PublicKey> parse_public_key(std::string_view text) {
  return parse_key<PublicKey>(text, kPublicTag, "a public");
}

}  // namespace fwimage
