// The config document through the API: read (secrets hidden), check (the dashboard's own rules,
// then each daemon's parser through its control socket), diff, apply with a confirmation window
// and rollback, history and revert.
#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "app_state.hpp"
#include "web/json_diff.hpp"

namespace web::detail {

namespace asio = boost::asio;
namespace json = boost::json;
using platform::Method;

namespace {

// Top-level sections of the appliance document (docs/config.md).
constexpr std::array<std::string_view, 7> kSections = {"dstm_server", "tep",     "client", "web",
                                                       "anytun",      "anycast", "system"};

// While an apply, a rollback or a revert runs, another is refused.
struct BusyGuard {
  explicit BusyGuard(AppState& state) : s{state} { s.busy = true; }
  ~BusyGuard() { s.busy = false; }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;
  AppState& s;
};

json::object problem(std::string pointer, std::string message, std::string_view source) {
  return json::object{
      {"pointer", std::move(pointer)}, {"message", std::move(message)}, {"source", source}};
}

struct CheckOutcome {
  json::array errors;
  json::array warnings;
  json::value document;  // unredacted; null when the redaction could not be undone
};

// Asks a daemon's POST /config/check; appends its errors. False when it did not answer (the
// reason in `why`).
asio::awaitable<bool> ask_daemon(AppState& s, const DaemonRef& d, const json::value& document,
                                 std::string_view source, json::array& errors, std::string& why) {
  // (Built outside the co_await: GCC 12 cannot keep a braced list with literals in the frame.)
  json::object body{{"document", document}};
  auto answer = co_await s.call(d, Method::Post, "/config/check", std::move(body));
  if (!answer) {
    why = d.name + " is down: " + down_reason(answer.error());
    co_return false;
  }
  if (answer->status != 200 || !answer->body.is_object()) {
    why = d.name + " cannot check documents (HTTP " + std::to_string(answer->status) + ")";
    co_return false;
  }
  if (const auto* list = answer->body.get_object().if_contains("errors"); list && list->is_array())
    for (const auto& e : list->get_array()) {
      const auto* eo = e.if_object();
      if (!eo) continue;
      const auto* pointer = eo->if_contains("pointer");
      const auto* message = eo->if_contains("message");
      errors.push_back(problem(
          pointer && pointer->is_string() ? std::string{pointer->get_string()} : std::string{},
          message && message->is_string() ? std::string{message->get_string()}
                                          : std::string{"invalid"},
          source));
    }
  co_return true;
}

asio::awaitable<CheckOutcome> check_document(AppState& s, const json::value& edited) {
  CheckOutcome out;
  const auto* root = edited.if_object();
  if (!root) {
    out.errors.push_back(problem("", "the document must be a JSON object", "document"));
    co_return out;
  }
  for (const auto& [key, value] : *root)
    if (std::find(kSections.begin(), kSections.end(), std::string_view{key}) == kSections.end())
      out.errors.push_back(problem(platform::json_pointer_child("", key),
                                   "unknown section (expected one of dstm_server, tep, client, "
                                   "web, anytun, anycast, system)",
                                   "document"));
  auto restored = unredact(edited, s.document);
  if (!restored) {
    for (auto& e : restored.error()) out.errors.push_back(problem(e.path, e.message, "document"));
    co_return out;
  }
  out.document = std::move(*restored);
  if (auto web = parse_web_section(out.document); !web)
    for (auto& e : web.error()) out.errors.push_back(problem(e.path, e.message, "web"));

  // The daemons check their own sections with their own parsers; the running ones first, and the
  // sockets named in the new document for a daemon the running document does not have.
  auto candidates = s.daemons();
  for (auto& d : daemons_of(out.document))
    if (std::none_of(candidates.begin(), candidates.end(),
                     [&](const DaemonRef& c) { return c.socket == d.socket; }))
      candidates.push_back(d);
  const auto& doc = out.document.get_object();
  const bool has_server = doc.contains("dstm_server") ||
                          std::any_of(candidates.begin(), candidates.end(),
                                      [](const DaemonRef& d) { return d.kind == "dstm-server"; });
  if (has_server) {
    std::string why = "dstm-server is not running";
    bool checked = false;
    for (const auto& d : candidates)
      if (d.kind == "dstm-server" && !checked)
        checked = co_await ask_daemon(s, d, out.document, "dstm-server", out.errors, why);
    if (!checked)
      out.warnings.push_back(
          json::object{{"message", "not checked: " + why}, {"source", "dstm-server"}});
  }
  const bool has_tep =
      doc.contains("tep") || std::any_of(candidates.begin(), candidates.end(),
                                         [](const DaemonRef& d) { return d.kind == "tep"; });
  if (has_tep) {
    // Every TEP parses the whole tep array: one that answers is enough.
    std::string why = "no TEP daemon is running";
    std::string reasons;
    bool checked = false;
    for (const auto& d : candidates) {
      if (d.kind != "tep" || checked) continue;
      checked = co_await ask_daemon(s, d, out.document, "tep", out.errors, why);
      if (!checked) reasons += (reasons.empty() ? "" : "; ") + why;
    }
    if (!checked)
      out.warnings.push_back(json::object{
          {"message", "not checked: " + (reasons.empty() ? why : reasons)}, {"source", "tep"}});
  }
  co_return out;
}

// --- Reloads

asio::awaitable<ReloadResult> reload_one(std::shared_ptr<AppState> s, DaemonRef d) {
  ReloadResult out{d.name, "failed", {}};
  auto answer = co_await s->call(d, Method::Post, "/reload", json::object{});
  if (!answer) {
    out.result = "down";
    out.error = down_reason(answer.error());
    co_return out;
  }
  if (answer->status == 200) {
    out.result = "unchanged";
    co_return out;
  }
  if (answer->status != 202) {
    out.error =
        "HTTP " + std::to_string(answer->status) + ": " + std::string{answer->error_message()};
    if (const auto* o = answer->body.if_object())
      if (const auto* list = o->if_contains("errors"); list && list->is_array())
        for (const auto& e : list->get_array())
          if (const auto* eo = e.if_object())
            if (const auto* m = eo->if_contains("message"); m && m->is_string()) {
              const auto* p = eo->if_contains("pointer");
              out.error += "; " + (p && p->is_string() ? std::string{p->get_string()} + ": " : "") +
                           std::string{m->get_string()};
            }
    co_return out;
  }
  std::int64_t generation = 0;
  if (const auto* o = answer->body.if_object())
    if (const auto* g = o->if_contains("generation"); g && g->is_int64())
      generation = g->as_int64();

  // The daemon stops and starts again in its process: wait for the new generation's /status.
  const auto deadline = std::chrono::steady_clock::now() + s->options.reload_wait;
  const auto poll =
      std::min<std::chrono::milliseconds>(std::chrono::milliseconds{100}, s->options.tick);
  asio::steady_timer timer{s->io};
  while (!s->stopped) {
    if (std::chrono::steady_clock::now() >= deadline) break;
    timer.expires_after(poll);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto st = co_await s->call(d, Method::Get, "/status");
    if (!st || st->status != 200 || !st->body.is_object()) continue;
    const auto& body = st->body.get_object();
    const auto* g = body.if_contains("generation");
    if (!g || !g->is_int64() || g->as_int64() < generation) continue;
    const auto* last = body.if_contains("last_reload");
    const auto* lo = last ? last->if_object() : nullptr;
    const auto* result = lo ? lo->if_contains("result") : nullptr;
    if (result && result->is_string() && result->get_string() == "failed") {
      const auto* e = lo->if_contains("error");
      out.error = "the new config did not start, running the previous one: " +
                  (e && e->is_string() ? std::string{e->get_string()} : std::string{"(no reason)"});
      co_return out;
    }
    out.result = "reloaded";
    co_return out;
  }
  out.error =
      "did not come back within " +
      std::to_string(
          std::chrono::duration_cast<std::chrono::seconds>(s->options.reload_wait).count()) +
      " s";
  co_return out;
}

// POST /reload to every daemon of `before` whose section differs in `after` (its socket from
// `before`: where it listens now). All at once.
asio::awaitable<std::vector<ReloadResult>> reload_changed(std::shared_ptr<AppState> s,
                                                          json::value before, json::value after) {
  const auto next = daemons_of(after);
  std::vector<asio::awaitable<ReloadResult>> tasks;
  for (const auto& d : daemons_of(before)) {
    const auto it = std::find_if(next.begin(), next.end(), [&](const DaemonRef& n) {
      return n.kind == d.kind && n.name == d.name;
    });
    const auto* old_section = json_at(before, d.section);
    const auto* new_section = it == next.end() ? nullptr : json_at(after, it->section);
    if (old_section && new_section && *old_section == *new_section) continue;
    tasks.push_back(reload_one(s, d));
  }
  auto results = co_await gather(std::move(tasks));
  for (const auto& r : results)
    if (r.result == "down" || r.result == "failed")
      s->log.warn("reload of {}: {}: {}", r.name, r.result, r.error);
  co_return results;
}

json::array to_json(const std::vector<ReloadResult>& results) {
  json::array out;
  for (const auto& r : results) {
    json::object o{{"name", r.name}, {"result", r.result}};
    if (!r.error.empty()) o["error"] = r.error;
    out.push_back(std::move(o));
  }
  return out;
}

// --- The confirmation window

asio::awaitable<HttpResponse> rollback(std::shared_ptr<AppState> s, std::string_view reason);

void watch_pending(const std::shared_ptr<AppState>& s);

asio::awaitable<void> watch(std::shared_ptr<AppState> s, std::uint64_t id) {
  while (!s->stopped && s->pending_watch == id) {
    const auto p = s->configs->pending();
    if (!p) co_return;
    const auto now = s->now();
    if (now >= p->deadline && !s->busy) {
      co_await rollback(s, "not confirmed within the window");
      co_return;
    }
    // Woken at the deadline, or at the next tick (the clock may be a test's, or may jump).
    auto wait = std::min<std::chrono::nanoseconds>(
        std::max<std::chrono::nanoseconds>(p->deadline - now, std::chrono::nanoseconds{0}),
        s->options.tick);
    if (wait <= std::chrono::nanoseconds{0}) wait = s->options.tick;
    s->pending_timer.expires_after(wait);
    co_await s->pending_timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void watch_pending(const std::shared_ptr<AppState>& s) {
  const auto id = ++s->pending_watch;
  try {
    s->pending_timer.cancel();
  } catch (...) {  // nothing was waiting
  }
  asio::co_spawn(s->io, watch(s, id), asio::detached);
}

void stop_watching(AppState& s) {
  ++s.pending_watch;
  try {
    s.pending_timer.cancel();
  } catch (...) {  // nothing was waiting
  }
}

HttpResponse internal(AppState& s, std::string_view what, const std::string& error) {
  s.log.error("{}: {}", what, error);
  return HttpResponse::error(500, std::string{what} + ": " + error);
}

asio::awaitable<HttpResponse> rollback(std::shared_ptr<AppState> s, std::string_view reason) {
  const auto p = s->configs->pending();
  if (!p) co_return HttpResponse::error(409, "nothing is waiting for confirmation");
  if (s->busy) co_return HttpResponse::error(409, "another config change is in progress");
  const BusyGuard guard{*s};
  stop_watching(*s);
  const auto previous = s->configs->document(p->previous);
  if (!previous) co_return internal(*s, "config history", previous.error());
  if (!*previous)
    co_return internal(*s, "config history",
                       "revision " + std::to_string(p->previous) + " is missing");
  if (auto w = write_file_atomic(s->options.config_path, format_document(**previous)); !w)
    co_return internal(*s, "cannot restore the config file", w.error());
  if (auto r = s->configs->settle(p->revision, RevisionState::RolledBack, p->previous); !r)
    co_return internal(*s, "config history", r.error());
  auto before = std::exchange(s->document, **previous);
  s->revision = p->previous;
  apply_web_settings(*s, s->document);
  s->rollbacks.inc();
  s->log.warn("revision {} rolled back to revision {}: {}", p->revision, p->previous, reason);
  publish(*s, "config",
          json::object{{"event", "rollback"},
                       {"revision", p->previous},
                       {"rolled_back", p->revision},
                       {"pending", nullptr}});
  const auto reloads = co_await reload_changed(s, std::move(before), s->document);
  co_return HttpResponse::json(json::object{
      {"revision", p->previous}, {"rolled_back", p->revision}, {"reloaded", to_json(reloads)}});
}

// --- Apply

struct ApplyOptions {
  std::string comment;
  bool confirm = true;
  std::chrono::seconds timeout{90};
};

std::optional<std::string> parse_apply_options(const json::value& body, const AppState& s,
                                               ApplyOptions& out) {
  out.timeout = s.web.confirm_timeout;
  const auto* o = body.if_object();
  if (!o) return std::nullopt;  // no body: every default
  if (const auto* c = o->if_contains("comment")) {
    if (!c->is_string() || c->get_string().size() > 500)
      return "comment: expected a string of at most 500 characters";
    out.comment = std::string{c->get_string()};
  }
  if (const auto* c = o->if_contains("confirm")) {
    if (!c->is_bool()) return "confirm: expected true or false";
    out.confirm = c->get_bool();
  }
  if (const auto* t = o->if_contains("timeout")) {
    if (!t->is_int64() || t->as_int64() < 5 || t->as_int64() > 3600)
      return "timeout: expected an integer from 5 to 3600 (seconds)";
    out.timeout = std::chrono::seconds{t->as_int64()};
  }
  for (const auto& [key, value] : *o)
    if (key != "document" && key != "comment" && key != "confirm" && key != "timeout")
      return "unknown member: " + std::string{key};
  return std::nullopt;
}

std::optional<HttpResponse> refuse_when_busy(const AppState& s) {
  if (s.busy) return HttpResponse::error(409, "another config change is in progress");
  if (const auto p = s.configs->pending())
    return HttpResponse::error(409, "revision " + std::to_string(p->revision) +
                                        " is waiting for confirmation: confirm it or roll it "
                                        "back first");
  return std::nullopt;
}

HttpResponse invalid(CheckOutcome& check) {
  return HttpResponse::json(json::object{{"error", "the document has errors"},
                                         {"errors", std::move(check.errors)},
                                         {"warnings", std::move(check.warnings)}},
                            422);
}

asio::awaitable<HttpResponse> apply_document(std::shared_ptr<AppState> s, json::value document,
                                             std::string user, ApplyOptions options,
                                             std::optional<std::int64_t> revert_of,
                                             json::array warnings) {
  const BusyGuard guard{*s};
  const auto previous_id = s->revision;
  auto previous = s->document;
  const auto state = options.confirm
                         ? RevisionState::Pending
                         : (revert_of ? RevisionState::Reverted : RevisionState::Applied);
  std::optional<PendingApply> pending;
  if (options.confirm) pending = PendingApply{0, previous_id, s->now() + options.timeout};
  auto id = s->configs->add(
      document, Revision{0, s->unix_now(), user, options.comment, state, revert_of}, pending);
  if (!id) co_return internal(*s, "config history", id.error());
  if (auto w = write_file_atomic(s->options.config_path, format_document(document)); !w) {
    (void)s->configs->discard(*id, previous_id);
    co_return internal(*s, "cannot write the config file", w.error());
  }
  s->document = std::move(document);
  s->revision = *id;
  const bool restart = apply_web_settings(*s, s->document);
  s->applies.inc();
  s->log.info("revision {} applied by {}{}", *id, user,
              options.confirm ? " (waiting for confirmation)" : "");
  publish(*s, "config",
          json::object{{"event", "apply"}, {"revision", *id}, {"pending", pending_json(*s)}});

  const auto reloads = co_await reload_changed(s, std::move(previous), s->document);

  // The window starts once the daemons have taken the change, when the operator can judge it.
  if (options.confirm) {
    if (auto p = s->configs->pending(); p && p->revision == *id) {
      p->deadline = s->now() + options.timeout;
      if (auto r = s->configs->set_pending(*p); !r) s->log.error("config history: {}", r.error());
      watch_pending(s);
      publish(*s, "config",
              json::object{{"event", "apply"}, {"revision", *id}, {"pending", pending_json(*s)}});
    }
  }
  json::array restart_required;
  if (restart) restart_required.emplace_back("dstm-web");
  co_return HttpResponse::json(json::object{{"revision", *id},
                                            {"reloaded", to_json(reloads)},
                                            {"pending", pending_json(*s)},
                                            {"restart_required", std::move(restart_required)},
                                            {"warnings", std::move(warnings)}});
}

const json::value* document_member(const json::value& body) {
  const auto* o = body.if_object();
  return o ? o->if_contains("document") : nullptr;
}

json::object revision_json(const Revision& r, const AppState& s) {
  json::object o{{"id", r.id},
                 {"time", r.time},
                 {"user", r.user},
                 {"comment", r.comment},
                 {"state", to_string(r.state)},
                 {"current", r.id == s.revision}};
  o["revert_of"] = r.revert_of ? json::value(*r.revert_of) : json::value(nullptr);
  return o;
}

std::optional<std::int64_t> revision_param(const ApiCall& c) {
  const auto text = c.request.param("id").value_or("");
  std::int64_t id = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc{} || p != text.data() + text.size() || id <= 0) return std::nullopt;
  return id;
}

void add_routes(AppState& s) {
  AppState* self = &s;
  s.router.add("GET", "/api/config", Access::Session,
               [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                 if (auto r = refresh_document(*self); !r)
                   co_return HttpResponse::error(500, r.error());
                 co_return HttpResponse::json(json::object{{"document", redact(self->document)},
                                                           {"revision", self->revision},
                                                           {"pending", pending_json(*self)}});
               });
  s.router.add(
      "POST", "/api/config/check", Access::Session,
      [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
        const auto* document = document_member(c.body);
        if (!document) co_return HttpResponse::error(400, "body: expected {\"document\": {...}}");
        auto check = co_await check_document(*self, *document);
        const bool valid = check.errors.empty();
        co_return HttpResponse::json(json::object{{"valid", valid},
                                                  {"errors", std::move(check.errors)},
                                                  {"warnings", std::move(check.warnings)}});
      });
  s.router.add("POST", "/api/config/diff", Access::Session,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 const auto* document = document_member(c.body);
                 if (!document)
                   co_return HttpResponse::error(400, "body: expected {\"document\": {...}}");
                 // Hidden secrets left alone are no change; a hidden value with nothing behind
                 // it shows as what it is.
                 auto restored = unredact(*document, self->document);
                 const auto& after = restored ? *restored : *document;
                 co_return HttpResponse::json(
                     json::object{{"changes", to_json(redact(json_diff(self->document, after)))}});
               });
  s.router.add("POST", "/api/config/apply", Access::Admin,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 const auto* document = document_member(c.body);
                 if (!document)
                   co_return HttpResponse::error(400, "body: expected {\"document\": {...}}");
                 ApplyOptions options;
                 if (auto bad = parse_apply_options(c.body, *self, options))
                   co_return HttpResponse::error(400, *bad);
                 if (auto refused = refuse_when_busy(*self)) co_return std::move(*refused);
                 if (auto r = refresh_document(*self); !r)
                   co_return HttpResponse::error(500, r.error());
                 auto state = self->shared_from_this();
                 const auto user = c.session->user;
                 auto check = co_await check_document(*self, *document);
                 if (!check.errors.empty()) co_return invalid(check);
                 // The check awaited the daemons: another apply may have started meanwhile.
                 if (auto refused = refuse_when_busy(*self)) co_return std::move(*refused);
                 co_return co_await apply_document(state, std::move(check.document), user,
                                                   std::move(options), std::nullopt,
                                                   std::move(check.warnings));
               });
  s.router.add(
      "POST", "/api/config/confirm", Access::Admin,
      [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
        const auto p = self->configs->pending();
        if (!p) co_return HttpResponse::error(409, "nothing is waiting for confirmation");
        const auto r = self->configs->revision(p->revision);
        const auto state =
            r && *r && (*r)->revert_of ? RevisionState::Reverted : RevisionState::Confirmed;
        if (auto done = self->configs->settle(p->revision, state, p->revision); !done)
          co_return internal(*self, "config history", done.error());
        stop_watching(*self);
        self->log.info("revision {} confirmed by {}", p->revision, c.session->user);
        publish(
            *self, "config",
            json::object{{"event", "confirm"}, {"revision", p->revision}, {"pending", nullptr}});
        co_return HttpResponse::json(
            json::object{{"revision", p->revision}, {"state", to_string(state)}});
      });
  s.router.add("POST", "/api/config/rollback", Access::Admin,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 co_return co_await rollback(self->shared_from_this(),
                                             "rolled back by " + c.session->user);
               });
  s.router.add("GET", "/api/config/revisions", Access::Session,
               [self](ApiCall&) -> asio::awaitable<HttpResponse> {
                 const auto list = self->configs->list(50);
                 if (!list) co_return internal(*self, "config history", list.error());
                 json::array out;
                 for (const auto& r : *list) out.push_back(revision_json(r, *self));
                 co_return HttpResponse::json(
                     json::object{{"revisions", std::move(out)}, {"current", self->revision}});
               });
  s.router.add("GET", "/api/config/revisions/{id}", Access::Session,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 const auto id = revision_param(c);
                 if (!id) co_return HttpResponse::error(400, "not a revision number");
                 const auto r = self->configs->revision(*id);
                 const auto d = self->configs->document(*id);
                 if (!r) co_return internal(*self, "config history", r.error());
                 if (!d) co_return internal(*self, "config history", d.error());
                 if (!*r || !*d)
                   co_return HttpResponse::error(404, "no revision " + std::to_string(*id));
                 auto o = revision_json(**r, *self);
                 o["document"] = redact(**d);
                 co_return HttpResponse::json(o);
               });
  s.router.add("POST", "/api/config/revisions/{id}/revert", Access::Admin,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 const auto id = revision_param(c);
                 if (!id) co_return HttpResponse::error(400, "not a revision number");
                 ApplyOptions options;
                 if (auto bad = parse_apply_options(c.body, *self, options))
                   co_return HttpResponse::error(400, *bad);
                 if (document_member(c.body))
                   co_return HttpResponse::error(400, "unknown member: document");
                 if (options.comment.empty())
                   options.comment = "revert to revision " + std::to_string(*id);
                 const auto d = self->configs->document(*id);
                 if (!d) co_return internal(*self, "config history", d.error());
                 if (!*d) co_return HttpResponse::error(404, "no revision " + std::to_string(*id));
                 if (auto refused = refuse_when_busy(*self)) co_return std::move(*refused);
                 auto state = self->shared_from_this();
                 const auto user = c.session->user;
                 auto check = co_await check_document(*self, **d);
                 if (!check.errors.empty()) co_return invalid(check);
                 if (auto refused = refuse_when_busy(*self)) co_return std::move(*refused);
                 co_return co_await apply_document(state, std::move(check.document), user,
                                                   std::move(options), *id,
                                                   std::move(check.warnings));
               });
}

}  // namespace

json::value pending_json(const AppState& s) {
  const auto p = s.configs->pending();
  if (!p) return nullptr;
  const auto remaining = std::chrono::ceil<std::chrono::seconds>(p->deadline - s.now());
  return json::object{
      {"revision", p->revision},
      {"deadline",
       std::chrono::duration_cast<std::chrono::seconds>(p->deadline.time_since_epoch()).count()},
      {"remaining", std::max<std::int64_t>(0, remaining.count())}};
}

boost::system::result<void, std::string> refresh_document(AppState& s) {
  // During an apply or its window the file is the dashboard's own.
  if (s.busy || s.configs->pending()) return {};
  auto on_disk = read_document(s.options.config_path);
  if (!on_disk) return on_disk.error();
  const auto stored = s.configs->document(s.revision);
  if (stored && *stored && **stored == *on_disk) {
    s.document = std::move(*on_disk);
    return {};
  }
  auto id = s.configs->add(*on_disk,
                           Revision{0, s.unix_now(), "(file)", "changed outside the dashboard",
                                    RevisionState::Applied, std::nullopt},
                           std::nullopt);
  if (!id) return "config history: " + id.error();
  s.log.info("the config file changed outside the dashboard: revision {}", *id);
  s.document = std::move(*on_disk);
  s.revision = *id;
  return {};
}

boost::system::result<void, std::string> resume_pending(const std::shared_ptr<AppState>& s) {
  const auto p = s->configs->pending();
  if (!p) return {};
  const auto applied = s->configs->document(p->revision);
  const auto previous = s->configs->document(p->previous);
  if (!applied || !previous)
    return "config history: " + (!applied ? applied.error() : previous.error());
  if (!*previous) {
    // Nothing to go back to: keep what runs.
    s->log.error("revision {} cannot be rolled back: revision {} is missing", p->revision,
                 p->previous);
    return s->configs->settle(p->revision, RevisionState::Applied, p->revision);
  }
  // A window that ran out while the dashboard was down, or an apply that never reached the file
  // (the dashboard stopped in between), is rolled back now.
  const bool on_disk = *applied && **applied == s->document;
  if (s->now() < p->deadline && on_disk) {
    s->revision = p->revision;
    watch_pending(s);
    return {};
  }
  if (auto w = write_file_atomic(s->options.config_path, format_document(**previous)); !w)
    return "cannot restore the config file: " + w.error();
  if (auto r = s->configs->settle(p->revision, RevisionState::RolledBack, p->previous); !r)
    return "config history: " + r.error();
  auto before = std::exchange(s->document, **previous);
  s->revision = p->previous;
  apply_web_settings(*s, s->document);
  s->rollbacks.inc();
  s->log.warn("revision {} rolled back to revision {}: {}", p->revision, p->previous,
              on_disk ? "not confirmed before the window ran out while the dashboard was down"
                      : "the apply did not complete");
  asio::co_spawn(s->io, reload_changed(s, std::move(before), s->document), asio::detached);
  return {};
}

void add_config_routes(AppState& s) {
  add_routes(s);
}

}  // namespace web::detail
