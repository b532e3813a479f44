// Tests for the dashboard's certificate store: the self-signed pair made on first start and
// reloaded after, an uploaded pair checked, stored and preferred, and what is refused.
#include "web/tls.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>

#include "certificate.hpp"
#include "support/daemon_process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
namespace fs = std::filesystem;

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string read(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

std::unique_ptr<web::Tls> open(const fs::path& dir, std::vector<std::string> names) {
  auto tls = web::Tls::open(dir.string(), std::move(names));
  INFO((tls ? std::string{} : tls.error()));
  REQUIRE(tls.has_value());
  return std::move(*tls);
}

web::detail::PemPair pair(std::vector<std::string> names, Clock::time_point from,
                          Clock::time_point to) {
  auto p = web::detail::make_self_signed(names, from, to);
  REQUIRE(p.has_value());
  return *p;
}

web::detail::PemPair valid_pair(std::vector<std::string> names) {
  const auto now = Clock::now();
  return pair(std::move(names), now - 1h, now + 24h);
}

// The same key, encrypted with a passphrase (which the dashboard cannot know).
std::string encrypted(const std::string& key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free_all)> in{
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free_all};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{
      PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free};
  REQUIRE(key);
  std::unique_ptr<BIO, decltype(&BIO_free_all)> out{BIO_new(BIO_s_mem()), &BIO_free_all};
  char pass[] = "passphrase";
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(out.get(), key.get(), EVP_aes_128_cbc(), pass,
                                        sizeof pass - 1, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

TEST_CASE("tls: the first open makes a self-signed certificate for the names, key 0600", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "state" / "tls";
  auto tls = open(dir, {"127.0.0.1", "2001:DB8::1", "localhost", "0.0.0.0", "127.0.0.1"});
  CHECK(mode_of(dir) == 0700);
  CHECK(mode_of(dir / "self-signed.key") == 0600);
  CHECK(mode_of(dir / "self-signed.crt") == 0644);
  CHECK(read(dir / "self-signed.key").starts_with("-----BEGIN PRIVATE KEY-----"));
  CHECK_FALSE(fs::exists(dir / "uploaded.crt"));

  const auto info = tls->info();
  CHECK_FALSE(info.uploaded);
  CHECK(info.subject == "CN=dstm-web");
  CHECK(info.issuer == "CN=dstm-web");
  // Canonical IP text, no unspecified address, no duplicate.
  CHECK(info.names == std::vector<std::string>{"127.0.0.1", "2001:db8::1", "localhost"});
  CHECK(std::regex_match(info.fingerprint_sha256, std::regex{"([0-9A-F]{2}:){31}[0-9A-F]{2}"}));
  CHECK(std::regex_match(info.not_before, std::regex{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"}));
  // Ten years.
  const int from_year = std::stoi(info.not_before.substr(0, 4));
  const int to_year = std::stoi(info.not_after.substr(0, 4));
  CHECK(to_year - from_year == 10);
  CHECK(tls->context() != nullptr);

  const auto checked =
      web::detail::check_pair(read(dir / "self-signed.crt"), read(dir / "self-signed.key"));
  REQUIRE(checked.has_value());
  CHECK(checked->valid_now);
  CHECK(checked->info.fingerprint_sha256 == info.fingerprint_sha256);
}

TEST_CASE("tls: a second open reloads the same pair, and other names make a new one", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  const auto first = open(dir, {"127.0.0.1", "localhost"})->info();
  const auto again = open(dir, {"localhost", "127.0.0.1"})->info();  // order does not matter
  CHECK(again.fingerprint_sha256 == first.fingerprint_sha256);
  const auto other = open(dir, {"192.0.2.1", "localhost"})->info();
  CHECK(other.fingerprint_sha256 != first.fingerprint_sha256);
  CHECK(other.names == std::vector<std::string>{"192.0.2.1", "localhost"});
}

TEST_CASE("tls: a corrupt or expired self-signed pair is replaced", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  const auto first = open(dir, {"127.0.0.1"})->info();

  tmp.write("tls/self-signed.crt", "garbage");
  const auto replaced = open(dir, {"127.0.0.1"})->info();
  CHECK(replaced.fingerprint_sha256 != first.fingerprint_sha256);

  const auto now = Clock::now();
  const auto old = pair({"127.0.0.1"}, now - 48h, now - 24h);
  tmp.write("tls/self-signed.crt", old.certificate);
  tmp.write("tls/self-signed.key", old.key);
  const auto renewed = open(dir, {"127.0.0.1"});
  CHECK(renewed->info().fingerprint_sha256 != replaced.fingerprint_sha256);
  CHECK(web::detail::check_pair(read(dir / "self-signed.crt"), read(dir / "self-signed.key"))
            ->valid_now);
}

TEST_CASE("tls: install takes a good pair, stores it and prefers it from then on", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  auto tls = open(dir, {"127.0.0.1"});
  const auto self_signed = tls->info();
  const auto context_before = tls->context();

  const auto leaf = valid_pair({"dashboard.example.net", "192.0.2.7"});
  const auto other = valid_pair({"ca.example.net"});
  // A chain (leaf first) is accepted as it is.
  const auto installed = tls->install(leaf.certificate + other.certificate, leaf.key);
  REQUIRE(installed.has_value());
  CHECK(installed->uploaded);
  CHECK(installed->names == std::vector<std::string>{"dashboard.example.net", "192.0.2.7"});
  CHECK(installed->fingerprint_sha256 != self_signed.fingerprint_sha256);
  CHECK(tls->info().fingerprint_sha256 == installed->fingerprint_sha256);
  CHECK(tls->context() != context_before);  // new connections get the new certificate

  CHECK(mode_of(dir / "uploaded.key") == 0600);
  CHECK(read(dir / "uploaded.key") == leaf.key);
  CHECK(read(dir / "uploaded.crt") == leaf.certificate + other.certificate);
  CHECK_FALSE(fs::exists(dir / "uploaded.key.tmp"));

  // The next start uses it.
  const auto reopened = open(dir, {"127.0.0.1"})->info();
  CHECK(reopened.uploaded);
  CHECK(reopened.fingerprint_sha256 == installed->fingerprint_sha256);
}

TEST_CASE("tls: install refuses mismatched, garbage, encrypted and expired pairs", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  auto tls = open(dir, {"127.0.0.1"});
  const auto before = tls->info();
  const auto context_before = tls->context();
  const auto a = valid_pair({"a.example.net"});
  const auto b = valid_pair({"b.example.net"});
  const auto now = Clock::now();
  const auto expired = pair({"old.example.net"}, now - 48h, now - 24h);
  const auto future = pair({"new.example.net"}, now + 24h, now + 48h);

  struct Row {
    std::string name;
    std::string certificate;
    std::string key;
    std::string error;
  };
  const std::vector<Row> rows{
      {"mismatched key", a.certificate, b.key, "the private key does not match the certificate"},
      {"garbage certificate", "not a certificate", a.key,
       "the certificate is not a PEM certificate"},
      {"empty certificate", "", a.key, "the certificate is not a PEM certificate"},
      {"garbage key", a.certificate,
       "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
       "the private key is not an unencrypted PEM private key"},
      {"key and certificate swapped", a.key, a.certificate,
       "the certificate is not a PEM certificate"},
      {"encrypted key", a.certificate, encrypted(a.key),
       "the private key is not an unencrypted PEM private key"},
      {"expired", expired.certificate, expired.key, "the certificate is not valid now"},
      {"not yet valid", future.certificate, future.key, "the certificate is not valid now"},
  };
  for (const auto& row : rows) {
    INFO(row.name);
    const auto r = tls->install(row.certificate, row.key);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error(), Catch::StartsWith(row.error));
    // Nothing changed.
    CHECK(tls->info().fingerprint_sha256 == before.fingerprint_sha256);
    CHECK_FALSE(tls->info().uploaded);
    CHECK(tls->context() == context_before);
    CHECK_FALSE(fs::exists(dir / "uploaded.crt"));
    CHECK_FALSE(fs::exists(dir / "uploaded.key"));
  }
}

TEST_CASE("tls: remove_uploaded goes back to the self-signed certificate", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  auto tls = open(dir, {"127.0.0.1"});
  const auto self_signed = tls->info();
  const auto p = valid_pair({"dashboard.example.net"});
  REQUIRE(tls->install(p.certificate, p.key).has_value());

  const auto removed = tls->remove_uploaded();
  REQUIRE(removed.has_value());
  CHECK_FALSE(removed->uploaded);
  CHECK(removed->fingerprint_sha256 == self_signed.fingerprint_sha256);
  CHECK(tls->info().fingerprint_sha256 == self_signed.fingerprint_sha256);
  CHECK_FALSE(fs::exists(dir / "uploaded.crt"));
  CHECK_FALSE(fs::exists(dir / "uploaded.key"));
  CHECK_FALSE(open(dir, {"127.0.0.1"})->info().uploaded);
}

TEST_CASE("tls: an uploaded pair that no longer loads falls back to the self-signed one", "[web]") {
  test::TempDir tmp;
  const auto dir = tmp / "tls";
  const auto self_signed = open(dir, {"127.0.0.1"})->info();
  const auto a = valid_pair({"a.example.net"});
  const auto b = valid_pair({"b.example.net"});
  tmp.write("tls/uploaded.crt", a.certificate);
  tmp.write("tls/uploaded.key", b.key);  // a torn upload: the pair does not match
  const auto info = open(dir, {"127.0.0.1"})->info();
  CHECK_FALSE(info.uploaded);
  CHECK(info.fingerprint_sha256 == self_signed.fingerprint_sha256);
}

TEST_CASE("tls: open reports a state directory it cannot use", "[web]") {
  test::TempDir tmp;
  tmp.write("file", "x");
  const auto tls = web::Tls::open((tmp / "file" / "tls").string(), {"127.0.0.1"});
  REQUIRE_FALSE(tls.has_value());
  CHECK_THAT(tls.error(), Catch::Contains("file/tls"));
}

}  // namespace
