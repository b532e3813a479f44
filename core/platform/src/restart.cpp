// The non-template half of platform/restart.hpp: the JSON of /status, /config/check and /reload.
#include "platform/restart.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>

#include <fmt/format.h>
#include <boost/json/serialize.hpp>

namespace platform {

void add_life_to_status(boost::json::object& status, const DaemonLife& life) {
  // Signed like every other integer of these answers, so clients can read them all with
  // as_int64(): a uint64_t would be stored as JSON kind uint64.
  status["generation"] = static_cast<std::int64_t>(life.generation);
  status["started_at"] = life.started_at;
  // (Not value{string}: braces would make a one-element array.)
  status["config_file"] =
      life.config_file ? boost::json::value(*life.config_file) : boost::json::value(nullptr);
  status["pid"] = static_cast<std::int64_t>(::getpid());
  if (!life.last_reload) {
    status["last_reload"] = nullptr;
    return;
  }
  boost::json::object last{{"time", life.last_reload->time},
                           {"result", life.last_reload->reloaded ? "reloaded" : "failed"}};
  if (!life.last_reload->reloaded) last["error"] = life.last_reload->error;
  status["last_reload"] = std::move(last);
}

boost::json::array config_errors_json(const ConfigErrors& errors) {
  boost::json::array out;
  out.reserve(errors.size());
  for (const auto& e : errors)
    out.push_back(boost::json::object{{"pointer", e.path}, {"message", e.message}});
  return out;
}

Response check_config_request(const Request& request,
                              const std::function<ConfigErrors(std::string_view)>& check) {
  const auto* body = request.body.if_object();
  const auto* document = body ? body->if_contains("document") : nullptr;
  if (!document || body->size() != 1)
    return Response::error(400, "body: expected {\"document\": <the appliance config document>}");
  // The daemon's parser reads text, as at start-up; the router already refused repeated keys.
  const auto errors = check(boost::json::serialize(*document));
  return Response::json(
      boost::json::object{{"valid", errors.empty()}, {"errors", config_errors_json(errors)}});
}

namespace restart_detail {

std::int64_t unix_now() noexcept {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void defer_sighup(bool defer) noexcept {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  (void)pthread_sigmask(defer ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

Response invalid_config(std::string_view file, const ConfigErrors& errors) {
  auto response = Response::error(
      422, errors.size() == 1 ? fmt::format("{} is invalid: {}; the running config stays", file,
                                            errors.front().to_string())
                              : fmt::format("{} is invalid ({} errors); the running config stays",
                                            file, errors.size()));
  response.body.as_object()["errors"] = config_errors_json(errors);
  return response;
}

Response reloading(std::uint64_t generation, bool changed) {
  return Response::json(boost::json::object{{"changed", changed},
                                            {"generation", static_cast<std::int64_t>(generation)}},
                        changed ? 202 : 200);
}

}  // namespace restart_detail

}  // namespace platform
