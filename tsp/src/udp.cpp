// UDP header codec and retransmit cache.
#include "tsp/udp.hpp"

namespace tsp {

bool is_signalling(core::Bytes datagram) noexcept {
  return datagram.size() >= kUdpHeaderSize &&
         (core::load_be32(datagram) & kSignallingMask) == kSignallingMask;
}

Result<UdpDatagram> parse_udp_datagram(core::Bytes datagram) noexcept {
  core::ByteReader in{datagram};
  UdpHeader h{.sequence_word = in.u32(), .timestamp = in.u32()};
  if (!in.ok()) return Errc::DatagramTooShort;
  if ((h.sequence_word & kSignallingMask) != kSignallingMask) return Errc::NotSignalling;
  return UdpDatagram{h, in.rest()};
}

std::vector<std::byte> encode_udp_datagram(const UdpHeader& header, core::Bytes payload) {
  std::vector<std::byte> out(kUdpHeaderSize + payload.size());
  core::ByteWriter w{out};
  w.u32(header.sequence_word).u32(header.timestamp).bytes(payload);
  return out;
}

UdpReplyCache::Verdict UdpReplyCache::classify(const UdpHeader& h) const noexcept {
  if (!current_) return Verdict::New;
  if (current_->sequence_word == h.sequence_word)
    return done_ ? Verdict::Retransmit : Verdict::InProgress;
  // Serial arithmetic on the 28-bit sequence: up to half the space behind is "older".
  constexpr std::uint32_t kMask = ~kSignallingMask;
  const std::uint32_t behind = (current_->sequence() - h.sequence()) & kMask;
  return behind < (kMask + 1) / 2 ? Verdict::Stale : Verdict::New;
}

void UdpReplyCache::begin(const UdpHeader& h) noexcept {
  current_ = h;
  done_ = false;
  payload_.clear();
}

std::vector<std::byte> UdpReplyCache::complete(core::Bytes payload) {
  payload_.assign(payload.begin(), payload.end());
  done_ = true;
  // begin() always precedes complete(); the header echoed is the request's, unchanged.
  return encode_udp_datagram(current_.value_or(UdpHeader{}), payload_);
}

std::vector<std::byte> UdpReplyCache::resend(const UdpHeader& h) const {
  return encode_udp_datagram(h, payload_);
}

}  // namespace tsp
