// Anycast resolving and return-routability binding end to end (root: namespaces), with the real
// daemons: a client namespace (anycast-resolver, curl under libanycast-preload.so), a router,
// two members m1 and m2 sharing the anycast address 2001:db8:a::1 (each with anycast-member and
// a small TCP service), and an attacker namespace e. The router's route for the anycast address
// picks the member; tests move it mid-transfer.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "anycast/query.hpp"
#include "core/address.hpp"
#include "platform/control.hpp"
#include "support/daemon_control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kDeadline = 20s;
constexpr const char* kIp = "/usr/sbin/ip";
constexpr const char* kAnycast = "2001:db8:a::1";
constexpr const char* kMember1 = "2001:db8:1::2";
constexpr const char* kMember2 = "2001:db8:2::2";
constexpr const char* kEvil = "2001:db8:e::2";
constexpr int kServicePort = 8080;

// c - r - {m1, m2, e}. The anycast address is an ordinary address on each member's lo (the usual
// operator setup): plain TCP to it works until the route moves (F4 of the anycast notes).
constexpr const char* kTopology =
    "netns c\nnetns r\nnetns m1\nnetns m2\nnetns e\n"
    "veth c:eth0 r:c0\nveth r:m1 m1:eth0\nveth r:m2 m2:eth0\nveth r:e0 e:eth0\n"
    "addr c eth0 2001:db8:c::2/64\naddr r c0 2001:db8:c::1/64\n"
    "addr r m1 2001:db8:1::1/64\naddr m1 eth0 2001:db8:1::2/64\n"
    "addr r m2 2001:db8:2::1/64\naddr m2 eth0 2001:db8:2::2/64\n"
    "addr r e0 2001:db8:e::1/64\naddr e eth0 2001:db8:e::2/64\n"
    "addr m1 lo 2001:db8:a::1/128\naddr m2 lo 2001:db8:a::1/128\n"
    "route c 2001:db8::/32 via 2001:db8:c::1\n"
    "route m1 2001:db8::/32 via 2001:db8:1::1\n"
    "route m2 2001:db8::/32 via 2001:db8:2::1\n"
    "route e 2001:db8::/32 via 2001:db8:e::1\n"
    "route r 2001:db8:a::1/128 via 2001:db8:1::2\n"
    "sysctl r net.ipv6.conf.all.forwarding=1\n";

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds deadline = kDeadline) {
  const auto end = Clock::now() + deadline;
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::int64_t number(const json::object& o, std::string_view group, std::string_view name) {
  const auto* g = o.if_contains(group);
  if (!g || !g->is_object()) return 0;
  const auto* v = g->as_object().if_contains(name);
  return v ? v->to_number<std::int64_t>() : 0;
}

std::string str(const json::value& v) {
  return std::string{v.as_string()};
}

// One question on the resolver's query socket, as the preload library asks it.
std::optional<anycast::query::Answer> ask(const std::string& socket_path, std::string_view address,
                                          std::uint16_t wait_ms) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::copy(socket_path.begin(), socket_path.end(), sa.sun_path);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::optional<anycast::query::Answer> out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    anycast::query::Request request;
    request.flags = wait_ms > 0 ? anycast::query::kFlagMayWait : 0;
    request.wait_ms = wait_ms;
    request.address = core::Ipv6Address::parse(address).value().bytes();
    const auto bytes = anycast::query::encode(request);
    std::array<std::uint8_t, 64> answer{};
    if (::send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())) {
      const auto n = ::recv(fd, answer.data(), answer.size(), 0);
      if (n > 0)
        out = anycast::query::parse_answer(std::span{answer}.first(static_cast<std::size_t>(n)));
    }
  }
  ::close(fd);
  return out;
}

std::string unicast_of(const anycast::query::Answer& a) {
  return core::Ipv6Address{a.unicast}.to_string();
}

struct ResolverSetup {
  std::string policy = "secure";
  std::string methods = R"(["udp"])";
  std::string extra;  // more keys, each followed by a comma
};

class AnycastLab {
 public:
  AnycastLab() : lab_{kTopology} {
    for (const char* m : {"m1", "m2"}) start_service(m);
    start_member("m1");
    start_member("m2");
  }

  test::Lab& lab() { return lab_; }
  std::filesystem::path dir() const { return dir_.path(); }

  void start_service(const std::string& m) {
    services_[index(m)] = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", lab_.netns_name(m), ANYCAST_SERVICE_BIN,
                                 "--name", m, "--port", std::to_string(kServicePort)},
        dir_ / (m + "-service.log"));
    REQUIRE(services_[index(m)]->wait_ready(kDeadline));
  }

  // `join`: the member holds the anycast address as kernel anycast on its eth0.
  void start_member(const std::string& m, bool join = false) {
    const auto config =
        dir_.write(m + ".json",
                   fmt::format(R"({{"anycast": {{"member": {{"anycast": ["{}"], "unicast": "{}",
                         "port": 4545, {} "control_socket": "{}"}}}}}})",
                               kAnycast, m == "m1" ? kMember1 : kMember2,
                               join ? R"("join": {"interface": "eth0"},)" : "", member_socket(m)));
    members_[index(m)] = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", lab_.netns_name(m), ANYCAST_MEMBER_BIN,
                                 "--config", config.string()},
        dir_ / (m + "-member.log"));
    INFO(members_[index(m)]->log());
    REQUIRE(members_[index(m)]->wait_ready(kDeadline));
  }
  void stop_member(const std::string& m) {
    members_[index(m)]->terminate(10s);
    members_[index(m)].reset();
  }

  void start_resolver(const ResolverSetup& s) {
    resolver_.reset();
    const auto config =
        dir_.write("resolver.json",
                   fmt::format(R"({{"anycast": {{"resolver": {{"prefixes": ["2001:db8:a::/64"],
                         "policy": "{}", "methods": {}, {}
                         "socket": "{}", "control_socket": "{}"}}}}}})",
                               s.policy, s.methods, s.extra, query_socket(), resolver_socket()));
    resolver_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", lab_.netns_name("c"), ANYCAST_RESOLVER_BIN,
                                 "--config", config.string(), "--log-level", "debug"},
        dir_ / "resolver.log");
    INFO(resolver_->log());
    REQUIRE(resolver_->wait_ready(kDeadline));
  }

  std::string query_socket() const { return (dir_ / "query.sock").string(); }
  std::string resolver_socket() const { return (dir_ / "resolver.sock").string(); }
  std::string member_socket(const std::string& m) const { return (dir_ / (m + ".sock")).string(); }

  json::object resolver_status() const { return get(resolver_socket(), "/status"); }
  json::object member_status(const std::string& m) const {
    return get(member_socket(m), "/status");
  }
  std::optional<json::object> cache_entry() const {
    auto r = test::try_control(resolver_socket(), platform::Method::Get,
                               fmt::format("/cache/{}", kAnycast));
    if (!r || r->status != 200) return std::nullopt;
    return r->body.as_object();
  }
  std::string resolver_log() const { return resolver_ ? resolver_->log() : ""; }

  // Routes the anycast address to member m on the router.
  void route_to(const std::string& m) {
    const auto r = lab_.run("r", {kIp, "-6", "route", "replace", fmt::format("{}/128", kAnycast),
                                  "via", m == "m1" ? kMember1 : kMember2});
    REQUIRE(r.ok());
  }

  // curl in the client namespace, with or without the preload library.
  std::vector<std::string> curl(std::string_view path, bool preload,
                                std::vector<std::string> more = {}) const {
    std::vector<std::string> argv{"/usr/bin/env"};
    if (preload) {
      argv.push_back(fmt::format("LD_PRELOAD={}", ANYCAST_PRELOAD_SO));
      argv.push_back(fmt::format("ANYCAST_RESOLVER_SOCKET={}", query_socket()));
    }
    for (auto& a : std::vector<std::string>{"curl", "-sS", "--max-time", "25"}) argv.push_back(a);
    for (auto& a : more) argv.push_back(std::move(a));
    argv.push_back(fmt::format("http://[{}]:{}{}", kAnycast, kServicePort, path));
    return argv;
  }
  test::RunResult run_curl(std::string_view path, bool preload) {
    return lab_.run("c", curl(path, preload), 30s);
  }
  // A request straight to member m's unicast address (not through the anycast route).
  test::RunResult direct(const std::string& m, std::string_view path) {
    return lab_.run(
        "c",
        {"curl", "-sS", "--max-time", "35",
         fmt::format("http://[{}]:{}{}", m == "m1" ? kMember1 : kMember2, kServicePort, path)},
        40s);
  }

 private:
  static std::size_t index(const std::string& m) { return m == "m1" ? 0 : 1; }
  static json::object get(const std::string& socket, const std::string& target) {
    auto r = test::try_control(socket, platform::Method::Get, target);
    REQUIRE(r.has_value());
    REQUIRE(r->status == 200);
    return r->body.as_object();
  }

  test::Lab lab_;
  test::TempDir dir_;
  std::array<std::unique_ptr<test::DaemonProcess>, 2> services_;
  std::array<std::unique_ptr<test::DaemonProcess>, 2> members_;
  std::unique_ptr<test::DaemonProcess> resolver_;
};

bool is_pattern(const std::filesystem::path& file, std::uint64_t bytes) {
  std::ifstream in{file, std::ios::binary};
  std::vector<char> data{std::istreambuf_iterator<char>{in}, {}};
  if (data.size() != bytes) return false;
  for (std::uint64_t i = 0; i < bytes; ++i)
    if (static_cast<std::uint8_t>(data[i]) !=
        static_cast<std::uint8_t>((i * 131 + (i >> 11)) & 0xff))
      return false;
  return true;
}

}  // namespace

TEST_CASE("an unmodified curl reaches the anycast service through one member's unicast address",
          "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({});

  // Without the library curl talks to the anycast address itself.
  const auto plain = lab.run_curl("/who", false);
  INFO(plain.output);
  REQUIRE(plain.ok());
  CHECK(plain.output == fmt::format("m1 {}\n", kAnycast));

  // With it the connection goes to m1's unicast address, bound by return routability.
  const auto resolved = lab.run_curl("/who", true);
  INFO(resolved.output << lab.resolver_log());
  REQUIRE(resolved.ok());
  CHECK(resolved.output == fmt::format("m1 {}\n", kMember1));

  const auto entry = lab.cache_entry();
  REQUIRE(entry);
  CHECK(str(entry->at("state")) == "bound");
  CHECK(str(entry->at("unicast")) == kMember1);
  CHECK(entry->at("verified").as_bool());
  CHECK(entry->at("expires_in_ms").to_number<std::int64_t>() <= 16000);
  const auto m1 = lab.member_status("m1");
  CHECK(number(m1, "counters", "binding_updates_sent") >= 1);
  CHECK(number(m1, "counters", "binding_acks_accepted") >= 1);
  CHECK(number(lab.member_status("m2"), "counters", "probes") == 0);
  CHECK(number(lab.resolver_status(), "counters", "bindings_verified") >= 1);
}

TEST_CASE("a route change mid-transfer resets a plain anycast session but not a resolved one",
          "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({});
  constexpr std::uint64_t kBytes = 4 << 20;

  for (const bool preload : {false, true}) {
    INFO((preload ? "through the resolver" : "plain anycast"));
    lab.route_to("m1");
    const auto out = lab.dir() / fmt::format("stream-{}.bin", preload);
    auto curl = lab.lab().spawn(
        "c", lab.curl(fmt::format("/stream?bytes={}", kBytes), preload, {"-o", out.string()}));
    // m1 has sent half and waits: move the route to m2, then let m1 go on.
    const auto half = lab.direct("m1", "/wait-half");
    REQUIRE(half.output == "half\n");
    lab.route_to("m2");
    REQUIRE(lab.direct("m1", "/resume").ok());
    const auto result = curl.wait(30s);
    INFO(result.output);
    if (preload) {
      CHECK(result.ok());
      CHECK(is_pattern(out, kBytes));
    } else {
      // m2 knows no such connection and answers the client's next segment with a reset.
      CHECK(result.exit_code == 56);
      CHECK(result.output.find("reset") != std::string::npos);
    }
  }
}

TEST_CASE("secure mode: a forged probe answer does not make a binding", "[anycast]") {
  AnycastLab lab;
  auto& l = lab.lab();
  // The attacker sees the client's probes, and only them: the router mirrors every ARR/UDP probe
  // (magic 0xAC, version 1, kind 1 at the start of the UDP payload) it receives from the client
  // to e. e takes the router's client-side MAC address so that the copies are addressed to it,
  // and holds the anycast address so that it accepts them.
  const auto link = l.run("r", {kIp, "-j", "link", "show", "dev", "c0"});
  REQUIRE(link.ok());
  const auto mac = str(json::parse(link.output).at(0).at("address"));
  REQUIRE(l.run("e", {kIp, "link", "set", "dev", "eth0", "address", mac}).ok());
  REQUIRE(
      l.run("e", {kIp, "-6", "addr", "add", fmt::format("{}/128", kAnycast), "dev", "lo", "nodad"})
          .ok());
  REQUIRE(l.run("r", {"tc", "qdisc", "add", "dev", "c0", "clsact"}).ok());
  const auto mirror = l.run(
      "r", {"tc",    "filter", "add",    "dev",      "c0",     "ingress",    "protocol",   "ipv6",
            "u32",   "match",  "ip6",    "protocol", "17",     "0xff",       "match",      "ip6",
            "dport", "4545",   "0xffff", "match",    "u32",    "0xac010001", "0xffff00ff", "at",
            "48",    "action", "mirred", "egress",   "mirror", "dev",        "e0"});
  INFO(mirror.output);
  REQUIRE(mirror.ok());

  int runs = 0;
  auto forger = [&](int seconds) {
    return std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", l.netns_name("e"), ANYCAST_PEER_BIN,
                                 "--mode", "forge", "--anycast", kAnycast, "--self", kEvil,
                                 "--port", "4545", "--seconds", std::to_string(seconds)},
        lab.dir() / fmt::format("forger-{}.log", ++runs));
  };

  SECTION("with the member answering, the binding is the member's") {
    lab.start_resolver({});
    auto evil = forger(10);
    REQUIRE(evil->wait_ready(kDeadline));
    const auto answer = ask(lab.query_socket(), kAnycast, 2000);
    REQUIRE(answer);
    CHECK(answer->status == anycast::query::Status::Unicast);
    CHECK(unicast_of(*answer) == kMember1);
    evil->wait(15s);
    INFO(evil->log());
    CHECK(evil->log().find("answers=0") == std::string::npos);  // it did see and answer a probe
    const auto st = lab.resolver_status();
    CHECK(number(st, "counters", "answers_ignored_secure") >= 2);  // m1's and the forger's
  }

  SECTION("with the member silent, probe mode believes the forger, secure mode binds nothing") {
    lab.stop_member("m1");
    lab.start_resolver({.policy = "probe", .methods = R"(["udp"])", .extra = ""});
    {
      auto evil = forger(5);
      REQUIRE(evil->wait_ready(kDeadline));
      const auto answer = ask(lab.query_socket(), kAnycast, 2000);
      REQUIRE(answer);
      CHECK(answer->status == anycast::query::Status::Unicast);
      CHECK(unicast_of(*answer) == kEvil);  // what return routability is there to prevent
      evil->wait(10s);
    }
    lab.start_resolver({});
    auto evil = forger(5);
    REQUIRE(evil->wait_ready(kDeadline));
    const auto answer = ask(lab.query_socket(), kAnycast, 2000);
    REQUIRE(answer);
    CHECK(answer->status != anycast::query::Status::Unicast);
    evil->wait(10s);
    INFO(evil->log() << lab.resolver_log());
    CHECK(evil->log().find("binding_updates=0") == std::string::npos);  // it tried
    const auto st = lab.resolver_status();
    CHECK(number(st, "drops", "bad_authenticator") >= 1);
    CHECK(number(st, "counters", "bindings_verified") == 0);
    const auto entry = lab.cache_entry();
    CHECK((!entry || str(entry->at("state")) != "bound"));
  }
}

TEST_CASE("the binding lasts 16 s and is renewed - a dead member is replaced by the other",
          "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({.policy = "secure",
                      .methods = R"(["udp"])",
                      .extra = R"("liveness_interval_ms": 300, "liveness_misses": 3,)"});
  const auto first = ask(lab.query_socket(), kAnycast, 2000);
  REQUIRE(first);
  REQUIRE(unicast_of(*first) == kMember1);
  const auto bound = lab.cache_entry();
  REQUIRE(bound);
  const auto sequence = bound->at("sequence").to_number<std::int64_t>();
  CHECK(bound->at("expires_in_ms").to_number<std::int64_t>() <= 16000);

  // Renewed through the anycast address before the 16 s run out (at 75 %, about 12 s).
  REQUIRE(eventually([&] { return lab.cache_entry()->at("renewals").to_number<int>() >= 1; }, 25s));
  const auto renewed = lab.cache_entry();
  CHECK(str(renewed->at("unicast")) == kMember1);
  CHECK(renewed->at("sequence").to_number<std::int64_t>() != sequence);
  CHECK(renewed->at("expires_in_ms").to_number<std::int64_t>() > 4000);

  // m1 dies and routing moves the anycast address to m2: the liveness probes to m1 go
  // unanswered, and after liveness_misses of them the address is bound to m2.
  const auto before = lab.resolver_status();
  lab.stop_member("m1");
  lab.route_to("m2");
  REQUIRE(eventually([&] {
    const auto e = lab.cache_entry();
    return e && str(e->at("state")) == "bound" && str(e->at("unicast")) == kMember2;
  }));
  const auto after = lab.resolver_status();
  CHECK(number(after, "counters", "liveness_failures") ==
        number(before, "counters", "liveness_failures") + 1);
  // Bounded: the misses that declare m1 dead, and at most one more in flight.
  CHECK(number(after, "counters", "liveness_probes") -
            number(before, "counters", "liveness_probes") <=
        3 + 2);
  CHECK(number(after, "counters", "rebinds") >= 1);
  const auto answer = ask(lab.query_socket(), kAnycast, 0);
  REQUIRE(answer);
  CHECK(unicast_of(*answer) == kMember2);
}

TEST_CASE("bad input on the probe and binding ports is dropped and counted", "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({});

  SECTION("garbage to a member") {
    // Sent from e to m1's unicast address and port, one datagram each.
    const std::vector<std::string> datagrams = {
        "\xac",                                                       // truncated
        std::string("\x00\x01\x00\x01", 4) + std::string(120, '\0'),  // bad magic
        std::string("\xac\x01\x00\x01", 4) + std::string(20, '\0'),   // short probe
        std::string("\xac\x07\x00\x01", 4) + std::string(120, '\0'),  // bad version
    };
    lab.lab().enter("e", [&] {
      const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in6 to{};
      to.sin6_family = AF_INET6;
      to.sin6_port = htons(4545);
      const auto address = core::Ipv6Address::parse(kMember1).value().bytes();
      std::copy(address.begin(), address.end(), to.sin6_addr.s6_addr);
      for (const auto& d : datagrams)
        ::sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      ::close(fd);
    });
    // Each is dropped and counted under its reason; the member goes on answering.
    CHECK(eventually([&] {
      const auto st = lab.member_status("m1");
      return number(st, "drops", "truncated") >= 1 && number(st, "drops", "bad_magic") >= 1 &&
             number(st, "drops", "short_probe") >= 1 && number(st, "drops", "bad_version") >= 1;
    }));
    CHECK(lab.run_curl("/who", true).output == fmt::format("m1 {}\n", kMember1));
  }

  SECTION("a replayed binding update and a stale nonce index to the resolver") {
    // m2 is replaced by a member that replays each BU and sends one with made-up nonce indices.
    lab.stop_member("m2");
    lab.route_to("m2");
    auto peer = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{kIp, "netns", "exec", lab.lab().netns_name("m2"), ANYCAST_PEER_BIN,
                                 "--mode", "replay", "--anycast", kAnycast, "--self", kMember2,
                                 "--port", "4545", "--seconds", "4"},
        lab.dir() / "replayer.log");
    REQUIRE(peer->wait_ready(kDeadline));
    const auto answer = ask(lab.query_socket(), kAnycast, 2000);
    REQUIRE(answer);
    CHECK(unicast_of(*answer) == kMember2);  // the first BU is honest and binds
    peer->wait(10s);
    INFO(peer->log() << lab.resolver_log());
    CHECK(peer->log().find("binding_updates=0") == std::string::npos);
    const auto st = lab.resolver_status();
    CHECK(number(st, "drops", "replay") >= 1);
    CHECK(number(st, "drops", "stale_nonce") >= 1);
    CHECK(number(st, "counters", "bindings_verified") == 1);
  }

  SECTION("garbage on the query socket") {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const auto path = lab.query_socket();
    std::copy(path.begin(), path.end(), sa.sun_path);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    const std::string junk = "GET / HTTP/1.1\r\n\r\n";
    REQUIRE(::send(fd, junk.data(), junk.size(), 0) > 0);
    std::array<std::uint8_t, 64> buffer{};
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
    ::close(fd);
    REQUIRE(n > 0);
    const auto answer =
        anycast::query::parse_answer(std::span{buffer}.first(static_cast<std::size_t>(n)));
    REQUIRE(answer);
    CHECK(answer->status == anycast::query::Status::Refused);
    // The daemon still answers.
    CHECK(ask(lab.query_socket(), "2001:db8:ff::1", 0).has_value());
  }
}

TEST_CASE("dstm-client keeps its TSP session with the member it resolved when the route moves",
          "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({});
  auto& l = lab.lab();
  test::TempDir dir;
  // dstm-server on m1, listening on every address (the anycast one among them); short leases so
  // that renewals run over the session while the test watches.
  const auto server_socket = (dir / "server.sock").string();
  const auto server_config =
      dir.write("server.json", fmt::format(R"({{"dstm_server": {{
          "listen": {{"ipv6": ["::"], "port": 3653, "udp": false}},
          "pool": {{"prefixes": ["198.51.100.0/24"]}},
          "lease": {{"lifetime": 3, "max_lifetime": 60, "grace": 60}},
          "auth": {{"anonymous": true, "users": []}},
          "teps": [{{"name": "tep-1", "ipv6": "2001:db8:1::9", "ipv4": "192.0.2.1",
                     "heartbeat": false, "keepalive": "192.0.2.201"}}],
          "client": {{"dns_server": "2001:db8::53", "keepalive_interval": 5}},
          "tep_timeout": 300,
          "store": {{"path": "{}", "sync": "normal"}},
          "control_socket": "{}"}}}})",
                                           (dir / "leases.db").string(), server_socket));
  test::DaemonProcess server{{kIp, "netns", "exec", l.netns_name("m1"), DSTM_SERVER_BIN, "--config",
                              server_config.string()},
                             dir / "server.log"};
  INFO(server.log());
  REQUIRE(server.wait_ready(kDeadline));

  const auto client_socket = (dir / "client.sock").string();
  test::DaemonProcess client{{kIp, "netns", "exec", l.netns_name("c"), DSTM_CLIENT_BIN, "--server",
                              kAnycast, "--anycast-resolver", lab.query_socket(),
                              "--keepalive-misses", "100", "--control-socket", client_socket},
                             dir / "client.log"};
  INFO(client.log());
  REQUIRE(client.wait_ready(kDeadline));

  auto established = [&] { return l.run("c", {"ss", "-Htn", "state", "established"}).output; };
  const auto tsp_peer = fmt::format("[{}]:3653", kMember1);
  CHECK(eventually([&] { return established().find(tsp_peer) != std::string::npos; }));
  auto renewals = [&] {
    auto r = test::try_control(client_socket, platform::Method::Get, "/status");
    return r && r->status == 200 ? r->body.at("renewals").to_number<std::int64_t>() : -1;
  };
  const auto before = renewals();

  // The anycast route moves to m2, which runs no DSTM server: the sessions stay pinned to m1's
  // unicast address and the lease goes on renewing there, also after the resolver's own binding
  // has moved to m2 (renewed through the anycast address after 12 s).
  lab.route_to("m2");
  CHECK(eventually([&] { return renewals() >= before + 2; }, 15s));
  CHECK(eventually(
      [&] {
        const auto e = lab.cache_entry();
        return e && e->at("unicast").as_string() == kMember2;
      },
      25s));
  const auto later = renewals();
  CHECK(eventually([&] { return renewals() >= later + 2; }, 15s));
  CHECK(eventually([&] { return established().find(tsp_peer) != std::string::npos; }));
  CHECK(client.log().find("served by the member at 2001:db8:1::2") != std::string::npos);
}

TEST_CASE("ICMPv6 probes learn the member only where the address is kernel anycast", "[anycast]") {
  AnycastLab lab;
  lab.start_resolver({.policy = "probe", .methods = R"(["icmp"])", .extra = ""});

  // An ordinary address answers echo from itself: nothing learned (F1 of the anycast notes).
  auto answer = ask(lab.query_socket(), kAnycast, 1000);
  REQUIRE(answer);
  CHECK(answer->status != anycast::query::Status::Unicast);
  CHECK(number(lab.resolver_status(), "counters", "icmp_from_anycast") >= 1);

  // m1 holds it as kernel anycast instead (anycast-member's join; the kernel wants forwarding on
  // or the address on-link): the echo reply now comes from m1's unicast address.
  auto& l = lab.lab();
  REQUIRE(
      l.run("m1", {kIp, "-6", "addr", "del", fmt::format("{}/128", kAnycast), "dev", "lo"}).ok());
  REQUIRE(l.run("m1", {"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}).ok());
  lab.stop_member("m1");
  lab.start_member("m1", true);
  REQUIRE(test::try_control(lab.resolver_socket(), platform::Method::Post, "/cache/flush"));
  answer = ask(lab.query_socket(), kAnycast, 1000);
  INFO(lab.resolver_log());
  REQUIRE(answer);
  CHECK(answer->status == anycast::query::Status::Unicast);
  CHECK(unicast_of(*answer) == kMember1);
  CHECK(number(lab.resolver_status(), "counters", "icmp_answers_accepted") >= 1);

  // Return routability works there too: m1 sends its HoTI from the joined anycast address
  // (IPV6_PKTINFO; bind() to it is impossible, F6).
  lab.start_resolver({});
  answer = ask(lab.query_socket(), kAnycast, 2000);
  REQUIRE(answer);
  CHECK(unicast_of(*answer) == kMember1);
  CHECK(lab.cache_entry()->at("verified").as_bool());
}
