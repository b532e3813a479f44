#!/usr/bin/env bash
# dstm-supervise (docs/firmware.md, "The supervisor") with stand-in daemons: a daemon that keeps
# failing is started again with backoff and given up after 5 quick failures; a change of one
# daemon's config section restarts that daemon and no other, and one marked '~' gets SIGHUP
# instead (it reloads itself); an optional daemon starts when its section appears and stops when
# it goes; SIGTERM stops every daemon and the supervisor.
#
#   supervise_test.sh DSTM_SUPERVISE
set -euo pipefail
supervise=${1:?usage: supervise_test.sh DSTM_SUPERVISE}
dir=$(mktemp -d /tmp/dstm-supervise-test.XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "supervise_test: FAIL: $*"
  cat "$dir/status" "$dir/supervise.log" 2>/dev/null || true
  exit 1
}
# Waits up to $1 s for the command after it to succeed.
await() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}
starts() { if [[ -f $dir/$1.starts ]]; then wc -l <"$dir/$1.starts"; else echo 0; fi; }
state() { awk -v n="$1" '$1 == n { print $2 }' "$dir/status" 2>/dev/null; }
has_starts() { [[ $(starts "$1") == "$2" ]]; }
in_state() { [[ $(state "$1") == "$2" ]]; }
set_config() {  # atomically, as dstm-web writes it
  printf '%s\n' "$1" >"$dir/config.tmp"
  mv "$dir/config.tmp" "$dir/config.json"
}

# A stand-in daemon: counts its starts, then runs or fails.
cat >"$dir/daemon.sh" <<SCRIPT
#!/bin/sh
echo started >>"$dir/\$1.starts"
[ "\$2" = fail ] && exit 3
exec sleep 1000
SCRIPT
# One that reloads on SIGHUP: counts its starts and its reloads.
cat >"$dir/reloader.sh" <<SCRIPT
#!/bin/sh
echo started >>"$dir/\$1.starts"
trap 'echo reload >>"$dir/\$1.reloads"' HUP
while :; do sleep 1 & wait \$!; done
SCRIPT
cat >"$dir/services" <<SERVICES
# name section command
steady  /a   /bin/sh $dir/daemon.sh steady run
other   /b   /bin/sh $dir/daemon.sh other run
late    ?/c  /bin/sh $dir/daemon.sh late run
flappy  -    /bin/sh $dir/daemon.sh flappy fail
hupper  ~/d  /bin/sh $dir/reloader.sh hupper
SERVICES
set_config '{"a": {"v": 1}, "b": {"v": 1}, "d": {"v": 1}}'

"$supervise" --status "$dir/status" --log-dir "$dir" "$dir/services" "$dir/config.json" \
  >"$dir/supervise.log" 2>&1 &
pid=$!

await 10 has_starts steady 1 || fail "steady did not start"
await 10 has_starts other 1 || fail "other did not start"
in_state late absent || fail "late started without its section"

# Backoff 1, 2, 4, 8 s between the five quick failures, then given up.
await 40 in_state flappy given-up || fail "flappy was not given up"
has_starts flappy 5 || fail "flappy started $(starts flappy) times, not 5"
grep -q "flappy: .*given up" "$dir/supervise.log" || fail "giving up was not reported"

set_config '{"a": {"v": 2}, "b": {"v": 1}, "d": {"v": 1}}'
await 15 has_starts steady 2 || fail "a change of /a did not restart steady"
has_starts other 1 || fail "a change of /a restarted other"
await 5 in_state steady running || fail "steady is not running after its restart"

set_config '{"a": {"v": 2}, "b": {"v": 1}, "d": {"v": 1}, "c": {}}'
await 15 has_starts late 1 || fail "late did not start when /c appeared"
set_config '{"a": {"v": 2}, "b": {"v": 1}, "d": {"v": 1}}'
await 15 in_state late absent || fail "late did not stop when /c went"

# hupper has run for over 15 s (flappy's backoff): a change of /d is a SIGHUP, not a restart.
reloads() { if [[ -f $dir/$1.reloads ]]; then wc -l <"$dir/$1.reloads"; else echo 0; fi; }
has_reloads() { [[ $(reloads "$1") == "$2" ]]; }
set_config '{"a": {"v": 2}, "b": {"v": 1}, "d": {"v": 2}}'
await 15 has_reloads hupper 1 || fail "a change of /d did not send hupper SIGHUP"
has_starts hupper 1 || fail "a change of /d restarted hupper ($(starts hupper) starts)"
grep -q "hupper: its section /d changed; asking it to reload (SIGHUP)" "$dir/supervise.log" ||
  fail "the reload was not reported"

pids=$(awk '$3 > 0 { print $3 }' "$dir/status")
kill "$pid"
await 15 bash -c "! kill -0 $pid 2>/dev/null" || fail "the supervisor did not stop on SIGTERM"
wait "$pid" || fail "the supervisor exited with status $?"
pid=
for p in $pids; do
  ! kill -0 "$p" 2>/dev/null || fail "daemon $p outlived the supervisor"
done
echo "supervise_test: PASS"
