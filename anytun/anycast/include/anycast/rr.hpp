// The return-routability cryptography of RFC 6275 section 5.2 as draft-haberman-ipv6-anycast-rr-00
// reuses it: node key, nonces with indices and rotation, keygen tokens, Kbm and the Binding
// Authorization Data authenticator; and the 16-bit sequence comparison of section 9.5.1. Pure:
// randomness and time are passed in. HMAC-SHA1 and SHA-1 come from Crypto++.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>

#include "anycast/wire.hpp"
#include "core/address.hpp"

namespace anycast {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;

// Fills the span with cryptographically random bytes (the daemons pass getrandom()).
using Random = std::function<void(std::span<std::uint8_t>)>;

using NodeKey = std::array<std::uint8_t, 20>;     // Kcn (section 5.2.1)
using Nonce = std::array<std::uint8_t, 8>;        // section 5.2.2
using BindingKey = std::array<std::uint8_t, 20>;  // Kbm (section 5.2.5)

// Timers of RFC 6275 section 12 and the draft's lifetime unit. The two Lifetime units are never
// converted into each other: an anycast BU (E flag) counts 16 s, every other Lifetime field 4 s.
inline constexpr std::chrono::seconds kAnycastBuLifetimeUnit16s{16};
inline constexpr std::chrono::seconds kMhLifetimeUnit4s{4};
inline constexpr std::chrono::seconds kMaxNonceLifetime{240};
inline constexpr std::chrono::seconds kMaxTokenLifetime{210};
inline constexpr std::chrono::seconds kNonceInterval{30};  // a new nonce every 30 s...
inline constexpr std::size_t kNoncesKept = 8;              // ...the last 8 accepted

// First(64, HMAC_SHA1(Kcn, home address | nonce | 0)).
KeygenToken home_keygen_token(const NodeKey& kcn, const core::Ipv6Address& home,
                              const Nonce& nonce) noexcept;
// First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1)).
KeygenToken care_of_keygen_token(const NodeKey& kcn, const core::Ipv6Address& care_of,
                                 const Nonce& nonce) noexcept;
// SHA1(home token | care-of token).
BindingKey binding_key(const KeygenToken& home, const KeygenToken& care_of) noexcept;
// First(96, HMAC_SHA1(Kbm, care-of address | correspondent | data)); data is the datagram's
// authenticated portion (wire.hpp).
Authenticator authenticator(const BindingKey& kbm, const core::Ipv6Address& care_of,
                            const core::Ipv6Address& correspondent,
                            std::span<const std::byte> data) noexcept;
// Constant-time comparison.
bool authenticator_equal(const Authenticator& a, const Authenticator& b) noexcept;
// Computes the authenticator of an encoded BU/BA (encoded with a placeholder authenticator) over
// its authenticated portion and writes it into the datagram's last 12 bytes. False, and nothing
// written, when the datagram is not a BU/BA carrying Binding Authorization Data.
bool seal(std::span<std::byte> encoded, const BindingKey& kbm, const core::Ipv6Address& care_of,
          const core::Ipv6Address& correspondent) noexcept;

// True when a is newer than b modulo 2^16: 0 < (a - b) mod 2^16 < 2^15 (section 9.5.1).
constexpr bool sequence_newer(std::uint16_t a, std::uint16_t b) noexcept {
  const auto d = static_cast<std::uint16_t>(a - b);
  return d != 0 && d < 0x8000;
}

// The correspondent's nonces (section 5.2.2, 5.2.7): a new one every kNonceInterval, the last
// kNoncesKept accepted, none older than kMaxNonceLifetime. Indices count up from a random start
// and wrap.
class NonceTable {
 public:
  NonceTable(Time now, Random random);
  // The nonce to hand out now (rotating first if due) and its index.
  std::pair<std::uint16_t, Nonce> current(Time now);
  // The nonce with this index if it is still accepted at `now`.
  std::optional<Nonce> find(std::uint16_t index, Time now) const;

 private:
  struct Entry {
    std::uint16_t index;
    Nonce nonce;
    Time created;
  };
  void rotate(Time now);
  Random random_;
  std::deque<Entry> entries_;  // newest at the back
};

}  // namespace anycast
