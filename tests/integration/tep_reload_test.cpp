// The tep daemon's config check and in-process reload, end to end (root: a TUN device): the real
// binary in a lab namespace where its tunnel address is local, started through `ip netns exec` so
// that its PID is the daemon's. A reload that changes the TEP's element of the "tep" array stops
// the daemon completely (TUN device, routes, sockets) and starts it again in the same process;
// the device the new generation creates is a new one (new ifindex) with the new settings.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "platform/control.hpp"
#include "support/daemon_control.hpp"
#include "support/daemon_process.hpp"
#include "support/lab.hpp"

namespace json = boost::json;
using namespace std::chrono_literals;
using platform::Method;

namespace {

constexpr auto kDeadline = 20s;

// DaemonProcess execs a path, not a name looked up in PATH.
std::string find_program(std::string_view name) {
  for (std::string_view dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    const auto candidate = fmt::format("{}/{}", dir, name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  FAIL(name << " not found");
  return {};
}

// What a test changes in the document.
struct Setup {
  std::string ipv6 = "2001:db8:1::1";  // local in the lab: the tunnel socket binds to it
  unsigned mtu = 1500;
  unsigned other_mtu = 1500;  // tep-2's, which this daemon (--name tep-1) does not run
  std::string name = "tep-1";
};

class TepUnderTest {
 public:
  TepUnderTest() : lab_{"netns t\naddr t lo 2001:db8:1::1/128\n"} {
    write_config({});
    process_ = std::make_unique<test::DaemonProcess>(
        std::vector<std::string>{find_program("ip"), "netns", "exec", lab_.netns_name("t"), TEP_BIN,
                                 "--config", config_.string(), "--name", "tep-1"},
        dir_ / "tep.log");
    const bool ready = process_->wait_ready(std::chrono::milliseconds{kDeadline});
    INFO(process_->log());
    REQUIRE(ready);
  }

  std::string document(const Setup& s) const {
    // The server is unreachable on purpose: the session is retried in the background and is not
    // part of what a reload restarts or waits for.
    return fmt::format(
        R"({{"tep": [
          {{"name": "{}", "ipv6": "{}", "ipv4": "192.0.2.1", "pool": ["198.51.100.0/24"],
            "server": {{"address": "2001:db8:2::1", "user": "tep-1", "password": "tep-secret"}},
            "interface": "tep0", "backend": "user", "tunnel_mtu": {},
            "control_socket": "{}"}},
          {{"name": "tep-2", "ipv6": "2001:db8:1::2", "ipv4": "192.0.2.2",
            "pool": ["203.0.113.0/24"],
            "server": {{"address": "2001:db8:2::1", "user": "tep-2", "password": "tep-secret"}},
            "interface": "tep1", "backend": "user", "tunnel_mtu": {},
            "control_socket": "{}"}}],
          "dstm_server": {{"ignored": "by the tep"}}}})",
        s.name, s.ipv6, s.mtu, socket(), s.other_mtu, (dir_ / "other.sock").string());
  }
  void write_config(const Setup& s) { config_ = dir_.write("appliance.json", document(s)); }

  std::string socket() const { return (dir_ / "tep.sock").string(); }
  pid_t pid() const noexcept { return process_->pid(); }
  std::string log() const { return process_->log(); }
  test::ExitStatus terminate() { return process_->terminate(10s); }
  test::Lab& lab() noexcept { return lab_; }

  std::optional<platform::Response> try_control(Method method, const std::string& target,
                                                const json::value& body = nullptr) const {
    return test::try_control(socket(), method, target, body);
  }
  platform::Response control(Method method, const std::string& target,
                             const json::value& body = nullptr) const {
    auto r = try_control(method, target, body);
    INFO(log());
    REQUIRE(r.has_value());
    return *r;
  }
  json::object status() const { return control(Method::Get, "/status").body.as_object(); }

  json::object await_generation(std::uint64_t g) const {
    auto status = test::await_generation(socket(), g, kDeadline);
    INFO(log());
    if (!status) FAIL("no generation " << g << " before the deadline");
    return *status;
  }

  // The TUN device as the kernel shows it in the namespace: `ip -j link show dev tep0`.
  std::optional<json::object> device() {
    const auto r = lab_.run("t", {"ip", "-j", "link", "show", "dev", "tep0"}, 10s);
    if (!r.ok()) return std::nullopt;
    return json::parse(r.output).at(0).as_object();
  }
  std::string routes() {
    const auto r = lab_.run("t", {"ip", "-4", "route", "show"}, 10s);
    REQUIRE(r.ok());
    return r.output;
  }

 private:
  test::Lab lab_;
  test::TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<test::DaemonProcess> process_;
};

std::vector<std::string> pointers(const json::value& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors.as_array()) out.emplace_back(e.at("pointer").as_string());
  return out;
}

}  // namespace

TEST_CASE("tep reload: check, unchanged, invalid, and a change that recreates the TUN device",
          "[tep]") {
  TepUnderTest tep;
  const auto first = tep.device();
  REQUIRE(first.has_value());
  CHECK(first->at("mtu") == 1500);
  auto status = tep.status();
  CHECK(status.at("generation") == 0);
  CHECK(status.at("pid").to_number<pid_t>() == tep.pid());
  CHECK(status.at("last_reload").is_null());

  // The check reads the whole "tep" array, with the daemon's own parser.
  auto doc = json::parse(tep.document({}));
  auto r = tep.control(Method::Post, "/config/check", {{"document", doc}});
  CHECK(r.body == json::parse(R"({"valid": true, "errors": []})"));
  doc.at("tep").at(1).as_object()["tunnel_mtu"] = 100;
  doc.at("tep").at(0).as_object()["colour"] = "blue";
  r = tep.control(Method::Post, "/config/check", {{"document", doc}});
  CHECK(r.status == 200);
  CHECK(r.body.at("valid") == false);
  CHECK(pointers(r.body.at("errors")) ==
        std::vector<std::string>{"/tep/0/colour", "/tep/1/tunnel_mtu"});

  // Another TEP's element changed: nothing for this one.
  tep.write_config(Setup{.ipv6 = "2001:db8:1::1", .mtu = 1500, .other_mtu = 1400, .name = "tep-1"});
  r = tep.control(Method::Post, "/reload");
  CHECK(r.status == 200);
  CHECK(r.body == json::parse(R"({"changed": false, "generation": 0})"));

  // Invalid, or this TEP gone from the document: 422, and the daemon keeps running as it was.
  tep.write_config(Setup{.ipv6 = "2001:db8:1::1", .mtu = 100, .other_mtu = 1500, .name = "tep-1"});
  r = tep.control(Method::Post, "/reload");
  CHECK(r.status == 422);
  CHECK(pointers(r.body.at("errors")) == std::vector<std::string>{"/tep/0/tunnel_mtu"});
  tep.write_config(Setup{.ipv6 = "2001:db8:1::1", .mtu = 1500, .other_mtu = 1500, .name = "tep-9"});
  r = tep.control(Method::Post, "/reload");
  CHECK(r.status == 422);
  CHECK(pointers(r.body.at("errors")) == std::vector<std::string>{"/tep"});
  CHECK(tep.status().at("generation") == 0);
  CHECK(tep.device()->at("ifindex") == first->at("ifindex"));

  // Changed: a new generation in the same process, on a new TUN device with the new MTU.
  tep.write_config(Setup{.ipv6 = "2001:db8:1::1", .mtu = 1400, .other_mtu = 1500, .name = "tep-1"});
  r = tep.control(Method::Post, "/reload");
  CHECK(r.status == 202);
  CHECK(r.body == json::parse(R"({"changed": true, "generation": 1})"));
  status = tep.await_generation(1);
  CHECK(status.at("pid").to_number<pid_t>() == tep.pid());
  CHECK(status.at("tunnel_mtu") == 1400);
  REQUIRE(status.at("last_reload").is_object());
  CHECK(status.at("last_reload").at("result") == "reloaded");
  const auto second = tep.device();
  REQUIRE(second.has_value());
  CHECK(second->at("mtu") == 1400);
  CHECK(second->at("ifindex") != first->at("ifindex"));
  CHECK_THAT(tep.routes(), Catch::Contains("198.51.100.0/24 dev tep0"));

  // The secret is neither logged nor shown.
  r = tep.control(Method::Get, "/logs?limit=2000");
  REQUIRE(r.status == 200);
  CHECK(json::serialize(r.body).find("tep-secret") == std::string::npos);
  CHECK(json::serialize(tep.status()).find("tep-secret") == std::string::npos);

  // SIGTERM ends it, and the device and its routes go with it.
  CHECK(tep.terminate().code == 0);
  CHECK_FALSE(tep.device().has_value());
  CHECK_THAT(tep.routes(), !Catch::Contains("198.51.100.0/24"));
}

TEST_CASE("tep reload: a config that cannot start falls back to the previous one", "[tep]") {
  TepUnderTest tep;
  // Valid, but 2001:db8:1::99 is not an address of this namespace: the tunnel socket cannot
  // bind, after the new TUN device was made (and removed again).
  tep.write_config(
      Setup{.ipv6 = "2001:db8:1::99", .mtu = 1400, .other_mtu = 1500, .name = "tep-1"});
  auto r = tep.control(Method::Post, "/reload");
  CHECK(r.status == 202);
  const auto status = tep.await_generation(1);
  CHECK(status.at("pid").to_number<pid_t>() == tep.pid());
  CHECK(status.at("ipv6") == "2001:db8:1::1");
  CHECK(status.at("tunnel_mtu") == 1500);
  REQUIRE(status.at("last_reload").is_object());
  CHECK(status.at("last_reload").at("result") == "failed");
  CHECK_THAT(std::string{status.at("last_reload").at("error").as_string()},
             Catch::Contains("2001:db8:1::99"));
  const auto device = tep.device();
  REQUIRE(device.has_value());
  CHECK(device->at("mtu") == 1500);

  // SIGHUP after fixing the file: the same as POST /reload.
  tep.write_config(Setup{.ipv6 = "2001:db8:1::1", .mtu = 1400, .other_mtu = 1500, .name = "tep-1"});
  REQUIRE(::kill(tep.pid(), SIGHUP) == 0);
  CHECK(tep.await_generation(2).at("tunnel_mtu") == 1400);
  CHECK(tep.device()->at("mtu") == 1400);
}
