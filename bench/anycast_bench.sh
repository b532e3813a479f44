#!/usr/bin/env bash
# Anycast resolving: what resolution and the preload library cost (figures and method in
# docs/benchmarks.md, "Anycast resolving").
#
#   bench/anycast_bench.sh [BUILD_DIR] [--short]
#
# Three namespaces, client - router - member, the member holding the anycast address
# 2001:db8:a::1 beside its unicast 2001:db8:1::2, with anycast-member and a TCP listener. On the
# client, anycast-resolver and bench_anycast measure, in interleaved rounds:
#   resolve/probe    a resolution from an empty cache, probe policy (one ARR/UDP round trip)
#   resolve/secure   the same, secure policy (probe + return routability + BU)
#   connect/plain    socket() + connect() to the member's unicast address: the reference
#   connect/process  the same through the library to the anycast address, answered from the
#                    library's per-process cache
#   connect/daemon   through the library, answered by the resolver from its cache (a query on
#                    the Unix socket per connect)
#   connect/uncached through the library with the resolver's cache emptied before each connect:
#                    a full secure resolution inside connect()
# --short: a few iterations, to prove in CI that it still works (figures meaningless).
set -euo pipefail

build=${1:-build/release}
short=false
shift || true
while (($#)); do
  case $1 in
    --short) short=true ;;
    *) echo "anycast_bench: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done
member=$build/anytun/anycast/member/anycast-member
resolver=$build/anytun/anycast/resolver/anycast-resolver
preload=$build/anytun/anycast/preload/libanycast-preload.so
tool=$build/bench/bench_anycast
service=$build/tests/integration/anycast_service
for b in "$member" "$resolver" "$preload" "$tool" "$service"; do
  [[ -e $b ]] || { echo "anycast_bench: $b not built" >&2; exit 2; }
done

if $short; then count=20 rounds=1; else count=500 rounds=3; fi

prefix=appl-bench-any-$$
dir=$(mktemp -d "${BENCH_DIR:-/var/tmp}/appl-anycast-bench-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in c r m; do ip netns del "$prefix-$n" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

c=$prefix-c r=$prefix-r m=$prefix-m
for n in "$c" "$r" "$m"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add eth0 netns "$c" type veth peer name c0 netns "$r"
ip link add eth0 netns "$m" type veth peer name m0 netns "$r"
for n in "$c" "$m"; do
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
ip netns exec "$r" sysctl -qw net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.accept_dad=0 \
  net.ipv6.conf.default.accept_dad=0
ip -n "$c" addr add 2001:db8:c::2/64 dev eth0 nodad
ip -n "$r" addr add 2001:db8:c::1/64 dev c0 nodad
ip -n "$r" addr add 2001:db8:1::1/64 dev m0 nodad
ip -n "$m" addr add 2001:db8:1::2/64 dev eth0 nodad
ip -n "$m" addr add 2001:db8:a::1/128 dev lo nodad
for l in "$c eth0" "$r c0" "$r m0" "$m eth0"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$c" -6 route add 2001:db8::/32 via 2001:db8:c::1
ip -n "$m" -6 route add 2001:db8::/32 via 2001:db8:1::1
ip -n "$r" -6 route add 2001:db8:a::1/128 via 2001:db8:1::2

# Starts "$@" in namespace $1 with --ready-fd 3 and waits for READY.
start() {
  local ns=$1 name=$2
  shift 2
  rm -f "$dir/$name.ready"
  mkfifo "$dir/$name.ready"
  ip netns exec "$ns" "$@" --ready-fd 3 3>"$dir/$name.ready" >>"$dir/$name.log" 2>&1 &
  pids+=($!)
  if ! read -r -t 30 line <"$dir/$name.ready" || [[ $line != READY ]]; then
    echo "anycast_bench: $name did not start" >&2
    cat "$dir/$name.log" >&2
    exit 1
  fi
}

cat >"$dir/member.json" <<JSON
{"anycast": {"member": {"anycast": ["2001:db8:a::1"], "unicast": "2001:db8:1::2",
  "probes_per_second": 100000, "control_socket": "$dir/member.sock"}}}
JSON
start "$m" member "$member" --config "$dir/member.json"
start "$m" service "$service" --name m --port 8080

resolver_pid=
start_resolver() {  # policy answer_ttl_ms
  if [[ -n $resolver_pid ]]; then kill -TERM "$resolver_pid"; wait "$resolver_pid" || true; fi
  cat >"$dir/resolver.json" <<JSON
{"anycast": {"resolver": {"prefixes": ["2001:db8:a::/64"], "policy": "$1",
  "answer_ttl_ms": $2, "socket": "$dir/query.sock", "control_socket": "$dir/resolver.sock"}}}
JSON
  start "$c" resolver "$resolver" --config "$dir/resolver.json"
  resolver_pid=${pids[-1]}
}

inc() { ip netns exec "$c" "$@"; }
with_library() { inc env LD_PRELOAD="$preload" ANYCAST_RESOLVER_SOCKET="$dir/query.sock" "$@"; }

declare -A p50 p99
record() {  # name line
  local line=$2
  [[ $line =~ p50_us=([0-9.]+)\ p99_us=([0-9.]+) ]] || { echo "anycast_bench: $line" >&2; exit 1; }
  p50[$1]+="${BASH_REMATCH[1]} " p99[$1]+="${BASH_REMATCH[2]} "
}

for ((round = 1; round <= rounds; round++)); do
  for policy in probe secure; do
    start_resolver "$policy" 0
    record "resolve/$policy" "$(inc "$tool" resolve --query "$dir/query.sock" \
      --control "$dir/resolver.sock" --address 2001:db8:a::1 --count "$count")"
  done
  record connect/plain "$(inc "$tool" connect --address 2001:db8:1::2 --port 8080 --count "$count")"
  start_resolver secure 1000
  with_library "$tool" connect --address 2001:db8:a::1 --port 8080 --count 1 >/dev/null
  record connect/process "$(with_library "$tool" connect --address 2001:db8:a::1 --port 8080 \
    --count "$count")"
  start_resolver secure 0
  with_library "$tool" connect --address 2001:db8:a::1 --port 8080 --count 1 >/dev/null
  record connect/daemon "$(with_library "$tool" connect --address 2001:db8:a::1 --port 8080 \
    --count "$count")"
  record connect/uncached "$(with_library "$tool" connect --address 2001:db8:a::1 --port 8080 \
    --count "$count" --flush "$dir/resolver.sock")"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ref=$(echo "${p50[connect/plain]}" | median)
printf '%-18s %12s %12s %10s   %s\n' measure p50_us p99_us "x plain" "p50 per round"
for name in resolve/probe resolve/secure connect/plain connect/process connect/daemon \
  connect/uncached; do
  a=$(echo "${p50[$name]}" | median) b=$(echo "${p99[$name]}" | median)
  printf '%-18s %12s %12s %10s   %s\n' "$name" "$a" "$b" \
    "$(awk -v x="$a" -v y="$ref" 'BEGIN { printf "%.2f", x / y }')" "${p50[$name]}"
done
