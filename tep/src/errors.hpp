// Private to the tep library: error mappings its sources share.
#pragma once

#include <boost/system/error_code.hpp>

#include "tep/fourover6.hpp"

namespace tep {

// core::parse_ipv4's errors as ours (Inner*): its contract lists exactly Truncated, BadVersion,
// BadLength and BadHeader.
Errc inner_error_of(const boost::system::error_code& ec) noexcept;

}  // namespace tep
