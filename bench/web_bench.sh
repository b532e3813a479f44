#!/usr/bin/env bash
# Dashboard API latency under concurrent requests (figures and method in docs/benchmarks.md,
# "Dashboard API").
#
#   bench/web_bench.sh [BUILD_DIR] [--short] [--connections N]
#
# Runs the real dstm-server with 100,000 leases restored from its store (written by
# bench_lease_store --populate) and dstm-web in front of it, on loopback, and measures with wrk
# (HTTPS, keep-alive, an admin session cookie) the p50/p99 latency and the rate of:
#   health   GET /api/health: no session, no daemon: the dashboard's own floor (the reference)
#   session  GET /api/session: cookie lookup, the floor of every authenticated call
#   status   GET /api/status: the daemons' /status and dstm-server's /teps behind each call
#   page     GET /api/leases?limit=100: the first page of the 100k-lease table
#   search   GET /api/leases?q=100.64.1&limit=50: a substring search over the whole table
#   sorted   GET /api/leases?sort=expires_at&order=desc&limit=100
# The endpoints alternate in interleaved rounds so that machine drift hits them alike; each figure
# is also given as a ratio to health in the same round. --connections: concurrent connections
# (default 32: a stress far beyond a few operators' browsers). --short: a few seconds, to prove in
# CI that it still works (figures meaningless).
set -euo pipefail

build=${1:-build/release}
short=false
connections_flag=
shift || true
while (($#)); do
  case $1 in
    --short) short=true ;;
    --connections) connections_flag=${2:?--connections needs a number}; shift ;;
    *) echo "web_bench: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done
server=$build/dstm-server/dstm-server
web=$build/web/dstm-web
store_bench=$build/bench/bench_lease_store
for b in "$server" "$web" "$store_bench"; do
  [[ -x $b ]] || { echo "web_bench: $b not built" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "web_bench: wrk is missing (scripts/setup.sh)" >&2; exit 2; }

if $short; then
  leases=5000 rounds=1 seconds=2 connections=8
else
  leases=100000 rounds=3 seconds=10 connections=32
fi
[[ -n $connections_flag ]] && connections=$connections_flag

dir=$(mktemp -d "${BENCH_DIR:-/var/tmp}/appl-web-bench-XXXXXX")
server_pid= web_pid=
cleanup() {
  [[ -n $web_pid ]] && kill -TERM "$web_pid" 2>/dev/null && wait "$web_pid" 2>/dev/null
  [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# A free loopback TCP port for the dashboard (the kernel picks it; the dashboard binds it next).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat >"$dir/appliance.json" <<EOF
{"dstm_server": {
  "listen": {"ipv4": ["127.0.0.1"], "port": 0, "udp": false},
  "pool": {"prefixes": ["100.64.0.0/12"]},
  "auth": {"anonymous": true},
  "teps": [{"name": "tep-0", "ipv6": "2001:db8:ffff::10", "ipv4": "192.0.2.10", "heartbeat": false},
           {"name": "tep-1", "ipv6": "2001:db8:ffff::11", "ipv4": "192.0.2.11", "heartbeat": false},
           {"name": "tep-2", "ipv6": "2001:db8:ffff::12", "ipv4": "192.0.2.12", "heartbeat": false},
           {"name": "tep-3", "ipv6": "2001:db8:ffff::13", "ipv4": "192.0.2.13", "heartbeat": false}],
  "client": {"dns_server": "2001:db8::53"},
  "store": {"path": "$dir/leases.db", "sync": "normal"},
  "control_socket": "$dir/server.sock"
 },
 "web": {"listen": ["127.0.0.1"], "https_port": $port, "http_port": 0, "state_dir": "$dir/web",
         "login_attempts_per_minute": 1000}
}
EOF

"$store_bench" --populate "$dir/leases.db" --count "$leases" >/dev/null

# Starts a daemon with --ready-fd and waits (bounded) for READY; sets the named pid variable.
start() {
  local var=$1 log=$2
  shift 2
  rm -f "$dir/ready"
  mkfifo "$dir/ready"
  "$@" --ready-fd 3 3>"$dir/ready" >>"$log" 2>&1 &
  printf -v "$var" %s $!
  if ! read -r -t 60 line <"$dir/ready" || [[ $line != READY ]]; then
    echo "web_bench: $1 did not start" >&2
    cat "$log" >&2
    exit 1
  fi
}
start server_pid "$dir/server.log" "$server" --config "$dir/appliance.json"
start web_pid "$dir/web.log" "$web" --config "$dir/appliance.json"

base=https://127.0.0.1:$port
password=$(cat "$dir/web/initial-admin-password")
login=$(curl -sk -D - -o /dev/null -H 'Content-Type: application/json' \
  --data "{\"user\":\"admin\",\"password\":\"$password\"}" "$base/api/login")
cookie=$(printf '%s' "$login" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(appl_session=[^;]*\).*/\1/p')
[[ -n $cookie ]] || { echo "web_bench: login failed" >&2; printf '%s\n' "$login" >&2; exit 1; }
total=$(curl -sk -H "Cookie: $cookie" "$base/api/leases?limit=1" | grep -o '"total":[0-9]*')
[[ $total == "\"total\":$leases" ]] || { echo "web_bench: the table has $total" >&2; exit 1; }

declare -A paths=(
  [health]="/api/health"
  [session]="/api/session"
  [status]="/api/status"
  [page]="/api/leases?limit=100"
  [search]="/api/leases?q=100.64.1&limit=50"
  [sorted]="/api/leases?sort=expires_at&order=desc&limit=100"
)
order=(health session status page search sorted)

# wrk's latency figures in ms ("812.00us", "1.20ms", "1.02s").
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

echo "== dashboard API, $leases leases, $connections connections, ${seconds}s per endpoint, $rounds rounds"
printf '%-6s %-8s %10s %10s %10s %12s\n' round endpoint p50_ms p99_ms req/s p50/health
for ((r = 1; r <= rounds; r++)); do
  health_p50=
  for name in "${order[@]}"; do
    out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Cookie: $cookie" \
      "$base${paths[$name]}")
    if grep -q 'Non-2xx' <<<"$out"; then
      echo "web_bench: $name answered errors" >&2
      printf '%s\n' "$out" >&2
      exit 1
    fi
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    rate=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    [[ $name == health ]] && health_p50=$p50
    ratio=$(awk -v a="$p50" -v b="$health_p50" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')
    printf '%-6s %-8s %10s %10s %10s %12s\n' "$r" "$name" "$p50" "$p99" "$rate" "$ratio"
  done
done
echo "web_bench: ok"
