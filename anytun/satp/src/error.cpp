// The satp error category: snake_case names for satp::Errc (counter labels and messages).
#include "satp/error.hpp"

#include <string>

namespace satp {
namespace {

class SatpCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "satp"; }
  std::string message(int ev) const override {
    return std::string{to_string(static_cast<Errc>(ev))};
  }
};

}  // namespace

const boost::system::error_category& satp_category() noexcept {
  static const SatpCategory category;
  return category;
}

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::Truncated:
      return "truncated";
    case Errc::TooLong:
      return "too_long";
    case Errc::BadTag:
      return "bad_tag";
    case Errc::Replay:
      return "replay";
    case Errc::BadPayloadType:
      return "bad_payload_type";
    case Errc::NoSpace:
      return "no_space";
    case Errc::TooManySenders:
      return "too_many_senders";
    case Errc::BadKeyLength:
      return "bad_key_length";
    case Errc::BadHex:
      return "bad_hex";
    case Errc::BadSettings:
      return "bad_settings";
    case Errc::BadFrame:
      return "bad_frame";
    case Errc::BadArchive:
      return "bad_archive";
    case Errc::BadRecord:
      return "bad_record";
    case Errc::Unsupported:
      return "unsupported";
  }
  return "unknown";
}

}  // namespace satp
