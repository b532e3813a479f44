// Tests for dstm_client/options.hpp: flags into Options, every error reported with its flag.
#include "dstm_client/options.hpp"

#include <unistd.h>
#include <algorithm>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

using dstm_client::CliAction;
using dstm_client::parse_cli;

namespace {

boost::system::result<dstm_client::Cli, dstm_client::CliErrors> parse(
    std::vector<std::string_view> args) {
  return parse_cli(args);
}

// True when some error message starts with `prefix`.
bool has_error(const dstm_client::CliErrors& errors, std::string_view prefix) {
  return std::any_of(errors.begin(), errors.end(),
                     [&](const std::string& e) { return e.starts_with(prefix); });
}

std::string errors_text(const dstm_client::CliErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e + "\n";
  return out;
}

}  // namespace

TEST_CASE("options: defaults with only --server", "[client]") {
  const auto cli = parse({"--server", "2001:db8:5::2"});
  REQUIRE(cli);
  CHECK(cli->action == CliAction::Run);
  const auto& o = cli->options;
  CHECK(o.server == "2001:db8:5::2");
  CHECK(o.server_is_ipv6());
  CHECK(o.port == 3653);
  CHECK(o.transport == tsp::Transport::Tcp);
  CHECK_FALSE(o.source);
  CHECK_FALSE(o.user);
  CHECK_FALSE(o.password_file);
  CHECK(o.interface == "dstm0");
  CHECK_FALSE(o.lifetime);
  CHECK(o.tunnel_mtu == 1500);
  REQUIRE(o.routes.size() == 1);
  CHECK(o.routes[0].to_string() == "0.0.0.0/0");
  CHECK_FALSE(o.no_renew);
  CHECK(o.keepalive_misses == 3);
  CHECK_FALSE(o.control_socket);
  CHECK_FALSE(o.ready_fd);
  CHECK(o.log_level == platform::LogLevel::Info);
}

TEST_CASE("options: every flag is read", "[client]") {
  const auto cli = parse({"--server",
                          "2001:db8:5::2",
                          "--port",
                          "3700",
                          "--transport",
                          "udp",
                          "--source",
                          "2001:db8:c1::2",
                          "--user",
                          "alice",
                          "--password-file",
                          "/etc/pw",
                          "--interface",
                          "tun-dstm",
                          "--lifetime",
                          "120",
                          "--tunnel-mtu",
                          "1400",
                          "--route",
                          "203.0.113.0/24",
                          "--route",
                          "198.51.100.0/25",
                          "--no-renew",
                          "--keepalive-misses",
                          "5",
                          "--control-socket",
                          "/run/c.sock",
                          "--anycast-resolver",
                          "/run/anycast-resolver/query.sock",
                          "--ready-fd",
                          "3",
                          "--log-level",
                          "debug"});
  REQUIRE(cli);
  const auto& o = cli->options;
  CHECK(o.port == 3700);
  CHECK(o.transport == tsp::Transport::Udp);
  CHECK(o.source == core::Ipv6Address::parse("2001:db8:c1::2").value());
  CHECK(o.user == "alice");
  CHECK(o.password_file == std::filesystem::path{"/etc/pw"});
  CHECK(o.interface == "tun-dstm");
  CHECK(o.lifetime == 120u);
  CHECK(o.tunnel_mtu == 1400);
  REQUIRE(o.routes.size() == 2);
  CHECK(o.routes[0].to_string() == "203.0.113.0/24");
  CHECK(o.routes[1].to_string() == "198.51.100.0/25");
  CHECK(o.no_renew);
  CHECK(o.keepalive_misses == 5);
  CHECK(o.control_socket == "/run/c.sock");
  CHECK(o.anycast_resolver == "/run/anycast-resolver/query.sock");
  CHECK(o.ready_fd == 3);
  CHECK(o.log_level == platform::LogLevel::Debug);
}

TEST_CASE("options: --help and --version", "[client]") {
  CHECK(parse({"--help"})->action == CliAction::Help);
  CHECK(parse({"-h"})->action == CliAction::Help);
  CHECK(parse({"--version"})->action == CliAction::Version);
  CHECK(dstm_client::usage().find("--keepalive-misses") != std::string_view::npos);
}

TEST_CASE("options: server addresses: IPv6, zoned IPv6, IPv4 with user and source", "[client]") {
  CHECK(parse({"--server", "fe80::1%eth0"})->options.server_is_ipv6());
  const auto v4 = parse({"--server", "192.0.2.10", "--user", "u", "--password-file", "/p",
                         "--source", "2001:db8::7"});
  REQUIRE(v4);
  CHECK_FALSE(v4->options.server_is_ipv6());

  const auto anonymous_v4 = parse({"--server", "192.0.2.10"});
  REQUIRE_FALSE(anonymous_v4);
  CHECK(has_error(anonymous_v4.error(), "--server: an IPv4 server needs --user"));
  CHECK(has_error(anonymous_v4.error(), "--server: an IPv4 server needs --source"));
}

TEST_CASE("options: bad values are errors naming the flag, never defaults", "[client]") {
  struct Row {
    std::vector<std::string_view> args;
    std::string_view error;
  };
  const std::string long_path(200, 'x');
  const std::vector<Row> rows{
      {{}, "--server: required"},
      {{"--server", "dstm.example.net"}, "--server: 'dstm.example.net' is not a numeric"},
      {{"--server", "fe80::1%"}, "--server:"},
      {{"--server", "::1", "--port", "0"}, "--port: expected an integer in 1..65535"},
      {{"--server", "::1", "--port", "65536"}, "--port:"},
      {{"--server", "::1", "--port", "12x"}, "--port:"},
      {{"--server", "::1", "--port", "-1"}, "--port:"},
      {{"--server", "::1", "--transport", "sctp"}, "--transport: expected tcp or udp"},
      {{"--server", "::1", "--source", "192.0.2.1"}, "--source: '192.0.2.1' is not an IPv6"},
      {{"--server", "::1", "--source", "ff02::1"}, "--source: 'ff02::1' is not a unicast"},
      {{"--server", "::1", "--source", "::"}, "--source:"},
      {{"--server", "::1", "--user", "alice"}, "--user: needs --password-file"},
      {{"--server", "::1", "--password-file", "/p"}, "--password-file: needs --user"},
      {{"--server", "::1", "--interface", "a-very-long-name0"}, "--interface:"},
      {{"--server", "::1", "--interface", "a/b"}, "--interface:"},
      {{"--server", "::1", "--interface", "tun%d"}, "--interface:"},
      {{"--server", "::1", "--interface", ""}, "--interface: must not be empty"},
      {{"--server", "::1", "--lifetime", "0"}, "--lifetime:"},
      {{"--server", "::1", "--tunnel-mtu", "1279"}, "--tunnel-mtu: expected an integer in 1280"},
      {{"--server", "::1", "--tunnel-mtu", "65536"}, "--tunnel-mtu:"},
      {{"--server", "::1", "--route", "192.0.2.1/24"}, "--route: '192.0.2.1/24' is not a canon"},
      {{"--server", "::1", "--route", "2001:db8::/32"}, "--route:"},
      {{"--server", "::1", "--route", "0.0.0.0/0", "--route", "0.0.0.0/0"},
       "--route: 0.0.0.0/0 given more than once"},
      {{"--server", "::1", "--keepalive-misses", "0"}, "--keepalive-misses:"},
      {{"--server", "::1", "--ready-fd", "-3"}, "--ready-fd:"},
      {{"--server", "::1", "--log-level", "verbose"}, "--log-level: expected debug, info"},
      {{"--server", "::1", "--backend", "ip6tnl"}, "--backend: expected auto, kernel, bpf or user"},
      {{"--server", "::1", "--control-socket", long_path}, "--control-socket:"},
      {{"--server", "::1", "--anycast-resolver", long_path}, "--anycast-resolver:"},
      {{"--server", "::1", "--anycast-resolver", ""}, "--anycast-resolver:"},
      {{"--server", "192.0.2.1", "--user", "u", "--password-file", "/p", "--source", "2001:db8::2",
        "--anycast-resolver", "/q.sock"},
       "--anycast-resolver: needs an IPv6 server"},
      {{"--server", "::1", "--colour"}, "--colour: unknown option"},
      {{"--server", "::1", "stray"}, "stray: unexpected argument"},
      {{"--server", "::1", "--port"}, "--port: needs a value"},
      {{"--server", "::1", "--server", "::2"}, "--server: given more than once"},
      {{"--server", "::1", "--no-renew", "--no-renew"}, "--no-renew: given more than once"},
  };
  for (const auto& row : rows) {
    std::string line;
    for (const auto a : row.args) line += std::string{a} + " ";
    INFO(line);
    const auto cli = parse(row.args);
    REQUIRE_FALSE(cli);
    INFO(errors_text(cli.error()));
    CHECK(has_error(cli.error(), row.error));
  }
}

TEST_CASE("options: every error is reported at once", "[client]") {
  const auto cli = parse({"--port", "0", "--transport", "x", "--user", "bob", "--bogus"});
  REQUIRE_FALSE(cli);
  const auto& e = cli.error();
  INFO(errors_text(e));
  CHECK(e.size() == 5);
  CHECK(has_error(e, "--port:"));
  CHECK(has_error(e, "--transport:"));
  CHECK(has_error(e, "--bogus:"));
  CHECK(has_error(e, "--server: required"));
  CHECK(has_error(e, "--user: needs --password-file"));
}

namespace {

// A file in a fresh temporary directory, removed at the end of the scope.
class TempFile {
 public:
  explicit TempFile(std::string_view content)
      : path_{std::filesystem::temp_directory_path() /
              ("dstm-client-test-" + std::to_string(::getpid()) + "-" + std::to_string(count_++))} {
    std::ofstream out{path_, std::ios::binary};
    out << content;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int count_ = 0;
  std::filesystem::path path_;
};

}  // namespace

TEST_CASE("options: the password is the first line of its file", "[client]") {
  CHECK(dstm_client::read_password_file(TempFile{"wonderland\n"}.path()).value() == "wonderland");
  CHECK(dstm_client::read_password_file(TempFile{"wonderland\r\nsecond\n"}.path()).value() ==
        "wonderland");
  CHECK(dstm_client::read_password_file(TempFile{"no newline"}.path()).value() == "no newline");
  CHECK(dstm_client::read_password_file(TempFile{" spaces kept "}.path()).value() ==
        " spaces kept ");
  CHECK(dstm_client::read_password_file(TempFile{std::string(255, 'p')}.path()).value().size() ==
        255);
}

TEST_CASE("options: a bad password file is an error that never shows the password", "[client]") {
  auto error_of = [](std::string_view content) {
    const TempFile f{content};
    const auto r = dstm_client::read_password_file(f.path());
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK(error_of("").find("empty") != std::string::npos);
  CHECK(error_of("\nsecret-on-line-2\n").find("secret") == std::string::npos);
  const auto long_one = error_of(std::string(256, 's') + "\n");
  CHECK(long_one.find("longer than 255") != std::string::npos);
  CHECK(long_one.find("sss") == std::string::npos);
  const auto nul = error_of(std::string{"pa\0ss\n", 6});
  CHECK(nul.find("NUL") != std::string::npos);
  const auto missing = dstm_client::read_password_file("/nonexistent/dstm-client/pw");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("cannot open") != std::string::npos);
}

TEST_CASE("options: --backend kernel selects the ip6tnl data path", "[client]") {
  const auto cli = parse({"--server", "2001:db8:5::2", "--backend", "kernel"});
  REQUIRE(cli);
  CHECK(cli->options.backend == tep::io::Backend::Kernel);
}
