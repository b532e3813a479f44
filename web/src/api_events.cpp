// GET /api/events: Server-Sent Events. One sampler asks the daemons once per tick for everyone
// and fans the result out to every open stream.
#include <map>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "app_state.hpp"

namespace web::detail {

namespace asio = boost::asio;
namespace json = boost::json;

Subscriber::Subscriber(asio::any_io_executor executor, std::string session_key)
    : wake_{executor, asio::steady_timer::time_point::max()},
      session_key_{std::move(session_key)} {}

asio::awaitable<std::optional<std::string>> Subscriber::next() {
  for (;;) {
    if (cancelled_) co_return std::nullopt;
    if (!queue_.empty()) {
      auto message = std::move(queue_.front());
      queue_.pop_front();
      co_return message;
    }
    wake_.expires_at(asio::steady_timer::time_point::max());
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void Subscriber::wake() noexcept {
  try {
    wake_.cancel();
  } catch (...) {  // only on a broken timer; the reader then wakes with the next message
  }
}

void Subscriber::cancel() noexcept {
  cancelled_ = true;
  queue_.clear();
  wake();
}

void Subscriber::push(std::string message) {
  if (cancelled_) return;
  if (queue_.size() >= kQueue) queue_.pop_front();
  queue_.push_back(std::move(message));
  wake();
}

std::vector<std::shared_ptr<Subscriber>> EventHub::live() {
  std::vector<std::shared_ptr<Subscriber>> out;
  std::erase_if(subscribers, [&](const std::weak_ptr<Subscriber>& w) {
    auto s = w.lock();
    if (!s || s->cancelled()) return true;
    out.push_back(std::move(s));
    return false;
  });
  return out;
}

std::size_t EventHub::count_for(const std::string& session_key) {
  std::size_t n = 0;
  for (const auto& s : live())
    if (s->session_key() == session_key) ++n;
  return n;
}

std::string sse_message(std::string_view event, const json::value& data) {
  // serialize() never emits a raw newline, so the data is one "data:" line.
  return "event: " + std::string{event} + "\ndata: " + json::serialize(data) + "\n\n";
}

void publish(AppState& s, std::string_view event, const json::value& data) {
  const auto message = sse_message(event, data);
  for (auto& sub : s.events.live()) sub->push(message);
}

namespace {

asio::awaitable<json::object> sample(AppState& s) {
  const auto daemons = s.daemons();
  std::vector<asio::awaitable<DaemonAnswer>> calls;
  for (const auto& d : daemons) calls.push_back(s.call(d, platform::Method::Get, "/status"));
  auto answers = co_await gather(std::move(calls));

  const auto now = std::chrono::steady_clock::now();
  const double seconds =
      s.events.last_time ? std::chrono::duration<double>(now - *s.events.last_time).count() : 0.0;
  std::map<std::string, Traffic> current;
  Rates total;
  json::object per_tep;
  json::array up;
  json::value pool = nullptr;
  json::value leases = nullptr;
  json::value sessions = nullptr;
  for (std::size_t i = 0; i < daemons.size(); ++i) {
    const auto& a = answers[i];
    const bool ok = a && a->status == 200 && a->body.is_object();
    up.push_back(json::object{{"name", daemons[i].name}, {"up", ok}});
    if (!ok) continue;
    const auto& body = a->body.get_object();
    if (daemons[i].kind == "dstm-server") {
      if (const auto* v = body.if_contains("pool")) pool = *v;
      if (const auto* v = body.if_contains("leases")) leases = *v;
      if (const auto* v = body.if_contains("sessions")) sessions = *v;
    } else if (daemons[i].kind == "tep") {
      const auto traffic = tep_traffic(a->body);
      current[daemons[i].name] = traffic;
      Rates r;
      if (const auto it = s.events.last_traffic.find(daemons[i].name);
          it != s.events.last_traffic.end())
        r = rates(it->second, traffic, seconds);
      // The total is the sum of each TEP's rate, so that one TEP restarting (its counters back
      // at zero) does not make the total jump.
      total.in_bps += r.in_bps;
      total.out_bps += r.out_bps;
      total.in_pps += r.in_pps;
      total.out_pps += r.out_pps;
      per_tep[daemons[i].name] = to_json(r);
    }
  }
  s.events.last_traffic = std::move(current);
  s.events.last_time = now;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.now().time_since_epoch()).count();
  co_return json::object{
      {"time", ms},
      {"traffic", json::object{{"total", to_json(total)}, {"teps", std::move(per_tep)}}},
      {"pool", std::move(pool)},
      {"leases", std::move(leases)},
      {"sessions", std::move(sessions)},
      {"daemons", std::move(up)},
      {"pending", pending_json(s)},
  };
}

asio::awaitable<void> sampler(std::shared_ptr<AppState> s) {
  while (!s->stopped) {
    // Streams of sessions that ended (logout, idle, password change) end too.
    for (auto& sub : s->events.live())
      if (!s->sessions.find_key(sub->session_key(), s->now(), s->web.session_idle_timeout))
        sub->cancel();
    if (s->events.live().empty()) break;
    const auto begun = std::chrono::steady_clock::now();
    const auto data = co_await sample(*s);
    if (s->stopped) break;
    publish(*s, "tick", data);
    s->events.sampler_timer.emplace(s->io, begun + s->options.tick);
    co_await s->events.sampler_timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  s->events.sampling = false;
  s->events.last_traffic.clear();
  s->events.last_time.reset();
}

}  // namespace

void add_event_routes(AppState& s) {
  AppState* self = &s;
  s.router.add("GET", "/api/events", Access::Session,
               [self](ApiCall& c) -> asio::awaitable<HttpResponse> {
                 auto& hub = self->events;
                 if (self->stopped) co_return HttpResponse::error(503, "stopping");
                 if (hub.count_for(c.session->key) >= EventHub::kPerSession ||
                     hub.live().size() >= EventHub::kTotal)
                   co_return HttpResponse::error(429, "too many event streams");
                 auto sub = std::make_shared<Subscriber>(self->io.get_executor(), c.session->key);
                 sub->push("retry: 3000\n\n");  // reconnect after 3 s when the stream breaks
                 hub.subscribers.push_back(sub);
                 if (!hub.sampling) {
                   hub.sampling = true;
                   asio::co_spawn(self->io, sampler(self->shared_from_this()), asio::detached);
                 }
                 HttpResponse r;
                 r.content_type = "text/event-stream";
                 r.stream = std::move(sub);
                 co_return r;
               });
}

}  // namespace web::detail
