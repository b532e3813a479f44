// libFuzzer target: the UDP codec and both sessions over datagrams. The input is a sequence of
// datagrams, each prefixed by a one-byte length. Invariants: every reply echoes the header of a
// datagram the server received; a re-sent datagram gets the same payload back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <span>
#include <vector>

#include "core/bytes.hpp"
#include "tsp/client_session.hpp"
#include "tsp/server_session.hpp"
#include "tsp/udp.hpp"

#include "fuzz_check.hpp"

namespace {

void deterministic(std::span<std::byte> out) {
  static std::uint8_t counter = 0;
  for (auto& b : out) b = std::byte{++counter};
}

std::shared_ptr<const tsp::ServerConfig> server_config() {
  static const auto config = [] {
    auto c = std::make_shared<tsp::ServerConfig>();
    c->tunnel_types = {tsp::TunnelType::V4V6, tsp::TunnelType::V6V4, tsp::TunnelType::V6UdpV4};
    c->sasl.mechanisms = {tsp::Mechanism::Anonymous, tsp::Mechanism::Plain,
                          tsp::Mechanism::DigestMd5};
    c->sasl.random = deterministic;
    return std::shared_ptr<const tsp::ServerConfig>{c};
  }();
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = std::as_bytes(std::span{data, size});
  std::vector<core::Bytes> datagrams;
  for (std::size_t i = 0; i < input.size();) {
    const std::size_t n = std::to_integer<std::size_t>(input[i++]);
    const std::size_t take = std::min(n, input.size() - i);
    datagrams.push_back(input.subspan(i, take));
    i += take;
  }

  // Codec: parse, re-encode, parse again.
  for (auto d : datagrams) {
    FUZZ_CHECK(tsp::is_signalling(d) == tsp::parse_udp_datagram(d).has_value());
    if (auto p = tsp::parse_udp_datagram(d)) {
      const auto again = tsp::encode_udp_datagram(p->header, p->payload);
      FUZZ_CHECK(again.size() == d.size());
      FUZZ_CHECK(std::equal(again.begin(), again.end(), d.begin()));
    }
  }

  // Server: every reply echoes the header of a received datagram.
  tsp::ServerSession server{server_config(), tsp::Transport::Udp,
                            core::Ipv4Address::parse("192.0.2.1").value()};
  server.handle(tsp::Start{});
  std::set<std::uint64_t> seen;
  for (auto d : datagrams) {
    if (auto p = tsp::parse_udp_datagram(d))
      seen.insert((std::uint64_t{p->header.sequence_word} << 32) | p->header.timestamp);
    auto actions = server.handle(tsp::DatagramReceived{d});
    for (int round = 0; round < 4 && !actions.empty(); ++round) {
      std::vector<tsp::ServerAction> next;
      for (const auto& a : actions) {
        if (const auto* s = std::get_if<tsp::Send>(&a)) {
          auto reply = tsp::parse_udp_datagram(s->bytes);
          FUZZ_CHECK(reply.has_value());
          FUZZ_CHECK(seen.count((std::uint64_t{reply->header.sequence_word} << 32) |
                                reply->header.timestamp) == 1);
        } else if (std::holds_alternative<tsp::AllocateLease>(a)) {
          auto more = server.handle(tsp::LeaseFailed{tsp::Status::NoMoreTunnels, {}});
          next.insert(next.end(), more.begin(), more.end());
        } else if (const auto* l = std::get_if<tsp::LookupMapping>(&a)) {
          auto more = server.handle(
              tsp::MappingFound{l->query_id, tsp::Mapping{l->ipv4, core::Ipv6Address{}, 1}});
          next.insert(next.end(), more.begin(), more.end());
        } else if (const auto* h = std::get_if<tsp::Heartbeat>(&a)) {
          auto more = server.handle(tsp::HeartbeatAnswered{
              h->query_id, tsp::Status::Success, 30, {core::Ipv4Address{0xC6336407u}}, true});
          next.insert(next.end(), more.begin(), more.end());
        }
      }
      actions = std::move(next);
    }
  }

  // Client: the datagrams as server replies.
  tsp::ClientConfig c;
  c.transport = tsp::Transport::Udp;
  c.mechanisms = {tsp::Mechanism::Anonymous};
  c.random = deterministic;
  tsp::ClientSession client{c};
  client.handle(tsp::Start{});
  client.handle(tsp::SubmitQuery{1, core::Ipv4Address{0xC6336407u}});
  client.handle(tsp::SubmitHeartbeat{2});
  for (auto d : datagrams) client.handle(tsp::DatagramReceived{d});
  client.handle(tsp::TimerExpired{tsp::TimerKind::Retransmit, 1});
  return 0;
}
