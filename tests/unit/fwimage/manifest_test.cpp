// Tests for fwimage/manifest.hpp: the canonical text, strict parsing, compatibility rules.
#include "fwimage/manifest.hpp"

#include <string>

#include <catch2/catch.hpp>

using namespace fwimage;

namespace {

Manifest sample() {
  Manifest m;
  m.board = "x86-64";
  m.version = "0.2.0 test";
  m.compat = {1, 2};
  m.created = 1763800000;
  Part p;
  p.name = "slot";
  p.size = 12345;
  for (std::size_t i = 0; i < p.sha256.size(); ++i) p.sha256[i] = static_cast<std::uint8_t>(i);
  m.parts.push_back(p);
  return m;
}

constexpr const char* kSampleText =
    R"({"format":1,"board":"x86-64","version":"0.2.0 test","compat_version":"1.2",)"
    R"("created":1763800000,"parts":[{"name":"slot","size":12345,"sha256":)"
    R"("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}]})";

Errc error_of(const std::string& text) {
  const auto r = parse_manifest(text);
  REQUIRE_FALSE(r);
  return r.error().code;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("manifest: the canonical text is exact and parses back", "[fwimage]") {
  CHECK(serialize(sample()) == kSampleText);
  const auto back = parse_manifest(kSampleText);
  REQUIRE(back);
  CHECK(*back == sample());
}

TEST_CASE("manifest: anything the format does not allow is refused", "[fwimage]") {
  const std::string t = kSampleText;
  CHECK(error_of("") == Errc::BadManifest);
  CHECK(error_of("[]") == Errc::BadManifest);
  CHECK(error_of(replaced(t, R"("format":1)", R"("format":2)")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, R"("format":1,)", "")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, R"("format":1,)", R"("format":1,"extra":0,)")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "x86-64", "X86")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "x86-64", "")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "0.2.0 test", "0.2\\n")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "\"1.2\"", "\"1\"")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "\"1.2\"", "\"01.2\"")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "\"1.2\"", "\"1.2.3\"")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "\"1.2\"", "\"1.65536\"")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "1763800000", "-1")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "12345", "0")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "12345", "4294967297")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "\"000102", "\"0g0102")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, "1e1f\"", "1e1\"")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, R"("parts":[)",
                          R"("parts":[{"name":"slot","size":1,"sha256":")" + std::string(64, '0') +
                              R"("},)")) == Errc::BadManifest);  // a name twice
  CHECK(error_of(replaced(t, R"("parts":[{)", R"("parts":[],"x":[{)")) == Errc::BadManifest);
  // Valid JSON of the same manifest, but not the canonical text.
  CHECK(error_of(replaced(t, R"("format":1,)", R"("format": 1,)")) == Errc::BadManifest);
  CHECK(error_of(replaced(t, R"("created":1763800000,)", R"("created":1.7638E9,)")) ==
        Errc::BadManifest);
  CHECK(error_of(replaced(t, "x86-64", "x\\u0038\\u0036-64")) == Errc::BadManifest);
}

TEST_CASE("manifest: compatibility follows board and config schema version", "[fwimage]") {
  const auto m = sample();  // x86-64, 1.2
  CHECK(check_compatible(m, {"x86-64", {1, 2}}, true));
  CHECK(check_compatible(m, {"arm64", {1, 2}}, true).error().code == Errc::WrongBoard);
  CHECK(check_compatible(m, {"x86-64", {2, 2}}, false).error().code == Errc::Incompatible);
  // Another minor: only without keeping the settings.
  CHECK(check_compatible(m, {"x86-64", {1, 1}}, true).error().code == Errc::SettingsIncompatible);
  CHECK(check_compatible(m, {"x86-64", {1, 1}}, false));
  const auto e = check_compatible(m, {"arm64", {1, 2}}, true).error();
  CHECK(e.message == "the image is for board x86-64, this is arm64");
}
