// Helpers for the tsp tests: byte/text conversion, deterministic randomness, action filters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <optional>
#include <ostream>

#include "core/bytes.hpp"
#include "tsp/framer.hpp"
#include "tsp/message.hpp"
#include "tsp/protocol.hpp"
#include "tsp/random.hpp"
#include "tsp/sasl.hpp"
#include "tsp/session.hpp"
#include "tsp/status.hpp"
#include "tsp/udp.hpp"

// Test output for tsp values. boost::system::result<T> streams T, and Catch2 streams results.
namespace tsp {

inline std::ostream& escaped(std::ostream& os, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r')
      os << "\\r";
    else if (c == '\n')
      os << "\\n";
    else if (u < 0x20 || u >= 0x7f)
      os << "\\x" << kHex[u >> 4] << kHex[u & 15];
    else
      os << c;
  }
  return os;
}
inline std::ostream& operator<<(std::ostream& os, const Frame& f) {
  os << (f.kind == FrameKind::Line ? "Line{" : "Body{");
  return escaped(os, f.data) << "}";
}
inline std::ostream& operator<<(std::ostream& os, const std::optional<Frame>& f) {
  return f ? os << *f : os << "none";
}
inline std::ostream& operator<<(std::ostream& os, const Version& v) {
  return os << v.to_string();
}
inline std::ostream& operator<<(std::ostream& os, const StatusLine& s) {
  return os << s.code << " " << s.text;
}
inline std::ostream& operator<<(std::ostream& os, const Capability& c) {
  return os << capability_line(c);
}
inline std::ostream& operator<<(std::ostream& os, const Tunnel& t) {
  return os << write_tunnel(t);
}
inline std::ostream& operator<<(std::ostream& os, const Reply& r) {
  os << r.status;
  if (r.tunnel) os << " " << *r.tunnel;
  return os;
}
inline std::ostream& operator<<(std::ostream& os, const PlainMessage& m) {
  return escaped(os, format_plain(m));
}
inline std::ostream& operator<<(std::ostream& os, const DigestChallenge& c) {
  return os << format_digest_challenge(c);
}
inline std::ostream& operator<<(std::ostream& os, const DigestResponse& r) {
  return os << format_digest_response(r);
}
inline std::ostream& operator<<(std::ostream& os, const UdpDatagram& d) {
  return os << std::hex << d.header.sequence_word << std::dec << "/" << d.header.timestamp << " +"
            << d.payload.size();
}

}  // namespace tsp

namespace tsp_test {

inline std::vector<std::byte> bytes(std::string_view s) {
  const auto b = core::as_bytes(s);
  return {b.begin(), b.end()};
}

inline std::string text(const std::vector<std::byte>& b) {
  std::string out;
  for (auto x : b) out += static_cast<char>(x);
  return out;
}

// Each call yields the next number as 16 big-endian bytes, so that decimal_from_bytes gives back
// exactly that number (nonce "3141592653" from 3141592653). Cycles through the list.
inline tsp::RandomSource counting_random(std::vector<std::uint64_t> values) {
  auto state =
      std::make_shared<std::pair<std::vector<std::uint64_t>, std::size_t>>(std::move(values), 0);
  return [state](std::span<std::byte> out) {
    const auto v = state->first[state->second++ % state->first.size()];
    for (auto& b : out) b = std::byte{0};
    for (std::size_t i = 0; i < 8 && i < out.size(); ++i)
      out[out.size() - 1 - i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
  };
}

// A UDP datagram: the 8-byte header + payload, as bytes.
inline std::vector<std::byte> datagram(std::uint32_t sequence_word, std::uint32_t timestamp,
                                       std::string_view payload) {
  return tsp::encode_udp_datagram(tsp::UdpHeader{sequence_word, timestamp},
                                  core::as_bytes(payload));
}

// The actions of one type, in order.
template <typename T, typename Action>
std::vector<T> only(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions)
    if (const auto* t = std::get_if<T>(&a)) out.push_back(*t);
  return out;
}

template <typename T, typename Action>
bool has(const std::vector<Action>& actions) {
  return !only<T>(actions).empty();
}

// The payloads of the Send actions, as text.
template <typename Action>
std::vector<std::string> sent(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& s : only<tsp::Send>(actions)) out.push_back(text(s.bytes));
  return out;
}

struct SentDatagram {
  tsp::UdpHeader header;
  std::string payload;
  bool operator==(const SentDatagram&) const = default;
};

// The Send actions parsed as UDP datagrams.
template <typename Action>
std::vector<SentDatagram> sent_datagrams(const std::vector<Action>& actions) {
  std::vector<SentDatagram> out;
  for (const auto& s : only<tsp::Send>(actions)) {
    auto d = tsp::parse_udp_datagram(s.bytes);
    if (!d) continue;
    std::string payload;
    for (auto b : d->payload) payload += static_cast<char>(b);
    out.push_back({d->header, payload});
  }
  return out;
}

}  // namespace tsp_test
