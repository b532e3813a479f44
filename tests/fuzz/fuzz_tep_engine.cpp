// The TEP engine under hostile traffic: the input is a script of operations (packets from the
// tunnel and from the IPv4 side, the server's answers, withdrawals, time passing) run against one
// Engine with small limits. Invariants: never a crash, a hang or a leak; the miss queue and the
// binding table stay within their limits; every packet the engine emits is a well-formed IPv4
// packet (to the IPv4 side) or an IPv6 packet carrying next header 4 from the TEP's address (to
// the tunnel).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/ipv4.hpp"
#include "core/ipv6.hpp"
#include "fuzz_check.hpp"
#include "tep/engine.hpp"

namespace {

const auto kLocal = *core::Ipv6Address::parse("2001:db8:e2::2");

struct CheckingSink : tep::Engine::Sink {
  void to_ipv4(core::Bytes p) override { FUZZ_CHECK(core::parse_ipv4(p).has_value()); }
  void to_tunnel(core::Bytes p) override {
    const auto h = core::parse_ipv6(p);
    FUZZ_CHECK(h.has_value());
    FUZZ_CHECK(h->header.next_header == 4);
    FUZZ_CHECK(h->header.src == kLocal);
  }
  void query(core::Ipv4Address a) override { asked.push_back(a); }
  void icmp_error(core::Bytes p) override {
    const auto ip = core::parse_ipv4(p);
    FUZZ_CHECK(ip.has_value());
    FUZZ_CHECK(ip->header.protocol == 1);
  }
  std::vector<core::Ipv4Address> asked;
};

struct Script {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tep::EngineConfig config;
  config.local = kLocal;
  config.router = *core::Ipv4Address::parse("192.0.2.5");
  config.keepalive = *core::Ipv4Address::parse("192.0.2.202");
  config.pool = {*core::Ipv4Prefix::parse("198.51.100.0/28")};
  config.tunnel_mtu = 1280;
  config.bindings.max_bindings = 8;
  config.bindings.max_negative = 4;
  config.queue.per_address = 3;
  config.queue.max_packets = 10;
  config.queue.max_bytes = 8192;
  config.queue.max_addresses = 5;
  CheckingSink sink;
  tep::Engine engine{config, sink};
  tep::TimePoint now{std::chrono::seconds{100}};
  const core::Ipv6Address clients[2] = {*core::Ipv6Address::parse("2001:db8:c1::2"),
                                        *core::Ipv6Address::parse("2001:db8:c2::2")};

  Script s{data, size};
  std::vector<std::byte> frame;
  for (int step = 0; step < 64 && s.n > 0; ++step) {
    const auto op = s.byte() % 8;
    const auto pool_address = [&] {
      return core::Ipv4Address{0xc6336400u | (s.byte() & 0x0f)};  // 198.51.100.0/28
    };
    switch (op) {
      case 0:
      case 1: {  // a packet: the next length-prefixed bytes
        const std::size_t len = std::min<std::size_t>(s.u16() % 2048, s.n);
        frame.assign(tep::kEncapOverhead + len, std::byte{0});
        for (std::size_t i = 0; i < len; ++i)
          frame[tep::kEncapOverhead + i] = static_cast<std::byte>(s.byte());
        if (op == 0)
          engine.from_ipv4(frame, tep::kEncapOverhead, now);
        else
          engine.from_tunnel(core::MutableBytes{frame}.subspan(tep::kEncapOverhead), now);
        break;
      }
      case 2:
        engine.answer_leased(pool_address(), clients[s.byte() & 1],
                             std::chrono::seconds{s.byte() % 20}, now);
        break;
      case 3:
        engine.answer_not_leased(pool_address(), now);
        break;
      case 4:
        engine.answer_failed(pool_address(), now);
        break;
      case 5:
        engine.withdraw(pool_address());
        break;
      case 6:
        now += std::chrono::milliseconds{s.u16()};
        engine.tick(now);
        break;
      case 7:
        engine.flush();
        break;
    }
    FUZZ_CHECK(engine.queue().packets() <= config.queue.max_packets);
    FUZZ_CHECK(engine.queue().bytes() <= config.queue.max_bytes);
    FUZZ_CHECK(engine.queue().addresses() <= config.queue.max_addresses);
    FUZZ_CHECK(engine.bindings().size() <= config.bindings.max_bindings);
    FUZZ_CHECK(engine.bindings().negative_size() <= config.bindings.max_negative);
  }
  return 0;
}
