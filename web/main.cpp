// dstm-web: the appliance dashboard and JSON API (docs/web.md, docs/api.md).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>

#include "platform/cli.hpp"
#include "platform/config.hpp"
#include "platform/counters.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "platform/signals.hpp"
#include "web/app.hpp"
#include "web/config.hpp"
#include "web/server.hpp"
#include "web/tls.hpp"

namespace {

constexpr std::string_view kVersion = APPL_VERSION;
constexpr std::string_view kBuild = APPL_BUILD;
constexpr std::string_view kDefaultConfig = "/etc/appl/appliance.json";

constexpr std::string_view kUsage = R"(usage: dstm-web [options]
  --config FILE     the appliance config document (default /etc/appl/appliance.json; created
                    from the default document when it does not exist)
  --state-dir DIR   where users, certificates and config history live (overrides web.state_dir)
  --check-config    validate the web section, print a summary, and exit (0 valid, 78 invalid)
  --ready-fd N      write "READY\n" to file descriptor N once serving, then close it
  --log-level L     debug, info (default), warn or error
  --version         print the version and exit
)";

// A first start on a new box: the document the daemons would use without one, written where
// the dashboard (and, through it, the operator) will edit it. 0600: the document may come to
// hold the TEPs' passwords.
std::optional<std::string> create_default_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const auto dir = fs::path{path}.parent_path(); !dir.empty()) fs::create_directories(dir, ec);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("cannot create {}: {}", tmp, std::strerror(errno));
  const std::string_view text = web::default_document();
  bool ok = true;
  for (std::size_t done = 0; ok && done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  // link() rather than rename(): two first starts at once must not overwrite each other.
  if (!ok || (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)) {
    const int e = ok ? errno : err;
    ::unlink(tmp.c_str());
    return fmt::format("cannot write {}: {}", path, std::strerror(e));
  }
  ::unlink(tmp.c_str());
  return std::nullopt;
}

std::string url_host(const boost::asio::ip::address& a) {
  return a.is_v6() ? fmt::format("[{}]", a.to_string()) : a.to_string();
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> state_dir;
  const auto args = platform::parse_daemon_arguments(
      argc, argv, "dstm-web", kVersion, kUsage,
      [&](std::string_view arg, const std::function<std::string_view()>& value) {
        if (arg != "--state-dir") return false;
        state_dir = std::string{value()};
        return true;
      });
  if (state_dir && (state_dir->empty() || state_dir->front() != '/')) {
    fmt::print(stderr, "dstm-web: --state-dir must be an absolute path\n");
    return 64;  // EX_USAGE, as for the other usage errors
  }
  // The dashboard's own lines for GET /api/logs, beside the daemons' (platform/log.hpp).
  platform::install_log_ring(2000);
  platform::Logger log{"web"};
  const std::string config_path = args.config_file.value_or(std::string{kDefaultConfig});

  struct stat st {};
  if (::stat(config_path.c_str(), &st) != 0 && errno == ENOENT && !args.check_only) {
    if (auto error = create_default_config(config_path)) {
      log.error("{}", *error);
      return 1;
    }
    log.info("created {} from the default document", config_path);
  }
  auto text = platform::read_config_file(config_path);
  if (!text) platform::exit_with_config_errors(config_path, text.error());
  auto document = platform::parse_json(*text);
  if (!document) platform::exit_with_config_errors(config_path, document.error());
  auto parsed = web::parse_web_section(*document);
  if (!parsed) platform::exit_with_config_errors(config_path, parsed.error());
  web::WebConfig config = std::move(*parsed);
  if (state_dir) config.state_dir = *state_dir;
  if (args.check_only) {
    fmt::print("{}: web section valid ({} listen addresses, HTTPS port {})\n", config_path,
               config.listen.size(), config.https_port);
    return 0;
  }

  platform::raise_descriptor_limit();
  std::error_code ec;
  std::filesystem::create_directories(config.state_dir, ec);
  ::chmod(config.state_dir.c_str(), 0700);  // users, keys and history: the owner's only

  std::vector<std::string> names = config.listen;
  names.emplace_back("localhost");
  auto tls = web::Tls::open(config.state_dir + "/tls", names);
  if (!tls) {
    log.error("cannot set up TLS: {}", tls.error());
    return 1;
  }

  // Declared before the io_context, so they outlive anything it still holds when it goes.
  platform::Counters counters;
  boost::asio::io_context io{1};
  web::AppOptions app_options;
  app_options.config_path = config_path;
  app_options.web = config;
  app_options.version = std::string{kVersion};
  app_options.build = std::string{kBuild};
  app_options.tls = tls->get();
  app_options.counters = &counters;
  auto app = web::App::open(io, std::move(app_options));
  if (!app) {
    log.error("cannot start: {}", app.error());
    return 1;
  }

  auto server_opts = web::server_options(config, **tls, &counters);
  server_opts.upload = (*app)->upload_policy();
  web::Server server{io, std::move(server_opts), (*app)->handler()};
  if (auto started = server.start(); !started) {
    log.error("{}", started.error());
    return 1;
  }

  // On the console, not in the log: the operator reads it once; the log ring is served to
  // every viewer of the logs page.
  for (const auto& ep : server.https_endpoints())
    fmt::print("dashboard: https://{}:{}/\n", url_host(ep.address()), ep.port());
  if (const auto& password = (*app)->first_admin_password())
    fmt::print(
        "first start: user admin, password {} (also in {}/initial-admin-password until "
        "changed)\n",
        *password, config.state_dir);
  std::fflush(stdout);

  platform::stop_on_signals(io, {SIGINT, SIGTERM}, [&] {
    log.info("stopping");
    server.stop();
    (*app)->stop();
  });
  if (args.ready_fd) platform::notify_ready(*args.ready_fd);
  io.run();
  return 0;
}
