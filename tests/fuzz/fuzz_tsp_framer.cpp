// libFuzzer target: the TCP stream framer (both roles) and the server and client sessions fed
// arbitrary bytes (the client both as a dstm-client and as a TEP with queries and heartbeats).
// Invariants: cutting the input at a fuzzer-chosen offset gives the same frames and the same
// error; the sessions never crash and stay within their limits.
//
// Input: byte 0 picks the split point (scaled to the input), byte 1 bit 0 the framer role and
// bit 1 whether the server session starts authenticated; the rest is the stream.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "tsp/client_session.hpp"
#include "tsp/framer.hpp"
#include "tsp/server_session.hpp"

#include "fuzz_check.hpp"

namespace {

struct Cut {
  std::vector<tsp::Frame> frames;
  std::optional<boost::system::error_code> error;
  bool operator==(const Cut&) const = default;
};

Cut cut(tsp::FramerRole role, const std::vector<core::Bytes>& parts) {
  tsp::StreamFramer f{role,
                      tsp::FramerLimits{.max_line = 256, .max_body = 1024, .max_buffered = 2048}};
  Cut out;
  // Slices of at most 512 bytes: with these limits the unconsumed input then never exceeds
  // max_buffered, so the result depends on the content alone, not on where it was cut.
  std::vector<core::Bytes> slices;
  for (auto p : parts) {
    while (p.size() > 512) {
      slices.push_back(p.first(512));
      p = p.subspan(512);
    }
    slices.push_back(p);
  }
  for (auto p : slices) {
    if (auto fed = f.feed(p); !fed) {
      out.error = fed.error();
      return out;
    }
    while (true) {
      auto next = f.next();
      if (!next) {
        out.error = next.error();
        return out;
      }
      if (!*next) break;
      FUZZ_CHECK(next->value().data.size() <= 2048);
      out.frames.push_back(std::move(**next));
    }
  }
  return out;
}

void deterministic(std::span<std::byte> out) {
  static std::uint8_t counter = 0;
  for (auto& b : out) b = std::byte{++counter};
}

std::shared_ptr<const tsp::ServerConfig> server_config() {
  static const auto config = [] {
    auto c = std::make_shared<tsp::ServerConfig>();
    c->tunnel_types = {tsp::TunnelType::V4V6, tsp::TunnelType::V6V4};
    c->sasl.mechanisms = {tsp::Mechanism::Anonymous, tsp::Mechanism::Plain,
                          tsp::Mechanism::DigestMd5};
    c->sasl.verifiers = [](std::string_view user) -> std::optional<tsp::Md5Digest> {
      if (user == "alice") return tsp::digest_verifier("alice", "dstm", "secret");
      return std::nullopt;
    };
    c->sasl.random = deterministic;
    c->limits.max_pending_queries = 4;
    return std::shared_ptr<const tsp::ServerConfig>{c};
  }();
  return config;
}

// Runs the server session over the stream, answering the daemon's requests at once.
void serve(core::Bytes stream, bool authenticated) {
  tsp::ServerSession s{server_config(), tsp::Transport::Tcp,
                       core::Ipv6Address::parse("2001:db8::1").value()};
  s.handle(tsp::Start{});
  if (authenticated)
    s.handle(tsp::BytesReceived{core::as_bytes("VERSION=2.0.2\r\nAUTHENTICATE ANONYMOUS\r\n")});
  auto actions = s.handle(tsp::BytesReceived{stream});
  for (int round = 0; round < 8 && !actions.empty(); ++round) {
    std::vector<tsp::ServerAction> next;
    for (const auto& a : actions) {
      std::vector<tsp::ServerAction> more;
      if (std::holds_alternative<tsp::AllocateLease>(a)) {
        tsp::LeaseOffer offer;
        offer.lifetime = 60;
        more = s.handle(tsp::LeaseAllocated{offer});
      } else if (const auto* l = std::get_if<tsp::LookupMapping>(&a)) {
        more = s.handle(tsp::MappingNotFound{l->query_id, tsp::Status::InvalidIpv4Address});
      } else if (const auto* h = std::get_if<tsp::Heartbeat>(&a)) {
        more = s.handle(tsp::HeartbeatAnswered{
            h->query_id, tsp::Status::Success, 30,
            std::vector<core::Ipv4Address>(h->query_id % (tsp::kMaxWithdrawnPerHeartbeat + 1),
                                           core::Ipv4Address::parse("192.0.2.1").value()),
            h->query_id % 2 == 0});
      } else if (const auto* t = std::get_if<tsp::ArmTimer>(&a)) {
        more = s.handle(tsp::TimerExpired{t->timer, t->generation});
      } else if (const auto* send = std::get_if<tsp::Send>(&a)) {
        FUZZ_CHECK(!send->bytes.empty());
      }
      next.insert(next.end(), more.begin(), more.end());
    }
    actions = std::move(next);
  }
  FUZZ_CHECK(s.pending_queries() <= 4);
}

// Runs a client session (DIGEST-MD5, v4v6 create) over the stream as server replies.
void consume(core::Bytes stream) {
  tsp::ClientConfig c;
  c.mechanisms = {tsp::Mechanism::DigestMd5, tsp::Mechanism::Plain, tsp::Mechanism::Anonymous};
  c.username = "alice";
  c.password = "secret";
  c.server_name = "127.0.0.1";
  c.random = deterministic;
  c.request = tsp::make_tunnel(tsp::TunnelAction::Create, tsp::TunnelType::V4V6);
  tsp::ClientSession s{c};
  s.handle(tsp::Start{});
  s.handle(tsp::BytesReceived{stream});
  s.handle(tsp::RequestDelete{});
  s.handle(tsp::PeerClosed{});
}

// Runs a TEP query session (1.0, ANONYMOUS) with queries and heartbeats submitted up front, a
// window of 2, over the stream as server replies.
void consume_tep(core::Bytes stream) {
  tsp::ClientConfig c;
  c.version = tsp::kVersion1_0;
  c.mechanisms = {tsp::Mechanism::Anonymous};
  c.random = deterministic;
  c.max_in_flight = 2;
  tsp::ClientSession s{c};
  s.handle(tsp::Start{});
  s.handle(tsp::SubmitQuery{1, core::Ipv4Address::parse("198.51.100.7").value()});
  s.handle(tsp::SubmitHeartbeat{2});
  s.handle(tsp::SubmitHeartbeat{3});
  s.handle(tsp::SubmitQuery{4, core::Ipv4Address::parse("198.51.100.8").value()});
  for (const auto& a : s.handle(tsp::BytesReceived{stream})) {
    if (const auto* h = std::get_if<tsp::HeartbeatReply>(&a))
      FUZZ_CHECK(h->withdrawn.size() <= tsp::kMaxWithdrawnPerHeartbeat);
  }
  FUZZ_CHECK(s.in_flight() <= 2);
  s.handle(tsp::PeerClosed{});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto all = std::as_bytes(std::span{data, size});
  const auto stream = all.subspan(2);
  const std::size_t split = stream.size() * data[0] / 255;
  const auto role = (data[1] & 1) ? tsp::FramerRole::Client : tsp::FramerRole::Server;

  const auto whole = cut(role, {stream});
  const auto parts = cut(role, {stream.first(split), stream.subspan(split)});
  FUZZ_CHECK(whole == parts);

  serve(stream, (data[1] & 2) != 0);
  consume(stream);
  consume_tep(stream);
  return 0;
}
