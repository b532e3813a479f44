// TunDevice: opening /dev/net/tun queues with TUNSETIFF.
#include "platform/tun.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace platform {

Result<TunDevice> TunDevice::open(const TunOptions& options) {
  if (options.name.size() >= IFNAMSIZ) return Errc::NameTooLong;
  if (options.queues == 0 || options.queues > kMaxQueues) return errno_code(EINVAL);
  if (options.tso4 && !options.vnet_hdr) return errno_code(EINVAL);

  ifreq ifr{};
  // IFF_NO_PI: packets are bare IP; the version nibble says which family.
  int flags = IFF_TUN | IFF_NO_PI;
  if (options.vnet_hdr) flags |= IFF_VNET_HDR;
  if (options.queues > 1) flags |= IFF_MULTI_QUEUE;
  ifr.ifr_flags = static_cast<short>(flags);
  std::memcpy(ifr.ifr_name, options.name.data(), options.name.size());

  std::vector<Fd> queues;
  queues.reserve(options.queues);
  for (unsigned i = 0; i < options.queues; ++i) {
    Fd fd{::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK)};
    if (!fd) return errno_code(errno);
    // The first TUNSETIFF creates the device and writes back its actual name; the later ones
    // attach further queues to that name.
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return errno_code(errno);
    if (options.tso4) {
      const unsigned long offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN;
      if (::ioctl(fd.get(), TUNSETOFFLOAD, offloads) < 0) return errno_code(errno);
    }
    queues.push_back(std::move(fd));
  }
  std::string name{ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ)};
  // if_nametoindex asks in the calling thread's namespace, which is where the device was made.
  const unsigned ifindex = ::if_nametoindex(name.c_str());
  if (ifindex == 0) return errno_code(errno);
  return TunDevice{std::move(queues), std::move(name), ifindex, options.vnet_hdr};
}

}  // namespace platform
