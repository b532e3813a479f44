// The command line every daemon shares, so that dstm-server, tep and the ones to come accept
// the same options the same way.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace platform {

struct DaemonArguments {
  std::optional<std::string> config_file;  // --config FILE
  bool check_only = false;                 // --check-config
  std::optional<int> ready_fd;             // --ready-fd N
};

// A daemon's own option: returns true when it took `arg`; value() reads the option's value
// (a missing value is a usage error).
using ExtraOption =
    std::function<bool(std::string_view arg, const std::function<std::string_view()>& value)>;

// Parses --config FILE, --check-config, --ready-fd N, --log-level L (applied at once), and the
// daemon's own options through `extra`. --version prints "<program> <version>" and --help (-h)
// prints `usage`, both exiting 0; anything else wrong prints the problem and `usage` to stderr
// and exits 64 (EX_USAGE).
DaemonArguments parse_daemon_arguments(int argc, char** argv, std::string_view program,
                                       std::string_view version, std::string_view usage,
                                       const ExtraOption& extra = {});

}  // namespace platform
