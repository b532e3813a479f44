// Text forms of leases.
#include "dstm_server/lease.hpp"

#include <ostream>

namespace dstm_server {

std::ostream& operator<<(std::ostream& os, LeaseState s) {
  switch (s) {
    case LeaseState::active:
      return os << "active";
    case LeaseState::expired:
      return os << "expired";
  }
  return os << "state(" << static_cast<int>(s) << ")";
}

std::ostream& operator<<(std::ostream& os, const Lease& l) {
  return os << l.ipv4 << " -> " << l.client << " identity='" << l.identity << "' tep='" << l.tep
            << "' granted=" << l.granted_at << " expires=" << l.expires_at << " " << l.state;
}

}  // namespace dstm_server
