#!/usr/bin/env bash
# Test 1 of the firmware image (docs/firmware.md, "Tests"): boots the built disk image in QEMU
# (TCG, 512 MiB, virtio disk, virtio-net on a tap device inside a network namespace this test
# creates) and checks, from that namespace, that the appliance serves what an operator needs after
# flashing: the console shows the dashboard URL and the first admin password, the dashboard
# answers over HTTPS with its login page on IPv4 and IPv6, and the TSP port answers a VERSION line
# with the server's CAPABILITY line. Then boots the same disk a second time: the data partition
# formatted by the first boot is kept (no "first boot" again). Needs root.
#
#   boot_test.sh IMAGE_DIR
#
# IMAGE_DIR holds dstm-x86-64.img (mkimage.sh's output). The disk is copied, never changed. The
# static addresses come from the boot partition's /grub/local.cfg (dstm.net=...), written into
# the copy with mtools. Prints the time from QEMU's start to the dashboard line of each boot.
set -euo pipefail

image_dir=${1:?usage: boot_test.sh IMAGE_DIR}
image=$image_dir/dstm-x86-64.img
[[ -f $image ]] || { echo "boot_test: no $image (build the firmware-image target)"; exit 1; }
[[ $(id -u) == 0 ]] || { echo "boot_test: needs root (a network namespace and a tap device)"; exit 1; }

readonly VM4=192.0.2.10 HOST4=192.0.2.1 VM6=2001:db8:f1::10 HOST6=2001:db8:f1::1
readonly BOOT_OFFSET=$((2 * 1024 * 1024))  # the boot partition starts at 2 MiB (mkimage.sh)
readonly BOOT_TIMEOUT=150                   # seconds for one boot to the dashboard line
ns=dstmfw-$$
tmp=$(mktemp -d /tmp/dstm-fwtest.XXXXXX)
qemu_pid=

stop_vm() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid"
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$qemu_pid" 2>/dev/null && kill -9 "$qemu_pid"
  fi
  qemu_pid=
}
cleanup() {
  stop_vm
  ip netns del "$ns" 2>/dev/null || true
  # KEEP_CONSOLE=FILE keeps the last boot's console for a person looking into a failure.
  [[ -z ${KEEP_CONSOLE:-} ]] || cp "$tmp/console.log" "$KEEP_CONSOLE" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "boot_test: FAIL: $*"
  echo "---- console (last 60 lines) ----"
  tail -n 60 "$tmp/console.log" 2>/dev/null || true
  exit 1
}
in_ns() { ip netns exec "$ns" "$@"; }

cp --sparse=always "$image" "$tmp/disk.img"
printf 'set dstm_cmdline="dstm.net=%s/24,%s/64"\n' "$VM4" "$VM6" >"$tmp/local.cfg"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$tmp/disk.img@@$BOOT_OFFSET" "$tmp/local.cfg" ::/grub/local.cfg

ip netns add "$ns"
in_ns ip link set lo up
in_ns ip tuntap add dev tap0 mode tap
in_ns ip addr add "$HOST4/24" dev tap0
in_ns ip addr add "$HOST6/64" dev tap0 nodad
in_ns ip link set tap0 up

# Boots the copy; returns once the console shows the dashboard line for VM4, or fails.
boot() {
  : >"$tmp/console.log"
  rm -f "$tmp/qemu.pid"
  local start
  start=$(date +%s%N)
  in_ns timeout $((BOOT_TIMEOUT + 30)) qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 \
    -nodefaults -display none -monitor none -no-reboot \
    -serial "file:$tmp/console.log" -pidfile "$tmp/qemu.pid" \
    -drive "file=$tmp/disk.img,format=raw,if=virtio" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0 &
  for _ in $(seq 50); do [[ -s $tmp/qemu.pid ]] && break; sleep 0.1; done
  [[ -s $tmp/qemu.pid ]] || fail "QEMU did not start"
  qemu_pid=$(<"$tmp/qemu.pid")
  local deadline=$((SECONDS + BOOT_TIMEOUT)) grub_ms=
  until grep -q "dstm-init: dashboard: https://$VM4/" "$tmp/console.log"; do
    kill -0 "$qemu_pid" 2>/dev/null || fail "the VM stopped before the dashboard line"
    ((SECONDS < deadline)) || fail "no dashboard line within $BOOT_TIMEOUT s"
    if [[ -z $grub_ms ]] && grep -q "GRUB: booting" "$tmp/console.log"; then
      grub_ms=$((($(date +%s%N) - start) / 1000000))
    fi
    sleep 0.2
  done
  # For docs/firmware.md's measurements: where the time goes (the init's lines say how long
  # after the kernel's start it began and was up).
  echo "boot_test: power-on to dashboard line: $((($(date +%s%N) - start) / 1000000)) ms" \
    "(GRUB's line at ${grub_ms:-?} ms; $(grep -o '[0-9.]* s after the kernel started' \
    "$tmp/console.log" | tr '\n' ' '))"
}

# --- First boot -------------------------------------------------------------------------------
boot
grep -q "dstm-init: first boot: formatting" "$tmp/console.log" ||
  fail "the first boot did not format the data partition"
grep -Eq "dstm-init: dashboard: https://$VM4/ user admin password [^ ]{8,}" "$tmp/console.log" ||
  fail "the console does not show the first admin password"
grep -q "dstm-init: dashboard: https://\[$VM6\]/" "$tmp/console.log" ||
  fail "the console does not show the IPv6 dashboard URL"

for url in "https://$VM4/" "https://[$VM6]/"; do
  page=$(in_ns curl -ksS --max-time 30 "$url") || fail "no HTTPS answer from $url"
  grep -q 'id="login-form"' <<<"$page" || fail "$url is not the dashboard's login page"
  echo "boot_test: $url answers with the login page"
done
# The HTTP listener only redirects to HTTPS (docs/web.md).
in_ns curl -ksS --max-time 30 -o /dev/null -w '%{http_code}\n' "http://$VM4/" | grep -qx 308 ||
  fail "http://$VM4/ does not redirect to HTTPS"

# TSP over TCP (docs/tsp.md): a VERSION line gets the CAPABILITY line.
for addr in "$VM6" "$VM4"; do
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  answer=$(in_ns timeout 20 bash -c '
    exec 3<>"/dev/tcp/$1/3653"
    printf "VERSION=2.0.0\r\n" >&3
    IFS= read -r line <&3
    printf "%s\n" "$line"' _ "$addr") || fail "TSP on $addr:3653 did not answer"
  [[ $answer == CAPABILITY* ]] || fail "TSP on $addr:3653 answered '$answer', not CAPABILITY"
  echo "boot_test: TSP on $addr:3653 answers: ${answer%$'\r'}"
done

grep -q "dstm-init: slot A" "$tmp/console.log" || fail "the console does not name slot A"
stop_vm

# --- Second boot: the data partition and its settings are kept --------------------------------
cp "$tmp/console.log" "$tmp/console-1.log"
boot
if grep -q "first boot" "$tmp/console.log"; then
  fail "the second boot formatted or seeded the data partition again"
fi
page=$(in_ns curl -ksS --max-time 30 "https://$VM4/") || fail "no HTTPS answer after the reboot"
grep -q 'id="login-form"' <<<"$page" || fail "no login page after the reboot"
stop_vm
echo "boot_test: PASS"
