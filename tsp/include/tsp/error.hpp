// Error codes of the TSP library, exposed as boost::system / std::error_code.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace tsp {

// Why input was rejected or a session ended. Values are stable: they appear in counters and logs.
enum class Errc {
  // Stream and datagram framing.
  LineTooLong = 1,     // a line is longer than FramerLimits::max_line
  BodyTooLarge,        // a Content-length above FramerLimits::max_body
  BadContentLength,    // a Content-length value that is not a plain decimal number
  BufferOverflow,      // more unconsumed input than FramerLimits::max_buffered
  DatagramTooShort,    // a UDP datagram shorter than the 8-byte header
  NotSignalling,       // first nibble is not 0xF: tunnelled data, not TSP
  IncompleteDatagram,  // a datagram ended inside a message
  // Protocol text.
  BadVersion,          // a VERSION line that cannot be parsed
  UnsupportedVersion,  // a well-formed version this library does not speak
  BadStatusLine,       // a reply that does not start with a status code
  BadCapability,       // a CAPABILITY line that cannot be parsed
  BadBase64,           // invalid base64 text
  BadUtf8,             // text that is not valid UTF-8, or contains a NUL
  // SASL.
  UnknownMechanism,      // AUTHENTICATE with a mechanism not offered
  BadSaslMessage,        // malformed PLAIN message or DIGEST-MD5 directives
  AuthenticationFailed,  // wrong credentials or unknown user
  NonceReused,           // a DIGEST-MD5 response for a nonce already consumed
  RspauthMismatch,       // the server's rspauth does not prove knowledge of the password
  // XML tunnel messages.
  BadXml,                 // not well-formed, has a DOCTYPE, or exceeds a size/depth limit
  BadTunnel,              // well-formed, but not a valid <tunnel> message
  UnsupportedTunnelType,  // a tunnel type this library does not know
  BadIpv4Address,         // <address type="ipv4"> text is not an IPv4 address
  BadIpv6Address,         // <address type="ipv6"> text is not an IPv6 address
  // Sessions.
  UnexpectedMessage,   // a valid message in a state that does not accept it
  Timeout,             // a phase deadline passed
  PeerClosed,          // the transport closed under the session
  ErrorStatus,         // the peer answered with an error status (client side)
  NoCommonMechanism,   // the server offers none of the configured mechanisms
  NoCommonTunnelType,  // the server does not offer the tunnel type to be requested
  Redirected,          // the server redirected the client to other brokers
  BackendFailed,       // the daemon could not serve a lease or mapping request
};

const boost::system::error_category& tsp_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), tsp_category()};
}

template <typename T>
using Result = boost::system::result<T>;

}  // namespace tsp

namespace boost::system {
template <>
struct is_error_code_enum<::tsp::Errc> : std::true_type {};
}  // namespace boost::system
