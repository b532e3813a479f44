#!/usr/bin/env bash
# TEP data-path benchmark (figures and method in docs/benchmarks.md, "TEP data path").
#
#   sudo bench/tep_bench.sh [BUILD_DIR] [--short]
#
# Builds nothing. Starts the DSTM lab (BUILD_DIR/tests/lab/dstm-lab --hold --reference) in network
# namespaces and measures on it, side by side and interleaved in rounds, the tunnel path (cl1's
# leased IPv4 through tep1 out and back through tep2) against the plain reference path over the
# same namespaces and veths (cl1 192.0.2.34 <-> host 203.0.113.20, routed plainly):
#   1. TCP throughput client -> host and host -> client (iperf3, -R), median Mbit/s and the ratio;
#   2. small-packet rate (iperf3 -u -l 64 at a high -b), packets/s received at the far end. The
#      sender shares the two vCPUs with everything else, so this is generator-bound;
#   3. the extra latency of the first packet to an unknown destination: flush tep2's bindings,
#      ping cl1's leased IPv4 from the host twice; first RTT minus second (tep2's query to the
#      server), p50/p99.
# --short: one round of 2 s per measurement and 20 latency samples, to prove in CI that it all
# still works (figures meaningless). Prints a markdown table.
set -euo pipefail

build=${1:-build/release}
short=false
[[ ${2:-} == --short ]] && short=true
lab=$build/tests/lab/dstm-lab
[[ -x $lab ]] || { echo "tep_bench: $lab not built" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "tep_bench: needs root (network namespaces)" >&2; exit 2; }
for tool in iperf3 ping ss; do
  command -v "$tool" >/dev/null || { echo "tep_bench: $tool missing (scripts/setup.sh)" >&2; exit 2; }
done

if $short; then
  rounds=1 seconds=2 samples=20
else
  rounds=5 seconds=10 samples=200
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/appl-tep-bench-XXXXXX")
lab_pid=
iperf_pid=
cleanup() {
  if [[ -n $iperf_pid ]]; then
    kill -9 "$iperf_pid" 2>/dev/null || true
    wait "$iperf_pid" 2>/dev/null || true
  fi
  if [[ -n $lab_pid ]]; then
    # The lab stops its daemons in order and removes its namespaces on SIGTERM.
    kill -TERM "$lab_pid" 2>/dev/null || true
    if ! timeout 90 tail --pid="$lab_pid" -f /dev/null; then
      echo "tep_bench: the lab did not stop, killing it (lab_sweep removes its namespaces)" >&2
      kill -9 "$lab_pid" 2>/dev/null || true
    fi
    wait "$lab_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "tep_bench: $*" >&2
  echo "----- dstm-lab output" >&2
  cat "$dir/lab.log" >&2 || true
  exit 1
}

mkfifo "$dir/ready"
"$lab" --hold --reference --info "$dir/info.json" --ready-fd 3 3>"$dir/ready" >"$dir/lab.log" 2>&1 &
lab_pid=$!
if ! read -r -t 180 line <"$dir/ready" || [[ $line != READY ]]; then
  fail "the lab did not come up"
fi

# A member of the flat info file (one member a line).
info() { sed -nE "s/^  \"$1\": \"?([^\"]*)\"?,?$/\1/p" "$dir/info.json"; }
ns_cl1=$(info netns_cl1)
ns_host=$(info netns_host)
tep2_socket=$(info socket_tep2)
tep_ctl=$(info tep_ctl)
host=$(info host_ipv4)
leased=$(info client1_ipv4)
plain_client=$(info client1_reference_ipv4)
plain_host=$(info host_reference_ipv4)
[[ -n $ns_cl1 && -n $ns_host && -n $host && -n $plain_client && -n $plain_host ]] ||
  fail "incomplete info file: $(cat "$dir/info.json")"
[[ $leased =~ ^[0-9.]+$ ]] || fail "client 1 has no leased IPv4 ($leased)"
[[ -x $tep_ctl ]] || fail "tep-ctl not built ($tep_ctl)"
in_cl1() { ip netns exec "$ns_cl1" "$@"; }
in_host() { ip netns exec "$ns_host" "$@"; }

# Not through in_host: a backgrounded function is a subshell, and $! would not be iperf3's pid.
# `ip netns exec` execs, so $! is iperf3 itself.
ip netns exec "$ns_host" iperf3 -s --logfile "$dir/iperf3.log" </dev/null >/dev/null 2>&1 &
iperf_pid=$!
# iperf3 has no readiness signal: wait (bounded) until its socket listens.
for ((i = 0; i < 100; i++)); do
  [[ -n $(in_host ss -Htln 'sport = :5201') ]] && break
  sleep 0.1
done
[[ -n $(in_host ss -Htln 'sport = :5201') ]] || fail "iperf3 -s did not start"

in_cl1 ping -n -q -c 3 -i 0.2 -W 2 "$host" >/dev/null || fail "no ping through the tunnel"
in_cl1 ping -n -q -c 3 -i 0.2 -W 2 "$plain_host" >/dev/null || fail "no ping on the plain path"

# One iperf3 run; prints the receiver's rate: Mbit/s for TCP, packets/s for UDP.
measure() { # path(tunnel|plain) kind(up|down|udp)
  local target source out
  if [[ $1 == tunnel ]]; then target=$host source=$leased; else target=$plain_host source=$plain_client; fi
  local args=(-c "$target" -B "$source" -t "$seconds" -f m)
  case $2 in
    down) args+=(-R) ;;
    udp) args+=(-u -l 64 -b 2G) ;;
  esac
  out=$(in_cl1 timeout $((seconds + 30)) iperf3 "${args[@]}" 2>&1) || fail "iperf3 $1 $2: $out"
  if [[ $2 == udp ]]; then
    # [  5]   0.00-2.00  sec  X MBytes  Y Mbits/sec  J ms  lost/total (p%)  receiver
    echo "$out" | awk '/receiver/ { split($3, t, "-"); for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) {
        split($i, l, "/"); printf "%.0f\n", (l[2] - l[1]) / (t[2] - t[1]) } }'
  else
    echo "$out" | awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }'
  fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
  i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A results
kinds=(up down udp)
for ((r = 1; r <= rounds; r++)); do
  for kind in "${kinds[@]}"; do
    # Alternate which path goes first, so drift within a round falls on both.
    if ((r % 2)); then order=(tunnel plain); else order=(plain tunnel); fi
    for path in "${order[@]}"; do
      v=$(measure "$path" "$kind")
      [[ -n $v ]] || fail "no figure from iperf3 $path $kind"
      results[$path.$kind]+="$v "
      echo "round $r: $kind $path $v" >&2
    done
  done
done

# First packet to an unknown destination: tep2 has no binding for the leased address after a
# flush, so the host's first echo request waits for tep2's query to the server.
lat=$dir/latency
: >"$lat"
lost=0
for ((i = 0; i < samples; i++)); do
  "$tep_ctl" --socket "$tep2_socket" flush >/dev/null || fail "tep-ctl flush failed"
  out=$(in_host ping -n -c 2 -i 0.2 -W 2 "$leased" 2>&1) || true
  first=$(echo "$out" | sed -nE 's/.*icmp_seq=1 .*time=([0-9.]+) ms.*/\1/p')
  second=$(echo "$out" | sed -nE 's/.*icmp_seq=2 .*time=([0-9.]+) ms.*/\1/p')
  if [[ -z $first || -z $second ]]; then
    lost=$((lost + 1))
    continue
  fi
  echo "$first $second" >>"$lat"
done
(($(wc -l <"$lat") > 0)) || fail "no latency sample (all $samples lost)"
extra_p50=$(awk '{ print $1 - $2 }' "$lat" | percentile 50)
extra_p99=$(awk '{ print $1 - $2 }' "$lat" | percentile 99)
first_p50=$(awk '{ print $1 }' "$lat" | percentile 50)
second_p50=$(awk '{ print $2 }' "$lat" | percentile 50)

# tep2's own view of its queries (GET /status server.query_latency), as a cross-check.
query_latency=$("$tep_ctl" --socket "$tep2_socket" status | grep -o '"query_latency":{[^}]*}' || true)
tep_query() { echo "$query_latency" | sed -nE "s/.*\"$1\":([-0-9.eE+]+).*/\1/p" | awk '{ printf "%.3f", $1 }'; }

row() { # label kind unit
  local t p
  t=$(echo "${results[tunnel.$2]}" | tr ' ' '\n' | grep . | median)
  p=$(echo "${results[plain.$2]}" | tr ' ' '\n' | grep . | median)
  printf '| %s | %s %s | %s %s | %s |\n' "$1" "$t" "$3" "$p" "$3" "$(ratio "$t" "$p")"
}

echo
echo "TEP data path, $(date -u +%Y-%m-%d), $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "$rounds round(s) of ${seconds} s per measurement, medians:"
echo
echo "| measurement | tunnel | plain | tunnel/plain |"
echo "|---|---:|---:|---:|"
row "TCP client -> host (iperf3)" up "Mbit/s"
row "TCP host -> client (iperf3 -R)" down "Mbit/s"
row "UDP 64-byte payload, received (generator-bound)" udp "packets/s"
echo
echo "| first packet to an unknown destination ($((samples - lost)) samples, $lost lost) | p50 | p99 |"
echo "|---|---:|---:|"
printf '| extra RTT of the first ping after flushing tep2 (first - second) | %s ms | %s ms |\n' \
  "$extra_p50" "$extra_p99"
printf '| first RTT / second RTT, p50 | %s ms / %s ms | |\n' "$first_p50" "$second_p50"
printf '| tep2 query latency by its own count (%s queries) | %s ms | %s ms |\n' \
  "$(echo "$query_latency" | sed -nE 's/.*"samples":([0-9]+).*/\1/p')" "$(tep_query p50_ms)" \
  "$(tep_query p99_ms)"
echo
echo "tep_bench: ok"
