// The settings file set: what an upgrade keeps, what a backup holds and a restore replaces
// (docs/firmware.md, "Backup and restore"). Defined here only; paths are relative to the
// settings root (Paths::root, "/" on the appliance, where /etc/appl and /var/lib/appl live on
// the data partition).
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "fwimage/error.hpp"
#include "fwinstall/upgrade.hpp"

namespace fwinstall {

using fwimage::Error;
using fwimage::Result;

struct SettingsItem {
  std::string_view path;  // relative to the settings root
  bool directory;         // the whole directory (its regular files, recursively)
  std::string_view what;
};

inline constexpr std::string_view kConfigDocument = "etc/appl/appliance.json";

inline constexpr std::array<SettingsItem, 5> kSettings{{
    {kConfigDocument, false, "the appliance config document"},
    {"var/lib/appl/web/web.db", false, "dashboard users and the config history"},
    {"var/lib/appl/web/tls", true, "the dashboard's certificates and keys"},
    {"var/lib/appl/dstm-server/leases.db", false, "the DSTM server's leases"},
    {"var/lib/appl/dstm-server/leases.db-wal", false, "the leases' write-ahead log"},
}};

// True when `name` (a relative path) is an item or inside a directory item.
bool in_settings(std::string_view name) noexcept;

// Every error of the document as the dashboard's apply finds them on the appliance, one
// "source: pointer: message" each: the web section's parser, dstm-server's (always: the
// appliance runs it), the TEPs' when the document has a "tep" section. Empty when valid.
std::vector<std::string> check_document(std::string_view text);

// Writes the ustar archive of the settings present under the root to `out` (atomically).
// {"file","entries":[names],"bytes"}
fwimage::Result<boost::json::object> backup(const Paths& paths, const std::filesystem::path& out);
// Reads `in`, refuses it (BadSettings, nothing replaced) when it is not a ustar archive of
// settings items, holds no config document, or the document does not pass check_document; then
// replaces each file it holds (written to a temporary file, fsync, rename). {"file","restored"}
fwimage::Result<boost::json::object> restore(const Paths& paths, const std::filesystem::path& in);

}  // namespace fwinstall
