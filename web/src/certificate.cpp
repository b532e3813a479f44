// Certificates with OpenSSL's C API: a self-signed pair made on first start, and the checks an
// uploaded pair must pass. Every OpenSSL object is owned by a unique_ptr; OpenSSL's error queue
// is turned into the message and cleared, so one failure never leaks into the next call.
#include "certificate.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "core/address.hpp"

namespace web::detail {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509_free>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Name = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
void free_general_names(GENERAL_NAMES* names) noexcept {
  GENERAL_NAMES_free(names);
}
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<free_general_names>>;

// "<what>: <OpenSSL's reason>", and an empty error queue afterwards.
std::string openssl_error(std::string_view what) {
  const unsigned long code = ERR_peek_last_error();
  std::string reason;
  if (code != 0) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    reason = buffer.data();
  }
  ERR_clear_error();
  return reason.empty() ? std::string{what} : fmt::format("{}: {}", what, reason);
}

Bio memory_bio(std::string_view text) {
  // BIO_new_mem_buf reads the caller's bytes in place; its length is an int.
  if (text.size() > 16 * 1024 * 1024) return Bio{};
  return Bio{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string{data, static_cast<std::size_t>(size)} : std::string{};
}

// An encrypted key would need a passphrase the dashboard does not have: refuse instead of
// letting OpenSSL prompt on the terminal.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string iso8601(const ASN1_TIME* time) {
  std::tm tm{};
  if (!time || ASN1_TIME_to_tm(time, &tm) != 1) return {};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string name_text(const X509_NAME* name) {
  Bio bio{BIO_new(BIO_s_mem())};
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  return bio_text(bio.get());
}

std::string fingerprint(const X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), digest.data(), &size) != 1) return {};
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    if (i) out += ':';
    out += fmt::format("{:02X}", digest[i]);
  }
  return out;
}

std::vector<std::string> alt_names(const X509* cert) {
  std::vector<std::string> out;
  GeneralNames names{
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))};
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                       static_cast<std::size_t>(ASN1_STRING_length(dns)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      const unsigned char* b = ASN1_STRING_get0_data(ip);
      if (ASN1_STRING_length(ip) == 4) {
        out.push_back(
            core::Ipv4Address{std::array<std::uint8_t, 4>{b[0], b[1], b[2], b[3]}}.to_string());
      } else if (ASN1_STRING_length(ip) == 16) {
        core::Ipv6Address::Octets octets{};
        std::copy(b, b + 16, octets.begin());
        out.push_back(core::Ipv6Address{octets}.to_string());
      }
    }
  }
  ERR_clear_error();
  return out;
}

bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.'))
      return false;
  return true;
}

// The subjectAltName extension built as values, not as an OpenSSL config string, so no name can
// smuggle in another entry (a "," or ":" in a name).
bool add_alt_names(X509* cert, const std::vector<std::string>& names) {
  GeneralNames gens{sk_GENERAL_NAME_new_null()};
  if (!gens) return false;
  for (const auto& name : names) {
    std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>> gen{GENERAL_NAME_new()};
    if (!gen) return false;
    const bool is_ip = core::Ipv4Address::parse(name) || core::Ipv6Address::parse(name);
    if (is_ip) {
      ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.c_str());
      if (!ip) return false;
      GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, ip);
    } else if (is_dns_name(name)) {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      if (!dns || ASN1_STRING_set(dns, name.data(), static_cast<int>(name.size())) != 1) {
        ASN1_IA5STRING_free(dns);
        return false;
      }
      GENERAL_NAME_set0_value(gen.get(), GEN_DNS, dns);
    } else {
      continue;
    }
    if (sk_GENERAL_NAME_push(gens.get(), gen.get()) <= 0) return false;
    gen.release();  // owned by the stack now
  }
  if (sk_GENERAL_NAME_num(gens.get()) == 0) return true;
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool add_extension(X509* cert, X509V3_CTX& ctx, int nid, const char* value) {
  Extension ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value)};
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool set_random_serial(X509* cert) {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) return false;
  // RFC 5280 section 4.1.2.2: positive, at most 20 octets. Clearing the top bit keeps it
  // positive; setting the next keeps all 16 octets significant.
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);
  Bignum bn{BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr)};
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr;
}

}  // namespace

boost::system::result<PemPair, std::string> make_self_signed(
    const std::vector<std::string>& names, std::chrono::system_clock::time_point not_before,
    std::chrono::system_clock::time_point not_after) {
  // in_place_error: a string would also construct PemPair (C++20 aggregate paren-init).
  const auto fail = [](std::string_view what) -> boost::system::result<PemPair, std::string> {
    return {boost::system::in_place_error, openssl_error(what)};
  };
  ERR_clear_error();
  Key key{EVP_EC_gen("P-256")};
  if (!key) return fail("cannot generate an EC P-256 key");
  Cert cert{X509_new()};
  if (!cert || X509_set_version(cert.get(), 2) != 1 || !set_random_serial(cert.get()))
    return fail("cannot create a certificate");
  const auto seconds = [](std::chrono::system_clock::time_point t) {
    return std::chrono::system_clock::to_time_t(t);
  };
  if (!ASN1_TIME_set(X509_getm_notBefore(cert.get()), seconds(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), seconds(not_after)))
    return fail("cannot set the certificate's validity");
  if (X509_set_pubkey(cert.get(), key.get()) != 1) return fail("cannot set the certificate's key");
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>("dstm-web");
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, cn, -1, -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), subject) != 1)
    return fail("cannot set the certificate's name");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  if (!add_extension(cert.get(), ctx, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_extension(cert.get(), ctx, NID_ext_key_usage, "serverAuth") ||
      !add_extension(cert.get(), ctx, NID_subject_key_identifier, "hash") ||
      !add_alt_names(cert.get(), names))
    return fail("cannot add the certificate's extensions");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
    return fail("cannot sign the certificate");

  Bio cert_out{BIO_new(BIO_s_mem())};
  Bio key_out{BIO_new(BIO_s_mem())};
  if (!cert_out || !key_out || PEM_write_bio_X509(cert_out.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1)
    return fail("cannot write the certificate as PEM");
  return PemPair{.certificate = bio_text(cert_out.get()), .key = bio_text(key_out.get())};
}

boost::system::result<Checked, std::string> check_pair(std::string_view certificate_pem,
                                                       std::string_view key_pem) {
  ERR_clear_error();
  Bio cert_in = memory_bio(certificate_pem);
  if (!cert_in) return std::string{"the certificate is too large"};
  std::vector<Cert> chain;
  while (Cert c{PEM_read_bio_X509(cert_in.get(), nullptr, no_passphrase, nullptr)})
    chain.push_back(std::move(c));
  ERR_clear_error();  // the loop ends with "no start line" at the end of the text
  if (chain.empty()) return std::string{"the certificate is not a PEM certificate"};

  Bio key_in = memory_bio(key_pem);
  if (!key_in) return std::string{"the private key is too large"};
  Key key{PEM_read_bio_PrivateKey(key_in.get(), nullptr, no_passphrase, nullptr)};
  if (!key) {
    ERR_clear_error();
    return std::string{"the private key is not an unencrypted PEM private key"};
  }
  X509* leaf = chain.front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return std::string{"the private key does not match the certificate"};
  }
  Checked out;
  out.info.subject = name_text(X509_get_subject_name(leaf));
  out.info.issuer = name_text(X509_get_issuer_name(leaf));
  out.info.not_before = iso8601(X509_get0_notBefore(leaf));
  out.info.not_after = iso8601(X509_get0_notAfter(leaf));
  out.info.fingerprint_sha256 = fingerprint(leaf);
  out.info.names = alt_names(leaf);
  // X509_cmp_current_time: -1 when the time is before now, 1 after, 0 on a malformed time.
  out.valid_now = X509_cmp_current_time(X509_get0_notBefore(leaf)) < 0 &&
                  X509_cmp_current_time(X509_get0_notAfter(leaf)) > 0;
  ERR_clear_error();
  return out;
}

}  // namespace web::detail
