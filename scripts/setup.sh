#!/usr/bin/env bash
# Installs every system package the appliance needs to build, run and test (Debian 12, as root).
# Idempotent: safe to run again; apt-get skips what is already installed.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config ccache clang libclang-rt-14-dev
  # libraries
  libboost1.81-dev libboost-json1.81-dev libpugixml-dev libmnl-dev libcrypto++-dev
  catch2 libsqlite3-dev libssl-dev libfmt-dev
  # the TEP's tc-BPF fast path: libbpf, and bpftool for the programs' skeleton header
  libbpf-dev bpftool linux-libc-dev
  # network tools used by tests and the lab
  iproute2 iputils-ping iperf3
  # JSON in the shell tests (the firmware image test talks to the dashboard API)
  jq
  # anycast lab tests: an unmodified curl under the preload library
  curl
  # data-path benchmarks: trafgen (small packets), ethtool, and Debian's anytun as the reference
  netsniff-ng ethtool anytun
  # the dashboard: Chart.js (embedded in dstm-web at build time), its browser test (Chromium
  # driven by playwright-core from npm, which needs Node.js >= 20: below) and its load check (wrk)
  libjs-chart.js chromium wrk
  # the firmware image (docs/firmware.md): GRUB's BIOS and UEFI files, the FAT and ext4 tools,
  # GPT, the kernel module index, the initramfs archive and compression; QEMU boots it in the
  # image test, with SeaBIOS and with OVMF (UEFI);
  # fw-upgrade's tests make disk image files with the same tools; the kernel backend's check
  # boots Debian's kernel in a QEMU guest (tests/kernel)
  grub-pc-bin grub-efi-amd64-bin mtools dosfstools e2fsprogs fdisk kmod cpio zstd qemu-system-x86 ovmf
)

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "setup: ${#packages[@]} packages present"

# The browser test's one npm package (playwright-core, pinned in package-lock.json). npm ci wipes
# and reinstalls node_modules, so it runs only when the installed version is not the locked one.
browser_dir=$(cd "$(dirname "$0")/../tests/browser" && pwd)
# Node.js comes from apt as well: these machines' apt sources carry Node.js 20 with npm inside.
# Where they only carry Debian's nodejs 18, its npm is a package of its own, and the version
# check below says what is missing.
command -v node >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends nodejs >/dev/null
command -v npm >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) ||
  { echo "setup: tests/browser needs Node.js >= 20 (playwright-core); this is $(node --version)" >&2; exit 1; }
locked=$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' \
  "$browser_dir/package-lock.json")
installed=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
  "$browser_dir/node_modules/playwright-core/package.json")
if [[ "$installed" != "$locked" ]]; then
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: playwright-core $locked in tests/browser"
