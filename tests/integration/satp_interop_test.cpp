// The satp codec against a live Debian anytun 0.3.8 (root: namespaces, a TUN device): anytun in
// namespace a tunnels pings for 192.0.2.2 to namespace b, where this test opens each SATP packet
// with satp::Codec, answers the echo request and seals the reply back. The pings succeed only if
// both directions are byte-compatible: keys, labels, counters, the tag and the header.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "core/bytes.hpp"
#include "core/checksum.hpp"
#include "satp/keys.hpp"
#include "satp/packet.hpp"
#include "support/lab.hpp"

using namespace std::chrono_literals;

namespace {

constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kPassphrase = "satp-interop-test";

constexpr const char* kTopology =
    "netns a\nnetns b\n"
    "veth a:eth0 b:eth0\n"
    "addr a eth0 2001:db8:5::1/64\n"
    "addr b eth0 2001:db8:5::2/64\n";

struct Peer {
  unsigned opened = 0;    // packets from anytun that opened (tag verified)
  unsigned rejected = 0;  // packets that did not
  unsigned replied = 0;   // echo replies sealed and sent back
  std::uint32_t next_seq = 1;
};

// Turns an IPv4 ICMP echo request into its reply in place: addresses swapped (the IPv4 header
// checksum does not change), type 0, the ICMP checksum updated for the type (RFC 1624).
bool to_echo_reply(std::span<std::byte> ip) {
  if (ip.size() < 28 || (std::to_integer<unsigned>(ip[0]) >> 4) != 4) return false;
  const std::size_t ihl = (std::to_integer<std::size_t>(ip[0]) & 0xf) * 4;
  if (ip.size() < ihl + 8 || std::to_integer<unsigned>(ip[9]) != 1 ||
      std::to_integer<unsigned>(ip[ihl]) != 8)
    return false;
  for (std::size_t i = 0; i < 4; ++i) std::swap(ip[12 + i], ip[16 + i]);
  const auto icmp = ip.subspan(ihl);
  const std::uint16_t old_word = core::load_be16(icmp.first(2));
  icmp[0] = std::byte{0};
  const std::uint16_t new_word = core::load_be16(icmp.first(2));
  core::store_be16(icmp.subspan(2, 2), core::checksum_update16(core::load_be16(icmp.subspan(2, 2)),
                                                               old_word, new_word));
  return true;
}

}  // namespace

TEST_CASE("satp: a live anytun 0.3.8 and our codec carry pings both ways", "[satp][interop]") {
  test::Lab lab{kTopology};
  // anytun: role left (its default), sender 7, MUX 3, AES-CTR-128 + SHA1 with a 10-byte tag.
  auto anytun = lab.spawn("a", {"anytun", "-D",
                                "-L",     "stderr:2",
                                "-t",     "tun",
                                "-d",     "anyt0",
                                "-i",     "2001:db8:5::1",
                                "-p",     "4444",
                                "-r",     "2001:db8:5::2",
                                "-o",     "4444",
                                "-s",     "7",
                                "-m",     "3",
                                "-e",     "left",
                                "-E",     kPassphrase,
                                "-c",     "aes-ctr",
                                "-a",     "sha1"});
  // Its TUN device appears once it runs; configure it as anytun's -n would.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!lab.run("a", {kIp, "link", "show", "dev", "anyt0"}).ok()) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(lab.run("a", {kIp, "addr", "add", "192.0.2.1/30", "dev", "anyt0"}).ok());
  REQUIRE(lab.run("a", {kIp, "link", "set", "dev", "anyt0", "up", "mtu", "1400"}).ok());

  // Our end in b: role right, the same passphrase.
  satp::Settings settings;
  settings.role = satp::Role::Right;
  auto codec =
      satp::Codec::create(settings, satp::master_key_from_passphrase(kPassphrase, settings.kd_prf),
                          satp::master_salt_from_passphrase(kPassphrase));
  REQUIRE(codec);
  std::atomic<bool> stop{false};
  std::promise<bool> bound;  // the responder's socket is bound (or could not be)
  Peer peer;
  std::thread responder{[&] {
    lab.enter("b", [&] {
      const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in6 self{};
      self.sin6_family = AF_INET6;
      self.sin6_port = htons(4444);
      ::inet_pton(AF_INET6, "2001:db8:5::2", &self.sin6_addr);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof self) != 0) {
        bound.set_value(false);
        return;
      }
      bound.set_value(true);
      std::array<std::byte, 2048> in{};
      std::array<std::byte, 2048> out{};
      while (!stop) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        sockaddr_in6 from{};
        socklen_t length = sizeof from;
        const auto n =
            ::recvfrom(fd, in.data(), in.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
        if (n <= 0) continue;
        auto opened = codec->open(std::span{in}.first(static_cast<std::size_t>(n)));
        if (!opened) {
          ++peer.rejected;
          continue;
        }
        ++peer.opened;
        if (opened->header.mux != 3 || opened->header.sender_id != 7 ||
            opened->payload_type != satp::kPayloadIpv4 || !to_echo_reply(opened->payload))
          continue;
        auto sealed = codec->seal({.seq = peer.next_seq++, .sender_id = 0x0102, .mux = 3},
                                  satp::kPayloadIpv4, opened->payload, out);
        if (!sealed) continue;
        ::sendto(fd, sealed->data(), sealed->size(), 0, reinterpret_cast<sockaddr*>(&from), length);
        ++peer.replied;
      }
      ::close(fd);
    });
  }};
  struct Join {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Join() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } join{stop, responder};
  auto bound_result = bound.get_future();
  REQUIRE(bound_result.wait_for(10s) == std::future_status::ready);
  REQUIRE(bound_result.get());

  // anytun forwards once its threads run and the neighbours are known: the first answered ping
  // is the readiness signal (at most 20 tries of 1 s), then every ping of a series must pass.
  bool ready = false;
  for (int i = 0; i < 20 && !ready; ++i)
    ready = lab.run("a", {"ping", "-n", "-c", "1", "-W", "1", "192.0.2.2"}, 5s).ok();
  REQUIRE(ready);
  const auto ping =
      lab.run("a", {"ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "192.0.2.2"}, 20s);
  stop = true;
  responder.join();
  INFO(ping.output);
  CHECK(ping.ok());
  CHECK(ping.output.find("5 received") != std::string::npos);
  CHECK(peer.opened >= 6);
  CHECK(peer.rejected == 0);
  CHECK(peer.replied >= 6);
}
