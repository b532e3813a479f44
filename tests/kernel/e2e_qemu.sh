#!/usr/bin/env bash
# The DSTM end-to-end suite (tests/integration/dstm_e2e_test.cpp: server, two TEPs, two clients
# and an IPv4 host in namespaces) with APPL_E2E_BACKEND=kernel, inside a QEMU TCG guest booted
# from Debian's 6.1 kernel, which has ip6tnl: the TEPs' and the clients' kernel backend end to
# end. The guest holds the four binaries at their build paths (compiled into the suite; so
# nothing is mounted over /tmp, where a build tree may live),
# iproute2's ip and ping from the host with their libraries, and busybox. About 2 minutes.
# Exit 77 (ctest: skipped) when the kernel or busybox package cannot be had.
#
#   e2e_qemu.sh WORK_DIR E2E_BINARY DSTM_SERVER TEP DSTM_CLIENT
#
# The .deb cache is FW_DEB_CACHE, else WORK_DIR/../debs.
set -euo pipefail
# shellcheck source=tests/kernel/guest_lib.sh
source "$(dirname "$0")/guest_lib.sh"

work=$(realpath -m "$1")
shift
guest_root "$work" "${FW_DEB_CACHE:-$work/../debs}" ip6_tunnel veth tun
guest_copy "$@" "$(command -v ip)" "$(command -v ping)"
cat >"$GUEST_ROOT/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
modprobe veth
modprobe tun
export PATH=$(dirname "$(command -v ip)"):/usr/bin:/bin APPL_E2E_BACKEND=kernel
$1 --use-colour no 2>&1
echo "E2E exit=\$?"
poweroff -f
INIT
chmod 0755 "$GUEST_ROOT/init"
guest_boot "$work" 400 1024

grep -E '^E2E exit=|test cases|All tests passed' "$work/console.log" >&2 || true
grep -q '^E2E exit=0' "$work/console.log" && exit 0
guest_say "the suite did not pass in the guest; console: $work/console.log"
tail -n 80 "$work/console.log" >&2
exit 1
