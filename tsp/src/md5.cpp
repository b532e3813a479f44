// MD5 through Crypto++ (its Weak namespace: MD5 is only used as RFC 2831 requires).
#define CRYPTOPP_ENABLE_NAMESPACE_WEAK 1
#include <cryptopp/md5.h>

#include "tsp/sasl.hpp"

namespace tsp {

Md5Digest md5(std::string_view data) {
  static_assert(CryptoPP::Weak::MD5::DIGESTSIZE == std::tuple_size_v<Md5Digest>);
  CryptoPP::Weak::MD5 h;
  std::array<CryptoPP::byte, CryptoPP::Weak::MD5::DIGESTSIZE> raw{};
  // Crypto++ takes unsigned char pointers; char and unsigned char may alias.
  h.Update(reinterpret_cast<const CryptoPP::byte*>(data.data()), data.size());
  h.Final(raw.data());
  Md5Digest out{};
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = raw[i];
  return out;
}

}  // namespace tsp
