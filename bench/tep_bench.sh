#!/usr/bin/env bash
# shellcheck disable=SC2016 # awk programs in single quotes
# TEP data-path benchmark (figures and method in docs/benchmarks.md, "TEP data path").
#
#   sudo bench/tep_bench.sh [BUILD_DIR] [--short] [--rounds N] [--seconds S] [--samples N]
#                           [--modes user,bpf,anytun]
#
# Builds nothing. Runs the DSTM lab (BUILD_DIR/tests/lab/dstm-lab --hold --reference, docs/lab.md)
# and measures on it, side by side and interleaved in rounds, four paths between cl1 and the host:
#   plain   the reference: cl1 192.0.2.34 <-> host 203.0.113.20, routed by the kernels over the same
#           namespaces and veths as the tunnel (out through tep1, back through tep2);
#   user    cl1's leased IPv4 <-> host 203.0.113.10 through the tunnel, user-space backend
#           (dstm-lab --backend user): out through tep1, back through tep2;
#   bpf     the same with the tc-BPF backend (dstm-lab --backend bpf);
#   anytun  Debian's anytun (null cipher, null auth) between cl1 and tep1 over their IPv6 addresses
#           (UDP), TUN addresses 192.0.2.65/30 (cl1) and .66 (tep1), host address 203.0.113.30:
#           cl1 -> anytun -> tep1 -> r4 -> host and back the same way. A user-space tunnel of the
#           same class (TUN + UDP socket, one packet per system call) for comparison.
# Each round starts a lab with the user backend (measures user, plain and anytun), then one with
# the bpf backend (measures bpf and plain), so that every ratio pairs a run with a plain run taken
# back-to-back in the same lab; the order of the modes rotates from measurement to measurement.
# Measurements, each per mode:
#   TCP up/down  one iperf3 stream from cl1 (-c, and -R for host -> cl1), -O 1 (the first second,
#                slow start, left out), the receiver's Mbit/s;
#   pps up/down  UDP with 64 bytes of payload (92-byte IPv4 packets) from trafgen (netsniff-ng)
#                at full speed, counted as packets/s arriving at the receiver: the receiving
#                namespace's Udp NoPorts counter (/proc/net/snmp; nothing listens on port 9)
#                over the measurement window after a warm-up. Host -> cl1: trafgen on the host's
#                veth. cl1 -> host: trafgen on a veth pair inside cl1 (gen0 -> gen1), which cl1
#                routes into the mode's egress device (eth0, dstm0 or anytun's TUN) as it routes an
#                application's packet, so tc hooks on the TUN's egress see a normal IPv4 skb.
#                (trafgen straight on the TUN, even with --qdisc-path, hands the TUN skbs with
#                skb->protocol 0, which bpf_skb_adjust_room and bpf_redirect_neigh refuse: the BPF
#                encapsulation would never run on them.)
#   latency      user and bpf: flush tep2's bindings (tep-ctl flush), ping cl1's leased IPv4 from
#                the host twice; first RTT minus second is what tep2's query to the server adds.
# Output: a markdown table on stdout (progress on stderr): per mode and measurement the median and
# the per-round values, the ratio to plain (median of the per-round paired ratios) and the ratio
# over anytun (user: paired in the same lab; bpf: its plain ratio over anytun's plain ratio).
#   --short      CI: one round of 2 s per measurement, 5 latency samples per backend (figures
#                meaningless; every mode still runs to prove it works), about a minute
#   --rounds N   rounds (default 5)        --seconds S  seconds per measurement (default 8)
#   --samples N  latency samples per backend over all rounds (default 200)
#   --modes L    comma-separated subset of user,bpf,anytun (default all; plain always runs)
# bpf is skipped with a message when this dstm-lab has no --backend option. A full run takes
# about 20 minutes.
set -euo pipefail
export LC_ALL=C # decimal points in awk, sort and $EPOCHREALTIME

die() {
  echo "tep_bench: $*" >&2
  exit 2
}
usage() {
  sed -n '3,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

build=build/release
short=false rounds='' seconds='' samples='' modes=user,bpf,anytun
while (($#)); do
  case $1 in
    --short) short=true ;;
    --rounds) rounds=${2:?--rounds needs a number} && shift ;;
    --seconds) seconds=${2:?--seconds needs a number} && shift ;;
    --samples) samples=${2:?--samples needs a number} && shift ;;
    --modes) modes=${2:?--modes needs a list} && shift ;;
    -h | --help) usage 0 ;;
    -*) echo "tep_bench: unknown option $1" >&2 && usage 64 >&2 ;;
    *) build=$1 ;;
  esac
  shift
done
if $short; then
  : "${rounds:=1}" "${seconds:=2}" "${samples:=5}"
  warm=0.5
else
  : "${rounds:=5}" "${seconds:=8}" "${samples:=200}"
  warm=1
fi
for v in rounds seconds samples; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v needs a positive whole number (${!v})"
done
declare -A want=()
IFS=, read -r -a list <<<"$modes"
for m in "${list[@]}"; do
  [[ $m == user || $m == bpf || $m == anytun ]] || die "--modes: unknown mode '$m' (user, bpf, anytun)"
  want[$m]=1
done

lab=$build/tests/lab/dstm-lab
[[ -x $lab ]] || die "$lab not built (target dstm-lab, with -DAPPL_BUILD_TESTS=ON)"
[[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
# tool:package, as scripts/setup.sh installs them.
needed=(ip:iproute2 ss:iproute2 ping:iputils-ping sysctl:procps iperf3:iperf3 trafgen:netsniff-ng
  timeout:coreutils)
[[ -n ${want[anytun]:-} ]] && needed+=(anytun:anytun)
for t in "${needed[@]}"; do
  command -v "${t%%:*}" >/dev/null ||
    die "${t%%:*} missing (Debian package ${t#*:}; scripts/setup.sh installs it)"
done

lab_has_backend=false
grep -q -- '--backend' <<<"$("$lab" --help 2>/dev/null || true)" && lab_has_backend=true
skip_bpf=
if [[ -n ${want[bpf]:-} ]] && ! $lab_has_backend; then
  skip_bpf="this dstm-lab has no --backend option (it runs the user-space backend only)"
  echo "tep_bench: bpf skipped: $skip_bpf" >&2
  unset 'want[bpf]'
fi

# The anytun path's addresses: a /30 of 192.0.2.0/24 and a host address that the lab does not use
# (checked in every namespace before they are added).
readonly aty_cl1=192.0.2.65 aty_tep1=192.0.2.66 aty_net=192.0.2.64/30 aty_host=203.0.113.30
readonly aty_port=4444 aty_dev=aty0
# anytun adds 58 bytes (IPv6 40, UDP 8, SATP header 8, payload type 2): the largest inner packet
# that does not fragment (the DSTM tunnel's is 1460).
readonly aty_mtu=1442
readonly udp_port=9 # nothing listens on it: every datagram that arrives counts in Udp NoPorts

dir=$(mktemp -d "${TMPDIR:-/tmp}/appl-tep-bench-XXXXXX")
readonly dir
lab_pid='' iperf_pid='' bg_pid=''
aty_pids=()

# True once pid has exited (gone, or a zombie not yet reaped).
gone() {
  local state
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z $state || $state == Z ]]
}
# Signals pid, waits for it (bounded), SIGKILL after the bound, reaps it.
stop_pid() { # pid signal seconds
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -"$2" "$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 10; i++)); do
    gone "$pid" && break
    sleep 0.1
  done
  if ! gone "$pid"; then
    echo "tep_bench: pid $pid did not stop on SIG$2, killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_traffic() {
  stop_pid "$bg_pid" INT 10
  bg_pid=
}
stop_lab() {
  stop_traffic
  local p
  for p in "${aty_pids[@]}"; do stop_pid "$p" TERM 10; done
  aty_pids=()
  stop_pid "$iperf_pid" TERM 10
  iperf_pid=
  # The lab stops its daemons in order and removes its namespaces (and with them everything
  # added here) on SIGTERM. If it must be killed, the lab_sweep test fixture removes them.
  stop_pid "$lab_pid" TERM 90
  lab_pid=
}
cleanup() {
  set +e
  stop_lab
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_log=/dev/null
fail() {
  echo "tep_bench: $*" >&2
  echo "----- dstm-lab output ($lab_log)" >&2
  tail -n 200 "$lab_log" >&2 || true
  exit 1
}
# Interruptible (a trapped signal ends `wait`, not a foreground sleep).
pause() {
  sleep "$1" &
  wait $! || true
}

# --- The lab.
info() { sed -nE "s/^  \"$1\": \"?([^\"]*)\"?,?$/\1/p" "$dir/info.json"; }
in_ns() { # logical-name command...
  local ns=${netns[$1]}
  shift
  ip netns exec "$ns" "$@"
}
declare -A netns=()

start_lab() { # backend round
  local backend=$1 line got
  local args=(--hold --reference --info "$dir/info.json" --ready-fd 3)
  # The dashboard would only compete for the two cores.
  grep -q -- '--no-web' <<<"$("$lab" --help 2>/dev/null || true)" && args+=(--no-web)
  $lab_has_backend && args+=(--backend "$backend")
  lab_log=$dir/lab-$backend-$2.log
  rm -f "$dir/info.json" "$dir/ready"
  mkfifo "$dir/ready"
  "$lab" "${args[@]}" 3>"$dir/ready" >"$lab_log" 2>&1 &
  lab_pid=$!
  if ! read -r -t 180 line <"$dir/ready" || [[ $line != READY ]]; then
    fail "the lab (backend $backend) did not come up"
  fi
  for n in cl1 r4 tep1 tep2 host r6 srv cl2; do netns[$n]=$(info "netns_$n"); done
  got=$(info backend)
  [[ -z $got || $got == "$backend" ]] || fail "asked for backend $backend, the lab runs $got"
  [[ -n $got || $backend == user ]] || fail "the lab does not say which backend it runs"
  host=$(info host_ipv4)
  leased=$(info client1_ipv4)
  plain_cl1=$(info client1_reference_ipv4)
  plain_host=$(info host_reference_ipv4)
  cl1_ipv6=$(info client1_ipv6)
  tep1_ipv6=$(info tep1_ipv6)
  tep2_socket=$(info socket_tep2)
  tep_ctl=$(info tep_ctl)
  [[ -n ${netns[cl1]} && -n ${netns[host]} && -n $host && -n $plain_cl1 && -n $plain_host ]] ||
    fail "incomplete info file: $(cat "$dir/info.json")"
  [[ $leased =~ ^[0-9.]+$ ]] || fail "client 1 has no leased IPv4 ($leased)"
  [[ -x $tep_ctl ]] || fail "tep-ctl not built ($tep_ctl)"

  # iperf3 -s. Not through in_ns: $! must be iperf3's pid (ip netns exec execs).
  ip netns exec "${netns[host]}" iperf3 -s --logfile "$dir/iperf3-$backend-$2.log" \
    </dev/null >/dev/null 2>&1 &
  iperf_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -n $(in_ns host ss -Htln 'sport = :5201') ]] && break
    sleep 0.1
  done
  [[ -n $(in_ns host ss -Htln 'sport = :5201') ]] || fail "iperf3 -s did not start"

  # The generator's veth pair inside cl1: frames sent on gen0 arrive on gen1 and are routed.
  # accept_local: their source is one of cl1's own addresses.
  in_ns cl1 ip link add gen0 type veth peer name gen1
  for i in gen0 gen1; do in_ns cl1 sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"; done
  in_ns cl1 sysctl -qw net.ipv4.conf.gen1.forwarding=1 net.ipv4.conf.gen1.rp_filter=0 \
    net.ipv4.conf.gen1.accept_local=1
  in_ns cl1 ip link set gen0 up
  in_ns cl1 ip link set gen1 up
  gen1_mac=$(in_ns cl1 cat /sys/class/net/gen1/address)
  # The host's link to r4: the host's route to the pool names the device and r4's address.
  read -r r4_host_side host_dev < <(in_ns host ip -4 route show "$(info pool)" |
    awk '{ for (i = 1; i < NF; i++) { if ($i == "via") g = $(i + 1); if ($i == "dev") d = $(i + 1) } }
         END { print g, d }')
  r4_dev=$(in_ns r4 ip -o -4 addr show to "$r4_host_side/32" | awk '{ print $2 }')
  [[ -n $r4_host_side && -n $host_dev && -n $r4_dev ]] || fail "cannot find the host's link to r4"
  r4_mac=$(in_ns r4 cat "/sys/class/net/$r4_dev/address")

  in_ns cl1 ping -n -q -c 3 -i 0.2 -W 2 "$host" >/dev/null || fail "no ping through the tunnel"
  in_ns cl1 ping -n -q -c 3 -i 0.2 -W 2 "$plain_host" >/dev/null || fail "no ping on the plain path"
}

# Snmp6 counter of a namespace.
snmp6() { in_ns "$1" awk -v k="$2" '$1 == k { print $2 }' /proc/net/snmp6; }

start_anytun() {
  local n
  # The addresses must be free in every namespace of the lab.
  for n in "${!netns[@]}"; do
    if in_ns "$n" ip -o -4 addr show | grep -qE " (192\.0\.2\.6[4-7]|${aty_host//./\\.})/"; then
      fail "$n already uses an address of the anytun path ($aty_net, $aty_host)"
    fi
  done
  local common=(-D -L stderr:3 -6 -p "$aty_port" -o "$aty_port" -t tun -d "$aty_dev"
    -c null -a null -k null -w 0)
  ip netns exec "${netns[cl1]}" anytun "${common[@]}" -i "$cl1_ipv6" -r "$tep1_ipv6" -e left \
    </dev/null >"$dir/anytun-cl1.log" 2>&1 &
  aty_pids+=($!)
  ip netns exec "${netns[tep1]}" anytun "${common[@]}" -i "$tep1_ipv6" -r "$cl1_ipv6" -e right \
    </dev/null >"$dir/anytun-tep1.log" 2>&1 &
  aty_pids+=($!)
  local i
  for n in cl1 tep1; do
    for ((i = 0; i < 100; i++)); do
      in_ns "$n" ip link show "$aty_dev" >/dev/null 2>&1 && break
      sleep 0.1
    done
    in_ns "$n" ip link show "$aty_dev" >/dev/null 2>&1 ||
      fail "anytun did not create $aty_dev in $n: $(cat "$dir/anytun-$n.log")"
    in_ns "$n" sysctl -qw "net.ipv6.conf.$aty_dev.disable_ipv6=1"
    in_ns "$n" ip link set "$aty_dev" mtu "$aty_mtu" up
  done
  # Addresses with ip(8), not anytun -n (which runs /sbin/ifconfig from net-tools).
  in_ns cl1 ip addr add "$aty_cl1/30" dev "$aty_dev"
  in_ns tep1 ip addr add "$aty_tep1/30" dev "$aty_dev"
  in_ns cl1 ip route add "$aty_host/32" dev "$aty_dev" src "$aty_cl1"
  in_ns r4 ip route add "$aty_net" via "$(info tep1_ipv4)"
  in_ns host ip addr add "$aty_host/32" dev "$host_dev"
  in_ns host ip route add "$aty_net" via "$r4_host_side" src "$aty_host"
  # A full-size DF packet passes both ways without IPv6 fragmentation.
  local before
  before="$(snmp6 cl1 Ip6FragCreates) $(snmp6 tep1 Ip6FragCreates)"
  in_ns cl1 ping -n -q -c 3 -i 0.2 -W 2 -M 'do' -s $((aty_mtu - 28)) -I "$aty_cl1" "$aty_host" \
    >/dev/null || fail "no ping through anytun: $(cat "$dir"/anytun-*.log)"
  [[ "$(snmp6 cl1 Ip6FragCreates) $(snmp6 tep1 Ip6FragCreates)" == "$before" ]] ||
    fail "anytun's packets are fragmented (MTU $aty_mtu too large)"
}

# --- Measurements. Each sets `fig` (not printed: a command substitution would run it in a
# subshell, out of reach of the cleanup and of signals).
endpoints() { # mode -> "client-address host-address"
  case $1 in
    plain*) echo "$plain_cl1 $plain_host" ;;
    user | bpf) echo "$leased $host" ;;
    anytun) echo "$aty_cl1 $aty_host" ;;
  esac
}

tcp() { # mode up|down -> fig: Mbit/s at the receiver
  local src dst attempt out=$dir/iperf3-client.out
  read -r src dst <<<"$(endpoints "$1")"
  local args=(-c "$dst" -B "$src" -t "$seconds" -O 1 -f m --connect-timeout 5000)
  [[ $2 == down ]] && args+=(-R)
  # iperf3 -s sometimes refuses a test that follows the previous one at once ("connection reset
  # by peer", "the server is busy"): up to 3 attempts.
  for attempt in 1 2 3; do
    ip netns exec "${netns[cl1]}" timeout -k 5 $((seconds + 30)) iperf3 "${args[@]}" \
      </dev/null >"$out" 2>&1 &
    bg_pid=$!
    if wait "$bg_pid"; then
      bg_pid=
      fig=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }' "$out")
      return
    fi
    bg_pid=
    echo "tep_bench: iperf3 $1 $2 attempt $attempt failed: $(tail -n 1 "$out")" >&2
    pause 1
  done
  fail "iperf3 $1 $2: $(cat "$out")"
}

# Udp NoPorts of a namespace: UDP datagrams that arrived for a port nobody listens on.
noports() { in_ns "$1" awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $3 }' /proc/net/snmp; }

pps() { # mode up|down -> fig: packets/s arriving at the receiver
  local src dst gen dev mac receiver a b t0 t1
  read -r src dst <<<"$(endpoints "$1")"
  if [[ $2 == up ]]; then
    gen=cl1 dev=gen0 mac=$gen1_mac receiver=host
  else
    gen=host dev=$host_dev mac=$r4_mac receiver=cl1
    read -r dst src <<<"$src $dst"
  fi
  local cfg=$dir/trafgen.cfg
  echo "{ eth(da=$mac), ipv4(sa=$src, da=$dst, ttl=64, df), udp(sp=$udp_port, dp=$udp_port)," \
    "fill(0x41, 64) }" >"$cfg"
  # --no-sock-mem: leave the host's socket memory sysctls alone; -Q: no IRQ affinity changes;
  # -P 1: one generator process (the path needs the other vCPU); timeout bounds it (we stop it
  # with SIGINT, which timeout passes to trafgen's whole process group).
  ip netns exec "${netns[$gen]}" timeout -s INT -k 5 "$(awk -v w="$warm" -v s="$seconds" \
    'BEGIN { print w + s + 20 }')" trafgen --no-sock-mem -Q -C -P 1 -o "$dev" -i "$cfg" \
    </dev/null >"$dir/trafgen.log" 2>&1 &
  bg_pid=$!
  pause "$warm"
  gone "$bg_pid" && fail "trafgen $1 $2 stopped: $(cat "$dir/trafgen.log")"
  a=$(noports "$receiver") t0=$EPOCHREALTIME
  pause "$seconds"
  b=$(noports "$receiver") t1=$EPOCHREALTIME
  gone "$bg_pid" && fail "trafgen $1 $2 stopped early: $(cat "$dir/trafgen.log")"
  stop_traffic
  ((b > a)) || fail "no UDP packet arrived ($1 $2); trafgen: $(cat "$dir/trafgen.log")"
  fig=$(awk -v n=$((b - a)) -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", n / (t1 - t0) }')
}

# First packet to an unknown destination: tep2 has no binding for the leased address after a
# flush, so the host's first echo request waits for tep2's query to the server.
latency() { # backend count: appends "first second" lines to $dir/latency-<backend>
  local i out first second
  for ((i = 0; i < $2; i++)); do
    timeout 10 "$tep_ctl" --socket "$tep2_socket" flush >/dev/null || fail "tep-ctl flush failed"
    out=$(in_ns host ping -n -c 2 -i 0.2 -W 2 "$leased" 2>&1) || true
    first=$(echo "$out" | sed -nE 's/.*icmp_seq=1 .*time=([0-9.]+) ms.*/\1/p')
    second=$(echo "$out" | sed -nE 's/.*icmp_seq=2 .*time=([0-9.]+) ms.*/\1/p')
    if [[ -z $first || -z $second ]]; then
      lost[$1]=$((${lost[$1]:-0} + 1))
      continue
    fi
    echo "$first $second" >>"$dir/latency-$1"
  done
  # tep2's own view of its queries (GET /status server.query_latency) in this lab, as a check.
  query_latency[$1]=$(timeout 10 "$tep_ctl" --socket "$tep2_socket" status |
    grep -o '"query_latency":{[^}]*}' || true)
}

# Which path carried the tunnel's packets in a bpf lab: the fast path's counters (GET /status
# fast_path) against the user-space engine's (counters), summed over the labs into `carried`.
count_paths() {
  local d socket status section way
  for d in client1 tep1 tep2; do
    socket=$(info "socket_$d")
    status=$(timeout 10 "$tep_ctl" --socket "$socket" status 2>/dev/null || true)
    for section in counters fast_path; do
      for way in encapsulated decapsulated; do
        local v
        v=$(echo "$status" | grep -o "\"$section\":{[^}]*}" |
          sed -nE "s/.*\"$way\":([0-9]+).*/\1/p" | head -n 1 || true)
        [[ -n $v ]] || continue
        carried[$d.$section.$way]=$((${carried[$d.$section.$way]:-0} + v))
      done
    done
  done
}

# --- Rounds.
declare -A results=() lost=() query_latency=() carried=()
kinds=(tcp_up tcp_down pps_up pps_down)
declare -A unit=([tcp_up]="Mbit/s" [tcp_down]="Mbit/s" [pps_up]="pps" [pps_down]="pps")
per_round=$(((samples + rounds - 1) / rounds))
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS

run_lab() { # backend round modes...
  local backend=$1 r=$2 k v i m
  shift 2
  local lab_modes=("$@") order
  echo "tep_bench: round $r/$rounds, lab with the $backend backend (${lab_modes[*]})" >&2
  start_lab "$backend" "$r"
  [[ " ${lab_modes[*]} " == *" anytun "* ]] && start_anytun
  for ((k = 0; k < ${#kinds[@]}; k++)); do
    # Rotate the order from measurement to measurement and from round to round.
    order=()
    for ((i = 0; i < ${#lab_modes[@]}; i++)); do
      order+=("${lab_modes[$(((i + k + r) % ${#lab_modes[@]}))]}")
    done
    for m in "${order[@]}"; do
      local kind=${kinds[$k]}
      fig=
      "${kind%_*}" "${m%@*}" "${kind#*_}"
      v=$fig
      [[ $v =~ ^[0-9.]+$ ]] || fail "no figure from $kind $m ($v)"
      results[$m.$kind]+="$v "
      echo "tep_bench: round $r: $kind $m $v ${unit[$kind]}" >&2
    done
  done
  if [[ $backend == user && -n ${want[user]:-} ]] || [[ $backend == bpf ]]; then
    latency "$backend" "$per_round"
  fi
  [[ $backend == bpf ]] && count_paths
  stop_lab
  # The lab's last status table: the user-space counters show how much traffic took that path.
  echo "tep_bench: $backend lab's last status:" >&2
  tac "$lab_log" | sed -n '/^--- dstm-lab/q;p' | tac | sed 's/^/  /' >&2 || true
}

for ((r = 1; r <= rounds; r++)); do
  if [[ -n ${want[user]:-} || -n ${want[anytun]:-} ]]; then
    modes_a=(plain@user)
    [[ -n ${want[user]:-} ]] && modes_a+=(user)
    [[ -n ${want[anytun]:-} ]] && modes_a+=(anytun)
    run_lab user "$r" "${modes_a[@]}"
  fi
  [[ -n ${want[bpf]:-} ]] && run_lab bpf "$r" plain@bpf bpf
done
elapsed=$((SECONDS - started))

# --- Report.
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
  i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'; }
# Per-round quotients of two lists (a_i / b_i), space-separated.
quotients() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
  for (i = 1; i <= n; i++) if (y[i] > 0) printf "%g ", x[i] / y[i] }'; }
# "median (min-max)" of a list of ratios.
ratio_cell() {
  [[ -n ${1// /} ]] || return 0
  local m
  m=$(echo "$1" | median)
  awk -v m="$m" -v l="$1" 'BEGIN { n = split(l, v, " "); lo = v[1]; hi = v[1]
    for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
    if (n > 1) printf "%.2f (%.2f-%.2f)", m, lo, hi; else printf "%.2f", m }'
}
# A figure in the table's unit: Mbit/s whole, packets/s as kpps with one decimal.
figures() { # kind value...
  local kind=$1
  shift
  if [[ $kind == pps* ]]; then
    awk -v l="$*" 'BEGIN { n = split(l, v, " "); for (i = 1; i <= n; i++) printf "%s%.1f", (i > 1 ? ", " : ""), v[i] / 1000 }'
  else
    awk -v l="$*" 'BEGIN { n = split(l, v, " "); for (i = 1; i <= n; i++) printf "%s%.0f", (i > 1 ? ", " : ""), v[i] }'
  fi
}
declare -A label=(
  [tcp_up]="TCP cl1 -> host, Mbit/s (iperf3)"
  [tcp_down]="TCP host -> cl1, Mbit/s (iperf3 -R)"
  [pps_up]="UDP 64 B cl1 -> host, kpps received (trafgen)"
  [pps_down]="UDP 64 B host -> cl1, kpps received (trafgen)")
declare -A mode_label=([plain@user]="plain (user lab)" [user]="**user**" [anytun]="anytun"
  [plain@bpf]="plain (bpf lab)" [bpf]="**bpf**")

row() { # kind mode
  local kind=$1 m=$2 vals=${results[$2.$1]:-} plain over=
  [[ -n $vals ]] || return 0
  local cell_ratio=
  case $m in
    user | anytun) plain=${results[plain@user.$kind]} ;;
    bpf) plain=${results[plain@bpf.$kind]} ;;
  esac
  [[ $m == plain@* ]] || cell_ratio=$(ratio_cell "$(quotients "$vals" "$plain")")
  local aty=${results[anytun.$kind]:-}
  if [[ -n $aty && $m == user ]]; then
    over=$(ratio_cell "$(quotients "$vals" "$aty")")
  elif [[ -n $aty && $m == bpf ]]; then
    over=$(ratio_cell "$(quotients "$(quotients "$vals" "$plain")" \
      "$(quotients "$aty" "${results[plain@user.$kind]}")")")
  fi
  # The measurement's name on its first row only.
  local name=${label[$kind]}
  [[ $kind == "${last_kind:-}" ]] && name=
  last_kind=$kind
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "${mode_label[$m]}" \
    "$(figures "$kind" "$(echo "$vals" | median)")" "$(figures "$kind" "$vals")" "$cell_ratio" "$over"
}

echo
echo "TEP data path, $(date -u +%Y-%m-%d), $(nproc) vCPUs, kernel $(uname -r), load average" \
  "$load_before at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
  "$rounds round(s) of $seconds s per measurement, $((elapsed / 60)) min $((elapsed % 60)) s:"
echo
echo "| measurement | mode | median | per round | ratio to plain | ratio over anytun |"
echo "|---|---|---:|---|---:|---:|"
for kind in "${kinds[@]}"; do
  for m in plain@user user anytun plain@bpf bpf; do row "$kind" "$m"; done
done
[[ -n $skip_bpf ]] && echo "| (all) | bpf | skipped: $skip_bpf | | | |"
echo
echo "Ratio to plain: median (min-max) of the per-round ratios to the plain run of the same lab."
echo "Ratio over anytun: user, per round against anytun in the same lab; bpf, per round its ratio"
echo "to plain over anytun's ratio to plain."

have_latency=false
for b in user bpf; do [[ -s $dir/latency-$b ]] && have_latency=true; done
if $have_latency; then
  echo
  echo "| first packet to an unknown destination | backend | p50 | p99 |"
  echo "|---|---|---:|---:|"
  for b in user bpf; do
    f=$dir/latency-$b
    if [[ ! -s $f ]]; then
      [[ -n ${lost[$b]:-} ]] && fail "no latency sample for $b (all ${lost[$b]} lost)"
      continue
    fi
    n=$(wc -l <"$f")
    q=${query_latency[$b]:-}
    tq() { echo "$q" | sed -nE "s/.*\"$1\":([-0-9.eE+]+).*/\1/p" | awk '{ printf "%.3f", $1 }'; }
    printf '| extra RTT of the first ping after flushing tep2 (first - second; %s samples, %s lost) | %s | %s ms | %s ms |\n' \
      "$n" "${lost[$b]:-0}" "$b" "$(awk '{ print $1 - $2 }' "$f" | percentile 50)" \
      "$(awk '{ print $1 - $2 }' "$f" | percentile 99)"
    printf '| first RTT / second RTT | %s | %s / %s ms | |\n' "$b" \
      "$(awk '{ print $1 }' "$f" | percentile 50)" "$(awk '{ print $2 }' "$f" | percentile 50)"
    printf '| tep2 query latency by its own count (last lab, %s queries) | %s | %s ms | %s ms |\n' \
      "$(echo "$q" | sed -nE 's/.*"samples":([0-9]+).*/\1/p')" "$b" "$(tq p50_ms)" "$(tq p99_ms)"
  done
fi
if [[ -n ${want[bpf]:-} ]]; then
  echo
  echo "| bpf labs: tunnel packets by path (all rounds) | fast path | user space | fast path share |"
  echo "|---|---:|---:|---:|"
  for p in client1.encapsulated:"cl1 -> host: client 1 encapsulated" \
    tep1.decapsulated:"cl1 -> host: tep1 decapsulated" \
    tep2.encapsulated:"host -> cl1: tep2 encapsulated" \
    client1.decapsulated:"host -> cl1: client 1 decapsulated"; do
    key=${p%%:*} d=${key%.*} way=${key#*.}
    fast=${carried[$d.fast_path.$way]:-} user=${carried[$d.counters.$way]:-}
    share=$(awk -v f="${fast:-x}" -v u="${user:-0}" 'BEGIN {
      if (f == "x") print "-"; else if (f + u > 0) printf "%.0f %%", 100 * f / (f + u); else print "-" }')
    printf '| %s | %s | %s | %s |\n' "${p#*:}" "${fast:-not reported}" "${user:--}" "$share"
    # Over 1000 packets: more than the keepalives and the latency pings.
    warn=false
    if ((${user:-0} > 1000)); then
      [[ -z $fast ]] && warn=true
      [[ $share == *% ]] && ((${share% %} < 50)) && warn=true
    fi
    if $warn; then
      echo "tep_bench: warning: in the bpf labs, most of ${p#*:} went through user space" \
        "(fast path ${fast:-not reported}, user space ${user:-0})" >&2
    fi
  done
fi
echo
echo "tep_bench: ok"
