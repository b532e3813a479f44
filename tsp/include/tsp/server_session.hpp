// The server side of one TSP session (one TCP connection or one UDP peer), as a pure state
// machine. It knows nothing of pools or leases: it asks for them with actions (AllocateLease,
// LookupMapping, ...) and the daemon answers with events (LeaseAllocated, MappingFound, ...),
// from which the session composes the XML replies.
//
//   AwaitVersion --VERSION--> AwaitAuthenticate --AUTHENTICATE--> Authenticating --> Authenticated
//   Authenticated --create--> AwaitLease --LeaseAllocated--> AwaitAccept --accept--> Established
//                                                       (1.0.x: no accept step)  --^
//   Authenticated --query--> LookupMapping ... answers in request order (pipelined, TCP)
//   Authenticated --heartbeat--> Heartbeat ... in the same ordered answer queue as queries
//
// Policy decided here (docs/tsp.md): a v4v6 create must name the transport's source IPv6 as the
// client address (502 otherwise); a prefix request from an anonymous user gets 522; v6anyv4 is
// resolved against the served types (v6udpv4 when a UDP peer's address differs from the one it
// reports, i.e. it is behind a NAT).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/address.hpp"
#include "tsp/framer.hpp"
#include "tsp/message.hpp"
#include "tsp/protocol.hpp"
#include "tsp/sasl.hpp"
#include "tsp/session.hpp"
#include "tsp/status.hpp"
#include "tsp/udp.hpp"

namespace tsp {

struct ServerLimits {
  FramerLimits framer{};
  XmlLimits xml{};
  // Unanswered pipelined queries and heartbeats together; more input waits.
  std::size_t max_pending_queries = 64;
  unsigned max_auth_failures = 3;  // 300 replies before the session is closed
};

struct ServerDeadlines {
  Duration handshake{std::chrono::seconds{30}};    // connect to authenticated
  Duration command{std::chrono::seconds{60}};      // authenticated, no request yet
  Duration backend{std::chrono::seconds{10}};      // waiting for the daemon's answer (any kind)
  Duration accept{std::chrono::seconds{30}};       // offer sent, no accept/reject yet
  Duration query_idle{std::chrono::seconds{300}};  // a query session with nothing outstanding
  Duration digest_pause{std::chrono::milliseconds{200}};  // TCP: rspauth, pause, 200 Success
  Duration udp_linger{std::chrono::seconds{60}};   // a closed UDP session answers retransmits
  Duration lease_grace{std::chrono::seconds{60}};  // Established closes at lifetime + grace
};

struct ServerConfig {
  // Served and advertised (CAPABILITY order). Requests for other types get 303.
  std::vector<TunnelType> tunnel_types{TunnelType::V4V6};
  // Mechanisms offered (CAPABILITY order), realm, verifier lookup, nonce source.
  SaslServerConfig sasl{.mechanisms = {Mechanism::DigestMd5, Mechanism::Plain},
                        .realm = "dstm",
                        .verifiers = {},
                        .random = system_random_source()};
  bool allow_v1 = true;                // 1.0 (TEP profile) and 1.0.x (no accept step)
  bool require_source_address = true;  // v4v6: client IPv6 must equal the transport source
  // Non-empty: an unsupported version is redirected (1302 + this list) instead of getting 302.
  std::vector<Address> redirect_brokers;
  ServerLimits limits{};
  ServerDeadlines deadlines{};
};

// What the daemon decided for a create.
struct LeaseOffer {
  core::Ipv4Address client_ipv4;                 // v4v6: the leased temporary IPv4
  std::optional<core::Ipv6Address> client_ipv6;  // default: the address the client requested
  core::Ipv4Address server_ipv4;                 // v4v6: the TEP's IPv4
  core::Ipv6Address server_ipv6;                 // v4v6: the TEP's IPv6 tunnel endpoint
  std::uint32_t lifetime = 0;                    // seconds
  core::Ipv6Address dns_server;                  // always sent (gogoc crashes without one)
  std::optional<Keepalive> keepalive;            // omitted: the client runs no keepalive
  std::optional<Prefix> prefix;                  // delegated to a router client
};

// ---- actions ----

// Allocate (or renew: same client, same IPv4) a lease, then feed LeaseAllocated or LeaseFailed.
struct AllocateLease {
  TunnelType type = TunnelType::V4V6;  // resolved (never v6anyv4)
  Identity identity;
  std::optional<core::Ipv6Address> client_ipv6;  // v4v6: verified transport source
  std::optional<core::Ipv4Address> client_ipv4;  // v6 types: the client's (possibly NATed) IPv4
  std::optional<std::uint32_t> lifetime;         // requested, if any
  std::optional<std::uint32_t> keepalive_interval;
  std::optional<Prefix> prefix;  // router request
  bool operator==(const AllocateLease&) const = default;
};

// The client accepted the offer (2.0.x), or it was sent (1.0.x): the lease is in use.
struct ConfirmLease {
  core::Ipv4Address ipv4;
  bool operator==(const ConfirmLease&) const = default;
};

enum class ReleaseReason {
  Rejected,     // the client sent reject
  NotAccepted,  // no accept before the deadline, or the connection closed before it
  Deleted,      // the client sent delete
  Abandoned,    // allocated after the session had already ended
};

// Give the lease back. ipv4 is set for an offer this session made; a delete from a new session
// carries only who asks (identity, client_ipv6).
struct ReleaseLease {
  ReleaseReason reason = ReleaseReason::Deleted;
  Identity identity;
  std::optional<core::Ipv6Address> client_ipv6;
  std::optional<core::Ipv4Address> ipv4;
  bool operator==(const ReleaseLease&) const = default;
};

// Find who holds ipv4, then feed MappingFound or MappingNotFound with the same query_id.
struct LookupMapping {
  std::uint64_t query_id = 0;
  core::Ipv4Address ipv4;
  Identity identity;  // the querying TEP, for the daemon's policy
  bool operator==(const LookupMapping&) const = default;
};

// A TEP heartbeat (extension, docs/tsp.md): note the TEP alive, collect the mappings withdrawn
// since its previous heartbeat, then feed HeartbeatAnswered with the same query_id. query_id
// shares the numbering of LookupMapping (one ordered answer queue).
struct Heartbeat {
  std::uint64_t query_id = 0;
  Identity identity;  // the TEP, for the daemon's policy (not a TEP: answer 300)
  bool operator==(const Heartbeat&) const = default;
};

using ServerAction = std::variant<Send, ArmTimer, CancelTimer, AllocateLease, ConfirmLease,
                                  ReleaseLease, LookupMapping, Heartbeat, Close>;

// ---- events ----

struct LeaseAllocated {
  LeaseOffer offer;
};
// status is sent to the client; with brokers, as a redirect (1000 + status) to them.
struct LeaseFailed {
  Status status = Status::NoMoreTunnels;
  std::vector<Address> brokers;
};
struct MappingFound {
  std::uint64_t query_id = 0;
  Mapping mapping;
};
struct MappingNotFound {
  std::uint64_t query_id = 0;
  Status status = Status::InvalidIpv4Address;
};
// The answer to Heartbeat. Success: "200 Success" with a heartbeat element whose lifetime is
// `interval` (seconds until the next heartbeat), listing `withdrawn` (at most
// kMaxWithdrawnPerHeartbeat: more is a daemon bug, asserted; without asserts the answer becomes
// flush="yes" with no list, which is still correct) and flush="yes" when `flush`. Any other
// status: the status line alone (e.g. AuthenticationFailed, 300, for an identity that is not a
// TEP); interval, withdrawn and flush are then ignored.
struct HeartbeatAnswered {
  std::uint64_t query_id = 0;
  Status status = Status::Success;
  std::uint32_t interval = 0;
  std::vector<core::Ipv4Address> withdrawn;
  bool flush = false;
};

using ServerEvent =
    std::variant<Start, BytesReceived, DatagramReceived, TimerExpired, LeaseAllocated, LeaseFailed,
                 MappingFound, MappingNotFound, HeartbeatAnswered, PeerClosed>;

enum class ServerState {
  AwaitVersion,
  AwaitAuthenticate,
  Authenticating,  // SASL exchange in progress
  Authenticated,   // waiting for a request; also while queries/heartbeats are outstanding
  AwaitLease,      // AllocateLease sent
  AwaitAccept,     // offer sent (2.0.x)
  Established,     // tunnel in use; TCP stays open for its life
  Closed,
};

class ServerSession {
 public:
  // config is shared by the daemon's sessions and must not change while they run.
  ServerSession(std::shared_ptr<const ServerConfig> config, Transport transport, PeerAddress peer);

  // The state transition: the actions, in order. Start must come first.
  std::vector<ServerAction> handle(const ServerEvent& event);

  ServerState state() const noexcept { return state_; }
  const std::optional<Version>& version() const noexcept { return version_; }
  const std::optional<Identity>& identity() const noexcept { return identity_; }
  // Unanswered queries and heartbeats.
  std::size_t pending_queries() const noexcept { return queries_.size(); }

 private:
  // A query or a heartbeat, answered in request order.
  struct PendingQuery {
    std::uint64_t id = 0;
    bool heartbeat = false;
    std::optional<Endpoint> tep;  // query: the request's <client> (the querying TEP)
    std::optional<std::string> answer;
  };
  struct PendingCreate {
    TunnelType type = TunnelType::V4V6;
    std::optional<core::Ipv6Address> client_ipv6;
    std::optional<core::Ipv4Address> client_ipv4;
  };

  using Actions = std::vector<ServerAction>;

  void on_start(Actions& out);
  void on_bytes(Actions& out, core::Bytes data);
  void on_datagram(Actions& out, core::Bytes datagram);
  void on_timer(Actions& out, const TimerExpired& t);
  void on_lease_allocated(Actions& out, const LeaseOffer& offer);
  void on_lease_failed(Actions& out, const LeaseFailed& f);
  PendingQuery* unanswered(std::uint64_t id, bool heartbeat) noexcept;
  void on_answered(Actions& out);
  void on_peer_closed(Actions& out);

  void pump(Actions& out);
  bool blocked() const noexcept;
  void process(Actions& out, Frame frame);
  void process_line_phase(Actions& out, const Frame& frame);
  void process_command(Actions& out, const Frame& frame);
  void handle_create(Actions& out, const Tunnel& t);
  void handle_query(Actions& out, const Tunnel& t);
  void handle_heartbeat(Actions& out, const Tunnel& t);
  void handle_sasl_step(Actions& out, SaslServer::Step step);
  void flush_queries(Actions& out);

  void reply(Actions& out, const std::string& message);
  void defer_reply(Actions& out, std::string message);
  void reply_status(Actions& out, Status s);
  void fail(Actions& out, Status s, Errc reason);
  void close(Actions& out, boost::system::error_code reason);
  void arm_phase(Actions& out, Duration after);
  void release(Actions& out, ReleaseReason reason);
  bool line_phase() const noexcept;

  std::shared_ptr<const ServerConfig> config_;
  Transport transport_;
  PeerAddress peer_;
  ServerState state_ = ServerState::AwaitVersion;
  StreamFramer framer_;
  SaslServer sasl_;
  unsigned auth_failures_ = 0;
  std::optional<Version> version_;
  std::optional<Identity> identity_;
  std::uint64_t phase_generation_ = 0;
  std::uint64_t deferred_generation_ = 0;

  std::optional<PendingCreate> create_;      // the request behind AwaitLease
  std::optional<core::Ipv4Address> leased_;  // offered or confirmed
  std::optional<std::string> last_offer_;    // the info reply, resent on an info request
  std::uint32_t lease_lifetime_ = 0;
  bool query_session_ = false;
  std::uint64_t next_query_id_ = 1;
  std::deque<PendingQuery> queries_;
  std::optional<Frame> held_;  // a non-query waiting for queries to drain

  std::optional<std::string> tcp_deferred_;  // TCP: reply held back until DeferredReply
  std::deque<std::string> udp_deferred_;     // UDP: replies for the next header-only datagrams
  UdpReplyCache udp_cache_;
};

// The same transition as a pure function on values.
inline std::pair<ServerSession, std::vector<ServerAction>> step(ServerSession session,
                                                                const ServerEvent& event) {
  auto actions = session.handle(event);
  return {std::move(session), std::move(actions)};
}

}  // namespace tsp
