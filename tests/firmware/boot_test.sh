#!/usr/bin/env bash
# Test 1 of the firmware image (docs/firmware.md, "Tests"): boots the built disk image in QEMU
# (vm_lib.sh: TCG, virtio-net on a tap device inside a network namespace this test creates) and
# checks, from that namespace, that the appliance serves what an operator needs after flashing:
# the console shows the dashboard URL and the first admin password, the dashboard answers over
# HTTPS with its login page on IPv4 and IPv6, and the TSP port answers a VERSION line with the
# server's CAPABILITY line. Then boots the same disk a second time, from UEFI firmware (OVMF)
# instead of the BIOS: GRUB's EFI image on the boot partition boots the same slot, and the data
# partition formatted by the first boot is kept (no "first boot" again). Needs root.
#
#   boot_test.sh IMAGE_DIR
#
# IMAGE_DIR holds dstm-x86-64.img (mkimage.sh's output). The disk is copied, never changed.
# Prints the time from QEMU's start to the dashboard line of each boot.
set -euo pipefail
# shellcheck source=tests/firmware/vm_lib.sh
source "$(dirname "$0")/vm_lib.sh"

image_dir=${1:?usage: boot_test.sh IMAGE_DIR}
vm_setup boot_test "$image_dir/dstm-x86-64.img"

# --- First boot -------------------------------------------------------------------------------
vm_boot
console=$VM_TMP/console.log
grep -q "dstm-init: first boot: formatting" "$console" ||
  vm_fail "the first boot did not format the data partition"
grep -Eq "dstm-init: dashboard: https://$VM4/ user admin password [^ ]{8,}" "$console" ||
  vm_fail "the console does not show the first admin password"
grep -q "dstm-init: dashboard: https://\[$VM6\]/" "$console" ||
  vm_fail "the console does not show the IPv6 dashboard URL"

for url in "https://$VM4/" "https://[$VM6]/"; do
  page=$(in_ns curl -ksS --max-time 30 "$url") || vm_fail "no HTTPS answer from $url"
  grep -q 'id="login-form"' <<<"$page" || vm_fail "$url is not the dashboard's login page"
  echo "boot_test: $url answers with the login page"
done
# The HTTP listener only redirects to HTTPS (docs/web.md).
in_ns curl -ksS --max-time 30 -o /dev/null -w '%{http_code}\n' "http://$VM4/" | grep -qx 308 ||
  vm_fail "http://$VM4/ does not redirect to HTTPS"

# TSP over TCP (docs/tsp.md): a VERSION line gets the CAPABILITY line.
for addr in "$VM6" "$VM4"; do
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  answer=$(in_ns timeout 20 bash -c '
    exec 3<>"/dev/tcp/$1/3653"
    printf "VERSION=2.0.0\r\n" >&3
    IFS= read -r line <&3
    printf "%s\n" "$line"' _ "$addr") || vm_fail "TSP on $addr:3653 did not answer"
  [[ $answer == CAPABILITY* ]] || vm_fail "TSP on $addr:3653 answered '$answer', not CAPABILITY"
  echo "boot_test: TSP on $addr:3653 answers: ${answer%$'\r'}"
done

grep -q "dstm-init: slot A" "$console" || vm_fail "the console does not name slot A"
vm_stop

# --- Second boot, from UEFI: the data partition and its settings are kept --------------------
VM_UEFI=1 vm_boot
grep -q "BdsDxe: starting" "$console" || vm_fail "the second boot did not come from UEFI firmware"
grep -q "dstm-init: slot A" "$console" || vm_fail "UEFI did not boot slot A"
if grep -q "first boot" "$console"; then
  vm_fail "the second boot formatted or seeded the data partition again"
fi
page=$(in_ns curl -ksS --max-time 30 "https://$VM4/") || vm_fail "no HTTPS answer after the reboot"
grep -q 'id="login-form"' <<<"$page" || vm_fail "no login page after the reboot"
vm_stop
echo "boot_test: PASS"
