// The firmware bundle: the file an operator uploads to upgrade (docs/firmware.md).
//
//   offset      size  field
//   0           8     magic "DSTMFW" 0x00 0x01 (format 1)
//   8           4     manifest length H, big-endian, 2..kMaxManifest
//   12          H     manifest (manifest.hpp), UTF-8 JSON
//   12 + H      64    Ed25519 signature over bytes [0, 12 + H): magic, length and manifest
//   76 + H      ...   the parts, in the manifest's order, each exactly its size; nothing after
//
// The signature covers the manifest, and the manifest the SHA-256 of every part, so one check
// of the key and one hash per part cover every byte. BundleReader takes the file in chunks of
// any size (an upload, a file read) with bounded memory: the manifest only is buffered.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/bytes.hpp"
#include "fwimage/error.hpp"
#include "fwimage/manifest.hpp"
#include "fwimage/signing.hpp"

namespace fwimage {

inline constexpr std::array<std::byte, 8> kMagic{std::byte{'D'}, std::byte{'S'}, std::byte{'T'},
                                                 std::byte{'M'}, std::byte{'F'}, std::byte{'W'},
                                                 std::byte{0},   std::byte{1}};
inline constexpr std::size_t kMaxManifest = 64 * 1024;
inline constexpr std::size_t kPrefixFixed = 8 + 4 + 64;  // magic, length, signature

// Everything before the parts: magic, length, the manifest's canonical text, its signature.
std::vector<std::byte> bundle_prefix(const Manifest& manifest, const SecretKey& key);

// The SHA-256 of a part's bytes, fed in chunks.
class PartHasher {
 public:
  PartHasher();
  PartHasher(PartHasher&&) noexcept;
  PartHasher& operator=(PartHasher&&) noexcept;
  ~PartHasher();
  void update(core::Bytes bytes);
  Sha256 finish();  // and starts over

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class BundleReader {
 public:
  // Bytes of part `index` as they pass, after the signature verified and before their hash is
  // known: a writer must treat what it wrote as unverified until finish() succeeds.
  using PartSink = std::function<void(std::size_t index, core::Bytes chunk)>;

  explicit BundleReader(const PublicKey& key);
  BundleReader(BundleReader&&) noexcept;
  BundleReader& operator=(BundleReader&&) noexcept;
  ~BundleReader();

  // The next bytes of the file. Errors are sticky: once one is returned, every call returns it.
  // BadMagic, TooLarge (manifest length), BadManifest, BadSignature (checked as soon as the
  // signature is in, before any part byte reaches the sink), HashMismatch (at the end of each
  // part), TrailingBytes.
  Result<void> feed(core::Bytes bytes, const PartSink& sink = {});
  // The manifest, once its signature verified.
  const Manifest* manifest() const noexcept;
  // The end of the file: every part complete and matching. Truncated if the file ended early.
  Result<Manifest> finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace fwimage
