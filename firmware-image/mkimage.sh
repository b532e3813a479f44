#!/usr/bin/env bash
# Builds the flashable appliance image from a build tree (docs/firmware.md, "Building"):
#
#   firmware-image/mkimage.sh BUILD_DIR OUT_DIR [--key FILE] [--version V]
#
# (or `cmake --build BUILD_DIR --target firmware-image`, which writes BUILD_DIR/firmware/out).
# Writes to OUT_DIR:
#   dstm-x86-64.img       the whole disk (GPT: bios, boot, slotA, slotB, data) to dd onto a disk
#   dstm-x86-64.img.zst   the same, compressed
#   dstm-x86-64.dstmfw    the signed upgrade bundle of the same system (one part, `slot`)
#   manifest.json         the bundle's manifest; SHA256SUMS of the four files above
#
# Reproducible: the same build tree, Debian packages, key, version and SOURCE_DATE_EPOCH (default:
# the last commit's time) give the same bytes. Every time stamp, UUID, hash seed and file order
# below is fixed for that reason.
#
# Without --key the build signs with a development key that it makes once in
# BUILD_DIR/firmware/dev-key.secret (and says so). Debian's kernel and busybox-static packages are
# fetched once with `apt-get download` into BUILD_DIR/firmware/debs (FW_DEB_CACHE overrides it),
# unpacked, and never installed on this machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)

usage() {
  echo "usage: mkimage.sh BUILD_DIR OUT_DIR [--key FILE] [--version V]" >&2
  exit 2
}
(($# >= 2)) || usage
build=$(cd "$1" && pwd)
out=$2
shift 2
key=
version=0.1.0
while (($#)); do
  case $1 in
    --key) key=${2:?--key needs a file}; shift 2 ;;
    --version) version=${2:?--version needs a value}; shift 2 ;;
    *) usage ;;
  esac
done

# The versions this image is made of. The kernel package is the versioned one (the meta package
# linux-image-amd64 moves); a new ABI is a deliberate change here.
readonly KVER=6.1.0-56-amd64
readonly KERNEL_DEB=linux-image-$KVER
readonly BUSYBOX_DEB=busybox-static
readonly BOARD=x86-64
# The config schema's compat_version (fwimage/manifest.hpp): bump the minor when old settings
# need a reset, the major when upgrades across it must be refused.
readonly COMPAT=1.0
# Partition sizes in MiB (docs/firmware.md, "Layout").
readonly BIOS_MIB=1 BOOT_MIB=16 SLOT_MIB=96 DATA_MIB=64
# Fixed identifiers, so that builds reproduce. Every image carries the same ones; the running
# system finds its partitions by name (PARTLABEL), never by these.
readonly DISK_GUID=5D5C4E3A-0F1B-4C6D-9E2A-44535446572E
readonly PART_GUIDS=(
  5D5C4E3A-0F1B-4C6D-9E2A-000000000001 5D5C4E3A-0F1B-4C6D-9E2A-000000000002
  5D5C4E3A-0F1B-4C6D-9E2A-000000000003 5D5C4E3A-0F1B-4C6D-9E2A-000000000004
  5D5C4E3A-0F1B-4C6D-9E2A-000000000005)
readonly SLOT_FS_UUID=5d5c4e3a-0f1b-4c6d-9e2a-534c4f540000
readonly SLOT_HASH_SEED=5d5c4e3a-0f1b-4c6d-9e2a-534c4f540001
readonly FAT_SERIAL=44535446
# Kernel modules for the VM (virtio), real boxes (SATA, NVMe, USB sticks, e1000) and the
# appliance's own needs (tun, veth, ip6_tunnel); their dependencies are resolved below.
readonly MODULES=(
  virtio_pci virtio_net virtio_blk e1000 e1000e
  ahci sd_mod nvme xhci_pci ehci_pci usb_storage
  ext4 vfat nls_cp437 nls_iso8859-1
  tun veth tunnel6 ip6_tunnel)

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)}
export TZ=UTC LC_ALL=C
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH MTOOLS_SKIP_CHECK=1
umask 022

say() { echo "mkimage: $*"; }
die() { echo "mkimage: $*" >&2; exit 1; }

fw=$build/firmware
mkdir -p "$fw" "$out"
work=$(mktemp -d "$fw/work.XXXXXX")  # one per run: the reproducibility test runs a second build
trap 'rm -rf "$work"' EXIT
out=$(cd "$out" && pwd)

# --- Tools and inputs -------------------------------------------------------------------------
for t in grub-mkimage sfdisk mkfs.fat mmd mcopy mke2fs debugfs depmod modprobe cpio zstd dpkg-deb strip; do
  command -v "$t" >/dev/null || die "needs $t (scripts/setup.sh installs it)"
done
grub_dir=/usr/lib/grub/i386-pc
[[ -f $grub_dir/boot.img ]] || die "needs GRUB's i386-pc files ($grub_dir; package grub-pc-bin)"
grub_efi_dir=/usr/lib/grub/x86_64-efi
[[ -f $grub_efi_dir/linux.mod ]] ||
  die "needs GRUB's x86_64-efi files ($grub_efi_dir; package grub-efi-amd64-bin)"

# One build-tree binary by name, found wherever CMake put it.
binary() {
  local path
  path=$(find "$build" -path "$fw" -prune -o -type f -name "$1" -perm -u+x -print | sort | head -n1)
  [[ -n $path ]] || return 1
  echo "$path"
}
fw_sign=$(binary fw-sign) || die "no fw-sign in $build (build the firmware-image target)"

debs=${FW_DEB_CACHE:-$fw/debs}
mkdir -p "$debs"
fetch_deb() {
  local deb
  deb=$(find "$debs" -maxdepth 1 -name "${1}_*.deb" | sort | tail -n1)
  if [[ -z $deb ]]; then
    say "fetching $1 into $debs" >&2  # stdout is the function's answer
    (cd "$debs" && apt-get download -q "$1" >/dev/null) || die "apt-get download $1 failed"
    deb=$(find "$debs" -maxdepth 1 -name "${1}_*.deb" | sort | tail -n1)
  fi
  echo "$deb"
}
kernel_deb=$(fetch_deb "$KERNEL_DEB")
busybox_deb=$(fetch_deb "$BUSYBOX_DEB")
mkdir -p "$work/kernel" "$work/busybox"
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
depmod -b "$work/kernel" "$KVER"

if [[ -z $key ]]; then
  key=$fw/dev-key.secret
  if [[ ! -f $key ]]; then
    "$fw_sign" keygen "$key" "$fw/dev-key.public"
    say "made a DEVELOPMENT signing key $key: images signed with it accept upgrades signed with it only"
  else
    say "signing with the development key $key"
  fi
fi
[[ -f $key ]] || die "no key file $key"

# --- The root file system (runs from RAM) -----------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc/dstm,proc,sys,dev,run,tmp,data,var/log,var/lib,root,mnt}
chmod 1777 "$root/tmp"

install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
while read -r applet; do
  [[ -e $root/$applet || -L $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
done < <("$root/bin/busybox" --list-full | sort)

# ELF files copied with exactly the shared libraries they need (ldd, on this Debian build host,
# which is also where the daemons were linked).
libs=()
# Where busybox has an applet of the same name (ip, mke2fs), the file replaces its link; busybox sh
# still prefers its own applets, so /init and the udhcpc script call these by full path.
add_elf() {  # SOURCE DEST_IN_ROOT
  install -D -m 0755 "$1" "$root/$2"
  strip --strip-unneeded "$root/$2"
  local lib
  while read -r lib; do libs+=("$lib"); done < <(ldd "$1" | grep -o '/[^ ]*' | sort -u)
}
add_elf "$(command -v ip)" sbin/ip  # iproute2's: busybox's ip cannot make ip6tnl devices
add_elf "$(command -v mke2fs)" sbin/mke2fs  # busybox's mke2fs makes no ext4
install -m 0644 /etc/mke2fs.conf "$root/etc/mke2fs.conf"
for d in dstm-server dstm-ctl tep tep-ctl dstm-web satp-relay dstm-client dstm-supervise; do
  path=$(binary "$d") || die "no $d in $build"
  add_elf "$path" "usr/bin/$d"
done
if upgrade=$(binary fw-upgrade); then
  add_elf "$upgrade" usr/sbin/fw-upgrade  # where the dashboard calls it (web.firmware.tool)
else
  say "no fw-upgrade in $build: the image cannot upgrade itself and /init will say so"
fi
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
  install -D -m 0755 "$(readlink -f "$lib")" "$root/$lib"
done

# Kernel modules with their dependencies, and the index busybox modprobe reads.
kmods=$root/lib/modules/$KVER
mkdir -p "$kmods"
cp "$work/kernel/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$kmods/"
modprobe -d "$work/kernel" -S "$KVER" --show-depends -a "${MODULES[@]}" |
  awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
    rel=${ko#"$work/kernel/"}
    rel=${rel#./}
    install -D -m 0644 "$ko" "$root/$rel"
  done
depmod -b "$root" "$KVER"
printf '%s\n' "${MODULES[@]}" >"$root/etc/dstm/modules"

# Configuration: the seed of the config document, the supervisor's services, what is running,
# the key upgrades are checked against. /etc/appl and /var/lib/appl live on the data partition.
install -m 0644 "$here/rootfs/appliance.json" "$root/etc/dstm/appliance.json"
install -m 0644 "$here/rootfs/services" "$root/etc/dstm/services"
install -m 0755 "$here/rootfs/init" "$root/init"
install -m 0755 "$here/rootfs/udhcpc.script" "$root/etc/dstm/udhcpc.script"
"$fw_sign" pubkey "$key" "$root/etc/dstm/firmware.pub"
printf '{"board":"%s","version":"%s","compat_version":"%s"}\n' "$BOARD" "$version" "$COMPAT" \
  >"$root/etc/dstm/firmware.json"
ln -s /data/etc "$root/etc/appl"
ln -s /data/lib "$root/var/lib/appl"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf 'dstm\n' >"$root/etc/hostname"
ln -s /run/resolv.conf "$root/etc/resolv.conf"
# The daemons check the seed document before it goes into an image.
"$(binary dstm-server)" --config "$root/etc/dstm/appliance.json" --check-config >/dev/null ||
  die "dstm-server refuses rootfs/appliance.json"
"$(binary dstm-web)" --config "$root/etc/dstm/appliance.json" --check-config >/dev/null ||
  die "dstm-web refuses rootfs/appliance.json"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
  zstd -q -19 -T1 >"$work/initrd.img"

# --- Slot A: kernel, initramfs, manifest, as ext2 ---------------------------------------------
slot=$work/slot
mkdir -p "$slot"
install -m 0644 "$work/kernel/boot/vmlinuz-$KVER" "$slot/vmlinuz"
install -m 0644 "$work/initrd.img" "$slot/initrd.img"
make_slot_fs() {  # DIR IMAGE: the smallest whole-MiB ext2 with 10% and 1 MiB to spare
  local kib
  kib=$(du -sk --apparent-size "$1" | cut -f1)
  local mib=$(((kib * 11 / 10 + 1024 + 1023) / 1024))
  ((mib <= SLOT_MIB)) || die "the slot needs $mib MiB, more than its $SLOT_MIB MiB partition"
  rm -f "$2"
  truncate -s "${mib}M" "$2"
  find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  mke2fs -q -F -t ext2 -b 4096 -m 0 -L slot -U "$SLOT_FS_UUID" -N 64 \
    -E "hash_seed=$SLOT_HASH_SEED,root_owner=0:0" -d "$1" "$2"
  # mke2fs -d copies each file's atime and ctime too (the time of this build): set every time
  # stamp, with its nanoseconds, to SOURCE_DATE_EPOCH.
  local p f
  for p in / /lost+found $(cd "$1" && find . -mindepth 1 | sort | cut -c2-); do
    for f in atime mtime ctime crtime; do
      echo "sif $p $f @$SOURCE_DATE_EPOCH"
      echo "sif $p ${f}_extra 0"
    done
  done | debugfs -w -f - "$2" >/dev/null 2>&1 || die "debugfs could not set the time stamps in $2"
}
# The bundle's part is the slot without /slot.json (the manifest holds the part's hash, so the
# part cannot hold the manifest); the slot on the disk image adds it, as an upgrade does.
make_slot_fs "$slot" "$work/slot-bundle.img"
"$fw_sign" bundle --key "$key" --board "$BOARD" --version "$version" --compat "$COMPAT" \
  --created "$SOURCE_DATE_EPOCH" --part "slot=$work/slot-bundle.img" \
  --manifest-out "$work/manifest.json" "$work/dstm-$BOARD.dstmfw"
install -m 0644 "$work/manifest.json" "$slot/slot.json"
make_slot_fs "$slot" "$work/slotA.img"

# --- Boot partition: GRUB's config and environment on FAT -------------------------------------
"$fw_sign" grubenv --version "$version" "$work/grubenv"
mkfs.fat --invariant -i "$FAT_SERIAL" -n BOOT -C "$work/boot.img" $((BOOT_MIB * 1024)) >/dev/null
touch -d "@$SOURCE_DATE_EPOCH" "$work/grubenv"
cp "$here/grub.cfg" "$work/grub.cfg"
touch -d "@$SOURCE_DATE_EPOCH" "$work/grub.cfg"
mmd -i "$work/boot.img" ::/grub
mcopy -m -i "$work/boot.img" "$work/grub.cfg" "$work/grubenv" ::/grub/

# --- UEFI: GRUB's EFI image at the removable-media path of the boot partition ------------------
# The boot partition has the EFI system partition's type, so UEFI firmware finds
# \EFI\BOOT\BOOTX64.EFI without a boot entry. Its prefix has no device: the partition it was
# loaded from, the same grub.cfg and grubenv as the BIOS path. efi_gop hands the screen's
# framebuffer to the kernel. (grub-mkimage's output has no time stamp: it reproduces.)
grub-mkimage -O x86_64-efi -d "$grub_efi_dir" -o "$work/BOOTX64.EFI" -p /grub \
  part_gpt fat ext2 normal configfile loadenv test linux echo search search_label serial \
  terminal regexp efi_gop
touch -d "@$SOURCE_DATE_EPOCH" "$work/BOOTX64.EFI"
mmd -i "$work/boot.img" ::/EFI ::/EFI/BOOT
mcopy -m -i "$work/boot.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/

# --- GRUB's core image, read by boot.img from the bios partition ------------------------------
# The prefix's empty device is the disk GRUB was loaded from; gpt2 is the boot partition.
grub-mkimage -O i386-pc -d "$grub_dir" -o "$work/core.img" -p '(,gpt2)/grub' \
  biosdisk part_gpt fat ext2 normal configfile loadenv test linux echo search search_label \
  serial terminal regexp
core_sectors=$((($(stat -c %s "$work/core.img") + 511) / 512))
((core_sectors <= BIOS_MIB * 2048)) || die "core.img does not fit the bios partition"

# --- The disk ---------------------------------------------------------------------------------
# 1 MiB for the GPT, the partitions back to back in MiB, 1 MiB for the backup GPT.
mib=2048  # sectors
bios_start=$mib
boot_start=$((bios_start + BIOS_MIB * mib))
slota_start=$((boot_start + BOOT_MIB * mib))
slotb_start=$((slota_start + SLOT_MIB * mib))
data_start=$((slotb_start + SLOT_MIB * mib))
disk_sectors=$((data_start + DATA_MIB * mib + mib))
disk=$work/dstm-$BOARD.img
rm -f "$disk"
truncate -s $((disk_sectors * 512)) "$disk"
sfdisk -q --no-reread --no-tell-kernel "$disk" >/dev/null <<EOF
label: gpt
label-id: $DISK_GUID
unit: sectors
first-lba: 2048
start=$bios_start, size=$((BIOS_MIB * mib)), type=21686148-6449-6E6F-744E-656564454649, uuid=${PART_GUIDS[0]}, name=bios
start=$boot_start, size=$((BOOT_MIB * mib)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=${PART_GUIDS[1]}, name=boot
start=$slota_start, size=$((SLOT_MIB * mib)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${PART_GUIDS[2]}, name=slotA
start=$slotb_start, size=$((SLOT_MIB * mib)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${PART_GUIDS[3]}, name=slotB
start=$data_start, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=${PART_GUIDS[4]}, name=data
EOF
put() { dd if="$1" of="$disk" bs=512 seek="$2" conv=notrunc status=none; }
# boot.img's code only (446 bytes would overwrite nothing we need, but the protective MBR's
# partition table starts at 0x1be and stays sfdisk's), with core.img's LBA at 0x5c.
le64() { printf '%b' "$(printf '\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) \
  $(($1 >> 24 & 255)) 0 0 0 0)"; }
le16() { printf '%b' "$(printf '\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)))"; }
cp "$grub_dir/boot.img" "$work/mbr.img"
le64 "$bios_start" | dd of="$work/mbr.img" bs=1 seek=$((0x5c)) conv=notrunc status=none
dd if="$work/mbr.img" of="$disk" bs=1 count=440 conv=notrunc status=none
# diskboot.img (core.img's first sector) loads the rest from its blocklist at 0x1f4:
# the start LBA and the number of sectors.
le64 $((bios_start + 1)) | dd of="$work/core.img" bs=1 seek=$((0x1f4)) conv=notrunc status=none
le16 $((core_sectors - 1)) | dd of="$work/core.img" bs=1 seek=$((0x1fc)) conv=notrunc status=none
put "$work/core.img" "$bios_start"
put "$work/boot.img" "$boot_start"
put "$work/slotA.img" "$slota_start"
# slotB stays empty (B_OK=0 in the grubenv); data is formatted by the first boot.

# --- Outputs ----------------------------------------------------------------------------------
zstd -q -19 -T1 -f "$disk" -o "$disk.zst"
for f in "$disk" "$disk.zst" "$work/dstm-$BOARD.dstmfw" "$work/manifest.json"; do
  install -m 0644 "$f" "$out/"
done
(cd "$out" && sha256sum "dstm-$BOARD.img" "dstm-$BOARD.img.zst" "dstm-$BOARD.dstmfw" \
  manifest.json >SHA256SUMS)
say "version $version, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH, key $key"
for f in "$out/dstm-$BOARD.img" "$out/dstm-$BOARD.img.zst" "$out/dstm-$BOARD.dstmfw" \
  "$work/initrd.img" "$slot/vmlinuz"; do
  say "$(stat -c '%s' "$f") bytes ${f##*/}"
done
