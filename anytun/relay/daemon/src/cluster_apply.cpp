// The cluster's records applied to the engine, and the records a node sends (cluster_apply.hpp).
#include "cluster_apply.hpp"

#include <algorithm>
#include <variant>

namespace relay_daemon {
namespace cluster = relay::cluster;

namespace {

// The keys, settings and flags of a connection: what makes a Connection record the same
// connection as the one here (the peer, sequence numbers and routes move; these do not).
bool same_connection(const relay::ConnectionSpec& s, const cluster::Connection& r) {
  return s.settings == r.settings && s.key == r.key && s.salt == r.salt && s.window == r.window &&
         s.open_tunnel == r.open_tunnel && s.relay_mode == r.relay_mode;
}

// Whether `theirs` saw a later packet from some sender than `ours`: its node then heard from the
// client last, so its peer is the newer one.
bool saw_later(const std::vector<cluster::SenderMark>& theirs,
               const std::vector<cluster::SenderMark>& ours) {
  return std::ranges::any_of(theirs, [&](const cluster::SenderMark& t) {
    const auto it = std::ranges::find(ours, t.sender_id, &cluster::SenderMark::sender_id);
    return it == ours.end() || t.max > it->max;
  });
}

}  // namespace

ClusterApplier::ClusterApplier(relay::Engine& engine, TxStart tx_start, Limits limits)
    : engine_{engine}, tx_start_{std::move(tx_start)}, limits_{limits} {}

ClusterApplier::Marks ClusterApplier::marks_of(std::uint16_t mux) const {
  Marks out;
  for (const auto& [sender, max] : engine_.rx_marks(mux)) {
    if (out.size() == cluster::kMaxSenders) break;
    out.push_back({sender, max});
  }
  return out;
}

void ClusterApplier::raise(std::uint16_t mux, std::uint32_t tx_seq, const Marks& rx) {
  engine_.raise_tx_seq(mux, tx_seq);
  for (const auto& m : rx) engine_.raise_rx(mux, m.sender_id, m.max);
}

std::string_view ClusterApplier::connection(const cluster::Connection& r) {
  const auto* spec = engine_.spec(r.mux);
  if (spec && !same_connection(*spec, r) && !is_learned(r.mux)) return "conflict";
  if (!spec || !same_connection(*spec, r)) {
    // New here, or a learned connection whose origin changed its keys: (re)added with its
    // routes (a replaced one keeps those it had; RouteAdd records follow the Connection).
    if (!spec && engine_.muxes().size() >= limits_.max_connections) return "table_full";
    relay::ConnectionSpec s;
    s.mux = r.mux;
    s.settings = r.settings;
    s.key = r.key;
    s.salt = r.salt;
    s.window = r.window;
    if (r.peer) s.peer = relay::Peer{*r.peer, 0};
    if (spec) s.routes = spec->routes;
    s.open_tunnel = r.open_tunnel;
    s.relay_mode = r.relay_mode;
    if (!engine_.add(s, spec ? engine_.tx_seq(r.mux) : tx_start_(r.mux))) return "bad_connection";
    learned_.insert(r.mux);
  } else if (r.peer && (!engine_.peer(r.mux) || saw_later(r.rx, marks_of(r.mux)))) {
    engine_.set_peer(r.mux, relay::Peer{*r.peer, 0});
  }
  raise(r.mux, r.tx_seq, r.rx);
  return "";
}

bool ClusterApplier::replace_routes(std::uint16_t mux, std::vector<relay::Prefix> routes) {
  auto s = *engine_.spec(mux);
  s.routes = std::move(routes);
  s.peer = engine_.peer(mux);
  return static_cast<bool>(engine_.add(s, engine_.tx_seq(mux)));
}

std::string_view ClusterApplier::route(const relay::Route& r, bool add) {
  const auto* spec = engine_.spec(r.mux);
  if (!spec) return "unknown_mux";
  if (!is_learned(r.mux)) return "configured";
  auto routes = spec->routes;
  const auto it = std::ranges::find(routes, r.prefix);
  if (!add) {
    if (it == routes.end()) return "";
    routes.erase(it);
    return replace_routes(r.mux, std::move(routes)) ? "" : "bad_connection";
  }
  if (it != routes.end()) return "";
  if (routes.size() >= limits_.max_routes) return "table_full";
  // The table maps a prefix to one MUX: another connection's route here is not taken over.
  const auto taken = std::visit(
      [&](const auto& p) -> bool {
        const auto owner = engine_.routes().lookup(p.network());
        if (!owner || *owner == r.mux) return false;
        return std::ranges::any_of(engine_.routes().routes_of(*owner),
                                   [&](const relay::Route& o) { return o.prefix == r.prefix; });
      },
      r.prefix);
  if (taken) return "route_taken";
  routes.push_back(r.prefix);
  return replace_routes(r.mux, std::move(routes)) ? "" : "bad_connection";
}

std::string_view ClusterApplier::apply(const cluster::Record& record) {
  return std::visit(
      [&](const auto& r) -> std::string_view {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, cluster::Connection>) {
          return connection(r);
        } else if constexpr (std::is_same_v<T, cluster::Remove>) {
          if (!engine_.contains(r.mux)) return "unknown_mux";
          if (!is_learned(r.mux)) return "configured";
          engine_.remove(r.mux);
          learned_.erase(r.mux);
          reported_.erase(r.mux);
          return "";
        } else if constexpr (std::is_same_v<T, cluster::RouteAdd>) {
          return route(r.route, true);
        } else if constexpr (std::is_same_v<T, cluster::RouteRemove>) {
          return route(r.route, false);
        } else if constexpr (std::is_same_v<T, cluster::Peer>) {
          if (!engine_.contains(r.mux)) return "unknown_mux";
          if (!r.peer) return "no_peer";
          // The client's packets reach the sender now: its word is the newest there is.
          engine_.set_peer(r.mux, relay::Peer{*r.peer, 0});
          return "";
        } else if constexpr (std::is_same_v<T, cluster::Progress>) {
          if (!engine_.contains(r.mux)) return "unknown_mux";
          raise(r.mux, r.tx_seq, r.rx);
          return "";
        } else {
          return "";  // Hello, Keepalive
        }
      },
      record);
}

std::vector<cluster::Record> ClusterApplier::dump() const {
  std::vector<cluster::Record> out;
  for (const auto mux : engine_.muxes()) {
    const auto& s = *engine_.spec(mux);
    cluster::Connection c;
    c.mux = mux;
    c.settings = s.settings;
    c.key = s.key;
    c.salt = s.salt;
    c.window = s.window;
    c.open_tunnel = s.open_tunnel;
    c.relay_mode = s.relay_mode;
    if (const auto peer = engine_.peer(mux); peer && peer->stream == 0) c.peer = peer->endpoint;
    c.tx_seq = engine_.tx_seq(mux);
    c.rx = marks_of(mux);
    out.emplace_back(std::move(c));
    for (const auto& r : engine_.routes().routes_of(mux)) out.emplace_back(cluster::RouteAdd{r});
  }
  return out;
}

std::vector<cluster::Record> ClusterApplier::progress() {
  std::vector<cluster::Record> out;
  std::erase_if(reported_, [&](const auto& entry) { return !engine_.contains(entry.first); });
  for (const auto mux : engine_.muxes()) {
    auto now = std::pair{engine_.tx_seq(mux), marks_of(mux)};
    auto& told = reported_[mux];
    if (told == now) continue;
    out.emplace_back(cluster::Progress{mux, now.first, now.second});
    told = std::move(now);
  }
  return out;
}

std::optional<cluster::Record> ClusterApplier::peer_record(std::uint16_t mux,
                                                           const relay::Peer& peer) {
  if (peer.stream != 0) return std::nullopt;
  return cluster::Peer{mux, peer.endpoint};
}

}  // namespace relay_daemon
