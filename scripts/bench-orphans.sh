#!/usr/bin/env bash
# Benchmark `initkit orphans` against `pgrep -f` over a large process table.
#
#   scripts/bench-orphans.sh [N]      (default N = 10000)
#
# Starts N `sleep` processes (children of this script's python helper, killed
# by pid at the end), then measures the CPU time (user + sys, best of 5) of
# one `initkit orphans` scan for a manifest whose match rule hits nothing and
# of `pgrep -f` for the same pattern. Exits 1 when initkit is slower. Needs a release build
# (cargo build --release) and XDG_RUNTIME_DIR for the user manager (without
# one the scan runs off-init, which is also fine).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
BIN=${INITKIT_BIN:-target/release/initkit}
[ -x "$BIN" ] || { echo "bench-orphans: build first: cargo build --release" >&2; exit 2; }
exec python3 - "$BIN" "$N" <<'PY'
import os, subprocess, sys, tempfile, time
bin_, n = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory(prefix="ikt-bench-") as d:
    manifest = os.path.join(d, "bench.toml")
    with open(manifest, "w") as f:
        f.write('name = "ikt-bench"\ncommand = ["/usr/bin/sleep", "987654"]\n'
                '[orphans]\nmatch = ["/usr/bin/sleep", "987654"]\n')
    procs = [subprocess.Popen(["/usr/bin/sleep", "600"]) for _ in range(n)]
    try:
        time.sleep(1)
        def best(cmd):
            # CPU time (user + sys) of the child: wall time on a busy
            # machine measures the other load as much as the command.
            t = 1e9
            for _ in range(5):
                pid = os.fork()
                if pid == 0:
                    fd = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(fd, 1)
                    os.execv(cmd[0] if cmd[0].startswith("/") or "/" in cmd[0] else
                             subprocess.check_output(["which", cmd[0]], text=True).strip(), cmd)
                _, status, ru = os.wait4(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                if code not in (0, 1):
                    sys.exit(f"{cmd} exited {code}")
                t = min(t, ru.ru_utime + ru.ru_stime)
            return t
        total = sum(1 for e in os.listdir("/proc") if e.isdigit())
        ik = best([bin_, "orphans", manifest])
        pg = best(["pgrep", "-f", "/usr/bin/sleep 987654"])
        print(f"{total} processes, CPU time (best of 5): initkit orphans {ik*1000:.0f} ms, pgrep -f {pg*1000:.0f} ms")
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
sys.exit(0 if ik < pg else 1)
PY
