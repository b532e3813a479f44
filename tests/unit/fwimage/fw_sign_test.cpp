// Tests for fw-sign (firmware-image/tools/fw-sign.cpp) run as mkimage.sh runs it: the initial
// boot environment block it writes.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fwimage/grubenv.hpp"
#include "fwimage/slots.hpp"
#include "support/daemon_process.hpp"

namespace {

// fw-sign's exit status for `args` (quoted by the caller), its output to /dev/null.
int fw_sign(const std::string& args) {
  const int status = std::system((std::string{FW_SIGN} + " " + args + " >/dev/null 2>&1").c_str());
  REQUIRE(status != -1);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::byte> read_bytes(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  const std::string text{std::istreambuf_iterator<char>{in}, {}};
  std::vector<std::byte> out(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<std::byte>(text[i]);
  return out;
}

}  // namespace

TEST_CASE("fw-sign: grubenv --version writes the default state and slot A's version", "[fwimage]") {
  test::TempDir dir;
  const auto out = dir / "grubenv";
  REQUIRE(fw_sign("grubenv --version 0.7.0 '" + out.string() + "'") == 0);
  const auto env = fwimage::parse_grubenv(read_bytes(out));
  REQUIRE(env);
  CHECK(*env == fwimage::initial_environment("0.7.0"));
  REQUIRE(fwimage::find(*env, fwimage::version_variable(fwimage::Slot::A)) != nullptr);
  CHECK(*fwimage::find(*env, "A_VERSION") == "0.7.0");
  CHECK(fwimage::find(*env, "B_VERSION") == nullptr);
  CHECK(fwimage::boot_state_from(*env).value() == fwimage::BootState{});
}

TEST_CASE("fw-sign: grubenv without --version writes the default state only", "[fwimage]") {
  test::TempDir dir;
  const auto out = dir / "grubenv";
  REQUIRE(fw_sign("grubenv '" + out.string() + "'") == 0);
  const auto env = fwimage::parse_grubenv(read_bytes(out));
  REQUIRE(env);
  CHECK(*env == fwimage::initial_environment(std::nullopt));

  CHECK(fw_sign("grubenv --version '' '" + (dir / "empty").string() + "'") == 2);
  CHECK(fw_sign("grubenv '" + (dir / "x").string() + "' --version") == 2);
  CHECK(fw_sign("grubenv --version 1.0") == 2);
  CHECK_FALSE(std::filesystem::exists(dir / "empty"));
}
