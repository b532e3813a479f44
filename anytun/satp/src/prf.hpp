// Private: the Crypto++ state of the per-packet key derivation, shared by KeyDerivation and the
// packet codec so that the codec reaches it without a second indirection.
#pragma once

#include <cryptopp/aes.h>

#include "satp/keys.hpp"

namespace satp {

class Prf {
 public:
  // The caller has checked master_key.size == key_size(kd_prf).
  Prf(KdPrf kd_prf, const MasterKey& master_key, const MasterSalt& salt);

  // The first out.size() (<= 2 blocks) bytes of PRF(label, seq).
  void run(std::uint32_t label, std::uint32_t seq, std::span<std::uint8_t> out) const noexcept;
  // The keys `role` uses for packet `seq` in direction `dir`: the encryption key of
  // `enc_key_size` bytes and the salt when enc_key_size > 0, the auth key when `auth`. All PRF
  // blocks go through AES in one call (AES-NI pipelines them).
  void derive(Role role, Direction dir, std::uint32_t seq, std::size_t enc_key_size, bool auth,
              PacketKeys& out) const noexcept;

 private:
  bool null_;
  MasterSalt salt_;
  CryptoPP::AES::Encryption aes_;
};

}  // namespace satp
