// Ed25519 keys and signatures of firmware bundles (Crypto++). The build signs with a secret key
// kept off the appliance; the running firmware holds the public key and verifies with it.
//
// Key files are one line of text: "ed25519-secret <64 hex>" (the 32-byte seed) or
// "ed25519-public <64 hex>", so that a public key is never taken for a secret one or back.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "fwimage/error.hpp"

namespace fwimage {

using SecretKey = std::array<std::uint8_t, 32>;
using PublicKey = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;

// A fresh secret key from the operating system's CSPRNG.
SecretKey generate_secret_key();
PublicKey public_key_of(const SecretKey& secret);

Signature sign(core::Bytes message, const SecretKey& secret);
bool verify(core::Bytes message, const Signature& signature, const PublicKey& key);

std::string format_secret_key(const SecretKey& key);  // the key file's line, with "\n"
std::string format_public_key(const PublicKey& key);
// One line as above (a final newline allowed); BadKey otherwise.
Result<SecretKey> parse_secret_key(std::string_view text);
Result<PublicKey> parse_public_key(std::string_view text);

}  // namespace fwimage
