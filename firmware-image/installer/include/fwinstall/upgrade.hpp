// The upgrade tool's operations (fw-upgrade's subcommands, docs/firmware.md "Upgrading"): each
// returns the JSON object the tool prints for the dashboard, or the fwimage::Error that refused
// it. Nothing is written to the disk before a bundle has been verified in full (signature, board,
// compat, every part's hash).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>

#include <boost/json/object.hpp>

#include "fwimage/error.hpp"
#include "fwimage/slots.hpp"

namespace fwinstall {

using fwimage::Error;
using fwimage::Result;

// Where the tool finds things; the defaults are the appliance's.
struct Paths {
  // The appliance disk; empty: the one disk with partitions named boot, slotA and slotB, found
  // through `sys` and named under `dev` (disk.hpp, find_appliance_disk).
  std::filesystem::path disk;
  std::filesystem::path sys = "/sys";
  std::filesystem::path dev = "/dev";
  std::filesystem::path public_key = "/etc/dstm/firmware.pub";
  std::filesystem::path firmware_json = "/etc/dstm/firmware.json";  // what runs now
  std::filesystem::path cmdline = "/proc/cmdline";                  // dstm.slot=A|B
  std::optional<fwimage::Slot> slot;  // the running slot, instead of reading cmdline
  std::filesystem::path root = "/";   // the settings files live under it (settings.hpp)
};

// grubenv variables besides the boot state (slots.hpp):
//   A_VERSION, B_VERSION  the version installed in the slot ("" while it is being written;
//                         fwimage::version_variable, slots.hpp)
//   RESET_SETTINGS        "A" or "B": that slot, booted, starts from the default settings
//                         (set by install --reset-settings; cleared by mark-good)
//   TRIAL                 "A" or "B": that slot was installed and has not yet come up healthy
//                         (set by install; cleared by mark-good). Only a trial boot that fails
//                         its health check reboots to fall back: a slot that once ran well and
//                         now fails (a bad setting, a dead uplink) stays up with its dashboard,
//                         so the operator can repair it instead of watching a reboot loop.
inline constexpr std::string_view kResetSettings = "RESET_SETTINGS";
inline constexpr std::string_view kTrial = "TRIAL";
using fwimage::version_variable;

// Called after each chunk written to the slot: bytes written, bytes to write.
using Progress = std::function<void(std::uint64_t written, std::uint64_t total)>;

fwimage::Result<fwimage::Slot> running_slot(const Paths& paths);

// {"disk","running","next","order":[..],"slots":{"A":{"ok","tried","version"},..},
//  "reset_settings","trial","firmware":{"board","version","compat_version"}}; reset_settings
// and trial are true when RESET_SETTINGS or TRIAL names the running slot.
fwimage::Result<boost::json::object> status(const Paths& paths);
// {"version","board","compat_version","created","size","sha256","keep_settings","target"}
fwimage::Result<boost::json::object> verify(const Paths& paths, const std::filesystem::path& bundle,
                                            bool keep_settings);
// verify, then the install itself (upgrade.cpp documents the order of the writes); the verify
// object plus "installed": true.
fwimage::Result<boost::json::object> install(const Paths& paths,
                                             const std::filesystem::path& bundle,
                                             bool keep_settings, const Progress& progress);
// {"slot": "A", "ok": true, "tried": false}
fwimage::Result<boost::json::object> mark_good(const Paths& paths);

}  // namespace fwinstall
