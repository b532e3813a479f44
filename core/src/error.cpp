// The core error category: names for core::Errc.
#include "core/error.hpp"

namespace core {
namespace {

class CoreCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "core"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::truncated: return "truncated";
      case Errc::bad_version: return "wrong version";
      case Errc::bad_length: return "length field disagrees with the data";
      case Errc::bad_checksum: return "bad checksum";
      case Errc::bad_header: return "invalid header field";
      case Errc::too_many_headers: return "too many extension headers";
      case Errc::unsupported: return "unsupported";
      case Errc::no_space: return "output buffer too small";
      case Errc::empty: return "empty value";
      case Errc::bad_character: return "invalid character";
      case Errc::bad_field_count: return "wrong number of fields";
      case Errc::field_out_of_range: return "field out of range";
      case Errc::leading_zero: return "leading zero in a decimal field";
      case Errc::bad_compression: return "misplaced or repeated '::'";
      case Errc::bad_prefix_length: return "invalid prefix length";
      case Errc::host_bits_set: return "host bits set in prefix";
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
