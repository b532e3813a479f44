#!/usr/bin/env bash
# Boots Debian's 6.1 kernel (which has ip6tnl, unlike the build host's) under QEMU TCG with a
# tiny initramfs whose /init loads veth and runs ip6tnl-check (the kernel loads ip6_tunnel by
# itself), then powers off.
# Passes when the guest prints "KCHECK result=pass". Exit 77 (ctest: skipped) when the kernel or
# busybox package is not in the .deb cache and cannot be fetched.
#
#   ip6tnl_qemu.sh CHECK_BINARY WORK_DIR
#
# The .deb cache is FW_DEB_CACHE, else WORK_DIR/../debs (the firmware build's BUILD/firmware/debs
# when WORK_DIR is BUILD/firmware/ip6tnl-check); packages are fetched there with
# `apt-get download` when missing, never installed on the host.
set -euo pipefail

readonly KVER=6.1.0-56-amd64
readonly KERNEL_DEB=linux-image-$KVER
readonly BUSYBOX_DEB=busybox-static
readonly BOOT_TIMEOUT=90  # seconds for the whole guest run; TCG boots in about 12 s

check_bin=$(realpath "$1")
work=$(realpath -m "$2")
debs=${FW_DEB_CACHE:-$work/../debs}

say() { printf 'ip6tnl-qemu: %s\n' "$*" >&2; }

fetch_deb() {
  local deb
  deb=$(find "$debs" -maxdepth 1 -name "${1}_*.deb" 2>/dev/null | sort | tail -n1)
  if [[ -z $deb ]]; then
    mkdir -p "$debs"
    say "fetching $1 into $debs"
    (cd "$debs" && apt-get download -q "$1" >/dev/null 2>&1) || return 1
    deb=$(find "$debs" -maxdepth 1 -name "${1}_*.deb" | sort | tail -n1)
  fi
  echo "$deb"
}

kernel_deb=$(fetch_deb "$KERNEL_DEB") || { say "no $KERNEL_DEB package: skipped"; exit 77; }
busybox_deb=$(fetch_deb "$BUSYBOX_DEB") || { say "no $BUSYBOX_DEB package: skipped"; exit 77; }

rm -rf "$work"
mkdir -p "$work/kernel" "$work/busybox" "$work/root"
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"

# --- The initramfs -------------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,lib,lib64}
install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
for applet in sh mount modprobe poweroff cat; do ln -s busybox "$root/bin/$applet"; done
ln -s ../bin/modprobe "$root/sbin/modprobe"  # the kernel's request_module runs /sbin/modprobe

# ip6tnl-check with the shared libraries it needs, at the paths the loader looks at.
install -m 0755 "$check_bin" "$root/bin/ip6tnl-check"
ldd "$check_bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# The modules and what they depend on, and an index for busybox modprobe.
moddir=lib/modules/$KVER
mkdir -p "$root/$moddir"
cp "$work/kernel/$moddir"/modules.builtin* "$work/kernel/$moddir/modules.order" "$root/$moddir/"
depmod -b "$work/kernel" "$KVER"
modprobe -d "$work/kernel" -S "$KVER" --show-depends -a ip6_tunnel veth |
  awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
    rel=${ko#"$work/kernel/"}
    mkdir -p "$root/$(dirname "$rel")"
    cp "$ko" "$root/$rel"
  done
depmod -b "$root" "$KVER"

cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Only veth by hand: ip6_tunnel is left to the kernel (request_module "rtnl-link-ip6tnl" through
# /sbin/modprobe at the first ip6tnl device), as the daemons rely on.
modprobe veth && echo "KCHECK modules=ok"
/bin/ip6tnl-check
echo "KCHECK exit=$?"
poweroff -f
INIT
chmod 0755 "$root/init"
(cd "$root" && find . | sort | cpio -o -H newc --quiet | zstd -q -3 -o "$work/initramfs.cpio.zst")

# --- The boot --------------------------------------------------------------------------------------
console=$work/console.log
: >"$console"
timeout --kill-after=5 "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 256 -smp 1 \
  -nodefaults -display none -monitor none -serial "file:$console" -no-reboot \
  -kernel "$work/kernel/boot/vmlinuz-$KVER" -initrd "$work/initramfs.cpio.zst" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" &
qemu=$!
wait "$qemu" || say "QEMU ended with status $? (124: the guest did not power off in time)"

grep '^KCHECK' "$console" >&2 || true
if grep -q '^KCHECK result=pass' "$console"; then
  exit 0
fi
say "the guest did not report a pass; console: $console"
tail -n 40 "$console" >&2
exit 1
