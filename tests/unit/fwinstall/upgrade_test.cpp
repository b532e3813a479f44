// Tests for fwinstall/upgrade.hpp on real disk image files (sfdisk, mkfs.fat, mke2fs): install
// into the inactive slot and the boot state it leaves, bundles refused with nothing written, an
// install killed mid-write, mark-good, status.
#include "fwinstall/upgrade.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include "disk_fixture.hpp"
#include "fwimage/slots.hpp"

using fwimage::Errc;
using fwimage::Slot;

namespace {

// Everything an install could have changed: the whole disk.
struct Snapshot {
  std::string disk;
  explicit Snapshot(const fwtest::Appliance& a) : disk{a.disk_sha256()} {}
};

}  // namespace

TEST_CASE("upgrade: install writes the inactive slot and makes it next to be tried",
          "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto bundle = fwtest::make_bundle(dir);
  const auto file = dir / "fw.dstmfw";
  fwtest::write_bytes(file, bundle.file);

  const auto verified = fwinstall::verify(a.paths, file, true);
  REQUIRE(verified);
  CHECK(verified->at("version").as_string() == "0.2.0");
  CHECK(verified->at("target").as_string() == "B");
  CHECK(verified->at("sha256").as_string() == fwtest::sha256_of(bundle.part));

  std::uint64_t last = 0;
  const auto done =
      fwinstall::install(a.paths, file, true, [&](std::uint64_t written, std::uint64_t total) {
        CHECK(written > last);
        CHECK(total == bundle.part.size());
        last = written;
      });
  REQUIRE(done);
  CHECK(last == bundle.part.size());
  CHECK(a.slot_b(bundle.part.size()) == bundle.part);

  const auto state = a.boot_state();
  CHECK(state.order == std::array{Slot::B, Slot::A});
  CHECK(state.is_ok(Slot::B));
  CHECK_FALSE(state.is_tried(Slot::B));
  CHECK(state.is_ok(Slot::A));
  const auto env = a.grubenv();
  CHECK(*fwimage::find(env, "B_VERSION") == "0.2.0");
  CHECK(*fwimage::find(env, "A_VERSION") == "0.1.0");
  CHECK(fwimage::find(env, "RESET_SETTINGS") == nullptr);
  CHECK(*fwimage::find(env, "TRIAL") == "B");

  auto next = state;
  CHECK(fwimage::choose_slot(next) == Slot::B);
}

TEST_CASE("upgrade: refused bundles leave the disk unchanged", "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto file = dir / "fw.dstmfw";
  const Snapshot before{a};

  struct Case {
    std::string name;
    fwtest::BundleSpec spec;
    bool keep;
    bool flip;
    Errc expected;
  };
  const std::vector<Case> cases{
      {"one flipped byte in the part", {}, true, true, Errc::HashMismatch},
      {"signed by another key", {.key_seed = 2}, true, false, Errc::BadSignature},
      {"another board", {.board = "armv7"}, true, false, Errc::WrongBoard},
      {"another compat major", {.compat = {2, 0}}, false, false, Errc::Incompatible},
      {"another compat minor keeping settings",
       {.compat = {1, 1}},
       true,
       false,
       Errc::SettingsIncompatible},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      auto bundle = fwtest::make_bundle(dir, c.spec);
      if (c.flip) bundle.file[bundle.file.size() - 5000] ^= std::byte{0x01};
      fwtest::write_bytes(file, bundle.file);
      const auto verified = fwinstall::verify(a.paths, file, c.keep);
      REQUIRE_FALSE(verified);
      CHECK(verified.error().code == c.expected);
      const auto installed = fwinstall::install(a.paths, file, c.keep, {});
      REQUIRE_FALSE(installed);
      CHECK(installed.error().code == c.expected);
      CHECK(a.disk_sha256() == before.disk);
    }
  }
}

TEST_CASE("upgrade: another compat minor installs without the settings and marks the reset",
          "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto file = dir / "fw.dstmfw";
  fwtest::write_bytes(file, fwtest::make_bundle(dir, {.compat = {1, 1}}).file);
  REQUIRE(fwinstall::install(a.paths, file, false, {}));
  CHECK(*fwimage::find(a.grubenv(), "RESET_SETTINGS") == "B");

  // Booted into B: status says so until B marks itself good.
  a.paths.slot = Slot::B;
  CHECK(fwinstall::status(a.paths).value().at("reset_settings").as_bool());
  REQUIRE(fwinstall::mark_good(a.paths));
  CHECK(*fwimage::find(a.grubenv(), "RESET_SETTINGS") == "");
  CHECK_FALSE(fwinstall::status(a.paths).value().at("reset_settings").as_bool());
}

TEST_CASE("upgrade: a part larger than the slot partition is refused before any write",
          "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const Snapshot before{a};
  // Slot B as a 10 MiB partition: recreate the table with a smaller slotB.
  fwtest::run("echo 'size=20480' | sfdisk -q -N 4 '" + a.disk.string() + "' >/dev/null 2>&1");
  const auto file = dir / "fw.dstmfw";
  fwtest::write_bytes(file, fwtest::make_bundle(dir).file);
  const auto small = a.disk_sha256();
  CHECK(small != before.disk);
  const auto installed = fwinstall::install(a.paths, file, true, {});
  REQUIRE_FALSE(installed);
  CHECK(installed.error().code == Errc::TooLarge);
  CHECK(a.disk_sha256() == small);
}

TEST_CASE("upgrade: an install killed while writing the slot still boots the old slot",
          "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto bundle = fwtest::make_bundle(dir);
  const auto file = dir / "fw.dstmfw";
  fwtest::write_bytes(file, bundle.file);

  // The tool prints a progress line per 64 KiB written and flushes it into a pipe of one page
  // that this test stops reading after the first line: the tool blocks in that write long before
  // the 12 MiB are written (about 190 lines of 48 bytes), whatever the machine's speed.
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::fcntl(out[1], F_SETPIPE_SZ, 4096) >= 4096);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    const std::string disk = a.disk.string(), key = a.paths.public_key.string(),
                      fw = a.paths.firmware_json.string(), bundle_path = file.string();
    ::execl(FW_UPGRADE, "fw-upgrade", "--disk", disk.c_str(), "--key", key.c_str(), "--firmware",
            fw.c_str(), "--slot", "A", "--progress", "install", bundle_path.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string line;
  char c = 0;
  while (::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  INFO(line);
  REQUIRE(line.starts_with(R"({"progress":{"written":)"));
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  ::close(out[0]);
  CHECK(WIFSIGNALED(status));

  const auto state = a.boot_state();
  CHECK_FALSE(state.is_ok(Slot::B));
  CHECK(state.order == std::array{Slot::A, Slot::B});
  CHECK(*fwimage::find(a.grubenv(), "B_VERSION") == "");
  CHECK(a.slot_b(bundle.part.size()) != bundle.part);
  auto next = state;
  CHECK(fwimage::choose_slot(next) == Slot::A);

  // Installing again completes.
  REQUIRE(fwinstall::install(a.paths, file, true, {}));
  CHECK(a.slot_b(bundle.part.size()) == bundle.part);
  CHECK(a.boot_state().order == std::array{Slot::B, Slot::A});
}

TEST_CASE("upgrade: mark-good clears the booted slot's tried mark", "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto file = dir / "fw.dstmfw";
  fwtest::write_bytes(file, fwtest::make_bundle(dir).file);
  REQUIRE(fwinstall::install(a.paths, file, true, {}));

  // What GRUB does when it boots B: marks it tried (fwimage::choose_slot, saved with save_env).
  auto env = a.grubenv();
  auto state = fwimage::boot_state_from(env).value();
  REQUIRE(fwimage::choose_slot(state) == Slot::B);
  fwimage::store(state, env);
  a.set_grubenv(env);
  REQUIRE(a.boot_state().is_tried(Slot::B));

  a.paths.slot = std::nullopt;
  a.paths.cmdline = dir.write("cmdline-b", "dstm.slot=B\n");
  CHECK(fwinstall::status(a.paths).value().at("trial").as_bool());
  const auto good = fwinstall::mark_good(a.paths);
  REQUIRE(good);
  CHECK(good->at("slot").as_string() == "B");
  CHECK_FALSE(a.boot_state().is_tried(Slot::B));
  CHECK(a.boot_state().is_ok(Slot::B));
  // No longer on trial: a later failing boot of B stays up instead of falling back.
  CHECK(*fwimage::find(a.grubenv(), "TRIAL") == "");
  CHECK_FALSE(fwinstall::status(a.paths).value().at("trial").as_bool());

  // Not marked good: the next boot would go back to A.
  state = a.boot_state();
  REQUIRE(fwimage::choose_slot(state) == Slot::B);
  CHECK(fwimage::choose_slot(state) == Slot::A);
}

TEST_CASE("upgrade: status shows the running slot the boot state and the versions", "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  const auto s = fwinstall::status(a.paths);
  REQUIRE(s);
  INFO(boost::json::serialize(*s));
  CHECK(s->at("disk").as_string() == a.disk.string());
  CHECK(s->at("running").as_string() == "A");
  CHECK(s->at("next").as_string() == "A");
  CHECK(s->at("slots").at("A").at("version").as_string() == "0.1.0");
  CHECK(s->at("slots").at("A").at("ok").as_bool());
  CHECK(s->at("slots").at("B").at("version").is_null());
  CHECK_FALSE(s->at("slots").at("B").at("ok").as_bool());
  CHECK(s->at("firmware").at("board").as_string() == "x86-64");
  CHECK_FALSE(s->at("trial").as_bool());  // the flashed slot was never installed as a trial

  a.paths.cmdline = dir.write("cmdline-none", "console=ttyS0\n");
  const auto none = fwinstall::status(a.paths);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == Errc::BadUsage);
}
