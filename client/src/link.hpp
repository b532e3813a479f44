// Private to dstm_client: the client's data path on the io_context thread. Link owns the TUN
// queue (the host's IPv4 side) and the tunnel port (raw IPv6 sockets toward the TEPs), waits for
// their readiness with Asio descriptors that borrow the fds, and moves packets between them in
// batches; KernelLink (kernel_link.hpp) leaves that to an ip6tnl device.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "core/address.hpp"
#include "platform/counters.hpp"
#include "platform/error.hpp"
#include "platform/fd.hpp"
#include "platform/log.hpp"
#include "tep/fourover6.hpp"
#include "tep_io/backend.hpp"

namespace dstm_client::detail {

// The client's counters (platform::Counters series, also served as GET /metrics). References
// stay valid for the registry's lifetime.
struct Metrics {
  explicit Metrics(platform::Counters& c);

  platform::Counter& encapsulated;       // IPv4 packets sent into the tunnel (fragments included)
  platform::Counter& decapsulated;       // inner packets written to the TUN device
  platform::Counter& fragmented;         // TUN packets fragmented before encapsulation
  platform::Counter& frag_needed_sent;   // ICMP "fragmentation needed" written back to the host
  platform::Counter& dropped_too_big;    // DF packets over the tunnel MTU
  platform::Counter& dropped_not_ours;   // decapsulated, inner destination not our lease
  platform::Counter& dropped_source;     // from the TUN with a source other than the lease
  platform::Counter& dropped_not_ipv4;   // from the TUN, not IPv4
  platform::Counter& dropped_malformed;  // from the TUN, an IPv4 header that does not parse
  platform::Counter& dropped_no_lease;   // either way while no lease is usable
  platform::Counter& tun_read_errors;
  platform::Counter& tun_write_errors;
  platform::Counter& tunnel_read_errors;
  platform::Counter& tunnel_send_errors;   // a packet the kernel refused (EMSGSIZE, ENETUNREACH...)
  platform::Counter& tunnel_send_dropped;  // not sent: the socket's buffer was full
  platform::Counter& keepalive_sent;
  platform::Counter& keepalive_answered;
  platform::Counter& keepalive_missed;
  platform::Counter& keepalive_replies;  // echo replies consumed (answered or late)
  platform::Counter& renewals;
  platform::Counter& tep_changes;
  std::array<platform::Counter*, tep::kDropReasonCount> decap_drops{};

  // The data-path counters as the status document lists them, and the drops by reason.
  std::vector<std::pair<std::string, std::uint64_t>> data_path() const;
  std::vector<std::pair<std::string, std::uint64_t>> drops() const;
};

// Where the tunnel goes for the current lease.
struct Path {
  core::Ipv4Address lease;
  core::Ipv6Address local;     // our end (the tunnel port binds to it)
  core::Ipv6Address tep;       // where our packets go
  core::Ipv4Address tep_ipv4;  // source of the ICMP errors we write back to the host
  std::optional<core::Ipv4Address> keepalive;
  bool operator==(const Path&) const = default;
};

// What the client needs of a data path, whichever backend carries it.
class DataPath {
 public:
  virtual ~DataPath() = default;
  // Forwards for `path`. Errors: the backend's (the path is then cleared).
  virtual platform::Result<void> set_path(const Path& path) = 0;
  // Stops forwarding (the lease ended).
  virtual void clear_path() noexcept = 0;
  // Sends keepalive probe `sequence` to the path's keepalive address through the tunnel. False
  // when there is no path or keepalive, or the send failed.
  virtual bool send_probe(std::uint16_t sequence) = 0;
  // Closes everything the data path opened or created. Idempotent.
  virtual void close() noexcept = 0;
  // "kernel", "bpf" or "user": what carries the packets now.
  virtual std::string_view backend() const noexcept = 0;
  // The kernel's own counters for this data path by name (the BPF fast path's, or the ip6tnl
  // device's statistics), empty when there are none.
  virtual std::vector<std::pair<std::string, std::uint64_t>> kernel_counters() const = 0;
};

class Link final : public DataPath {
 public:
  // Takes the TUN queue fd (non-blocking, layer 3) and starts reading it; packets read before a
  // path is set are dropped (dropped_no_lease). on_keepalive_reply is called with the sequence
  // number of each keepalive echo reply (echo identifier echo_id).
  // With a backend other than User, set_path also puts the BPF fast path (tep_bpf, Client role)
  // in front: attached to the TUN device `tun_ifindex` and the host's uplinks.
  Link(boost::asio::io_context& io, platform::Fd tun_queue, std::uint32_t tun_ifindex,
       std::size_t tunnel_mtu, tep::io::Backend backend, std::uint16_t echo_id, Metrics& metrics,
       platform::Logger& log, std::function<void(std::uint16_t)> on_keepalive_reply);
  ~Link() override;  // close()
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Forwards for `path`; (re)opens the tunnel port when path.local changes, and the fast path
  // when path.local or path.keepalive change. Errors: those of tep::io::TunnelPort::open, and
  // with backend Bpf those of tep::bpf::FastPath::open (the path is then cleared). With backend
  // Auto a fast path that does not load is logged once and not tried again.
  platform::Result<void> set_path(const Path& path) override;
  // Stops forwarding (the lease ended); the tunnel port stays open.
  void clear_path() noexcept override;
  bool send_probe(std::uint16_t sequence) override;

  // Stops both loops and closes the TUN queue (the device, its address and routes go with it)
  // and the tunnel port. Idempotent.
  void close() noexcept override;
  // "bpf" while the fast path is attached, else "user".
  std::string_view backend() const noexcept override;
  // The fast path's counters by name while it is attached (read from the kernel); else empty.
  std::vector<std::pair<std::string, std::uint64_t>> kernel_counters() const override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace dstm_client::detail
