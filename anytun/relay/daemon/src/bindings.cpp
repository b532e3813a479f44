// Relay mode on the relay node: the binding table and its sockets (see bindings.hpp).
#include "bindings.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>
#include <variant>

#include <fmt/core.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "platform/fd.hpp"
#include "udp.hpp"

namespace relay_daemon {
namespace asio = boost::asio;
namespace json = boost::json;
namespace ctl = relay::control;

namespace {

// Random relay endpoints tried for one Allocate (each a bind() at most).
constexpr int kProbes = 32;
// Draws for a free binding id.
constexpr int kIdDraws = 64;
// Datagrams read per batch, and batches per readiness wake-up before yielding.
constexpr std::size_t kBatch = 16;
constexpr int kRoundsPerWake = 8;
// A receive slot holds the largest UDP payload: nothing is ever cut.
constexpr std::size_t kSlot = 65536;

ctl::Error error(ctl::Code code, std::string reason) {
  return ctl::Error{code, std::move(reason)};
}

std::string_view code_name(ctl::Code code) noexcept {
  switch (code) {
    case ctl::Code::BadRequest:
      return "bad_request";
    case ctl::Code::NotAllowed:
      return "not_allowed";
    case ctl::Code::Exhausted:
      return "exhausted";
    case ctl::Code::UnknownBinding:
      return "unknown_binding";
    case ctl::Code::Unavailable:
      return "unavailable";
  }
  return "other";
}

json::object counters_json(const BindingCounters& c) {
  return json::object{{"to_peer_packets", c.to_peer_packets},
                      {"to_peer_bytes", c.to_peer_bytes},
                      {"to_client_packets", c.to_client_packets},
                      {"to_client_bytes", c.to_client_bytes},
                      {"filtered", c.filtered},
                      {"send_errors", c.send_errors}};
}

const char* family_name(bool v4) {
  return v4 ? "IPv4" : "IPv6";
}

}  // namespace

BindingCounters& BindingCounters::operator+=(const BindingCounters& o) noexcept {
  to_peer_packets += o.to_peer_packets;
  to_peer_bytes += o.to_peer_bytes;
  to_client_packets += o.to_client_packets;
  to_client_bytes += o.to_client_bytes;
  filtered += o.filtered;
  send_errors += o.send_errors;
  return *this;
}

Direction direction(const Binding& binding, const relay::Endpoint& from) noexcept {
  if (from == binding.client) return Direction::ToPeer;
  if (from == binding.peer) return Direction::ToClient;
  return Direction::Filtered;
}

// ---- BindingTable ----

BindingTable::BindingTable(RelayModeConfig config, std::uint64_t seed)
    : config_{std::move(config)}, rng_{seed} {}

std::uint32_t BindingTable::grant(std::uint32_t asked) const noexcept {
  return asked == 0 ? config_.max_lifetime : std::min(asked, config_.max_lifetime);
}

boost::system::result<BindingTable::Request, ctl::Error> BindingTable::check(
    std::uint16_t mux, bool allowed, const relay::Endpoint& from, std::uint32_t request,
    const ctl::Allocate& allocate) const {
  if (!allowed) return error(ctl::Code::NotAllowed, "this connection may not use relay mode");
  Request r{.mux = mux,
            .id = request,
            .client = relay::Endpoint{allocate.client_address.value_or(from.address),
                                      allocate.client_port},
            .peer = allocate.peer,
            .lifetime = grant(allocate.lifetime)};
  if (r.client.port == 0 || r.client.is_unspecified())
    return error(ctl::Code::BadRequest,
                 fmt::format("client endpoint {} has no address or port", r.client.to_string()));
  if (r.peer.port == 0 || r.peer.is_unspecified())
    return error(ctl::Code::BadRequest,
                 fmt::format("peer {} has no address or port", r.peer.to_string()));
  if (r.client.is_v4() != r.peer.is_v4())
    return error(ctl::Code::BadRequest,
                 fmt::format("client {} is {} and peer {} is {}: one relay socket serves both, "
                             "they must be of one family",
                             r.client.to_string(), family_name(r.client.is_v4()),
                             r.peer.to_string(), family_name(r.peer.is_v4())));
  if (r.client == r.peer) return error(ctl::Code::BadRequest, "the client endpoint is the peer");
  for (const auto& a : config_.addresses)
    if (a == r.peer.address || a == r.client.address)
      return error(ctl::Code::NotAllowed,
                   fmt::format("{} is a relay address of this node",
                               (a == r.peer.address ? r.peer : r.client).to_string()));
  if (std::none_of(config_.addresses.begin(), config_.addresses.end(),
                   [&](const core::Ipv6Address& a) { return a.is_v4_mapped() == r.peer.is_v4(); }))
    return error(ctl::Code::Unavailable,
                 fmt::format("no {} relay address on this node", family_name(r.peer.is_v4())));
  return r;
}

std::optional<ctl::Error> BindingTable::full(std::uint16_t mux) const {
  if (bindings_.size() >= config_.max_bindings)
    return error(ctl::Code::Exhausted,
                 fmt::format("the relay holds its most bindings ({})", config_.max_bindings));
  if (size_of(mux) >= config_.max_bindings_per_client)
    return error(ctl::Code::Exhausted, fmt::format("this connection holds its most bindings ({})",
                                                   config_.max_bindings_per_client));
  return std::nullopt;
}

Binding* BindingTable::retransmitted(const Request& request) noexcept {
  for (auto& [id, b] : bindings_)
    if (b.mux == request.mux && b.request == request.id && b.peer == request.peer &&
        b.client == request.client)
      return &b;
  return nullptr;
}

std::optional<relay::Endpoint> BindingTable::candidate(const Request& request) {
  std::vector<const core::Ipv6Address*> family;
  for (const auto& a : config_.addresses)
    if (a.is_v4_mapped() == request.peer.is_v4()) family.push_back(&a);
  if (family.empty()) return std::nullopt;
  const std::uint32_t ports = std::uint32_t{config_.port_last} - config_.port_first + 1;
  std::size_t held = 0;
  for (const auto& [endpoint, id] : by_relay_)
    if (endpoint.is_v4() == request.peer.is_v4()) ++held;
  if (held >= std::size_t{ports} * family.size()) return std::nullopt;
  for (int k = 0; k < kProbes; ++k) {
    const auto* address = family[rng_() % family.size()];
    const auto port = static_cast<std::uint16_t>(config_.port_first + rng_() % ports);
    const relay::Endpoint e{*address, port};
    if (!by_relay_.contains(e)) return e;
  }
  return std::nullopt;
}

BindingTable::Answer BindingTable::insert(const Request& request, const relay::Endpoint& relay,
                                          Clock::time_point now) {
  for (int k = 0; k < kIdDraws; ++k) {
    const auto id = static_cast<std::uint32_t>(rng_());
    if (id == 0 || bindings_.contains(id)) continue;
    auto& b = bindings_[id];
    b = Binding{.id = id,
                .mux = request.mux,
                .request = request.id,
                .client = request.client,
                .peer = request.peer,
                .relay = relay,
                .lifetime = request.lifetime,
                .expires = now + std::chrono::seconds{request.lifetime},
                .counters = {}};
    ++per_client_[request.mux];
    by_relay_[relay] = id;
    ++totals_.allocated;
    return &b;
  }
  return error(ctl::Code::Exhausted, "no free binding id");
}

BindingTable::Answer BindingTable::refresh(std::uint16_t mux, std::uint32_t id,
                                           std::uint32_t lifetime, Clock::time_point now) {
  auto* b = find(id);
  if (!b || b->mux != mux)
    return error(ctl::Code::UnknownBinding, fmt::format("no binding {} of this connection", id));
  b->lifetime = grant(lifetime);
  b->expires = now + std::chrono::seconds{b->lifetime};
  ++totals_.refreshed;
  return b;
}

boost::system::result<void, ctl::Error> BindingTable::release(std::uint16_t mux, std::uint32_t id) {
  const auto it = bindings_.find(id);
  if (it == bindings_.end() || it->second.mux != mux)
    return error(ctl::Code::UnknownBinding, fmt::format("no binding {} of this connection", id));
  erase(it);
  ++totals_.released;
  return {};
}

std::vector<std::uint32_t> BindingTable::expire(Clock::time_point now,
                                                const std::function<bool(std::uint16_t)>& allowed) {
  std::vector<std::uint32_t> out;
  for (auto it = bindings_.begin(); it != bindings_.end();) {
    const auto next = std::next(it);
    const bool expired = now > it->second.expires;
    if (expired || !allowed(it->second.mux)) {
      out.push_back(it->first);
      if (expired)
        ++totals_.expired;
      else
        ++totals_.released;
      erase(it);
    }
    it = next;
  }
  return out;
}

Binding* BindingTable::find(std::uint32_t id) noexcept {
  const auto it = bindings_.find(id);
  return it == bindings_.end() ? nullptr : &it->second;
}

std::size_t BindingTable::size_of(std::uint16_t mux) const noexcept {
  const auto it = per_client_.find(mux);
  return it == per_client_.end() ? 0 : it->second;
}

void BindingTable::erase(std::map<std::uint32_t, Binding>::iterator it) noexcept {
  totals_.gone += it->second.counters;
  by_relay_.erase(it->second.relay);
  if (const auto c = per_client_.find(it->second.mux); c != per_client_.end() && --c->second == 0)
    per_client_.erase(c);
  bindings_.erase(it);
}

// ---- RelayBindings ----

// A binding's UDP socket: Asio waits for readiness, the batches are read and sent directly.
struct RelayBindings::Socket {
  Socket(asio::io_context& io, platform::Fd fd, std::uint32_t binding_id)
      : descriptor{io, fd.release()}, id{binding_id} {}
  int fd() { return descriptor.native_handle(); }
  asio::posix::stream_descriptor descriptor;
  std::uint32_t id = 0;
  bool closed = false;
};

RelayBindings::RelayBindings(asio::io_context& io, RelayModeConfig config, std::uint64_t seed,
                             platform::Logger& log)
    : io_{io}, log_{log}, table_{std::move(config), seed}, buffer_(kBatch * kSlot) {}

RelayBindings::~RelayBindings() {
  stop();
}

bool RelayBindings::handles(const ctl::Body& body) noexcept {
  return std::holds_alternative<ctl::Allocate>(body) ||
         std::holds_alternative<ctl::Refresh>(body) || std::holds_alternative<ctl::Release>(body);
}

ctl::Body RelayBindings::answer(std::uint16_t mux, bool allowed, const relay::Endpoint& from,
                                const ctl::Message& message, Clock::time_point now) {
  const auto refuse = [&](ctl::Error e) -> ctl::Body {
    ++refused_[code_name(e.code)];
    log_.info_limited("bindings", "connection {}: request {} refused: {}", mux, message.request,
                      e.reason);
    return e;
  };
  if (const auto* a = std::get_if<ctl::Allocate>(&message.body)) {
    auto request = table_.check(mux, allowed, from, message.request, *a);
    if (!request) return refuse(request.error());
    // Before the limits: the binding a lost answer was about may be the one that reached them.
    if (const auto* b = table_.retransmitted(*request))
      return ctl::Allocated{b->id, b->lifetime, b->relay};
    if (auto e = table_.full(mux)) return refuse(std::move(*e));
    for (int k = 0; k < kProbes; ++k) {
      const auto endpoint = table_.candidate(*request);
      if (!endpoint) break;
      platform::Fd fd{::socket(endpoint->is_v4() ? AF_INET : AF_INET6,
                               SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
      const int one = 1;
      if (!fd || (!endpoint->is_v4() &&
                  ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)) {
        const int err = errno;  // EMFILE: each binding holds a file descriptor
        ++bind_errors_;
        log_.warn_limited("socket", "relay mode: no socket for a binding: {}",
                          platform::errno_code(err).message());
        return refuse(error(ctl::Code::Unavailable, "no socket for the binding"));
      }
      sockaddr_storage sa{};
      const auto len = to_sockaddr(*endpoint, endpoint->is_v4(), sa);
      if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
        const int err = errno;
        if (err == EADDRINUSE) continue;  // taken by someone else: another port
        ++bind_errors_;
        log_.warn_limited("bind", "relay mode: cannot bind {}: {}", endpoint->to_string(),
                          platform::errno_code(err).message());
        return refuse(error(ctl::Code::Unavailable,
                            fmt::format("cannot bind relay endpoint {}", endpoint->to_string())));
      }
      auto inserted = table_.insert(*request, *endpoint, now);
      if (!inserted) return refuse(inserted.error());
      const auto* b = *inserted;
      auto socket = std::make_shared<Socket>(io_, std::move(fd), b->id);
      sockets_[b->id] = socket;
      arm(socket);
      log_.info_limited("allocated", "connection {}: binding {} {} <-> {} via {} for {} s", mux,
                        b->id, b->client.to_string(), b->peer.to_string(), b->relay.to_string(),
                        b->lifetime);
      return ctl::Allocated{b->id, b->lifetime, b->relay};
    }
    return refuse(error(ctl::Code::Exhausted, "no free relay port found"));
  }
  if (const auto* r = std::get_if<ctl::Refresh>(&message.body)) {
    const auto b = table_.refresh(mux, r->binding, r->lifetime, now);
    if (!b) return refuse(b.error());
    return ctl::Refreshed{(*b)->id, (*b)->lifetime};
  }
  const auto& release = std::get<ctl::Release>(message.body);
  if (auto ok = table_.release(mux, release.binding); !ok) return refuse(ok.error());
  close(release.binding);
  log_.info_limited("released", "connection {}: binding {} released", mux, release.binding);
  return ctl::Released{release.binding};
}

void RelayBindings::tick(Clock::time_point now, const std::function<bool(std::uint16_t)>& allowed) {
  for (const auto id : table_.expire(now, allowed)) {
    close(id);
    log_.info_limited("ended",
                      "binding {} ended (expired, or its connection may no longer hold it)", id);
  }
}

void RelayBindings::stop() noexcept {
  while (!sockets_.empty()) close(sockets_.begin()->first);
}

void RelayBindings::close(std::uint32_t id) noexcept {
  const auto it = sockets_.find(id);
  if (it == sockets_.end()) return;
  // A pending wait completes later with operation_aborted; its handler keeps the Socket alive
  // and sees `closed`.
  it->second->closed = true;
  boost::system::error_code ignored;
  it->second->descriptor.close(ignored);
  sockets_.erase(it);
}

void RelayBindings::arm(const std::shared_ptr<Socket>& socket) {
  socket->descriptor.async_wait(asio::posix::descriptor_base::wait_read,
                                [this, socket](boost::system::error_code ec) {
                                  if (ec || socket->closed) return;
                                  drain(*socket);
                                  if (!socket->closed) arm(socket);
                                });
}

void RelayBindings::drain(Socket& socket) {
  auto* b = table_.find(socket.id);
  if (!b) return;
  std::array<mmsghdr, kBatch> msgs{};
  std::array<iovec, kBatch> iov{};
  std::array<sockaddr_storage, kBatch> addr{};
  std::array<mmsghdr, kBatch> out{};
  std::array<iovec, kBatch> out_iov{};
  std::array<sockaddr_storage, kBatch> out_addr{};
  for (int round = 0; round < kRoundsPerWake; ++round) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      iov[i] = iovec{buffer_.data() + i * kSlot, kSlot};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_name = &addr[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int got = ::recvmmsg(socket.fd(), msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (got <= 0) return;  // EAGAIN: drained; an error (an ICMP report) is the next wake's
    std::size_t queued = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
      const auto from = to_endpoint(addr[i]);
      const auto length = msgs[i].msg_len;
      relay::Endpoint to;
      switch (direction(*b, from)) {
        case Direction::ToPeer:
          to = b->peer;
          ++b->counters.to_peer_packets;
          b->counters.to_peer_bytes += length;
          break;
        case Direction::ToClient:
          to = b->client;
          ++b->counters.to_client_packets;
          b->counters.to_client_bytes += length;
          break;
        case Direction::Filtered:
          ++b->counters.filtered;
          continue;
      }
      out_iov[queued] = iovec{iov[i].iov_base, length};
      out[queued] = mmsghdr{};
      out[queued].msg_hdr.msg_name = &out_addr[queued];
      out[queued].msg_hdr.msg_namelen = to_sockaddr(to, to.is_v4(), out_addr[queued]);
      out[queued].msg_hdr.msg_iov = &out_iov[queued];
      out[queued].msg_hdr.msg_iovlen = 1;
      ++queued;
    }
    for (std::size_t done = 0; done < queued;) {
      const int n = ::sendmmsg(socket.fd(), out.data() + done, static_cast<unsigned>(queued - done),
                               MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        b->counters.send_errors += queued - done;  // a full buffer: the rest of the batch
        break;
      } else {
        ++b->counters.send_errors;  // this datagram refused (unreachable...): the next one
        ++done;
      }
    }
    if (static_cast<std::size_t>(got) < kBatch) return;
  }
}

json::array RelayBindings::list(Clock::time_point now) const {
  json::array out;
  for (const auto& [id, b] : table_.bindings()) {
    auto o = counters_json(b.counters);
    o["binding"] = id;
    o["mux"] = b.mux;
    o["client"] = b.client.to_string();
    o["peer"] = b.peer.to_string();
    o["relay"] = b.relay.to_string();
    o["lifetime"] = b.lifetime;
    o["expires_in"] = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(b.expires - now).count());
    out.push_back(std::move(o));
  }
  return out;
}

BindingCounters RelayBindings::sum() const {
  BindingCounters sum = table_.totals().gone;
  for (const auto& [id, b] : table_.bindings()) sum += b.counters;
  return sum;
}

json::object RelayBindings::status() const {
  auto o = counters_json(sum());
  const auto& t = table_.totals();
  o["bindings"] = table_.bindings().size();
  o["allocated"] = t.allocated;
  o["refreshed"] = t.refreshed;
  o["released"] = t.released;
  o["expired"] = t.expired;
  o["bind_errors"] = bind_errors_;
  json::object refused;
  for (const auto& [name, n] : refused_) refused[name] = n;
  o["refused"] = std::move(refused);
  return o;
}

void RelayBindings::register_metrics(platform::Counters& counters) const {
  counters.gauge_fn("satp_relay_bindings", "relay mode bindings held", {},
                    [this] { return static_cast<std::int64_t>(table_.bindings().size()); });
  counters.counter_fn("satp_relay_binding_packets_total", "datagrams repeated by relay bindings",
                      {{"direction", "to_peer"}}, [this] { return sum().to_peer_packets; });
  counters.counter_fn("satp_relay_binding_packets_total", "datagrams repeated by relay bindings",
                      {{"direction", "to_client"}}, [this] { return sum().to_client_packets; });
  counters.counter_fn("satp_relay_binding_filtered_total",
                      "datagrams to a relay binding from neither its client nor its peer", {},
                      [this] { return sum().filtered; });
}

}  // namespace relay_daemon
