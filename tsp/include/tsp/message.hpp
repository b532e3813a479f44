// TSP tunnel messages: the XML of RFC 5572's DTD as plain structs, its reader and writer, and
// Content-length message assembly (tsp-wire.md 3.1, 5, 8, 11, 13).
//
//   <tunnel action="create|info|accept|reject|delete|query|heartbeat"
//           type="v6v4|v6udpv4|v6anyv4|v4v6" lifetime="S" proxy="yes|no" mtu="N" flush="yes|no">
//     <server> endpoint </server> <client> endpoint </client> <broker> address* </broker>
//   </tunnel>
//   endpoint = address+ router? dns_server? keepalive? as?
//   address  = <address type="ipv4|ipv6|dn" [length="N"]>text</address>
//
// The writer emits no XML prolog and no whitespace anywhere (gogoc rejects "<?" and does not
// trim addresses). The reader accepts whitespace between elements, trims address text (the draft
// wraps it), ignores unknown elements and attributes, and rejects DOCTYPEs, non-UTF-8, NULs and
// documents past its size and depth limits.
//
// Extension (docs/tsp.md, "TEP heartbeats"): action="heartbeat" and the flush attribute. A
// heartbeat answer lists the IPv4 mappings withdrawn since the TEP's previous heartbeat as the
// <server> endpoint's ipv4 addresses, at most kMaxWithdrawnPerHeartbeat of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "tsp/error.hpp"
#include "tsp/protocol.hpp"
#include "tsp/status.hpp"

namespace tsp {

struct DnsName {
  std::string name;  // [A-Za-z0-9.-_], at most 253 characters
  bool operator==(const DnsName&) const = default;
};

using AddressValue = std::variant<core::Ipv4Address, core::Ipv6Address, DnsName>;

struct Address {
  AddressValue value;
  // draft-jaehwoon-dstm-multitep-02 puts length="30" on query answers; no defined meaning.
  std::optional<unsigned> length;

  bool operator==(const Address&) const = default;
};

struct Prefix {
  unsigned length = 0;
  // Network text; absent in requests (gogoc sends <prefix length="N"/>).
  std::optional<std::variant<core::Ipv4Address, core::Ipv6Address>> network;
  bool operator==(const Prefix&) const = default;
};

struct Router {
  std::optional<std::string> protocol;
  std::optional<Prefix> prefix;
  std::vector<Address> dns_servers;
  bool operator==(const Router&) const = default;
};

struct Keepalive {
  std::uint32_t interval = 0;  // seconds
  std::optional<Address> address;
  bool operator==(const Keepalive&) const = default;
};

struct Endpoint {
  std::vector<Address> addresses;
  std::optional<Router> router;
  std::vector<Address> dns_servers;
  std::optional<Keepalive> keepalive;
  std::optional<std::uint32_t> as_number;

  // The first address of each family.
  std::optional<core::Ipv4Address> ipv4() const noexcept;
  std::optional<core::Ipv6Address> ipv6() const noexcept;
  std::optional<std::string> dns_name() const;
  bool operator==(const Endpoint&) const = default;
};

struct Tunnel {
  TunnelAction action = TunnelAction::Create;
  std::optional<TunnelType> type;
  std::optional<std::uint32_t> lifetime;  // seconds
  std::optional<bool> proxy;
  std::optional<std::uint32_t> mtu;
  // Heartbeat answers only: flush="yes" tells the TEP to drop every cached mapping.
  std::optional<bool> flush;
  std::optional<Endpoint> client;
  std::optional<Endpoint> server;
  std::vector<Address> brokers;
  bool operator==(const Tunnel&) const = default;
};

// The most withdrawn IPv4 mappings one heartbeat answer carries (docs/tsp.md). The server never
// sends more; the client treats more as a malformed answer.
inline constexpr std::size_t kMaxWithdrawnPerHeartbeat = 64;

// A tunnel element with only these attributes set.
Tunnel make_tunnel(TunnelAction action, std::optional<TunnelType> type = std::nullopt,
                   std::optional<std::uint32_t> lifetime = std::nullopt);

// Limits of the reader (bodies are also bounded by the framer's max_body).
struct XmlLimits {
  std::size_t max_bytes = 8192;
  std::size_t max_depth = 8;  // tunnel/client/router/dns_server/address is 5
  std::size_t max_elements = 128;
  std::size_t max_attributes = 8;  // per element
  std::size_t max_value = 255;     // attribute value or text
};

// One <tunnel> document. BadXml (malformed, DOCTYPE, non-UTF-8, NUL, over a limit), BadTunnel
// (missing or invalid action/attribute/element), UnsupportedTunnelType, BadIpv4Address,
// BadIpv6Address.
Result<Tunnel> parse_tunnel(std::string_view xml, const XmlLimits& limits = {});
// Compact XML, no prolog, no line end. Children: for "query" client then server (the draft's
// request order), otherwise server then client (the broker's offer order); broker last.
std::string write_tunnel(const Tunnel& t);
// Address text as written: dotted quad, RFC 5952 IPv6 (a v4-mapped address in hex groups, never
// "::ffff:a.b.c.d"), or the name.
std::string address_text(const AddressValue& v);

// "Content-length: <n>\r\n" + content, n counting every content byte (the final CRLF included).
std::string frame_message(std::string_view content);
// A client request: framed XML + CRLF.
std::string request_message(const Tunnel& t);
// A reply: framed status line + CRLF [+ XML + CRLF].
std::string reply_message(std::string_view status_line);
std::string reply_message(std::string_view status_line, const Tunnel& t);
// A redirect outside Content-length framing (capability and authentication phases):
// "<code> <text>\r\n<tunnel action="info" type="*"><broker>...</broker></tunnel>\r\n".
std::string redirect_content(Status reason, const std::vector<Address>& brokers);

// The content of a Content-length request (XML + CRLF).
Result<Tunnel> parse_request(std::string_view content, const XmlLimits& limits = {});

struct Reply {
  StatusLine status;
  std::optional<Tunnel> tunnel;
  bool operator==(const Reply&) const = default;
};
// A reply's content: the status line first, then XML from the first '<' after the first line
// end, as gogoc reads it. BadStatusLine, or the errors of parse_tunnel.
Result<Reply> parse_reply(std::string_view content, const XmlLimits& limits = {});

}  // namespace tsp
