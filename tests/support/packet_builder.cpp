// PacketBuilder: test packets assembled inside-out with the core writers.
#include "support/packet_builder.hpp"

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace test {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument{"PacketBuilder: " + what};
}

template <typename T>
T value_or_throw(core::Result<T> r, const char* what) {
  if (!r) fail(std::string{what} + ": " + r.error().message());
  return std::move(*r);
}

void check(core::Result<void> r, const char* what) {
  if (!r) fail(std::string{what} + ": " + r.error().message());
}

std::vector<std::byte> concat(core::Bytes a, core::Bytes b) {
  std::vector<std::byte> out{a.begin(), a.end()};
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// PadN carrying 4 zero bytes: with next header and length, one 8-byte options header.
constexpr std::uint8_t kPadN = 1;

}  // namespace

template <typename T>
T& PacketBuilder::last(const char* what) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (auto* l = std::get_if<T>(&*it)) return *l;
  }
  fail(std::string{what} + " needs a layer to apply to");
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst,
                                   std::optional<std::uint8_t> protocol) {
  layers_.emplace_back(Ip4{.header = {.src = v4(src), .dst = v4(dst), .options = {}},
                           .protocol = protocol,
                           .options = {}});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst,
                                   std::optional<std::uint8_t> next_header) {
  layers_.emplace_back(Ip6{.header = {.src = v6(src), .dst = v6(dst)}, .next_header = next_header});
  return *this;
}

PacketBuilder& PacketBuilder::ttl(std::uint8_t ttl) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (auto* l = std::get_if<Ip4>(&*it)) {
      l->header.ttl = ttl;
      return *this;
    }
    if (auto* l = std::get_if<Ip6>(&*it)) {
      l->header.hop_limit = ttl;
      return *this;
    }
  }
  fail("ttl needs an IP layer");
}

PacketBuilder& PacketBuilder::dscp(std::uint8_t dscp) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (auto* l = std::get_if<Ip4>(&*it)) {
      l->header.dscp = dscp;
      return *this;
    }
    if (auto* l = std::get_if<Ip6>(&*it)) {
      l->header.traffic_class =
          static_cast<std::uint8_t>((dscp << 2) | (l->header.traffic_class & 3));
      return *this;
    }
  }
  fail("dscp needs an IP layer");
}

PacketBuilder& PacketBuilder::ecn(std::uint8_t ecn) {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
    if (auto* l = std::get_if<Ip4>(&*it)) {
      l->header.ecn = ecn;
      return *this;
    }
    if (auto* l = std::get_if<Ip6>(&*it)) {
      l->header.traffic_class =
          static_cast<std::uint8_t>((l->header.traffic_class & 0xfc) | (ecn & 3));
      return *this;
    }
  }
  fail("ecn needs an IP layer");
}

PacketBuilder& PacketBuilder::id(std::uint16_t id) {
  last<Ip4>("id").header.id = id;
  return *this;
}

PacketBuilder& PacketBuilder::df(bool on) {
  last<Ip4>("df").header.dont_fragment = on;
  return *this;
}

PacketBuilder& PacketBuilder::mf(bool on) {
  last<Ip4>("mf").header.more_fragments = on;
  return *this;
}

PacketBuilder& PacketBuilder::fragment_offset(std::uint16_t units_of_8) {
  last<Ip4>("fragment_offset").header.fragment_offset = units_of_8;
  return *this;
}

PacketBuilder& PacketBuilder::ipv4_options(std::initializer_list<int> b) {
  auto& opts = last<Ip4>("ipv4_options").options;
  const auto more = test::bytes(b);
  opts.insert(opts.end(), more.begin(), more.end());
  return *this;
}

PacketBuilder& PacketBuilder::flow_label(std::uint32_t label) {
  last<Ip6>("flow_label").header.flow_label = label;
  return *this;
}

PacketBuilder& PacketBuilder::hop_by_hop() {
  return extension(core::ip_protocol::kHopByHop, test::bytes({kPadN, 4, 0, 0, 0, 0}));
}

PacketBuilder& PacketBuilder::destination_options() {
  return extension(core::ip_protocol::kDestinationOptions, test::bytes({kPadN, 4, 0, 0, 0, 0}));
}

PacketBuilder& PacketBuilder::extension(std::uint8_t type, core::Bytes body) {
  if (body.size() % 8 != 6) fail("extension body must be 8n+6 bytes");
  layers_.emplace_back(Ext{.type = type, .body = {body.begin(), body.end()}});
  return *this;
}

PacketBuilder& PacketBuilder::fragment(std::uint16_t offset, bool more, std::uint32_t id) {
  layers_.emplace_back(Frag{.info = {.offset = offset, .more_fragments = more, .id = id}});
  return *this;
}

PacketBuilder& PacketBuilder::udp(std::uint16_t src_port, std::uint16_t dst_port) {
  layers_.emplace_back(Udp{.header = {.src_port = src_port, .dst_port = dst_port}});
  return *this;
}

PacketBuilder& PacketBuilder::tcp(std::uint16_t src_port, std::uint16_t dst_port,
                                  std::uint8_t flags, std::uint32_t seq, std::uint32_t ack) {
  layers_.emplace_back(Tcp{.header = {.src_port = src_port,
                                      .dst_port = dst_port,
                                      .seq = seq,
                                      .ack = ack,
                                      .reserved = 0,
                                      .flags = flags,
                                      .window = 65535,
                                      .urgent_pointer = 0,
                                      .options = {}},
                           .options = {}});
  return *this;
}

PacketBuilder& PacketBuilder::window(std::uint16_t window) {
  last<Tcp>("window").header.window = window;
  return *this;
}

PacketBuilder& PacketBuilder::mss(std::uint16_t mss) {
  auto& opts = last<Tcp>("mss").options;
  const auto more = test::bytes({core::tcp_option::kMss, 4, mss >> 8, mss & 0xff});
  opts.insert(opts.end(), more.begin(), more.end());
  return *this;
}

PacketBuilder& PacketBuilder::tcp_options(std::initializer_list<int> b) {
  auto& opts = last<Tcp>("tcp_options").options;
  const auto more = test::bytes(b);
  opts.insert(opts.end(), more.begin(), more.end());
  return *this;
}

PacketBuilder& PacketBuilder::icmpv4_echo(std::uint16_t id, std::uint16_t sequence,
                                          core::EchoKind kind) {
  layers_.emplace_back(Icmp4Echo{.kind = kind, .id = id, .sequence = sequence});
  return *this;
}

PacketBuilder& PacketBuilder::icmpv6_echo(std::uint16_t id, std::uint16_t sequence,
                                          core::EchoKind kind) {
  layers_.emplace_back(Icmp6Echo{.kind = kind, .id = id, .sequence = sequence});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view text) {
  return payload(core::as_bytes(text));
}

PacketBuilder& PacketBuilder::payload(core::Bytes data) {
  layers_.emplace_back(Data{.bytes = {data.begin(), data.end()}});
  return *this;
}

std::uint8_t PacketBuilder::next_protocol(std::size_t index, std::uint8_t fallback) const {
  using namespace core::ip_protocol;
  if (index + 1 >= layers_.size()) return fallback;
  return std::visit(
      [&](const auto& l) -> std::uint8_t {
        using T = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<T, Ip4>)
          return kIpv4;
        else if constexpr (std::is_same_v<T, Ip6>)
          return kIpv6;
        else if constexpr (std::is_same_v<T, Ext>)
          return l.type;
        else if constexpr (std::is_same_v<T, Frag>)
          return kFragment;
        else if constexpr (std::is_same_v<T, Udp>)
          return kUdp;
        else if constexpr (std::is_same_v<T, Tcp>)
          return kTcp;
        else if constexpr (std::is_same_v<T, Icmp4Echo>)
          return kIcmp;
        else if constexpr (std::is_same_v<T, Icmp6Echo>)
          return kIcmpv6;
        else
          return fallback;
      },
      layers_[index + 1]);
}

std::vector<std::byte> PacketBuilder::wrap(std::size_t index,
                                           const std::vector<std::byte>& inner) const {
  // The nearest IP layer before `index`, for pseudo-headers.
  const auto enclosing = [&]() -> const Layer& {
    for (std::size_t i = index; i-- > 0;) {
      if (std::holds_alternative<Ip4>(layers_[i]) || std::holds_alternative<Ip6>(layers_[i])) {
        return layers_[i];
      }
    }
    fail("a transport layer needs an IP layer before it");
  };
  // Calls f(src, dst) with the enclosing layer's addresses, whichever family.
  const auto with_addresses = [&](auto&& f) {
    const Layer& ip = enclosing();
    if (const auto* l4 = std::get_if<Ip4>(&ip)) return f(l4->header.src, l4->header.dst);
    const auto& l6 = std::get<Ip6>(ip);
    return f(l6.header.src, l6.header.dst);
  };

  return std::visit(
      [&](const auto& l) -> std::vector<std::byte> {
        using T = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<T, Ip4>) {
          auto h = l.header;
          h.protocol = l.protocol.value_or(next_protocol(index, 253));
          h.options = l.options;
          return value_or_throw(core::build_ipv4(h, inner), "ipv4");
        } else if constexpr (std::is_same_v<T, Ip6>) {
          auto h = l.header;
          h.next_header =
              l.next_header.value_or(next_protocol(index, core::ip_protocol::kNoNextHeader));
          return value_or_throw(core::build_ipv6(h, inner), "ipv6");
        } else if constexpr (std::is_same_v<T, Ext>) {
          std::vector<std::byte> out(l.body.size() + 2);
          core::ByteWriter w{out};
          check(core::write_ipv6_extension_header(
                    w, next_protocol(index, core::ip_protocol::kNoNextHeader), l.body),
                "extension");
          return concat(out, inner);
        } else if constexpr (std::is_same_v<T, Frag>) {
          std::vector<std::byte> out(core::kIpv6FragmentHeaderLength);
          core::ByteWriter w{out};
          check(core::write_ipv6_fragment_header(
                    w, next_protocol(index, core::ip_protocol::kNoNextHeader), l.info),
                "fragment");
          return concat(out, inner);
        } else if constexpr (std::is_same_v<T, Udp>) {
          return with_addresses([&](const auto& src, const auto& dst) {
            return value_or_throw(core::build_udp(l.header, inner, src, dst), "udp");
          });
        } else if constexpr (std::is_same_v<T, Tcp>) {
          auto h = l.header;
          h.options = l.options;
          return with_addresses([&](const auto& src, const auto& dst) {
            return value_or_throw(core::build_tcp(h, inner, src, dst), "tcp");
          });
        } else if constexpr (std::is_same_v<T, Icmp4Echo>) {
          std::vector<std::byte> out(core::kIcmpHeaderLength + inner.size());
          core::ByteWriter w{out};
          check(core::write_icmpv4_echo(w, l.kind,
                                        {.id = l.id, .sequence = l.sequence, .data = inner}),
                "icmpv4_echo");
          return out;
        } else if constexpr (std::is_same_v<T, Icmp6Echo>) {
          const auto& ip = enclosing();
          const auto* l6 = std::get_if<Ip6>(&ip);
          if (l6 == nullptr) fail("icmpv6_echo needs an IPv6 layer before it");
          std::vector<std::byte> out(core::kIcmpHeaderLength + inner.size());
          core::ByteWriter w{out};
          check(core::write_icmpv6_echo(w, l.kind,
                                        {.id = l.id, .sequence = l.sequence, .data = inner},
                                        l6->header.src, l6->header.dst),
                "icmpv6_echo");
          return out;
        } else {
          return concat(l.bytes, inner);
        }
      },
      layers_[index]);
}

std::vector<std::byte> PacketBuilder::bytes() const {
  std::vector<std::byte> packet;
  for (std::size_t i = layers_.size(); i-- > 0;) packet = wrap(i, packet);
  return packet;
}

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  out.reserve(values.size());
  for (const int v : values) {
    if (v < 0 || v > 0xff) fail("byte value out of range: " + std::to_string(v));
    out.push_back(static_cast<std::byte>(v));
  }
  return out;
}

std::vector<std::byte> hex(std::string_view text) {
  std::vector<std::byte> out;
  int high = -1;
  for (const char c : text) {
    int v = -1;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\t')
      continue;
    else
      fail(std::string{"bad hex character '"} + c + "'");
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::byte>(high * 16 + v));
      high = -1;
    }
  }
  if (high >= 0) fail("odd number of hex digits");
  return out;
}

core::Ipv4Address v4(std::string_view text) {
  auto a = core::Ipv4Address::parse(text);
  if (!a) fail("bad IPv4 address '" + std::string{text} + "'");
  return *a;
}

core::Ipv6Address v6(std::string_view text) {
  auto a = core::Ipv6Address::parse(text);
  if (!a) fail("bad IPv6 address '" + std::string{text} + "'");
  return *a;
}

}  // namespace test
