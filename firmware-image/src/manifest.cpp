// The bundle manifest as canonical JSON (manifest.hpp).
#include "fwimage/manifest.hpp"

#include <charconv>
#include <optional>

#include <fmt/core.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace fwimage {
namespace json = boost::json;
namespace {

bool is_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxText) return false;
  for (const char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

bool is_printable(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxText) return false;
  for (const char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

Error bad(std::string what) {
  return fail(Errc::BadManifest, "manifest: " + std::move(what));
}

// The object's keys are exactly `keys`.
bool has_exactly(const json::object& o, std::initializer_list<std::string_view> keys) {
  if (o.size() != keys.size()) return false;
  for (const auto k : keys)
    if (!o.contains(k)) return false;
  return true;
}

std::optional<std::uint64_t> whole(const json::value& v) noexcept {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const auto b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

bool from_hex(std::string_view text, std::span<std::uint8_t> out) noexcept {
  if (text.size() != out.size() * 2) return false;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = digit(text[2 * i]);
    const int lo = digit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::string to_string(const CompatVersion& c) {
  return fmt::format("{}.{}", c.major, c.minor);
}

Result<CompatVersion> parse_compat(std::string_view text) {
  const auto dot = text.find('.');
  const auto number = [](std::string_view s) -> std::optional<std::uint32_t> {
    std::uint32_t v = 0;
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v > 65535) return std::nullopt;
    return v;
  };
  if (dot == std::string_view::npos) return bad("compat_version must be \"major.minor\"");
  const auto major = number(text.substr(0, dot));
  const auto minor = number(text.substr(dot + 1));
  if (!major || !minor) return bad("compat_version must be \"major.minor\" (0..65535 each)");
  return CompatVersion{*major, *minor};
}

std::string serialize(const Manifest& m) {
  json::array parts;
  for (const auto& p : m.parts)
    parts.push_back(json::object{{"name", p.name}, {"size", p.size}, {"sha256", to_hex(p.sha256)}});
  // Boost.JSON keeps insertion order, which makes the text canonical.
  const json::object o{{"format", kFormat},    {"board", m.board},
                       {"version", m.version}, {"compat_version", to_string(m.compat)},
                       {"created", m.created}, {"parts", std::move(parts)}};
  return json::serialize(o);
}

Result<Manifest> parse_manifest(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 4;
  const auto v = json::parse(text, ec, {}, options);
  if (ec) return bad("not JSON (" + ec.message() + ")");
  if (!v.is_object()) return bad("not an object");
  const auto& o = v.get_object();
  if (!has_exactly(o, {"format", "board", "version", "compat_version", "created", "parts"}))
    return bad("keys must be format, board, version, compat_version, created, parts");
  if (whole(o.at("format")) != kFormat) return bad("unknown format (this firmware reads 1)");
  Manifest m;
  const auto* board = o.at("board").if_string();
  if (!board || !is_name(*board)) return bad("board must be 1..64 of [a-z0-9_-]");
  m.board = *board;
  const auto* version = o.at("version").if_string();
  if (!version || !is_printable(*version)) return bad("version must be 1..64 printable ASCII");
  m.version = *version;
  const auto* compat = o.at("compat_version").if_string();
  if (!compat) return bad("compat_version must be a string");
  auto c = parse_compat(*compat);
  if (!c) return c.error();
  m.compat = *c;
  const auto created = whole(o.at("created"));
  if (!created) return bad("created must be a whole number of seconds");
  m.created = *created;
  const auto* parts = o.at("parts").if_array();
  if (!parts || parts->empty() || parts->size() > kMaxParts) return bad("parts must be 1..8");
  for (const auto& pv : *parts) {
    const auto* po = pv.if_object();
    if (!po || !has_exactly(*po, {"name", "size", "sha256"}))
      return bad("a part must have exactly name, size, sha256");
    Part p;
    const auto* name = po->at("name").if_string();
    if (!name || !is_name(*name)) return bad("a part's name must be 1..64 of [a-z0-9_-]");
    p.name = *name;
    for (const auto& earlier : m.parts)
      if (earlier.name == p.name) return bad("part " + p.name + " appears twice");
    const auto size = whole(po->at("size"));
    if (!size || *size == 0 || *size > kMaxPartSize) return bad("part " + p.name + ": bad size");
    p.size = *size;
    const auto* hash = po->at("sha256").if_string();
    if (!hash || !from_hex(*hash, p.sha256))
      return bad("part " + p.name + ": sha256 must be 64 hex digits");
    m.parts.push_back(std::move(p));
  }
  // One text per manifest: what the build signs is serialize()'s output, so anything else
  // (spacing, key order, escapes, 1.0 for 1) was not written by it.
  if (serialize(m) != text) return bad("not in canonical form");
  return m;
}

Result<void> check_compatible(const Manifest& m, const Running& running, bool keep_settings) {
  if (m.board != running.board)
    return fail(Errc::WrongBoard,
                fmt::format("the image is for board {}, this is {}", m.board, running.board));
  if (m.compat.major != running.compat.major)
    return fail(Errc::Incompatible,
                fmt::format("the image's config schema {} cannot replace {} (another major)",
                            to_string(m.compat), to_string(running.compat)));
  if (m.compat.minor != running.compat.minor && keep_settings)
    return fail(Errc::SettingsIncompatible,
                fmt::format("the image's config schema {} differs from {}: install it without "
                            "keeping the settings",
                            to_string(m.compat), to_string(running.compat)));
  return {};
}

}  // namespace fwimage
