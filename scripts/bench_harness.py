#!/usr/bin/env python3
"""Harnesses for scripts/bench.sh (python3, standard library only).

Each subcommand prints one JSON object on stdout and cleans up what it
started, by pid:

  sleepers N MARKER READY_FILE   spawn N sleepers whose argv[0] is MARKER,
                                 write READY_FILE, wait for SIGTERM, then
                                 SIGKILL and reap exactly those pids
  storm N INITKIT MANIFEST DAEMON SOCKET
                                 P4: release N `initkit exec` at once
  restarts MODE SOCKET ...       P5: 50 looping clients while the daemon is
                                 restarted 20 times
  coldstart N SOCKET UNIT        P6: connect -> first reply with the service
                                 stopped (the socket unit listening)
  row ID FILE... [MEASURE [CHECK]]
                                 one table row (JSON) from hyperfine's
                                 --export-json or a harness's output
  table RESULTS                  print the table from the JSON lines in RESULTS
"""

import errno
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def ping(path, timeout=20.0):
    """One request: connect, `ping`, read `pong <pid>`. Returns the pid."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"ping\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionResetError("closed before a reply")
            data += chunk
        words = data.decode().split()
        if len(words) != 2 or words[0] != "pong":
            raise ValueError("unexpected reply %r" % data)
        return int(words[1])
    finally:
        s.close()


def alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def percentile(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


# --- P1: a process table of sleepers ---------------------------------------


def sleepers(n, marker, ready_file):
    pids = []
    stop = threading.Event()

    def on_term(_sig, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        for _ in range(n):
            if stop.is_set():
                break
            # argv[0] is the marker: every sleeper is identifiable.
            pids.append(os.posix_spawn("/bin/sleep", [marker, "3600"], {}))
        with open(ready_file + ".tmp", "w") as f:
            f.write("%d\n" % len(pids))
        os.rename(ready_file + ".tmp", ready_file)
        while not stop.is_set():
            stop.wait(1.0)
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    print(json.dumps({"spawned": len(pids)}))


# --- P4: a storm of off-init starts ----------------------------------------


def storm(n, initkit, manifest, daemon, sock):
    """Fork n children that block on a pipe, release them at once, and time
    each one's exit. Exactly one must still run (the winner, now the daemon)."""
    r, w = os.pipe()
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)  # returns b"" once the parent closes w
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                os.execv(initkit, [initkit, "exec", "--manifest", manifest, "--", daemon])
            finally:
                os._exit(127)
        pids.append(pid)
    os.close(r)
    time.sleep(0.2)  # let every child reach its read
    t0 = time.monotonic()
    os.close(w)
    exited = {}
    deadline = t0 + 10.0
    try:
        while len(exited) < n - 1 and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.001)
                continue
            exited[pid] = (time.monotonic() - t0, os.waitstatus_to_exitcode(status))
        survivors = [p for p in pids if p not in exited and alive(p)]
        answered_by = None
        if len(survivors) == 1:
            try:
                answered_by = ping(sock, timeout=5.0)
            except OSError as e:
                answered_by = "error: %s" % e
        loser_ms = [t * 1000.0 for (t, _code) in exited.values()]
        codes = sorted({code for (_t, code) in exited.values()})
        result = {
            "n": n,
            "survivors": len(survivors),
            "survivor_answers": answered_by == (survivors[0] if survivors else None),
            "loser_exit_codes": codes,
            "losers": len(exited),
            "loser_ms": loser_ms,
        }
    finally:
        for pid in pids:
            if pid not in exited:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in pids:
            if pid not in exited:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
    print(json.dumps(result))


# --- P5: restarts under load -----------------------------------------------


class Load:
    """`clients` threads, each looping connect -> ping -> reply."""

    def __init__(self, path, clients):
        self.path = path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "refused": 0, "reset": 0, "other": 0}
        self.pids = set()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(clients)]

    def add(self, key, pid=None):
        with self.lock:
            self.counts[key] += 1
            if pid is not None:
                self.pids.add(pid)

    def loop(self):
        while not self.stop.is_set():
            try:
                self.add("ok", ping(self.path, timeout=20.0))
            except (ConnectionRefusedError, FileNotFoundError):
                # What a client sees while nobody holds the socket.
                self.add("refused")
                time.sleep(0.001)
            except (ConnectionResetError, BrokenPipeError):
                # Accepted, then the daemon stopped mid-request.
                self.add("reset")
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    self.add("refused")
                else:
                    self.add("other")
                time.sleep(0.001)
            except ValueError:
                self.add("other")

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def wait_for(check, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def restarts(mode, sock, restarts_n, clients, rest):
    """mode `activated`: rest = [INITKIT, NAME]; each restart is
    `initkit restart NAME` (the socket unit keeps listening).
    mode `self`: rest = [DAEMON]; the daemon binds its own socket
    (`--bind SOCK`) and this harness restarts it: SIGTERM, reap, start again."""
    child = None

    def start_self():
        p = subprocess.Popen([rest[0], "--bind", sock], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p

    failures = []
    try:
        if mode == "self":
            child = start_self()
            if not wait_for(lambda: os.path.exists(sock), 5.0):
                raise SystemExit("self-binding daemon did not bind %s" % sock)
        else:
            ping(sock)  # start it once: restarts then replace a running daemon
        t0 = time.monotonic()
        with Load(sock, clients) as load:
            time.sleep(0.3)
            for _ in range(restarts_n):
                if mode == "self":
                    child.send_signal(signal.SIGTERM)
                    child.wait(10)
                    child = start_self()
                else:
                    r = subprocess.run([rest[0], "restart", rest[1]], capture_output=True)
                    if r.returncode != 0:
                        failures.append(r.stderr.decode(errors="replace").strip())
                time.sleep(0.1)
            time.sleep(0.3)
        elapsed = time.monotonic() - t0
        result = dict(load.counts)
        result.update({"mode": mode, "restarts": restarts_n, "clients": clients,
                       "distinct_pids": len(load.pids), "secs": elapsed,
                       "restart_failures": failures})
    finally:
        if child is not None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    print(json.dumps(result))


# --- P6: cold start through socket activation ------------------------------


def coldstart(n, sock, unit, systemctl):
    cold, warm = [], []
    for _ in range(n):
        subprocess.run(systemctl + ["stop", unit], check=True, capture_output=True)
        state = lambda: subprocess.run(systemctl + ["show", "-P", "ActiveState", unit],
                                       capture_output=True, text=True).stdout.strip()
        if not wait_for(lambda: state() == "inactive", 10.0):
            raise SystemExit("%s did not stop" % unit)
        t0 = time.perf_counter()
        ping(sock)
        cold.append((time.perf_counter() - t0) * 1000.0)
        t0 = time.perf_counter()
        ping(sock)
        warm.append((time.perf_counter() - t0) * 1000.0)
    print(json.dumps({"cold_ms": cold, "warm_ms": warm}))


# --- rows and the table ------------------------------------------------------


def ms(v):
    return "%.2f ms" % v


def hyperfine_row(rid, path, measure):
    """hyperfine JSON with two commands: [0] measured, [1] the baseline."""
    with open(path) as f:
        res = json.load(f)["results"]
    m, b = res[0], res[1]
    row = {
        "id": rid,
        "measure": measure,
        "median": ms(m["median"] * 1000),
        "min": ms(m["min"] * 1000),
        "max": ms(m["max"] * 1000),
        "baseline": ms(b["median"] * 1000),
        "ratio": "%.2f" % (m["median"] / b["median"]),
    }
    return row, m["median"] * 1000, b["median"] * 1000


def row(rid, files, extra):
    if rid in ("P1", "P3"):
        r, med, base = hyperfine_row(rid, files[0], extra[0])
        check = extra[1] if len(extra) > 1 else "ok"
        r["target"] = "ratio <= 1.0"
        ok = med <= base and check == "ok"
        if check != "ok":
            r["measure"] += " [" + check + "]"
        r["met"] = "yes" if ok else "no"
    elif rid == "P2":
        r, med, base = hyperfine_row(rid, files[0], extra[0])
        r["target"] = "added <= 1.5 ms"
        r["measure"] += " added %.2f ms" % (med - base)
        r["met"] = "yes" if med - base <= 1.5 else "no"
    elif rid == "P4":
        out = json.load(open(files[0]))
        t = out["loser_ms"] or [float("nan")]
        r = {
            "id": rid,
            "measure": "%s: %d survivor(s) (answers: %s), %d losers exited %s"
            % (extra[0], out["survivors"], "yes" if out["survivor_answers"] else "no",
               out["losers"], out["loser_exit_codes"]),
            "median": ms(statistics.median(t)), "min": ms(min(t)), "max": ms(max(t)),
            "baseline": "-", "ratio": "-",
            "target": "1 survivor, losers <= 500 ms",
        }
        ok = (out["survivors"] == 1 and out["survivor_answers"] and out["losers"] == out["n"] - 1
              and max(t) <= 500.0 and out["loser_exit_codes"] == [0])
        r["met"] = "yes" if ok else "no"
    elif rid == "P5":
        a = json.load(open(files[0]))
        b = json.load(open(files[1]))
        fmt = lambda o: "%d refused" % o["refused"]
        r = {
            "id": rid,
            "measure": "%d restarts, %d clients: activated %d ok/%d reset; self-binding %d ok/%d reset%s"
            % (a["restarts"], a["clients"], a["ok"], a["reset"], b["ok"], b["reset"],
               "; restart failures: %d" % len(a["restart_failures"]) if a["restart_failures"] else ""),
            "median": fmt(a), "min": "-", "max": "-",
            "baseline": fmt(b), "ratio": "-",
            "target": "0 refused",
        }
        r["met"] = "yes" if a["refused"] == 0 and a["other"] == 0 and not a["restart_failures"] else "no"
    elif rid == "P6":
        out = json.load(open(files[0]))
        cold, warm = out["cold_ms"], out["warm_ms"]
        r = {
            "id": rid,
            "measure": "cold connect->reply, n=%d, p95 %s (baseline: warm request)"
            % (len(cold), ms(percentile(cold, 95))),
            "median": ms(statistics.median(cold)), "min": ms(min(cold)), "max": ms(max(cold)),
            "baseline": ms(statistics.median(warm)),
            "ratio": "%.1f" % (statistics.median(cold) / statistics.median(warm)),
            "target": "report median, p95", "met": "reported",
        }
    else:
        raise SystemExit("unknown row %s" % rid)
    print(json.dumps(r))


# --- the table ---------------------------------------------------------------


def table(results_path):
    rows = []
    with open(results_path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    rows.sort(key=lambda r: r.get("id", ""))
    head = ["id", "measure", "median", "min", "max", "baseline median", "ratio", "target", "met?"]
    cells = [head]
    for r in rows:
        cells.append([str(r.get(k, "")) for k in
                      ["id", "measure", "median", "min", "max", "baseline", "ratio", "target", "met"]])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for i, c in enumerate(cells):
        print("  ".join(v.ljust(widths[j]) for j, v in enumerate(c)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    misses = [r["id"] for r in rows if r.get("met") == "no"]
    return 1 if misses else 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    a = argv[2:]
    if cmd == "sleepers":
        sleepers(int(a[0]), a[1], a[2])
    elif cmd == "storm":
        storm(int(a[0]), a[1], a[2], a[3], a[4])
    elif cmd == "restarts":
        restarts(a[0], a[1], int(a[2]), int(a[3]), a[4:])
    elif cmd == "coldstart":
        coldstart(int(a[0]), a[1], a[2], ["systemctl", "--user"])
    elif cmd == "row":
        rid = a[0]
        nfiles = 2 if rid == "P5" else 1
        row(rid, a[1:1 + nfiles], a[1 + nfiles:])
    elif cmd == "table":
        return table(a[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
