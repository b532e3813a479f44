// The tsp_net error category and the Error type's text.
#include "tsp_net/error.hpp"

#include <ostream>

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace tsp_net {
namespace {

class TspNetCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tsp_net"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::BadTarget:
        return "not a numeric IPv4/IPv6 address (or source and target families differ)";
      case Errc::BadConfig:
        return "client configuration does not fit the call";
      case Errc::ConnectTimeout:
        return "TCP connect timed out";
      case Errc::WriteTimeout:
        return "TCP write timed out";
      case Errc::Deadline:
        return "deadline passed";
      case Errc::Closed:
        return "session closed";
    }
    return "unknown tsp_net error";
  }
};

}  // namespace

const boost::system::error_category& tsp_net_category() noexcept {
  static const TspNetCategory category;
  return category;
}

std::string Error::message() const {
  std::string out = std::string{code.category().name()} + ": " + code.message();
  if (status) out += " (" + std::to_string(status->code) + " " + status->text + ")";
  return out;
}

std::ostream& operator<<(std::ostream& os, const Error& e) {
  return os << e.message();
}

void throw_exception_from_error(const Error& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error{e.code, e.message()}, loc);
}

}  // namespace tsp_net
