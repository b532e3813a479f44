// The anycast member's configuration: the /anycast/member section of the appliance document
// (docs/config.md), parsed from text into an immutable struct.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anycast/wire.hpp"
#include "core/address.hpp"
#include "platform/config.hpp"

namespace anycast_member {

// Kernel anycast membership (IPV6_JOIN_ANYCAST) for every anycast address on one interface:
// ICMPv6 echo to them is then answered from the unicast address, and a HoTI can be sent from
// them although they are not ordinary addresses of the host.
struct Join {
  std::string interface;
  bool operator==(const Join&) const = default;
};

struct Config {
  std::vector<core::Ipv6Address> anycast;  // 1..64, unique
  core::Ipv6Address unicast;               // the member's own address, not one of `anycast`
  core::Ipv6Address listen;                // bind address of the ARR/UDP socket; "::" by default
  std::uint16_t port = anycast::kDefaultPort;  // 0: ephemeral (tests)
  std::optional<Join> join;
  std::uint16_t answer_ttl = 16;  // seconds, 1..3600
  std::size_t max_pending = 4096;
  std::uint32_t probes_per_second = 50;  // per source address; bursts of twice as many
  std::string control_socket = "/run/dstm/anycast-member.sock";
  bool operator==(const Config&) const = default;
};

// The whole appliance document -> its /anycast/member section, or every error with its JSON
// pointer. /anycast/resolver and the other daemons' top-level sections are not looked into.
platform::ConfigResult<Config> parse_config_document(std::string_view json);

}  // namespace anycast_member
