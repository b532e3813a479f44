// anycast-resolver's part of the appliance config document: the /anycast/resolver section
// (docs/config.md), read strictly, every error with its JSON pointer, before any socket is opened.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.hpp"
#include "platform/config.hpp"

namespace anycast_resolver {

// probe: an answer to a probe (ARR/UDP or ICMPv6 echo) binds, unverified. secure: only a Binding
// Update that verifies (return routability) binds.
enum class Policy { Probe, Secure };

struct Methods {
  bool udp = true;    // ARR/UDP probes to [anycast]:port
  bool icmp = false;  // ICMPv6 echo requests carrying the nonce (needs CAP_NET_RAW)
  bool operator==(const Methods&) const = default;
};

struct Config {
  std::vector<core::Ipv6Prefix> prefixes;  // anycast prefixes to resolve
  bool probe_all = false;                  // resolve every global unicast destination
  Policy policy = Policy::Secure;
  Methods methods;
  std::uint16_t port = 4545;                     // the members' ARR/UDP port
  std::optional<core::Ipv6Address> source;       // bind address for probing; absent: ::
  std::chrono::milliseconds probe_timeout{250};  // per attempt
  unsigned probe_attempts = 3;
  std::chrono::seconds negative_ttl{30};
  std::chrono::seconds probe_ttl{16};          // an unverified binding lives at most this long
  std::chrono::milliseconds answer_ttl{1000};  // ttl_ms handed to the preload library
  std::chrono::seconds idle_timeout{60};       // a binding unused this long is not renewed
  std::chrono::milliseconds liveness_interval{1000};
  unsigned liveness_misses = 3;
  std::size_t max_entries = 4096;
  std::size_t max_waiters = 1024;
  std::string socket = "/run/anycast-resolver/query.sock";
  std::string control_socket = "/run/anycast-resolver/control.sock";
};

std::string_view to_string(Policy policy) noexcept;  // "probe", "secure"

// The /anycast/resolver section of the document (absent: every default). The other top-level
// sections ("dstm_server", "tep", "client", "web", "anytun", "system") and /anycast/member are
// ignored without looking inside; any other key is an error.
platform::ConfigResult<Config> parse_config_document(std::string_view json);

}  // namespace anycast_resolver
