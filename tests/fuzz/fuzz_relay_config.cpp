// The appliance config document as satp-relay reads it (its "anytun" section). Invariants: never
// a crash, a hang or a leak; a rejected document names at least one error with a JSON pointer
// and a message, and no error about a passphrase, secret, key or salt repeats that value; an
// accepted one respects the rules the reader promises.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <boost/json/parse.hpp>

#include "fuzz_check.hpp"
#include "relay_daemon/config.hpp"
#include "satp/replay.hpp"

namespace {

constexpr std::string_view kSecretKeys[] = {"/passphrase", "/secret", "/key", "/salt"};

// An error about a secret value must not carry it. Only long values are looked for: a short one
// may occur in any message by chance.
void check_no_secret(const boost::json::value& doc, const platform::ConfigError& e) {
  const bool about_secret = std::any_of(std::begin(kSecretKeys), std::end(kSecretKeys),
                                        [&](std::string_view k) { return e.path.ends_with(k); });
  if (!about_secret) return;
  boost::system::error_code ec;
  const auto* v = doc.find_pointer(e.path, ec);
  const auto* s = v ? v->if_string() : nullptr;
  if (!s || s->size() < 16) return;
  FUZZ_CHECK(e.message.find(std::string_view{*s}) == std::string::npos);
}

void check_connection(const relay_daemon::ConnectionConfig& c) {
  FUZZ_CHECK(satp::settings_problem(c.settings).empty());
  FUZZ_CHECK(c.key.size == satp::key_size(c.settings.kd_prf));
  FUZZ_CHECK(c.window <= satp::kMaxWindowSize);
  if (c.remote) FUZZ_CHECK(c.remote->port != 0 && !c.remote->is_unspecified());
}

void check_tun(const relay_daemon::TunConfig& t) {
  FUZZ_CHECK(!t.name.empty() && t.name.size() <= 15);
  FUZZ_CHECK(t.mtu >= 576 && t.mtu <= 1580);
  FUZZ_CHECK(t.addresses.size() <= 16);
}

void check_relay(const relay_daemon::RelayConfig& r) {
  FUZZ_CHECK(!r.listen.empty() && r.listen.size() <= 8);
  FUZZ_CHECK(std::set(r.listen.begin(), r.listen.end()).size() == r.listen.size());
  std::set<std::uint16_t> muxes;
  std::set<std::pair<std::size_t, std::string>> routes;
  for (const auto& c : r.connections) {
    check_connection(c);
    FUZZ_CHECK(muxes.insert(c.mux).second);
    for (const auto& p : c.routes) {
      const auto text = std::visit([](const auto& x) { return x.to_string(); }, p);
      FUZZ_CHECK(routes.emplace(p.index(), text).second);
    }
    if (c.open_tunnel) FUZZ_CHECK(r.open_tunnel && r.tun);
    if (c.relay_mode) FUZZ_CHECK(r.relay_mode.has_value());
  }
  if (r.tun) check_tun(*r.tun);
  if (r.open_tunnel) {
    FUZZ_CHECK(r.open_tunnel->address4 || r.open_tunnel->address6);
    FUZZ_CHECK(r.open_tunnel->port_first >= 1);
    FUZZ_CHECK(r.open_tunnel->port_first <= r.open_tunnel->port_last);
    FUZZ_CHECK(r.open_tunnel->max_mappings_per_client <= r.open_tunnel->max_mappings);
  }
  if (r.relay_mode) {
    FUZZ_CHECK(!r.relay_mode->addresses.empty() && r.relay_mode->addresses.size() <= 8);
    FUZZ_CHECK(r.relay_mode->port_first >= 1);
    FUZZ_CHECK(r.relay_mode->port_first <= r.relay_mode->port_last);
    FUZZ_CHECK(r.relay_mode->max_bindings_per_client <= r.relay_mode->max_bindings);
  }
  if (r.tcp && r.tcp->advertise)
    FUZZ_CHECK(r.tcp->advertise->port != 0 && !r.tcp->advertise->is_unspecified());
  if (r.cluster) {
    FUZZ_CHECK(r.cluster->secret.size() >= 16 && r.cluster->secret.size() <= 256);
    FUZZ_CHECK(r.cluster->peers.size() <= 16);
  }
  FUZZ_CHECK(r.control_socket.starts_with('/') && r.control_socket.size() <= 107);
}

void check_client(const relay_daemon::ClientConfig& c) {
  FUZZ_CHECK(c.server.port != 0 && !c.server.is_unspecified());
  check_connection(c.connection);
  FUZZ_CHECK(c.connection.routes.empty() && !c.connection.remote);
  FUZZ_CHECK(!c.connection.open_tunnel && !c.connection.relay_mode);
  if (c.tun) check_tun(*c.tun);
  FUZZ_CHECK(c.bindings.size() <= 64);
  for (const auto& b : c.bindings) FUZZ_CHECK(b.client_port != 0 && b.peer.port != 0);
  FUZZ_CHECK(c.control_socket.starts_with('/') && c.control_socket.size() <= 107);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  const auto config = relay_daemon::parse_config_document(text);
  if (!config) {
    const auto errors = config.error();
    FUZZ_CHECK(!errors.empty());
    boost::system::error_code ec;
    const auto doc = boost::json::parse(text, ec);  // only paths into a parsed document
    for (const auto& e : errors) {
      FUZZ_CHECK(e.path.empty() || e.path.front() == '/');
      FUZZ_CHECK(!e.message.empty());
      if (!ec) check_no_secret(doc, e);
    }
    return 0;
  }
  FUZZ_CHECK(config->relay || config->client);
  if (config->relay) check_relay(*config->relay);
  if (config->client) check_client(*config->client);
  if (config->relay && config->client)
    FUZZ_CHECK(config->relay->control_socket != config->client->control_socket);
  return 0;
}
