// The dstm-client daemon: obtains a temporary IPv4 and a TEP from the DSTM server over TSP, runs
// the 4over6 interface for it, renews the lease, follows a lost TEP to a new one, and releases
// the lease on SIGINT/SIGTERM. Everything runs on one io_context thread.
//
//   connecting --create ok--> up --renewal ok--> up (renewed)
//                              |--keepalive lost--> recreating --create ok--> up (moved)
//                              |--lease ended----> recreating (expired, interface down) --> up
//                              `--SIGTERM--> delete (3 s at most), released, TUN closed, exit 0
//
// Output: one JSON line per state change on stdout (dstm_client/report.hpp), logs on stderr.
#pragma once

#include <memory>
#include <string>

#include <boost/system/result.hpp>

#include "dstm_client/options.hpp"

namespace boost::asio {
class io_context;
}

namespace dstm_client {

class Client {
 public:
  // Opens what needs no server (netlink, the TUN device, the control socket), installs the
  // SIGINT/SIGTERM handler and starts the client on `io`; io.run() returns once it has finished.
  // `password` is used for SASL only and never logged. Errors (text for the operator): the TUN
  // device cannot be made (EPERM, EBUSY...), netlink or the control socket fail.
  static boost::system::result<std::unique_ptr<Client>, std::string> start(
      boost::asio::io_context& io, Options options, std::string password);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // What SIGINT/SIGTERM do: release the lease and finish. Call on the io_context's thread.
  void stop() noexcept;
  // The process exit status once io.run() has returned: 0 after a stop or a lease that ended
  // with --no-renew; 1 after a fatal error (the interface could not be configured).
  int exit_code() const noexcept;

 private:
  struct Impl;
  explicit Client(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dstm_client
