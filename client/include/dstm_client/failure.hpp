// The error type of dstm_client's results that end up in front of the operator: a message.
#pragma once

#include <iosfwd>
#include <string>

#include <boost/assert/source_location.hpp>

namespace dstm_client {

struct Failure {
  std::string message;  // names the thing and the reason; never a secret
  bool operator==(const Failure&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Failure& f);

// Lets boost::system::result<T, Failure>::value() throw (a std::runtime_error with the message).
[[noreturn]] void throw_exception_from_error(const Failure& f, const boost::source_location& loc);

}  // namespace dstm_client
