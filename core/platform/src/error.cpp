// The platform error category: names for platform::Errc.
#include "platform/error.hpp"

namespace platform {
namespace {

class PlatformCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "platform"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::NetlinkTruncated:
        return "netlink message truncated";
      case Errc::NetlinkMalformed:
        return "malformed netlink message";
      case Errc::AckTimeout:
        return "no netlink ack before the deadline";
      case Errc::TooManyReplies:
        return "too many netlink replies";
      case Errc::MissingReply:
        return "netlink request acked without the expected reply";
      case Errc::NameTooLong:
        return "interface name too long";
      case Errc::NotificationTimeout:
        return "no matching netlink notification before the deadline";
    }
    return "unknown platform error";
  }
};

}  // namespace

const boost::system::error_category& platform_category() noexcept {
  static const PlatformCategory category;
  return category;
}

}  // namespace platform
