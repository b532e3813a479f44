#!/usr/bin/env bash
# Boots Debian's 6.1 kernel (which has ip6tnl, unlike the build host's) under QEMU TCG with a
# tiny initramfs whose /init loads veth and runs ip6tnl-check (the kernel loads ip6_tunnel by
# itself), then powers off. Passes when the guest prints "KCHECK result=pass". Exit 77 (ctest:
# skipped) when the kernel or busybox package is not in the .deb cache and cannot be fetched.
#
#   ip6tnl_qemu.sh CHECK_BINARY WORK_DIR
#
# The .deb cache is FW_DEB_CACHE, else WORK_DIR/../debs (the firmware build's BUILD/firmware/debs
# when WORK_DIR is BUILD/firmware/ip6tnl-check).
set -euo pipefail
# shellcheck source=tests/kernel/guest_lib.sh
source "$(dirname "$0")/guest_lib.sh"

check_bin=$(realpath "$1")
work=$(realpath -m "$2")
guest_root "$work" "${FW_DEB_CACHE:-$work/../debs}" ip6_tunnel veth
guest_copy "$check_bin"
cat >"$GUEST_ROOT/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Only veth by hand: ip6_tunnel is left to the kernel (request_module "rtnl-link-ip6tnl" through
# /sbin/modprobe at the first ip6tnl device), as the daemons rely on.
modprobe veth && echo "KCHECK modules=ok"
$check_bin
echo "KCHECK exit=\$?"
poweroff -f
INIT
chmod 0755 "$GUEST_ROOT/init"
guest_boot "$work" 90 256

grep '^KCHECK' "$work/console.log" >&2 || true
grep -q '^KCHECK result=pass' "$work/console.log" && exit 0
guest_say "the guest did not report a pass; console: $work/console.log"
tail -n 40 "$work/console.log" >&2
exit 1
