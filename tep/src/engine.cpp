#include "tep/engine.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "core/icmp.hpp"
#include "core/ip_protocol.hpp"
#include "core/ipv4.hpp"

namespace tep {

namespace {

// Room for one encapsulated packet of the largest inner size.
constexpr std::size_t kFrameSize = kEncapOverhead + 65535;
// An ICMPv4 error about an IPv4 packet: 20 + 8 + at most 60 + 8 quoted bytes.
constexpr std::size_t kIcmpErrorSize = 128;

void add_to(std::uint64_t& packets, std::uint64_t& bytes, std::size_t n) noexcept {
  ++packets;
  bytes += n;
}

}  // namespace

Engine::Engine(EngineConfig config, Sink& sink)
    : config_{std::move(config)},
      sink_{sink},
      bindings_{config_.bindings},
      queue_{config_.queue},
      icmp_{config_.icmp_rate, config_.icmp_burst},
      scratch_(kFrameSize),
      fragment_(kFrameSize) {
  assert(!config_.pool.empty());
  assert(config_.tunnel_mtu >= core::kIpv6MinMtu);
}

bool Engine::in_pool(core::Ipv4Address a) const noexcept {
  return std::any_of(config_.pool.begin(), config_.pool.end(),
                     [&](const core::Ipv4Prefix& p) { return p.contains(a); });
}

// ---- tunnel -> IPv4 ----

void Engine::from_tunnel(core::MutableBytes ipv6_packet, TimePoint now) {
  auto d = decapsulate(ipv6_packet);
  if (!d) {
    ++counters_.decap_drops[static_cast<std::size_t>(d.error())];
    return;
  }
  const auto ip = core::parse_ipv4(d->inner);
  assert(ip);  // decapsulate checked the inner header
  const auto source = ip->header.src;
  const auto& outer_source = d->outer.src;
  if (!in_pool(source)) {
    ++counters_.source_outside_pool;
    return;
  }
  if (Binding* b = bindings_.find(source, now)) {
    if (b->client != outer_source) {
      ++counters_.spoofed;
      return;
    }
    b->origin = BindingOrigin::Traffic;  // learned from a query, now the client sends here too
    deliver_from_client(ip->packet, outer_source, *b, now);
    return;
  }
  if (bindings_.is_negative(source, now)) {
    ++counters_.source_not_leased;
    return;
  }
  // Unknown source: learn it only once the server confirms the lease.
  enqueue(source, Direction::FromClient, outer_source, ip->packet, now);
}

void Engine::deliver_from_client(core::Bytes inner, const core::Ipv6Address& outer_source,
                                 Binding& binding, TimePoint now) {
  (void)now;
  add_to(binding.packets_from_client, binding.bytes_from_client, inner.size());
  if (config_.keepalive) {
    const auto ip = core::parse_ipv4(inner);
    if (ip && ip->header.dst == *config_.keepalive) {
      answer_keepalive(inner, outer_source);
      return;
    }
  }
  add_to(counters_.decapsulated, counters_.decapsulated_bytes, inner.size());
  sink_.to_ipv4(inner);
}

// The client's keepalive (draft-jaehwoon-dstm-multitep-02 via TSP's <keepalive>): an echo
// request to the keepalive address inside the tunnel, answered here without involving the
// IPv4 side. Anything else sent to that address is dropped.
void Engine::answer_keepalive(core::Bytes inner, const core::Ipv6Address& client) {
  const auto ip = core::parse_ipv4(inner);
  if (!ip || ip->header.protocol != core::ip_protocol::kIcmp || ip->is_fragment()) return;
  const auto icmp = core::parse_icmpv4(ip->payload);
  if (!icmp || icmp->type != core::icmpv4_type::kEchoRequest || icmp->code != 0 ||
      !core::icmpv4_checksum_ok(*icmp))
    return;

  core::Ipv4Header h;
  h.dscp = ip->header.dscp;
  h.ttl = 64;
  h.protocol = core::ip_protocol::kIcmp;
  h.src = *config_.keepalive;
  h.dst = ip->header.src;
  core::ByteWriter w{core::MutableBytes{scratch_}.subspan(kEncapOverhead)};
  const auto echo_length = icmp->message.size();
  if (!core::write_ipv4_header(w, h, echo_length)) return;
  const core::IcmpEcho echo{
      .id = icmp->echo_id(), .sequence = icmp->echo_sequence(), .data = icmp->body};
  if (!core::write_icmpv4_echo(w, core::EchoKind::reply, echo)) return;
  auto outer = encapsulate(core::MutableBytes{scratch_}.first(kEncapOverhead + w.size()),
                           kEncapOverhead, Endpoints{config_.local, client}, config_.encap);
  if (!outer) return;
  ++counters_.keepalive_replies;
  add_to(counters_.encapsulated, counters_.encapsulated_bytes, outer->size());
  sink_.to_tunnel(*outer);
}

// ---- IPv4 -> tunnel ----

void Engine::from_ipv4(core::MutableBytes frame, std::size_t headroom, TimePoint now) {
  assert(headroom >= kEncapOverhead && headroom <= frame.size());
  const auto ip = core::parse_ipv4(frame.subspan(headroom));
  if (!ip) {
    ++counters_.ipv4_invalid;
    return;
  }
  const auto destination = ip->header.dst;
  if (!in_pool(destination)) {
    ++counters_.destination_outside_pool;
    return;
  }
  if (Binding* b = bindings_.find(destination, now)) {
    send_to_client(frame.subspan(headroom - kEncapOverhead), kEncapOverhead, ip->packet, *b, now);
    return;
  }
  if (bindings_.is_negative(destination, now)) {
    ++counters_.destination_not_leased;
    send_unreachable(ip->packet, now);
    return;
  }
  enqueue(destination, Direction::ToClient, {}, ip->packet, now);
}

// `inner` is the IPv4 packet at frame[headroom] (exactly its total length).
void Engine::send_to_client(core::MutableBytes frame, std::size_t headroom, core::Bytes inner,
                            Binding& binding, TimePoint now) {
  const Endpoints ends{config_.local, binding.client};
  const auto verdict = check_mtu(inner, config_.tunnel_mtu);
  if (!verdict) {
    ++counters_.ipv4_invalid;
    return;
  }
  switch (*verdict) {
    case MtuVerdict::Fits: {
      auto outer = encapsulate(frame.first(headroom + inner.size()), headroom, ends, config_.encap);
      if (!outer) {
        ++counters_.ipv4_invalid;
        return;
      }
      add_to(binding.packets_to_client, binding.bytes_to_client, inner.size());
      add_to(counters_.encapsulated, counters_.encapsulated_bytes, outer->size());
      sink_.to_tunnel(*outer);
      return;
    }
    case MtuVerdict::NeedsFragmentation: {
      const auto count = fragment_count(inner, config_.tunnel_mtu);
      if (!count) {
        ++counters_.ipv4_invalid;
        return;
      }
      ++counters_.fragmented;
      add_to(binding.packets_to_client, binding.bytes_to_client, inner.size());
      for (std::size_t i = 0; i < *count; ++i) {
        auto piece = write_fragment(inner, config_.tunnel_mtu, i,
                                    core::MutableBytes{fragment_}.subspan(kEncapOverhead));
        if (!piece) return;
        auto outer =
            encapsulate(core::MutableBytes{fragment_}.first(kEncapOverhead + piece->size()),
                        kEncapOverhead, ends, config_.encap);
        if (!outer) return;
        add_to(counters_.encapsulated, counters_.encapsulated_bytes, outer->size());
        sink_.to_tunnel(*outer);
      }
      return;
    }
    case MtuVerdict::TooBigDontFragment: {
      if (!core::icmpv4_error_allowed(inner) || !icmp_.allow(now)) {
        ++counters_.icmp_rate_limited;
        return;
      }
      std::array<std::byte, kIcmpErrorSize> out{};
      auto icmp = write_fragmentation_needed(out, config_.router, inner, config_.tunnel_mtu);
      if (!icmp) return;
      ++counters_.frag_needed_sent;
      sink_.icmp_error(*icmp);
      return;
    }
  }
}

void Engine::send_unreachable(core::Bytes offending, TimePoint now) {
  if (!core::icmpv4_error_allowed(offending) || !icmp_.allow(now)) {
    ++counters_.icmp_rate_limited;
    return;
  }
  auto packet = core::build_icmpv4_error(config_.router, core::icmpv4_type::kDestinationUnreachable,
                                         core::icmpv4_unreachable::kHost, 0, offending);
  if (!packet) return;
  ++counters_.unreachable_sent;
  sink_.icmp_error(*packet);
}

// ---- the miss queue and the server's answers ----

void Engine::enqueue(core::Ipv4Address address, Direction direction, const core::Ipv6Address& outer,
                     core::Bytes packet, TimePoint now) {
  switch (queue_.push(address, direction, outer, packet, now)) {
    case MissQueue::Pushed::FirstForAddress:
      ++counters_.queued;
      ++counters_.queries;
      sink_.query(address);
      return;
    case MissQueue::Pushed::Queued:
      ++counters_.queued;
      return;
    case MissQueue::Pushed::AddressFull:
      ++counters_.queue_address_full;
      return;
    case MissQueue::Pushed::QueueFull:
      ++counters_.queue_full;
      return;
  }
}

void Engine::answer_leased(core::Ipv4Address address, const core::Ipv6Address& client,
                           std::chrono::seconds lifetime, TimePoint now) {
  if (lifetime.count() <= 0) {  // a lease in its last second: as good as gone
    answer_not_leased(address, now);
    return;
  }
  ++counters_.answers_leased;
  auto waiting = queue_.take(address);
  const bool from_client = std::any_of(waiting.begin(), waiting.end(), [&](const auto& p) {
    return p.direction == Direction::FromClient && p.outer_source == client;
  });
  const auto origin = from_client ? BindingOrigin::Traffic : BindingOrigin::Query;
  Binding overflow{.client = client, .expires = now + lifetime, .learned = now, .origin = origin};
  Binding* binding = &overflow;
  switch (bindings_.install(address, client, lifetime, now, origin)) {
    case BindingTable::Installed::New:
      ++(from_client ? counters_.bindings_learned_traffic : counters_.bindings_learned_query);
      binding = bindings_.find(address, now);
      break;
    case BindingTable::Installed::Updated:
      binding = bindings_.find(address, now);
      break;
    case BindingTable::Installed::Full:
      // Still deliver what waited; later packets ask again.
      ++counters_.bindings_table_full;
      break;
  }
  assert(binding != nullptr);
  for (auto& p : waiting) {
    if (p.direction == Direction::FromClient) {
      if (p.outer_source == client)
        deliver_from_client(p.packet, p.outer_source, *binding, now);
      else
        ++counters_.spoofed;
      continue;
    }
    std::memcpy(scratch_.data() + kEncapOverhead, p.packet.data(), p.packet.size());
    const core::MutableBytes frame{scratch_.data(), kEncapOverhead + p.packet.size()};
    send_to_client(frame, kEncapOverhead, frame.subspan(kEncapOverhead), *binding, now);
  }
}

void Engine::answer_not_leased(core::Ipv4Address address, TimePoint now) {
  ++counters_.answers_not_leased;
  bindings_.install_negative(address, now);
  for (const auto& p : queue_.take(address)) {
    if (p.direction == Direction::FromClient) {
      ++counters_.source_not_leased;
    } else {
      ++counters_.destination_not_leased;
      send_unreachable(p.packet, now);
    }
  }
}

void Engine::answer_failed(core::Ipv4Address address, TimePoint now) {
  ++counters_.answers_failed;
  for (const auto& p : queue_.take(address)) {
    ++counters_.query_failed;
    if (p.direction == Direction::ToClient) send_unreachable(p.packet, now);
  }
}

void Engine::withdraw(core::Ipv4Address address) {
  if (bindings_.erase(address)) ++counters_.withdrawn;
}

void Engine::flush() {
  ++counters_.flushes;
  bindings_.clear();
}

void Engine::tick(TimePoint now) {
  bindings_.expire(now);
  for (const auto& expired : queue_.expire(now)) {
    for (const auto& p : expired.packets) {
      ++counters_.queue_timeout;
      if (p.direction == Direction::ToClient) send_unreachable(p.packet, now);
    }
  }
}

}  // namespace tep
