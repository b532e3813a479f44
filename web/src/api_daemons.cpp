// What the daemons say, through their control sockets: status, leases, TEPs, traffic and logs.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include <boost/json.hpp>

#include "app_state.hpp"
#include "core/address.hpp"

namespace web::detail {

namespace asio = boost::asio;
namespace json = boost::json;
using platform::Method;

namespace {

const json::object* object_at(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  const auto* m = o ? o->if_contains(key) : nullptr;
  return m ? m->if_object() : nullptr;
}

json::value member_or_null(const json::object* o, std::string_view key) {
  if (!o) return nullptr;
  const auto* v = o->if_contains(key);
  return v ? *v : json::value(nullptr);
}

// The members of an object that exist, or null when there is no object.
json::value pick(const json::object* o, std::initializer_list<std::string_view> keys) {
  if (!o) return nullptr;
  json::object out;
  for (const auto k : keys)
    if (const auto* v = o->if_contains(k)) out[k] = *v;
  return out;
}

// A daemon's answer as the API's: 2xx and 4xx pass through (the daemon's own error text);
// a transport failure is 503 "<name> is down: <reason>".
HttpResponse pass_through(const DaemonRef& d, const DaemonAnswer& answer) {
  if (!answer) return HttpResponse::error(503, d.name + " is down: " + down_reason(answer.error()));
  if (answer->status >= 500)
    return HttpResponse::error(502, d.name + " failed: " + std::string{answer->error_message()});
  return HttpResponse::json(answer->body, answer->status);
}

// Query parameters passed on to a daemon: only the listed ones; any other is 400.
std::optional<std::string> unknown_parameter(const HttpRequest& r,
                                             std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : r.query)
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return name;
  return std::nullopt;
}

struct DaemonStatus {
  DaemonRef ref;
  DaemonAnswer answer;
  bool up() const { return answer && answer->status == 200; }
  const json::value* body() const { return up() ? &answer->body : nullptr; }
  std::string error() const {
    if (!answer) return down_reason(answer.error());
    if (answer->status != 200)
      return "HTTP " + std::to_string(answer->status) + ": " + std::string{answer->error_message()};
    return {};
  }
};

asio::awaitable<std::vector<DaemonStatus>> all_status(AppState& s) {
  const auto daemons = s.daemons();
  std::vector<asio::awaitable<DaemonAnswer>> calls;
  for (const auto& d : daemons) calls.push_back(s.call(d, Method::Get, "/status"));
  auto answers = co_await gather(std::move(calls));
  std::vector<DaemonStatus> out;
  for (std::size_t i = 0; i < daemons.size(); ++i)
    out.push_back(DaemonStatus{daemons[i], std::move(answers[i])});
  co_return out;
}

json::object daemon_json(const DaemonStatus& d) {
  json::object o{
      {"kind", d.ref.kind}, {"name", d.ref.name}, {"socket", d.ref.socket}, {"up", d.up()}};
  if (!d.up()) o["error"] = d.error();
  if (const auto* body = d.body(); body && body->is_object()) {
    const auto& b = body->get_object();
    for (const auto key : {"version", "generation", "started_at", "pid", "uptime"})
      if (const auto* v = b.if_contains(key)) o[key] = *v;
  }
  return o;
}

asio::awaitable<HttpResponse> status(AppState& s) {
  const auto daemons = co_await all_status(s);
  json::object out;
  out["version"] = s.options.version;
  out["build"] = s.options.build;
  out["hostname"] = read_hostname();
  const auto uptime = read_uptime();
  out["uptime"] = uptime ? json::value(*uptime) : json::value(nullptr);
  out["web_uptime"] =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - s.started)
          .count();
  json::array roles;
  for (const auto& d : daemons)
    if (std::find(roles.begin(), roles.end(), json::value(d.ref.kind)) == roles.end())
      roles.emplace_back(d.ref.kind);
  out["roles"] = std::move(roles);
  const auto cpu = read_cpu_times();
  if (cpu) {
    const auto before = s.cpu_before.value_or(CpuTimes{});
    out["cpu"] = json::object{{"percent", cpu_percent(before, *cpu)}};
    s.cpu_before = cpu;
  } else {
    out["cpu"] = nullptr;
  }
  if (const auto memory = read_memory())
    out["memory"] = json::object{{"total", memory->total}, {"available", memory->available}};
  else
    out["memory"] = nullptr;

  json::array list;
  const DaemonStatus* server = nullptr;
  std::map<std::string, const DaemonStatus*> local_teps;
  for (const auto& d : daemons) {
    list.push_back(daemon_json(d));
    if (d.ref.kind == "dstm-server" && !server) server = &d;
    if (d.ref.kind == "tep") local_teps.emplace(d.ref.name, &d);
  }
  out["daemons"] = std::move(list);

  const json::value* server_status = server ? server->body() : nullptr;
  const json::value none = nullptr;
  const auto& ss = server_status ? *server_status : none;
  out["pool"] = pick(object_at(ss, "pool"), {"total", "used", "free"});
  out["sessions"] = pick(object_at(ss, "sessions"), {"tcp", "udp"});
  out["leases"] = pick(object_at(ss, "leases"), {"active", "expired"});
  if (const auto* o = ss.if_object(); o && o->contains("lease_lifetime"))
    out["lease_lifetime"] = o->at("lease_lifetime");

  // Every TEP the server knows, and every TEP daemon on this box.
  json::array teps;
  std::set<std::string> seen;
  auto tep_entry = [&](const std::string& name, const json::object* server_view) {
    json::object t{{"name", name}};
    t["alive"] = server_view ? member_or_null(server_view, "alive") : json::value(nullptr);
    const auto it = local_teps.find(name);
    const DaemonStatus* local = it == local_teps.end() ? nullptr : it->second;
    t["up"] = local ? json::value(local->up()) : json::value(nullptr);
    const auto* body = local ? local->body() : nullptr;
    const auto* bo = body ? body->if_object() : nullptr;
    t["bindings"] = member_or_null(bo, "bindings");
    const auto* session = bo ? object_at(*body, "server") : nullptr;
    t["query_rate"] = member_or_null(session, "query_rate");
    t["query_latency"] = member_or_null(session, "query_latency");
    teps.push_back(std::move(t));
    seen.insert(name);
  };
  if (const auto* server_teps = object_at(ss, "teps")) {
    if (const auto* l = server_teps->if_contains("list"); l && l->is_array()) {
      for (const auto& t : l->get_array()) {
        const auto* to = t.if_object();
        const auto* name = to ? to->if_contains("name") : nullptr;
        if (name && name->is_string()) tep_entry(std::string{name->get_string()}, to);
      }
    }
  }
  for (const auto& [name, d] : local_teps)
    if (!seen.contains(name)) tep_entry(name, nullptr);
  out["teps"] = std::move(teps);
  co_return HttpResponse::json(out);
}

std::optional<DaemonRef> server_or_error(AppState& s, HttpResponse& error) {
  auto d = s.daemon("dstm-server");
  if (!d) error = HttpResponse::error(503, "dstm-server is not part of this appliance's config");
  return d;
}

asio::awaitable<HttpResponse> leases(AppState& s, ApiCall& c) {
  if (auto bad = unknown_parameter(c.request, {"ipv4", "ipv6", "user", "tep", "state", "q", "sort",
                                               "order", "offset", "limit"}))
    co_return HttpResponse::error(400, "unknown parameter: " + *bad);
  HttpResponse error;
  const auto d = server_or_error(s, error);
  if (!d) co_return error;
  co_return pass_through(
      *d, co_await s.call(*d, Method::Get, "/leases" + query_string(c.request.query)));
}

// The {ipv4} of /api/leases/{ipv4}..., checked here so that only an address reaches the daemon.
std::optional<std::string> lease_address(const ApiCall& c) {
  const auto a = core::Ipv4Address::parse(c.request.param("ipv4").value_or(""));
  if (!a) return std::nullopt;
  return a->to_string();
}

asio::awaitable<HttpResponse> lease_call(AppState& s, ApiCall& c, Method method,
                                         std::string_view action) {
  const auto a = lease_address(c);
  if (!a) co_return HttpResponse::error(400, "not an IPv4 address");
  HttpResponse error;
  const auto d = server_or_error(s, error);
  if (!d) co_return error;
  json::value body = nullptr;
  if (action == "/extend") {
    const auto* o = c.body.if_object();
    const auto* seconds = o ? o->if_contains("seconds") : nullptr;
    if (!seconds || !seconds->is_int64())
      co_return HttpResponse::error(400, "body: expected {\"seconds\": integer}");
    body = json::object{{"seconds", seconds->as_int64()}};
  } else if (method == Method::Post) {
    body = json::object{};
  }
  auto answer = co_await s.call(*d, method, "/leases/" + *a + std::string{action}, std::move(body));
  if (method == Method::Post && answer && answer->status == 200)
    s.log.info("lease {}{} by {}", *a, action == "/extend" ? " extended" : " released",
               c.session->user);
  co_return pass_through(*d, answer);
}

asio::awaitable<HttpResponse> teps(AppState& s) {
  const auto daemons = s.daemons();
  auto server = s.daemon("dstm-server");
  // The server's view of every TEP, and each local TEP's status and bindings, all at once.
  std::vector<asio::awaitable<DaemonAnswer>> calls;
  std::vector<DaemonRef> local;
  for (const auto& d : daemons) {
    if (d.kind != "tep") continue;
    local.push_back(d);
    calls.push_back(s.call(d, Method::Get, "/status"));
    calls.push_back(s.call(d, Method::Get, "/bindings?limit=10000"));
  }
  if (server) calls.push_back(s.call(*server, Method::Get, "/teps"));
  auto answers = co_await gather(std::move(calls));

  std::map<std::string, json::value> server_view;
  if (server) {
    const auto& a = answers.back();
    if (a && a->status == 200)
      if (const auto* l = a->body.is_object() ? a->body.get_object().if_contains("teps") : nullptr;
          l && l->is_array())
        for (const auto& t : l->get_array())
          if (const auto* n = t.is_object() ? t.get_object().if_contains("name") : nullptr;
              n && n->is_string())
            server_view.emplace(std::string{n->get_string()}, t);
  }
  json::array out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < local.size(); ++i) {
    const auto& st = answers[2 * i];
    const auto& bindings = answers[2 * i + 1];
    const bool up = st && st->status == 200;
    json::object t{{"name", local[i].name}, {"up", up}};
    if (!up) t["error"] = st ? "HTTP " + std::to_string(st->status) : down_reason(st.error());
    t["status"] = up ? st->body : json::value(nullptr);
    const auto sv = server_view.find(local[i].name);
    t["server"] = sv == server_view.end() ? json::value(nullptr) : sv->second;
    t["drops"] = up ? tep_drops(st->body) : json::object{};
    t["top_talkers"] =
        bindings && bindings->status == 200 ? top_talkers(bindings->body, 10) : json::array{};
    out.push_back(std::move(t));
    seen.insert(local[i].name);
  }
  // TEPs on other boxes: only the server's view.
  for (const auto& [name, view] : server_view) {
    if (seen.contains(name)) continue;
    out.push_back(json::object{{"name", name},
                               {"up", nullptr},
                               {"status", nullptr},
                               {"server", view},
                               {"drops", json::object{}},
                               {"top_talkers", json::array{}}});
  }
  co_return HttpResponse::json(out);
}

asio::awaitable<HttpResponse> tep_bindings(AppState& s, ApiCall& c) {
  if (auto bad = unknown_parameter(c.request, {"search", "limit"}))
    co_return HttpResponse::error(400, "unknown parameter: " + *bad);
  const auto name = c.request.param("name").value_or("");
  const auto d = s.daemon("tep", name);
  if (!d) co_return HttpResponse::error(404, "no TEP daemon " + std::string{name} + " on this box");
  co_return pass_through(
      *d, co_await s.call(*d, Method::Get, "/bindings" + query_string(c.request.query)));
}

asio::awaitable<HttpResponse> traffic(AppState& s) {
  std::vector<DaemonRef> teps;
  for (auto& d : s.daemons())
    if (d.kind == "tep") teps.push_back(std::move(d));
  std::vector<asio::awaitable<DaemonAnswer>> calls;
  for (const auto& d : teps) calls.push_back(s.call(d, Method::Get, "/status"));
  auto answers = co_await gather(std::move(calls));
  json::object per_tep;
  for (std::size_t i = 0; i < teps.size(); ++i)
    if (answers[i] && answers[i]->status == 200)
      per_tep[teps[i].name] = to_json(tep_traffic(answers[i]->body));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.now().time_since_epoch()).count();
  co_return HttpResponse::json(json::object{{"time", ms}, {"teps", std::move(per_tep)}});
}

// --- Logs

struct LogQuery {
  std::optional<std::string> daemon;
  std::string level = "debug";
  std::string text;  // lower case
  std::size_t limit = 500;
};

std::string lowered(std::string_view s) {
  std::string out{s};
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::optional<std::string> parse_log_query(const HttpRequest& r, LogQuery& q) {
  if (auto bad = unknown_parameter(r, {"daemon", "level", "q", "limit"}))
    return "unknown parameter: " + *bad;
  if (auto v = r.query_param("daemon"); v && !v->empty()) q.daemon = std::string{*v};
  if (auto v = r.query_param("level"); v && !v->empty()) {
    if (!platform::parse_log_level(*v)) return "level: expected debug, info, warn or error";
    q.level = std::string{*v};
  }
  if (auto v = r.query_param("q")) q.text = lowered(*v);
  if (auto v = r.query_param("limit")) {
    std::size_t n = 0;
    const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc{} || p != v->data() + v->size() || n == 0 || n > 2000)
      return "limit: expected an integer from 1 to 2000";
    q.limit = n;
  }
  return std::nullopt;
}

struct MergedLogs {
  json::array lines;
  json::array unavailable;
};

asio::awaitable<std::optional<MergedLogs>> merged_logs(AppState& s, const LogQuery& q,
                                                       std::string& error) {
  std::vector<DaemonRef> sources;
  for (const auto& d : s.daemons())
    if (!q.daemon || *q.daemon == d.name) sources.push_back(d);
  const bool own = !q.daemon || *q.daemon == "dstm-web";
  if (sources.empty() && !own) {
    error = "daemon: no daemon " + *q.daemon;
    co_return std::nullopt;
  }
  // Whole rings (2000 lines at most each): the text filter runs here, over all of them.
  const std::string target = "/logs?limit=2000&level=" + q.level;
  std::vector<asio::awaitable<DaemonAnswer>> calls;
  for (const auto& d : sources) calls.push_back(s.call(d, Method::Get, target));
  auto answers = co_await gather(std::move(calls));

  std::vector<std::pair<std::string, DaemonAnswer>> pages;
  for (std::size_t i = 0; i < sources.size(); ++i)
    pages.emplace_back(sources[i].name, std::move(answers[i]));
  if (own) {
    if (auto ring = platform::log_ring()) {
      platform::Request r;
      r.query = {{"limit", "2000"}, {"level", q.level}};
      pages.emplace_back("dstm-web", platform::serve_logs(*ring, r));
    }
  }

  struct Line {
    std::string_view time;
    std::size_t source;
    std::int64_t seq;
    const json::object* line;
  };
  std::vector<Line> lines;
  MergedLogs out;
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const auto& [name, answer] = pages[i];
    if (!answer || answer->status != 200) {
      out.unavailable.push_back(
          json::object{{"daemon", name},
                       {"error", answer ? "HTTP " + std::to_string(answer->status) + ": " +
                                              std::string{answer->error_message()}
                                        : down_reason(answer.error())}});
      continue;
    }
    const auto* body = answer->body.if_object();
    const auto* list = body ? body->if_contains("lines") : nullptr;
    if (!list || !list->is_array()) continue;
    for (const auto& l : list->get_array()) {
      const auto* lo = l.if_object();
      if (!lo) continue;
      const auto* time = lo->if_contains("time");
      const auto* seq = lo->if_contains("seq");
      if (!time || !time->is_string()) continue;
      if (!q.text.empty()) {
        std::string hay;
        for (const auto key : {"message", "component"})
          if (const auto* v = lo->if_contains(key); v && v->is_string())
            hay += lowered(v->get_string()) + '\n';
        if (hay.find(q.text) == std::string::npos) continue;
      }
      lines.push_back(
          Line{time->get_string(), i, seq && seq->is_int64() ? seq->as_int64() : 0, lo});
    }
  }
  // Times are ISO 8601 UTC with milliseconds: they sort as text.
  std::stable_sort(lines.begin(), lines.end(), [](const Line& a, const Line& b) {
    return std::tie(a.time, a.source, a.seq) < std::tie(b.time, b.source, b.seq);
  });
  const auto first = lines.size() > q.limit ? lines.size() - q.limit : 0;
  for (auto i = first; i < lines.size(); ++i) {
    json::object o{{"daemon", pages[lines[i].source].first}};
    for (const auto key : {"seq", "time", "level", "component", "message"})
      o[key] = member_or_null(lines[i].line, key);
    out.lines.push_back(std::move(o));
  }
  co_return out;
}

// One line of the downloaded file; control characters escaped so that a line is a record.
std::string text_line(const json::object& o) {
  auto field = [&](std::string_view key) -> std::string {
    const auto* v = o.if_contains(key);
    if (!v) return {};
    if (v->is_string()) return std::string{v->get_string()};
    return json::serialize(*v);
  };
  std::string message;
  for (const char ch : field("message")) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '\n') {
      message += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr std::string_view kHex = "0123456789abcdef";
      message += "\\x";
      message += kHex[u >> 4];
      message += kHex[u & 0x0f];
    } else {
      message += ch;
    }
  }
  auto level = field("level");
  for (auto& ch : level) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return field("time") + " " + field("daemon") + " " + level + " [" + field("component") + "] " +
         message + "\n";
}

asio::awaitable<HttpResponse> logs(AppState& s, ApiCall& c, bool download) {
  LogQuery q;
  if (auto bad = parse_log_query(c.request, q)) co_return HttpResponse::error(400, *bad);
  std::string error;
  auto merged = co_await merged_logs(s, q, error);
  if (!merged) co_return HttpResponse::error(400, error);
  if (!download)
    co_return HttpResponse::json(json::object{{"lines", std::move(merged->lines)},
                                              {"unavailable", std::move(merged->unavailable)}});
  HttpResponse r;
  r.content_type = "text/plain; charset=utf-8";
  for (const auto& l : merged->lines) r.body += text_line(l.as_object());
  r.with_header("Content-Disposition", "attachment; filename=\"appl-logs.txt\"");
  co_return r;
}

}  // namespace

void add_daemon_routes(AppState& s) {
  AppState* self = &s;
  s.router.add("GET", "/api/status", Access::Session, [self](ApiCall&) { return status(*self); });
  s.router.add("GET", "/api/leases", Access::Session,
               [self](ApiCall& c) { return leases(*self, c); });
  s.router.add("GET", "/api/leases/{ipv4}", Access::Session,
               [self](ApiCall& c) { return lease_call(*self, c, Method::Get, ""); });
  s.router.add("POST", "/api/leases/{ipv4}/release", Access::Admin,
               [self](ApiCall& c) { return lease_call(*self, c, Method::Post, "/release"); });
  s.router.add("POST", "/api/leases/{ipv4}/extend", Access::Admin,
               [self](ApiCall& c) { return lease_call(*self, c, Method::Post, "/extend"); });
  s.router.add("GET", "/api/teps", Access::Session, [self](ApiCall&) { return teps(*self); });
  s.router.add("GET", "/api/teps/{name}/bindings", Access::Session,
               [self](ApiCall& c) { return tep_bindings(*self, c); });
  s.router.add("GET", "/api/traffic", Access::Session, [self](ApiCall&) { return traffic(*self); });
  s.router.add("GET", "/api/logs", Access::Session,
               [self](ApiCall& c) { return logs(*self, c, false); });
  s.router.add("GET", "/api/logs/download", Access::Session,
               [self](ApiCall& c) { return logs(*self, c, true); });
}

}  // namespace web::detail
