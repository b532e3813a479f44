// The tsp error category: names for tsp::Errc.
#include "tsp/error.hpp"

namespace tsp {
namespace {

class TspCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tsp"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::LineTooLong:
        return "line too long";
      case Errc::BodyTooLarge:
        return "Content-length above the limit";
      case Errc::BadContentLength:
        return "invalid Content-length";
      case Errc::BufferOverflow:
        return "too much unconsumed input";
      case Errc::DatagramTooShort:
        return "datagram shorter than the TSP header";
      case Errc::NotSignalling:
        return "not a TSP signalling datagram";
      case Errc::IncompleteDatagram:
        return "datagram ends inside a message";
      case Errc::BadVersion:
        return "malformed VERSION line";
      case Errc::UnsupportedVersion:
        return "unsupported TSP version";
      case Errc::BadStatusLine:
        return "malformed status line";
      case Errc::BadCapability:
        return "malformed CAPABILITY line";
      case Errc::BadBase64:
        return "invalid base64";
      case Errc::BadUtf8:
        return "invalid UTF-8 or embedded NUL";
      case Errc::UnknownMechanism:
        return "SASL mechanism not offered";
      case Errc::BadSaslMessage:
        return "malformed SASL message";
      case Errc::AuthenticationFailed:
        return "authentication failed";
      case Errc::NonceReused:
        return "DIGEST-MD5 nonce already used";
      case Errc::RspauthMismatch:
        return "server rspauth does not match";
      case Errc::BadXml:
        return "malformed or oversized XML";
      case Errc::BadTunnel:
        return "invalid tunnel message";
      case Errc::UnsupportedTunnelType:
        return "unsupported tunnel type";
      case Errc::BadIpv4Address:
        return "invalid IPv4 address";
      case Errc::BadIpv6Address:
        return "invalid IPv6 address";
      case Errc::UnexpectedMessage:
        return "message not allowed in this state";
      case Errc::Timeout:
        return "phase deadline passed";
      case Errc::PeerClosed:
        return "peer closed the transport";
      case Errc::ErrorStatus:
        return "peer answered with an error status";
      case Errc::NoCommonMechanism:
        return "no common SASL mechanism";
      case Errc::NoCommonTunnelType:
        return "requested tunnel type not offered";
      case Errc::Redirected:
        return "redirected to other brokers";
      case Errc::BackendFailed:
        return "lease or mapping backend failed";
    }
    return "unknown tsp error";
  }
};

}  // namespace

const boost::system::error_category& tsp_category() noexcept {
  static const TspCategory category;
  return category;
}

}  // namespace tsp
