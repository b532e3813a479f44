// The core error category: names for core::Errc.
#include "core/error.hpp"

namespace core {
namespace {

class CoreCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "core"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::Truncated:
        return "truncated";
      case Errc::BadVersion:
        return "wrong version";
      case Errc::BadLength:
        return "length field disagrees with the data";
      case Errc::BadChecksum:
        return "bad checksum";
      case Errc::BadHeader:
        return "invalid header field";
      case Errc::TooManyHeaders:
        return "too many extension headers";
      case Errc::Unsupported:
        return "unsupported";
      case Errc::NoSpace:
        return "output buffer too small";
      case Errc::Empty:
        return "empty value";
      case Errc::BadCharacter:
        return "invalid character";
      case Errc::BadFieldCount:
        return "wrong number of fields";
      case Errc::FieldOutOfRange:
        return "field out of range";
      case Errc::LeadingZero:
        return "leading zero in a decimal field";
      case Errc::BadCompression:
        return "misplaced or repeated '::'";
      case Errc::BadPrefixLength:
        return "invalid prefix length";
      case Errc::HostBitsSet:
        return "host bits set in prefix";
    }
    return "unknown core error";
  }
};

}  // namespace

const boost::system::error_category& core_category() noexcept {
  static const CoreCategory category;
  return category;
}

}  // namespace core
