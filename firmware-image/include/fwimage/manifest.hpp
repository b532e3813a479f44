// The manifest of a firmware bundle (docs/firmware.md): what the image is for and what it holds,
// as canonical JSON, signed with the bundle. Parsed strictly: it comes from an uploaded file and
// is trusted only after its signature verified, but it is parsed to find that out.
//
//   {"format":1,"board":"x86-64","version":"0.2.0","compat_version":"1.0",
//    "created":1763800000,"parts":[{"name":"slot","size":12345,"sha256":"<64 hex>"}]}
//
// - board: what the image runs on; an upgrade to another board is refused.
// - compat_version "major.minor" of the config schema (OpenWrt's rule): another major is
//   refused, another minor can be installed only without keeping the settings.
// - created: seconds since the epoch (SOURCE_DATE_EPOCH of the build, so builds reproduce).
// - parts: 1..8, in the order their bytes follow the signature.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fwimage/error.hpp"

namespace fwimage {

inline constexpr std::uint64_t kFormat = 1;
inline constexpr std::size_t kMaxParts = 8;
inline constexpr std::size_t kMaxText = 64;  // board, version, part names
// A part is written to a disk partition: 4 GiB is far above any slot.
inline constexpr std::uint64_t kMaxPartSize = std::uint64_t{1} << 32;

using Sha256 = std::array<std::uint8_t, 32>;

struct Part {
  std::string name;  // [a-z0-9_-], 1..kMaxText
  std::uint64_t size = 0;
  Sha256 sha256{};
  bool operator==(const Part&) const = default;
};

struct CompatVersion {
  std::uint32_t major = 1;
  std::uint32_t minor = 0;
  bool operator==(const CompatVersion&) const = default;
};

struct Manifest {
  std::string board;    // [a-z0-9_-], 1..kMaxText
  std::string version;  // printable ASCII, 1..kMaxText
  CompatVersion compat;
  std::uint64_t created = 0;
  std::vector<Part> parts;
  bool operator==(const Manifest&) const = default;
};

// The canonical text: keys in the order above, no spaces. Precondition: valid (as parse
// would accept it).
std::string serialize(const Manifest& m);
// Strict: exactly these keys, the types and bounds above, format == kFormat, and the canonical
// text (serialize(parse_manifest(t)) == t).
Result<Manifest> parse_manifest(std::string_view json);

Result<CompatVersion> parse_compat(std::string_view text);  // "major.minor", each 0..65535
std::string to_string(const CompatVersion& c);

// What the running firmware is; and whether `m` may replace it. WrongBoard, Incompatible
// (another major), SettingsIncompatible (another minor while keeping the settings).
struct Running {
  std::string board;
  CompatVersion compat;
};
Result<void> check_compatible(const Manifest& m, const Running& running, bool keep_settings);

std::string to_hex(std::span<const std::uint8_t> bytes);
// Exactly 2 * out.size() hex digits (either case) -> out; false otherwise.
bool from_hex(std::string_view text, std::span<std::uint8_t> out) noexcept;

}  // namespace fwimage
