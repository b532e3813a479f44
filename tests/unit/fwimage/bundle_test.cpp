// Tests for fwimage/signing.hpp and fwimage/bundle.hpp: RFC 8032's Ed25519 vector, key files,
// and bundles read in chunks of every size, with a flipped byte anywhere, another key, a cut or
// a longer file.
#include "fwimage/bundle.hpp"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fwimage/signing.hpp"

using namespace fwimage;

namespace {

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view hex) {
  std::array<std::uint8_t, N> out{};
  REQUIRE(from_hex(hex, out));
  return out;
}

std::vector<std::byte> pattern(std::size_t n, std::size_t seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  return v;
}

struct Built {
  std::vector<std::byte> file;
  std::vector<std::vector<std::byte>> parts;
  Manifest manifest;
  std::size_t prefix_size = 0;
};

Built build(const SecretKey& key) {
  Built b;
  b.parts = {pattern(5000, 1), pattern(1, 2), pattern(70000, 3)};
  b.manifest.board = "x86-64";
  b.manifest.version = "1.0.0";
  b.manifest.created = 1;
  const char* names[] = {"kernel", "tiny", "slot"};
  for (std::size_t i = 0; i < b.parts.size(); ++i) {
    PartHasher h;
    h.update(b.parts[i]);
    b.manifest.parts.push_back(Part{names[i], b.parts[i].size(), h.finish()});
  }
  b.file = bundle_prefix(b.manifest, key);
  b.prefix_size = b.file.size();
  for (const auto& p : b.parts) b.file.insert(b.file.end(), p.begin(), p.end());
  return b;
}

struct ReadResult {
  Result<Manifest> result = fail(Errc::Truncated, "");
  std::vector<std::vector<std::byte>> parts;
  bool sink_before_verified = false;
};

ReadResult read(const std::vector<std::byte>& file, const PublicKey& key, std::size_t chunk) {
  BundleReader reader{key};
  ReadResult out;
  const auto sink = [&](std::size_t index, core::Bytes bytes) {
    if (!reader.manifest()) out.sink_before_verified = true;
    if (out.parts.size() <= index) out.parts.resize(index + 1);
    out.parts[index].insert(out.parts[index].end(), bytes.begin(), bytes.end());
  };
  for (std::size_t at = 0; at < file.size(); at += chunk) {
    const auto n = std::min(chunk, file.size() - at);
    if (auto r = reader.feed(core::Bytes{file}.subspan(at, n), sink); !r) {
      // Sticky: the same error again, and at the end.
      CHECK(reader.feed(core::Bytes{file}.first(1), sink).error().code == r.error().code);
      break;
    }
  }
  out.result = reader.finish();
  return out;
}

}  // namespace

TEST_CASE("signing: RFC 8032 test 1 reproduces", "[fwimage]") {
  const auto secret =
      hex_array<32>("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
  const auto expected_public =
      hex_array<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  const auto expected_sig = hex_array<64>(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701c"
      "f9b46bd25bf5f0595bbe24655141438e7a100b");
  CHECK(public_key_of(secret) == expected_public);
  CHECK(sign(core::Bytes{}, secret) == expected_sig);
  CHECK(verify(core::Bytes{}, expected_sig, expected_public));
  auto flipped = expected_sig;
  flipped[10] ^= 1;
  CHECK_FALSE(verify(core::Bytes{}, flipped, expected_public));
}

TEST_CASE("signing: key files name their kind and round trip", "[fwimage]") {
  const auto secret = generate_secret_key();
  const auto pub = public_key_of(secret);
  CHECK(parse_secret_key(format_secret_key(secret)).value() == secret);
  CHECK(parse_public_key(format_public_key(pub)).value() == pub);
  CHECK(parse_secret_key(format_public_key(pub)).error().code == Errc::BadKey);
  CHECK(parse_public_key(format_secret_key(secret)).error().code == Errc::BadKey);
  CHECK(parse_public_key("ed25519-public 00").error().code == Errc::BadKey);
  CHECK(generate_secret_key() != secret);
}

TEST_CASE("bundle: read in chunks of any size it verifies and hands out every part", "[fwimage]") {
  const auto key = generate_secret_key();
  const auto b = build(key);
  for (const std::size_t chunk :
       {std::size_t{1}, std::size_t{7}, std::size_t{4096}, b.file.size()}) {
    INFO("chunk " << chunk);
    const auto r = read(b.file, public_key_of(key), chunk);
    REQUIRE(r.result);
    CHECK(*r.result == b.manifest);
    CHECK(r.parts == b.parts);
    CHECK_FALSE(r.sink_before_verified);
  }
}

TEST_CASE("bundle: one flipped byte anywhere is refused", "[fwimage]") {
  const auto key = generate_secret_key();
  const auto b = build(key);
  const auto pub = public_key_of(key);
  struct Case {
    std::size_t at;
    Errc expected;
  };
  const std::size_t manifest_at = 12;
  const std::size_t signature_at = b.prefix_size - 64;
  const std::vector<Case> cases{
      {0, Errc::BadMagic},
      {7, Errc::BadMagic},
      {11, Errc::BadSignature},  // the length: the signature covers it
      {manifest_at + 5, Errc::BadSignature},
      {signature_at, Errc::BadSignature},
      {signature_at + 63, Errc::BadSignature},
      {b.prefix_size, Errc::HashMismatch},  // the first part's first byte
      {b.prefix_size + 5000, Errc::HashMismatch},
      {b.file.size() - 1, Errc::HashMismatch},
  };
  for (const auto& c : cases) {
    INFO("byte " << c.at);
    auto file = b.file;
    file[c.at] ^= std::byte{0x01};
    const auto r = read(file, pub, 4096);
    REQUIRE_FALSE(r.result);
    CHECK(r.result.error().code == c.expected);
    if (c.expected != Errc::HashMismatch) CHECK(r.parts.empty());  // nothing reached a writer
  }
}

TEST_CASE("bundle: a bundle signed by another key is refused before any part byte", "[fwimage]") {
  const auto b = build(generate_secret_key());
  const auto r = read(b.file, public_key_of(generate_secret_key()), 1);
  REQUIRE_FALSE(r.result);
  CHECK(r.result.error().code == Errc::BadSignature);
  CHECK(r.parts.empty());
}

TEST_CASE("bundle: cut files and extra bytes are refused", "[fwimage]") {
  const auto key = generate_secret_key();
  const auto b = build(key);
  const auto pub = public_key_of(key);
  for (const std::size_t keep : {std::size_t{0}, std::size_t{5}, std::size_t{12}, b.prefix_size - 1,
                                 b.prefix_size, b.file.size() - 1}) {
    INFO("keep " << keep);
    const std::vector<std::byte> cut(b.file.begin(),
                                     b.file.begin() + static_cast<std::ptrdiff_t>(keep));
    const auto r = read(cut, pub, 4096);
    REQUIRE_FALSE(r.result);
    CHECK(r.result.error().code == Errc::Truncated);
  }
  auto longer = b.file;
  longer.push_back(std::byte{0});
  CHECK(read(longer, pub, 4096).result.error().code == Errc::TrailingBytes);
}

TEST_CASE("bundle: a manifest length beyond the bound is refused at once", "[fwimage]") {
  const auto key = generate_secret_key();
  auto file = build(key).file;
  file[8] = std::byte{0x7f};  // 2 GB
  BundleReader reader{public_key_of(key)};
  const auto r = reader.feed(core::Bytes{file}.first(12));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::TooLarge);
}
