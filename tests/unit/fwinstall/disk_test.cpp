// Tests for fwinstall/disk.hpp's find_appliance_disk on fake sysfs trees laid out as the kernel
// lays them out: /sys/class/block/* are links into /sys/devices/.../block/<disk>/<partition>,
// each with a uevent, partitions with a `partition` file.
#include "fwinstall/disk.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include "disk_fixture.hpp"
#include "fwinstall/upgrade.hpp"
#include "support/daemon_process.hpp"

namespace fs = std::filesystem;
using fwimage::Errc;

namespace {

// A sysfs tree under dir/sys with the disks added to it, and dir/dev for the device nodes.
struct FakeSys {
  explicit FakeSys(const test::TempDir& d) : sys{d / "sys"}, dev{d / "dev"} {
    fs::create_directories(sys / "class" / "block");
    fs::create_directories(dev);
  }

  static void write(const fs::path& file, const std::string& text) {
    std::ofstream out{file, std::ios::trunc};
    out << text;
    REQUIRE(out.flush());
  }

  // A disk `name` whose partitions (1, 2, ...) have the GPT names `labels` ("" for none), as
  // on a PCI controller: devices/pci0000:00/<name>/block/<name>/<name><sep><n>.
  void add_disk(const std::string& name, const std::vector<std::string>& labels) {
    const auto rel = fs::path{"devices"} / "pci0000:00" / name / "block" / name;
    const auto disk = sys / rel;
    fs::create_directories(disk);
    write(disk / "uevent", fmt::format("MAJOR=8\nMINOR=0\nDEVNAME={}\nDEVTYPE=disk\n", name));
    fs::create_symlink(fs::path{"../.."} / rel, sys / "class" / "block" / name);
    const std::string sep = std::isdigit(static_cast<unsigned char>(name.back())) ? "p" : "";
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const auto part = fmt::format("{}{}{}", name, sep, i + 1);
      fs::create_directories(disk / part);
      write(disk / part / "partition", fmt::format("{}\n", i + 1));
      auto uevent = fmt::format("MAJOR=8\nMINOR={}\nDEVNAME={}\nDEVTYPE=partition\nPARTN={}\n",
                                i + 1, part, i + 1);
      if (!labels[i].empty()) uevent += fmt::format("PARTNAME={}\n", labels[i]);
      write(disk / part / "uevent", uevent);
      fs::create_symlink(fs::path{"../.."} / rel / part, sys / "class" / "block" / part);
    }
  }

  fwimage::Result<fs::path> find() const { return fwinstall::find_appliance_disk(sys, dev); }

  fs::path sys;
  fs::path dev;
};

const std::vector<std::string> kAppliance{"bios", "boot", "slotA", "slotB", "data"};

}  // namespace

TEST_CASE("find_appliance_disk: the one disk with boot, slotA and slotB", "[fwinstall]") {
  test::TempDir dir;
  FakeSys s{dir};
  s.add_disk("nvme0n1", kAppliance);
  s.add_disk("sdb", {"EFI system partition", "", "Basic data partition"});
  s.add_disk("loop0", {});
  const auto disk = s.find();
  REQUIRE(disk);
  CHECK(*disk == s.dev / "nvme0n1");
}

TEST_CASE("find_appliance_disk: two appliance disks are refused, naming both", "[fwinstall]") {
  test::TempDir dir;
  FakeSys s{dir};
  s.add_disk("sda", kAppliance);
  s.add_disk("sdb", kAppliance);  // the image on a USB stick
  const auto disk = s.find();
  REQUIRE_FALSE(disk);
  CHECK(disk.error().code == Errc::BadUsage);
  CHECK_THAT(disk.error().message,
             Catch::Contains((s.dev / "sda").string() + ", " + (s.dev / "sdb").string()) &&
                 Catch::Contains("--disk"));
}

TEST_CASE("find_appliance_disk: no appliance disk is an error", "[fwinstall]") {
  test::TempDir dir;
  FakeSys s{dir};
  auto none = s.find();
  REQUIRE_FALSE(none);
  CHECK(none.error().code == Errc::BadDisk);
  CHECK_THAT(none.error().message, Catch::Contains("--disk"));

  s.add_disk("sda", {"EFI", "root"});
  none = s.find();
  REQUIRE_FALSE(none);
  CHECK(none.error().code == Errc::BadDisk);

  const auto no_sysfs = fwinstall::find_appliance_disk(dir / "nowhere", s.dev);
  REQUIRE_FALSE(no_sysfs);
  CHECK(no_sysfs.error().code == Errc::Io);
}

TEST_CASE("find_appliance_disk: a disk with only some of the names does not qualify",
          "[fwinstall]") {
  test::TempDir dir;
  FakeSys s{dir};
  s.add_disk("sda", {"bios", "boot", "slotA", "data"});
  s.add_disk("sdb", {"slotB"});  // the names spread over two disks are not one appliance disk
  auto disk = s.find();
  REQUIRE_FALSE(disk);
  CHECK(disk.error().code == Errc::BadDisk);

  s.add_disk("vda", kAppliance);
  disk = s.find();
  REQUIRE(disk);
  CHECK(*disk == s.dev / "vda");
}

TEST_CASE("find_appliance_disk: status without a disk uses the one it finds and says which",
          "[fwinstall]") {
  test::TempDir dir;
  fwtest::Appliance a{dir};
  // The disk image file stands in for the device node: DEVNAME names it under `dev`.
  FakeSys s{dir};
  s.add_disk("vda", kAppliance);
  FakeSys::write(
      s.sys / "devices" / "pci0000:00" / "vda" / "block" / "vda" / "uevent",
      fmt::format("MAJOR=252\nMINOR=0\nDEVNAME={}\nDEVTYPE=disk\n", a.disk.filename().string()));
  a.paths.disk.clear();
  a.paths.sys = s.sys;
  a.paths.dev = a.disk.parent_path();
  const auto status = fwinstall::status(a.paths);
  REQUIRE(status);
  INFO(boost::json::serialize(*status));
  CHECK(status->at("disk").as_string() == a.disk.string());
  CHECK(status->at("slots").at("A").at("version").as_string() == "0.1.0");

  s.add_disk("sdb", kAppliance);
  const auto two = fwinstall::status(a.paths);
  REQUIRE_FALSE(two);
  CHECK(two.error().code == Errc::BadUsage);
}
