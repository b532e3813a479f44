// Tests for relay_daemon/config.hpp: a full document read into whole structs, every default, one
// table row per mistake (each at its JSON pointer), the rules across sections, and secrets kept
// out of every message.
#include "relay_daemon/config.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "satp/replay.hpp"

using relay_daemon::ClientConfig;
using relay_daemon::Config;
using relay_daemon::ConnectionConfig;
using relay_daemon::parse_config_document;
using relay_daemon::RelayConfig;

namespace {

core::Ipv4Address ip4(const char* text) {
  return core::Ipv4Address::parse(text).value();
}
core::Ipv6Address ip6(const char* text) {
  return core::Ipv6Address::parse(text).value();
}
relay::Endpoint ep(const char* text) {
  return relay::Endpoint::parse(text).value();
}
relay::Prefix p4(const char* text) {
  return core::Ipv4Prefix::parse(text).value();
}
relay::Prefix p6(const char* text) {
  return core::Ipv6Prefix::parse(text).value();
}

constexpr std::string_view kPassphrase = "correct horse battery staple";
constexpr std::string_view kClientPassphrase = "tr0ub4dor&3";
constexpr std::string_view kSecret = "cluster-secret-of-thirty-two-b!!";
constexpr std::string_view kKeyHex = "000102030405060708090a0b0c0d0e0f";
constexpr std::string_view kSaltHex = "101112131415161718191a1b1c1d";

// Every key of the section, none at its default, next to every other section of the document.
// The /anytun part is the example of docs/config.md.
constexpr std::string_view kFull = R"({
  "anytun": {
    "relay": {
      "name": "relay-a",
      "sender_id": 7,
      "listen": ["[2001:db8:100::1]:4500", "192.0.2.1:4500"],
      "tun": {"name": "relay0", "mtu": 1380,
              "addresses": ["10.99.0.1/24", "2001:db8:99::1/64"]},
      "connections": [
        {"mux": 1, "role": "right", "passphrase": "correct horse battery staple",
         "cipher": "aes-ctr-256", "kd_prf": "aes-ctr-256", "auth": "sha1", "tag_length": 20,
         "window": 4096, "remote": "198.51.100.10:4444",
         "routes": ["10.99.1.0/24", "2001:db8:99:1::/64"],
         "open_tunnel": true, "relay_mode": true},
        {"mux": 2, "role": "alice",
         "key": "000102030405060708090a0b0c0d0e0f", "salt": "101112131415161718191a1b1c1d",
         "cipher": "null", "kd_prf": "aes-ctr-128", "auth": "null", "tag_length": 0,
         "window": 0, "remote": "[2001:db8:200::2]:5555", "routes": ["10.99.2.0/24"],
         "open_tunnel": false, "relay_mode": false}
      ],
      "open_tunnel": {"address4": "192.0.2.50", "address6": "2001:db8:100::50",
                      "ports": [30000, 39999], "max_mappings": 1000,
                      "max_mappings_per_client": 100},
      "relay_mode": {"addresses": ["192.0.2.60", "2001:db8:100::60"], "ports": [41000, 41999],
                     "max_bindings": 500, "max_bindings_per_client": 5, "max_lifetime": 300},
      "tcp": {"listen": "[::]:4445", "advertise": "[2001:db8:100::1]:4445",
              "max_connections": 50, "idle_timeout": 120},
      "cluster": {"listen": "[2001:db8:100::1]:4446",
                  "peers": ["[2001:db8:100::2]:4446", "192.0.2.2:4446"],
                  "secret": "cluster-secret-of-thirty-two-b!!"},
      "anytun_sync": {"listen": "[::1]:4447"},
      "state_file": "/var/lib/satp-relay/state",
      "hosted_by_tep": "tep-a",
      "control_socket": "/run/test/relay.sock"
    },
    "client": {
      "server": "[2001:db8:100::1]:4500",
      "transport": "tcp",
      "sender_id": 9,
      "connection": {"mux": 3, "role": "left", "passphrase": "tr0ub4dor&3",
                     "cipher": "aes-ctr-192", "kd_prf": "aes-ctr-192", "auth": "sha1",
                     "tag_length": 4, "window": 64},
      "tun": {"name": "client%d", "mtu": 1300, "addresses": ["10.99.3.2/32"]},
      "bindings": [{"peer": "203.0.113.5:53", "client_port": 5353},
                   {"peer": "[2001:db8:300::5]:53", "client_port": 5353}],
      "state_file": "/var/lib/satp-client/state",
      "control_socket": "/run/test/client.sock"
    }
  },
  "dstm_server": {"anything": 1},
  "tep": [{"name": "tep-a"}, 2],
  "client": null,
  "web": {},
  "anycast": "x",
  "system": {"hostname": "r1"}
})";

Config full_config() {
  RelayConfig r;
  r.name = "relay-a";
  r.sender_id = 7;
  r.listen = {ep("[2001:db8:100::1]:4500"), ep("192.0.2.1:4500")};
  r.tun = relay_daemon::TunConfig{.name = "relay0",
                                  .mtu = 1380,
                                  .addresses = {{.address = ip4("10.99.0.1"), .length = 24},
                                                {.address = ip6("2001:db8:99::1"), .length = 64}}};

  ConnectionConfig c1;
  c1.mux = 1;
  c1.settings = satp::Settings{.cipher = satp::Cipher::AesCtr256,
                               .kd_prf = satp::KdPrf::AesCtr256,
                               .auth = satp::Auth::Sha1,
                               .tag_length = 20,
                               .role = satp::Role::Right};
  c1.key = satp::master_key_from_passphrase(kPassphrase, satp::KdPrf::AesCtr256);
  c1.salt = satp::master_salt_from_passphrase(kPassphrase);
  c1.window = 4096;
  c1.remote = ep("198.51.100.10:4444");
  c1.routes = {p4("10.99.1.0/24"), p6("2001:db8:99:1::/64")};
  c1.open_tunnel = true;
  c1.relay_mode = true;

  ConnectionConfig c2;
  c2.mux = 2;
  c2.settings = satp::Settings{.cipher = satp::Cipher::Null,
                               .kd_prf = satp::KdPrf::AesCtr128,
                               .auth = satp::Auth::Null,
                               .tag_length = 0,
                               .role = satp::Role::Left};
  c2.key = satp::master_key_from_hex(kKeyHex).value();
  c2.salt = satp::master_salt_from_hex(kSaltHex).value();
  c2.window = 0;
  c2.remote = ep("[2001:db8:200::2]:5555");
  c2.routes = {p4("10.99.2.0/24")};
  r.connections = {c1, c2};

  r.open_tunnel = relay_daemon::OpenTunnelConfig{.address4 = ip4("192.0.2.50"),
                                                 .address6 = ip6("2001:db8:100::50"),
                                                 .port_first = 30000,
                                                 .port_last = 39999,
                                                 .max_mappings = 1000,
                                                 .max_mappings_per_client = 100};
  r.relay_mode = relay_daemon::RelayModeConfig{
      .addresses = {ep("192.0.2.60:0").address, ip6("2001:db8:100::60")},
      .port_first = 41000,
      .port_last = 41999,
      .max_bindings = 500,
      .max_bindings_per_client = 5,
      .max_lifetime = 300};
  r.tcp = relay_daemon::TcpConfig{.listen = ep("[::]:4445"),
                                  .advertise = ep("[2001:db8:100::1]:4445"),
                                  .max_connections = 50,
                                  .idle_timeout = 120};
  r.cluster =
      relay_daemon::ClusterConfig{.listen = ep("[2001:db8:100::1]:4446"),
                                  .peers = {ep("[2001:db8:100::2]:4446"), ep("192.0.2.2:4446")},
                                  .secret = std::string{kSecret}};
  r.anytun_sync = relay_daemon::AnytunSyncConfig{.listen = ep("[::1]:4447")};
  r.state_file = "/var/lib/satp-relay/state";
  r.hosted_by_tep = "tep-a";
  r.control_socket = "/run/test/relay.sock";

  ClientConfig c;
  c.server = ep("[2001:db8:100::1]:4500");
  c.transport = relay_daemon::Transport::Tcp;
  c.sender_id = 9;
  c.connection.mux = 3;
  c.connection.settings = satp::Settings{.cipher = satp::Cipher::AesCtr192,
                                         .kd_prf = satp::KdPrf::AesCtr192,
                                         .auth = satp::Auth::Sha1,
                                         .tag_length = 4,
                                         .role = satp::Role::Left};
  c.connection.key = satp::master_key_from_passphrase(kClientPassphrase, satp::KdPrf::AesCtr192);
  c.connection.salt = satp::master_salt_from_passphrase(kClientPassphrase);
  c.connection.window = 64;
  c.tun = relay_daemon::TunConfig{
      .name = "client%d", .mtu = 1300, .addresses = {{.address = ip4("10.99.3.2"), .length = 32}}};
  c.bindings = {{.peer = ep("203.0.113.5:53"), .client_port = 5353},
                {.peer = ep("[2001:db8:300::5]:53"), .client_port = 5353}};
  c.state_file = "/var/lib/satp-client/state";
  c.control_socket = "/run/test/client.sock";
  return Config{.relay = r, .client = c};
}

// `base` with the value at a JSON pointer replaced (json non-empty; a missing last key is added)
// or removed (json empty).
std::string edited(std::string_view pointer, std::string_view json, std::string_view base = kFull) {
  auto doc = boost::json::parse(base);
  const auto slash = pointer.rfind('/');
  REQUIRE(slash != std::string_view::npos);
  boost::json::value* parent = &doc;
  if (const auto parent_pointer = pointer.substr(0, slash); !parent_pointer.empty()) {
    boost::system::error_code ec;
    parent = doc.find_pointer(parent_pointer, ec);
    REQUIRE(parent != nullptr);
  }
  auto& obj = parent->as_object();
  const std::string last{pointer.substr(slash + 1)};
  if (json.empty()) {
    REQUIRE(obj.erase(last) == 1);
  } else {
    obj[last] = boost::json::parse(json);
  }
  return boost::json::serialize(doc);
}

std::vector<std::string> errors_of(std::string_view doc) {
  auto r = parse_config_document(doc);
  if (r) return {};
  std::vector<std::string> out;
  for (const auto& e : r.error()) out.push_back(e.to_string());
  return out;
}

std::string json_string(std::string_view s) {
  return "\"" + std::string{s} + "\"";
}

// A relay with only what has no default, in a document of its own.
std::string relay_only(std::string_view relay_json) {
  return R"({"anytun": {"relay": )" + std::string{relay_json} + "}}";
}

}  // namespace

TEST_CASE("relay config: a full document is read to exact values", "[relay_daemon]") {
  auto r = parse_config_document(kFull);
  INFO(Catch::Detail::stringify(errors_of(kFull)));
  REQUIRE(r.has_value());
  const auto expected = full_config();
  REQUIRE(r->relay.has_value());
  REQUIRE(r->client.has_value());
  // Piece by piece first, so that a failure names the part that differs.
  CHECK(r->relay->connections.at(0) == expected.relay->connections.at(0));
  CHECK(r->relay->connections.at(1) == expected.relay->connections.at(1));
  CHECK(r->relay->tun == expected.relay->tun);
  CHECK(r->relay->open_tunnel == expected.relay->open_tunnel);
  CHECK(r->relay->relay_mode == expected.relay->relay_mode);
  CHECK(r->relay->tcp == expected.relay->tcp);
  CHECK(r->relay->cluster == expected.relay->cluster);
  CHECK(r->client->connection == expected.client->connection);
  CHECK(r->client->bindings == expected.client->bindings);
  CHECK(*r == expected);
}

TEST_CASE("relay config: absent keys take the documented defaults", "[relay_daemon]") {
  SECTION("relay") {
    const auto doc = relay_only("{}");
    auto r = parse_config_document(doc);
    INFO(Catch::Detail::stringify(errors_of(doc)));
    REQUIRE(r.has_value());
    RelayConfig expected;
    expected.listen = {ep("[::]:4444"), ep("0.0.0.0:4444")};
    CHECK(*r == Config{.relay = expected, .client = std::nullopt});
    CHECK(r->relay->name == "relay");
    CHECK(r->relay->sender_id == 1);
    CHECK(r->relay->connections.empty());
    CHECK(r->relay->control_socket == "/run/dstm/satp-relay.sock");
    CHECK_FALSE(r->relay->hosted_by_tep.has_value());
    CHECK_FALSE(r->relay->state_file.has_value());
  }
  SECTION("a connection: anytun's cipher suite, left, window 1024, no remote") {
    const auto doc = relay_only(R"({"connections": [{"mux": 5, "passphrase": "p"}]})");
    auto r = parse_config_document(doc);
    INFO(Catch::Detail::stringify(errors_of(doc)));
    REQUIRE(r.has_value());
    ConnectionConfig expected;
    expected.mux = 5;
    expected.settings = satp::Settings{.cipher = satp::Cipher::AesCtr128,
                                       .kd_prf = satp::KdPrf::AesCtr128,
                                       .auth = satp::Auth::Sha1,
                                       .tag_length = 10,
                                       .role = satp::Role::Left};
    expected.key = satp::master_key_from_passphrase("p", satp::KdPrf::AesCtr128);
    expected.salt = satp::master_salt_from_passphrase("p");
    CHECK(r->relay->connections == std::vector{expected});
    CHECK(r->relay->connections[0].window == 1024);
    CHECK_FALSE(r->relay->connections[0].remote.has_value());
  }
  SECTION("tag_length is 0 with auth null") {
    const auto doc =
        relay_only(R"({"connections": [{"mux": 5, "passphrase": "p", "auth": "null"}]})");
    auto r = parse_config_document(doc);
    REQUIRE(r.has_value());
    CHECK(r->relay->connections[0].settings.tag_length == 0);
  }
  SECTION("the sections") {
    const auto doc = relay_only(R"({
      "tun": {},
      "open_tunnel": {"address4": "192.0.2.50"},
      "relay_mode": {"addresses": ["192.0.2.60"]},
      "tcp": {"listen": "192.0.2.1:4445"},
      "cluster": {"listen": "192.0.2.1:4446", "secret": "sixteen-bytes-ok"},
      "anytun_sync": {"listen": "192.0.2.1:4447"}})");
    auto r = parse_config_document(doc);
    INFO(Catch::Detail::stringify(errors_of(doc)));
    REQUIRE(r.has_value());
    const auto& relay = *r->relay;
    CHECK(relay.tun == relay_daemon::TunConfig{.name = "satp%d", .mtu = 1400, .addresses = {}});
    CHECK(relay.open_tunnel == relay_daemon::OpenTunnelConfig{.address4 = ip4("192.0.2.50"),
                                                              .address6 = std::nullopt,
                                                              .port_first = 20000,
                                                              .port_last = 59999,
                                                              .max_mappings = 65536,
                                                              .max_mappings_per_client = 4096});
    CHECK(relay.relay_mode ==
          relay_daemon::RelayModeConfig{.addresses = {ep("192.0.2.60:0").address},
                                        .port_first = 40000,
                                        .port_last = 49999,
                                        .max_bindings = 4096,
                                        .max_bindings_per_client = 64,
                                        .max_lifetime = 600});
    CHECK(relay.tcp == relay_daemon::TcpConfig{.listen = ep("192.0.2.1:4445"),
                                               .advertise = std::nullopt,
                                               .max_connections = 1024,
                                               .idle_timeout = 60});
    CHECK(relay.cluster == relay_daemon::ClusterConfig{.listen = ep("192.0.2.1:4446"),
                                                       .peers = {},
                                                       .secret = "sixteen-bytes-ok"});
    CHECK(relay.anytun_sync == relay_daemon::AnytunSyncConfig{.listen = ep("192.0.2.1:4447")});
  }
  SECTION("client: udp, sender 0, role right, no tun, no bindings") {
    const auto doc = R"({"anytun": {"client": {"server": "192.0.2.1:4444",
                         "connection": {"mux": 3, "passphrase": "p"}}}})";
    auto r = parse_config_document(doc);
    INFO(Catch::Detail::stringify(errors_of(doc)));
    REQUIRE(r.has_value());
    ClientConfig expected;
    expected.server = ep("192.0.2.1:4444");
    expected.connection.mux = 3;
    expected.connection.settings.role = satp::Role::Right;
    expected.connection.key = satp::master_key_from_passphrase("p", satp::KdPrf::AesCtr128);
    expected.connection.salt = satp::master_salt_from_passphrase("p");
    CHECK(*r == Config{.relay = std::nullopt, .client = expected});
    CHECK(r->client->transport == relay_daemon::Transport::Udp);
    CHECK(r->client->sender_id == 0);
    CHECK(r->client->control_socket == "/run/dstm/satp-client.sock");
  }
}

TEST_CASE("relay config: anytun's names for roles and ciphers are accepted", "[relay_daemon]") {
  const std::vector<std::pair<std::string, satp::Role>> roles = {
      {"left", satp::Role::Left},   {"alice", satp::Role::Left}, {"server", satp::Role::Left},
      {"right", satp::Role::Right}, {"bob", satp::Role::Right},  {"client", satp::Role::Right}};
  for (const auto& [name, role] : roles) {
    auto r = parse_config_document(edited("/anytun/relay/connections/0/role", json_string(name)));
    REQUIRE(r.has_value());
    CHECK(r->relay->connections[0].settings.role == role);
  }
  auto r =
      parse_config_document(edited("/anytun/relay/connections/1/cipher", R"("aes-ctr")",
                                   edited("/anytun/relay/connections/1/kd_prf", R"("aes-ctr")")));
  REQUIRE(r.has_value());
  CHECK(r->relay->connections[1].settings.cipher == satp::Cipher::AesCtr128);
  CHECK(r->relay->connections[1].settings.kd_prf == satp::KdPrf::AesCtr128);
}

TEST_CASE("relay config: the limits of each range are accepted", "[relay_daemon]") {
  std::string eight = "[";
  for (int i = 1; i <= 8; ++i)
    eight += (i > 1 ? ",\"192.0.2.1:" : "\"192.0.2.1:") + std::to_string(4500 + i) + "\"";
  eight += "]";
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"/anytun/relay/name", json_string(std::string(64, 'n'))},
      {"/anytun/relay/sender_id", "0"},
      {"/anytun/relay/sender_id", "65535"},
      {"/anytun/relay/listen", eight},
      {"/anytun/relay/listen", R"(["[::]:0"])"},
      {"/anytun/relay/connections/0/mux", "0"},
      {"/anytun/relay/connections/0/mux", "65535"},
      {"/anytun/relay/connections/0/window", "0"},
      {"/anytun/relay/connections/0/window", std::to_string(satp::kMaxWindowSize)},
      {"/anytun/relay/connections/0/tag_length", "0"},
      {"/anytun/relay/connections/0/passphrase", json_string(std::string(1024, 'p'))},
      {"/anytun/relay/connections", "[]"},
      {"/anytun/relay/tun/mtu", "1580"},
      {"/anytun/relay/tun/name", R"("a")"},
      {"/anytun/relay/tun/name", json_string(std::string(15, 't'))},
      {"/anytun/relay/open_tunnel/ports", "[1, 1]"},
      {"/anytun/relay/open_tunnel/ports", "[50000, 65535]"},
      {"/anytun/relay/open_tunnel/max_mappings", "1048576"},
      {"/anytun/relay/open_tunnel/max_mappings_per_client", "1000"},
      {"/anytun/relay/relay_mode/max_lifetime", "10"},
      {"/anytun/relay/relay_mode/max_lifetime", "86400"},
      {"/anytun/relay/tcp/listen", R"("[2001:db8:100::1]:0")"},
      {"/anytun/relay/tcp/max_connections", "65536"},
      {"/anytun/relay/tcp/idle_timeout", "20"},
      {"/anytun/relay/tcp/idle_timeout", "86400"},
      {"/anytun/relay/cluster/listen", R"("192.0.2.1:0")"},
      {"/anytun/relay/cluster/secret", json_string(std::string(16, 's'))},
      {"/anytun/relay/cluster/secret", json_string(std::string(256, 's'))},
      {"/anytun/relay/cluster/peers", "[]"},
      {"/anytun/relay/anytun_sync/listen", R"("[::]:0")"},
      {"/anytun/relay/control_socket", json_string("/" + std::string(106, 'x'))},
      {"/anytun/client/bindings", "[]"},
      {"/anytun/client/bindings/0/client_port", "65535"},
      {"/anytun/client/tun/mtu", "576"},
  };
  for (const auto& [pointer, json] : rows) {
    const auto doc = edited(pointer, json);
    INFO(pointer << " = " << json.substr(0, 80) << "\n"
                 << Catch::Detail::stringify(errors_of(doc)));
    CHECK(parse_config_document(doc).has_value());
  }
}

TEST_CASE("relay config: each mistake is reported at its JSON pointer", "[relay_daemon]") {
  struct Row {
    std::string pointer;  // edited in kFull
    std::string json;     // the new value; empty: the key is removed
    std::vector<std::string> errors;
  };
  std::string nine = "[";
  for (int i = 1; i <= 9; ++i)
    nine += (i > 1 ? ",\"192.0.2.1:" : "\"192.0.2.1:") + std::to_string(4500 + i) + "\"";
  nine += "]";
  const std::string c0 = "/anytun/relay/connections/0";
  const std::string c1 = "/anytun/relay/connections/1";
  const std::string cc = "/anytun/client/connection";
  const std::vector<Row> rows = {
      // Document and sections.
      {"/dhcp", "{}", {"/dhcp: unknown key"}},
      {"/anytun", "", {"/anytun: missing required value"}},
      {"/anytun", "[]", {"/anytun: expected an object, got an array"}},
      {"/anytun/server", "{}", {"/anytun/server: unknown key"}},
      {"/anytun/relay", "7", {"/anytun/relay: expected an object, got a number"}},
      {"/anytun/client", "null", {"/anytun/client: expected an object, got null"}},
      {"/anytun/relay/colour", R"("blue")", {"/anytun/relay/colour: unknown key"}},
      {"/anytun/relay/sendr_id",
       "1",
       {"/anytun/relay/sendr_id: unknown key (did you mean 'sender_id'?)"}},
      {"/anytun/client/colour", "1", {"/anytun/client/colour: unknown key"}},
      {c0 + "/colour", "1", {c0 + "/colour: unknown key"}},
      {"/anytun/relay/tun/colour", "1", {"/anytun/relay/tun/colour: unknown key"}},
      {"/anytun/relay/open_tunnel/colour", "1", {"/anytun/relay/open_tunnel/colour: unknown key"}},
      {"/anytun/relay/relay_mode/colour", "1", {"/anytun/relay/relay_mode/colour: unknown key"}},
      {"/anytun/relay/tcp/colour", "1", {"/anytun/relay/tcp/colour: unknown key"}},
      {"/anytun/relay/cluster/colour", "1", {"/anytun/relay/cluster/colour: unknown key"}},
      {"/anytun/relay/anytun_sync/colour", "1", {"/anytun/relay/anytun_sync/colour: unknown key"}},
      {"/anytun/client/bindings/0/colour", "1", {"/anytun/client/bindings/0/colour: unknown key"}},
      // name, sender_id
      {"/anytun/relay/name",
       R"("")",
       {"/anytun/relay/name: must be 1..64 characters of [A-Za-z0-9._-]"}},
      {"/anytun/relay/name",
       R"("relay a")",
       {"/anytun/relay/name: must be 1..64 characters of [A-Za-z0-9._-]"}},
      {"/anytun/relay/name",
       json_string(std::string(65, 'n')),
       {"/anytun/relay/name: must be 1..64 characters of [A-Za-z0-9._-]"}},
      {"/anytun/relay/sender_id",
       "65536",
       {"/anytun/relay/sender_id: must be between 0 and 65535, got 65536"}},
      {"/anytun/relay/sender_id",
       "-1",
       {"/anytun/relay/sender_id: must be between 0 and 65535, got -1"}},
      // listen
      {"/anytun/relay/listen", "[]", {"/anytun/relay/listen: must list 1..8 endpoints"}},
      {"/anytun/relay/listen", nine, {"/anytun/relay/listen: must list 1..8 endpoints"}},
      {"/anytun/relay/listen",
       R"("[::]:4444")",
       {"/anytun/relay/listen: expected an array of strings, got a string"}},
      {"/anytun/relay/listen",
       R"(["[::]:4444", 4444])",
       {"/anytun/relay/listen/1: expected a string, got a number"}},
      {"/anytun/relay/listen",
       R"(["[::]:4444", "[::]:4444"])",
       {"/anytun/relay/listen/1: [::]:4444 is listed twice (also at /anytun/relay/listen/0)"}},
      {"/anytun/relay/listen",
       R"(["localhost:4444"])",
       {"/anytun/relay/listen/0: 'localhost:4444' is not an endpoint (a.b.c.d:port or "
        "[IPv6]:port)"}},
      {"/anytun/relay/listen",
       R"(["2001:db8::1:4444"])",
       {"/anytun/relay/listen/0: '2001:db8::1:4444' is not an endpoint (a.b.c.d:port or "
        "[IPv6]:port)"}},
      {"/anytun/relay/listen",
       R"(["192.0.2.1:65536"])",
       {"/anytun/relay/listen/0: '192.0.2.1:65536' is not an endpoint (a.b.c.d:port or "
        "[IPv6]:port)"}},
      {"/anytun/relay/listen",
       R"(["[ff02::1]:4444"])",
       {"/anytun/relay/listen/0: [ff02::1]:4444 is a multicast or broadcast endpoint"}},
      {"/anytun/relay/listen",
       R"(["255.255.255.255:4444"])",
       {"/anytun/relay/listen/0: 255.255.255.255:4444 is a multicast or broadcast endpoint"}},
      // tun
      {"/anytun/relay/tun", "[]", {"/anytun/relay/tun: expected an object, got an array"}},
      {"/anytun/relay/tun/name",
       R"("")",
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/name",
       json_string(std::string(16, 't')),
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/name",
       R"("tun%d%d")",
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/name",
       R"("tun%s")",
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/name",
       R"("..")",
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/name",
       R"("tun/0")",
       {"/anytun/relay/tun/name: must be 1..15 characters of [A-Za-z0-9._-] with at most one %d "
        "(the kernel numbers the device)"}},
      {"/anytun/relay/tun/mtu",
       "575",
       {"/anytun/relay/tun/mtu: must be between 576 and 1580, got 575"}},
      {"/anytun/relay/tun/mtu",
       "1581",
       {"/anytun/relay/tun/mtu: must be between 576 and 1580, got 1581"}},
      {"/anytun/relay/tun/mtu",
       "1279",
       {"/anytun/relay/tun/mtu: must be at least 1280 with an IPv6 address on the device, got "
        "1279"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.1"])",
       {"/anytun/relay/tun/addresses/0: must be an address with its prefix length, such as "
        "192.0.2.1/24 or 2001:db8::1/64"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.1/024"])",
       {"/anytun/relay/tun/addresses/0: must be an address with its prefix length, such as "
        "192.0.2.1/24 or 2001:db8::1/64"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.1/33"])",
       {"/anytun/relay/tun/addresses/0: prefix length must be 1..32, got 33"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.1/0"])",
       {"/anytun/relay/tun/addresses/0: prefix length must be 1..32, got 0"}},
      {"/anytun/relay/tun/addresses",
       R"(["2001:db8::1/129"])",
       {"/anytun/relay/tun/addresses/0: prefix length must be 1..128, got 129"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.256/24"])",
       {"/anytun/relay/tun/addresses/0: invalid IPv4 address (" +
        core::Ipv4Address::parse("10.99.0.256").error().message() + ")"}},
      {"/anytun/relay/tun/addresses",
       R"(["224.0.0.1/24"])",
       {"/anytun/relay/tun/addresses/0: 224.0.0.1 cannot be an interface address"}},
      {"/anytun/relay/tun/addresses",
       R"(["::/64"])",
       {"/anytun/relay/tun/addresses/0: :: cannot be an interface address"}},
      {"/anytun/relay/tun/addresses",
       R"(["10.99.0.1/24", "10.99.0.1/24"])",
       {"/anytun/relay/tun/addresses/1: 10.99.0.1/24 is listed twice (also at "
        "/anytun/relay/tun/addresses/0)"}},
      // connections
      {"/anytun/relay/connections",
       "{}",
       {"/anytun/relay/connections: expected an array, got an object"}},
      {"/anytun/relay/connections",
       "[1]",
       {"/anytun/relay/connections/0: expected an object, got a number"}},
      {c0 + "/mux", "", {c0 + "/mux: missing required value"}},
      {c0 + "/mux", "65536", {c0 + "/mux: must be between 0 and 65535, got 65536"}},
      {c1 + "/mux", "1", {c1 + "/mux: MUX 1 is also the MUX of " + c0}},
      {c0 + "/role",
       R"("middle")",
       {c0 + "/role: 'middle' is not one of 'left', 'right', 'alice', 'bob', 'server', 'client'"}},
      {c0 + "/cipher",
       R"("aes-gcm")",
       {c0 + "/cipher: 'aes-gcm' is not one of 'null', 'aes-ctr', 'aes-ctr-128', 'aes-ctr-192', "
             "'aes-ctr-256'"}},
      {c0 + "/kd_prf",
       R"("sha1")",
       {c0 + "/kd_prf: 'sha1' is not one of 'null', 'aes-ctr', 'aes-ctr-128', 'aes-ctr-192', "
             "'aes-ctr-256'"}},
      {c0 + "/auth", R"("sha256")", {c0 + "/auth: 'sha256' is not one of 'null', 'sha1'"}},
      {c0 + "/auth", "true", {c0 + "/auth: expected a string, got a boolean"}},
      {c0 + "/tag_length", "21", {c0 + "/tag_length: must be between 0 and 20, got 21"}},
      {c1 + "/tag_length", "10", {c1 + "/tag_length: tag length must be 0 with auth null"}},
      {c0 + "/window",
       std::to_string(satp::kMaxWindowSize + 1),
       {c0 + "/window: must be between 0 and 65536, got 65537"}},
      {c0 + "/remote",
       R"("[::]:4444")",
       {c0 + "/remote: [::]:4444 names no address (0.0.0.0 and :: only bind)"}},
      {c0 + "/remote",
       R"("198.51.100.10:0")",
       {c0 + "/remote: 198.51.100.10:0: port 0 only binds; give the peer's port"}},
      {c0 + "/remote",
       R"("224.0.0.1:4444")",
       {c0 + "/remote: 224.0.0.1:4444 is a multicast or broadcast endpoint"}},
      {c0 + "/routes",
       R"(["10.99.1.1/24"])",
       {c0 + "/routes/0: invalid IPv4 prefix (" +
        core::Ipv4Prefix::parse("10.99.1.1/24").error().message() + ")"}},
      {c0 + "/routes",
       R"(["2001:db8::/129"])",
       {c0 + "/routes/0: invalid IPv6 prefix (" +
        core::Ipv6Prefix::parse("2001:db8::/129").error().message() + ")"}},
      {c0 + "/routes",
       R"(["10.99.1.0"])",
       {c0 + "/routes/0: invalid IPv4 prefix (" +
        core::Ipv4Prefix::parse("10.99.1.0").error().message() + ")"}},
      {c0 + "/routes",
       R"(["10.99.1.0/24", "10.99.1.0/24"])",
       {c0 + "/routes/1: 10.99.1.0/24 is listed twice (also at " + c0 + "/routes/0)"}},
      {c1 + "/routes",
       R"(["10.99.5.0/24", "2001:db8:99:1::/64"])",
       {c1 + "/routes/1: 2001:db8:99:1::/64 is routed to two connections (also at " + c0 +
        "/routes/1)"}},
      {c0 + "/open_tunnel", "1", {c0 + "/open_tunnel: expected a boolean, got a number"}},
      {"/anytun/relay/open_tunnel",
       "",
       {c0 + "/open_tunnel: open tunnel mode needs /anytun/relay/open_tunnel"}},
      {"/anytun/relay/tun", "", {c0 + "/open_tunnel: open tunnel mode needs /anytun/relay/tun"}},
      {"/anytun/relay/relay_mode",
       "",
       {c0 + "/relay_mode: relay mode needs /anytun/relay/relay_mode"}},
      // keys
      {c0 + "/key",
       json_string(kKeyHex),
       {c0 + "/key: give either a passphrase, or a key and a salt, not both"}},
      {c0 + "/salt",
       json_string(kSaltHex),
       {c0 + "/salt: give either a passphrase, or a key and a salt, not both"}},
      {c0 + "/passphrase", "", {c0 + ": needs a passphrase, or a key and a salt"}},
      {c0 + "/passphrase", R"("")", {c0 + "/passphrase: must be 1..1024 bytes"}},
      {c0 + "/passphrase",
       json_string(std::string(1025, 'p')),
       {c0 + "/passphrase: must be 1..1024 bytes"}},
      {c0 + "/passphrase", "1234", {c0 + "/passphrase: expected a string, got a number"}},
      {c1 + "/salt", "", {c1 + "/salt: a key needs its salt (28 hex digits)"}},
      {c1 + "/key", "", {c1 + "/key: a salt needs its key (32, 48 or 64 hex digits)"}},
      {c1 + "/key",
       R"("00010203040506070809Oa0b0c0d0e0f")",
       {c1 + "/key: must be hex digits only"}},
      {c1 + "/key", R"("0001020304050607")", {c1 + "/key: must be 32, 48 or 64 hex digits"}},
      {c1 + "/kd_prf",
       R"("aes-ctr-256")",
       {c1 + "/key: is a 128-bit key; kd_prf aes-ctr-256 takes 256-bit keys (64 hex digits)"}},
      {c1 + "/kd_prf",
       R"("null")",
       {c1 + "/key: kd_prf null uses no key: give a passphrase instead"}},
      {c1 + "/salt", R"("1011121314151617")", {c1 + "/salt: must be 28 hex digits"}},
      {c1 + "/salt", R"("10111213141516171819lalbl")", {c1 + "/salt: must be 28 hex digits"}},
      // open_tunnel
      {"/anytun/relay/open_tunnel",
       "true",
       {"/anytun/relay/open_tunnel: expected an object, got a boolean"}},
      {"/anytun/relay/open_tunnel",
       R"({"ports": [1000, 2000]})",
       {"/anytun/relay/open_tunnel: needs address4, address6 or both (the source addresses of "
        "NATed flows)"}},
      {"/anytun/relay/open_tunnel/address4",
       R"("0.0.0.0")",
       {"/anytun/relay/open_tunnel/address4: 0.0.0.0 is not a unicast address (flows leave from "
        "it)"}},
      {"/anytun/relay/open_tunnel/address4",
       R"("2001:db8::1")",
       {"/anytun/relay/open_tunnel/address4: invalid IPv4 address (" +
        core::Ipv4Address::parse("2001:db8::1").error().message() + ")"}},
      {"/anytun/relay/open_tunnel/address6",
       R"("fe80::1")",
       {"/anytun/relay/open_tunnel/address6: fe80::1 is not a global unicast address (flows leave "
        "from it)"}},
      {"/anytun/relay/open_tunnel/ports",
       "[30000]",
       {"/anytun/relay/open_tunnel/ports: must be [first, last]: two ports 1..65535"}},
      {"/anytun/relay/open_tunnel/ports",
       R"({"first": 1})",
       {"/anytun/relay/open_tunnel/ports: must be [first, last]: two ports 1..65535"}},
      {"/anytun/relay/open_tunnel/ports",
       "[0, 65536]",
       {"/anytun/relay/open_tunnel/ports/0: must be a port, an integer 1..65535",
        "/anytun/relay/open_tunnel/ports/1: must be a port, an integer 1..65535"}},
      {"/anytun/relay/open_tunnel/ports",
       R"([30000, "39999"])",
       {"/anytun/relay/open_tunnel/ports/1: must be a port, an integer 1..65535"}},
      {"/anytun/relay/open_tunnel/ports",
       "[39999, 30000]",
       {"/anytun/relay/open_tunnel/ports: the first port (39999) is above the last (30000)"}},
      {"/anytun/relay/open_tunnel/max_mappings",
       "0",
       {"/anytun/relay/open_tunnel/max_mappings: must be between 1 and 1048576, got 0"}},
      {"/anytun/relay/open_tunnel/max_mappings",
       "99",
       {"/anytun/relay/open_tunnel/max_mappings_per_client: 100 is above max_mappings (99)"}},
      {"/anytun/relay/open_tunnel/max_mappings_per_client",
       "",
       {"/anytun/relay/open_tunnel/max_mappings_per_client: 4096 is above max_mappings (1000)"}},
      // relay_mode
      {"/anytun/relay/relay_mode/addresses",
       "",
       {"/anytun/relay/relay_mode/addresses: missing required value"}},
      {"/anytun/relay/relay_mode/addresses",
       "[]",
       {"/anytun/relay/relay_mode/addresses: must list 1..8 IPv4 or IPv6 addresses"}},
      {"/anytun/relay/relay_mode/addresses",
       R"(["::ffff:192.0.2.60"])",
       {"/anytun/relay/relay_mode/addresses/0: write an IPv4 address as a.b.c.d, not "
        "::ffff:a.b.c.d"}},
      {"/anytun/relay/relay_mode/addresses",
       R"(["0.0.0.0", "ff02::1"])",
       {"/anytun/relay/relay_mode/addresses/0: 0.0.0.0 is not a unicast address (it is handed to "
        "peers)",
        "/anytun/relay/relay_mode/addresses/1: ff02::1 is not a unicast address (it is handed to "
        "peers)"}},
      {"/anytun/relay/relay_mode/addresses",
       R"(["192.0.2.60", "2001:db8::60", "2001:DB8::60"])",
       {"/anytun/relay/relay_mode/addresses/2: 2001:db8::60 is listed twice (also at "
        "/anytun/relay/relay_mode/addresses/1)"}},
      {"/anytun/relay/relay_mode/addresses",
       R"(["192.0.2.256"])",
       {"/anytun/relay/relay_mode/addresses/0: invalid IPv4 address (" +
        core::Ipv4Address::parse("192.0.2.256").error().message() + ")"}},
      {"/anytun/relay/relay_mode/max_bindings",
       "4",
       {"/anytun/relay/relay_mode/max_bindings_per_client: 5 is above max_bindings (4)"}},
      {"/anytun/relay/relay_mode/max_lifetime",
       "9",
       {"/anytun/relay/relay_mode/max_lifetime: must be between 10 and 86400, got 9"}},
      {"/anytun/relay/relay_mode/max_lifetime",
       "86401",
       {"/anytun/relay/relay_mode/max_lifetime: must be between 10 and 86400, got 86401"}},
      // tcp, cluster, anytun_sync
      {"/anytun/relay/tcp/listen", "", {"/anytun/relay/tcp/listen: missing required value"}},
      {"/anytun/relay/tcp/advertise",
       "",
       {"/anytun/relay/tcp/advertise: needed: listen ([::]:4445) names no address to tell "
        "clients"}},
      {"/anytun/relay/tcp/advertise",
       R"("[2001:db8:100::1]:0")",
       {"/anytun/relay/tcp/advertise: [2001:db8:100::1]:0: port 0 only binds; give the peer's "
        "port"}},
      {"/anytun/relay/tcp/max_connections",
       "0",
       {"/anytun/relay/tcp/max_connections: must be between 1 and 65536, got 0"}},
      {"/anytun/relay/tcp/idle_timeout",
       "19",
       {"/anytun/relay/tcp/idle_timeout: must be between 20 and 86400, got 19"}},
      {"/anytun/relay/cluster/listen",
       "",
       {"/anytun/relay/cluster/listen: missing required value"}},
      {"/anytun/relay/cluster/secret",
       "",
       {"/anytun/relay/cluster/secret: missing required value"}},
      {"/anytun/relay/cluster/secret",
       json_string(std::string(15, 's')),
       {"/anytun/relay/cluster/secret: must be 16..256 bytes, got 15"}},
      {"/anytun/relay/cluster/secret",
       json_string(std::string(257, 's')),
       {"/anytun/relay/cluster/secret: must be 16..256 bytes, got 257"}},
      {"/anytun/relay/cluster/peers",
       R"(["[2001:db8:100::1]:4446"])",
       {"/anytun/relay/cluster/peers/0: [2001:db8:100::1]:4446 is this node's own listen "
        "endpoint"}},
      {"/anytun/relay/cluster/peers",
       R"(["192.0.2.2:4446", "192.0.2.2:4446"])",
       {"/anytun/relay/cluster/peers/1: 192.0.2.2:4446 is listed twice (also at "
        "/anytun/relay/cluster/peers/0)"}},
      {"/anytun/relay/cluster/peers",
       R"(["0.0.0.0:4446"])",
       {"/anytun/relay/cluster/peers/0: 0.0.0.0:4446 names no address (0.0.0.0 and :: only bind)"}},
      {"/anytun/relay/anytun_sync/listen",
       R"("[::1]")",
       {"/anytun/relay/anytun_sync/listen: '[::1]' is not an endpoint (a.b.c.d:port or "
        "[IPv6]:port)"}},
      // files, flags
      {"/anytun/relay/state_file",
       R"("state")",
       {"/anytun/relay/state_file: must be an absolute path to a file, at most 4096 bytes"}},
      {"/anytun/relay/state_file",
       R"("/var/lib/")",
       {"/anytun/relay/state_file: must be an absolute path to a file, at most 4096 bytes"}},
      {"/anytun/relay/hosted_by_tep",
       "true",
       {"/anytun/relay/hosted_by_tep: expected a string, got a boolean"}},
      {"/anytun/relay/hosted_by_tep",
       R"("")",
       {"/anytun/relay/hosted_by_tep: must be a TEP's name, 1..64 characters"}},
      {"/anytun/relay/hosted_by_tep",
       json_string(std::string(65, 't')),
       {"/anytun/relay/hosted_by_tep: must be a TEP's name, 1..64 characters"}},
      // The TEP must be one of the document's.
      {"/anytun/relay/hosted_by_tep",
       R"("tep-b")",
       {"/anytun/relay/hosted_by_tep: no TEP named 'tep-b' in /tep"}},
      {"/tep", "", {"/anytun/relay/hosted_by_tep: no TEP named 'tep-a' in /tep"}},
      {"/tep",
       R"([{"name": "tep-b"}, {"name": 7}])",
       {"/anytun/relay/hosted_by_tep: no TEP named 'tep-a' in /tep"}},
      {"/anytun/relay/hosted_by_tep", "", {}},  // absent: satp-relay runs it
      {"/anytun/relay/control_socket",
       R"("relay.sock")",
       {"/anytun/relay/control_socket: must be an absolute path of at most 107 bytes"}},
      {"/anytun/relay/control_socket",
       json_string("/" + std::string(107, 'x')),
       {"/anytun/relay/control_socket: must be an absolute path of at most 107 bytes"}},
      // Port collisions, reported at the later use and naming the earlier one.
      {"/anytun/relay/tcp/listen", R"("192.0.2.1:4446")", {}},  // another address than cluster's
      {"/anytun/relay/tcp/listen",
       R"("[2001:db8:100::1]:4446")",
       {"/anytun/relay/cluster/listen: TCP [2001:db8:100::1]:4446 collides with TCP "
        "[2001:db8:100::1]:4446 at /anytun/relay/tcp/listen"}},
      {"/anytun/relay/anytun_sync/listen",
       R"("[::]:4446")",
       {"/anytun/relay/anytun_sync/listen: TCP [::]:4446 collides with TCP [2001:db8:100::1]:4446 "
        "at /anytun/relay/cluster/listen"}},
      {"/anytun/relay/anytun_sync/listen", R"("0.0.0.0:4446")", {}},  // another family
      {"/anytun/relay/anytun_sync/listen", R"("[::]:4500")", {}},     // UDP and TCP do not collide
      {"/anytun/relay/listen",
       R"(["0.0.0.0:41500"])",
       {"/anytun/relay/relay_mode/ports: the relay mode range 41000..41999 on 192.0.2.60 collides "
        "with UDP 0.0.0.0:41500 at /anytun/relay/listen/0"}},
      {"/anytun/relay/listen", R"(["0.0.0.0:0"])", {}},  // port 0 is ephemeral
      {"/anytun/relay/relay_mode/addresses",
       R"(["192.0.2.50"])",
       {}},  // the NAT's address, other ports
      {"/anytun/relay/open_tunnel/ports",
       "[4000, 5000]",
       {"/anytun/relay/open_tunnel/ports: the open tunnel range 4000..5000 on 2001:db8:100::50 "
        "collides with TCP [::]:4445 at /anytun/relay/tcp/listen"}},
  };
  for (const auto& row : rows) {
    INFO(row.pointer << " = " << (row.json.empty() ? "(removed)" : row.json.substr(0, 80)));
    const auto errors = errors_of(edited(row.pointer, row.json));
    CHECK(errors == row.errors);
    for (const auto& e : errors) {
      CHECK(e.find(kPassphrase) == std::string::npos);
      CHECK(e.find(kSecret) == std::string::npos);
      CHECK(e.find(kKeyHex) == std::string::npos);
      CHECK(e.find(kSaltHex) == std::string::npos);
    }
  }
}

TEST_CASE("relay config: several mistakes are reported together", "[relay_daemon]") {
  const auto doc = edited("/anytun/relay/sender_id", "70000",
                          edited("/anytun/relay/connections/1/mux", "1",
                                 edited("/anytun/client/transport", R"("sctp")")));
  CHECK(errors_of(doc) ==
        std::vector<std::string>{
            "/anytun/relay/sender_id: must be between 0 and 65535, got 70000",
            "/anytun/relay/connections/1/mux: MUX 1 is also the MUX of /anytun/relay/connections/0",
            "/anytun/client/transport: 'sctp' is not one of 'udp', 'tcp'"});
}

TEST_CASE("relay config: the section needs a relay or a client", "[relay_daemon]") {
  CHECK(errors_of(R"({"anytun": {}})") ==
        std::vector<std::string>{R"(/anytun: needs "relay", "client" or both)"});
  CHECK(parse_config_document(edited("/anytun/relay", "")).has_value());
  CHECK(parse_config_document(edited("/anytun/client", "")).has_value());
}

TEST_CASE("relay config: a relay with no clients of its own is valid", "[relay_daemon]") {
  // Its connections may all come from cluster or anytun sync later.
  auto r = parse_config_document(relay_only(R"({"connections": []})"));
  REQUIRE(r.has_value());
  CHECK(r->relay->connections.empty());
  CHECK_FALSE(r->relay->cluster.has_value());
  CHECK_FALSE(r->relay->tcp.has_value());
}

TEST_CASE("relay config: open tunnel mode needs a TUN even before a connection uses it",
          "[relay_daemon]") {
  CHECK(errors_of(relay_only(R"({"open_tunnel": {"address4": "192.0.2.50"}})")) ==
        std::vector<std::string>{"/anytun/relay/open_tunnel: open tunnel mode needs "
                                 "/anytun/relay/tun: replies to the NAT addresses are routed "
                                 "into it"});
  CHECK(errors_of(relay_only(R"({"tun": {}, "open_tunnel": {"address4": "192.0.2.50"}})")).empty());
}

TEST_CASE("relay config: a client's connection takes no relay-side keys", "[relay_daemon]") {
  const std::string cc = "/anytun/client/connection";
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"remote",
       "/anytun/client/connection/remote: the client's peer is its server "
       "(/anytun/client/server)"},
      {"routes",
       "/anytun/client/connection/routes: only a relay's connections have routes; "
       "the client routes through its TUN"},
      {"open_tunnel",
       "/anytun/client/connection/open_tunnel: a permission the relay grants: "
       "set it in the relay's connection"},
      {"relay_mode",
       "/anytun/client/connection/relay_mode: a permission the relay grants: set "
       "it in the relay's connection"},
  };
  for (const auto& [key, error] : rows) {
    INFO(key);
    CHECK(errors_of(edited(cc + "/" + key, R"("x")")) == std::vector{error});
  }
  CHECK(errors_of(edited(cc + "/mux", "")) ==
        std::vector<std::string>{cc + "/mux: missing required value"});
  CHECK(errors_of(edited("/anytun/client/connection", "")) ==
        std::vector<std::string>{"/anytun/client/connection: missing required value"});
}

TEST_CASE("relay config: client server and bindings are checked", "[relay_daemon]") {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"/anytun/client/server", ""},
      {"/anytun/client/server", R"("[::]:4444")"},
      {"/anytun/client/server", R"("192.0.2.1:0")"},
      {"/anytun/client/bindings/0/client_port", "0"},
      {"/anytun/client/bindings/0/peer", R"("203.0.113.5:0")"},
      {"/anytun/client/bindings/1/peer", R"("203.0.113.5:53")"},
      {"/anytun/client/sender_id", "65536"},
  };
  const std::vector<std::vector<std::string>> errors = {
      {"/anytun/client/server: missing required value"},
      {"/anytun/client/server: [::]:4444 names no address (0.0.0.0 and :: only bind)"},
      {"/anytun/client/server: 192.0.2.1:0: port 0 only binds; give the peer's port"},
      {"/anytun/client/bindings/0/client_port: must be between 1 and 65535, got 0"},
      {"/anytun/client/bindings/0/peer: 203.0.113.5:0: port 0 only binds; give the peer's port"},
      {"/anytun/client/bindings/1: is listed twice (also at /anytun/client/bindings/0)"},
      {"/anytun/client/sender_id: must be between 0 and 65535, got 65536"},
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    INFO(rows[i].first << " = " << rows[i].second);
    CHECK(errors_of(edited(rows[i].first, rows[i].second)) == errors[i]);
  }
  std::string many = "[";
  for (int i = 1; i <= 65; ++i)
    many += (i > 1 ? "," : "") + std::string{R"({"peer": "203.0.113.5:53", "client_port": )"} +
            std::to_string(i) + "}";
  many += "]";
  CHECK(errors_of(edited("/anytun/client/bindings", many)) ==
        std::vector<std::string>{"/anytun/client/bindings: must list at most 64 bindings"});
}

TEST_CASE("relay config: a relay and a client on one host keep their own files", "[relay_daemon]") {
  CHECK(errors_of(edited("/anytun/client/control_socket", R"("/run/test/relay.sock")")) ==
        std::vector<std::string>{
            "/anytun/client/control_socket: is also /anytun/relay/control_socket"});
  CHECK(errors_of(edited("/anytun/client/state_file", R"("/var/lib/satp-relay/state")")) ==
        std::vector<std::string>{"/anytun/client/state_file: is also /anytun/relay/state_file"});
  CHECK(errors_of(edited("/anytun/client/tun/name", R"("relay0")")) ==
        std::vector<std::string>{"/anytun/client/tun/name: is also /anytun/relay/tun/name"});
  // Numbered names get different numbers.
  CHECK(parse_config_document(edited("/anytun/client/tun/name", R"("satp%d")",
                                     edited("/anytun/relay/tun/name", R"("satp%d")")))
            .has_value());
}

TEST_CASE("relay config: passphrases secrets and keys never appear in an error", "[relay_daemon]") {
  const std::string long_passphrase = std::string(1100, 'P') + "secret-words";
  const std::string short_secret = "hush-hush-1234";
  const std::string bad_key = "deadbeefZZ0102030405060708090a0b";
  const std::string bad_salt = "cafe0102030405060708090a0bXX";
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"/anytun/relay/connections/0/passphrase", json_string(long_passphrase)},
      {"/anytun/relay/cluster/secret", json_string(short_secret)},
      {"/anytun/relay/connections/1/key", json_string(bad_key)},
      {"/anytun/relay/connections/1/salt", json_string(bad_salt)},
      {"/anytun/client/connection/salt", json_string(bad_salt)},  // next to a passphrase
  };
  std::string doc{kFull};
  for (const auto& [pointer, json] : edits) doc = edited(pointer, json, doc);
  const auto errors = errors_of(doc);
  CHECK(errors.size() == edits.size());
  for (const auto& e : errors) {
    INFO(e);
    CHECK(e.find("secret-words") == std::string::npos);
    CHECK(e.find(short_secret) == std::string::npos);
    CHECK(e.find("deadbeef") == std::string::npos);
    CHECK(e.find("cafe") == std::string::npos);
    CHECK(e.find(kClientPassphrase) == std::string::npos);
  }
}

TEST_CASE("relay config: syntax errors and repeated keys are reported", "[relay_daemon]") {
  CHECK_FALSE(parse_config_document("{").has_value());
  CHECK_FALSE(parse_config_document("").has_value());
  CHECK(errors_of(R"({"anytun": {"relay": {"sender_id": 1, "sender_id": 2}}})") ==
        std::vector<std::string>{
            "/anytun/relay/sender_id: duplicate key (each key may appear once)"});
}

TEST_CASE("relay config: the list bounds are inclusive", "[relay_daemon]") {
  const auto connections = [](int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i)
      out += (i > 0 ? "," : "") + std::string{R"({"mux": )"} + std::to_string(i) +
             R"(, "passphrase": "p", "routes": ["10.)" + std::to_string(i / 256) + "." +
             std::to_string(i % 256) + R"(.0/24"]})";
    return out + "]";
  };
  auto r = parse_config_document(relay_only("{\"connections\": " + connections(4096) + "}"));
  REQUIRE(r.has_value());
  CHECK(r->relay->connections.size() == 4096);
  CHECK(errors_of(relay_only("{\"connections\": " + connections(4097) + "}")) ==
        std::vector<std::string>{"/anytun/relay/connections: must list at most 4096 connections"});

  const auto routes = [](int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i)
      out += (i > 0 ? ",\"10." : "\"10.") + std::to_string(i / 256) + "." +
             std::to_string(i % 256) + ".0/24\"";
    return out + "]";
  };
  const std::string c0 = "/anytun/relay/connections/0/routes";
  CHECK(parse_config_document(
            edited(c0, routes(1024), edited("/anytun/relay/connections/1/routes", "[]")))
            .has_value());
  CHECK(errors_of(edited(c0, routes(1025))) ==
        std::vector<std::string>{c0 + ": must list at most 1024 prefixes"});
}
