// The upgrade tests' disk images and bundles (disk_fixture.hpp).
#include "disk_fixture.hpp"

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "fwimage/manifest.hpp"
#include "fwimage/signing.hpp"
#include "fwinstall/disk.hpp"

namespace fwtest {

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

std::string q(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

}  // namespace

void run(const std::string& command) {
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

std::vector<std::byte> read_bytes(const std::filesystem::path& file, std::uint64_t offset,
                                  std::uint64_t size) {
  std::ifstream in{file, std::ios::binary};
  REQUIRE(in);
  in.seekg(0, std::ios::end);
  const auto end = static_cast<std::uint64_t>(in.tellg());
  REQUIRE(offset <= end);
  const auto n = std::min(size, end - offset);
  std::vector<std::byte> out(n);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
  return out;
}

void write_bytes(const std::filesystem::path& file, const std::vector<std::byte>& bytes) {
  std::ofstream out{file, std::ios::binary | std::ios::trunc};
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

std::string sha256_of(const std::vector<std::byte>& bytes) {
  fwimage::PartHasher h;
  h.update(bytes);
  return fwimage::to_hex(h.finish());
}

fwimage::SecretKey test_key(std::uint8_t seed) {
  fwimage::SecretKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i * 13 + seed);
  return k;
}

std::vector<std::byte> make_slot_image(const test::TempDir& dir, const std::string& version) {
  const auto root = dir / ("slot-" + version);
  std::filesystem::create_directories(root);
  dir.write("slot-" + version + "/slot.json", fmt::format("{{\"version\":\"{}\"}}\n", version));
  const auto image = dir / ("slot-" + version + ".ext2");
  run(fmt::format("mke2fs -q -F -t ext2 -d {} {} {}k >/dev/null", q(root), q(image),
                  kPartBytes / 1024));
  auto bytes = read_bytes(image);
  REQUIRE(bytes.size() == kPartBytes);
  return bytes;
}

Bundle make_bundle(const test::TempDir& dir, const BundleSpec& spec) {
  Bundle b;
  b.part = make_slot_image(dir, spec.version);
  fwimage::PartHasher h;
  h.update(b.part);
  fwimage::Manifest m{.board = spec.board,
                      .version = spec.version,
                      .compat = spec.compat,
                      .created = 1763800000,
                      .parts = {{.name = "slot", .size = b.part.size(), .sha256 = h.finish()}}};
  b.file = fwimage::bundle_prefix(m, test_key(spec.key_seed));
  b.file.insert(b.file.end(), b.part.begin(), b.part.end());
  return b;
}

Appliance::Appliance(const test::TempDir& dir) {
  disk = dir / "disk.img";
  const std::uint64_t boot_mib = 2;
  const std::uint64_t total = (1 + 1 + boot_mib + 2 * kSlotBytes / kMiB + 2 + 1) * kMiB;
  run(fmt::format("truncate -s {} {}", total, q(disk)));
  const auto script = dir.write(
      "layout.sfdisk",
      fmt::format("label: gpt\nunit: sectors\nfirst-lba: 2048\n"
                  "start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios\n"
                  "size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\n"
                  "size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=slotA\n"
                  "size={}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=slotB\n"
                  "size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data\n",
                  boot_mib * kMiB / 512, kSlotBytes / 512, kSlotBytes / 512));
  run(fmt::format("sfdisk -q {} < {} >/dev/null", q(disk), q(script)));

  // The boot FAT with the initial boot state, written into its partition.
  fwimage::Environment env;
  fwimage::store(fwimage::BootState{}, env);
  fwimage::set(env, "A_VERSION", "0.1.0");
  const auto block = fwimage::format_grubenv(env).value();
  write_bytes(dir / "grubenv", {block.begin(), block.end()});
  const auto boot = dir / "boot.fat";
  run(fmt::format("mkfs.fat -C {} {} >/dev/null", q(boot), boot_mib * 1024));
  run(fmt::format("mmd -i {} ::/grub && mcopy -i {} {} ::/grub/grubenv", q(boot), q(boot),
                  q(dir / "grubenv")));
  boot_offset = 2 * kMiB;  // LBA 4096, after bios at 2048..4095
  run(fmt::format("dd if={} of={} bs=1M seek=2 conv=notrunc status=none", q(boot), q(disk)));
  const auto slot_a = make_slot_image(dir, "0.1.0");
  write_bytes(dir / "slotA.img", slot_a);
  run(fmt::format("dd if={} of={} bs=1M seek={} conv=notrunc status=none", q(dir / "slotA.img"),
                  q(disk), 2 + boot_mib));
  slot_b_offset = (2 + boot_mib) * kMiB + kSlotBytes;

  paths.disk = disk;
  paths.sys = dir / "no-sysfs";  // hermetic: a test that clears `disk` brings its own sysfs
  paths.public_key =
      dir.write("firmware.pub", fwimage::format_public_key(fwimage::public_key_of(test_key(1))));
  paths.firmware_json =
      dir.write("firmware.json", R"({"board":"x86-64","version":"0.1.0","compat_version":"1.0"})");
  paths.cmdline = dir.write("cmdline", "console=ttyS0 dstm.slot=A quiet\n");
  paths.root = dir / "root";
}

fwimage::Environment Appliance::grubenv() const {
  auto d = fwinstall::Disk::open(disk, false).value();
  return fwinstall::BootEnvironment::locate(d).value().read(d).value();
}

void Appliance::set_grubenv(const fwimage::Environment& env) const {
  auto d = fwinstall::Disk::open(disk, true).value();
  fwinstall::BootEnvironment::locate(d).value().write(d, env).value();
}

fwimage::BootState Appliance::boot_state() const {
  return fwimage::boot_state_from(grubenv()).value();
}

std::vector<std::byte> Appliance::slot_b(std::uint64_t size) const {
  return read_bytes(disk, slot_b_offset, size);
}

std::string Appliance::disk_sha256() const {
  return sha256_of(read_bytes(disk));
}

}  // namespace fwtest
