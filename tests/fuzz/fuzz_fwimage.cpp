// libFuzzer target: the firmware's parsers of uploaded and on-disk data (fwimage).
// Input: a mode byte, then:
//   0  a whole file for BundleReader, fed in chunks of (second byte + 1) bytes; nothing can pass
//      the signature, so the invariant is: no part byte reaches the sink, and the verdict is an
//      error.
//   1  a manifest text and part bytes, separated by the first 0xff byte: the target signs the
//      text with its own key, so that the manifest parser and the part stage are reached. A
//      bundle accepted has a manifest that re-serializes to the signed text (one text per
//      manifest) and handed exactly the part bytes to the sink.
//   2  a grubenv block (cut or padded with '#' to 1024 bytes): never crashes; a parsed block that
//      formats again parses to the same variables.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fwimage/bundle.hpp"
#include "fwimage/grubenv.hpp"
#include "fwimage/manifest.hpp"

#include "fuzz_check.hpp"

namespace {

const fwimage::SecretKey& test_key() {
  static const fwimage::SecretKey key = [] {
    fwimage::SecretKey k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return k;
  }();
  return key;
}

void feed_all(fwimage::BundleReader& reader, fuzz::Bytes file, std::size_t chunk,
              const fwimage::BundleReader::PartSink& sink) {
  for (std::size_t at = 0; at < file.size(); at += chunk)
    if (!reader.feed(file.subspan(at, std::min(chunk, file.size() - at)), sink)) return;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto input = std::as_bytes(std::span{data, size}).subspan(2);
  const std::size_t chunk = std::size_t{data[1]} + 1;
  static const auto pub = fwimage::public_key_of(test_key());

  switch (data[0] % 3) {
    case 0: {
      fwimage::BundleReader reader{pub};
      bool reached = false;
      feed_all(reader, input, chunk, [&](std::size_t, core::Bytes) { reached = true; });
      FUZZ_CHECK(!reached);
      FUZZ_CHECK(!reader.finish());
      break;
    }
    case 1: {
      const auto split = std::find(input.begin(), input.end(), std::byte{0xff});
      const std::string text(reinterpret_cast<const char*>(input.data()),
                             static_cast<std::size_t>(split - input.begin()));
      if (text.size() < 2 || text.size() > fwimage::kMaxManifest) return 0;
      std::vector<std::byte> file(fwimage::kMagic.begin(), fwimage::kMagic.end());
      const auto n = static_cast<std::uint32_t>(text.size());
      for (const int shift : {24, 16, 8, 0}) file.push_back(static_cast<std::byte>(n >> shift));
      const auto* chars = reinterpret_cast<const std::byte*>(text.data());
      file.insert(file.end(), chars, chars + text.size());
      const auto sig = fwimage::sign(file, test_key());
      const auto* s = reinterpret_cast<const std::byte*>(sig.data());
      file.insert(file.end(), s, s + sig.size());
      if (split != input.end()) file.insert(file.end(), split + 1, input.end());

      fwimage::BundleReader reader{pub};
      std::vector<std::byte> seen;
      feed_all(reader, file, chunk,
               [&](std::size_t, core::Bytes b) { seen.insert(seen.end(), b.begin(), b.end()); });
      const auto verdict = reader.finish();
      if (verdict) {
        FUZZ_CHECK(fwimage::serialize(*verdict) == text);
        FUZZ_CHECK(split != input.end());
        FUZZ_CHECK(std::equal(seen.begin(), seen.end(), split + 1, input.end()));
      }
      break;
    }
    default: {
      std::vector<std::byte> block(input.begin(), input.end());
      block.resize(fwimage::kGrubenvSize, std::byte{'#'});
      const auto env = fwimage::parse_grubenv(block);
      if (!env) return 0;
      const auto again = fwimage::format_grubenv(*env);
      if (!again) return 0;
      const auto back = fwimage::parse_grubenv(*again);
      FUZZ_CHECK(back && *back == *env);
      break;
    }
  }
  return 0;
}
