// The client side of one TSP session, as a pure state machine: used by the dstm-client (create,
// accept, delete) and by TEPs (authenticated query sessions, pipelined on TCP).
//
//   Start --VERSION--> AwaitCapability --AUTHENTICATE--> (SASL) --> Authenticated
//   Authenticated --create--> AwaitOffer --accept--> Established   (1.0.x: no accept)
//   Authenticated --query/heartbeat...--> answers in order (QueryAnswered, HeartbeatReply)
//
// Queries and heartbeats are pipelined: at most ClientConfig::max_in_flight are sent and
// unanswered at a time (the server reads no further than its max_pending_queries, 64); the rest
// wait in the session and go out as answers come back.
//
// Over UDP every datagram waits for the reply with its sequence number; the session retransmits
// on the Retransmit timer (RTO from 2 s doubling to 30 s; 3 tries before any reply was heard,
// then 8), and sends header-only datagrams where it must "read" (200 Success after rspauth).
// A 302 is reported as SessionFailed with that status: version fallback (2.0.2 -> 2.0.1 ->
// 2.0.0 -> 1.0.1) is a new session with an older version, decided by the daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tsp/framer.hpp"
#include "tsp/message.hpp"
#include "tsp/protocol.hpp"
#include "tsp/random.hpp"
#include "tsp/sasl.hpp"
#include "tsp/session.hpp"
#include "tsp/status.hpp"
#include "tsp/udp.hpp"

namespace tsp {

struct ClientDeadlines {
  Duration reply{std::chrono::seconds{30}};       // TCP: each awaited reply
  Duration rto_initial{std::chrono::seconds{2}};  // UDP retransmission timeout
  Duration rto_max{std::chrono::seconds{30}};
  unsigned tries_unheard = 3;  // UDP: tries per datagram while no reply was ever heard
  unsigned tries = 8;          // UDP: tries per datagram once the server has answered
};

struct ClientConfig {
  Transport transport = Transport::Tcp;
  Version version = kVersion2_0_2;
  std::vector<Mechanism> mechanisms{Mechanism::DigestMd5, Mechanism::Plain};  // preference
  std::string username;
  std::string password;
  std::string server_name;                       // DIGEST-MD5 digest-uri is "tsp/" + server_name
  RandomSource random = system_random_source();  // cnonce
  std::function<std::uint32_t()> udp_timestamp;  // RUDP timestamp (ms); empty: 0
  // The create to send once authenticated; nullopt for a query session.
  std::optional<Tunnel> request;
  // Query sessions: the querying TEP's own addresses, sent as <client>.
  std::optional<core::Ipv4Address> tep_ipv4;
  std::optional<core::Ipv6Address> tep_ipv6;
  // Query sessions: the most queries and heartbeats sent and not yet answered (at least 1,
  // asserted). Keep it at or below the server's ServerLimits::max_pending_queries (64).
  std::size_t max_in_flight = 64;
  FramerLimits framer{};
  XmlLimits xml{};
  ClientDeadlines deadlines{};
};

// ---- actions (beyond Send, ArmTimer, CancelTimer, Close) ----

struct Authenticated {
  Mechanism mechanism = Mechanism::Anonymous;
  bool operator==(const Authenticated&) const = default;
};
// The server's offer, accepted (or, 1.0.x, simply received).
struct TunnelEstablished {
  Tunnel offer;
  bool operator==(const TunnelEstablished&) const = default;
};
// The answer to SubmitQuery: mapping set on 200, otherwise the status (e.g. 501: not leased).
struct QueryAnswered {
  std::uint64_t query_id = 0;
  core::Ipv4Address ipv4;
  std::optional<Mapping> mapping;
  StatusLine status;
  bool operator==(const QueryAnswered&) const = default;
};
// The answer to SubmitHeartbeat (extension, docs/tsp.md). On 200: interval is the heartbeat
// interval the server wants (seconds), withdrawn the IPv4 mappings to drop from the TEP's cache (at
// most kMaxWithdrawnPerHeartbeat), flush whether to drop every cached mapping. Another status
// (e.g. 300: not a TEP) leaves them empty. A 200 without a valid heartbeat element fails the
// session (BadTunnel).
struct HeartbeatReply {
  std::uint64_t query_id = 0;
  StatusLine status;
  std::uint32_t interval = 0;
  std::vector<core::Ipv4Address> withdrawn;
  bool flush = false;
  bool operator==(const HeartbeatReply&) const = default;
};
struct Redirected {
  StatusLine status;
  std::vector<Address> brokers;
  bool operator==(const Redirected&) const = default;
};
// The session failed; a Close follows. status is set when the server answered with an error.
struct SessionFailed {
  Errc reason = Errc::ErrorStatus;
  std::optional<StatusLine> status;
  bool operator==(const SessionFailed&) const = default;
};
// The server acknowledged a delete.
struct Deleted {
  bool operator==(const Deleted&) const = default;
};

using ClientAction =
    std::variant<Send, ArmTimer, CancelTimer, Close, Authenticated, TunnelEstablished,
                 QueryAnswered, HeartbeatReply, Redirected, SessionFailed, Deleted>;

// ---- events (beyond Start, BytesReceived, DatagramReceived, TimerExpired, PeerClosed) ----

// Ask who holds ipv4. May be submitted before authentication ends (it waits). TCP pipelines,
// within max_in_flight. Outside a query session it is answered locally with 500.
struct SubmitQuery {
  std::uint64_t query_id = 0;
  core::Ipv4Address ipv4;
};
// Send a TEP heartbeat (extension, docs/tsp.md); answered by HeartbeatReply. Waits and pipelines
// like SubmitQuery, in the same order.
struct SubmitHeartbeat {
  std::uint64_t query_id = 0;
};
// Release the tunnel: send delete (after authentication).
struct RequestDelete {};

using ClientEvent = std::variant<Start, BytesReceived, DatagramReceived, TimerExpired, SubmitQuery,
                                 SubmitHeartbeat, RequestDelete, PeerClosed>;

enum class ClientState {
  Idle,
  AwaitCapability,
  AwaitAuthResult,  // ANONYMOUS / PLAIN: waiting for the status
  AwaitChallenge,   // DIGEST-MD5
  AwaitRspauth,
  AwaitAuthSuccess,  // rspauth verified, waiting for 200 Success
  Authenticated,     // query session, or about to send the create
  AwaitOffer,
  AwaitAcceptAck,  // UDP: accept sent, waiting for its (empty) reply
  Established,
  AwaitDeleteReply,
  Closed,
};

class ClientSession {
 public:
  explicit ClientSession(ClientConfig config);

  std::vector<ClientAction> handle(const ClientEvent& event);

  ClientState state() const noexcept { return state_; }
  // Queries and heartbeats not yet answered: waiting to be sent, or in flight.
  std::size_t pending_queries() const noexcept { return queries_.size() + queued_.size(); }
  // Those sent and not yet answered (at most max_in_flight).
  std::size_t in_flight() const noexcept { return queries_.size(); }

 private:
  using Actions = std::vector<ClientAction>;
  using Request = std::variant<SubmitQuery, SubmitHeartbeat>;
  struct Outstanding {
    UdpHeader header;
    std::vector<std::byte> datagram;
    unsigned tries = 1;
    Duration rto{0};
  };

  void on_start(Actions& out);
  void on_bytes(Actions& out, core::Bytes data);
  void on_datagram(Actions& out, core::Bytes datagram);
  void on_timer(Actions& out, const TimerExpired& t);
  void on_request(Actions& out, const Request& r);
  void on_delete(Actions& out);

  void drain(Actions& out);
  void process(Actions& out, const Frame& frame);
  void on_capability(Actions& out, const Frame& frame);
  void on_auth_line(Actions& out, const Frame& frame);
  void on_authenticated(Actions& out);
  void on_offer(Actions& out, const Frame& frame);
  void on_query_answer(Actions& out, const Frame& frame);
  bool handle_error_reply(Actions& out, const Frame& frame);

  void send(Actions& out, std::string message);
  void transmit_next(Actions& out);
  void send_window(Actions& out);
  void send_request(Actions& out, const Request& r);
  void fail(Actions& out, Errc reason, std::optional<StatusLine> status = std::nullopt);
  void close(Actions& out, boost::system::error_code reason);
  void arm_reply(Actions& out);

  ClientConfig config_;
  ClientState state_ = ClientState::Idle;
  StreamFramer framer_;
  Mechanism mechanism_ = Mechanism::Anonymous;
  std::string expected_rspauth_;
  std::uint64_t phase_generation_ = 0;
  std::uint64_t retransmit_generation_ = 0;
  std::optional<Tunnel> offer_;
  std::deque<Request> queued_;   // submitted, not sent yet (before authentication, window full)
  std::deque<Request> queries_;  // sent, answer outstanding (in order)

  // UDP
  std::uint32_t next_sequence_ = kGogocFirstSequence;
  bool heard_ = false;
  std::optional<Outstanding> outstanding_;
  std::deque<std::string> to_send_;
};

inline std::pair<ClientSession, std::vector<ClientAction>> step(ClientSession session,
                                                                const ClientEvent& event) {
  auto actions = session.handle(event);
  return {std::move(session), std::move(actions)};
}

}  // namespace tsp
