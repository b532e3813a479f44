#!/usr/bin/env bash
# Sets up the machine, builds the appliance and runs it on its embedded defaults.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ ${APPL_SKIP_SETUP:-0} == 1 ]] || scripts/setup.sh
scripts/build.sh build/release -DCMAKE_BUILD_TYPE=Release -DAPPL_BUILD_TESTS=OFF
echo "run: built the libraries (core, platform, tsp, dstm_server) into build/release."
echo "run: no daemon exists yet, so nothing is started; the daemons (dstm-server, tep,"
echo "run: dstm-web) start here once they are built."
