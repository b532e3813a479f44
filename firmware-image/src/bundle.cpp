// The firmware bundle's layout, writer prefix and streaming reader (bundle.hpp).
#include "fwimage/bundle.hpp"

#include <algorithm>
#include <cstring>

#include <cryptopp/sha.h>
#include <fmt/core.h>

namespace fwimage {
namespace {

std::uint32_t read_be32(const std::byte* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | static_cast<std::uint32_t>(p[3]);
}

}  // namespace

std::vector<std::byte> bundle_prefix(const Manifest& manifest, const SecretKey& key) {
  const auto text = serialize(manifest);
  std::vector<std::byte> out(kMagic.begin(), kMagic.end());
  const auto n = static_cast<std::uint32_t>(text.size());
  for (const int shift : {24, 16, 8, 0}) out.push_back(static_cast<std::byte>(n >> shift));
  const auto* chars = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), chars, chars + text.size());
  const auto sig = sign(out, key);
  const auto* s = reinterpret_cast<const std::byte*>(sig.data());
  out.insert(out.end(), s, s + sig.size());
  return out;
}

struct PartHasher::State {
  CryptoPP::SHA256 sha;
};
PartHasher::PartHasher() : state_{std::make_unique<State>()} {}
PartHasher::PartHasher(PartHasher&&) noexcept = default;
PartHasher& PartHasher::operator=(PartHasher&&) noexcept = default;
PartHasher::~PartHasher() = default;
void PartHasher::update(core::Bytes bytes) {
  state_->sha.Update(reinterpret_cast<const CryptoPP::byte*>(bytes.data()), bytes.size());
}
Sha256 PartHasher::finish() {
  Sha256 out{};
  state_->sha.Final(out.data());
  return out;
}

struct BundleReader::State {
  enum class Stage { Prefix, Manifest, Signed, Parts, Done };
  PublicKey key;
  Stage stage = Stage::Prefix;
  std::vector<std::byte> signed_bytes;  // magic, length, manifest
  std::size_t manifest_length = 0;
  std::array<std::uint8_t, 64> signature{};
  std::size_t signature_got = 0;
  std::optional<Manifest> manifest;
  std::size_t part = 0;
  std::uint64_t part_got = 0;
  PartHasher hasher;
  std::optional<Error> error;

  Result<void> stop(Error e) {
    error = e;
    return e;
  }

  // Takes what `bytes` holds of the current fixed-size field into `into` up to `want` bytes.
  static std::size_t take(core::Bytes& bytes, std::vector<std::byte>& into, std::size_t want) {
    const auto n = std::min(bytes.size(), want - into.size());
    into.insert(into.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    return n;
  }

  Result<void> feed(core::Bytes bytes, const PartSink& sink) {
    if (error) return *error;
    while (!bytes.empty()) {
      switch (stage) {
        case Stage::Prefix: {
          take(bytes, signed_bytes, 12);
          if (signed_bytes.size() < 12) return {};
          if (!std::equal(kMagic.begin(), kMagic.end(), signed_bytes.begin()))
            return stop(fail(Errc::BadMagic, "not a firmware bundle (wrong magic)"));
          manifest_length = read_be32(signed_bytes.data() + 8);
          if (manifest_length < 2 || manifest_length > kMaxManifest)
            return stop(fail(Errc::TooLarge, fmt::format("manifest length {} outside 2..{}",
                                                         manifest_length, kMaxManifest)));
          stage = Stage::Manifest;
          break;
        }
        case Stage::Manifest:
          take(bytes, signed_bytes, 12 + manifest_length);
          if (signed_bytes.size() == 12 + manifest_length) stage = Stage::Signed;
          break;
        case Stage::Signed: {
          const auto n = std::min(bytes.size(), signature.size() - signature_got);
          std::memcpy(signature.data() + signature_got, bytes.data(), n);
          signature_got += n;
          bytes = bytes.subspan(n);
          if (signature_got < signature.size()) return {};
          // The signature first: nothing of the manifest is believed before it verifies.
          if (!verify(signed_bytes, signature, key))
            return stop(
                fail(Errc::BadSignature, "the signature does not verify with this firmware's key"));
          const std::string_view text{reinterpret_cast<const char*>(signed_bytes.data()) + 12,
                                      manifest_length};
          auto m = parse_manifest(text);
          if (!m) return stop(m.error());
          manifest = std::move(*m);
          stage = Stage::Parts;
          break;
        }
        case Stage::Parts: {
          const auto& p = manifest->parts[part];
          const auto n =
              static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), p.size - part_got));
          const auto chunk = bytes.first(n);
          hasher.update(chunk);
          if (sink) sink(part, chunk);
          part_got += n;
          bytes = bytes.subspan(n);
          if (part_got < p.size) return {};
          if (hasher.finish() != p.sha256)
            return stop(fail(Errc::HashMismatch,
                             fmt::format("part {} does not match its SHA-256", p.name)));
          part_got = 0;
          if (++part == manifest->parts.size()) stage = Stage::Done;
          break;
        }
        case Stage::Done:
          return stop(fail(Errc::TrailingBytes, "bytes after the last part"));
      }
    }
    return {};
  }
};

BundleReader::BundleReader(const PublicKey& key) : state_{std::make_unique<State>()} {
  state_->key = key;
}
BundleReader::BundleReader(BundleReader&&) noexcept = default;
BundleReader& BundleReader::operator=(BundleReader&&) noexcept = default;
BundleReader::~BundleReader() = default;

Result<void> BundleReader::feed(core::Bytes bytes, const PartSink& sink) {
  return state_->feed(bytes, sink);
}

const Manifest* BundleReader::manifest() const noexcept {
  return state_->manifest ? &*state_->manifest : nullptr;
}

Result<Manifest> BundleReader::finish() {
  auto& s = *state_;
  if (s.error) return *s.error;
  if (s.stage != State::Stage::Done) {
    s.error = fail(Errc::Truncated, "the file ends before the bundle does");
    return *s.error;
  }
  return *s.manifest;
}

}  // namespace fwimage
