// Private to web: certificates and keys as PEM text, made and checked with OpenSSL. Tls
// (tls.hpp) stores and serves them; the unit tests use these to make pairs of their own
// (expired, mismatched). OpenSSL types stay in certificate.cpp.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "web/tls.hpp"

namespace web::detail {

struct PemPair {
  std::string certificate;  // one or more PEM certificates, leaf first
  std::string key;          // PEM private key (PKCS#8), unencrypted
};

// A self-signed certificate with a new EC P-256 key: subject CN=dstm-web, a random positive
// 128-bit serial, SHA-256 signature, X509v3 with basicConstraints CA:FALSE, extendedKeyUsage
// serverAuth and subjectAltName `names` (IP literals as IP entries, the rest as DNS entries;
// names that are neither are skipped). Valid from not_before to not_after.
boost::system::result<PemPair, std::string> make_self_signed(
    const std::vector<std::string>& names, std::chrono::system_clock::time_point not_before,
    std::chrono::system_clock::time_point not_after);

struct Checked {
  CertificateInfo info;  // of the leaf (uploaded = false)
  bool valid_now = false;
};

// Parses and checks a pair: at least one certificate, a private key that is not encrypted, the
// key matches the leaf. The error says which of these failed. Validity in time is reported in
// `valid_now`, not checked.
boost::system::result<Checked, std::string> check_pair(std::string_view certificate_pem,
                                                       std::string_view key_pem);

}  // namespace web::detail
