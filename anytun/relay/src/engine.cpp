// The forwarding engine: connections by MUX, opening, routing and sealing (see engine.hpp).
#include "relay/engine.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>

namespace relay {

std::uint64_t DropCounts::total() const noexcept {
  std::uint64_t n = 0;
  for (const auto& [reason, count] : by_reason) n += count;
  return n;
}

namespace {

// The replay window keeps one slot per sender id; a cluster has a handful of nodes.
constexpr std::size_t kMaxSenders = satp::kDefaultMaxSenders;
// A peer whose counter restarts (anytun starts at 0) is recognised at its 4th packet in a row
// below the window (satp/replay.hpp says what that costs).
constexpr std::uint32_t kRestartAfter = 4;
// The number a connection stops at (never sent, so that a saturated reservation in the daemon's
// state file means "exhausted" too).
constexpr std::uint32_t kLastSeq = 0xffffffffu;

enum class Family { None, V4, V6 };

// The IP version of an inner packet, if it is at least a whole fixed header of that version.
Family family_of(core::Bytes packet) noexcept {
  if (packet.size() >= 20 && (std::to_integer<unsigned>(packet[0]) >> 4) == 4) return Family::V4;
  if (packet.size() >= 40 && (std::to_integer<unsigned>(packet[0]) >> 4) == 6) return Family::V6;
  return Family::None;
}

std::uint16_t payload_type(Family f) noexcept {
  return f == Family::V4 ? satp::kPayloadIpv4 : satp::kPayloadIpv6;
}

// Multicast and broadcast destinations go to every client (draft section 1.1.1.1: "one or more
// clients depending on the routing decision").
bool is_group_destination(core::Bytes packet, Family f) noexcept {
  if (f == Family::V4) {
    const auto first = std::to_integer<unsigned>(packet[16]);
    const bool broadcast = std::all_of(packet.begin() + 16, packet.begin() + 20,
                                       [](std::byte b) { return b == std::byte{0xff}; });
    return (first >> 4) == 0xe || broadcast;
  }
  return packet[24] == std::byte{0xff};
}

}  // namespace

struct Engine::Impl {
  struct Connection {
    ConnectionSpec spec;
    satp::Codec codec;
    satp::ReplayWindow window;
    std::optional<Peer> peer;
    std::uint32_t tx_seq = 0;
    std::vector<std::uint16_t> senders;  // sender ids seen, for rx_marks()
    ConnectionStats stats;
  };

  EngineOptions options;
  std::unordered_map<std::uint16_t, std::unique_ptr<Connection>> connections;
  PrefixTable routes;
  std::optional<SourceNat> nat;
  DropCounts drops;
  std::array<std::byte, satp::kMaxPacket> out{};

  explicit Impl(EngineOptions o) : options{std::move(o)} {
    if (options.nat) nat.emplace(*options.nat, options.seed);
  }

  Connection* find(std::uint16_t mux) noexcept {
    const auto it = connections.find(mux);
    return it == connections.end() ? nullptr : it->second.get();
  }

  void seal_to(Connection& c, std::uint16_t type, core::Bytes payload, Sink& sink) {
    if (!c.peer) {
      c.stats.drops.add("no_peer");
      return;
    }
    // SATP has no rekeying: past the last number, the next would reuse keystream (seq, sender
    // id and MUX make the per-packet keys). The connection falls silent until it is given new
    // keys; its drops say why.
    if (c.tx_seq == kLastSeq) {
      c.stats.drops.add("seq_exhausted");
      return;
    }
    const satp::Header header{c.tx_seq, options.sender_id, c.spec.mux};
    const auto sealed = c.codec.seal(header, type, payload, out);
    if (!sealed) {
      c.stats.drops.add(satp::to_string(static_cast<satp::Errc>(sealed.error().value())));
      return;
    }
    ++c.tx_seq;
    ++c.stats.tx_packets;
    c.stats.tx_bytes += payload.size();
    sink.to_peer(*c.peer, *sealed);
  }

  void to_group(const Connection* except, core::Bytes packet, std::uint16_t type, Sink& sink) {
    for (auto& [mux, c] : connections)
      if (c.get() != except && c->peer) seal_to(*c, type, packet, sink);
  }

  void route_inner(Connection& from, core::MutableBytes frame, std::size_t offset,
                   std::size_t length, Sink& sink, Clock::time_point now) {
    const auto packet = frame.subspan(offset, length);
    const auto family = family_of(packet);
    if (family == Family::None) {
      from.stats.drops.add(to_string(Errc::NotIp));
      return;
    }
    if (is_group_destination(packet, family)) {
      to_group(&from, packet, payload_type(family), sink);
      sink.to_tun(frame, offset, length);
      return;
    }
    if (const auto mux = routes.lookup_destination(packet)) {
      if (*mux == from.spec.mux) {
        from.stats.drops.add("loop");
        return;
      }
      if (auto* to = find(*mux)) {
        seal_to(*to, payload_type(family), packet, sink);
        return;
      }
    }
    if (from.spec.open_tunnel && nat) {
      if (const auto r = nat->outbound(from.spec.mux, packet, now); !r) {
        from.stats.drops.add(to_string(static_cast<Errc>(r.error().value())));
        return;
      }
    }
    sink.to_tun(frame, offset, length);
  }
};

Engine::Engine(EngineOptions options) : impl_{std::make_unique<Impl>(std::move(options))} {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

satp::Result<void> Engine::add(const ConnectionSpec& spec, std::uint32_t tx_seq) {
  auto codec = satp::Codec::create(spec.settings, spec.key, spec.salt);
  if (!codec) return codec.error();
  auto& slot = impl_->connections[spec.mux];
  auto c = std::make_unique<Impl::Connection>(
      Impl::Connection{spec,
                       std::move(*codec),
                       satp::ReplayWindow{spec.window, kMaxSenders, kRestartAfter},
                       spec.peer,
                       tx_seq,
                       {},
                       {}});
  if (slot) {
    c->stats = slot->stats;
    if (!c->peer) c->peer = slot->peer;
    const bool same_keys = slot->spec.key == spec.key && slot->spec.salt == spec.salt &&
                           slot->spec.settings == spec.settings && slot->spec.window == spec.window;
    if (same_keys) {
      c->window = std::move(slot->window);
      c->senders = std::move(slot->senders);
      c->tx_seq = std::max(tx_seq, slot->tx_seq);
    }
  }
  slot = std::move(c);
  impl_->routes.erase_mux(spec.mux);
  for (const auto& p : spec.routes) impl_->routes.insert(p, spec.mux);
  return {};
}

bool Engine::remove(std::uint16_t mux) {
  if (impl_->connections.erase(mux) == 0) return false;
  impl_->routes.erase_mux(mux);
  if (impl_->nat) impl_->nat->forget(mux);
  return true;
}

bool Engine::contains(std::uint16_t mux) const noexcept {
  return impl_->find(mux) != nullptr;
}

std::vector<std::uint16_t> Engine::muxes() const {
  std::vector<std::uint16_t> out;
  for (const auto& [mux, c] : impl_->connections) out.push_back(mux);
  std::sort(out.begin(), out.end());
  return out;
}

const ConnectionSpec* Engine::spec(std::uint16_t mux) const noexcept {
  const auto* c = impl_->find(mux);
  return c ? &c->spec : nullptr;
}

const ConnectionStats* Engine::stats(std::uint16_t mux) const noexcept {
  const auto* c = impl_->find(mux);
  return c ? &c->stats : nullptr;
}

std::optional<Peer> Engine::peer(std::uint16_t mux) const noexcept {
  const auto* c = impl_->find(mux);
  return c ? c->peer : std::nullopt;
}

void Engine::set_peer(std::uint16_t mux, const std::optional<Peer>& peer) noexcept {
  if (auto* c = impl_->find(mux)) c->peer = peer;
}

std::uint32_t Engine::tx_seq(std::uint16_t mux) const noexcept {
  const auto* c = impl_->find(mux);
  return c ? c->tx_seq : 0;
}

void Engine::raise_tx_seq(std::uint16_t mux, std::uint32_t seq) noexcept {
  if (auto* c = impl_->find(mux)) c->tx_seq = std::max(c->tx_seq, seq);
}

std::vector<std::pair<std::uint16_t, std::uint32_t>> Engine::rx_marks(std::uint16_t mux) const {
  std::vector<std::pair<std::uint16_t, std::uint32_t>> out;
  if (const auto* c = impl_->find(mux))
    for (const auto sender : c->senders)
      if (const auto max = c->window.high_water(sender)) out.emplace_back(sender, *max);
  return out;
}

void Engine::raise_rx(std::uint16_t mux, std::uint16_t sender_id, std::uint32_t max) noexcept {
  auto* c = impl_->find(mux);
  if (!c || !c->window.raise_to(sender_id, max)) return;
  if (std::find(c->senders.begin(), c->senders.end(), sender_id) == c->senders.end())
    c->senders.push_back(sender_id);
}

void Engine::from_network(const Peer& from, core::MutableBytes frame, std::size_t offset,
                          std::size_t length, Sink& sink, Clock::time_point now) {
  auto& impl = *impl_;
  const auto packet = frame.subspan(offset, length);
  const auto header = satp::read_header(packet);
  if (!header) {
    impl.drops.add(satp::to_string(satp::Errc::Truncated));
    return;
  }
  auto* c = impl.find(header->mux);
  if (!c) {
    impl.drops.add(to_string(Errc::UnknownMux));
    return;
  }
  const auto opened = c->codec.open(packet, c->window);
  if (!opened) {
    c->stats.drops.add(satp::to_string(static_cast<satp::Errc>(opened.error().value())));
    return;
  }
  // Bounded like the replay window's senders: with the window off, every sender id would pass.
  if (c->senders.size() < kMaxSenders &&
      std::find(c->senders.begin(), c->senders.end(), header->sender_id) == c->senders.end())
    c->senders.push_back(header->sender_id);
  c->stats.sender_restarts = c->window.restarts();
  if (c->peer != from) {
    c->peer = from;
    ++c->stats.peer_changes;
    sink.peer_changed(c->spec.mux, from);
  }
  ++c->stats.rx_packets;
  c->stats.rx_bytes += opened->payload.size();
  const auto inner_offset = static_cast<std::size_t>(opened->payload.data() - frame.data());
  switch (opened->payload_type) {
    case satp::kPayloadIpv4:
    case satp::kPayloadIpv6:
      impl.route_inner(*c, frame, inner_offset, opened->payload.size(), sink, now);
      return;
    case control::kPayloadType: {
      const auto message = control::decode(opened->payload);
      if (!message) {
        c->stats.drops.add(to_string(static_cast<Errc>(message.error().value())));
        return;
      }
      ++c->stats.control;
      sink.control(c->spec.mux, from, *message);
      return;
    }
    default:
      c->stats.drops.add(satp::to_string(satp::Errc::BadPayloadType));
  }
}

void Engine::from_tun(core::MutableBytes frame, std::size_t offset, std::size_t length, Sink& sink,
                      Clock::time_point now) {
  auto& impl = *impl_;
  const auto packet = frame.subspan(offset, length);
  const auto family = family_of(packet);
  if (family == Family::None) {
    impl.drops.add(to_string(Errc::NotIp));
    return;
  }
  if (impl.nat && impl.nat->is_inbound(packet)) {
    const auto mux = impl.nat->inbound(packet, now);
    if (!mux) {
      impl.drops.add(to_string(static_cast<Errc>(mux.error().value())));
      return;
    }
    if (auto* c = impl.find(*mux))
      impl.seal_to(*c, payload_type(family), packet, sink);
    else
      impl.drops.add(to_string(Errc::UnknownMux));
    return;
  }
  if (is_group_destination(packet, family)) {
    impl.to_group(nullptr, packet, payload_type(family), sink);
    return;
  }
  auto mux = impl.routes.lookup_destination(packet);
  if (!mux) mux = impl.options.default_mux;
  auto* c = mux ? impl.find(*mux) : nullptr;
  if (!c) {
    impl.drops.add(to_string(Errc::NoRoute));
    return;
  }
  impl.seal_to(*c, payload_type(family), packet, sink);
}

Result<void> Engine::send_control(std::uint16_t mux, const control::Message& message, Sink& sink) {
  auto* c = impl_->find(mux);
  if (!c) return Errc::UnknownMux;
  if (!c->peer) return Errc::NoRoute;
  std::array<std::byte, control::kMaxMessage> bytes{};
  const auto n = control::encode(message, bytes);
  if (!n) return n.error();
  impl_->seal_to(*c, control::kPayloadType, std::span{bytes}.first(*n), sink);
  return {};
}

const PrefixTable& Engine::routes() const noexcept {
  return impl_->routes;
}
SourceNat* Engine::nat() noexcept {
  return impl_->nat ? &*impl_->nat : nullptr;
}
const SourceNat* Engine::nat() const noexcept {
  return impl_->nat ? &*impl_->nat : nullptr;
}
const DropCounts& Engine::drops() const noexcept {
  return impl_->drops;
}

void Engine::tick(Clock::time_point now) {
  if (impl_->nat) impl_->nat->expire(now);
}

}  // namespace relay
