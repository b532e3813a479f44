#!/usr/bin/env bash
# shellcheck disable=SC2016 # awk programs in single quotes
# Relay benchmark (figures and method in docs/benchmarks.md, "anytun relay").
#
#   sudo bench/relay_bench.sh [BUILD_DIR] [--short] [--rounds N] [--seconds S]
#
# Builds nothing. Creates two namespaces c and r joined by a veth pair (2001:db8:20::/64) and runs
# two tunnels side by side over it, with the same cipher suite (AES-CTR-128, HMAC-SHA1, 10-byte
# tag, key derivation AES-CTR-128) and the same inner MTU (1400):
#   anytun  Debian's anytun 0.3.8 as client (c) and server (r): inner 198.51.100.2 <-> .1
#   relay   satp-relay as client (c) and relay (r):            inner 198.51.100.6 <-> .5
# and, for context, plain: the kernel between the veth's IPv6 addresses (no tunnel).
# Each round measures every mode in a rotating order:
#   TCP up/down  one iperf3 stream c -> r (and -R for r -> c), -O 1 (slow start left out), the
#                receiver's Mbit/s;
#   pps up       iperf3 UDP with 64-byte payloads at full speed c -> r, datagrams received per
#                second (sent minus lost).
# Output: a markdown table on stdout (progress on stderr): per mode and measurement the median over
# the rounds, and for relay the median of the per-round ratios relay/anytun.
#   --short      CI: one round of 2 s per measurement (figures meaningless; proves it runs)
#   --rounds N   rounds (default 5)        --seconds S  seconds per measurement (default 8)
set -euo pipefail
export LC_ALL=C

die() {
  echo "relay_bench: $*" >&2
  exit 2
}
usage() {
  sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

build=build/release short=false rounds='' seconds=''
while (($#)); do
  case $1 in
    --short) short=true ;;
    --rounds) rounds=${2:?--rounds needs a number} && shift ;;
    --seconds) seconds=${2:?--seconds needs a number} && shift ;;
    -h | --help) usage 0 ;;
    -*) echo "relay_bench: unknown option $1" >&2 && usage 64 >&2 ;;
    *) build=$1 ;;
  esac
  shift
done
if $short; then : "${rounds:=1}" "${seconds:=2}"; else : "${rounds:=5}" "${seconds:=8}"; fi
for v in rounds seconds; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v needs a positive whole number (${!v})"
done
relay_bin=$build/anytun/relay/daemon/satp-relay
[[ -x $relay_bin ]] || die "$relay_bin not built (target satp-relay)"
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
for t in ip:iproute2 iperf3:iperf3 anytun:anytun ping:iputils-ping timeout:coreutils; do
  command -v "${t%%:*}" >/dev/null ||
    die "${t%%:*} missing (Debian package ${t#*:}; scripts/setup.sh installs it)"
done

readonly pass=relay-bench-passphrase
readonly ns_c=rbench-$$-c ns_r=rbench-$$-r
dir=$(mktemp -d "${TMPDIR:-/tmp}/appl-relay-bench-XXXXXX")
readonly dir
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    timeout 5 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  ip netns del "$ns_c" 2>/dev/null || true
  ip netns del "$ns_r" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Background processes are started with `ip netns exec` itself (which execs), not through these
# functions: `fn &` forks a subshell, and its pid is not the daemon's.
in_c() { ip netns exec "$ns_c" "$@"; }
in_r() { ip netns exec "$ns_r" "$@"; }
# Waits (bounded) until a device exists in a namespace: anytun gives no readiness signal.
await_dev() { # ns dev
  local i
  for ((i = 0; i < 200; i++)); do
    ip -n "$1" link show dev "$2" &>/dev/null && return 0
    sleep 0.05
  done
  die "device $2 did not appear in $1"
}
# Pings until one answer (bounded): the tunnel carries packets.
await_path() { # ns address
  local i
  for ((i = 0; i < 20; i++)); do
    ip netns exec "$1" ping -n -c 1 -W 1 "$2" &>/dev/null && return 0
  done
  die "no answer from $2 in $1"
}

echo "relay_bench: namespaces" >&2
ip netns add "$ns_c"
ip netns add "$ns_r"
ip link add eth0 netns "$ns_c" type veth peer name eth0 netns "$ns_r"
for ns in "$ns_c" "$ns_r"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip -n "$ns_c" addr add 2001:db8:20::2/64 dev eth0 nodad
ip -n "$ns_r" addr add 2001:db8:20::1/64 dev eth0 nodad
ip -n "$ns_c" link set eth0 up
ip -n "$ns_r" link set eth0 up
await_path "$ns_c" 2001:db8:20::1

echo "relay_bench: anytun pair" >&2
suite=(-c aes-ctr -a sha1 -k aes-ctr -b 10 -E "$pass" -m 1)
ip netns exec "$ns_r" anytun -D -L stderr:1 -t tun -d aty0 -i 2001:db8:20::1 -p 4444 -s 1 -e left "${suite[@]}" \
  2>"$dir/anytun-r.log" &
pids+=($!)
ip netns exec "$ns_c" anytun -D -L stderr:1 -t tun -d aty0 -i 2001:db8:20::2 -p 4444 -r 2001:db8:20::1 -o 4444 \
  -s 2 -e right "${suite[@]}" 2>"$dir/anytun-c.log" &
pids+=($!)
await_dev "$ns_r" aty0
await_dev "$ns_c" aty0
ip -n "$ns_r" addr add 198.51.100.1/30 dev aty0
ip -n "$ns_c" addr add 198.51.100.2/30 dev aty0
ip -n "$ns_r" link set aty0 up mtu 1400
ip -n "$ns_c" link set aty0 up mtu 1400
await_path "$ns_c" 198.51.100.1

echo "relay_bench: satp-relay pair" >&2
conn='"mux": 1, "passphrase": "'$pass'", "cipher": "aes-ctr", "kd_prf": "aes-ctr", "auth": "sha1", "tag_length": 10'
cat >"$dir/r.json" <<JSON
{"anytun": {"relay": {"name": "bench", "sender_id": 1, "listen": ["[2001:db8:20::1]:4445"],
  "tun": {"name": "satp0", "mtu": 1400, "addresses": ["198.51.100.5/30"]},
  "connections": [{$conn, "role": "left", "routes": ["198.51.100.6/32"]}],
  "control_socket": "$dir/r.sock"}}}
JSON
cat >"$dir/c.json" <<JSON
{"anytun": {"client": {"server": "[2001:db8:20::1]:4445", "sender_id": 2,
  "connection": {$conn, "role": "right"},
  "tun": {"name": "satp0", "mtu": 1400, "addresses": ["198.51.100.6/30"]},
  "control_socket": "$dir/c.sock"}}}
JSON
for side in r c; do
  mkfifo "$dir/$side.ready"
  ip netns exec "rbench-$$-$side" "$relay_bin" --config "$dir/$side.json" --ready-fd 3 \
    3>"$dir/$side.ready" 2>"$dir/relay-$side.log" &
  pids+=($!)
  timeout 20 head -n 1 "$dir/$side.ready" >/dev/null || die "satp-relay ($side) not ready: $(cat "$dir/relay-$side.log")"
done
await_path "$ns_c" 198.51.100.5

iperf_server() {
  ip netns exec "$ns_r" iperf3 -s >/dev/null 2>&1 &
  iperf_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    in_r ss -ltn 2>/dev/null | grep -q ':5201 ' && return 0
    sleep 0.05
  done
  die "iperf3 server did not start"
}
iperf_server
pids+=("$iperf_pid")

# The receiver's Mbit/s of one TCP stream to `to` (reverse: r -> c).
tcp_mbps() { # to [-R]
  in_c timeout $((seconds + 15)) iperf3 -c "$1" -t "$seconds" -O 1 -f m ${2:-} 2>/dev/null |
    awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") v = $(i - 1)} END {print v + 0}'
}
# Datagrams per second received of 64-byte UDP payloads at full speed to `to`.
udp_pps() { # to
  in_c timeout $((seconds + 15)) iperf3 -c "$1" -u -b 0 -l 64 -t "$seconds" 2>/dev/null |
    awk -v s="$seconds" '/receiver/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) {split($i, p, "/"); v = (p[2] - p[1]) / s}} END {printf "%d\n", v}'
}

declare -A target=([plain]=2001:db8:20::1 [anytun]=198.51.100.1 [relay]=198.51.100.5)
modes=(plain anytun relay)
measures=(tcp_up tcp_down pps_up)
declare -A values=()
for ((round = 1; round <= rounds; round++)); do
  for ((k = 0; k < ${#modes[@]}; k++)); do
    mode=${modes[$(((k + round) % ${#modes[@]}))]}
    to=${target[$mode]}
    echo "relay_bench: round $round $mode" >&2
    values[$mode,tcp_up]+="$(tcp_mbps "$to") "
    values[$mode,tcp_down]+="$(tcp_mbps "$to" -R) "
    values[$mode,pps_up]+="$(udp_pps "$to") "
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratios() { # measure: per-round relay/anytun
  local -a r a
  read -r -a r <<<"${values[relay,$1]}"
  read -r -a a <<<"${values[anytun,$1]}"
  local i
  for ((i = 0; i < ${#r[@]}; i++)); do
    awk -v x="${r[$i]}" -v y="${a[$i]}" 'BEGIN {if (y > 0) printf "%.2f ", x / y; else printf "0 "}'
  done
}

echo "| measure | plain | anytun | satp-relay | satp-relay / anytun (per round) |"
echo "|---|---|---|---|---|"
for m in "${measures[@]}"; do
  unit=" Mbit/s"
  [[ $m == pps_up ]] && unit=" pps"
  printf '| %s | %s%s | %s%s | %s%s | **%s** (%s) |\n' "$m" \
    "$(median <<<"${values[plain,$m]}")" "$unit" \
    "$(median <<<"${values[anytun,$m]}")" "$unit" \
    "$(median <<<"${values[relay,$m]}")" "$unit" \
    "$(ratios "$m" | median)" "$(ratios "$m" | sed 's/ $//')"
done
