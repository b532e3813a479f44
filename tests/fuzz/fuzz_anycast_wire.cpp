// libFuzzer target: the ARR/UDP codec and both return-routability state machines. The whole
// input is parsed as one datagram; it is also read as a script of datagrams, each prefixed by a
// length byte and a control byte (addresses, time step), delivered to a Member and a
// Correspondent with a fixed clock and fixed randomness, and every datagram either of them sends
// is delivered to the other (bounded), so that whole exchanges happen. Invariants: a parsed
// message re-encodes to bytes that parse to the same message, canonically; the authenticated
// portion lies in the input; everything the state machines send parses; a member's answers to a
// probe never outweigh the probe; a binding lasts 16 s and names the BU's home address and
// source.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "anycast/correspondent.hpp"
#include "anycast/member.hpp"
#include "anycast/wire.hpp"
#include "fuzz_check.hpp"

namespace {

using anycast::Endpoint;
using anycast::Outgoing;

const auto kAnycast = *core::Ipv6Address::parse("2001:db8:a::1");
const auto kOtherAnycast = *core::Ipv6Address::parse("2001:db8:a::2");
const auto kUnicast = *core::Ipv6Address::parse("2001:db8:1::2");
const auto kClient = *core::Ipv6Address::parse("2001:db8:c::1");
const auto kStranger = *core::Ipv6Address::parse("2001:db8:666::1");
const core::Ipv6Address kAddresses[] = {kAnycast, kOtherAnycast, kUnicast, kClient};
constexpr std::uint16_t kMemberPort = anycast::kDefaultPort;
constexpr std::uint16_t kClientPort = 40000;

// Fixed randomness, the same for every input (each copy counts on its own).
anycast::Random deterministic() {
  return [n = std::uint8_t{0}](std::span<std::uint8_t> out) mutable {
    for (auto& b : out) b = ++n;
  };
}

// Parse, encode, parse again: the same message, and the encoding is a fixed point.
void check_codec(fuzz::Bytes d) {
  auto p = anycast::parse(d);
  if (!p) return;
  FUZZ_CHECK(fuzz::within(p->authenticated, d));
  FUZZ_CHECK(p->authenticated.empty() || p->authenticated.size() + 12 == d.size());
  const auto again = anycast::encode(p->message);
  auto q = anycast::parse(again);
  FUZZ_CHECK(q.has_value());
  FUZZ_CHECK(q->message == p->message);
  FUZZ_CHECK(p->authenticated.empty() == q->authenticated.empty());
  FUZZ_CHECK(anycast::encode(q->message) == again);
}

struct Peers {
  anycast::Member member;
  anycast::Correspondent client;
  anycast::Time now;
  std::deque<Outgoing> in_flight;
};

// Delivers one datagram from `from` to `to`: the member answers what is addressed to it, the
// client the rest. What they send is queued for delivery to the other side.
void deliver(Peers& peers, fuzz::Bytes d, const Endpoint& from, const core::Ipv6Address& to) {
  auto parsed = anycast::parse(d);
  if (!parsed || to == kStranger) return;
  const bool to_member = to != kClient;
  const auto queue = [&](const std::vector<Outgoing>& out) {
    for (const auto& o : out) {
      FUZZ_CHECK(anycast::parse(o.bytes).has_value());
      peers.in_flight.push_back(o);
    }
  };
  const auto& body = parsed->message.body;
  if (to_member) {
    if (const auto* probe = std::get_if<anycast::Probe>(&body)) {
      if (auto out = peers.member.on_probe(peers.now, *probe, from, to)) {
        std::size_t total = 0;
        for (const auto& o : *out) total += o.bytes.size();
        FUZZ_CHECK(total <= d.size());
        queue(*out);
      }
    } else if (const auto* hot = std::get_if<anycast::Hot>(&body)) {
      if (auto out = peers.member.on_hot(peers.now, *hot, from, to)) queue(*out);
    } else if (const auto* cot = std::get_if<anycast::Cot>(&body)) {
      if (auto out = peers.member.on_cot(peers.now, *cot, from, to)) queue(*out);
    } else if (const auto* ba = std::get_if<anycast::BindingAck>(&body)) {
      (void)peers.member.on_binding_ack(peers.now, *ba, parsed->authenticated, from, to);
    }
    FUZZ_CHECK(peers.member.pending() <= peers.member.settings().max_pending);
    return;
  }
  if (const auto* hoti = std::get_if<anycast::Hoti>(&body)) {
    queue({peers.client.on_hoti(peers.now, *hoti, from, to)});
  } else if (const auto* coti = std::get_if<anycast::Coti>(&body)) {
    queue({peers.client.on_coti(peers.now, *coti, from, to)});
  } else if (const auto* bu = std::get_if<anycast::BindingUpdate>(&body)) {
    auto outcome = peers.client.on_binding_update(peers.now, parsed->message.flags, *bu,
                                                  parsed->authenticated, from, to);
    if (!outcome) return;
    if (outcome->binding) {
      FUZZ_CHECK(!outcome->rejected);
      FUZZ_CHECK(outcome->binding->expires == peers.now + anycast::kAnycastBuLifetimeUnit16s);
      FUZZ_CHECK(bu->home_address == outcome->binding->anycast);
      FUZZ_CHECK(outcome->binding->unicast == from.address);
    }
    if (outcome->ack) queue({*outcome->ack});
  }
}

void run_script(fuzz::Bytes input) {
  anycast::MemberSettings ms;
  ms.anycast = {kAnycast, kOtherAnycast};
  ms.unicast = kUnicast;
  ms.max_pending = 4;
  anycast::CorrespondentSettings cs;
  cs.max_sequence_records = 4;
  const anycast::Time t0 = anycast::Time{} + std::chrono::hours{1};
  Peers peers{anycast::Member{ms, deterministic()},
              anycast::Correspondent{cs, t0, deterministic()},
              t0,
              {}};

  for (std::size_t i = 0; i + 2 <= input.size();) {
    const std::size_t n = std::to_integer<std::size_t>(input[i]);
    const auto control = std::to_integer<unsigned>(input[i + 1]);
    i += 2;
    const std::size_t take = std::min(n, input.size() - i);
    const auto d = input.subspan(i, take);
    i += take;
    check_codec(d);
    // Control: bits 0-1 the destination, bit 2 a stranger as the source, bits 3-7 the time step
    // (squared, in 100 ms: up to about 96 s, so nonces and exchanges expire).
    const auto& to = kAddresses[control & 3];
    const auto step = control >> 3;
    peers.now += std::chrono::milliseconds{100 * step * step};
    const bool stranger = (control & 4) != 0;
    const Endpoint from = to == kClient ? Endpoint{stranger ? kStranger : kUnicast, kMemberPort}
                                        : Endpoint{stranger ? kStranger : kClient, kClientPort};
    deliver(peers, d, from, to);
    // Whatever the two send to each other, delivered in order, bounded.
    for (int hops = 0; hops < 16 && !peers.in_flight.empty(); ++hops) {
      const Outgoing o = std::move(peers.in_flight.front());
      peers.in_flight.pop_front();
      const Endpoint sender{o.source, o.destination.address == kClient ? kMemberPort : kClientPort};
      deliver(peers, o.bytes, sender, o.destination.address);
    }
    peers.in_flight.clear();
    peers.member.expire(peers.now);
    peers.client.expire(peers.now);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = std::as_bytes(std::span{data, size});
  check_codec(input);
  run_script(input);
  return 0;
}
