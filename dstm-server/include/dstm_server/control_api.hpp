// The dstm-server's control-socket API (docs/dstm-server.md, "Control socket"): status, the
// lease table with search and paging, lease actions, the TEP table. /metrics and /counters come
// from the control server's counters registry.
#pragma once

#include <chrono>
#include <string>

#include "platform/control.hpp"

namespace dstm_server {

class Service;
class Transport;
struct Config;

struct ControlContext {
  Service& service;
  const Transport& transport;
  const Config& config;
  std::chrono::steady_clock::time_point started;
  std::string version;
};

// The context must outlive the router.
platform::Router make_control_router(const ControlContext& context);

}  // namespace dstm_server
