// Client session: the TSP state machine of the dstm-client and of TEP query sessions.
#include "tsp/client_session.hpp"

#include <algorithm>
#include <cassert>

#include "session_util.hpp"
#include "text.hpp"

namespace tsp {
namespace {

// Base64 never contains a space; a status line has one after its code (or is a bare code).
bool looks_like_status(std::string_view line) {
  if (line.starts_with("OK")) return true;
  if (line.find(' ') != std::string_view::npos) return true;
  return !line.empty() && line.size() <= 4 &&
         std::all_of(line.begin(), line.end(), [](char c) { return detail::is_digit(c); });
}

bool offer_complete(const Tunnel& t) {
  if (!t.client || !t.server) return false;
  // gogoc's validate_tunnel_info: v4v6 needs all four endpoint addresses.
  if (t.type == TunnelType::V4V6)
    return t.client->ipv4() && t.client->ipv6() && t.server->ipv4() && t.server->ipv6();
  return t.server->ipv4() && t.server->ipv6() && t.client->ipv6();
}

// Fills reply from a heartbeat answer's element; false when it is not a valid one (docs/tsp.md).
bool read_heartbeat(const std::optional<Tunnel>& t, HeartbeatReply& reply) {
  if (!t || t->action != TunnelAction::Heartbeat || t->type != TunnelType::V4V6 || !t->lifetime)
    return false;
  if (t->server) {
    if (t->server->addresses.size() > kMaxWithdrawnPerHeartbeat) return false;
    for (const auto& a : t->server->addresses) {
      const auto* v4 = std::get_if<core::Ipv4Address>(&a.value);
      if (!v4) return false;
      reply.withdrawn.push_back(*v4);
    }
  }
  reply.interval = *t->lifetime;
  reply.flush = t->flush.value_or(false);
  return true;
}

StatusLine invalid_request() {
  return StatusLine{static_cast<int>(Status::InvalidRequest),
                    std::string{status_text(Status::InvalidRequest)}};
}

}  // namespace

ClientSession::ClientSession(ClientConfig config)
    : config_{std::move(config)}, framer_{FramerRole::Client, config_.framer} {
  assert(config_.max_in_flight > 0);
}

std::vector<ClientAction> ClientSession::handle(const ClientEvent& event) {
  Actions out;
  std::visit(core::Overloaded{
                 [&](const Start&) { on_start(out); },
                 [&](const BytesReceived& e) { on_bytes(out, e.data); },
                 [&](const DatagramReceived& e) { on_datagram(out, e.datagram); },
                 [&](const TimerExpired& e) { on_timer(out, e); },
                 [&](const SubmitQuery& e) { on_request(out, e); },
                 [&](const SubmitHeartbeat& e) { on_request(out, e); },
                 [&](const RequestDelete&) { on_delete(out); },
                 [&](const PeerClosed&) { fail(out, Errc::PeerClosed); },
             },
             event);
  return out;
}

// ---- events ----

void ClientSession::on_start(Actions& out) {
  if (state_ != ClientState::Idle) return;
  state_ = ClientState::AwaitCapability;
  send(out, version_line(config_.version) + "\r\n");
  arm_reply(out);
}

void ClientSession::on_bytes(Actions& out, core::Bytes data) {
  if (config_.transport != Transport::Tcp || state_ == ClientState::Closed) return;
  if (auto fed = framer_.feed(data); !fed) {
    fail(out, detail::errc_of(fed.error()));
    return;
  }
  drain(out);
}

void ClientSession::on_datagram(Actions& out, core::Bytes datagram) {
  if (config_.transport != Transport::Udp || state_ == ClientState::Closed) return;
  auto d = parse_udp_datagram(datagram);
  // Only the reply to the outstanding datagram counts (gogoc: same 32-bit sequence word).
  if (!d || !outstanding_ || d->header.sequence_word != outstanding_->header.sequence_word) return;
  heard_ = true;
  outstanding_.reset();
  detail::emit(out, CancelTimer{TimerKind::Retransmit});
  if (d->payload.empty()) {
    if (state_ == ClientState::AwaitAcceptAck) {
      state_ = ClientState::Established;
      detail::emit(out, TunnelEstablished{*offer_});
    }
  } else if (auto fed = framer_.feed(d->payload); !fed) {
    fail(out, detail::errc_of(fed.error()));
    return;
  } else {
    drain(out);
    if (state_ != ClientState::Closed && !framer_.at_boundary()) {
      fail(out, Errc::IncompleteDatagram);
      return;
    }
  }
  if (state_ != ClientState::Closed) transmit_next(out);
}

void ClientSession::on_timer(Actions& out, const TimerExpired& t) {
  if (state_ == ClientState::Closed) return;
  if (t.timer == TimerKind::Retransmit) {
    if (t.generation != retransmit_generation_ || !outstanding_) return;
    const auto limit = heard_ ? config_.deadlines.tries : config_.deadlines.tries_unheard;
    if (outstanding_->tries >= limit) {
      fail(out, Errc::Timeout);
      return;
    }
    ++outstanding_->tries;
    outstanding_->rto = std::min(outstanding_->rto * 2, config_.deadlines.rto_max);
    detail::emit(out, Send{outstanding_->datagram});
    detail::emit(out, ArmTimer{TimerKind::Retransmit, outstanding_->rto, ++retransmit_generation_});
    return;
  }
  if (t.timer == TimerKind::Phase && t.generation == phase_generation_) fail(out, Errc::Timeout);
}

void ClientSession::on_request(Actions& out, const Request& r) {
  switch (state_) {
    case ClientState::Idle:
    case ClientState::AwaitCapability:
    case ClientState::AwaitAuthResult:
    case ClientState::AwaitChallenge:
    case ClientState::AwaitRspauth:
    case ClientState::AwaitAuthSuccess:
      queued_.push_back(r);
      return;
    case ClientState::Authenticated:
      queued_.push_back(r);
      send_window(out);
      return;
    default:
      // Not a query session (or closed): answer locally.
      if (const auto* q = std::get_if<SubmitQuery>(&r)) {
        detail::emit(out, QueryAnswered{q->query_id, q->ipv4, std::nullopt, invalid_request()});
      } else {
        detail::emit(
            out,
            HeartbeatReply{std::get<SubmitHeartbeat>(r).query_id, invalid_request(), 0, {}, false});
      }
      return;
  }
}

void ClientSession::on_delete(Actions& out) {
  if (state_ != ClientState::Established && state_ != ClientState::Authenticated) return;
  send(out, request_message(make_tunnel(TunnelAction::Delete)));
  state_ = ClientState::AwaitDeleteReply;
  arm_reply(out);
}

// ---- frames ----

void ClientSession::drain(Actions& out) {
  while (state_ != ClientState::Closed) {
    auto next = framer_.next();
    if (!next) {
      fail(out, detail::errc_of(next.error()));
      return;
    }
    if (!*next) return;
    process(out, **next);
  }
}

void ClientSession::process(Actions& out, const Frame& frame) {
  switch (state_) {
    case ClientState::AwaitCapability:
      on_capability(out, frame);
      return;
    case ClientState::AwaitAuthResult:
    case ClientState::AwaitChallenge:
    case ClientState::AwaitRspauth:
    case ClientState::AwaitAuthSuccess:
      on_auth_line(out, frame);
      return;
    case ClientState::AwaitOffer:
      on_offer(out, frame);
      return;
    case ClientState::Authenticated:
      on_query_answer(out, frame);
      return;
    case ClientState::AwaitDeleteReply: {
      if (handle_error_reply(out, frame)) return;
      detail::emit(out, Deleted{});
      close(out, {});
      return;
    }
    default:
      return;  // nothing is expected: ignore
  }
}

// Redirects and error statuses end the session. False for a 200 (the caller goes on).
bool ClientSession::handle_error_reply(Actions& out, const Frame& frame) {
  Reply reply;
  if (frame.kind == FrameKind::Line) {
    auto status = parse_status_line(frame.data);
    if (!status) {
      fail(out, Errc::BadStatusLine);
      return true;
    }
    reply.status = std::move(*status);
  } else {
    auto parsed = parse_reply(frame.data, config_.xml);
    if (!parsed) {
      fail(out, detail::errc_of(parsed.error()));
      return true;
    }
    reply = std::move(*parsed);
  }
  if (reply.status.is_redirect()) {
    detail::emit(out, Redirected{reply.status,
                                 reply.tunnel ? reply.tunnel->brokers : std::vector<Address>{}});
    close(out, make_error_code(Errc::Redirected));
    return true;
  }
  if (!reply.status.is_success()) {
    const auto reason = reply.status.code == static_cast<int>(Status::AuthenticationFailed)
                            ? Errc::AuthenticationFailed
                            : Errc::ErrorStatus;
    fail(out, reason, reply.status);
    return true;
  }
  return false;
}

void ClientSession::on_capability(Actions& out, const Frame& frame) {
  if (frame.kind == FrameKind::Body || !frame.data.starts_with("CAPABILITY")) {
    if (!handle_error_reply(out, frame)) fail(out, Errc::BadCapability);
    return;
  }
  auto cap = parse_capability_line(frame.data);
  if (!cap) {
    fail(out, Errc::BadCapability);
    return;
  }
  auto offered = [&](TunnelType t) {
    return std::find(cap->tunnels.begin(), cap->tunnels.end(), t) != cap->tunnels.end();
  };
  if (config_.request && config_.request->type) {
    const auto t = *config_.request->type;
    const bool ok = t == TunnelType::V6AnyV4
                        ? offered(TunnelType::V6V4) || offered(TunnelType::V6UdpV4)
                        : offered(t);
    if (!ok) {
      fail(out, Errc::NoCommonTunnelType);
      return;
    }
  }
  const auto m = std::find_if(config_.mechanisms.begin(), config_.mechanisms.end(), [&](auto x) {
    return std::find(cap->mechanisms.begin(), cap->mechanisms.end(), x) != cap->mechanisms.end();
  });
  if (m == config_.mechanisms.end()) {
    fail(out, Errc::NoCommonMechanism);
    return;
  }
  mechanism_ = *m;
  send(out, "AUTHENTICATE " + std::string{mechanism_name(mechanism_)} + "\r\n");
  switch (mechanism_) {
    case Mechanism::Anonymous:
      state_ = ClientState::AwaitAuthResult;
      break;
    case Mechanism::Plain:
      // TCP: sent at once (gogoc does not wait either); UDP: after the first datagram's reply.
      send(out, format_plain(PlainMessage{{}, config_.username, config_.password}) + "\r\n");
      state_ = ClientState::AwaitAuthResult;
      break;
    case Mechanism::DigestMd5:
      state_ = ClientState::AwaitChallenge;
      break;
  }
  arm_reply(out);
}

void ClientSession::on_auth_line(Actions& out, const Frame& frame) {
  const bool status_like = frame.kind == FrameKind::Body || looks_like_status(frame.data);
  if (state_ == ClientState::AwaitChallenge && !status_like) {
    auto text = base64_decode(frame.data);
    auto challenge = text ? parse_digest_challenge(*text) : Result<DigestChallenge>{text.error()};
    if (!challenge) {
      fail(out, Errc::BadSaslMessage);
      return;
    }
    const auto cnonce = random_decimal(config_.random);
    auto r = digest_client_reply(*challenge, config_.username, config_.password,
                                 "tsp/" + config_.server_name, cnonce);
    expected_rspauth_ = std::move(r.expected_rspauth);
    send(out, base64_encode(format_digest_response(r.response)) + "\r\n");
    state_ = ClientState::AwaitRspauth;
    arm_reply(out);
    return;
  }
  if (state_ == ClientState::AwaitRspauth && !status_like) {
    auto text = base64_decode(frame.data);
    auto value = text ? parse_rspauth(*text) : Result<std::string>{text.error()};
    if (!value || !detail::constant_time_equal(*value, expected_rspauth_)) {
      fail(out, Errc::RspauthMismatch);
      return;
    }
    state_ = ClientState::AwaitAuthSuccess;
    // UDP: "read" the success status with a header-only datagram.
    if (config_.transport == Transport::Udp) send(out, {});
    arm_reply(out);
    return;
  }
  if (handle_error_reply(out, frame)) return;
  if (state_ == ClientState::AwaitAuthResult || state_ == ClientState::AwaitAuthSuccess) {
    on_authenticated(out);
  } else {
    fail(out, Errc::UnexpectedMessage);  // 200 where a challenge or rspauth was due
  }
}

void ClientSession::on_authenticated(Actions& out) {
  detail::emit(out, Authenticated{mechanism_});
  if (config_.request) {
    send(out, request_message(*config_.request));
    state_ = ClientState::AwaitOffer;
    arm_reply(out);
    return;
  }
  state_ = ClientState::Authenticated;
  detail::emit(out, CancelTimer{TimerKind::Phase});
  send_window(out);
}

void ClientSession::on_offer(Actions& out, const Frame& frame) {
  if (frame.kind == FrameKind::Line) {
    if (!handle_error_reply(out, frame)) fail(out, Errc::UnexpectedMessage);
    return;
  }
  if (handle_error_reply(out, frame)) return;
  auto reply = parse_reply(frame.data, config_.xml);  // parsed again: small, and keeps it simple
  if (!reply || !reply->tunnel || reply->tunnel->action != TunnelAction::Info ||
      !offer_complete(*reply->tunnel)) {
    if (config_.version.has_accept_step())
      send(out, request_message(make_tunnel(TunnelAction::Reject)));
    fail(out, Errc::BadTunnel, reply ? std::optional{reply->status} : std::nullopt);
    return;
  }
  offer_ = std::move(reply->tunnel);
  detail::emit(out, CancelTimer{TimerKind::Phase});
  if (!config_.version.has_accept_step()) {
    state_ = ClientState::Established;
    detail::emit(out, TunnelEstablished{*offer_});
    return;
  }
  send(out, request_message(make_tunnel(TunnelAction::Accept)));
  if (config_.transport == Transport::Udp) {
    state_ = ClientState::AwaitAcceptAck;  // established when the accept is answered
  } else {
    state_ = ClientState::Established;
    detail::emit(out, TunnelEstablished{*offer_});
  }
}

void ClientSession::on_query_answer(Actions& out, const Frame& frame) {
  if (queries_.empty()) {
    fail(out, Errc::UnexpectedMessage);
    return;
  }
  if (frame.kind == FrameKind::Line) {
    fail(out, Errc::UnexpectedMessage);
    return;
  }
  auto reply = parse_reply(frame.data, config_.xml);
  if (!reply) {
    fail(out, detail::errc_of(reply.error()));
    return;
  }
  if (reply->status.is_redirect()) {
    handle_error_reply(out, frame);
    return;
  }
  const auto front = queries_.front();
  queries_.pop_front();
  if (const auto* h = std::get_if<SubmitHeartbeat>(&front)) {
    HeartbeatReply answer{h->query_id, reply->status, 0, {}, false};
    // A 200 for something other than a heartbeat: the stream is out of step.
    if (reply->status.is_success() && !read_heartbeat(reply->tunnel, answer)) {
      fail(out, Errc::BadTunnel, reply->status);
      return;
    }
    detail::emit(out, std::move(answer));
  } else {
    const auto& q = std::get<SubmitQuery>(front);
    QueryAnswered answer{q.query_id, q.ipv4, std::nullopt, reply->status};
    if (reply->status.is_success()) {
      const auto& t = reply->tunnel;
      const auto v4 = t && t->server ? t->server->ipv4() : std::nullopt;
      const auto v6 = t && t->server ? t->server->ipv6() : std::nullopt;
      // Answers come in request order; one for another address means the stream is out of step.
      if (!t || t->action != TunnelAction::Info || !v4 || !v6 || *v4 != q.ipv4) {
        fail(out, Errc::BadTunnel, reply->status);
        return;
      }
      answer.mapping = Mapping{*v4, *v6, t->lifetime.value_or(0)};
    }
    detail::emit(out, std::move(answer));
  }
  // Each answer restarts the reply deadline of the next; the window has room for one more.
  if (!queries_.empty()) arm_reply(out);
  send_window(out);
  if (queries_.empty()) detail::emit(out, CancelTimer{TimerKind::Phase});
}

// ---- output ----

void ClientSession::send(Actions& out, std::string message) {
  if (config_.transport == Transport::Tcp) {
    detail::emit(out, Send{detail::to_bytes(message)});
    return;
  }
  to_send_.push_back(std::move(message));
  transmit_next(out);
}

void ClientSession::transmit_next(Actions& out) {
  if (outstanding_ || to_send_.empty()) return;
  const auto message = std::move(to_send_.front());
  to_send_.pop_front();
  const std::uint32_t ts = config_.udp_timestamp ? config_.udp_timestamp() : 0;
  const auto header = UdpHeader::make(next_sequence_++, ts);
  outstanding_ = Outstanding{header, encode_udp_datagram(header, core::as_bytes(message)), 1,
                             config_.deadlines.rto_initial};
  detail::emit(out, Send{outstanding_->datagram});
  detail::emit(out, ArmTimer{TimerKind::Retransmit, outstanding_->rto, ++retransmit_generation_});
}

// Sends waiting requests while fewer than max_in_flight are unanswered (query sessions only).
void ClientSession::send_window(Actions& out) {
  const bool idle = queries_.empty();
  while (state_ == ClientState::Authenticated && !queued_.empty() &&
         queries_.size() < config_.max_in_flight) {
    const auto r = queued_.front();
    queued_.pop_front();
    send_request(out, r);
  }
  if (idle && !queries_.empty()) arm_reply(out);
}

void ClientSession::send_request(Actions& out, const Request& r) {
  Tunnel t;
  if (const auto* q = std::get_if<SubmitQuery>(&r)) {
    t = make_tunnel(TunnelAction::Query, TunnelType::V4V6);
    if (config_.tep_ipv4 || config_.tep_ipv6) {
      t.client = Endpoint{};
      if (config_.tep_ipv4) t.client->addresses.push_back(Address{*config_.tep_ipv4, std::nullopt});
      if (config_.tep_ipv6) t.client->addresses.push_back(Address{*config_.tep_ipv6, std::nullopt});
    }
    t.server = Endpoint{};
    t.server->addresses.push_back(Address{q->ipv4, std::nullopt});
  } else {
    t = make_tunnel(TunnelAction::Heartbeat, TunnelType::V4V6);
  }
  queries_.push_back(r);
  send(out, request_message(t));
}

void ClientSession::fail(Actions& out, Errc reason, std::optional<StatusLine> status) {
  if (state_ == ClientState::Closed) return;
  detail::emit(out, SessionFailed{reason, std::move(status)});
  close(out, make_error_code(reason));
}

void ClientSession::close(Actions& out, boost::system::error_code reason) {
  state_ = ClientState::Closed;
  outstanding_.reset();
  to_send_.clear();
  detail::emit(out, CancelTimer{TimerKind::Phase});
  detail::emit(out, CancelTimer{TimerKind::Retransmit});
  detail::emit(out, Close{reason, Duration{0}});
}

void ClientSession::arm_reply(Actions& out) {
  // Over UDP the retransmission timer bounds every wait.
  if (config_.transport != Transport::Tcp) return;
  detail::emit(out, ArmTimer{TimerKind::Phase, config_.deadlines.reply, ++phase_generation_});
}

}  // namespace tsp
