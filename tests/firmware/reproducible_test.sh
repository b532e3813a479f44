#!/usr/bin/env bash
# The firmware image reproduces (docs/firmware.md, "Reproducible"): a second mkimage.sh run from
# the same build tree, key and version into another directory gives the same disk image, bundle
# and manifest, byte for byte, as the fixture's build in FIRST_OUT.
#
#   reproducible_test.sh BUILD_DIR FIRST_OUT VERSION [KEY]   (KEY: APPL_FIRMWARE_KEY, if set)
set -euo pipefail
build=${1:?usage: reproducible_test.sh BUILD_DIR FIRST_OUT VERSION}
first=${2:?}
version=${3:?}
key_args=()
[[ -z ${4:-} ]] || key_args=(--key "$4")
src=$(cd "$(dirname "$0")/../.." && pwd)
second=$(mktemp -d /tmp/dstm-fwrepro.XXXXXX)
trap 'rm -rf "$second"' EXIT
"$src/firmware-image/mkimage.sh" "$build" "$second" --version "$version" "${key_args[@]}" >/dev/null
if ! diff "$first/SHA256SUMS" "$second/SHA256SUMS"; then
  echo "reproducible_test: FAIL: two builds differ"
  exit 1
fi
echo "reproducible_test: PASS: $(tr '\n' ' ' <"$second/SHA256SUMS")"
