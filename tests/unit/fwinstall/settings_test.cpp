// Tests for fwinstall/settings.hpp: backup and restore of the settings file set round trip, the
// archive reads with tar(1), and a backup whose config document the apply would refuse is
// refused with nothing replaced.
#include "fwinstall/settings.hpp"

#include <catch2/catch.hpp>

#include "disk_fixture.hpp"
#include "dstm_server/config.hpp"
#include "fwimage/tar.hpp"

namespace {

std::string text_of(const std::filesystem::path& p) {
  const auto bytes = fwtest::read_bytes(p);
  std::string out;
  for (auto b : bytes) out.push_back(std::to_integer<char>(b));
  return out;
}

struct Root {
  test::TempDir dir;
  fwinstall::Paths paths;
  Root() {
    paths.root = dir / "root";
    for (const char* d :
         {"root/etc/appl", "root/var/lib/appl/web/tls", "root/var/lib/appl/dstm-server"})
      std::filesystem::create_directories(dir / d);
    dir.write("root/etc/appl/appliance.json", dstm_server::default_config_document());
    dir.write("root/var/lib/appl/web/web.db", "users and history");
    dir.write("root/var/lib/appl/web/tls/self-signed.crt", "certificate");
    dir.write("root/var/lib/appl/web/tls/self-signed.key", "key");
    dir.write("root/var/lib/appl/dstm-server/leases.db", "leases");
    dir.write("root/var/lib/appl/other", "not a setting");
  }
};

}  // namespace

TEST_CASE("settings: the default document passes the apply's checks and a bad one does not",
          "[fwinstall]") {
  const auto errors = fwinstall::check_document(dstm_server::default_config_document());
  std::string all;
  for (const auto& e : errors) all += e + "\n";
  CHECK(all == "");
  CHECK_FALSE(fwinstall::check_document(R"({"bogus": 1})").empty());
  CHECK_FALSE(fwinstall::check_document("{").empty());
}

TEST_CASE("settings: backup and restore round trip the file set", "[fwinstall]") {
  Root r;
  const auto tar = r.dir / "settings.tar";
  const auto saved = fwinstall::backup(r.paths, tar);
  REQUIRE(saved);
  CHECK(saved->at("entries").as_array().size() == 5);
  // Any tar reads it.
  fwtest::run("tar -tf '" + tar.string() + "' | grep -qx 'var/lib/appl/web/tls/self-signed.key'");
  fwtest::run("! tar -tf '" + tar.string() + "' | grep -q other");

  r.dir.write("root/etc/appl/appliance.json", "{}");
  r.dir.write("root/var/lib/appl/web/tls/self-signed.key", "changed");
  std::filesystem::remove(r.paths.root / "var/lib/appl/dstm-server/leases.db");

  const auto restored = fwinstall::restore(r.paths, tar);
  REQUIRE(restored);
  CHECK(text_of(r.paths.root / "etc/appl/appliance.json") ==
        dstm_server::default_config_document());
  CHECK(text_of(r.paths.root / "var/lib/appl/web/tls/self-signed.key") == "key");
  CHECK(text_of(r.paths.root / "var/lib/appl/dstm-server/leases.db") == "leases");
}

TEST_CASE("settings: a backup with an invalid config document is refused and nothing replaced",
          "[fwinstall]") {
  Root r;
  auto bytes = [](std::string_view s) {
    std::vector<std::byte> v;
    for (char c : s) v.push_back(static_cast<std::byte>(c));
    return v;
  };
  const auto tar = r.dir / "bad.tar";
  fwtest::write_bytes(tar, fwimage::write_tar({
                               {.name = "var/lib/appl/web/web.db", .data = bytes("other users")},
                               {.name = "etc/appl/appliance.json", .data = bytes(R"({"bogus":1})")},
                           }));
  const auto refused = fwinstall::restore(r.paths, tar);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == fwimage::Errc::BadSettings);
  CHECK(refused.error().message.find("bogus") != std::string::npos);
  CHECK(text_of(r.paths.root / "var/lib/appl/web/web.db") == "users and history");

  SECTION("a file outside the set is refused") {
    fwtest::write_bytes(tar, fwimage::write_tar({
                                 {.name = "etc/passwd", .data = bytes("root::0:0")},
                                 {.name = "etc/appl/appliance.json",
                                  .data = bytes(dstm_server::default_config_document())},
                             }));
    const auto outside = fwinstall::restore(r.paths, tar);
    REQUIRE_FALSE(outside);
    CHECK(outside.error().message.find("etc/passwd") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(r.paths.root / "etc/passwd"));
  }
}
