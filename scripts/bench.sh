#!/usr/bin/env bash
# Benchmarks P1..P6 of issue 7, each against a baseline measured in the same
# run (absolute times on a shared machine are noisy; the ratios carry over).
#
#   scripts/bench.sh                  # release build, then one table on stdout
#   BENCH_PROCS=5000 scripts/bench.sh # P1 over a smaller process table
#   BENCH_RUNS=120 BENCH_COLD=40 scripts/bench.sh  # more hyperfine runs (P2, P3) / cold starts (P6)
#   BENCH_ONLY="P2 P3" scripts/bench.sh            # some rows only
#
# Needs root for scripts/user-manager.sh (a real systemd user manager),
# hyperfine (installed here when missing) and python3. Everything started
# here is stopped by pid (trap on EXIT); installed units are uninstalled.
# Exit status: 0 every target met, 1 a target missed or a row failed, 2 error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { echo "bench: $*" >&2; }

# --- prerequisites ---------------------------------------------------------
scripts/setup.sh
if ! command -v hyperfine >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    log "hyperfine is missing (apt-get install hyperfine)"; exit 2
  fi
  log "installing hyperfine"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
fi
export XDG_RUNTIME_DIR
XDG_RUNTIME_DIR=$(scripts/user-manager.sh start)
unset DBUS_SESSION_BUS_ADDRESS
# as users run it: no backtrace capture on error paths
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

log "cargo build --release --examples --bins"
cargo build -q --release --examples --bins
initkit=$root/target/release/initkit
daemon=$root/target/release/examples/echo_daemon
harness=$root/scripts/bench_harness.py

# --- cleanup: everything by pid --------------------------------------------
# Rows run in subshells; what they start is recorded in files, so the trap of
# this shell can stop it.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/initkit-bench.XXXXXX")
: >"$tmp/pids"
: >"$tmp/installed"
track() { echo "$1" >>"$tmp/pids"; }
untrack() { grep -vx "$1" "$tmp/pids" >"$tmp/pids.new" || true; mv "$tmp/pids.new" "$tmp/pids"; }
stop_pid() { # PID: SIGTERM, wait up to 30 s (a sleeper spawner reaps 10,000 children), SIGKILL
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local pid name
  while read -r pid; do stop_pid "$pid"; done <"$tmp/pids"
  while read -r name; do
    "$initkit" uninstall "$name" >/dev/null 2>&1 || log "cleanup: uninstall $name failed"
  done <"$tmp/installed"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

results=$tmp/results.jsonl
: >"$results"
runs=${BENCH_RUNS:-60}
id=$$

# A manifest for the example daemon: one unix socket, readiness notify. The
# start limit and the socket's trigger limit (systemd's default: 20 per 2 s,
# then the socket fails with trigger-limit-hit and resets queued clients) are
# lifted: P6 starts the service 20 times in a few seconds.
manifest() { # NAME COMMAND SOCKET LOCK
  cat <<EOF
name = "$1"
command = ["$2"]
readiness = "notify"
start-timeout = 10

[restart]
policy = "on-failure"

[[socket]]
name = "control"
listen = "unix:$3"

[orphans]
lock = "$4"

[systemd.unit]
StartLimitIntervalSec = "0"

[systemd.socket]
TriggerLimitIntervalSec = "0"
EOF
}

# hyperfine in interleaved rounds (command, baseline, command, ...): on a
# shared machine the load drifts, and one long block per command would
# measure the drift. The rounds' times are merged into one JSON.
hyper() { # JSON CMD BASELINE [extra hyperfine args]
  local json=$1 cmd=$2 base=$3 round rounds=${BENCH_ROUNDS:-6}; shift 3
  local per=$(( (runs + rounds - 1) / rounds ))
  for round in $(seq 1 "$rounds"); do
    hyperfine -N --style none --warmup 2 --runs "$per" --export-json "$json.$round" "$@" "$cmd" "$base" >/dev/null
  done
  python3 "$harness" merge "$json" "$json".*
}

# --- P1: orphans over a 10,000-process table --------------------------------
p1() {
  local procs=${BENCH_PROCS:-10000} orph=ikbench-$id-orph now total grow spawner copy check
  cp "$daemon" "$tmp/orphan_daemon" # its own argv prefix: nothing else matches it
  manifest "$orph" "$tmp/orphan_daemon" "{runtime}/$orph.sock" "{runtime}/$orph.lock" >"$tmp/orph.toml"
  # The service, socket-activated and running (the classifier must tell its
  # daemon, in the unit's cgroup and holding the socket, from an orphan)...
  echo "$orph" >>"$tmp/installed"
  "$initkit" install "$tmp/orph.toml" >/dev/null 2>&1
  python3 -c "import sys; sys.path.insert(0, '$root/scripts'); import bench_harness as h; h.ping('$XDG_RUNTIME_DIR/$orph.sock')"
  # ...and a copy started by hand, binding a socket and lock of its own: the orphan.
  "$tmp/orphan_daemon" --bind "$tmp/copy.sock" --lock "$tmp/copy.lock" 2>/dev/null &
  copy=$!
  track "$copy"
  for _ in $(seq 1 100); do [ -S "$tmp/copy.sock" ] && break; sleep 0.05; done
  now=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
  grow=$((procs > now ? procs - now : 0))
  log "P1: growing the process table from $now to $procs processes"
  python3 "$harness" sleepers "$grow" "ikbench-sleeper-$id" "$tmp/sleepers.ready" >/dev/null &
  spawner=$!
  track "$spawner"
  for _ in $(seq 1 600); do [ -e "$tmp/sleepers.ready" ] && break; sleep 0.1; done
  [ -e "$tmp/sleepers.ready" ] || { log "sleepers did not start"; return 1; }
  total=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
  # correctness first: exactly the copy is an orphan; pgrep sees both
  "$initkit" orphans "$orph" --json >"$tmp/p1.out" || true
  check=$(python3 - "$tmp/p1.out" "$copy" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))["findings"]
ok = len(f) == 1 and f[0]["pid"] == int(sys.argv[2]) and len(f[0]["evidence"]) >= 2
print("ok" if ok else "wrong findings: %s" % json.dumps(f)[:300])
EOF
)
  [ "$(pgrep -fc "$tmp/orphan_daemon")" = 2 ] || { log "pgrep does not see both copies"; return 1; }
  runs=${BENCH_P1_RUNS:-24} hyper "$tmp/p1.json" "$initkit orphans $orph --json" "pgrep -f $tmp/orphan_daemon" -i 2>/dev/null
  python3 "$harness" row P1 "$tmp/p1.json" "orphans NAME --json, $total procs (vs pgrep -f)" "$check" >>"$results"
  # shrink the table again before the other rows
  stop_pid "$spawner"
  untrack "$spawner"
}

# --- P2: exec overhead off-init ---------------------------------------------
p2() {
  manifest "ikbench-$id-exec" "$daemon" "$tmp/exec.sock" "$tmp/exec.lock" >"$tmp/exec.toml"
  log "P2: initkit exec off-init"
  hyper "$tmp/p2.json" "$initkit exec --manifest $tmp/exec.toml -- /bin/true" "/bin/true"
  python3 "$harness" row P2 "$tmp/p2.json" "exec --manifest M -- /bin/true (vs /bin/true)" >>"$results"
}

# --- P4: 100 concurrent off-init starts --------------------------------------
p4() {
  manifest "ikbench-$id-storm" "$daemon" "$tmp/storm.sock" "$tmp/storm.lock" >"$tmp/storm.toml"
  log "P4: 100 concurrent initkit exec"
  python3 "$harness" storm 100 "$initkit" "$tmp/storm.toml" "$daemon" "$tmp/storm.sock" >"$tmp/p4.out"
  python3 "$harness" row P4 "$tmp/p4.out" "100 concurrent exec off-init" >>"$results"
}

# --- an installed, socket-activated service for P3, P5, P6 ------------------
svc=ikbench-$id
sock=$XDG_RUNTIME_DIR/$svc.sock
install_svc() {
  manifest "$svc" "$daemon" "{runtime}/$svc.sock" "{runtime}/$svc.lock" >"$tmp/$svc.toml"
  log "installing $svc under the user manager"
  echo "$svc" >>"$tmp/installed"
  "$initkit" install "$tmp/$svc.toml" >/dev/null 2>&1
  python3 -c "import sys; sys.path.insert(0, '$root/scripts'); import bench_harness as h; h.ping('$sock')"
}

p3() {
  log "P3: initkit status vs systemctl --user show"
  hyper "$tmp/p3.json" "$initkit status $svc --json" "systemctl --user show $svc.service" -i 2>/dev/null
  python3 "$harness" row P3 "$tmp/p3.json" "status NAME --json (vs systemctl --user show)" >>"$results"
}

p5() {
  log "P5: 20 restarts under 50 clients, activated and self-binding"
  python3 "$harness" restarts activated "$sock" 20 50 "$initkit" "$svc" >"$tmp/p5a.out"
  python3 "$harness" restarts self "$tmp/self.sock" 20 50 "$daemon" >"$tmp/p5b.out"
  python3 "$harness" row P5 "$tmp/p5a.out" "$tmp/p5b.out" >>"$results"
}

p6() {
  log "P6: cold start through socket activation"
  python3 "$harness" coldstart "${BENCH_COLD:-20}" "$sock" "$svc.service" >"$tmp/p6.out"
  python3 "$harness" row P6 "$tmp/p6.out" >>"$results"
}

# Each row runs in a subshell with -e: a failing row is reported in the table
# and the others still run.
row() { # ID FUNCTION
  case " ${BENCH_ONLY:-P1 P2 P3 P4 P5 P6} " in *" $1 "*) ;; *) return 0 ;; esac
  set +e
  (set -e; "$2")
  local rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    log "$1 failed (exit $rc)"
    printf '{"id": "%s", "measure": "failed (exit %s), see stderr", "met": "no"}\n' "$1" "$rc" >>"$results"
  fi
}

row P1 p1
row P2 p2
row P4 p4
case " ${BENCH_ONLY:-P3} " in *" P3 "*|*" P5 "*|*" P6 "*) install_svc ;; esac
row P3 p3
row P5 p5
row P6 p6

echo "# initkit bench: $(nproc) cpus, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
set +e
python3 "$harness" table "$results"
status=$?
set -e
exit "$status"
