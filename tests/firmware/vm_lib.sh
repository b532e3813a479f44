# shellcheck shell=bash
# The firmware image tests' VM (sourced by boot_test.sh and lifecycle_test.sh): a copy of the
# built disk image booted in QEMU (TCG, 512 MiB, virtio disk, virtio-net on a tap device inside a
# network namespace made here), with static addresses from the boot partition's /grub/local.cfg
# (dstm.net=..., dstm.gw=...), QMP on the namespace's loopback for the disk's I/O throttle, and cleanup of QEMU (by PID), the
# namespaces and the temporary directory on exit, also when a test fails.
#
#   vm_setup NAME IMAGE   copies IMAGE, makes the namespace with tap0 (HOST4/24, HOST6/64)
#   vm_boot               boots; returns at the console's dashboard line for VM4
#                         (VM_UEFI=1: from UEFI firmware, OVMF, instead of the BIOS)
#   vm_boot_to_exit S     boots; returns when the VM ends by itself within S seconds (a reboot)
#   vm_wait_console P S   waits for a console line matching P (grep -E) of this boot
#   vm_wait_exit S        waits for a running VM to end by itself (QEMU runs with -no-reboot)
#   vm_stop / vm_kill     power the VM off (SIGTERM: QEMU quits at once) / SIGKILL
#   vm_throttle_writes B  limits the disk's writes to B bytes per second (0: no limit)
#   vm_fail MSG           prints MSG and the console's end, exits 1
#   in_ns CMD...          runs CMD in the namespace
# VM_TMP is the temporary directory (console.log is the current boot's console), VM_NS the
# namespace; a test adds its own cleanup with vm_on_exit CMD.
readonly VM4=192.0.2.10 HOST4=192.0.2.1 VM6=2001:db8:f1::10 HOST6=2001:db8:f1::1
readonly VM_BOOT_OFFSET=$((2 * 1024 * 1024))  # the boot partition starts at 2 MiB (mkimage.sh)
readonly VM_BOOT_TIMEOUT=150                   # seconds for one boot to the dashboard line
VM_TMP=
VM_NS=
VM_PID=
vm_exit_hooks=()

vm_on_exit() { vm_exit_hooks+=("$*"); }

vm_stop() {
  if [[ -n $VM_PID ]] && kill -0 "$VM_PID" 2>/dev/null; then
    kill "$VM_PID"
    for _ in $(seq 50); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$VM_PID" 2>/dev/null && kill -9 "$VM_PID"
  fi
  VM_PID=
}
vm_kill() {
  if [[ -n $VM_PID ]]; then
    kill -9 "$VM_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$VM_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  VM_PID=
}

vm_cleanup() {
  local hook
  for hook in "${vm_exit_hooks[@]}"; do eval "$hook" || true; done
  vm_stop
  [[ -z $VM_NS ]] || ip netns del "$VM_NS" 2>/dev/null || true
  # KEEP_CONSOLE=FILE keeps the last boot's console for a person looking into a failure.
  [[ -z ${KEEP_CONSOLE:-} ]] || cp "$VM_TMP/console.log" "$KEEP_CONSOLE" 2>/dev/null || true
  [[ -z $VM_TMP ]] || rm -rf "$VM_TMP"
}

vm_fail() {
  echo "${VM_NAME:-vm}: FAIL: $*"
  echo "---- console (last 60 lines) ----"
  tail -n 60 "$VM_TMP/console.log" 2>/dev/null || true
  exit 1
}

in_ns() { ip netns exec "$VM_NS" "$@"; }

vm_setup() {
  VM_NAME=$1
  local image=$2
  [[ -f $image ]] || { echo "$VM_NAME: no $image (build the firmware-image target)"; exit 1; }
  [[ $(id -u) == 0 ]] || { echo "$VM_NAME: needs root (network namespaces and a tap device)"; exit 1; }
  VM_TMP=$(mktemp -d /tmp/dstm-fwtest.XXXXXX)
  VM_NS=dstmfw-$$
  trap vm_cleanup EXIT
  cp --sparse=always "$image" "$VM_TMP/disk.img"
  printf 'set dstm_cmdline="dstm.net=%s/24,%s/64 dstm.gw=%s,%s"\n' "$VM4" "$VM6" "$HOST4" \
    "$HOST6" >"$VM_TMP/local.cfg"
  MTOOLS_SKIP_CHECK=1 mcopy -o -i "$VM_TMP/disk.img@@$VM_BOOT_OFFSET" "$VM_TMP/local.cfg" \
    ::/grub/local.cfg
  ip netns add "$VM_NS"
  in_ns ip link set lo up
  in_ns ip tuntap add dev tap0 mode tap
  in_ns ip addr add "$HOST4/24" dev tap0
  in_ns ip addr add "$HOST6/64" dev tap0 nodad
  in_ns ip link set tap0 up
}

vm_start() {
  : >"$VM_TMP/console.log"
  rm -f "$VM_TMP/qemu.pid"
  VM_START_NS=$(date +%s%N)
  local firmware=()
  [[ -z ${VM_UEFI:-} ]] || firmware=(-bios /usr/share/ovmf/OVMF.fd)
  in_ns timeout $((VM_BOOT_TIMEOUT + 600)) qemu-system-x86_64 -accel tcg -cpu max -m 512 \
    -smp 1 -nodefaults -display none -monitor none -no-reboot "${firmware[@]}" \
    -serial "file:$VM_TMP/console.log" -pidfile "$VM_TMP/qemu.pid" \
    -qmp tcp:127.0.0.1:4444,server=on,wait=off \
    -drive "file=$VM_TMP/disk.img,format=raw,if=virtio,id=disk0" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-pci,netdev=n0 &
  disown  # killed by its PID (vm_kill) without the shell's job report
  for _ in $(seq 50); do [[ -s $VM_TMP/qemu.pid ]] && break; sleep 0.1; done
  [[ -s $VM_TMP/qemu.pid ]] || vm_fail "QEMU did not start"
  VM_PID=$(<"$VM_TMP/qemu.pid")
  VM_BOOTS=$((${VM_BOOTS:-0} + 1))
}

# Keeps each boot's console as console-N.log (the test greps earlier boots' lines).
vm_keep_console() {
  [[ ! -s $VM_TMP/console.log ]] || cp "$VM_TMP/console.log" "$VM_TMP/console-${VM_BOOTS:-0}.log"
}

vm_boot() {
  vm_keep_console
  vm_start
  local deadline=$((SECONDS + VM_BOOT_TIMEOUT)) grub_ms='' init_ms=''
  until grep -q "dstm-init: dashboard: https://$VM4/" "$VM_TMP/console.log"; do
    kill -0 "$VM_PID" 2>/dev/null || vm_fail "the VM stopped before the dashboard line"
    ((SECONDS < deadline)) || vm_fail "no dashboard line within $VM_BOOT_TIMEOUT s"
    if [[ -z $grub_ms ]] && grep -q "GRUB: booting" "$VM_TMP/console.log"; then
      grub_ms=$((($(date +%s%N) - VM_START_NS) / 1000000))
    fi
    if [[ -z $init_ms ]] && grep -q "dstm-init: slot" "$VM_TMP/console.log"; then
      init_ms=$((($(date +%s%N) - VM_START_NS) / 1000000))
    fi
    sleep 0.1
  done
  # For docs/firmware.md's measurements: where the time goes (the init's first line says how
  # long after the kernel's start it began; the lines' times here are within 0.1 s).
  echo "$VM_NAME: boot $VM_BOOTS: power-on to dashboard line:" \
    "$((($(date +%s%N) - VM_START_NS) / 1000000)) ms (GRUB's line at ${grub_ms:-?} ms," \
    "the init's first at ${init_ms:-?} ms,"\
    "$(grep -o '[0-9.]* s after the kernel started' "$VM_TMP/console.log" | head -n1))"
}

# Waits for a console line of this boot matching PATTERN (grep -E), at most S seconds.
vm_wait_console() {  # PATTERN S
  local deadline=$((SECONDS + $2))
  until grep -Eq "$1" "$VM_TMP/console.log"; do
    kill -0 "$VM_PID" 2>/dev/null || vm_fail "the VM stopped before the console showed '$1'"
    ((SECONDS < deadline)) || vm_fail "the console did not show '$1' within $2 s"
    sleep 0.2
  done
}

vm_wait_exit() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$VM_PID" 2>/dev/null; do
    ((SECONDS < deadline)) || vm_fail "the VM did not end by itself within $1 s"
    sleep 0.2
  done
  VM_PID=
}

vm_boot_to_exit() {
  vm_keep_console
  vm_start
  vm_wait_exit "$1"
}

# QMP (QEMU's JSON protocol, one object per line) on the namespace's loopback: the capabilities
# handshake, then COMMAND; fails unless QEMU answers {"return": ...}. Events are skipped.
vm_qmp() {
  local answer
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  answer=$(in_ns timeout 10 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/4444
    IFS= read -r line <&3  # the greeting
    for command in "{\"execute\": \"qmp_capabilities\"}" "$1"; do
      printf "%s\n" "$command" >&3
      while IFS= read -r line <&3 && [[ $line == *\"event\"* ]]; do :; done
      [[ $line == *\"return\"* ]] || { printf "%s\n" "$line"; exit 1; }
    done' _ "$1") || vm_fail "QMP $1: $answer"
}

vm_throttle_writes() {
  local limits="\"bps\": 0, \"bps_rd\": 0, \"bps_wr\": $1, \"iops\": 0, \"iops_rd\": 0, \"iops_wr\": 0"
  vm_qmp "{\"execute\": \"block_set_io_throttle\", \"arguments\": {\"device\": \"disk0\", $limits}}"
}
