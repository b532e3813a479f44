# Sourced by the QEMU guest checks in tests/kernel: Debian's 6.1 kernel (which has ip6tnl, unlike
# the build host's) and busybox from the firmware .deb cache, a root tree with the modules the
# checks need, host binaries copied in at their own paths with their shared libraries, and one
# bounded TCG boot whose console is kept. Packages are unpacked, never installed on the host.
# shellcheck shell=bash

readonly GUEST_KVER=6.1.0-56-amd64

guest_say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# The newest cached .deb of package $1 in $2, fetched with `apt-get download` when missing.
guest_fetch_deb() {
  local deb
  deb=$(find "$2" -maxdepth 1 -name "${1}_*.deb" 2>/dev/null | sort | tail -n1)
  if [[ -z $deb ]]; then
    mkdir -p "$2"
    guest_say "fetching $1 into $2"
    (cd "$2" && apt-get download -q "$1" >/dev/null 2>&1) || return 1
    deb=$(find "$2" -maxdepth 1 -name "${1}_*.deb" | sort | tail -n1)
  fi
  echo "$deb"
}

# guest_root WORK DEBS MODULE...: unpacks the kernel and busybox into WORK (exit 77, ctest's
# "skipped", when they cannot be had) and makes WORK/root: busybox, the modules and their
# dependencies with an index for busybox modprobe, /sbin/modprobe for the kernel's own module
# loading. Sets GUEST_ROOT and GUEST_KERNEL.
guest_root() {
  local work=$1 debs=$2 kernel_deb busybox_deb
  shift 2
  kernel_deb=$(guest_fetch_deb "linux-image-$GUEST_KVER" "$debs") ||
    { guest_say "no linux-image-$GUEST_KVER package: skipped"; exit 77; }
  busybox_deb=$(guest_fetch_deb busybox-static "$debs") ||
    { guest_say "no busybox-static package: skipped"; exit 77; }
  rm -rf "$work"
  mkdir -p "$work/kernel" "$work/busybox" "$work/root"
  dpkg-deb -x "$kernel_deb" "$work/kernel"
  dpkg-deb -x "$busybox_deb" "$work/busybox"
  GUEST_KERNEL=$work/kernel/boot/vmlinuz-$GUEST_KVER
  GUEST_ROOT=$work/root
  local root=$GUEST_ROOT applet ko rel moddir=lib/modules/$GUEST_KVER
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,lib,lib64,etc}
  install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
  for applet in sh mount modprobe poweroff cat setsid; do ln -s busybox "$root/bin/$applet"; done
  ln -s ../bin/modprobe "$root/sbin/modprobe"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
  mkdir -p "$root/$moddir"
  cp "$work/kernel/$moddir"/modules.builtin* "$work/kernel/$moddir/modules.order" "$root/$moddir/"
  depmod -b "$work/kernel" "$GUEST_KVER"
  modprobe -d "$work/kernel" -S "$GUEST_KVER" --show-depends -a "$@" |
    awk '$1 == "insmod" {print $2}' | sort -u | while read -r ko; do
      rel=${ko#"$work/kernel/"}
      mkdir -p "$root/$(dirname "$rel")"
      cp "$ko" "$root/$rel"
    done
  depmod -b "$root" "$GUEST_KVER"
}

# guest_copy FILE...: each host binary at its own path in the root (without debug information:
# the guest has little memory), with the shared libraries it needs.
guest_copy() {
  local src lib
  for src in "$@"; do
    mkdir -p "$GUEST_ROOT$(dirname "$src")"
    strip --strip-debug -o "$GUEST_ROOT$src" "$src" 2>/dev/null || cp "$src" "$GUEST_ROOT$src"
    chmod 0755 "$GUEST_ROOT$src"
    ldd "$src" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
      [[ -e $GUEST_ROOT$lib ]] && continue
      mkdir -p "$GUEST_ROOT$(dirname "$lib")"
      cp -L "$lib" "$GUEST_ROOT$lib"
    done
  done
}

# guest_boot WORK SECONDS MEMORY_MB: packs the root (its /init must exist) and boots it under
# TCG, bounded by `timeout` (which kills QEMU, its child, by PID). The console is WORK/console.log.
guest_boot() {
  local work=$1 seconds=$2 memory=$3
  (cd "$GUEST_ROOT" && find . | sort | cpio -o -H newc --quiet | zstd -q -3 -o "$work/initramfs.cpio.zst")
  : >"$work/console.log"
  timeout --kill-after=5 "$seconds" qemu-system-x86_64 -accel tcg -cpu max -m "$memory" -smp 2 \
    -nodefaults -display none -monitor none -serial "file:$work/console.log" -no-reboot \
    -kernel "$GUEST_KERNEL" -initrd "$work/initramfs.cpio.zst" \
    -append "console=ttyS0 quiet panic=-1 rdinit=/init" ||
    guest_say "QEMU ended with status $? (124: the guest did not power off in time)"
}
