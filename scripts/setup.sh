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
