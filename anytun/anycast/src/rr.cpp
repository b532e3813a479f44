// RFC 6275 section 5.2 cryptography over Crypto++: keygen tokens, Kbm, the authenticator, and
// the correspondent's rotating nonces.
#include "anycast/rr.hpp"

#include <algorithm>
#include <utility>

#include <cryptopp/hmac.h>
#include <cryptopp/misc.h>
#include <cryptopp/sha.h>

namespace anycast {
namespace {

using Digest = std::array<CryptoPP::byte, CryptoPP::SHA1::DIGESTSIZE>;

// Section 5.2.5: the trailing octet tells the home token (0) from the care-of token (1).
constexpr std::uint8_t kHomeTokenOctet = 0;
constexpr std::uint8_t kCareOfTokenOctet = 1;

template <std::size_t N>
std::array<std::uint8_t, N> first(const Digest& d) noexcept {
  static_assert(N <= std::tuple_size_v<Digest>);
  std::array<std::uint8_t, N> out{};
  std::copy_n(d.begin(), N, out.begin());
  return out;
}

KeygenToken keygen_token(const NodeKey& kcn, const core::Ipv6Address& address, const Nonce& nonce,
                         std::uint8_t which) noexcept {
  CryptoPP::HMAC<CryptoPP::SHA1> mac{kcn.data(), kcn.size()};
  mac.Update(address.bytes().data(), address.bytes().size());
  mac.Update(nonce.data(), nonce.size());
  mac.Update(&which, 1);
  Digest d{};
  mac.Final(d.data());
  return first<std::tuple_size_v<KeygenToken>>(d);
}

}  // namespace

KeygenToken home_keygen_token(const NodeKey& kcn, const core::Ipv6Address& home,
                              const Nonce& nonce) noexcept {
  return keygen_token(kcn, home, nonce, kHomeTokenOctet);
}

KeygenToken care_of_keygen_token(const NodeKey& kcn, const core::Ipv6Address& care_of,
                                 const Nonce& nonce) noexcept {
  return keygen_token(kcn, care_of, nonce, kCareOfTokenOctet);
}

BindingKey binding_key(const KeygenToken& home, const KeygenToken& care_of) noexcept {
  CryptoPP::SHA1 h;
  h.Update(home.data(), home.size());
  h.Update(care_of.data(), care_of.size());
  Digest d{};
  h.Final(d.data());
  return first<std::tuple_size_v<BindingKey>>(d);
}

Authenticator authenticator(const BindingKey& kbm, const core::Ipv6Address& care_of,
                            const core::Ipv6Address& correspondent,
                            std::span<const std::byte> data) noexcept {
  CryptoPP::HMAC<CryptoPP::SHA1> mac{kbm.data(), kbm.size()};
  mac.Update(care_of.bytes().data(), care_of.bytes().size());
  mac.Update(correspondent.bytes().data(), correspondent.bytes().size());
  // Crypto++ takes unsigned char pointers; std::byte and unsigned char may alias.
  mac.Update(reinterpret_cast<const CryptoPP::byte*>(data.data()), data.size());
  Digest d{};
  mac.Final(d.data());
  return first<std::tuple_size_v<Authenticator>>(d);
}

bool authenticator_equal(const Authenticator& a, const Authenticator& b) noexcept {
  return CryptoPP::VerifyBufsEqual(a.data(), b.data(), a.size());
}

bool seal(std::span<std::byte> encoded, const BindingKey& kbm, const core::Ipv6Address& care_of,
          const core::Ipv6Address& correspondent) noexcept {
  const auto portion = authenticated_portion(encoded);
  if (portion.empty()) return false;
  const Authenticator a = authenticator(kbm, care_of, correspondent, portion);
  auto tail = encoded.last(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) tail[i] = std::byte{a[i]};
  return true;
}

NonceTable::NonceTable(Time now, Random random) : random_{std::move(random)} {
  rotate(now);
}

std::pair<std::uint16_t, Nonce> NonceTable::current(Time now) {
  if (now - entries_.back().created >= kNonceInterval) rotate(now);
  return {entries_.back().index, entries_.back().nonce};
}

std::optional<Nonce> NonceTable::find(std::uint16_t index, Time now) const {
  for (const auto& e : entries_)
    if (e.index == index) {
      if (now - e.created >= kMaxNonceLifetime) return std::nullopt;
      return e.nonce;
    }
  return std::nullopt;
}

void NonceTable::rotate(Time now) {
  Entry e{};
  if (entries_.empty()) {
    // A random first index, so that indices from before a restart are unlikely to be current.
    std::array<std::uint8_t, 2> start{};
    random_(start);
    e.index = static_cast<std::uint16_t>((start[0] << 8) | start[1]);
  } else {
    e.index = static_cast<std::uint16_t>(entries_.back().index + 1);
  }
  random_(e.nonce);
  e.created = now;
  entries_.push_back(e);
  if (entries_.size() > kNoncesKept) entries_.pop_front();
}

}  // namespace anycast
