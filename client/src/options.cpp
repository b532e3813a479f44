// dstm-client's command line: flags into Options, every error collected with its flag.
#include "dstm_client/options.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace dstm_client {

namespace {

constexpr std::string_view kUsage = R"(usage: dstm-client --server ADDRESS [options]
  --server ADDR         the DSTM server, an IPv6 (or IPv4) literal
  --port N              TSP port (default 3653)
  --transport tcp|udp   TSP transport (default tcp)
  --source IPV6         local IPv6 to use (default: the kernel's choice toward the server)
  --user NAME           authenticate as NAME (DIGEST-MD5 or PLAIN, what the server offers)
  --password-file FILE  the password (first line); required with --user. Without --user: ANONYMOUS
  --interface NAME      the 4over6 TUN device (default dstm0)
  --lifetime S          lease lifetime to ask for in seconds (default: the server's)
  --tunnel-mtu N        IPv6 MTU toward the TEP (default 1500); the TUN MTU is N - 40
  --backend B           data path: auto (default: kernel ip6tnl when the kernel creates it,
                        else the BPF fast path when it loads, else user space), kernel or bpf
                        (fail without it) or user
  --route PREFIX        IPv4 prefix to route into the tunnel, repeatable (default 0.0.0.0/0)
  --no-renew            do not renew: when the lease ends, exit 0 without releasing
  --keepalive-misses N  consecutive unanswered keepalives that mean the TEP is lost (default 3)
  --control-socket PATH serve GET /status and GET /metrics on this Unix socket
  --anycast-resolver SOCKET
                        the server is an anycast address: ask anycast-resolver on SOCKET for
                        the member to use and pin the TSP sessions to its unicast address
  --ready-fd N          write "READY\n" to file descriptor N once the tunnel is up, then close it
  --log-level L         debug, info (default), warn or error
  --help                print this text and exit
  --version             print the version and exit
)";

constexpr std::size_t kMaxSunPath = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr std::size_t kMaxUser = 255;     // the SASL field limit of the tsp library

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || p != end || text.empty()) return std::nullopt;
  return value;
}

// Linux's dev_valid_name(), without patterns: the client needs to know the name it gets.
std::optional<std::string> interface_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > 15) return fmt::format("'{}' is longer than 15 bytes", name);
  if (name == "." || name == "..") return fmt::format("'{}' is not a valid name", name);
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/' || c == ':' || c == '%' || u <= 0x20 || u >= 0x7f)
      return fmt::format("'{}': only printable characters other than '/', ':', '%' and space",
                         name);
  }
  return std::nullopt;
}

bool is_ipv6_literal(std::string_view text) noexcept {
  const auto zone = text.find('%');
  if (zone != std::string_view::npos) {
    if (zone + 1 == text.size()) return false;
    text = text.substr(0, zone);
  }
  return core::Ipv6Address::parse(text).has_value();
}

class Parser {
 public:
  explicit Parser(std::span<const std::string_view> args) : args_{args} {}

  boost::system::result<Cli, CliErrors> run() {
    for (i_ = 0; i_ < args_.size(); ++i_) {
      const std::string_view arg = args_[i_];
      if (arg == "--help" || arg == "-h") {
        cli_.action = CliAction::Help;
        return cli_;
      }
      if (arg == "--version") {
        cli_.action = CliAction::Version;
        return cli_;
      }
      flag(arg);
    }
    validate();
    if (!errors_.empty()) return errors_;
    if (options().routes.empty()) options().routes.push_back(*core::Ipv4Prefix::parse("0.0.0.0/0"));
    return cli_;
  }

 private:
  Options& options() { return cli_.options; }

  void error(std::string_view flag, std::string message) {
    errors_.push_back(fmt::format("{}: {}", flag, message));
  }

  // The value after a flag, or nullopt (and an error) when the flag ends the line.
  std::optional<std::string_view> value(std::string_view flag) {
    if (i_ + 1 >= args_.size()) {
      error(flag, "needs a value");
      return std::nullopt;
    }
    return args_[++i_];
  }

  // Each flag may appear once, except --route.
  bool once(std::string_view flag) {
    for (const auto& f : seen_)
      if (f == flag) {
        error(flag, "given more than once");
        return false;
      }
    seen_.emplace_back(flag);
    return true;
  }

  template <typename T>
  std::optional<T> number(std::string_view flag, std::string_view text, T min, T max) {
    const auto n = parse_number<T>(text);
    if (!n || *n < min || *n > max) {
      error(flag, fmt::format("expected an integer in {}..{}, got '{}'", min, max, text));
      return std::nullopt;
    }
    return n;
  }

  void flag(std::string_view arg) {
    auto& o = options();
    if (arg == "--no-renew") {
      if (once(arg)) o.no_renew = true;
      return;
    }
    static constexpr std::string_view kValued[] = {
        "--server",     "--port",          "--transport",        "--source",
        "--user",       "--password-file", "--interface",        "--lifetime",
        "--tunnel-mtu", "--route",         "--keepalive-misses", "--control-socket",
        "--ready-fd",   "--log-level",     "--backend",          "--anycast-resolver"};
    bool known = false;
    for (const auto k : kValued) known = known || k == arg;
    if (!known) {
      error(arg, arg.starts_with("-") ? "unknown option" : "unexpected argument");
      return;
    }
    const bool first = arg == "--route" || once(arg);
    const auto v = value(arg);
    if (!v || !first) return;
    const std::string_view text = *v;

    if (arg == "--server") {
      if (core::Ipv4Address::parse(text) || is_ipv6_literal(text))
        o.server = std::string{text};
      else
        error(arg, fmt::format("'{}' is not a numeric IPv6 or IPv4 address", text));
    } else if (arg == "--port") {
      if (auto n = number<std::uint16_t>(arg, text, 1, 65535)) o.port = *n;
    } else if (arg == "--transport") {
      if (text == "tcp")
        o.transport = tsp::Transport::Tcp;
      else if (text == "udp")
        o.transport = tsp::Transport::Udp;
      else
        error(arg, fmt::format("expected tcp or udp, got '{}'", text));
    } else if (arg == "--source") {
      const auto a = core::Ipv6Address::parse(text);
      if (!a)
        error(arg, fmt::format("'{}' is not an IPv6 address", text));
      else if (a->is_unspecified() || a->is_multicast() || a->is_v4_mapped() ||
               *a == *core::Ipv6Address::parse("::1"))
        error(arg, fmt::format("'{}' is not a unicast address a TEP can reach", text));
      else
        o.source = *a;
    } else if (arg == "--user") {
      if (text.empty() || text.size() > kMaxUser)
        error(arg, fmt::format("expected 1..{} bytes", kMaxUser));
      else
        o.user = std::string{text};
    } else if (arg == "--password-file") {
      if (text.empty())
        error(arg, "must not be empty");
      else
        o.password_file = std::filesystem::path{text};
    } else if (arg == "--interface") {
      if (auto why = interface_problem(text))
        error(arg, *why);
      else
        o.interface = std::string{text};
    } else if (arg == "--lifetime") {
      if (auto n = number<std::uint32_t>(arg, text, 1, 604800)) o.lifetime = *n;
    } else if (arg == "--tunnel-mtu") {
      if (auto n = number<std::uint32_t>(arg, text, 1280, 65535)) o.tunnel_mtu = *n;
    } else if (arg == "--backend") {
      if (auto b = tep::io::parse_backend(text))
        o.backend = *b;
      else
        error(arg, fmt::format("expected auto, kernel, bpf or user, got '{}'", text));
    } else if (arg == "--route") {
      const auto p = core::Ipv4Prefix::parse(text);
      if (!p) {
        error(arg, fmt::format("'{}' is not a canonical IPv4 prefix (e.g. 192.0.2.0/24)", text));
      } else {
        for (const auto& r : o.routes)
          if (r == *p) {
            error(arg, fmt::format("{} given more than once", text));
            return;
          }
        o.routes.push_back(*p);
      }
    } else if (arg == "--keepalive-misses") {
      if (auto n = number<unsigned>(arg, text, 1, 100)) o.keepalive_misses = *n;
    } else if (arg == "--control-socket") {
      if (text.empty() || text.size() > kMaxSunPath)
        error(arg, fmt::format("expected a path of 1..{} bytes", kMaxSunPath));
      else
        o.control_socket = std::string{text};
    } else if (arg == "--anycast-resolver") {
      if (text.empty() || text.size() > kMaxSunPath)
        error(arg, fmt::format("expected a path of 1..{} bytes", kMaxSunPath));
      else
        o.anycast_resolver = std::string{text};
    } else if (arg == "--ready-fd") {
      if (auto n = number<int>(arg, text, 0, std::numeric_limits<int>::max())) o.ready_fd = *n;
    } else if (arg == "--log-level") {
      if (auto level = platform::parse_log_level(text))
        o.log_level = *level;
      else
        error(arg, fmt::format("expected debug, info, warn or error, got '{}'", text));
    }
  }

  // Rules between flags.
  void validate() {
    const auto& o = options();
    const bool server_given = std::find(seen_.begin(), seen_.end(), "--server") != seen_.end();
    if (!server_given) errors_.push_back("--server: required");
    if (o.user && !o.password_file) error("--user", "needs --password-file");
    if (o.password_file && !o.user) error("--password-file", "needs --user");
    if (!o.server.empty() && !o.server_is_ipv6()) {
      // Over IPv4 there is no IPv6 source the server could check: it accepts only an
      // authenticated user naming its IPv6 (docs/tsp.md, source-address policy).
      if (!o.user) error("--server", "an IPv4 server needs --user (it refuses anonymous creates)");
      if (!o.source) error("--server", "an IPv4 server needs --source (the IPv6 to name)");
      if (o.anycast_resolver)
        error("--anycast-resolver", "needs an IPv6 server (anycast resolving is IPv6 only)");
    }
  }

  std::span<const std::string_view> args_;
  std::size_t i_ = 0;
  Cli cli_;
  CliErrors errors_;
  std::vector<std::string> seen_;
};

}  // namespace

bool Options::server_is_ipv6() const noexcept {
  return is_ipv6_literal(server);
}

boost::system::result<Cli, CliErrors> parse_cli(std::span<const std::string_view> args) {
  return Parser{args}.run();
}

std::string_view usage() noexcept {
  return kUsage;
}

boost::system::result<std::string, Failure> read_password_file(const std::filesystem::path& file) {
  auto fail = [](std::string message) { return Failure{std::move(message)}; };
  std::ifstream in{file, std::ios::binary};
  if (!in) return fail(fmt::format("{}: cannot open", file.string()));
  std::string line;
  // One byte more than allowed, so that an over-long line is seen as such.
  char c = 0;
  while (line.size() <= kMaxUser && in.get(c) && c != '\n') line.push_back(c);
  if (in.bad()) return fail(fmt::format("{}: read error", file.string()));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > kMaxUser)
    return fail(fmt::format("{}: the password is longer than {} bytes", file.string(), kMaxUser));
  if (line.empty())
    return fail(fmt::format("{}: the first line (the password) is empty", file.string()));
  if (line.find('\0') != std::string::npos)
    return fail(fmt::format("{}: the password contains a NUL byte", file.string()));
  // (Failure is constructible from a string too: say which side this is.)
  return {boost::system::in_place_value, std::move(line)};
}

}  // namespace dstm_client
