// Private to dstm_client: the kernel backend's data path. An ip6tnl device (mode ipip6, local =
// the client's IPv6, remote = its TEP) carries the lease; a second one with remote :: takes
// what other TEPs send back (return traffic may come through any TEP); the keepalive probes go
// out and their replies come in through a raw ICMP socket bound to the first (docs/tep.md,
// "Backends").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "link.hpp"

namespace dstm_client::detail {

class KernelLink final : public DataPath {
 public:
  // Creates nothing yet: the devices need the first path's end points. name: the device (the
  // client's --interface); inner_mtu: its MTU (the tunnel MTU - 40).
  KernelLink(boost::asio::io_context& io, std::string name, std::uint32_t inner_mtu,
             std::uint16_t echo_id, Metrics& metrics, platform::Logger& log,
             std::function<void(std::uint16_t)> on_keepalive_reply);
  ~KernelLink() override;  // close()

  // The first call creates the devices (down, with their sysctls; a leftover ip6tnl device of
  // the same name, a killed client's, is replaced) and the keepalive socket; later ones move
  // the devices' end points when the TEP or the local address changed. Errors: the kernel's.
  platform::Result<void> set_path(const Path& path) override;
  void clear_path() noexcept override;
  bool send_probe(std::uint16_t sequence) override;
  // Deletes both devices (the address and routes go with them) and closes the socket.
  void close() noexcept override;
  std::string_view backend() const noexcept override { return "kernel"; }
  // The device's statistics (/sys/class/net/NAME/statistics: tx_packets, rx_bytes...).
  std::vector<std::pair<std::string, std::uint64_t>> kernel_counters() const override;

  // The device's index once the first set_path created it, else 0.
  std::uint32_t ifindex() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dstm_client::detail
