// Tests of the firmware API (api_firmware.cpp) through App::handle, with the real fw-upgrade on a
// disk image file (tests/unit/fwinstall/disk_fixture.hpp) behind a wrapper that points it at the
// test's key, firmware.json, slot and settings root: an upload verified before anything is
// flashed (a tampered one refused), the install with its progress, the reboot command, the
// settings backup and restore; and who may upload.
#include <fstream>

#include "app_fixture.hpp"
#include "dstm_server/config.hpp"
#include "fwimage/slots.hpp"
#include "unit/fwinstall/disk_fixture.hpp"

using namespace webtest;

namespace {

struct FirmwareFixture {
  AppFixture f;
  fwtest::Appliance appliance{f.dir};
  std::filesystem::path reboot_marker = f.dir / "rebooted";

  FirmwareFixture() {
    // The dashboard runs "<tool> --disk DISK <command> ...": the wrapper adds what the appliance
    // has in fixed places.
    const auto& p = appliance.paths;
    const auto tool = f.dir.write(
        "fw-upgrade.sh", "#!/bin/sh\nexec '" + std::string{FW_UPGRADE} + "' --key '" +
                             p.public_key.string() + "' --firmware '" + p.firmware_json.string() +
                             "' --slot A --root '" + (f.dir / "root").string() + "' \"$@\"\n");
    std::filesystem::permissions(tool, std::filesystem::perms::owner_all);
    const auto reboot =
        f.dir.write("reboot.sh", "#!/bin/sh\necho \"$@\" > '" + reboot_marker.string() + "'\n");
    std::filesystem::permissions(reboot, std::filesystem::perms::owner_all);
    f.options.web.firmware.tool = tool.string();
    f.options.web.firmware.disk = appliance.disk.string();
    f.options.web.firmware.reboot_command = {reboot.string(), "now"};
    f.open();
  }

  // What the server does for an upload: the body in a file under <state_dir>/uploads.
  web::HttpResponse upload(const Login& who, std::string target,
                           const std::vector<std::byte>& bytes) {
    web::HttpRequest r;
    r.method = "POST";
    r.target = std::move(target);
    r.remote = "192.0.2.1";
    r.headers = {{"host", std::string{AppFixture::kHost}},
                 {"cookie", who.cookie},
                 {"x-csrf-token", who.csrf}};
    auto policy = f.app->upload_policy()(head_of(r));
    REQUIRE(policy);
    fwtest::write_bytes(policy->file, bytes);
    r.body_file = policy->file;
    return run(f.io, f.app->handle(std::move(r)));
  }

  static web::HttpRequest head_of(web::HttpRequest r) {
    const auto q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) {
      const auto query = r.target.substr(q + 1);
      const auto eq = query.find('=');
      r.query.emplace(query.substr(0, eq), query.substr(eq + 1));
    }
    return r;
  }

  void install_and_wait(const Login& who) {
    const auto started = f.as(who, "POST", "/api/firmware/install", R"({"keep_settings": true})");
    REQUIRE(started.status == 202);
    std::string state;
    run_until(f.io, [&] {
      state =
          std::string{body_of(f.as(who, "GET", "/api/firmware")).at("job").at("state").as_string()};
      return state != "installing";
    });
    REQUIRE(state == "installed");
  }
};

}  // namespace

TEST_CASE("firmware api: a tampered upload is refused and nothing is staged", "[web]") {
  FirmwareFixture t;
  const auto who = t.f.admin();
  auto bundle = fwtest::make_bundle(t.f.dir);
  bundle.file[bundle.file.size() - 100] ^= std::byte{0x01};
  const auto before = t.appliance.disk_sha256();
  const auto r = t.upload(who, "/api/firmware/upload", bundle.file);
  CHECK(r.status == 422);
  CHECK(body_of(r).at("code") == "hash_mismatch");
  CHECK(body_of(t.f.as(who, "GET", "/api/firmware")).at("staged").is_null());
  CHECK(t.f.as(who, "POST", "/api/firmware/install", "{}").status == 409);
  CHECK(t.appliance.disk_sha256() == before);
}

TEST_CASE("firmware api: an upload shows the manifest then the install flashes slot B", "[web]") {
  FirmwareFixture t;
  const auto who = t.f.admin();
  const auto bundle = fwtest::make_bundle(t.f.dir);

  const auto before = body_of(t.f.as(who, "GET", "/api/firmware"));
  CHECK(before.at("status").at("running") == "A");
  CHECK(before.at("status").at("slots").at("A").at("version") == "0.1.0");
  CHECK(before.at("board") == "x86-64");

  const auto r = t.upload(who, "/api/firmware/upload?keep_settings=true", bundle.file);
  REQUIRE(r.status == 200);
  const auto verified = body_of(r).at("verified");
  CHECK(verified.at("version") == "0.2.0");
  CHECK(verified.at("board") == "x86-64");
  CHECK(verified.at("compat_version") == "1.0");
  CHECK(verified.at("sha256").as_string() == fwtest::sha256_of(bundle.part));
  CHECK(verified.at("target") == "B");
  // Verified, not flashed.
  CHECK_FALSE(t.appliance.boot_state().is_ok(fwimage::Slot::B));

  t.install_and_wait(who);
  CHECK(t.appliance.slot_b(bundle.part.size()) == bundle.part);
  const auto state = t.appliance.boot_state();
  CHECK(state.order == std::array{fwimage::Slot::B, fwimage::Slot::A});
  const auto after = body_of(t.f.as(who, "GET", "/api/firmware"));
  CHECK(after.at("job").at("written").to_number<std::size_t>() == bundle.part.size());
  CHECK(after.at("status").at("slots").at("B").at("version") == "0.2.0");
  CHECK(after.at("status").at("next") == "B");

  CHECK(t.f.as(who, "POST", "/api/firmware/reboot", "{}").status == 202);
  run_until(t.f.io, [&] { return std::filesystem::exists(t.reboot_marker); });
}

TEST_CASE("firmware api: uploads only for an admin with the CSRF token", "[web]") {
  FirmwareFixture t;
  const auto admin = t.f.admin();
  REQUIRE(t.f.as(admin, "POST", "/api/users",
                 R"({"name": "olga", "password": "0123456789", "role": "viewer"})")
              .status == 201);
  const auto viewer = t.f.login("olga", "0123456789");
  auto head = [&](const Login& who, std::string csrf) {
    web::HttpRequest r;
    r.method = "POST";
    r.target = r.path = "/api/firmware/upload";
    r.headers = {
        {"host", std::string{AppFixture::kHost}}, {"cookie", who.cookie}, {"x-csrf-token", csrf}};
    return r;
  };
  auto policy = t.f.app->upload_policy();
  CHECK(policy(head(admin, admin.csrf)));
  CHECK_FALSE(policy(head(admin, "wrong")));
  CHECK_FALSE(policy(head(viewer, viewer.csrf)));
  CHECK_FALSE(policy(head(Login{"appl_session=none", "x"}, "x")));
  auto other = head(admin, admin.csrf);
  other.path = "/api/config/apply";
  CHECK_FALSE(policy(other));
  // And the API's own checks refuse the request whatever reached it.
  CHECK(t.f.as(viewer, "POST", "/api/firmware/upload", "{}").status == 403);
}

TEST_CASE("firmware api: settings backup downloads and a bad restore is refused", "[web]") {
  FirmwareFixture t;
  const auto who = t.f.admin();
  const auto root = t.f.dir / "root";
  std::filesystem::create_directories(root / "etc/appl");
  t.f.dir.write("root/etc/appl/appliance.json",
                std::string{dstm_server::default_config_document()});
  const auto backup = t.f.as(who, "GET", "/api/firmware/backup");
  REQUIRE(backup.status == 200);
  CHECK(backup.content_type == "application/x-tar");
  std::vector<std::byte> archive;
  for (char c : backup.body) archive.push_back(static_cast<std::byte>(c));

  t.f.dir.write("root/etc/appl/appliance.json", "{}");
  const auto restored = t.upload(who, "/api/firmware/restore", archive);
  REQUIRE(restored.status == 200);
  std::ifstream in{root / "etc/appl/appliance.json"};
  CHECK(std::string{std::istreambuf_iterator<char>{in}, {}} ==
        std::string{dstm_server::default_config_document()});

  std::vector<std::byte> junk(2048, std::byte{'x'});
  const auto bad = t.upload(who, "/api/firmware/restore", junk);
  CHECK(bad.status == 422);
  CHECK(body_of(bad).at("code") == "bad_settings");
}

TEST_CASE("firmware api: a failed install is reported and the tool gets the page's choices",
          "[web]") {
  AppFixture f;
  const auto args = f.dir / "args";
  // A stand-in fw-upgrade: records its arguments; verify accepts, install fails half-way.
  const auto tool = f.dir.write(
      "fake-fw-upgrade.sh",
      "#!/bin/sh\necho \"$*\" >> '" + args.string() +
          "'\ncase \"$3\" in\n"
          "  verify) echo '{\"version\":\"9.9\",\"board\":\"x86-64\",\"compat_version\":\"1.1\","
          "\"created\":1,\"size\":100,\"sha256\":\"00\",\"keep_settings\":false,\"target\":\"B\"}';"
          ";\n"
          "  --progress) echo '{\"progress\":{\"written\":50,\"total\":100}}'\n"
          "    echo '{\"error\":\"io\",\"message\":\"disk gone\"}'; exit 2;;\n"
          "  *) echo '{\"error\":\"bad_usage\",\"message\":\"no\"}'; exit 64;;\n"
          "esac\n");
  std::filesystem::permissions(tool, std::filesystem::perms::owner_all);
  f.options.web.firmware.tool = tool.string();
  f.options.web.firmware.disk = "/dev/test-disk";
  // Never the host's reboot: a command that records it was asked.
  const auto reboot =
      f.dir.write("reboot.sh", "#!/bin/sh\necho reboot >> '" + args.string() + "'\n");
  std::filesystem::permissions(reboot, std::filesystem::perms::owner_all);
  f.options.web.firmware.reboot_command = {reboot.string()};
  f.open();
  const auto who = f.admin();

  web::HttpRequest r;
  r.method = "POST";
  r.target = "/api/firmware/upload?keep_settings=false";
  r.path = "/api/firmware/upload";
  r.query.emplace("keep_settings", "false");
  r.remote = "192.0.2.1";
  r.headers = {
      {"host", std::string{AppFixture::kHost}}, {"cookie", who.cookie}, {"x-csrf-token", who.csrf}};
  const auto policy = f.app->upload_policy()(r);
  REQUIRE(policy);
  fwtest::write_bytes(policy->file, std::vector<std::byte>(100, std::byte{1}));
  r.body_file = policy->file;
  const auto uploaded = run(f.io, f.app->handle(std::move(r)));
  REQUIRE(uploaded.status == 200);
  CHECK(body_of(uploaded).at("verified").at("version") == "9.9");

  REQUIRE(f.as(who, "POST", "/api/firmware/install", "{}").status == 202);
  std::string state;
  run_until(f.io, [&] {
    state =
        std::string{body_of(f.as(who, "GET", "/api/firmware")).at("job").at("state").as_string()};
    return state != "installing";
  });
  CHECK(state == "failed");
  const auto after = body_of(f.as(who, "GET", "/api/firmware"));
  CHECK(after.at("job").at("result").at("message") == "disk gone");
  CHECK(after.at("job").at("written") == 50);
  CHECK_FALSE(after.at("staged").is_null());  // still there to try again
  CHECK(f.as(who, "POST", "/api/firmware/reboot", "{}").status == 202);
  run_until(f.io, [&] {
    std::ifstream rebooted{args};
    const std::string all{std::istreambuf_iterator<char>{rebooted}, {}};
    return all.find("reboot\n") != std::string::npos;
  });

  std::ifstream in{args};
  std::string text{std::istreambuf_iterator<char>{in}, {}};
  const auto staged = (f.dir / "state" / "firmware" / "staged.dstmfw").string();
  CHECK(text.find("--disk /dev/test-disk verify " + policy->file.string() + " --reset-settings") !=
        std::string::npos);
  CHECK(text.find("--disk /dev/test-disk --progress install " + staged + " --reset-settings") !=
        std::string::npos);
}

TEST_CASE("firmware api: without a configured disk the tool is run without --disk", "[web]") {
  AppFixture f;
  const auto args = f.dir / "args";
  // A stand-in fw-upgrade that records its arguments and finds no disk.
  const auto tool = f.dir.write(
      "fake-fw-upgrade.sh",
      "#!/bin/sh\necho \"$*\" >> '" + args.string() +
          "'\necho '{\"error\":\"bad_disk\",\"message\":\"no disk has partitions named boot, "
          "slotA and slotB\"}'; exit 2\n");
  std::filesystem::permissions(tool, std::filesystem::perms::owner_all);
  f.options.web.firmware.tool = tool.string();
  f.options.web.firmware.disk.clear();
  f.open();
  const auto who = f.admin();

  const auto got = body_of(f.as(who, "GET", "/api/firmware"));
  CHECK(got.at("status").at("error") == "bad_disk");
  std::ifstream in{args};
  CHECK(std::string{std::istreambuf_iterator<char>{in}, {}} == "status\n");
}
