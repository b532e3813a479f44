// The dstm-server's control-socket API (docs/dstm-server.md, "Control socket"): status, the
// lease table with search and paging, lease actions, the TEP table, the config check and reload.
// /metrics, /counters and /logs come from the control server.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "platform/control.hpp"
#include "platform/restart.hpp"

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
  const platform::DaemonLife& life;  // generation, config file, last reload (for /status)
  // POST /reload: the answer; stopping the daemon when it restarts is the callee's business.
  std::function<platform::Response()> reload;
};

// The context must outlive the router.
platform::Router make_control_router(const ControlContext& context);

}  // namespace dstm_server
