#!/usr/bin/env bash
# Sets up the machine, builds the appliance's daemons and the lab tool (build/release, Release),
# and runs the self-contained DSTM lab in network namespaces on embedded defaults: dstm-server,
# two TEPs, two IPv6-only clients (one anonymous over TCP, one authenticated over UDP) that each
# ping the IPv4 host 203.0.113.10 every second, an iperf3 server on that host, and the dashboard
# (dstm-web) on https://127.0.0.1:8443/: its URL and first admin password are printed once the lab
# is up. A status table is printed every 5 s; Ctrl-C stops the daemons and removes the namespaces.
# Needs root.
# Extra arguments go to dstm-lab (e.g. --lifetime 30, --hold, --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ $(id -u) == 0 ]] || { echo "run: needs root (network namespaces, TUN devices)" >&2; exit 2; }
[[ ${APPL_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh
# Tests ON because the lab tool lives in tests/; only the targets the lab runs are built.
cmake -S "$root" -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DAPPL_BUILD_TESTS=ON >/dev/null
cmake --build build/release -j "$(nproc)" \
  --target dstm-server dstm-ctl tep tep-ctl dstm-client dstm-web dstm-lab
echo "run: starting the DSTM lab; Ctrl-C stops it"
exec build/release/tests/lab/dstm-lab "$@"
