// The dashboard's TLS certificate: an uploaded one when the operator gave one, otherwise a
// self-signed one generated on first start and kept in the state directory.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

namespace boost::asio::ssl {
class context;
}

namespace web {

struct CertificateInfo {
  std::string subject;
  std::string issuer;
  std::string not_before;  // ISO 8601, UTC
  std::string not_after;
  std::string fingerprint_sha256;  // "AB:CD:..."
  std::vector<std::string> names;  // subjectAltName entries (DNS and IP)
  bool uploaded = false;           // false: the generated self-signed certificate
};

class Tls {
 public:
  // Uses <dir>/uploaded.crt + uploaded.key when both exist and load, else <dir>/self-signed.crt +
  // .key, generating them (EC P-256, ten years, subjectAltName = `names`: IP literals become IP
  // entries, others DNS) when missing. Keys are written with mode 0600. The error is for the
  // operator.
  static boost::system::result<std::unique_ptr<Tls>, std::string> open(
      std::string dir, std::vector<std::string> names);
  ~Tls();
  Tls(const Tls&) = delete;
  Tls& operator=(const Tls&) = delete;

  // The context new connections use (a connection keeps the one it started with).
  std::shared_ptr<boost::asio::ssl::context> context() const;
  CertificateInfo info() const;

  // Checks the PEM certificate (chain allowed, leaf first) and private key: both parse, the key
  // matches, the leaf is valid now. Then stores them as uploaded.* (atomically) and uses them for
  // new connections. Nothing changes on error.
  boost::system::result<CertificateInfo, std::string> install(std::string_view certificate_pem,
                                                              std::string_view key_pem);
  // Deletes the uploaded pair and goes back to the self-signed certificate.
  boost::system::result<CertificateInfo, std::string> remove_uploaded();

 private:
  struct Impl;
  explicit Tls(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace web
