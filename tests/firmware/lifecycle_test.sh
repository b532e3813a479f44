#!/usr/bin/env bash
# Tests 2, 3 and 4 of the firmware image (docs/firmware.md, "Tests"), on one copy of the built
# disk, through the dashboard as an operator would, with six boots:
#  1. first boot (slot A, the built version):
#     test 2: the TEP is configured from the dashboard (backend auto: the appliance's kernel has
#       ip6tnl, so it runs the kernel backend); a client namespace on the host side gets a
#       lease from the VM's dstm-server (dstm-client) and reaches an IPv4 host namespace
#       through the VM's TEP;
#     test 3: a bundle with one byte flipped and one signed by another key are refused, and the
#       boot partition and slot B stay byte for byte as they were;
#     test 4: an upgrade is started with the disk's writes throttled and the VM is killed while
#       it writes slot B;
#  2. the old slot A boots, with the settings and the lease;
#     test 3: in a real browser (tests/browser/firmware_upgrade.mjs, Chromium) on the firmware
#       page: a tampered bundle is refused, the newer one is uploaded, its version shown,
#       flashed, and the page reboots the box;
#  3. slot B boots the newer version, with the settings and the lease; the client's traffic flows
#     again through the new TEP; then a bundle whose dstm-server cannot start is installed;
#  4. that slot (A) fails its health check on its trial boot and reboots by itself;
#  5. the boot loader falls back to slot B, which comes up healthy with the newer version;
#     test 3, settings not kept: the newer bundle is installed into A without the settings;
#  6. slot A starts from the default settings: a new admin password on the console, the TEP's
#     section and the lease gone.
# The newer and the broken bundles are the built slot with its initramfs changed (version;
# dstm-server replaced by a program that exits 1), signed with the build's key. Needs root.
#
#   lifecycle_test.sh IMAGE_DIR VERSION KEY FW_SIGN DSTM_CLIENT NODE ARTIFACTS
#
# ARTIFACTS receives the browser's screenshots of the firmware page.
set -euo pipefail
# shellcheck source=tests/firmware/vm_lib.sh
source "$(dirname "$0")/vm_lib.sh"

(($# == 7)) || {
  echo "usage: lifecycle_test.sh IMAGE_DIR VERSION KEY FW_SIGN DSTM_CLIENT NODE ARTIFACTS"
  exit 2
}
image_dir=$1 version=$2 key=$3 fw_sign=$4 dstm_client=$5 node=$6 artifacts=$7
browser_test=$(cd "$(dirname "$0")/../browser" && pwd)/firmware_upgrade.mjs
vm_setup lifecycle_test "$image_dir/dstm-x86-64.img"
say() { echo "lifecycle_test: $*"; }

# --- The bundles --------------------------------------------------------------------------------
readonly MIB=$((1024 * 1024))
readonly SLOT_A_MIB=18 SLOT_MIB=96  # mkimage.sh's layout: bios 1, boot 16 from 2 MiB; slots 96
IFS=. read -r major minor _ <<<"$version"
newer=$major.$((minor + 1)).0
broken=$major.$((minor + 2)).0
work=$VM_TMP/bundles
mkdir -p "$work/slot" "$work/root"
dd if="$image_dir/dstm-x86-64.img" of="$work/slotA.img" bs=$MIB skip=$SLOT_A_MIB \
  count=$SLOT_MIB status=none
for f in vmlinuz initrd.img; do
  debugfs -R "dump /$f $work/slot/$f" "$work/slotA.img" 2>/dev/null
  [[ -s $work/slot/$f ]] || vm_fail "no /$f in the image's slot A"
done
(cd "$work/root" && zstd -dcq "$work/slot/initrd.img" | cpio -idm --quiet)

# bundle VERSION OUT [KEY] [broken]: the built slot with VERSION in /etc/dstm/firmware.json.
bundle() {
  local v=$1 out=$2 k=${3:-$key} root=$work/root-$1
  rm -rf "$root" "$work/part"
  cp -a "$work/root" "$root"
  sed -i "s/\"version\":\"[^\"]*\"/\"version\":\"$v\"/" "$root/etc/dstm/firmware.json"
  if [[ ${4:-} == broken ]]; then
    printf '#!/bin/sh\necho "dstm-server: this build cannot start" >&2\nexit 1\n' \
      >"$root/usr/bin/dstm-server"
  fi
  mkdir -p "$work/part"
  cp "$work/slot/vmlinuz" "$work/part/"
  (cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) |
    zstd -q -3 -T0 >"$work/part/initrd.img"
  local kib
  kib=$(du -sk --apparent-size "$work/part" | cut -f1)
  rm -f "$work/part.img"
  truncate -s $(((kib * 11 / 10 + 2048) / 1024))M "$work/part.img"
  mke2fs -q -F -t ext2 -b 4096 -m 0 -L slot -d "$work/part" "$work/part.img"
  "$fw_sign" bundle --key "$k" --board x86-64 --version "$v" --compat 1.0 --created 0 \
    --part "slot=$work/part.img" --manifest-out "$work/manifest-$v.json" "$out" >/dev/null
  rm -rf "$root"
}
bundle "$newer" "$work/newer.dstmfw"
bundle "$broken" "$work/broken.dstmfw" "$key" broken
"$fw_sign" keygen "$work/other.secret" "$work/other.public" >/dev/null
bundle "$newer" "$work/other-key.dstmfw" "$work/other.secret"
cp "$work/newer.dstmfw" "$work/tampered.dstmfw"
size=$(stat -c %s "$work/tampered.dstmfw")
# One byte in the middle (inside the slot's part) turned into its complement.
byte=$(od -An -tu1 -j $((size / 2)) -N1 "$work/tampered.dstmfw" | tr -d ' ')
printf '%b' "$(printf '\\%03o' $((255 - byte)))" |
  dd of="$work/tampered.dstmfw" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$work/newer.dstmfw" "$work/tampered.dstmfw" && vm_fail "the byte was not flipped"
say "bundles: $newer, $broken (dstm-server exits 1), $newer signed by another key, $newer tampered"

# --- The host side: a client namespace (IPv6 only) and an IPv4 host namespace -----------------
readonly CLIENT6=2001:db8:c1::2 ROUTER_C6=2001:db8:c1::1 IPV4_HOST=203.0.113.2 ROUTER_H4=203.0.113.1
readonly POOL=198.51.100.0/24 TEP_PASSWORD=tep-secret-1
client_ns=$VM_NS-c
host_ns=$VM_NS-h
client_pid=
# shellcheck disable=SC2016 # expanded when the hook runs, at exit
vm_on_exit '[[ -z $client_pid ]] || kill "$client_pid" 2>/dev/null; ip netns del "$client_ns" 2>/dev/null; ip netns del "$host_ns" 2>/dev/null'
ip netns add "$client_ns"
ip netns add "$host_ns"
ip link add c0 netns "$VM_NS" type veth peer name eth0 netns "$client_ns"
ip link add h0 netns "$VM_NS" type veth peer name eth0 netns "$host_ns"
in_ns ip addr add "$ROUTER_C6/64" dev c0 nodad
in_ns ip addr add "$ROUTER_H4/24" dev h0
in_ns ip link set c0 up
in_ns ip link set h0 up
in_ns sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
in_ns ip route add "$POOL" via "$VM4"  # the TEP's pool is behind the VM
ip -n "$client_ns" link set lo up
ip -n "$client_ns" addr add "$CLIENT6/64" dev eth0 nodad
ip -n "$client_ns" link set eth0 up
ip -n "$client_ns" route add default via "$ROUTER_C6"
ip -n "$host_ns" link set lo up
ip -n "$host_ns" addr add "$IPV4_HOST/24" dev eth0
ip -n "$host_ns" link set eth0 up
ip -n "$host_ns" route add default via "$ROUTER_H4"

# --- The dashboard's API --------------------------------------------------------------------------
jar=$VM_TMP/cookies
csrf=
api() {  # METHOD PATH [curl args...]: the answer's body; fails on a transport error
  local method=$1 path=$2
  shift 2
  in_ns curl -ksS --max-time 600 -b "$jar" -c "$jar" -X "$method" -H "X-CSRF-Token: $csrf" \
    "$@" "https://$VM4$path"
}
api_status() {  # METHOD PATH [curl args...]: "CODE BODY"
  local method=$1 path=$2
  shift 2
  in_ns curl -ksS --max-time 600 -b "$jar" -c "$jar" -X "$method" -H "X-CSRF-Token: $csrf" \
    -w '\n%{http_code}' "$@" "https://$VM4$path" | tac | tr '\n' ' '
}
login() {
  local answer
  answer=$(api POST /api/login -H 'Content-Type: application/json' \
    -d "{\"user\": \"admin\", \"password\": \"$password\"}") || vm_fail "no answer to the login"
  csrf=$(jq -r .csrf <<<"$answer")
  [[ $csrf =~ ^[0-9a-f]{64}$ ]] || vm_fail "login refused: $answer"
}
# The firmware page's steps: upload (verify), then install, awaited by polling the job.
upload() {  # FILE: "CODE BODY"
  api_status POST '/api/firmware/upload?keep_settings=true' \
    -H 'Content-Type: application/octet-stream' --data-binary "@$1"
}
install_and_wait() {
  api POST /api/firmware/install -H 'Content-Type: application/json' -d '{}' >/dev/null
  local state deadline=$((SECONDS + 300))
  while :; do
    state=$(api GET /api/firmware | jq -r .job.state)
    [[ $state == installing ]] || break
    ((SECONDS < deadline)) || vm_fail "the install did not end within 300 s"
    sleep 0.5
  done
  [[ $state == installed ]] || vm_fail "the install ended '$state': $(api GET /api/firmware)"
}
reboot_from_dashboard() {
  [[ $(api POST /api/firmware/reboot | jq -r .rebooting) == true ]] || vm_fail "no reboot"
  vm_wait_exit 90  # the init stops the daemons, unmounts /data and reboots; QEMU then ends
}
# Slot and version of this boot, from its console line "dstm-init: slot X, firmware {...}".
expect_boot() {  # SLOT VERSION
  grep -q "dstm-init: slot $1, firmware {.*\"version\":\"$2\"" "$VM_TMP/console.log" ||
    vm_fail "expected slot $1 with version $2: $(grep 'dstm-init: slot' "$VM_TMP/console.log")"
}
wait_tep_up() {
  local teps deadline=$((SECONDS + 90))
  until teps=$(api GET /api/teps) &&
    [[ $(jq -r '.[0].up and .[0].server.alive' <<<"$teps" 2>/dev/null) == true ]]; do
    ((SECONDS < deadline)) || vm_fail "the TEP did not come up within 90 s: $teps"
    sleep 0.5
  done
  [[ $(jq -r '.[0].status.backend' <<<"$teps") == kernel ]] ||
    vm_fail "the TEP does not run the kernel backend: $teps"
}
# The client's traffic: pings to the IPv4 host through the tunnel (bounded: 10 tries of 3).
reach_ipv4_host() {
  for _ in $(seq 10); do
    ip netns exec "$client_ns" ping -c 3 -i 0.2 -W 2 -q "$IPV4_HOST" >/dev/null && return 0
  done
  vm_fail "the client does not reach $IPV4_HOST through the VM's TEP"
}
lease_of_client() {
  api GET "/api/leases?ipv6=$CLIENT6" | jq -r '.leases[] | select(.state == "active") | .ipv4'
}
# sha256 of the boot partition and slot B on the disk (read while the VM runs: the data
# partition changes, these must not).
boot_and_slot_b() {
  for off in 2 $((SLOT_A_MIB + SLOT_MIB)); do
    local mib=16
    ((off == 2)) || mib=$SLOT_MIB
    dd if="$VM_TMP/disk.img" bs=$MIB skip="$off" count=$mib status=none | sha256sum | cut -c1-64
  done | tr '\n' ' '
}
grubenv() {  # the boot environment's variable lines, from the disk (mtools, no mount)
  MTOOLS_SKIP_CHECK=1 mtype -i "$VM_TMP/disk.img@@$VM_BOOT_OFFSET" ::/grub/grubenv | grep -a =
}

# === Boot 1: first boot, slot A ==================================================================
vm_boot
expect_boot A "$version"
password=$(grep -o "dstm-init: dashboard: https://$VM4/ user admin password [^ ]*" \
  "$VM_TMP/console.log" | awk '{ print $NF }' | tr -d '\r')
[[ -n $password ]] || vm_fail "no admin password on the console"
login

# --- Test 2: the TEP with the kernel backend, configured from the dashboard ---------------------
digest=$(printf '%s' "tep-1:dstm:$TEP_PASSWORD" | md5sum | cut -c1-32)
document=$(api GET /api/config | jq --arg vm6 "$VM6" --arg vm4 "$VM4" --arg pool "$POOL" \
  --arg digest "$digest" --arg password "$TEP_PASSWORD" '.document
  | .dstm_server.teps = [{name: "tep-1", ipv6: $vm6, ipv4: $vm4, user: "tep-1", heartbeat: true}]
  | .dstm_server.auth.users += [{name: "tep-1", digest_md5: $digest}]
  | .tep = [{name: "tep-1", ipv6: $vm6, ipv4: $vm4, pool: [$pool],
             server: {address: "::1", user: "tep-1", password: $password}}]')
answer=$(api_status POST /api/config/apply -H 'Content-Type: application/json' \
  -d "$(jq -c '{document: ., confirm: false, comment: "lifecycle test: a TEP"}' <<<"$document")")
[[ $answer == 200* ]] || vm_fail "the config was not applied: $answer"
wait_tep_up
say "test 2: the TEP runs in the VM with the kernel ip6tnl backend, chosen by backend \"auto\""
# The apply reloaded dstm-server; the supervisor then only sends SIGHUP (a no-op reload), and
# does not restart it a second time.
vm_wait_console "dstm-server: its section /dstm_server changed; asking it to reload" 30
[[ $(grep -c "supervise: dstm-server: started" "$VM_TMP/console.log") == 1 ]] ||
  vm_fail "dstm-server was restarted by the config change"

mkfifo "$VM_TMP/ready"
ip netns exec "$client_ns" "$dstm_client" --server "$VM6" --backend user --ready-fd 3 \
  3>"$VM_TMP/ready" >"$VM_TMP/client.log" 2>&1 &
client_pid=$!
ready=$(timeout 60 head -n1 "$VM_TMP/ready") || true
[[ $ready == READY ]] || { cat "$VM_TMP/client.log"; vm_fail "dstm-client did not get its tunnel up"; }
lease=$(lease_of_client)
[[ $lease == 198.51.100.* ]] || vm_fail "no active lease for $CLIENT6: $(api GET /api/leases)"
ip -n "$client_ns" -4 addr show | grep -q "inet $lease/" ||
  vm_fail "the client does not have its lease $lease"
reach_ipv4_host
# Carried by the TEP's per-client ip6tnl device: its counters are the binding's.
talker=$(api GET /api/teps | jq -c --arg lease "$lease" '.[0].top_talkers[] | select(.ipv4 == $lease)')
[[ $(jq -r '.packets_from_client > 0 and .packets_to_client > 0' <<<"$talker") == true ]] ||
  vm_fail "the TEP did not count the client's packets both ways: $talker"
say "test 2: the client $CLIENT6 got $lease from the VM and reaches $IPV4_HOST through its TEP ($talker)"

# --- Test 3: refused bundles write nothing --------------------------------------------------------
before=$(boot_and_slot_b)
env_before=$(grubenv)
for f in tampered other-key; do
  answer=$(upload "$work/$f.dstmfw")
  [[ $answer == 422* ]] || vm_fail "the $f bundle was not refused: $answer"
  say "test 3: the $f bundle is refused: ${answer#* }"
done
[[ $(boot_and_slot_b) == "$before" ]] || vm_fail "a refused bundle changed the boot partition or slot B"
[[ $(grubenv) == "$env_before" ]] || vm_fail "a refused bundle changed the boot environment"
[[ $(api GET /api/firmware | jq -r .staged) == null ]] || vm_fail "a refused bundle is staged"
say "test 3: nothing was written: the boot partition and slot B are unchanged"

# --- Test 4: the power goes while slot B is written -----------------------------------------------
answer=$(upload "$work/newer.dstmfw")
[[ $answer == 200* ]] || vm_fail "the newer bundle was refused: $answer"
vm_throttle_writes $((512 * 1024))  # a slow disk: the write takes about a minute
api POST /api/firmware/install -H 'Content-Type: application/json' -d '{}' >/dev/null
deadline=$((SECONDS + 120))
until job=$(api GET /api/firmware | jq -c .job) &&
  [[ $(jq -r '.state == "installing" and .written > 0' <<<"$job") == true ]]; do
  [[ $(jq -r .state <<<"$job") == installing ]] || vm_fail "the install ended before the kill: $job"
  ((SECONDS < deadline)) || vm_fail "the install wrote nothing within 120 s: $job"
  sleep 0.2
done
vm_kill
env_after=$(grubenv)
grep -qx B_OK=0 <<<"$env_after" || vm_fail "slot B is not marked unbootable mid-install: $env_after"
say "test 4: VM killed while writing slot B ($job); B_OK=0 on the disk"

# === Boot 2: the old slot, settings and lease kept; the real upgrade ===============================
vm_boot
expect_boot A "$version"
login
[[ $(api GET /api/config | jq -r '.document.tep[0].name') == tep-1 ]] ||
  vm_fail "the TEP's settings are gone after the power cut"
[[ $(lease_of_client) == "$lease" ]] || vm_fail "the lease $lease is gone after the power cut"
say "test 4: after the power cut slot A ($version) boots with the settings and the lease"

in_ns "$node" "$browser_test" --url "https://$VM4/" --password "$password" \
  --bundle "$work/newer.dstmfw" --version "$newer" --refused "$work/tampered.dstmfw" \
  --artifacts "$artifacts" || vm_fail "the firmware page did not upgrade the box"
vm_wait_exit 90  # the init's orderly reboot; QEMU runs with -no-reboot and ends
say "test 3: the firmware page (Chromium) refused the tampered bundle, verified, flashed $newer and rebooted"

# === Boot 3: the newer version in slot B, with the settings and the lease ==========================
vm_boot
expect_boot B "$newer"
vm_wait_console "dstm-init: slot B marked good" 30
# Started with the box, while its static address is still in duplicate address detection.
if grep -q "supervise: tep: exited" "$VM_TMP/console.log"; then
  vm_fail "the TEP did not start cleanly with the box"
fi
login
[[ $(lease_of_client) == "$lease" ]] || vm_fail "the lease $lease is gone after the upgrade"
wait_tep_up
reach_ipv4_host
status=$(api GET /api/firmware | jq -c .status)
[[ $(jq -r '.running + " " + .slots.B.version + " " + (.slots.A.ok | tostring)' <<<"$status") == \
  "B $newer true" ]] || vm_fail "fw-upgrade status after the upgrade: $status"
say "test 3: upgraded to $newer in slot B; settings, lease $lease and the client's traffic kept"

# --- Test 3: an image whose daemons fail falls back -------------------------------------------------
answer=$(upload "$work/broken.dstmfw")
[[ $answer == 200* ]] || vm_fail "the broken bundle was refused: $answer"
install_and_wait
reboot_from_dashboard

# === Boot 4: the broken version's trial boot fails and reboots ====================================
vm_boot_to_exit 240
expect_boot A "$broken"
grep -q "dstm-init: unhealthy: dstm-supervise gave up on dstm-server" "$VM_TMP/console.log" ||
  vm_fail "the broken slot's failure is not reported"
grep -q "dstm-init: slot A is on trial and not healthy: rebooting" "$VM_TMP/console.log" ||
  vm_fail "the broken slot did not reboot to fall back"

# === Boot 5: back to slot B =========================================================================
vm_boot
expect_boot B "$newer"
login
status=$(api GET /api/firmware | jq -c .status)
[[ $(jq -r '.running + " " + (.slots.B.ok | tostring) + " " + (.trial | tostring)' <<<"$status") == \
  "B true false" ]] || vm_fail "fw-upgrade status after the fallback: $status"
[[ $(lease_of_client) == "$lease" ]] || vm_fail "the lease $lease is gone after the fallback"
say "test 3: the broken $broken failed its trial boot; the box fell back to $newer in slot B"

# --- Test 3: an upgrade without the settings --------------------------------------------------------
kill "$client_pid"
wait "$client_pid" 2>/dev/null || true
client_pid=
answer=$(api_status POST '/api/firmware/upload?keep_settings=false' \
  -H 'Content-Type: application/octet-stream' --data-binary "@$work/newer.dstmfw")
[[ $answer == 200* ]] || vm_fail "the newer bundle was refused: $answer"
[[ $(jq -r .verified.keep_settings <<<"${answer#* }") == false ]] || vm_fail "verify: $answer"
install_and_wait
reboot_from_dashboard

# === Boot 6: slot A from the default settings ======================================================
vm_boot
expect_boot A "$newer"
grep -q "dstm-init: this firmware was installed without the settings" "$VM_TMP/console.log" ||
  vm_fail "the init did not reset the settings"
old_password=$password
password=$(grep -o "dstm-init: dashboard: https://$VM4/ user admin password [^ ]*" \
  "$VM_TMP/console.log" | awk '{ print $NF }' | tr -d '\r')
[[ -n $password && $password != "$old_password" ]] || vm_fail "no new admin password on the console"
vm_wait_console "dstm-init: slot A marked good" 30
login
[[ $(api GET /api/config | jq -r '.document.tep') == null ]] || vm_fail "the TEP's settings were kept"
[[ -z $(lease_of_client) ]] || vm_fail "the lease was kept"
say "test 3: installed without the settings, slot A starts from the defaults (new password, no TEP, no lease)"
vm_stop
say "PASS ($VM_BOOTS boots)"
