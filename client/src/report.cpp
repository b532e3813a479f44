// The client's lease view, event lines and status document.
#include "dstm_client/report.hpp"

#include <variant>

#include <fmt/format.h>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace dstm_client {

namespace json = boost::json;

namespace {

bool usable(const core::Ipv6Address& a) noexcept {
  return !a.is_unspecified() && !a.is_multicast();
}
bool usable(core::Ipv4Address a) noexcept {
  return !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast();
}

json::value text_or_null(const std::optional<core::Ipv4Address>& a) {
  return a ? json::value(a->to_string()) : json::value();
}

std::string line(const json::object& o) {
  return json::serialize(o);
}

void lease_fields(json::object& o, const LeaseInfo& l) {
  o["ipv4"] = l.ipv4.to_string();
  o["tep_ipv6"] = l.tep_ipv6.to_string();
  o["tep_ipv4"] = l.tep_ipv4.to_string();
}

}  // namespace

boost::system::result<LeaseInfo, Failure> lease_from_offer(
    const tsp::Tunnel& offer, std::optional<core::Ipv6Address> session_local) {
  if (!offer.client) return Failure{"the offer has no client endpoint"};
  if (!offer.server) return Failure{"the offer has no server (TEP) endpoint"};
  LeaseInfo l;
  const auto ipv4 = offer.client->ipv4();
  if (!ipv4 || !usable(*ipv4)) return Failure{"the offer has no usable client IPv4"};
  l.ipv4 = *ipv4;
  const auto local = offer.client->ipv6() ? offer.client->ipv6() : session_local;
  if (!local || !usable(*local)) return Failure{"no usable IPv6 for our tunnel end"};
  l.local = *local;
  const auto tep6 = offer.server->ipv6();
  if (!tep6 || !usable(*tep6)) return Failure{"the offer has no usable TEP IPv6"};
  l.tep_ipv6 = *tep6;
  const auto tep4 = offer.server->ipv4();
  if (!tep4 || !usable(*tep4)) return Failure{"the offer has no usable TEP IPv4"};
  l.tep_ipv4 = *tep4;
  if (!offer.lifetime) return Failure{"the offer has no lifetime"};
  l.lifetime = *offer.lifetime;
  // The server puts the keepalive in the client endpoint (gogoc reads it there); accept it in
  // the server endpoint too.
  for (const auto* e : {&*offer.client, &*offer.server}) {
    if (!e->keepalive || e->keepalive->interval == 0 || !e->keepalive->address) continue;
    const auto* a = std::get_if<core::Ipv4Address>(&e->keepalive->address->value);
    if (!a || !usable(*a)) continue;
    l.keepalive = *a;
    l.keepalive_interval = e->keepalive->interval;
    break;
  }
  return l;
}

std::string up_event(const LeaseInfo& lease, std::string_view interface,
                     std::optional<core::Ipv4Address> previous_ipv4) {
  json::object o;
  o["event"] = "up";
  lease_fields(o, lease);
  o["keepalive"] = text_or_null(lease.keepalive);
  o["lifetime"] = lease.lifetime;
  o["interface"] = interface;
  if (previous_ipv4) o["previous_ipv4"] = previous_ipv4->to_string();
  return line(o);
}

std::string renewed_event(const LeaseInfo& lease, std::optional<core::Ipv4Address> previous_ipv4) {
  json::object o;
  o["event"] = "renewed";
  lease_fields(o, lease);
  o["lifetime"] = lease.lifetime;
  if (previous_ipv4) o["previous_ipv4"] = previous_ipv4->to_string();
  return line(o);
}

std::string tep_lost_event(const LeaseInfo& lease, unsigned misses) {
  json::object o;
  o["event"] = "tep_lost";
  lease_fields(o, lease);
  o["keepalive"] = text_or_null(lease.keepalive);
  o["misses"] = misses;
  return line(o);
}

std::string moved_event(const LeaseInfo& from, const LeaseInfo& to) {
  json::object o;
  o["event"] = "moved";
  o["ipv4"] = to.ipv4.to_string();
  o["from_tep_ipv6"] = from.tep_ipv6.to_string();
  o["from_tep_ipv4"] = from.tep_ipv4.to_string();
  o["tep_ipv6"] = to.tep_ipv6.to_string();
  o["tep_ipv4"] = to.tep_ipv4.to_string();
  o["lifetime"] = to.lifetime;
  if (from.ipv4 != to.ipv4) o["previous_ipv4"] = from.ipv4.to_string();
  return line(o);
}

std::string released_event(core::Ipv4Address ipv4, bool confirmed) {
  json::object o;
  o["event"] = "released";
  o["ipv4"] = ipv4.to_string();
  o["confirmed"] = confirmed;
  return line(o);
}

std::string expired_event(core::Ipv4Address ipv4) {
  json::object o;
  o["event"] = "expired";
  o["ipv4"] = ipv4.to_string();
  return line(o);
}

std::string error_event(std::string_view phase, std::string_view message) {
  json::object o;
  o["event"] = "error";
  o["phase"] = phase;
  o["message"] = message;
  return line(o);
}

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::Connecting:
      return "connecting";
    case State::Up:
      return "up";
    case State::Recreating:
      return "recreating";
  }
  return "unknown";
}

json::value status_json(const StatusSnapshot& s) {
  json::object o;
  o["state"] = to_string(s.state);
  const auto* l = s.lease ? &*s.lease : nullptr;
  o["ipv4"] = l ? json::value(l->ipv4.to_string()) : json::value();
  o["local_ipv6"] = l ? json::value(l->local.to_string()) : json::value();
  o["tep_ipv6"] = l ? json::value(l->tep_ipv6.to_string()) : json::value();
  o["tep_ipv4"] = l ? json::value(l->tep_ipv4.to_string()) : json::value();
  o["keepalive"] = l ? text_or_null(l->keepalive) : json::value();
  o["keepalive_interval"] = l && l->keepalive ? json::value(l->keepalive_interval) : json::value();
  o["lifetime"] = l ? json::value(l->lifetime) : json::value();
  o["expires_in"] = s.expires_in ? json::value(*s.expires_in) : json::value();
  o["interface"] = s.interface;
  o["backend"] = s.backend;
  o["renewals"] = s.renewals;
  o["tep_changes"] = s.tep_changes;
  o["keepalive_sent"] = s.keepalive_sent;
  o["keepalive_answered"] = s.keepalive_answered;
  o["keepalive_misses"] = s.keepalive_misses;
  json::object counters;
  for (const auto& [name, value] : s.counters) counters[name] = value;
  json::object drops;
  for (const auto& [name, value] : s.decap_drops) drops[name] = value;
  counters["decap_drops"] = std::move(drops);
  o["counters"] = std::move(counters);
  if (!s.fast_path.empty()) {
    json::object fast;
    for (const auto& [name, value] : s.fast_path) fast[name] = value;
    o["fast_path"] = std::move(fast);
  }
  if (!s.kernel.empty()) {
    json::object kernel;
    for (const auto& [name, value] : s.kernel) kernel[name] = value;
    o["kernel"] = std::move(kernel);
  }
  return o;
}

}  // namespace dstm_client
