// Server session: the TSP state machine of one TCP connection or UDP peer.
#include "tsp/server_session.hpp"

#include <algorithm>
#include <cassert>

#include "session_util.hpp"
#include "text.hpp"

namespace tsp {
namespace {

constexpr std::string_view kAuthenticate = "AUTHENTICATE ";
constexpr std::string_view kEchoRequest = "ECHO REQUEST";
// draft-jaehwoon-dstm-multitep-02 Appendix A marks the IPv4 addresses of a query answer with
// length="30"; the draft gives it no meaning, it is kept for byte compatibility.
constexpr unsigned kDraftIpv4Length = 30;

PeerAddress normalize(PeerAddress p) {
  if (const auto* a6 = std::get_if<core::Ipv6Address>(&p); a6 && a6->is_v4_mapped()) {
    const auto& b = a6->bytes();
    return core::Ipv4Address{std::array<std::uint8_t, 4>{b[12], b[13], b[14], b[15]}};
  }
  return p;
}

// The status a rejected request gets.
Status status_for(Errc e) noexcept {
  switch (e) {
    case Errc::UnsupportedTunnelType:
      return Status::UnsupportedTunnelType;
    case Errc::BadIpv4Address:
      return Status::InvalidIpv4Address;
    case Errc::BadIpv6Address:
      return Status::InvalidIpv6Address;
    default:
      return Status::InvalidRequest;
  }
}

// The draft's answer: <server> is the DSTM client found, <client> echoes the querying TEP.
std::string query_answer(const std::optional<Endpoint>& tep, const Mapping& m) {
  Tunnel info = make_tunnel(TunnelAction::Info, TunnelType::V4V6, m.lifetime);
  info.server = Endpoint{};
  info.server->addresses = {Address{m.ipv4, kDraftIpv4Length}, Address{m.ipv6, std::nullopt}};
  if (tep) {
    info.client = Endpoint{};
    for (const auto& a : tep->addresses) {
      if (std::holds_alternative<core::Ipv4Address>(a.value)) {
        info.client->addresses.push_back(Address{a.value, kDraftIpv4Length});
      } else if (std::holds_alternative<core::Ipv6Address>(a.value)) {
        info.client->addresses.push_back(Address{a.value, std::nullopt});
      }
    }
  }
  return reply_message("200 OK", info);
}

// The heartbeat answer (docs/tsp.md, "TEP heartbeats").
std::string heartbeat_answer(const HeartbeatAnswered& e) {
  if (e.status != Status::Success) return reply_message(status_line(e.status));
  Tunnel t = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6, e.interval);
  // More than the limit is a daemon bug. Without asserts, drop the list and say flush: the TEP
  // forgets every cached mapping, a superset of the withdrawals, and asks again.
  assert(e.withdrawn.size() <= kMaxWithdrawnPerHeartbeat);
  const bool overflow = e.withdrawn.size() > kMaxWithdrawnPerHeartbeat;
  if (e.flush || overflow) t.flush = true;
  if (!overflow && !e.withdrawn.empty()) {
    t.server = Endpoint{};
    for (const auto& a : e.withdrawn) t.server->addresses.push_back(Address{a, std::nullopt});
  }
  return reply_message(status_line(Status::Success), t);
}

}  // namespace

ServerSession::ServerSession(std::shared_ptr<const ServerConfig> config, Transport transport,
                             PeerAddress peer)
    : config_{std::move(config)},
      transport_{transport},
      peer_{normalize(peer)},
      framer_{FramerRole::Server, config_->limits.framer} {}

std::vector<ServerAction> ServerSession::handle(const ServerEvent& event) {
  Actions out;
  std::visit(core::Overloaded{
                 [&](const Start&) { on_start(out); },
                 [&](const BytesReceived& e) { on_bytes(out, e.data); },
                 [&](const DatagramReceived& e) { on_datagram(out, e.datagram); },
                 [&](const TimerExpired& e) { on_timer(out, e); },
                 [&](const LeaseAllocated& e) { on_lease_allocated(out, e.offer); },
                 [&](const LeaseFailed& e) { on_lease_failed(out, e); },
                 [&](const MappingFound& e) {
                   if (auto* q = unanswered(e.query_id, false)) {
                     q->answer = query_answer(q->tep, e.mapping);
                     on_answered(out);
                   }
                 },
                 [&](const MappingNotFound& e) {
                   if (auto* q = unanswered(e.query_id, false)) {
                     q->answer = reply_message(status_line(e.status));
                     on_answered(out);
                   }
                 },
                 [&](const HeartbeatAnswered& e) {
                   if (auto* q = unanswered(e.query_id, true)) {
                     q->answer = heartbeat_answer(e);
                     on_answered(out);
                   }
                 },
                 [&](const PeerClosed&) { on_peer_closed(out); },
             },
             event);
  return out;
}

// ---- events ----

void ServerSession::on_start(Actions& out) {
  arm_phase(out, config_->deadlines.handshake);
}

void ServerSession::on_bytes(Actions& out, core::Bytes data) {
  if (transport_ != Transport::Tcp || state_ == ServerState::Closed) return;
  if (auto fed = framer_.feed(data); !fed) {
    fail(out, Status::InvalidRequest, detail::errc_of(fed.error()));
    return;
  }
  pump(out);
}

void ServerSession::on_datagram(Actions& out, core::Bytes datagram) {
  if (transport_ != Transport::Udp) return;
  auto d = parse_udp_datagram(datagram);
  if (!d) return;  // tunnelled data or a runt: not for the session
  switch (udp_cache_.classify(d->header)) {
    case UdpReplyCache::Verdict::Retransmit:
      detail::emit(out, Send{udp_cache_.resend(d->header)});
      return;
    case UdpReplyCache::Verdict::InProgress:
    case UdpReplyCache::Verdict::Stale:
      return;
    case UdpReplyCache::Verdict::New:
      break;
  }
  // A closed session only answers retransmissions; a busy one (waiting for the daemon) drops
  // new requests, which the peer retransmits.
  if (state_ == ServerState::Closed || udp_cache_.in_progress()) return;
  udp_cache_.begin(d->header);

  const auto payload = detail::as_string_view(d->payload);
  if (detail::trim(payload) == kEchoRequest) {
    detail::emit(out, Send{udp_cache_.complete({})});
    return;
  }
  if (payload.empty()) {
    // A client "read": the reply held back for it, or nothing.
    std::string held;
    if (!udp_deferred_.empty()) {
      held = std::move(udp_deferred_.front());
      udp_deferred_.pop_front();
    }
    detail::emit(out, Send{udp_cache_.complete(core::as_bytes(held))});
    return;
  }
  if (auto fed = framer_.feed(d->payload); !fed) {
    fail(out, Status::InvalidRequest, detail::errc_of(fed.error()));
  } else {
    pump(out);
    if (state_ != ServerState::Closed && !framer_.at_boundary() && !blocked())
      fail(out, Status::InvalidRequest, Errc::IncompleteDatagram);
  }
  // Every datagram is answered: with an empty payload when nothing else is due now.
  const bool awaiting_backend =
      state_ == ServerState::AwaitLease ||
      std::any_of(queries_.begin(), queries_.end(), [](const auto& q) { return !q.answer; });
  if (udp_cache_.in_progress() && !awaiting_backend)
    detail::emit(out, Send{udp_cache_.complete({})});
}

void ServerSession::on_timer(Actions& out, const TimerExpired& t) {
  if (t.timer == TimerKind::DeferredReply) {
    if (t.generation == deferred_generation_ && tcp_deferred_) {
      detail::emit(out, Send{detail::to_bytes(*tcp_deferred_)});
      tcp_deferred_.reset();
    }
    return;
  }
  if (t.timer != TimerKind::Phase || t.generation != phase_generation_) return;
  const auto timeout = make_error_code(Errc::Timeout);
  switch (state_) {
    case ServerState::Closed:
      return;
    case ServerState::AwaitLease:
      // create_ stays: an allocation that still arrives is released (Abandoned).
      fail(out, Status::ServerError, Errc::Timeout);
      return;
    case ServerState::AwaitAccept:
      release(out, ReleaseReason::NotAccepted);
      close(out, timeout);
      return;
    case ServerState::Authenticated:
      if (!queries_.empty()) {
        for (auto& q : queries_)
          if (!q.answer) q.answer = reply_message(status_line(Status::ServerError));
        flush_queries(out);
      }
      close(out, timeout);
      return;
    default:
      close(out, timeout);
      return;
  }
}

void ServerSession::on_lease_allocated(Actions& out, const LeaseOffer& offer) {
  if (!create_) return;  // not asked for
  const PendingCreate request = *create_;
  create_.reset();
  if (state_ != ServerState::AwaitLease) {
    // The session ended while the daemon worked: give the lease back at once.
    detail::emit(out, ReleaseLease{ReleaseReason::Abandoned, identity_.value_or(Identity{}),
                                   request.client_ipv6, offer.client_ipv4});
    return;
  }
  Tunnel info = make_tunnel(TunnelAction::Info, request.type, offer.lifetime);
  info.server = Endpoint{};
  info.server->addresses = {Address{offer.server_ipv4, std::nullopt},
                            Address{offer.server_ipv6, std::nullopt}};
  Endpoint client;
  client.addresses.push_back(Address{offer.client_ipv4, std::nullopt});
  if (const auto v6 = offer.client_ipv6 ? offer.client_ipv6 : request.client_ipv6)
    client.addresses.push_back(Address{*v6, std::nullopt});
  if (offer.prefix)
    client.router = Router{.protocol = {}, .prefix = offer.prefix, .dns_servers = {}};
  client.dns_servers.push_back(Address{offer.dns_server, std::nullopt});
  client.keepalive = offer.keepalive;
  info.client = std::move(client);

  auto message = reply_message(status_line(Status::Success), info);
  leased_ = offer.client_ipv4;
  lease_lifetime_ = offer.lifetime;
  reply(out, message);
  last_offer_ = std::move(message);
  if (version_->has_accept_step()) {
    state_ = ServerState::AwaitAccept;
    arm_phase(out, config_->deadlines.accept);
  } else {
    detail::emit(out, ConfirmLease{offer.client_ipv4});
    state_ = ServerState::Established;
    arm_phase(out, std::chrono::seconds{lease_lifetime_} + config_->deadlines.lease_grace);
  }
  pump(out);
}

void ServerSession::on_lease_failed(Actions& out, const LeaseFailed& f) {
  if (!create_ || state_ != ServerState::AwaitLease) {
    create_.reset();
    return;
  }
  create_.reset();
  state_ = ServerState::Authenticated;
  if (!f.brokers.empty()) {
    reply(out, frame_message(redirect_content(f.status, f.brokers)));
    close(out, make_error_code(Errc::Redirected));
    return;
  }
  reply_status(out, f.status);
  arm_phase(out, config_->deadlines.command);
  pump(out);
}

// The outstanding query or heartbeat with this id; nullptr for a stale or mismatched answer.
ServerSession::PendingQuery* ServerSession::unanswered(std::uint64_t id, bool heartbeat) noexcept {
  if (state_ == ServerState::Closed) return nullptr;
  for (auto& q : queries_)
    if (q.id == id && q.heartbeat == heartbeat && !q.answer) return &q;
  return nullptr;
}

void ServerSession::on_answered(Actions& out) {
  flush_queries(out);
  pump(out);
}

void ServerSession::on_peer_closed(Actions& out) {
  if (state_ == ServerState::Closed) return;
  if (state_ == ServerState::AwaitAccept) release(out, ReleaseReason::NotAccepted);
  // Established: the lease stays until it expires (the client renews with a new create).
  close(out, make_error_code(Errc::PeerClosed));
}

// ---- frames ----

bool ServerSession::blocked() const noexcept {
  if (state_ == ServerState::AwaitLease || state_ == ServerState::Closed) return true;
  if (held_ && !queries_.empty()) return true;
  return queries_.size() >= config_->limits.max_pending_queries;
}

void ServerSession::pump(Actions& out) {
  while (!blocked()) {
    Frame frame;
    if (held_) {
      frame = std::move(*held_);
      held_.reset();
    } else {
      auto next = framer_.next();
      if (!next) {
        fail(out, Status::InvalidRequest, detail::errc_of(next.error()));
        return;
      }
      if (!*next) return;
      frame = std::move(**next);
    }
    process(out, std::move(frame));
  }
}

void ServerSession::process(Actions& out, Frame frame) {
  if (tcp_deferred_) {
    // The client moved on before the pause ended: the held reply goes first.
    detail::emit(out, Send{detail::to_bytes(*tcp_deferred_)});
    detail::emit(out, CancelTimer{TimerKind::DeferredReply});
    tcp_deferred_.reset();
  }
  switch (state_) {
    case ServerState::AwaitVersion:
    case ServerState::AwaitAuthenticate:
    case ServerState::Authenticating:
      process_line_phase(out, frame);
      return;
    case ServerState::Authenticated:
    case ServerState::AwaitAccept:
    case ServerState::Established:
      process_command(out, frame);
      return;
    case ServerState::AwaitLease:
    case ServerState::Closed:
      return;
  }
}

void ServerSession::process_line_phase(Actions& out, const Frame& frame) {
  if (frame.kind == FrameKind::Body) {
    // A command before authentication.
    fail(out, Status::InvalidRequest, Errc::UnexpectedMessage);
    return;
  }
  const std::string_view line = frame.data;
  if (state_ == ServerState::Authenticating) {
    handle_sasl_step(out, sasl_.step(config_->sasl, line));
    return;
  }
  if (line.empty()) return;  // a stray line end
  if (state_ == ServerState::AwaitVersion) {
    auto v = parse_version_line(line);
    if (!v) {
      fail(out, Status::InvalidRequest, Errc::BadVersion);
      return;
    }
    if (!is_supported_version(*v, config_->allow_v1)) {
      if (!config_->redirect_brokers.empty()) {
        reply(out, redirect_content(Status::UnsupportedVersion, config_->redirect_brokers));
        close(out, make_error_code(Errc::Redirected));
      } else {
        fail(out, Status::UnsupportedVersion, Errc::UnsupportedVersion);
      }
      return;
    }
    version_ = *v;
    const Capability cap{config_->tunnel_types, config_->sasl.mechanisms};
    reply(out, capability_line(cap) + "\r\n");
    state_ = ServerState::AwaitAuthenticate;
    return;
  }
  // AwaitAuthenticate
  if (!detail::istarts_with(line, kAuthenticate)) {
    fail(out, Status::InvalidRequest, Errc::UnexpectedMessage);
    return;
  }
  state_ = ServerState::Authenticating;
  handle_sasl_step(
      out, sasl_.start(config_->sasl, detail::trim(line.substr(kAuthenticate.size())), *version_));
}

void ServerSession::handle_sasl_step(Actions& out, SaslServer::Step step) {
  std::visit(core::Overloaded{
                 [&](SaslServer::Continue& c) {
                   state_ = ServerState::Authenticating;
                   // PLAIN sends nothing here: on TCP gogoc does not wait, on UDP it gets an empty
                   // reply.
                   if (c.line) reply(out, *c.line + "\r\n");
                 },
                 [&](SaslServer::Failure& f) {
                   state_ = ServerState::AwaitAuthenticate;
                   reply_status(out, Status::AuthenticationFailed);
                   if (++auth_failures_ >= config_->limits.max_auth_failures)
                     close(out, make_error_code(f.reason));
                 },
                 [&](SaslServer::Success& s) {
                   identity_ = std::move(s.identity);
                   state_ = ServerState::Authenticated;
                   const std::string ok = version_->is_draft_profile()
                                              ? "OK Authentication successful"
                                              : status_line(Status::Success);
                   if (s.server_final) {
                     // rspauth and 200 Success never share a write (tsp-wire.md 4, checklist 2).
                     reply(out, *s.server_final + "\r\n");
                     defer_reply(out, ok + "\r\n");
                   } else {
                     reply(out, ok + "\r\n");
                   }
                   arm_phase(out, config_->deadlines.command);
                 },
             },
             step);
}

void ServerSession::process_command(Actions& out, const Frame& frame) {
  if (frame.kind == FrameKind::Line) {
    if (frame.data.empty()) return;
    fail(out, Status::InvalidRequest, Errc::UnexpectedMessage);
    return;
  }
  auto t = parse_request(frame.data, config_->limits.xml);
  if (!t) {
    const auto e = detail::errc_of(t.error());
    const auto s = status_for(e);
    if (s == Status::InvalidRequest) {
      fail(out, s, e);  // malformed: the stream cannot be trusted any more
    } else if (!queries_.empty()) {
      // Answers leave in request order.
      queries_.push_back(
          PendingQuery{next_query_id_++, false, std::nullopt, reply_message(status_line(s))});
      flush_queries(out);
    } else {
      reply_status(out, s);
    }
    return;
  }
  if (t->action == TunnelAction::Query) {
    handle_query(out, *t);
    return;
  }
  if (t->action == TunnelAction::Heartbeat) {
    handle_heartbeat(out, *t);
    return;
  }
  if (!queries_.empty()) {
    held_ = frame;  // after the outstanding answers
    return;
  }
  switch (t->action) {
    case TunnelAction::Create:
      if (state_ == ServerState::AwaitAccept) {
        reply_status(out, Status::RequestInProgress);
      } else {
        handle_create(out, *t);
      }
      return;
    case TunnelAction::Accept:
      if (state_ != ServerState::AwaitAccept) {
        reply_status(out, Status::InvalidRequest);
        return;
      }
      detail::emit(out, ConfirmLease{*leased_});
      state_ = ServerState::Established;
      arm_phase(out, std::chrono::seconds{lease_lifetime_} + config_->deadlines.lease_grace);
      return;
    case TunnelAction::Reject:
      if (state_ != ServerState::AwaitAccept) {
        reply_status(out, Status::InvalidRequest);
        return;
      }
      release(out, ReleaseReason::Rejected);
      close(out, {});
      return;
    case TunnelAction::Delete:
      release(out, ReleaseReason::Deleted);
      reply_status(out, Status::Success);
      close(out, {});
      return;
    case TunnelAction::Info:
      if (last_offer_) {
        reply(out, *last_offer_);
      } else {
        reply_status(out, Status::InvalidRequest);
      }
      return;
    case TunnelAction::Query:
    case TunnelAction::Heartbeat:
      return;
  }
}

void ServerSession::handle_create(Actions& out, const Tunnel& t) {
  if (!t.type || !t.client) {
    reply_status(out, Status::InvalidRequest);
    return;
  }
  const Endpoint& c = *t.client;
  const auto* peer4 = std::get_if<core::Ipv4Address>(&peer_);
  const auto* peer6 = std::get_if<core::Ipv6Address>(&peer_);
  auto served = [&](TunnelType type) {
    const auto& types = config_->tunnel_types;
    return std::find(types.begin(), types.end(), type) != types.end();
  };

  std::optional<TunnelType> type;
  if (*t.type == TunnelType::V6AnyV4) {
    // NAT discovery (RFC 5572 2.1): the UDP source differs from the address the client reports.
    const auto declared = c.ipv4();
    const bool nat = transport_ == Transport::Udp && peer4 && declared && *declared != *peer4;
    if (nat && served(TunnelType::V6UdpV4))
      type = TunnelType::V6UdpV4;
    else if (!nat && served(TunnelType::V6V4))
      type = TunnelType::V6V4;
    else if (!nat && served(TunnelType::V6UdpV4))
      type = TunnelType::V6UdpV4;
  } else if (*t.type != TunnelType::Any && served(*t.type)) {
    type = *t.type;
  }
  if (!type) {
    reply_status(out, Status::UnsupportedTunnelType);
    return;
  }

  std::optional<Prefix> prefix;
  if (c.router) {
    if (!c.router->prefix) {
      reply_status(out, Status::MissingPrefixLength);
      return;
    }
    prefix = c.router->prefix;
    if (identity_->mechanism == Mechanism::Anonymous) {
      reply_status(out, Status::PrefixForAnonymous);
      return;
    }
  }

  PendingCreate request{.type = *type, .client_ipv6 = {}, .client_ipv4 = {}};
  if (*type == TunnelType::V4V6) {
    // The tunnel's client end is the address the request came from (docs/tsp.md).
    auto declared = c.ipv6();
    if (!declared && peer6) declared = *peer6;
    // Over IPv6 the address must be the source. Over IPv4 there is no IPv6 source to compare
    // with: only an authenticated user may name its address, and the lease is bound to that
    // user (an anonymous client could otherwise point a lease at any host).
    const bool anonymous = identity_->mechanism == Mechanism::Anonymous;
    const bool unverified = peer6 ? *declared != *peer6 : anonymous;
    const bool bad = !declared || declared->is_unspecified() || declared->is_multicast() ||
                     declared->is_v4_mapped() || (config_->require_source_address && unverified);
    if (bad) {
      reply_status(out, Status::InvalidIpv6Address);
      return;
    }
    request.client_ipv6 = declared;
  } else {
    request.client_ipv4 = c.ipv4();
    if (!request.client_ipv4 && peer4) request.client_ipv4 = *peer4;
  }

  detail::emit(out, AllocateLease{
                        .type = *type,
                        .identity = *identity_,
                        .client_ipv6 = request.client_ipv6,
                        .client_ipv4 = request.client_ipv4,
                        .lifetime = t.lifetime,
                        .keepalive_interval =
                            c.keepalive ? std::optional{c.keepalive->interval} : std::nullopt,
                        .prefix = prefix,
                    });
  create_ = request;
  state_ = ServerState::AwaitLease;
  arm_phase(out, config_->deadlines.backend);
}

void ServerSession::handle_query(Actions& out, const Tunnel& t) {
  if (state_ != ServerState::Authenticated) {
    reply_status(out, Status::InvalidRequest);
    return;
  }
  query_session_ = true;
  PendingQuery q{next_query_id_++, false, t.client, std::nullopt};
  std::optional<core::Ipv4Address> target;
  if (t.type && *t.type != TunnelType::V4V6) {
    q.answer = reply_message(status_line(Status::UnsupportedTunnelType));
  } else if (!t.server || !(target = t.server->ipv4())) {
    q.answer = reply_message(status_line(Status::InvalidRequest));
  }
  const bool first = queries_.empty();
  queries_.push_back(q);
  if (target) {
    detail::emit(out, LookupMapping{q.id, *target, *identity_});
    if (first) arm_phase(out, config_->deadlines.backend);
  }
  flush_queries(out);
}

// Like a query without a lookup: in the same ordered queue, answered by the daemon.
void ServerSession::handle_heartbeat(Actions& out, const Tunnel& t) {
  if (state_ != ServerState::Authenticated) {
    reply_status(out, Status::InvalidRequest);
    return;
  }
  query_session_ = true;
  PendingQuery q{next_query_id_++, true, std::nullopt, std::nullopt};
  if (t.type && *t.type != TunnelType::V4V6)
    q.answer = reply_message(status_line(Status::UnsupportedTunnelType));
  const bool first = queries_.empty();
  queries_.push_back(q);
  if (!q.answer) {
    detail::emit(out, Heartbeat{q.id, *identity_});
    if (first) arm_phase(out, config_->deadlines.backend);
  }
  flush_queries(out);
}

void ServerSession::flush_queries(Actions& out) {
  bool sent = false;
  while (!queries_.empty() && queries_.front().answer) {
    reply(out, *queries_.front().answer);
    queries_.pop_front();
    sent = true;
  }
  if (!sent || state_ == ServerState::Closed) return;
  arm_phase(out, queries_.empty() ? config_->deadlines.query_idle : config_->deadlines.backend);
}

// ---- output ----

void ServerSession::reply(Actions& out, const std::string& message) {
  if (transport_ == Transport::Tcp) {
    detail::emit(out, Send{detail::to_bytes(message)});
  } else if (udp_cache_.in_progress()) {
    detail::emit(out, Send{udp_cache_.complete(core::as_bytes(message))});
  } else {
    udp_deferred_.push_back(message);  // for the client's next header-only datagram
  }
}

void ServerSession::defer_reply(Actions& out, std::string message) {
  if (transport_ == Transport::Tcp) {
    tcp_deferred_ = std::move(message);
    detail::emit(out, ArmTimer{TimerKind::DeferredReply, config_->deadlines.digest_pause,
                               ++deferred_generation_});
  } else {
    udp_deferred_.push_back(std::move(message));
  }
}

bool ServerSession::line_phase() const noexcept {
  return state_ == ServerState::AwaitVersion || state_ == ServerState::AwaitAuthenticate ||
         state_ == ServerState::Authenticating;
}

void ServerSession::reply_status(Actions& out, Status s) {
  // Line phases answer with a bare status line; the command phase with a Content-length reply.
  if (line_phase()) {
    reply(out, status_line(s) + "\r\n");
  } else {
    reply(out, reply_message(status_line(s)));
  }
}

void ServerSession::fail(Actions& out, Status s, Errc reason) {
  reply_status(out, s);
  close(out, make_error_code(reason));
}

void ServerSession::close(Actions& out, boost::system::error_code reason) {
  if (state_ == ServerState::Closed) return;
  state_ = ServerState::Closed;
  held_.reset();
  tcp_deferred_.reset();
  detail::emit(out, CancelTimer{TimerKind::Phase});
  detail::emit(out, Close{reason, transport_ == Transport::Udp ? config_->deadlines.udp_linger
                                                               : Duration{0}});
}

void ServerSession::arm_phase(Actions& out, Duration after) {
  detail::emit(out, ArmTimer{TimerKind::Phase, after, ++phase_generation_});
}

void ServerSession::release(Actions& out, ReleaseReason reason) {
  std::optional<core::Ipv6Address> client_ipv6;
  if (const auto* p = std::get_if<core::Ipv6Address>(&peer_)) client_ipv6 = *p;
  detail::emit(out, ReleaseLease{reason, identity_.value_or(Identity{}), client_ipv6, leased_});
  leased_.reset();
}

}  // namespace tsp
