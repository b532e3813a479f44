// The relay error category: snake_case names for relay::Errc (counter labels and messages).
#include "relay/error.hpp"

#include <string>

namespace relay {
namespace {

class RelayCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "relay"; }
  std::string message(int ev) const override {
    return std::string{to_string(static_cast<Errc>(ev))};
  }
};

}  // namespace

const boost::system::error_category& relay_category() noexcept {
  static const RelayCategory category;
  return category;
}

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::Truncated:
      return "truncated";
    case Errc::TrailingBytes:
      return "trailing_bytes";
    case Errc::BadVersion:
      return "bad_version";
    case Errc::UnknownType:
      return "unknown_type";
    case Errc::BadField:
      return "bad_field";
    case Errc::NoSpace:
      return "no_space";
    case Errc::FrameTooLong:
      return "frame_too_long";
    case Errc::NotIp:
      return "not_ip";
    case Errc::NoRoute:
      return "no_route";
    case Errc::UnknownMux:
      return "unknown_mux";
    case Errc::UnknownMapping:
      return "unknown_mapping";
    case Errc::Unsupported:
      return "unsupported";
    case Errc::TableFull:
      return "table_full";
    case Errc::PortsExhausted:
      return "ports_exhausted";
    case Errc::NotAllowed:
      return "not_allowed";
  }
  return "unknown";
}

}  // namespace relay
