// Failure: printing and throwing.
#include "dstm_client/failure.hpp"

#include <ostream>
#include <stdexcept>

namespace dstm_client {

std::ostream& operator<<(std::ostream& os, const Failure& f) {
  return os << f.message;
}

void throw_exception_from_error(const Failure& f, const boost::source_location&) {
  throw std::runtime_error(f.message);
}

}  // namespace dstm_client
