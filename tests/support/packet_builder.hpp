// Fluent builder of test packets over the core writers: lengths and checksums come out right.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "core/bytes.hpp"
#include "core/icmp.hpp"
#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "core/tcp.hpp"
#include "core/udp.hpp"

namespace test {

// Layers are listed outside-in and assembled inside-out by bytes():
//   PacketBuilder{}.ipv4("192.0.2.1", "198.51.100.7").udp(5000, 53).payload("q").bytes()
//   PacketBuilder{}.ipv6(kLocal, kRemote, /*next_header=*/4).raw(inner).bytes()
// An IP or extension layer's protocol/next header is taken from the layer after it unless given
// (raw data after it gives 253 "experimental" on IPv4 and 59 "no next header" on IPv6).
// Transport checksums use the addresses of the nearest IP layer before them. Modifiers (ttl, df,
// mss...) apply to the most recent layer they fit. Misuse (a bad address, a modifier with no
// layer to apply to, a field the core writers reject) throws std::invalid_argument: this is test
// code, and the message says what was wrong.
class PacketBuilder {
 public:
  PacketBuilder& ipv4(std::string_view src, std::string_view dst,
                      std::optional<std::uint8_t> protocol = std::nullopt);
  PacketBuilder& ipv6(std::string_view src, std::string_view dst,
                      std::optional<std::uint8_t> next_header = std::nullopt);

  // The most recent IP layer.
  PacketBuilder& ttl(std::uint8_t ttl);  // IPv4 TTL or IPv6 hop limit
  PacketBuilder& dscp(std::uint8_t dscp);
  PacketBuilder& ecn(std::uint8_t ecn);
  // The most recent IPv4 layer.
  PacketBuilder& id(std::uint16_t id);
  PacketBuilder& df(bool on = true);
  PacketBuilder& mf(bool on = true);
  PacketBuilder& fragment_offset(std::uint16_t units_of_8);
  PacketBuilder& ipv4_options(std::initializer_list<int> bytes);
  // The most recent IPv6 layer.
  PacketBuilder& flow_label(std::uint32_t label);

  // IPv6 extension headers, in the order given. hop_by_hop/destination_options carry one PadN
  // option (8 bytes in all); extension() takes a body of 8n+6 bytes.
  PacketBuilder& hop_by_hop();
  PacketBuilder& destination_options();
  PacketBuilder& extension(std::uint8_t type, core::Bytes body);
  PacketBuilder& fragment(std::uint16_t offset, bool more, std::uint32_t id);

  PacketBuilder& udp(std::uint16_t src_port, std::uint16_t dst_port);
  PacketBuilder& tcp(std::uint16_t src_port, std::uint16_t dst_port,
                     std::uint8_t flags = core::tcp_flag::kAck, std::uint32_t seq = 0,
                     std::uint32_t ack = 0);
  // The most recent TCP layer.
  PacketBuilder& window(std::uint16_t window);
  PacketBuilder& mss(std::uint16_t mss);                         // appends an MSS option (4 bytes)
  PacketBuilder& tcp_options(std::initializer_list<int> bytes);  // appended as given
  PacketBuilder& icmpv4_echo(std::uint16_t id, std::uint16_t sequence,
                             core::EchoKind kind = core::EchoKind::request);
  PacketBuilder& icmpv6_echo(std::uint16_t id, std::uint16_t sequence,
                             core::EchoKind kind = core::EchoKind::request);

  // Bytes after the layers before them (echo data, a UDP payload, an inner packet...).
  PacketBuilder& payload(std::string_view text);
  PacketBuilder& payload(core::Bytes data);
  PacketBuilder& raw(core::Bytes data) { return payload(data); }

  std::vector<std::byte> bytes() const;

 private:
  struct Ip4 {
    core::Ipv4Header header;
    std::optional<std::uint8_t> protocol;
    std::vector<std::byte> options;
  };
  struct Ip6 {
    core::Ipv6Header header;
    std::optional<std::uint8_t> next_header;
  };
  struct Ext {
    std::uint8_t type;
    std::vector<std::byte> body;
  };
  struct Frag {
    core::Ipv6FragmentInfo info;
  };
  struct Udp {
    core::UdpHeader header;
  };
  struct Tcp {
    core::TcpHeader header;
    std::vector<std::byte> options;
  };
  struct Icmp4Echo {
    core::EchoKind kind;
    std::uint16_t id;
    std::uint16_t sequence;
  };
  struct Icmp6Echo {
    core::EchoKind kind;
    std::uint16_t id;
    std::uint16_t sequence;
  };
  struct Data {
    std::vector<std::byte> bytes;
  };
  using Layer = std::variant<Ip4, Ip6, Ext, Frag, Udp, Tcp, Icmp4Echo, Icmp6Echo, Data>;

  template <typename T>
  T& last(const char* what);
  std::uint8_t next_protocol(std::size_t index, std::uint8_t fallback) const;
  std::vector<std::byte> wrap(std::size_t index, const std::vector<std::byte>& inner) const;

  std::vector<Layer> layers_;
};

// Bytes from a list of small integers: bytes({0x45, 0x00}).
std::vector<std::byte> bytes(std::initializer_list<int> values);
// Bytes from hex text, whitespace ignored: hex("4500 0073").
std::vector<std::byte> hex(std::string_view text);

// An address literal the test knows to be valid (a bad one throws, which fails the test).
core::Ipv4Address v4(std::string_view text);
core::Ipv6Address v6(std::string_view text);

}  // namespace test
