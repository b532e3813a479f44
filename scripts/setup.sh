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
  # data-path benchmarks: trafgen (small packets), ethtool, and Debian's anytun as the reference
  netsniff-ng ethtool anytun
  # the dashboard: Chart.js (embedded in dstm-web at build time), its browser test (Chromium
  # driven by playwright-core from npm; Node.js >= 20 and npm come with the machine, not from
  # Debian, whose nodejs 18 is too old for playwright-core) and its load check (wrk)
  libjs-chart.js chromium wrk
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
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "setup: node and npm (Node.js >= 20) are needed for tests/browser" >&2; exit 1; }
locked=$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' \
  "$browser_dir/package-lock.json")
installed=$(node -p 'try { require(process.argv[1]).version } catch { "" }' \
  "$browser_dir/node_modules/playwright-core/package.json")
if [[ "$installed" != "$locked" ]]; then
  (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: playwright-core $locked in tests/browser"
