// The other parties of the anycast lab tests, on ARR/UDP.
//
// --mode forge: an attacker that sees the client's probes (the test mirrors them to it) and tries
// to become the binding for the anycast address. It answers every probe from its own address,
// starts its own return-routability exchange (HoTI spoofed from the anycast address, CoTI from
// itself) and, with the care-of token it does get, sends a Binding Update whose home token is a
// guess.
// --mode replay: an honest member (anycast::Member, the library the member daemon runs) that,
// after each Binding Update it sends, sends it again (a replay) and once more with nonce indices
// the client never handed out (a stale index).
// Both print what they did when they end.
//
//   anycast_peer --mode forge|replay --anycast ADDR --self ADDR --port N --seconds S
//                [--ready-fd FD]
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anycast/member.hpp"
#include "anycast/rr.hpp"
#include "anycast/wire.hpp"
#include "core/address.hpp"

namespace {

int bound_socket(const core::Ipv6Address& address, std::uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  const auto& b = address.bytes();
  std::copy(b.begin(), b.end(), sa.sin6_addr.s6_addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::perror("anycast_forger: bind");
    std::exit(1);
  }
  return fd;
}

void send_to(int fd, const anycast::Endpoint& to, const std::vector<std::byte>& bytes) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(to.port);
  const auto& b = to.address.bytes();
  std::copy(b.begin(), b.end(), sa.sin6_addr.s6_addr);
  ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
}

anycast::Cookie some_cookie(std::uint8_t seed) {
  anycast::Cookie c{};
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::uint8_t>(seed + i * 17);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  core::Ipv6Address anycast_address, self;
  std::uint16_t port = anycast::kDefaultPort;
  int seconds = 10;
  int ready_fd = -1;
  std::string mode = "forge";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const std::string_view value = argv[i + 1];
    if (flag == "--anycast") anycast_address = core::Ipv6Address::parse(value).value();
    if (flag == "--self") self = core::Ipv6Address::parse(value).value();
    if (flag == "--port") port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    if (flag == "--seconds") seconds = std::atoi(argv[i + 1]);
    if (flag == "--ready-fd") ready_fd = std::atoi(argv[i + 1]);
    if (flag == "--mode") mode = std::string{value};
  }
  const int on_anycast = bound_socket(anycast_address, port);
  const int on_self = bound_socket(self, port);
  if (ready_fd >= 0) {
    (void)!::write(ready_fd, "READY\n", 6);
    ::close(ready_fd);
  }

  std::random_device device;
  anycast::Member member{anycast::MemberSettings{.anycast = {anycast_address}, .unicast = self},
                         [&](std::span<std::uint8_t> out) {
                           for (auto& b : out) b = static_cast<std::uint8_t>(device());
                         }};
  unsigned probes = 0, answers = 0, exchanges = 0, cots = 0, updates = 0, replays = 0, stale = 0;
  auto send_outgoing = [&](const anycast::Outgoing& out) {
    send_to(out.source == anycast_address ? on_anycast : on_self, out.destination, out.bytes);
    const auto parsed = anycast::parse(out.bytes);
    const auto* bu = parsed ? std::get_if<anycast::BindingUpdate>(&parsed->message.body) : nullptr;
    if (!bu) return;
    ++updates;
    send_to(on_self, out.destination, out.bytes);
    ++replays;
    auto shifted = *bu;
    shifted.sequence = static_cast<std::uint16_t>(bu->sequence + 1);
    shifted.nonce_indices =
        anycast::NonceIndices{static_cast<std::uint16_t>(bu->nonce_indices->home + 0x4000),
                              static_cast<std::uint16_t>(bu->nonce_indices->care_of + 0x4000)};
    send_to(on_self, out.destination, anycast::encode({parsed->message.flags, shifted}));
    ++stale;
  };
  std::uint16_t sequence = 1;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds{seconds};
  std::array<std::byte, 2048> buffer{};
  while (std::chrono::steady_clock::now() < end) {
    std::array<pollfd, 2> fds{{{on_anycast, POLLIN, 0}, {on_self, POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (const auto& p : fds) {
      if (!(p.revents & POLLIN)) continue;
      sockaddr_in6 from{};
      socklen_t length = sizeof from;
      const auto n = ::recvfrom(p.fd, buffer.data(), buffer.size(), 0,
                                reinterpret_cast<sockaddr*>(&from), &length);
      if (n <= 0) continue;
      std::array<std::uint8_t, 16> raw{};
      std::copy(std::begin(from.sin6_addr.s6_addr), std::end(from.sin6_addr.s6_addr), raw.begin());
      const anycast::Endpoint client{core::Ipv6Address{raw}, ntohs(from.sin6_port)};
      const auto parsed =
          anycast::parse(std::span<const std::byte>{buffer.data(), static_cast<std::size_t>(n)});
      if (!parsed) continue;
      const auto& body = parsed->message.body;
      const auto now = std::chrono::steady_clock::now();
      const auto to = p.fd == on_anycast ? anycast_address : self;
      if (mode == "replay") {
        std::vector<anycast::Outgoing> outs;
        if (const auto* probe = std::get_if<anycast::Probe>(&body)) {
          ++probes;
          if (auto r = member.on_probe(now, *probe, client, to)) outs = std::move(*r);
        } else if (const auto* hot = std::get_if<anycast::Hot>(&body)) {
          if (auto r = member.on_hot(now, *hot, client, to)) outs = std::move(*r);
        } else if (const auto* cot = std::get_if<anycast::Cot>(&body)) {
          ++cots;
          if (auto r = member.on_cot(now, *cot, client, to)) outs = std::move(*r);
        }
        for (const auto& out : outs) send_outgoing(out);
        continue;
      }
      if (const auto* probe = std::get_if<anycast::Probe>(&body)) {
        ++probes;
        anycast::ProbeAnswer answer{probe->flags, 16, probe->nonce, anycast_address, self};
        send_to(on_self, client, anycast::encode({0, answer}));
        ++answers;
        if (probe->flags & anycast::kProbeFlagBinding) {
          send_to(on_anycast, client, anycast::encode({0, anycast::Hoti{some_cookie(1)}}));
          send_to(on_self, client, anycast::encode({0, anycast::Coti{some_cookie(2)}}));
          ++exchanges;
        }
      } else if (const auto* cot = std::get_if<anycast::Cot>(&body)) {
        ++cots;
        // The home token went to the anycast address, i.e. to the real member: guess it.
        const auto kbm = anycast::binding_key(anycast::KeygenToken{}, cot->token);
        anycast::BindingUpdate bu;
        bu.sequence = sequence++;
        bu.flags = anycast::kBuFlagAck;
        bu.lifetime = 1;
        bu.home_address = anycast_address;
        bu.nonce_indices = anycast::NonceIndices{cot->nonce_index, cot->nonce_index};
        bu.authenticator = anycast::Authenticator{};
        auto bytes = anycast::encode({anycast::kFlagEquivalent, bu});
        const auto mac = anycast::authenticator(kbm, self, client.address,
                                                anycast::authenticated_portion(bytes));
        bu.authenticator = mac;
        send_to(on_self, client, anycast::encode({anycast::kFlagEquivalent, bu}));
        ++updates;
      }
    }
  }
  std::printf(
      "%s: probes=%u answers=%u exchanges=%u cot=%u binding_updates=%u replays=%u "
      "stale=%u\n",
      mode.c_str(), probes, answers, exchanges, cots, updates, replays, stale);
  return 0;
}
