// The TEP daemon's part of the appliance config document: the top-level "tep" array, one object
// per TEP process (docs/config.md, section "tep"). Read strictly, every error with its JSON
// pointer, before any device or socket is touched.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "platform/config.hpp"
#include "relay_daemon/config.hpp"
#include "tep/binding_table.hpp"
#include "tep/miss_queue.hpp"
#include "tep_io/backend.hpp"
#include "tsp/protocol.hpp"

namespace tep_daemon {

// The DSTM server this TEP asks (queries, heartbeats). The password is a secret: it is never
// logged and never shown on the control socket.
struct ServerConfig {
  std::string address;  // an IPv6 or IPv4 literal
  std::uint16_t port = 3653;
  tsp::Transport transport = tsp::Transport::Tcp;
  std::string user;
  std::string password;
};

struct Config {
  std::string name;                            // the TEP's name in dstm_server.teps
  core::Ipv6Address ipv6{};                    // the tunnel end point, an address of this host
  core::Ipv4Address ipv4{};                    // the TEP's IPv4: source of its ICMP errors
  std::optional<core::Ipv4Address> keepalive;  // answers ping on it inside the tunnel
  std::vector<core::Ipv4Prefix> pool;          // routed into the TUN device
  ServerConfig server;
  std::string interface = "tep0";  // the TUN device
  std::uint32_t tunnel_mtu = 1500;
  std::uint8_t hop_limit = 64;
  tep::io::Backend backend = tep::io::Backend::Auto;
  tep::BindingLimits bindings{};
  tep::MissQueueLimits miss_queue{};
  std::uint32_t icmp_rate = 100;  // ICMP errors per second (burst: the same number)
  std::string control_socket;     // default /run/appl/<name>.sock
  // The anycast relay this TEP hosts: the document's /anytun/relay when its hosted_by_tep names
  // this TEP (set by load_config, not by parse_config_document).
  std::optional<relay_daemon::RelayConfig> relay;
};

// Every TEP of the document's "tep" section. The other daemons' sections are ignored.
platform::ConfigResult<std::vector<Config>> parse_config_document(std::string_view json);

// The TEP named `name`, or the only one when name is empty. An error message otherwise.
const Config* select_tep(const std::vector<Config>& teps, std::string_view name,
                         std::string& error);

}  // namespace tep_daemon
