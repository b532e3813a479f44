#!/usr/bin/env bash
# Sets up the machine, builds the appliance and runs it on its embedded defaults: today the DSTM
# server (TSP on [::1]:3653 and 127.0.0.1:3653, anonymous clients, pool 198.51.100.0/24, leases in
# /var/lib/appl/dstm-server/leases.db, control socket /run/appl/dstm-server.sock). Ctrl-C stops it.
# Extra arguments go to dstm-server (e.g. --config /etc/appl/appliance.json).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ ${APPL_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh
scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release -DAPPL_BUILD_TESTS=OFF
echo "run: starting dstm-server; try: build/release/dstm-server/dstm-ctl status"
exec build/release/dstm-server/dstm-server "$@"
