// The anycast-resolver service on one io_context: the query socket the preload library asks,
// probing (ARR/UDP, and ICMPv6 echo with "icmp"), return routability as the correspondent under
// the "secure" policy, renewal and liveness driven by the cache (cache.hpp), and the control
// socket (GET /status, /metrics, /logs, /cache, /cache/{anycast}; POST /cache/flush).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/system/result.hpp>

#include "anycast_resolver/config.hpp"

namespace boost::asio {
class io_context;
}

namespace anycast_resolver {

struct ServiceOptions {
  std::string version;  // shown in GET /status
  // Written "READY\n" (then closed) once every socket is bound and the control socket serves.
  std::optional<int> ready_fd;
};

class Service {
 public:
  // Opens the ARR/UDP socket on [source]:0 (an ephemeral port), the raw ICMPv6 socket when
  // methods has "icmp" (CAP_NET_RAW), the query socket (SOCK_SEQPACKET, mode 0666) and the
  // control socket (mode 0660), creating their directories, and starts serving. A stale socket
  // file is replaced; one a live process answers on is an error. The error says what failed
  // ("query socket /run/anycast-resolver/query.sock: Permission denied").
  static boost::system::result<std::unique_ptr<Service>, std::string> start(
      boost::asio::io_context& io, Config config, ServiceOptions options);
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Closes every socket (removing the socket files this service created), answers no waiting
  // query and cancels the timers; io.run() returns once the coroutines have seen it. Idempotent.
  // Call on the io_context's thread.
  void stop() noexcept;

  // The local port of the ARR/UDP socket (the members answer to it).
  std::uint16_t port() const noexcept;

 private:
  struct Impl;
  explicit Service(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace anycast_resolver
