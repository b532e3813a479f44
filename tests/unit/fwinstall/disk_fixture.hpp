// A small appliance disk image for the upgrade tool's tests, made with the same tools a builder
// uses: sfdisk writes the GPT (bios, boot, slotA, slotB, data), mkfs.fat and mtools the boot
// FAT with /grub/grubenv, mke2fs -d the slot file systems; and bundles signed with a test key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fwimage/bundle.hpp"
#include "fwimage/grubenv.hpp"
#include "fwimage/slots.hpp"
#include "fwinstall/upgrade.hpp"
#include "support/daemon_process.hpp"

namespace fwtest {

inline constexpr std::uint64_t kSlotBytes = 16 * 1024 * 1024;
inline constexpr std::uint64_t kPartBytes = 12 * 1024 * 1024;

// Runs a shell command; REQUIREs exit status 0.
void run(const std::string& command);
std::vector<std::byte> read_bytes(const std::filesystem::path& file, std::uint64_t offset = 0,
                                  std::uint64_t size = UINT64_MAX);
void write_bytes(const std::filesystem::path& file, const std::vector<std::byte>& bytes);
std::string sha256_of(const std::vector<std::byte>& bytes);

fwimage::SecretKey test_key(std::uint8_t seed = 1);

// An ext2 image of kPartBytes holding /slot.json = {"version": version}.
std::vector<std::byte> make_slot_image(const test::TempDir& dir, const std::string& version);

struct BundleSpec {
  std::string board = "x86-64";
  std::string version = "0.2.0";
  fwimage::CompatVersion compat{1, 0};
  std::uint8_t key_seed = 1;
};
struct Bundle {
  std::vector<std::byte> file;
  std::vector<std::byte> part;
};
Bundle make_bundle(const test::TempDir& dir, const BundleSpec& spec = {});

// The disk image with slot A installed (version 0.1.0, ok, first) and B empty, the public key
// and /etc/dstm/firmware.json of a running 0.1.0 (board x86-64, compat 1.0); paths point at them
// with slot A running.
struct Appliance {
  explicit Appliance(const test::TempDir& dir);
  std::filesystem::path disk;
  fwinstall::Paths paths;
  std::uint64_t slot_b_offset = 0;
  std::uint64_t boot_offset = 0;

  fwimage::Environment grubenv() const;
  void set_grubenv(const fwimage::Environment& env) const;
  fwimage::BootState boot_state() const;
  std::vector<std::byte> slot_b(std::uint64_t size) const;
  std::string disk_sha256() const;
};

}  // namespace fwtest
