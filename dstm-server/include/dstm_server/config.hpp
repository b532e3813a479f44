// The dstm-server's part of the appliance config document ("dstm_server"), read strictly: every
// error names its JSON pointer, and the cross-field rules (overlapping prefixes, a TEP address
// inside the pool, an empty pool, unknown TEP users, ...) are checked here, before any socket
// or file is touched. The document format is described in docs/config.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "dstm_server/lease.hpp"
#include "dstm_server/pool.hpp"
#include "platform/config.hpp"
#include "tsp/sasl.hpp"

namespace dstm_server {

inline constexpr std::uint16_t kTspPort = 3653;

// Where the TSP listeners bind. The struct starts empty; the document's defaults, when "listen"
// is absent, are ipv6 ["::"] and ipv4 ["0.0.0.0"] (read_config fills them in). When "listen" is
// present, an absent list means no address of that family.
struct ListenConfig {
  std::vector<core::Ipv6Address> ipv6{};  // "::" binds every IPv6 address (IPV6_V6ONLY set)
  std::vector<core::Ipv4Address> ipv4{};
  std::uint16_t port = kTspPort;  // 0: an ephemeral port (tests)
  bool tcp = true;
  bool udp = true;
};

struct LeaseConfig {
  Seconds lifetime = 1440;  // draft-jaehwoon-dstm-multitep-02: 1440 s
  // A client may ask for a lifetime other than `lifetime`, never more than this. Document
  // default: max(86400, lifetime).
  Seconds max_lifetime = 86400;
  Seconds grace = 3600;  // an expired lease keeps its address for its client this long
};

struct UserConfig {
  std::string name;
  // MD5(name ":" realm ":" password), 32 hex digits in the document ("digest_md5"). PLAIN is
  // checked against the same verifier, so the password itself is never stored.
  tsp::Md5Digest verifier{};
};

struct AuthConfig {
  std::string realm = "dstm";
  bool anonymous = false;  // offer ANONYMOUS (clients only; a TEP must authenticate)
  bool plain = true;       // offer PLAIN as well as DIGEST-MD5
  std::vector<UserConfig> users{};
};

struct TepConfig {
  std::string name;          // [A-Za-z0-9._-], 1-32 characters, unique
  core::Ipv6Address ipv6;    // the tunnel endpoint clients send to
  core::Ipv4Address ipv4;    // the TEP's IPv4 (server_ipv4 in the offer)
  std::uint32_t weight = 1;  // 1..1000: share of new clients (least loaded by weight)
  // The SASL user this TEP authenticates as (must be in auth.users). Its sessions and
  // heartbeats keep it alive, and only TEP users may query.
  std::optional<std::string> user{};
  // false: the TEP is always considered alive (a TEP that does not run our daemon, e.g. a
  // kernel tunnel configured by hand). It then cannot be told about withdrawn mappings.
  bool heartbeat = true;
  // An IPv4 address the TEP answers ping on, sent to clients as the keepalive address.
  std::optional<core::Ipv4Address> keepalive{};
};

struct ClientOptions {
  core::Ipv6Address dns_server;           // required: gogoCLIENT fails without one
  std::uint32_t keepalive_interval = 30;  // seconds, sent with a TEP's keepalive address
};

enum class StoreSync { Full, Normal };

struct StoreConfig {
  std::string path = "/var/lib/appl/dstm-server/leases.db";
  StoreSync sync = StoreSync::Full;
};

struct LimitsConfig {
  std::uint32_t max_connections = 4096;           // TCP connections in total
  std::uint32_t max_connections_per_source = 32;  // per source address
  std::uint32_t max_udp_sessions = 65536;
  std::uint32_t max_udp_sessions_per_source = 32;
  // New sessions (TCP connections and UDP sessions together) per source address: a token bucket.
  std::uint32_t new_sessions_per_second = 50;
  std::uint32_t new_sessions_burst = 100;
  // Deadlines (seconds): connect to authenticated; authenticated to first request; an idle
  // query session.
  std::uint32_t handshake_timeout = 30;
  std::uint32_t command_timeout = 60;
  std::uint32_t query_idle_timeout = 300;
};

struct Config {
  ListenConfig listen{};
  PoolConfig pool{};  // tep_addresses filled from teps
  LeaseConfig lease{};
  AuthConfig auth{};
  std::vector<TepConfig> teps{};
  Seconds tep_timeout = 30;         // a heartbeat TEP silent this long is dead
  Seconds heartbeat_interval = 10;  // told to TEPs in every heartbeat answer
  ClientOptions client{};
  StoreConfig store{};
  std::string control_socket = "/run/appl/dstm-server.sock";
  LimitsConfig limits{};
};

// Reads the "dstm_server" object (required: pool, teps, client with its dns_server; every other
// key has a default) and checks the cross-field rules; errors are recorded in the reader's list,
// each at its JSON pointer, and the returned value is meaningful only if none was recorded.
// Fills pool.tep_addresses from the TEPs' ipv4.
Config read_config(platform::ObjectReader& section);

// The whole appliance document: reads "dstm_server" and marks the other daemons' sections
// ("tep", "client", "web", "anytun", "anycast", "system") as known; any other top-level key is an error.
platform::ConfigResult<Config> parse_config_document(std::string_view json);

// The embedded default document (dstm-server/default-config.json, compiled in).
std::string_view default_config_document() noexcept;

// A verifier from its 32 hex digits (either case; written with tsp::to_hex); nullopt unless
// exactly 32 hex digits.
std::optional<tsp::Md5Digest> parse_verifier_hex(std::string_view text) noexcept;

}  // namespace dstm_server
