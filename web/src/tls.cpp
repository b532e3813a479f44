// The dashboard's certificate on disk (<state_dir>/tls) and the OpenSSL context built from it.
#include "web/tls.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fmt/format.h>
#include <boost/asio/ssl/context.hpp>

#include "certificate.hpp"
#include "core/address.hpp"
#include "platform/log.hpp"

namespace web {

namespace {

namespace ssl = boost::asio::ssl;
// Errors as values. Always through in_place_error: a std::string also constructs the value types
// here (C++20 aggregate paren-init), so a plain `return message;` would be ambiguous.
template <typename T>
boost::system::result<T, std::string> failure(std::string message) {
  return {boost::system::in_place_error, std::move(message)};
}
namespace fs = std::filesystem;

constexpr std::string_view kUploadedCert = "uploaded.crt";
constexpr std::string_view kUploadedKey = "uploaded.key";
constexpr std::string_view kSelfSignedCert = "self-signed.crt";
constexpr std::string_view kSelfSignedKey = "self-signed.key";
// A PEM chain of a few certificates is a few KiB; anything this large is not one.
constexpr std::size_t kMaxPemBytes = 1024 * 1024;
constexpr auto kSelfSignedValidity = std::chrono::hours{24 * 3650};
// Back-dated so that a client whose clock runs a little behind still accepts it.
constexpr auto kBackdate = std::chrono::hours{1};

std::string errno_text(int err) {
  return std::strerror(err);
}

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    error = fmt::format("cannot read {}: {}", path, errno_text(errno));
    return std::nullopt;
  }
  std::string text;
  text.resize(kMaxPemBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxPemBytes) {
    error = fmt::format("{} is larger than {} bytes", path, kMaxPemBytes);
    return std::nullopt;
  }
  return text;
}

// tmp file + fsync + rename + fsync of the directory: after a crash the file is either the old
// one or the new one, never a torn mix. The mode is set with fchmod so the umask cannot widen
// or narrow it.
bool write_atomically(const std::string& path, std::string_view data, mode_t mode,
                      std::string& error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error = fmt::format("cannot create {}: {}", tmp, errno_text(errno));
    return false;
  }
  bool ok = ::fchmod(fd, mode) == 0;
  for (std::size_t done = 0; ok && done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = fmt::format("cannot write {}: {}", path, errno_text(ok ? errno : err));
    ::unlink(tmp.c_str());
    return false;
  }
  const std::string dir = fs::path{path}.parent_path().string();
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

// The directory holds private keys: created 0700 (parents as needed, with the default mode).
bool ensure_private_dir(const std::string& dir, std::string& error) {
  std::error_code ec;
  const fs::path path{dir};
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = fmt::format("cannot create {}: {}", dir, errno_text(errno));
    return false;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = fmt::format("{} is not a directory", dir);
    return false;
  }
  return true;
}

// Modern TLS only: 1.2 and 1.3, no compression, a fresh key per handshake.
boost::system::result<std::shared_ptr<ssl::context>, std::string> make_context(
    const detail::PemPair& pem) {
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::no_compression | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    boost::system::error_code ec;
    ctx->use_certificate_chain(boost::asio::buffer(pem.certificate), ec);
    if (ec)
      return failure<std::shared_ptr<ssl::context>>(
          fmt::format("cannot use the certificate: {}", ec.message()));
    ctx->use_private_key(boost::asio::buffer(pem.key), ssl::context::pem, ec);
    if (ec)
      return failure<std::shared_ptr<ssl::context>>(
          fmt::format("cannot use the private key: {}", ec.message()));
    ERR_clear_error();
    return ctx;
  } catch (const std::exception& e) {
    ERR_clear_error();
    return failure<std::shared_ptr<ssl::context>>(
        fmt::format("cannot create the TLS context: {}", e.what()));
  }
}

struct Loaded {
  std::shared_ptr<ssl::context> context;
  CertificateInfo info;
  bool valid_now = false;
};

boost::system::result<Loaded, std::string> load_pem(const detail::PemPair& pem, bool uploaded) {
  auto checked = detail::check_pair(pem.certificate, pem.key);
  if (!checked) return failure<Loaded>(checked.error());
  auto ctx = make_context(pem);
  if (!ctx) return failure<Loaded>(ctx.error());
  Loaded out{.context = std::move(*ctx),
             .info = std::move(checked->info),
             .valid_now = checked->valid_now};
  out.info.uploaded = uploaded;
  return out;
}

boost::system::result<Loaded, std::string> load_files(const std::string& cert_path,
                                                      const std::string& key_path, bool uploaded) {
  std::string error;
  auto cert = read_file(cert_path, error);
  if (!cert) return failure<Loaded>(error);
  auto key = read_file(key_path, error);
  if (!key) return failure<Loaded>(error);
  return load_pem({.certificate = std::move(*cert), .key = std::move(*key)}, uploaded);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

struct Tls::Impl {
  std::string dir;
  std::vector<std::string> names;
  Loaded current;
  platform::Logger log{"web"};

  std::string file(std::string_view name) const { return (fs::path{dir} / name).string(); }

  // The self-signed pair, made anew when missing, unreadable, out of its validity, or made for
  // other names (the listen addresses changed).
  boost::system::result<Loaded, std::string> self_signed() {
    const std::string cert_path = file(kSelfSignedCert);
    const std::string key_path = file(kSelfSignedKey);
    if (exists(cert_path) || exists(key_path)) {
      auto loaded = load_files(cert_path, key_path, false);
      if (loaded && loaded->valid_now && covers_names(loaded->info)) return loaded;
      if (!loaded)
        log.warn("self-signed certificate in {} not usable ({}); making a new one", dir,
                 loaded.error());
      else if (!loaded->valid_now)
        log.info("self-signed certificate in {} is outside its validity; making a new one", dir);
      else
        log.info("self-signed certificate in {} is for other names; making a new one", dir);
    }
    const auto now = std::chrono::system_clock::now();
    auto pem = detail::make_self_signed(names, now - kBackdate, now + kSelfSignedValidity);
    if (!pem) return failure<Loaded>(pem.error());
    auto loaded = load_pem(*pem, false);
    if (!loaded) return failure<Loaded>(loaded.error());
    std::string error;
    // The key first: a crash between the two writes leaves a pair that does not match, which
    // the next start replaces instead of serving.
    if (!write_atomically(key_path, pem->key, 0600, error) ||
        !write_atomically(cert_path, pem->certificate, 0644, error))
      return failure<Loaded>(error);
    log.info("made a self-signed certificate for {} (SHA-256 {})", fmt::join(names, ", "),
             loaded->info.fingerprint_sha256);
    return loaded;
  }

  bool covers_names(const CertificateInfo& info) const {
    const std::set<std::string> have{info.names.begin(), info.names.end()};
    std::set<std::string> want;
    for (const auto& n : names) want.insert(n);
    return have == want;
  }
};

Tls::Tls(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
Tls::~Tls() = default;

boost::system::result<std::unique_ptr<Tls>, std::string> Tls::open(std::string dir,
                                                                   std::vector<std::string> names) {
  auto impl = std::make_unique<Impl>();
  impl->dir = std::move(dir);
  // Canonical IP text, so the comparison with the certificate's names is exact; unspecified
  // addresses ("0.0.0.0", "::") name no host and are left out.
  for (auto& n : names) {
    if (auto v4 = core::Ipv4Address::parse(n)) {
      if (v4->is_unspecified()) continue;
      n = v4->to_string();
    } else if (auto v6 = core::Ipv6Address::parse(n)) {
      if (v6->is_unspecified()) continue;
      n = v6->to_string();
    }
    if (std::find(impl->names.begin(), impl->names.end(), n) == impl->names.end())
      impl->names.push_back(n);
  }
  std::string error;
  if (!ensure_private_dir(impl->dir, error)) return failure<std::unique_ptr<Tls>>(error);

  const std::string cert_path = impl->file(kUploadedCert);
  const std::string key_path = impl->file(kUploadedKey);
  if (exists(cert_path) && exists(key_path)) {
    auto loaded = load_files(cert_path, key_path, true);
    if (loaded) {
      if (!loaded->valid_now)
        impl->log.warn("the uploaded certificate is outside its validity ({} to {})",
                       loaded->info.not_before, loaded->info.not_after);
      impl->current = std::move(*loaded);
      return std::unique_ptr<Tls>{new Tls{std::move(impl)}};
    }
    impl->log.warn("the uploaded certificate in {} is not usable ({}); using the self-signed one",
                   impl->dir, loaded.error());
  }
  auto loaded = impl->self_signed();
  if (!loaded) return failure<std::unique_ptr<Tls>>(loaded.error());
  impl->current = std::move(*loaded);
  return std::unique_ptr<Tls>{new Tls{std::move(impl)}};
}

std::shared_ptr<boost::asio::ssl::context> Tls::context() const {
  return impl_->current.context;
}

CertificateInfo Tls::info() const {
  return impl_->current.info;
}

boost::system::result<CertificateInfo, std::string> Tls::install(std::string_view certificate_pem,
                                                                 std::string_view key_pem) {
  if (certificate_pem.size() > kMaxPemBytes || key_pem.size() > kMaxPemBytes)
    return failure<CertificateInfo>(fmt::format("larger than {} bytes", kMaxPemBytes));
  detail::PemPair pem{.certificate = std::string{certificate_pem}, .key = std::string{key_pem}};
  auto loaded = load_pem(pem, true);
  if (!loaded) return failure<CertificateInfo>(loaded.error());
  if (!loaded->valid_now)
    return failure<CertificateInfo>(
        fmt::format("the certificate is not valid now (valid from {} to {})",
                    loaded->info.not_before, loaded->info.not_after));
  std::string error;
  if (!write_atomically(impl_->file(kUploadedKey), pem.key, 0600, error) ||
      !write_atomically(impl_->file(kUploadedCert), pem.certificate, 0644, error))
    return failure<CertificateInfo>(error);
  impl_->current = std::move(*loaded);
  impl_->log.info("installed the uploaded certificate {} (SHA-256 {})", impl_->current.info.subject,
                  impl_->current.info.fingerprint_sha256);
  return impl_->current.info;
}

boost::system::result<CertificateInfo, std::string> Tls::remove_uploaded() {
  for (const auto name : {kUploadedCert, kUploadedKey}) {
    const std::string path = impl_->file(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return failure<CertificateInfo>(fmt::format("cannot remove {}: {}", path, errno_text(errno)));
  }
  auto loaded = impl_->self_signed();
  if (!loaded) return failure<CertificateInfo>(loaded.error());
  impl_->current = std::move(*loaded);
  impl_->log.info("removed the uploaded certificate; using the self-signed one");
  return impl_->current.info;
}

}  // namespace web
