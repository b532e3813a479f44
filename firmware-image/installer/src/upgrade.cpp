// fw-upgrade's operations: status, verify, install, mark-good.
//
// The order of an install's writes is what makes a power cut at any point safe:
//   1. the whole bundle is read and verified (nothing written yet);
//   2. grubenv: the target's ok mark cleared, its version emptied, synced (begin_install), so a
//      half-written slot is never booted: fwimage::choose_slot skips a slot that is not ok;
//   3. the part is written to the target partition while the bundle is read and verified again
//      (the file could have changed since step 1), then the disk is synced;
//   4. only if the second pass matched: grubenv: the target ok, not tried, first in the order,
//      its version, TRIAL naming it, synced (finish_install). The next boot tries it once.
#include "fwinstall/upgrade.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <boost/json/parse.hpp>

#include "fwimage/bundle.hpp"
#include "fwimage/manifest.hpp"
#include "fwimage/signing.hpp"
#include "fwinstall/disk.hpp"

namespace fwinstall {

namespace json = boost::json;
using fwimage::Errc;
using fwimage::fail;
using fwimage::Slot;

namespace {

constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kMaxSmallFile = 64 * 1024;  // key, firmware.json, cmdline
constexpr std::string_view kPart = "slot";

Result<std::string> read_small(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return fail(Errc::Io, fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::string text(kMaxSmallFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxSmallFile)
    return fail(Errc::TooLarge,
                fmt::format("{}: larger than {} bytes", path.string(), kMaxSmallFile));
  return text;
}

struct Firmware {
  std::string board;
  std::string version;
  fwimage::CompatVersion compat;
};

Result<Firmware> running_firmware(const Paths& paths) {
  auto text = read_small(paths.firmware_json);
  if (!text) return text.error();
  const auto bad = [&] {
    return fail(Errc::BadManifest,
                fmt::format("{}: not {{\"board\",\"version\",\"compat_version\"}}",
                            paths.firmware_json.string()));
  };
  boost::system::error_code ec;
  const auto doc = json::parse(*text, ec);
  if (ec || !doc.is_object()) return bad();
  const auto& o = doc.get_object();
  const auto* board = o.if_contains("board");
  const auto* version = o.if_contains("version");
  const auto* compat = o.if_contains("compat_version");
  if (!board || !board->is_string() || !version || !version->is_string() || !compat ||
      !compat->is_string())
    return bad();
  auto c = fwimage::parse_compat(compat->get_string());
  if (!c) return c.error();
  return Firmware{std::string{board->get_string()}, std::string{version->get_string()}, *c};
}

// Feeds the whole file to `reader`; `sink` gets the part bytes (after the signature verified).
Result<fwimage::Manifest> read_bundle(const std::filesystem::path& path,
                                      fwimage::BundleReader& reader,
                                      const fwimage::BundleReader::PartSink& sink) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(Errc::Io, fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::vector<std::byte> buffer(kChunk);
  Result<void> fed;
  while (true) {
    const auto n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail(Errc::Io, fmt::format("{}: read: {}", path.string(), std::strerror(err)));
    }
    if (n == 0) break;
    fed = reader.feed(std::span{buffer}.first(static_cast<std::size_t>(n)), sink);
    if (!fed) break;
  }
  ::close(fd);
  if (!fed) return fed.error();
  return reader.finish();
}

Result<fwimage::PublicKey> load_key(const Paths& paths) {
  auto text = read_small(paths.public_key);
  if (!text) return text.error();
  auto key = fwimage::parse_public_key(*text);
  if (!key)
    return fail(Errc::BadKey,
                fmt::format("{}: {}", paths.public_key.string(), key.error().message));
  return *key;
}

json::object describe(const fwimage::Manifest& m, bool keep_settings, Slot target) {
  const auto& part = m.parts.front();
  return json::object{{"version", m.version},
                      {"board", m.board},
                      {"compat_version", fwimage::to_string(m.compat)},
                      {"created", m.created},
                      {"size", part.size},
                      {"sha256", fwimage::to_hex(part.sha256)},
                      {"keep_settings", keep_settings},
                      {"target", fwimage::to_string(target)}};
}

// The first complete pass: signature, every hash, the one part, board and compat.
Result<fwimage::Manifest> verify_bundle(const Paths& paths, const std::filesystem::path& bundle,
                                        bool keep_settings) {
  auto key = load_key(paths);
  if (!key) return key.error();
  auto firmware = running_firmware(paths);
  if (!firmware) return firmware.error();
  fwimage::BundleReader reader{*key};
  auto manifest = read_bundle(bundle, reader, {});
  if (!manifest) return manifest.error();
  if (manifest->parts.size() != 1 || manifest->parts.front().name != kPart)
    return fail(Errc::BadManifest, "the bundle must hold exactly one part, named 'slot'");
  if (auto ok =
          fwimage::check_compatible(*manifest, {firmware->board, firmware->compat}, keep_settings);
      !ok)
    return ok.error();
  return manifest;
}

struct Opened {
  Disk disk;
  BootEnvironment env_file;
  fwimage::Environment env;
  fwimage::BootState state;
};

Result<Opened> open_disk(const Paths& paths, bool writable) {
  auto path = paths.disk.empty() ? find_appliance_disk(paths.sys, paths.dev)
                                 : Result<std::filesystem::path>{paths.disk};
  if (!path) return path.error();
  auto disk = Disk::open(*path, writable);
  if (!disk) return disk.error();
  auto env_file = BootEnvironment::locate(*disk);
  if (!env_file) return env_file.error();
  auto env = env_file->read(*disk);
  if (!env) return env.error();
  auto state = fwimage::boot_state_from(*env);
  if (!state) return state.error();
  return Opened{std::move(*disk), std::move(*env_file), std::move(*env), *state};
}

}  // namespace

Result<Slot> running_slot(const Paths& paths) {
  if (paths.slot) return *paths.slot;
  auto text = read_small(paths.cmdline);
  if (!text) return text.error();
  std::istringstream words{*text};
  std::string word;
  constexpr std::string_view kKey = "dstm.slot=";
  while (words >> word)
    if (word.starts_with(kKey))
      return fwimage::parse_slot(std::string_view{word}.substr(kKey.size()));
  return fail(Errc::BadUsage,
              fmt::format("{}: no dstm.slot= (not booted from an A/B disk; use --slot)",
                          paths.cmdline.string()));
}

Result<json::object> status(const Paths& paths) {
  auto running = running_slot(paths);
  if (!running) return running.error();
  auto opened = open_disk(paths, false);
  if (!opened) return opened.error();
  json::object slots;
  for (Slot s : {Slot::A, Slot::B}) {
    const auto* v = fwimage::find(opened->env, version_variable(s));
    slots[fwimage::to_string(s)] = json::object{
        {"ok", opened->state.is_ok(s)},
        {"tried", opened->state.is_tried(s)},
        {"version", v != nullptr && !v->empty() ? json::value(*v) : json::value(nullptr)}};
  }
  auto next_state = opened->state;
  const Slot next = fwimage::choose_slot(next_state);
  const auto names_running = [&](std::string_view variable) {
    const auto* v = fwimage::find(opened->env, variable);
    return v != nullptr && *v == fwimage::to_string(*running);
  };
  json::object out{{"disk", opened->disk.path().string()},
                   {"running", fwimage::to_string(*running)},
                   {"next", fwimage::to_string(next)},
                   {"order", json::array{fwimage::to_string(opened->state.order[0]),
                                         fwimage::to_string(opened->state.order[1])}},
                   {"slots", std::move(slots)},
                   {"reset_settings", names_running(kResetSettings)},
                   {"trial", names_running(kTrial)}};
  if (auto fw = running_firmware(paths))
    out["firmware"] = json::object{{"board", fw->board},
                                   {"version", fw->version},
                                   {"compat_version", fwimage::to_string(fw->compat)}};
  else
    out["firmware"] = nullptr;
  return out;
}

Result<json::object> verify(const Paths& paths, const std::filesystem::path& bundle,
                            bool keep_settings) {
  auto running = running_slot(paths);
  if (!running) return running.error();
  auto manifest = verify_bundle(paths, bundle, keep_settings);
  if (!manifest) return manifest.error();
  return describe(*manifest, keep_settings, fwimage::other(*running));
}

Result<json::object> install(const Paths& paths, const std::filesystem::path& bundle,
                             bool keep_settings, const Progress& progress) {
  auto running = running_slot(paths);
  if (!running) return running.error();
  const Slot target = fwimage::other(*running);
  auto manifest = verify_bundle(paths, bundle, keep_settings);
  if (!manifest) return manifest.error();
  auto opened = open_disk(paths, true);
  if (!opened) return opened.error();
  auto region = opened->disk.partition(slot_partition(target));
  if (!region) return region.error();
  const std::uint64_t total = manifest->parts.front().size;
  if (total > region->size)
    return fail(Errc::TooLarge, fmt::format("the slot image is {} bytes, partition {} holds {}",
                                            total, slot_partition(target), region->size));

  // 2. The target is not bootable from here on until step 4.
  fwimage::begin_install(opened->state, target);
  fwimage::store(opened->state, opened->env);
  fwimage::set(opened->env, version_variable(target), "");
  if (const auto* r = fwimage::find(opened->env, kResetSettings); r && !r->empty())
    fwimage::set(opened->env, kResetSettings, "");
  if (auto w = opened->env_file.write(opened->disk, opened->env); !w) return w.error();

  // 3. Written as the second pass reads it; a write error stops the pass.
  auto key = load_key(paths);
  if (!key) return key.error();
  fwimage::BundleReader reader{*key};
  std::uint64_t written = 0;
  Result<void> write_error;
  auto sink = [&](std::size_t, core::Bytes chunk) {
    if (!write_error) return;
    write_error = opened->disk.write(region->offset + written, chunk);
    written += chunk.size();
    if (write_error && progress) progress(written, total);
  };
  auto second = read_bundle(bundle, reader, sink);
  if (!write_error) return write_error.error();
  if (!second) return second.error();
  if (*second != *manifest)
    return fail(Errc::BadManifest, "the bundle changed while it was being installed");
  if (auto s = opened->disk.sync(); !s) return s.error();

  // 4. Bootable, first, to be tried once.
  fwimage::finish_install(opened->state, target);
  fwimage::store(opened->state, opened->env);
  fwimage::set(opened->env, version_variable(target), manifest->version);
  fwimage::set(opened->env, kTrial, std::string{fwimage::to_string(target)});
  if (!keep_settings)
    fwimage::set(opened->env, kResetSettings, std::string{fwimage::to_string(target)});
  if (auto w = opened->env_file.write(opened->disk, opened->env); !w) return w.error();

  auto out = describe(*manifest, keep_settings, target);
  out["installed"] = true;
  return out;
}

Result<json::object> mark_good(const Paths& paths) {
  auto running = running_slot(paths);
  if (!running) return running.error();
  auto opened = open_disk(paths, true);
  if (!opened) return opened.error();
  const auto before = opened->env;
  fwimage::mark_good(opened->state, *running);
  fwimage::store(opened->state, opened->env);
  for (const auto variable : {kResetSettings, kTrial})
    if (const auto* v = fwimage::find(opened->env, variable);
        v && *v == fwimage::to_string(*running))
      fwimage::set(opened->env, variable, "");
  // Written only when something changed: the boot loader's block is left as it is otherwise.
  if (opened->env != before)
    if (auto w = opened->env_file.write(opened->disk, opened->env); !w) return w.error();
  return json::object{{"slot", fwimage::to_string(*running)},
                      {"ok", opened->state.is_ok(*running)},
                      {"tried", opened->state.is_tried(*running)}};
}

}  // namespace fwinstall
