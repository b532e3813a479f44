// Tunnel XML: reader through pugixml (kept out of the public headers), writer by hand.
#include <pugixml.hpp>

#include <algorithm>
#include <new>
#include <utility>

#include "text.hpp"
#include "tsp/message.hpp"

namespace tsp {
namespace {

constexpr std::size_t kMaxDnsName = 253;

// ---- reader ----

// Structural limits and no DOCTYPE, checked over the whole tree without recursion.
bool within_limits(const pugi::xml_document& doc, const XmlLimits& limits) {
  std::size_t elements = 0;
  std::size_t depth = 1;  // of n; the document's children are at depth 1
  pugi::xml_node n = doc.first_child();
  while (n) {
    switch (n.type()) {
      case pugi::node_doctype:
        return false;
      case pugi::node_element: {
        if (++elements > limits.max_elements || depth > limits.max_depth) return false;
        std::size_t attributes = 0;
        for (auto a : n.attributes()) {
          if (++attributes > limits.max_attributes) return false;
          if (std::string_view{a.value()}.size() > limits.max_value) return false;
        }
        break;
      }
      case pugi::node_pcdata:
      case pugi::node_cdata:
        if (std::string_view{n.value()}.size() > limits.max_value) return false;
        break;
      default:
        break;
    }
    // Pre-order walk: down, else right, else up until a node with a right sibling.
    if (n.first_child()) {
      n = n.first_child();
      ++depth;
      continue;
    }
    while (!n.next_sibling()) {
      n = n.parent();
      --depth;
      if (!n || n.type() == pugi::node_document) return true;
    }
    n = n.next_sibling();
  }
  return true;
}

std::optional<std::uint32_t> parse_u32(std::string_view s) {
  const auto v = detail::parse_decimal(detail::trim(s), 0xffffffffu);
  if (!v) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

// The element's text: its text children only (no element children), trimmed.
Result<std::string_view> element_text(const pugi::xml_node& e) {
  std::string_view text;
  for (auto c : e.children()) {
    if (c.type() == pugi::node_element) return Errc::BadTunnel;
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
      if (!text.empty()) return Errc::BadTunnel;
      text = c.value();
    }
  }
  return detail::trim(text);
}

bool valid_dns_name(std::string_view s) {
  return !s.empty() && s.size() <= kMaxDnsName && std::all_of(s.begin(), s.end(), [](char c) {
    return detail::is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '-' || c == '_';
  });
}

Result<AddressValue> parse_ip_text(std::string_view type, std::string_view text) {
  if (detail::iequals(type, "ipv4")) {
    auto a = core::Ipv4Address::parse(text);
    if (!a) return Errc::BadIpv4Address;
    return AddressValue{*a};
  }
  if (detail::iequals(type, "ipv6")) {
    auto a = core::Ipv6Address::parse(text);
    if (!a) return Errc::BadIpv6Address;
    return AddressValue{*a};
  }
  if (detail::iequals(type, "dn")) {
    if (!valid_dns_name(text)) return Errc::BadTunnel;
    return AddressValue{DnsName{std::string{text}}};
  }
  return Errc::BadTunnel;
}

Result<Address> parse_address(const pugi::xml_node& e) {
  const auto type = e.attribute("type");
  if (!type) return Errc::BadTunnel;
  auto text = element_text(e);
  if (!text) return text.error();
  auto value = parse_ip_text(type.value(), *text);
  if (!value) return value.error();
  Address a{*value, std::nullopt};
  if (auto len = e.attribute("length")) {
    const auto n = detail::parse_decimal(detail::trim(len.value()), 128);
    if (!n) return Errc::BadTunnel;
    a.length = static_cast<unsigned>(*n);
  }
  return a;
}

// Every <address> child of e.
Result<std::vector<Address>> parse_addresses(const pugi::xml_node& e) {
  std::vector<Address> out;
  for (auto c : e.children("address")) {
    auto a = parse_address(c);
    if (!a) return a.error();
    out.push_back(std::move(*a));
  }
  return out;
}

Result<Prefix> parse_prefix(const pugi::xml_node& e) {
  Prefix p;
  const auto len = e.attribute("length");
  const auto n = len ? detail::parse_decimal(detail::trim(len.value()), 128) : std::nullopt;
  if (!n) return Errc::BadTunnel;
  p.length = static_cast<unsigned>(*n);
  auto text = element_text(e);
  if (!text) return text.error();
  if (!text->empty()) {
    if (text->find(':') != std::string_view::npos) {
      auto a = core::Ipv6Address::parse(*text);
      if (!a) return Errc::BadIpv6Address;
      p.network = *a;
    } else {
      auto a = core::Ipv4Address::parse(*text);
      if (!a) return Errc::BadIpv4Address;
      p.network = *a;
    }
  }
  return p;
}

// Zero or one child element of that name (two is an error).
Result<pugi::xml_node> single_child(const pugi::xml_node& e, const char* name) {
  auto first = e.child(name);
  if (first && first.next_sibling(name)) return Errc::BadTunnel;
  return first;
}

Result<Endpoint> parse_endpoint(const pugi::xml_node& e) {
  Endpoint ep;
  auto addresses = parse_addresses(e);
  if (!addresses) return addresses.error();
  ep.addresses = std::move(*addresses);

  auto router = single_child(e, "router");
  if (!router) return router.error();
  if (*router) {
    Router r;
    if (auto proto = router->attribute("protocol")) {
      // Character references are decoded by now: check what they produced.
      if (!detail::valid_utf8(proto.value())) return Errc::BadTunnel;
      r.protocol = proto.value();
    }
    auto prefix = single_child(*router, "prefix");
    if (!prefix) return prefix.error();
    if (*prefix) {
      auto p = parse_prefix(*prefix);
      if (!p) return p.error();
      r.prefix = *p;
    }
    auto dns = single_child(*router, "dns_server");
    if (!dns) return dns.error();
    if (*dns) {
      auto a = parse_addresses(*dns);
      if (!a) return a.error();
      r.dns_servers = std::move(*a);
    }
    ep.router = std::move(r);
  }

  auto dns = single_child(e, "dns_server");
  if (!dns) return dns.error();
  if (*dns) {
    auto a = parse_addresses(*dns);
    if (!a) return a.error();
    ep.dns_servers = std::move(*a);
  }

  auto keepalive = single_child(e, "keepalive");
  if (!keepalive) return keepalive.error();
  if (*keepalive) {
    Keepalive k;
    if (auto interval = keepalive->attribute("interval")) {
      const auto v = parse_u32(interval.value());
      if (!v) return Errc::BadTunnel;
      k.interval = *v;
    }
    auto a = single_child(*keepalive, "address");
    if (!a) return a.error();
    if (*a) {
      auto addr = parse_address(*a);
      if (!addr) return addr.error();
      k.address = std::move(*addr);
    }
    ep.keepalive = std::move(k);
  }

  auto as = single_child(e, "as");
  if (!as) return as.error();
  if (*as) {
    const auto v = parse_u32(as->attribute("number").value());
    if (!v) return Errc::BadTunnel;
    ep.as_number = *v;
  }
  return ep;
}

Result<Tunnel> parse_tunnel_element(const pugi::xml_node& root) {
  Tunnel t;
  const auto action = parse_tunnel_action(detail::trim(root.attribute("action").value()));
  if (!action) return Errc::BadTunnel;
  t.action = *action;
  if (auto type = root.attribute("type")) {
    const auto tt = parse_tunnel_type(detail::trim(type.value()));
    if (!tt) return Errc::UnsupportedTunnelType;
    t.type = *tt;
  }
  if (auto lifetime = root.attribute("lifetime")) {
    t.lifetime = parse_u32(lifetime.value());
    if (!t.lifetime) return Errc::BadTunnel;
  }
  if (auto mtu = root.attribute("mtu")) {
    t.mtu = parse_u32(mtu.value());
    if (!t.mtu) return Errc::BadTunnel;
  }
  for (auto [name, field] : {std::pair{"proxy", &t.proxy}, std::pair{"flush", &t.flush}}) {
    const auto attribute = root.attribute(name);
    if (!attribute) continue;
    const auto v = detail::trim(attribute.value());
    if (detail::iequals(v, "yes"))
      *field = true;
    else if (detail::iequals(v, "no"))
      *field = false;
    else
      return Errc::BadTunnel;
  }
  for (const char* name : {"client", "server"}) {
    auto e = single_child(root, name);
    if (!e) return e.error();
    if (!*e) continue;
    auto ep = parse_endpoint(*e);
    if (!ep) return ep.error();
    (name[0] == 'c' ? t.client : t.server) = std::move(*ep);
  }
  for (auto broker : root.children("broker")) {
    auto a = parse_addresses(broker);
    if (!a) return a.error();
    t.brokers.insert(t.brokers.end(), a->begin(), a->end());
  }
  return t;
}

// ---- writer ----

void escape_into(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      // Character references survive the reader's whitespace normalisation of attributes.
      case '\t':
        out += "&#9;";
        break;
      case '\n':
        out += "&#10;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
}

std::string_view address_type(const AddressValue& v) {
  if (std::holds_alternative<core::Ipv4Address>(v)) return "ipv4";
  if (std::holds_alternative<core::Ipv6Address>(v)) return "ipv6";
  return "dn";
}

void write_address(std::string& out, const Address& a) {
  out += "<address type=\"";
  out += address_type(a.value);
  out += '"';
  if (a.length) out += " length=\"" + std::to_string(*a.length) + "\"";
  out += '>';
  escape_into(out, address_text(a.value));
  out += "</address>";
}

void write_addresses(std::string& out, const std::vector<Address>& list) {
  for (const auto& a : list) write_address(out, a);
}

void write_endpoint(std::string& out, const char* name, const Endpoint& ep) {
  out += '<';
  out += name;
  out += '>';
  write_addresses(out, ep.addresses);
  if (ep.router) {
    out += "<router";
    if (ep.router->protocol) {
      out += " protocol=\"";
      escape_into(out, *ep.router->protocol);
      out += '"';
    }
    out += '>';
    if (const auto& p = ep.router->prefix) {
      out += "<prefix length=\"" + std::to_string(p->length) + "\">";
      if (p->network) {
        std::visit([&](const auto& a) { out += address_text(AddressValue{a}); }, *p->network);
      }
      out += "</prefix>";
    }
    if (!ep.router->dns_servers.empty()) {
      out += "<dns_server>";
      write_addresses(out, ep.router->dns_servers);
      out += "</dns_server>";
    }
    out += "</router>";
  }
  if (!ep.dns_servers.empty()) {
    out += "<dns_server>";
    write_addresses(out, ep.dns_servers);
    out += "</dns_server>";
  }
  if (ep.keepalive) {
    out += "<keepalive interval=\"" + std::to_string(ep.keepalive->interval) + "\">";
    if (ep.keepalive->address) write_address(out, *ep.keepalive->address);
    out += "</keepalive>";
  }
  if (ep.as_number) out += "<as number=\"" + std::to_string(*ep.as_number) + "\"></as>";
  out += "</";
  out += name;
  out += '>';
}

}  // namespace

std::optional<core::Ipv4Address> Endpoint::ipv4() const noexcept {
  for (const auto& a : addresses)
    if (const auto* v = std::get_if<core::Ipv4Address>(&a.value)) return *v;
  return std::nullopt;
}

std::optional<core::Ipv6Address> Endpoint::ipv6() const noexcept {
  for (const auto& a : addresses)
    if (const auto* v = std::get_if<core::Ipv6Address>(&a.value)) return *v;
  return std::nullopt;
}

std::optional<std::string> Endpoint::dns_name() const {
  for (const auto& a : addresses)
    if (const auto* v = std::get_if<DnsName>(&a.value)) return v->name;
  return std::nullopt;
}

Result<Tunnel> parse_tunnel(std::string_view xml, const XmlLimits& limits) {
  if (xml.size() > limits.max_bytes || !detail::valid_utf8(xml)) return Errc::BadXml;
  try {
    pugi::xml_document doc;
    // DOCTYPE nodes are kept so that within_limits() can refuse them; a prolog is skipped.
    const auto options = pugi::parse_default | pugi::parse_doctype;
    const auto loaded = doc.load_buffer(xml.data(), xml.size(), options, pugi::encoding_utf8);
    if (!loaded || !within_limits(doc, limits)) return Errc::BadXml;
    pugi::xml_node root;
    for (auto c : doc.children()) {
      if (c.type() != pugi::node_element) continue;
      if (root) return Errc::BadXml;  // more than one root element
      root = c;
    }
    if (!root || std::string_view{root.name()} != "tunnel") return Errc::BadTunnel;
    return parse_tunnel_element(root);
  } catch (const std::bad_alloc&) {
    return Errc::BadXml;
  }
}

Tunnel make_tunnel(TunnelAction action, std::optional<TunnelType> type,
                   std::optional<std::uint32_t> lifetime) {
  Tunnel t;
  t.action = action;
  t.type = type;
  t.lifetime = lifetime;
  return t;
}

std::string address_text(const AddressValue& v) {
  if (const auto* a4 = std::get_if<core::Ipv4Address>(&v)) return a4->to_string();
  if (const auto* a6 = std::get_if<core::Ipv6Address>(&v)) {
    if (!a6->is_v4_mapped()) return a6->to_string();
    // gogoc accepts only [0-9a-fA-F:] in IPv6 text: no dotted quad.
    static constexpr char kHex[] = "0123456789abcdef";
    const auto& b = a6->bytes();
    std::string out = "::ffff:";
    for (std::size_t g = 12; g < 16; g += 2) {
      const unsigned v16 = (unsigned{b[g]} << 8) | b[g + 1];
      std::string group;
      for (int shift = 12; shift >= 0; shift -= 4) {
        const unsigned nibble = (v16 >> shift) & 0xf;
        if (group.empty() && nibble == 0 && shift > 0) continue;
        group += kHex[nibble];
      }
      out += group;
      if (g == 12) out += ':';
    }
    return out;
  }
  return std::get<DnsName>(v).name;
}

std::string write_tunnel(const Tunnel& t) {
  std::string out = "<tunnel action=\"";
  out += tunnel_action_name(t.action);
  out += '"';
  if (t.type) {
    out += " type=\"";
    out += tunnel_type_name(*t.type);
    out += '"';
  }
  if (t.lifetime) out += " lifetime=\"" + std::to_string(*t.lifetime) + "\"";
  if (t.proxy) out += *t.proxy ? " proxy=\"yes\"" : " proxy=\"no\"";
  if (t.mtu) out += " mtu=\"" + std::to_string(*t.mtu) + "\"";
  if (t.flush) out += *t.flush ? " flush=\"yes\"" : " flush=\"no\"";
  out += '>';
  if (t.action == TunnelAction::Query) {
    if (t.client) write_endpoint(out, "client", *t.client);
    if (t.server) write_endpoint(out, "server", *t.server);
  } else {
    if (t.server) write_endpoint(out, "server", *t.server);
    if (t.client) write_endpoint(out, "client", *t.client);
  }
  if (!t.brokers.empty()) {
    out += "<broker>";
    write_addresses(out, t.brokers);
    out += "</broker>";
  }
  out += "</tunnel>";
  return out;
}

std::string frame_message(std::string_view content) {
  std::string out = "Content-length: " + std::to_string(content.size()) + "\r\n";
  out += content;
  return out;
}

std::string request_message(const Tunnel& t) {
  return frame_message(write_tunnel(t) + "\r\n");
}

std::string reply_message(std::string_view status_line) {
  return frame_message(std::string{status_line} + "\r\n");
}

std::string reply_message(std::string_view status_line, const Tunnel& t) {
  return frame_message(std::string{status_line} + "\r\n" + write_tunnel(t) + "\r\n");
}

std::string redirect_content(Status reason, const std::vector<Address>& brokers) {
  Tunnel t = make_tunnel(TunnelAction::Info, TunnelType::Any);
  t.brokers = brokers;
  return status_line(redirect_code(reason), status_text(reason)) + "\r\n" + write_tunnel(t) +
         "\r\n";
}

Result<Tunnel> parse_request(std::string_view content, const XmlLimits& limits) {
  return parse_tunnel(content, limits);
}

Result<Reply> parse_reply(std::string_view content, const XmlLimits& limits) {
  const auto lf = content.find('\n');
  auto first = content.substr(0, lf);
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  auto status = parse_status_line(first);
  if (!status) return status.error();
  Reply r{std::move(*status), std::nullopt};
  if (lf == std::string_view::npos) return r;
  const auto rest = content.substr(lf + 1);
  const auto lt = rest.find('<');
  if (lt == std::string_view::npos) {
    if (!detail::trim(rest).empty()) return Errc::BadTunnel;
    return r;
  }
  auto t = parse_tunnel(rest.substr(lt), limits);
  if (!t) return t.error();
  r.tunnel = std::move(*t);
  return r;
}

}  // namespace tsp
