#include "dstm_server/control_api.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "dstm_server/config.hpp"
#include "dstm_server/service.hpp"
#include "dstm_server/transport.hpp"

namespace dstm_server {

namespace json = boost::json;
using platform::Request;
using platform::Response;

namespace {

constexpr std::size_t kDefaultPage = 100;
constexpr std::size_t kMaxPage = 1000;

std::string_view state_name(LeaseState s) noexcept {
  return s == LeaseState::active ? "active" : "expired";
}

json::object lease_json(const LeaseView& l, Seconds now) {
  return json::object{
      {"ipv4", l.ipv4.to_string()},   {"ipv6", l.client.to_string()},
      {"user", l.identity},           {"tep", l.tep},
      {"state", state_name(l.state)}, {"granted_at", l.granted_at},
      {"expires_at", l.expires_at},   {"remaining", std::max<Seconds>(0, l.expires_at - now)},
  };
}

json::object lease_json(const Lease& l, Seconds now) {
  return lease_json(
      LeaseView{l.ipv4, l.client, l.identity, l.tep, l.granted_at, l.expires_at, l.state}, now);
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t v = 0;
  const auto* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc{} || p != end || text.empty()) return std::nullopt;
  return v;
}

// The lease filter of GET /leases, parsed from the query string.
struct LeaseFilter {
  std::optional<core::Ipv4Prefix> ipv4;
  std::optional<core::Ipv6Prefix> ipv6;
  std::optional<std::string> user;
  std::optional<std::string> tep;
  std::optional<LeaseState> state;
  std::optional<std::string> text;  // q: substring of any column's text

  bool matches(const LeaseView& l) const {
    if (ipv4 && !ipv4->contains(l.ipv4)) return false;
    if (ipv6 && !ipv6->contains(l.client)) return false;
    if (user && l.identity != *user) return false;
    if (tep && l.tep != *tep) return false;
    if (state && l.state != *state) return false;
    if (text) {
      // Text forms on the stack: a search visits every lease, and allocating two strings per
      // lease doubled its cost.
      const auto has = [&](std::string_view s) { return s.find(*text) != std::string_view::npos; };
      core::Ipv4Address::Text v4;
      core::Ipv6Address::Text v6;
      if (!has(l.ipv4.to_chars(v4)) && !has(l.identity) && !has(l.tep) &&
          !has(l.client.to_chars(v6)))
        return false;
    }
    return true;
  }
};

// "192.0.2.7" or "192.0.2.0/24".
template <class Prefix, class Address>
std::optional<Prefix> address_or_prefix(std::string_view text, unsigned bits) {
  if (text.find('/') != std::string_view::npos) {
    if (auto p = Prefix::parse(text)) return *p;
    return std::nullopt;
  }
  if (auto a = Address::parse(text)) {
    if (auto p = Prefix::make(*a, bits)) return *p;
  }
  return std::nullopt;
}

Response list_leases(const ControlContext& c, const Request& r) {
  LeaseFilter f;
  if (auto v = r.query_param("ipv4")) {
    f.ipv4 = address_or_prefix<core::Ipv4Prefix, core::Ipv4Address>(*v, 32);
    if (!f.ipv4) return Response::error(400, "ipv4: not an IPv4 address or prefix");
  }
  if (auto v = r.query_param("ipv6")) {
    f.ipv6 = address_or_prefix<core::Ipv6Prefix, core::Ipv6Address>(*v, 128);
    if (!f.ipv6) return Response::error(400, "ipv6: not an IPv6 address or prefix");
  }
  if (auto v = r.query_param("user")) f.user = std::string{*v};
  if (auto v = r.query_param("tep")) f.tep = std::string{*v};
  if (auto v = r.query_param("q"); v && !v->empty()) f.text = std::string{*v};
  if (auto v = r.query_param("state")) {
    if (*v == "active") {
      f.state = LeaseState::active;
    } else if (*v == "expired") {
      f.state = LeaseState::expired;
    } else {
      return Response::error(400, "state: expected \"active\" or \"expired\"");
    }
  }
  const auto sort = r.query_param("sort").value_or("ipv4");
  if (sort != "ipv4" && sort != "expires_at")
    return Response::error(400, "sort: expected \"ipv4\" or \"expires_at\"");
  const auto order = r.query_param("order").value_or("asc");
  if (order != "asc" && order != "desc")
    return Response::error(400, "order: expected \"asc\" or \"desc\"");
  std::uint64_t offset = 0;
  std::uint64_t limit = kDefaultPage;
  if (auto v = r.query_param("offset")) {
    auto n = parse_count(*v);
    if (!n) return Response::error(400, "offset: expected a non-negative integer");
    offset = *n;
  }
  if (auto v = r.query_param("limit")) {
    auto n = parse_count(*v);
    if (!n || *n == 0 || *n > kMaxPage)
      return Response::error(400, "limit: expected an integer from 1 to 1000");
    limit = *n;
  }

  // Collect the matches as (sort key, address): 16 bytes each, then sort only the page's prefix.
  struct Row {
    std::int64_t key;
    std::uint32_t ipv4;
  };
  std::vector<Row> rows;
  const bool by_expiry = sort == "expires_at";
  c.service.table().for_each([&](const LeaseView& l) {
    if (!f.matches(l)) return;
    rows.push_back(
        Row{by_expiry ? l.expires_at : std::int64_t{l.ipv4.to_uint()}, l.ipv4.to_uint()});
  });
  const auto total = rows.size();
  const bool desc = order == "desc";
  auto less = [desc](const Row& a, const Row& b) {
    const auto ka = std::pair{a.key, a.ipv4};
    const auto kb = std::pair{b.key, b.ipv4};
    return desc ? kb < ka : ka < kb;
  };
  const auto first = std::min<std::uint64_t>(offset, total);
  const auto last = std::min<std::uint64_t>(offset + limit, total);
  std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(last), rows.end(),
                    less);

  const Seconds now = c.service.now();
  json::array page;
  for (auto i = first; i < last; ++i) {
    if (auto l = c.service.table().find(core::Ipv4Address{rows[i].ipv4}))
      page.push_back(lease_json(*l, now));
  }
  return Response::json(json::object{
      {"total", total}, {"offset", offset}, {"limit", limit}, {"leases", std::move(page)}});
}

std::optional<core::Ipv4Address> address_param(const Request& r) {
  auto text = r.param("ipv4");
  if (!text) return std::nullopt;
  auto a = core::Ipv4Address::parse(*text);
  if (!a) return std::nullopt;
  return *a;
}

json::array teps_json(const ControlContext& c) {
  const auto& reg = c.service.teps();
  const Seconds now = c.service.now();
  json::array out;
  for (TepId id = 0; id < reg.size(); ++id) {
    const auto& tc = reg.config(id);
    json::object t{
        {"name", tc.name},
        {"ipv6", tc.ipv6.to_string()},
        {"ipv4", tc.ipv4.to_string()},
        {"weight", tc.weight},
        {"heartbeat", tc.heartbeat},
        {"alive", reg.alive(id, now)},
        {"sessions", reg.sessions(id)},
        {"leases", reg.leases(id)},
        {"pending_withdrawals", reg.pending_withdrawals(id)},
    };
    // Parentheses, not braces: json::value{x} is a one-element array.
    t["user"] = tc.user ? json::value(*tc.user) : json::value(nullptr);
    const auto heard = reg.last_heard(id);
    t["last_heard"] = heard ? json::value(*heard) : json::value(nullptr);
    t["keepalive"] = tc.keepalive ? json::value(tc.keepalive->to_string()) : json::value(nullptr);
    out.push_back(std::move(t));
  }
  return out;
}

Response status(const ControlContext& c) {
  const auto& table = c.service.table();
  const auto& pool = table.pool();
  json::array prefixes;
  for (const auto& p : pool.prefixes()) prefixes.emplace_back(p.to_string());
  json::array listeners;
  for (const auto& e : c.transport.endpoints())
    listeners.push_back(json::object{
        {"transport", e.transport == tsp::Transport::Tcp ? "tcp" : "udp"},
        {"address", e.address},
        {"port", e.port},
    });
  const auto& reg = c.service.teps();
  const Seconds now = c.service.now();
  std::size_t alive = 0;
  for (TepId id = 0; id < reg.size(); ++id)
    if (reg.alive(id, now)) ++alive;
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - c.started);
  json::object o{
      {"daemon", "dstm-server"},
      {"version", c.version},
      {"uptime", uptime.count()},
      {"now", now},
      {"pool", json::object{{"prefixes", std::move(prefixes)},
                            {"total", pool.total()},
                            {"used", pool.used()},
                            {"free", pool.free()}}},
      {"leases",
       json::object{
           {"active", table.active()}, {"expired", table.held()}, {"total", table.size()}}},
      {"sessions",
       json::object{{"tcp", c.transport.tcp_sessions()}, {"udp", c.transport.udp_sessions()}}},
      {"teps", json::object{{"configured", reg.size()}, {"alive", alive}, {"list", teps_json(c)}}},
      {"listeners", std::move(listeners)},
      {"store", json::object{{"path", c.config.store.path},
                             {"sync", c.config.store.sync == StoreSync::Full ? "full" : "normal"},
                             {"pending", c.service.pending_commit()}}},
      {"lease_lifetime", c.config.lease.lifetime},
  };
  platform::add_life_to_status(o, c.life);
  return Response::json(std::move(o));
}

}  // namespace

platform::Router make_control_router(const ControlContext& context) {
  const ControlContext* c = &context;
  platform::Router router;
  router.get("/status", [c](const Request&) { return status(*c); });
  router.get("/leases", [c](const Request& r) { return list_leases(*c, r); });
  router.get("/leases/{ipv4}", [c](const Request& r) {
    const auto a = address_param(r);
    if (!a) return Response::error(400, "not an IPv4 address");
    const auto l = c->service.table().find(*a);
    if (!l) return Response::error(404, "no lease for " + a->to_string());
    return Response::json(lease_json(*l, c->service.now()));
  });
  router.post("/leases/{ipv4}/release", [c](const Request& r) {
    const auto a = address_param(r);
    if (!a) return Response::error(400, "not an IPv4 address");
    auto gone = c->service.admin_release(*a);
    if (!gone) return Response::error(404, "no lease for " + a->to_string());
    return Response::json(json::object{{"released", lease_json(*gone, c->service.now())}});
  });
  router.post("/leases/{ipv4}/extend", [c](const Request& r) {
    const auto a = address_param(r);
    if (!a) return Response::error(400, "not an IPv4 address");
    const auto* body = r.body.if_object();
    const auto* seconds = body ? body->if_contains("seconds") : nullptr;
    if (!seconds || !seconds->is_int64() || seconds->as_int64() < 60 ||
        seconds->as_int64() > c->config.lease.max_lifetime)
      return Response::error(400, "body: expected {\"seconds\": 60..max_lifetime}");
    auto renewed = c->service.admin_extend(*a, seconds->as_int64());
    if (!renewed) return Response::error(404, "no lease for " + a->to_string());
    return Response::json(json::object{{"lease", lease_json(*renewed, c->service.now())}});
  });
  router.get("/teps", [c](const Request&) {
    return Response::json(json::object{{"teps", teps_json(*c)}});
  });
  router.post("/config/check", [](const Request& r) {
    return platform::check_config_request(r, [](std::string_view document) {
      auto config = parse_config_document(document);
      return config ? platform::ConfigErrors{} : config.error();
    });
  });
  router.post("/reload", [c](const Request&) { return c->reload(); });
  return router;
}

}  // namespace dstm_server
