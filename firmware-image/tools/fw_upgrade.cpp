// fw-upgrade: verifies and installs firmware bundles into the inactive A/B slot, marks the booted
// slot good, backs up and restores the settings (docs/firmware.md, "Upgrading"). Prints one JSON
// object for the dashboard; exit status 0 done, 1 refused (the input is not acceptable: bundle,
// key, compatibility, backup), 2 the disk or a file could not be used, 64 bad usage. Without
// --disk it works on the one disk with partitions named boot, slotA and slotB (sysfs).
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <boost/json/serialize.hpp>

#include "fwinstall/settings.hpp"
#include "fwinstall/upgrade.hpp"

namespace {

namespace json = boost::json;
using fwimage::Errc;

constexpr std::string_view kUsage =
    "usage: fw-upgrade [--disk PATH] [--key FILE] [--firmware FILE] [--cmdline FILE] [--slot A|B]\n"
    "                  [--root DIR] [--progress] COMMAND\n"
    "commands: status | verify FILE [--keep-settings|--reset-settings]\n"
    "          | install FILE [--keep-settings|--reset-settings] | mark-good\n"
    "          | backup OUT.tar | restore IN.tar\n";

int exit_code(Errc e) {
  switch (e) {
    case Errc::Io:
    case Errc::BadDisk:
    case Errc::BadEnvironment:
      return 2;
    case Errc::BadUsage:
      return 64;
    default:
      return 1;
  }
}

int report(const fwimage::Result<json::object>& r) {
  if (r) {
    fmt::print("{}\n", json::serialize(*r));
    return 0;
  }
  fmt::print("{}\n", json::serialize(json::object{{"error", fwimage::to_string(r.error().code)},
                                                  {"message", r.error().message}}));
  fmt::print(stderr, "fw-upgrade: {}\n", r.error().message);
  return exit_code(r.error().code);
}

fwimage::Result<json::object> usage(std::string why) {
  return fwimage::fail(Errc::BadUsage, why + "\n" + std::string{kUsage});
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  fwinstall::Paths paths;
  bool progress = false;
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--progress") {
      progress = true;
    } else if (a == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    } else if (a == "--disk" || a == "--key" || a == "--firmware" || a == "--cmdline" ||
               a == "--slot" || a == "--root") {
      if (!has_value) return report(usage(fmt::format("{} needs a value", a)));
      const std::string value{args[++i]};
      if (a == "--disk") paths.disk = value;
      if (a == "--key") paths.public_key = value;
      if (a == "--firmware") paths.firmware_json = value;
      if (a == "--cmdline") paths.cmdline = value;
      if (a == "--root") paths.root = value;
      if (a == "--slot") {
        auto slot = fwimage::parse_slot(value);
        if (!slot) return report(usage("--slot takes A or B"));
        paths.slot = *slot;
      }
    } else {
      words.push_back(a);
    }
  }
  if (words.empty()) return report(usage("no command"));
  const auto command = words[0];

  // verify and install: FILE and at most one of the settings options (keep is the default).
  bool keep = true;
  std::vector<std::string_view> operands;
  for (std::size_t i = 1; i < words.size(); ++i) {
    if (words[i] == "--keep-settings" || words[i] == "--reset-settings") {
      if (command != "verify" && command != "install")
        return report(usage(fmt::format("{} is for verify and install", words[i])));
      keep = words[i] == "--keep-settings";
    } else if (words[i].starts_with("--")) {
      return report(usage(fmt::format("unknown option {}", words[i])));
    } else {
      operands.push_back(words[i]);
    }
  }
  const bool one = operands.size() == 1;
  const std::string operand = one ? std::string{operands[0]} : std::string{};
  if (command == "status" && operands.empty()) return report(fwinstall::status(paths));
  if (command == "mark-good" && operands.empty()) return report(fwinstall::mark_good(paths));
  if (command == "verify" && one) return report(fwinstall::verify(paths, operand, keep));
  if (command == "backup" && one) return report(fwinstall::backup(paths, operand));
  if (command == "restore" && one) return report(fwinstall::restore(paths, operand));
  if (command == "install" && one) {
    fwinstall::Progress on_progress;
    // One line per chunk, flushed: the dashboard shows it, and a reader that stops reading
    // holds the tool (the crash test relies on that).
    if (progress)
      on_progress = [](std::uint64_t written, std::uint64_t total) {
        fmt::print("{{\"progress\":{{\"written\":{},\"total\":{}}}}}\n", written, total);
        std::fflush(stdout);
      };
    return report(fwinstall::install(paths, operand, keep, on_progress));
  }
  return report(
      usage(fmt::format("'{}' with {} operand(s) is not a command", command, operands.size())));
}
