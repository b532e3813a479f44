// The firmware page's API (docs/api.md, "Firmware"): the slots and versions (fw-upgrade status),
// a bundle uploaded to a file and verified before anything is flashed, the install run as a
// child process with its progress, the reboot, and the settings backup and restore. Every
// change is run by fw-upgrade (docs/firmware.md); the dashboard keeps no firmware logic.
#include <sys/stat.h>

#include <fstream>

#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "app_state.hpp"
#include "child_process.hpp"

namespace web::detail {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kUploadPath = "/api/firmware/upload";
constexpr std::string_view kRestorePath = "/api/firmware/restore";
// A status or verify reads at most the bundle; an install writes a slot.
constexpr std::chrono::milliseconds kQuick{10'000};
constexpr std::chrono::milliseconds kVerify{300'000};
constexpr std::chrono::milliseconds kInstall{1'800'000};
constexpr std::uint64_t kMaxBackup = 64 * 1024 * 1024;  // fwimage::kMaxArchive
constexpr std::uint64_t kEventStep = 1024 * 1024;

fs::path firmware_dir(const AppState& s) {
  return fs::path{s.web.state_dir} / "firmware";
}
fs::path staged_file(const AppState& s) {
  return firmware_dir(s) / "staged.dstmfw";
}

std::vector<std::string> tool(const AppState& s, std::initializer_list<std::string> args) {
  std::vector<std::string> argv{s.web.firmware.tool};
  // Without a configured disk the tool finds the appliance's disk itself (docs/firmware.md).
  if (!s.web.firmware.disk.empty()) argv.insert(argv.end(), {"--disk", s.web.firmware.disk});
  argv.insert(argv.end(), args);
  return argv;
}

// The tool's answer: its JSON object, or {"error","message"} made from what went wrong.
json::object answer_of(const ChildResult& r) {
  boost::system::error_code ec;
  auto v = json::parse(r.last_line(), ec);
  if (!ec && v.is_object()) return std::move(v.as_object());
  const std::string why = !r.error.empty() ? r.error
                                           : fmt::format(
                                                 "fw-upgrade exited with status {} without "
                                                 "an answer",
                                                 r.exit_code);
  return json::object{{"error", "tool"}, {"message", why}};
}

HttpResponse refused(const json::object& answer) {
  json::object body{{"error", answer.contains("message") ? answer.at("message") : "refused"}};
  if (answer.contains("error")) body["code"] = answer.at("error");
  return HttpResponse::json(body, 422);
}

bool keep_of(const HttpRequest& r) {
  const auto keep = r.query_param("keep_settings");
  return !keep || (*keep != "false" && *keep != "0");
}

json::value job_json(const FirmwareJob& j) {
  return json::object{{"state", j.state},
                      {"written", j.written},
                      {"total", j.total},
                      {"result", j.result},
                      {"rebooting", j.rebooting}};
}

asio::awaitable<void> run_install(std::shared_ptr<AppState> s, bool keep) {
  auto argv = tool(*s, {"--progress", "install", staged_file(*s).string(),
                        keep ? "--keep-settings" : "--reset-settings"});
  std::function<void(std::string_view)> on_line = [s](std::string_view line) {
    auto& job = s->firmware_job;
    boost::system::error_code ec;
    const auto v = json::parse(line, ec);
    if (ec || !v.is_object() || !v.as_object().contains("progress")) return;
    const auto* p = v.as_object().at("progress").if_object();
    if (!p) return;
    if (const auto* w = p->if_contains("written"); w && w->is_int64())
      job.written = static_cast<std::uint64_t>(w->as_int64());
    if (const auto* t = p->if_contains("total"); t && t->is_int64())
      job.total = static_cast<std::uint64_t>(t->as_int64());
    // The page polls; events go out once per MiB, not per 64 KiB chunk.
    if (job.written - job.published >= kEventStep || job.written == job.total) {
      job.published = job.written;
      publish(*s, "firmware", job_json(job));
    }
  };
  auto result = co_await run_child(std::move(argv), kInstall, std::move(on_line));
  auto answer = answer_of(result);
  auto& job = s->firmware_job;
  job.state = result.exit_code == 0 && answer.contains("installed") ? "installed" : "failed";
  job.result = std::move(answer);
  if (job.state == "installed") {
    std::error_code ec;
    fs::remove(staged_file(*s), ec);
    s->staged = nullptr;
    s->log.info("firmware {} installed into slot {}", job.result.at("version").as_string(),
                job.result.at("target").as_string());
  } else {
    s->log.warn("firmware install failed: {}", json::serialize(job.result));
  }
  publish(*s, "firmware", job_json(job));
}

}  // namespace

std::optional<Upload> upload_for(AppState& s, const HttpRequest& head) {
  if (head.method != "POST" || (head.path != kUploadPath && head.path != kRestorePath))
    return std::nullopt;
  // Only an admin's request with its CSRF token gets its body written to disk; any other is read
  // as an ordinary request (under the 1 MiB limit) and refused by the API's own checks.
  const auto cookies = parse_cookies(head.header("cookie").value_or(""));
  const auto it = cookies.find("appl_session");
  if (it == cookies.end()) return std::nullopt;
  const auto* session = s.sessions.find(it->second, s.now(), s.web.session_idle_timeout);
  const auto token = head.header("x-csrf-token");
  if (!session || session->role != Role::Admin || !origin_matches_host(head) || !token ||
      !constant_time_equal(*token, session->csrf))
    return std::nullopt;
  return Upload{.file = fs::path{s.web.state_dir} / "uploads" / (random_hex(16) + ".part"),
                .max_bytes = s.web.firmware.max_upload_bytes,
                .timeout = std::chrono::milliseconds{300'000}};
}

boost::system::result<void, std::string> open_firmware_dirs(AppState& s) {
  // Uploads left by a stop in the middle of one are removed; a verified bundle stays staged
  // only until the dashboard restarts (its verdict is not kept).
  for (const auto& dir : {fs::path{s.web.state_dir} / "uploads", firmware_dir(s)}) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) return dir.string() + ": " + ec.message();
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  return {};
}

void add_firmware_routes(AppState& app) {
  AppState* self = &app;

  app.router.add("GET", "/api/firmware", Access::Session,
                 [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                   auto s = self->shared_from_this();
                   auto argv = tool(*s, {"status"});
                   auto result = co_await run_child(std::move(argv), kQuick);
                   auto status = answer_of(result);
                   json::value board = "x86-64";
                   if (const auto* fw = status.if_contains("firmware"); fw && fw->is_object())
                     board = fw->at("board");
                   co_return HttpResponse::json(json::object{{"version", s->options.version},
                                                             {"build", s->options.build},
                                                             {"board", board},
                                                             {"status", std::move(status)},
                                                             {"staged", s->staged},
                                                             {"job", job_json(s->firmware_job)}});
                 });

  app.router.add(
      "POST", kUploadPath, Access::Admin, [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
        auto s = self->shared_from_this();
        if (c.request.body_file.empty())
          co_return HttpResponse::error(400, "send the bundle as the request body");
        if (s->firmware_job.state == "installing")
          co_return HttpResponse::error(409, "an install is running");
        const bool keep = keep_of(c.request);
        auto argv = tool(*s, {"verify", c.request.body_file.string(),
                              keep ? "--keep-settings" : "--reset-settings"});
        auto result = co_await run_child(std::move(argv), kVerify);
        auto answer = answer_of(result);
        if (result.exit_code != 0 || answer.contains("error")) {
          s->log.warn("firmware upload refused: {}", json::serialize(answer));
          co_return refused(answer);
        }
        std::error_code ec;
        fs::rename(c.request.body_file, staged_file(*s), ec);
        if (ec) co_return HttpResponse::error(500, "cannot keep the bundle: " + ec.message());
        s->staged = answer;
        s->firmware_job = FirmwareJob{};
        s->log.info("firmware {} uploaded and verified", answer.at("version").as_string());
        co_return HttpResponse::json(json::object{{"verified", std::move(answer)}});
      });

  app.router.add(
      "POST", "/api/firmware/install", Access::Admin,
      [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
        auto s = self->shared_from_this();
        if (s->staged.is_null())
          co_return HttpResponse::error(409, "upload and verify a bundle first");
        if (s->firmware_job.state == "installing")
          co_return HttpResponse::error(409, "an install is running");
        bool keep = s->staged.at("keep_settings").as_bool();
        if (c.body.is_object())
          if (const auto* k = c.body.as_object().if_contains("keep_settings")) {
            if (!k->is_bool())
              co_return HttpResponse::error(400, "keep_settings must be true or false");
            keep = k->as_bool();
          }
        s->firmware_job = FirmwareJob{};
        s->firmware_job.state = "installing";
        s->firmware_job.total = s->staged.at("size").to_number<std::uint64_t>();
        asio::co_spawn(s->io, run_install(s, keep), asio::detached);
        co_return HttpResponse::json(json::object{{"job", job_json(s->firmware_job)}}, 202);
      });

  app.router.add("POST", "/api/firmware/reboot", Access::Admin,
                 [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                   auto s = self->shared_from_this();
                   if (s->firmware_job.state == "installing")
                     co_return HttpResponse::error(409, "an install is running");
                   s->firmware_job.rebooting = true;
                   s->log.warn("reboot requested from the dashboard");
                   // The answer goes out first; the command may end this process.
                   asio::co_spawn(
                       s->io,
                       [s]() -> asio::awaitable<void> {
                         auto argv = s->web.firmware.reboot_command;
                         auto r = co_await run_child(std::move(argv), kQuick);
                         if (r.exit_code != 0) {
                           s->firmware_job.rebooting = false;
                           s->log.error(
                               "reboot command failed: {}",
                               r.error.empty() ? fmt::format("status {}", r.exit_code) : r.error);
                         }
                       },
                       asio::detached);
                   co_return HttpResponse::json(json::object{{"rebooting", true}}, 202);
                 });

  app.router.add(
      "GET", "/api/firmware/backup", Access::Admin,
      [self](ApiCall&) -> asio::awaitable<HttpResponse> {
        auto s = self->shared_from_this();
        const auto file = fs::path{s->web.state_dir} / "uploads" / (random_hex(16) + ".tar");
        auto argv = tool(*s, {"backup", file.string()});
        auto result = co_await run_child(std::move(argv), kVerify);
        auto answer = answer_of(result);
        std::string archive;
        if (result.exit_code == 0 && !answer.contains("error")) {
          std::ifstream in{file, std::ios::binary};
          archive.assign(std::istreambuf_iterator<char>{in}, {});
        }
        std::error_code ec;
        fs::remove(file, ec);
        if (result.exit_code != 0 || answer.contains("error") || archive.empty() ||
            archive.size() > kMaxBackup)
          co_return HttpResponse::error(
              500, "backup failed: " + std::string{answer.contains("message")
                                                       ? answer.at("message").as_string()
                                                       : "no archive"});
        HttpResponse r;
        r.content_type = "application/x-tar";
        r.body = std::move(archive);
        r.with_header("Content-Disposition", "attachment; filename=\"dstm-settings.tar\"");
        co_return r;
      });

  app.router.add("POST", kRestorePath, Access::Admin,
                 [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                   auto s = self->shared_from_this();
                   if (c.request.body_file.empty())
                     co_return HttpResponse::error(400, "send the backup as the request body");
                   auto argv = tool(*s, {"restore", c.request.body_file.string()});
                   auto result = co_await run_child(std::move(argv), kVerify);
                   auto answer = answer_of(result);
                   if (result.exit_code != 0 || answer.contains("error")) co_return refused(answer);
                   s->log.warn("settings restored from a backup; they take effect at the reboot");
                   co_return HttpResponse::json(answer);
                 });
}

}  // namespace web::detail
