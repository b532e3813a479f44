// The relay's configuration: the /anytun section of the appliance document (docs/config.md),
// parsed from text into immutable structs. /anytun/relay configures a relay node (the anycast
// server side), /anytun/client a node that tunnels to a relay. Either or both may be present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "platform/config.hpp"
#include "relay/endpoint.hpp"
#include "relay/prefix_table.hpp"
#include "satp/keys.hpp"

namespace relay_daemon {

inline constexpr std::uint16_t kDefaultPort = 4444;  // anytun's data port

// One SATP connection: a client of a relay, or a client's connection to its relay. The key is
// given as a passphrase (anytun's -E) or as hex master key and salt (-K, -A); exactly one form.
struct ConnectionConfig {
  std::uint16_t mux = 0;
  satp::Settings settings;  // cipher, kd_prf, auth, tag_length, role (this end's role)
  satp::MasterKey key;
  satp::MasterSalt salt{};
  std::uint32_t window = 1024;            // replay window, 0..65536 (0 = off)
  std::optional<relay::Endpoint> remote;  // the peer; none = learned from the first packet
  std::vector<relay::Prefix> routes;      // inner destinations routed to this connection
  bool open_tunnel = false;               // may its packets leave through the source NAT?
  bool relay_mode = false;                // may it allocate relay bindings?
  bool operator==(const ConnectionConfig&) const = default;
};

// An address put on the TUN device with the length of its subnet, as `ip address add` takes it:
// "192.0.2.1/24". Unlike a relay::Prefix it keeps its host bits.
struct TunAddress {
  std::variant<core::Ipv4Address, core::Ipv6Address> address;
  std::uint8_t length = 0;  // 1..32 or 1..128
  bool operator==(const TunAddress&) const = default;
};

struct TunConfig {
  std::string name = "satp%d";        // 1..15 characters; a "%d" lets the kernel number it
  std::uint32_t mtu = 1400;           // 576..1580 (the largest inner packet a SATP packet carries)
  std::vector<TunAddress> addresses;  // 0..16, put on the device
  bool operator==(const TunConfig&) const = default;
};

struct OpenTunnelConfig {
  std::optional<core::Ipv4Address> address4;  // at least one of the two
  std::optional<core::Ipv6Address> address6;
  std::uint16_t port_first = 20000;
  std::uint16_t port_last = 59999;
  std::size_t max_mappings = 65536;
  std::size_t max_mappings_per_client = 4096;
  bool operator==(const OpenTunnelConfig&) const = default;
};

struct RelayModeConfig {
  std::vector<core::Ipv6Address> addresses;  // relay addresses (IPv4 as ::ffff:a.b.c.d), 1..8
  std::uint16_t port_first = 40000;
  std::uint16_t port_last = 49999;
  std::size_t max_bindings = 4096;
  std::size_t max_bindings_per_client = 64;
  std::uint32_t max_lifetime = 600;  // seconds, 10..86400
  bool operator==(const RelayModeConfig&) const = default;
};

struct TcpConfig {
  relay::Endpoint listen;                    // the node's unicast TCP endpoint
  std::optional<relay::Endpoint> advertise;  // what Located says; listen by default
  std::size_t max_connections = 1024;
  std::uint32_t idle_timeout = 60;  // seconds without an authenticated packet before a close
  bool operator==(const TcpConfig&) const = default;
};

struct ClusterConfig {
  relay::Endpoint listen;
  std::vector<relay::Endpoint> peers;  // 0..16 other nodes to connect to
  std::string secret;                  // shared by all nodes; 16..256 bytes
  bool operator==(const ClusterConfig&) const = default;
};

struct AnytunSyncConfig {
  relay::Endpoint listen;  // anytun nodes connect here with --sync-hosts
  bool operator==(const AnytunSyncConfig&) const = default;
};

struct RelayConfig {
  std::string name = "relay";           // node name in cluster hellos and /status, 1..64 characters
  std::uint16_t sender_id = 1;          // unique per node of an anycast address
  std::vector<relay::Endpoint> listen;  // UDP; default [::]:4444 and 0.0.0.0:4444
  std::optional<TunConfig> tun;         // local delivery; required by open tunnel mode
  std::vector<ConnectionConfig> connections;  // 0..4096, unique MUX
  std::optional<OpenTunnelConfig> open_tunnel;
  std::optional<RelayModeConfig> relay_mode;
  std::optional<TcpConfig> tcp;
  std::optional<ClusterConfig> cluster;
  std::optional<AnytunSyncConfig> anytun_sync;
  // Where the next transmit sequence numbers are kept across restarts (no keystream reuse); none:
  // every start picks random ones.
  std::optional<std::string> state_file;
  // The TEP (its name in the document's "tep" array) whose daemon runs this relay; satp-relay
  // then leaves it alone.
  std::optional<std::string> hosted_by_tep;
  std::string control_socket = "/run/dstm/satp-relay.sock";
  bool operator==(const RelayConfig&) const = default;
};

enum class Transport { Udp, Tcp };

// A relay binding a client holds (relay mode): its datagrams from client_port reach `peer`.
struct BindingConfig {
  relay::Endpoint peer;
  std::uint16_t client_port = 0;
  bool operator==(const BindingConfig&) const = default;
};

struct ClientConfig {
  relay::Endpoint server;  // the relay's (anycast) endpoint
  Transport transport = Transport::Udp;
  std::uint16_t sender_id = 0;
  // No remote, routes, open_tunnel or relay_mode (the relay's side); role right by default.
  ConnectionConfig connection;
  std::optional<TunConfig> tun;
  std::vector<BindingConfig> bindings;  // 0..64
  std::optional<std::string> state_file;
  std::string control_socket = "/run/dstm/satp-client.sock";
  bool operator==(const ClientConfig&) const = default;
};

struct Config {
  std::optional<RelayConfig> relay;
  std::optional<ClientConfig> client;
  bool operator==(const Config&) const = default;
};

// The whole appliance document -> its /anytun section (at least one of relay, client), or every
// error with its JSON pointer. The other top-level sections are not looked into.
platform::ConfigResult<Config> parse_config_document(std::string_view json);

}  // namespace relay_daemon
