// dstm-client's command line, parsed from text into an immutable Options struct. Pure: no I/O
// except read_password_file, which reads the one file the options name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "core/address.hpp"
#include "dstm_client/failure.hpp"
#include "platform/log.hpp"
#include "tep_io/backend.hpp"
#include "tsp/protocol.hpp"

namespace dstm_client {

// sysexits.h EX_USAGE: the exit status for a command line that does not parse.
inline constexpr int kExitUsage = 64;

struct Options {
  // The DSTM server: a numeric IPv6 or IPv4 literal; an IPv6 literal may carry a zone
  // ("fe80::1%eth0").
  std::string server;
  std::uint16_t port = 3653;
  tsp::Transport transport = tsp::Transport::Tcp;
  // The client's IPv6: bound as the TSP source when the server is an IPv6 address, and named in
  // the create request. Unset: the kernel picks the source and the server takes it.
  std::optional<core::Ipv6Address> source;
  // Authenticate as user (DIGEST-MD5, else PLAIN); ANONYMOUS when unset. password_file is set
  // exactly when user is.
  std::optional<std::string> user;
  std::optional<std::filesystem::path> password_file;
  std::string interface = "dstm0";
  // Lease lifetime to ask for (seconds); unset: the server's default.
  std::optional<std::uint32_t> lifetime;
  // IPv6 MTU toward the TEP; the TUN device's MTU is tunnel_mtu - 40.
  std::uint32_t tunnel_mtu = 1500;
  // The data path (docs/tep.md, "Backends").
  tep::io::Backend backend = tep::io::Backend::Auto;
  // IPv4 prefixes routed into the TUN device; never empty (default 0.0.0.0/0).
  std::vector<core::Ipv4Prefix> routes;
  bool no_renew = false;
  unsigned keepalive_misses = 3;
  std::optional<std::string> control_socket;
  // anycast-resolver's query socket: `server` is an anycast address whose member is resolved
  // before every TSP session, which then goes to that member's unicast address (docs/anycast.md).
  std::optional<std::string> anycast_resolver;
  std::optional<int> ready_fd;
  platform::LogLevel log_level = platform::LogLevel::Info;

  // Whether `server` is an IPv6 literal (with or without a zone).
  bool server_is_ipv6() const noexcept;
};

enum class CliAction { Run, Help, Version };

struct Cli {
  CliAction action = CliAction::Run;
  Options options;
};

// Every problem found, one message each, naming the flag: "--port: expected 1..65535, got 0".
using CliErrors = std::vector<std::string>;

// Parses argv[1..] (without the program name). --help / --version win over everything else
// that follows the parse; every error is collected, none is replaced by a default.
boost::system::result<Cli, CliErrors> parse_cli(std::span<const std::string_view> args);

// The usage text printed by --help and after errors.
std::string_view usage() noexcept;

// The password: the first line of the file, without its line end ("\n" or "\r\n"). Errors
// (naming the file, never its content): unreadable, empty first line, a first line over 255
// bytes, a NUL byte.
boost::system::result<std::string, Failure> read_password_file(const std::filesystem::path& file);

}  // namespace dstm_client
