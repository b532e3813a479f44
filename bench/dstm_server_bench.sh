#!/usr/bin/env bash
# dstm-server load benchmark (figures and method in docs/benchmarks.md, "dstm-server").
#
#   sudo bench/dstm_server_bench.sh [BUILD_DIR] [--short]
#
# Runs the real dstm-server in a private network namespace (root) in which 2001:db8:100::/64 is
# local on lo, so that each load client has its own IPv6 address and so its own lease. Measures,
# with bench/dstm_load:
#   1. durable creates/s (new leases, each on disk before its 200) over TCP and UDP, ANONYMOUS
#      and DIGEST-MD5; the reference beside them is the lease store alone (bench_lease_store's
#      group-commit puts/s in the same run), so the ratio is the cost of TSP and the daemon;
#   2. TEP queries/s, one at a time and pipelined;
#   3. restart with 1M leases: time from start to READY, and the daemon's RSS.
# --short: small counts, to prove in CI that everything still works (figures meaningless).
set -euo pipefail

build=${1:-build/release}
short=false
[[ ${2:-} == --short ]] && short=true
server=$build/dstm-server/dstm-server
ctl=$build/dstm-server/dstm-ctl
load=$build/bench/dstm_load
store_bench=$build/bench/bench_lease_store
for b in "$server" "$ctl" "$load" "$store_bench"; do
  [[ -x $b ]] || { echo "dstm_server_bench: $b not built" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "dstm_server_bench: needs root (network namespace)" >&2; exit 2; }

if $short; then
  creates=2000 clients=32 queries=20000 leases=20000 store_puts=2000
else
  creates=40000 clients=256 queries=400000 leases=1000000 store_puts=20000
fi

ns=appl-bench-$$
# On disk, not tmpfs: fsync must cost what it costs on the appliance.
dir=$(mktemp -d "${BENCH_DIR:-/var/tmp}/appl-bench-XXXXXX")
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill -9 "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" -6 route add local 2001:db8:100::/64 dev lo
inns() { ip netns exec "$ns" "$@"; }

tep_verifier=$(printf 'tep-secret' | "$ctl" verifier tep-q)
alice_verifier=$(printf 'alice-secret' | "$ctl" verifier alice)
cat >"$dir/config.json" <<EOF
{"dstm_server": {
  "listen": {"ipv6": ["::"], "ipv4": ["127.0.0.1"], "port": 3653},
  "pool": {"prefixes": ["100.64.0.0/12"]},
  "auth": {"anonymous": true, "users": [{"name": "tep-q", "digest_md5": "$tep_verifier"},
                                        {"name": "alice", "digest_md5": "$alice_verifier"}]},
  "teps": [{"name": "tep-0", "ipv6": "2001:db8:ffff::10", "ipv4": "192.0.2.10", "heartbeat": false},
           {"name": "tep-1", "ipv6": "2001:db8:ffff::11", "ipv4": "192.0.2.11", "heartbeat": false},
           {"name": "tep-2", "ipv6": "2001:db8:ffff::12", "ipv4": "192.0.2.12", "heartbeat": false},
           {"name": "tep-3", "ipv6": "2001:db8:ffff::13", "ipv4": "192.0.2.13", "heartbeat": false},
           {"name": "tep-q", "ipv6": "2001:db8:ffff::14", "ipv4": "192.0.2.14", "user": "tep-q",
            "heartbeat": false}],
  "client": {"dns_server": "2001:db8::53"},
  "store": {"path": "$dir/leases.db", "sync": "full"},
  "control_socket": "$dir/ctl.sock",
  "limits": {"max_connections": 8192, "max_connections_per_source": 8192,
             "max_udp_sessions": 100000, "max_udp_sessions_per_source": 100000,
             "new_sessions_per_second": 1000000, "new_sessions_burst": 1000000}
}}
EOF

# Starts the server and waits for READY; sets started_in (seconds).
started_in=
start_server() {
  rm -f "$dir/ready"
  mkfifo "$dir/ready"
  local t0
  t0=$(date +%s.%N)
  ip netns exec "$ns" "$server" --config "$dir/config.json" --ready-fd 3 3>"$dir/ready" >>"$dir/server.log" 2>&1 &
  server_pid=$!
  if ! read -r -t 60 line <"$dir/ready" || [[ $line != READY ]]; then
    echo "dstm_server_bench: the server did not start" >&2
    cat "$dir/server.log" >&2
    exit 1
  fi
  started_in=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
}
stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }

# The server's CPU time so far (user + system), in clock ticks.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# Runs dstm_load and fails the script if it failed anything. The load generator shares the two
# cores with the server, so the server's own CPU time is measured too: operations per second of
# server CPU is what one core of the server can do, whoever else runs.
run_load() {
  local out before after ok
  before=$(server_ticks)
  out=$(inns "$load" --json "$@")
  after=$(server_ticks)
  echo "$out" | grep -v '^{'
  echo "$out" | tail -n 1 | grep -q '"failed":0' || { echo "dstm_server_bench: failures" >&2; exit 1; }
  ok=$(echo "$out" | tail -n 1 | grep -o '"ok":[0-9]*' | cut -d: -f2)
  awk -v t=$((after - before)) -v hz="$ticks_per_second" -v ok="$ok" 'BEGIN {
    s = t / hz; printf "  server CPU: %.2f s, %.0f operations per server CPU-second\n", s, (s > 0 ? ok / s : 0) }'
}

echo "== reference: the lease store alone (group commit, synchronous=FULL)"
"$store_bench" --puts "$store_puts" --count 1000 --rounds 2 --batch 256 | grep -E "durable|group|one per"

start_server
echo "== durable creates: every create a new lease ($clients clients)"
run_load --server ::1 --mode create --transport tcp --clients "$clients" --count "$creates" \
  --source-prefix 2001:db8:100::/64 --new-source-per-create --timeout-ms 2000
run_load --server ::1 --mode create --transport udp --clients "$clients" --count "$creates" \
  --source-prefix 2001:db8:100::/64 --new-source-per-create --timeout-ms 2000
# DIGEST-MD5 over TCP pauses 200 ms between rspauth and "200 Success" (real clients read them with
# separate recv() calls, docs/tsp.md), so each client does at most ~4 sessions a second.
run_load --server ::1 --mode create --transport tcp --clients "$clients" \
  --count $((creates / 8)) --auth digest --user alice --password alice-secret \
  --source-prefix 2001:db8:100::/64 --new-source-per-create --timeout-ms 2000
run_load --server ::1 --mode create --transport udp --clients "$clients" --count "$creates" \
  --auth digest --user alice --password alice-secret \
  --source-prefix 2001:db8:100::/64 --new-source-per-create --timeout-ms 2000

echo "== TEP queries over the leases above"
run_load --server ::1 --mode query --transport tcp --clients 16 --count $((queries / 4)) \
  --auth digest --user tep-q --password tep-secret --ipv4-range 100.64.0.0/20
run_load --server ::1 --mode pipelined-query --transport tcp --clients 2 --depth 64 \
  --count "$queries" --auth digest --user tep-q --password tep-secret \
  --ipv4-range 100.64.0.0/20
stop_server

echo "== restart with $leases leases"
rm -f "$dir"/leases.db*
"$store_bench" --populate "$dir/leases.db" --count "$leases" >/dev/null
sync
start_server
used=$(inns "$ctl" --socket "$dir/ctl.sock" --json status | grep -o '"used":[0-9]*' | head -1)
echo "  start to READY: $started_in s   RSS: $(rss_mib) MiB   pool $used"
[[ $used == "\"used\":$leases" ]] || { echo "dstm_server_bench: restored $used" >&2; exit 1; }
run_load --server ::1 --mode pipelined-query --transport tcp --clients 1 --depth 64 \
  --count $((queries / 4)) --auth digest --user tep-q --password tep-secret \
  --ipv4-range 100.64.0.0/12
echo "  RSS after queries: $(rss_mib) MiB"
stop_server
echo "dstm_server_bench: ok"
