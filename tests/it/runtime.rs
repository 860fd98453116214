//! The daemon runtime with real parents and real processes:
//! systemd-socket-activate, the systemd user manager, `initkit exec` off-init
//! feeding unmodified third-party daemons (python3, dbus-daemon), the guard
//! under a 100-process storm, a removed state dir, stale paths, and a forking
//! wrapper.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, echo_daemon, initkit, wait_until};

/// A child process killed (by its pid) and reaped when the test ends.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        Proc(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The exit status within `secs`, or `None` while it still runs.
    fn wait_secs(&mut self, secs: f64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        unsafe { libc::kill(pid, sig) };
    }

    fn stderr(mut self) -> String {
        if self.0.try_wait().unwrap().is_none() {
            self.signal(libc::SIGKILL);
        }
        let _ = self.0.wait();
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// Run a starter that must exit on its own (it lost, or refused). If it is
/// still running after `secs` (say, it started a daemon it should not have),
/// it is killed and the test fails instead of hanging.
fn finish(cmd: &mut Command, secs: f64) -> (Option<i32>, String) {
    let mut p = Proc::spawn(cmd.stdout(Stdio::null()).stderr(Stdio::piped()));
    let status = p.wait_secs(secs);
    let err = p.stderr();
    let Some(status) = status else {
        panic!("still running after {secs} s, it should have exited; stderr: {err}");
    };
    (status.code(), err)
}

/// Listening rows for `path` in /proc/net/unix.
fn listening_rows(path: &Path) -> usize {
    let text = std::fs::read_to_string("/proc/net/unix").unwrap();
    let want = path.to_str().unwrap();
    text.lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() >= 8
                && f[7] == want
                && u32::from_str_radix(f[3], 16).is_ok_and(|flags| flags & 0x10000 != 0)
        })
        .count()
}

/// Send `ping`, return the answer line (trimmed) or `None`.
fn ping(path: &Path) -> Option<String> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"ping\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    Some(line.trim().to_owned()).filter(|l| !l.is_empty())
}

/// Whether `pid` holds an exclusive flock on `path`, per /proc/locks
/// (`1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF`).
fn holds_flock(pid: u32, path: &Path) -> bool {
    let ino = inode(path).expect("lock file exists");
    let text = std::fs::read_to_string("/proc/locks").unwrap();
    text.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 6
            && f[1] == "FLOCK"
            && f[3] == "WRITE"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(&ino.to_string())
    })
}

fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// A temp tree with the XDG directories a user-scope manifest resolves.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("ikt-rt").tempdir().unwrap();
        for sub in ["home", "run", "state"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn sock(&self) -> PathBuf {
        self.path("run/echo.sock")
    }

    /// A manifest with one unix socket `control` at `{runtime}/echo.sock`
    /// and the lock in `{state}`; `extra` is appended.
    fn manifest(&self, extra: &str) -> PathBuf {
        let path = self.path("echo.toml");
        let text = format!(
            "name = \"echo\"\ncommand = [\"{}\"]\n[[socket]]\nname = \"control\"\nlisten = \"unix:{{runtime}}/echo.sock\"\n[orphans]\nlock = \"{{state}}/echo/echo.lock\"\n{extra}",
            echo_daemon().display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `initkit exec --manifest M [flags] -- argv` with this sandbox's XDG dirs.
    fn exec(&self, manifest: &Path, flags: &[&str], argv: &[&Path]) -> Command {
        let mut cmd = initkit();
        cmd.arg("exec")
            .arg("--manifest")
            .arg(manifest)
            .args(flags)
            .arg("--");
        cmd.args(argv);
        self.env(&mut cmd);
        cmd
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_STATE_HOME", self.path("state"))
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET");
    }
}

fn pong_of(pid: u32) -> String {
    format!("pong {pid}")
}

#[test]
fn systemd_socket_activate_launches_the_example_daemon() {
    let sb = Sandbox::new();
    let sock = sb.sock();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&sock)
        .arg("--fdname=control")
        .arg(echo_daemon());
    sb.env(&mut cmd);
    let sa = Proc::spawn(cmd.stderr(Stdio::null()));
    assert!(
        wait_until(5.0, || sock.exists()),
        "no socket at {}",
        sock.display()
    );
    // systemd-socket-activate execs the daemon in place: same pid.
    assert_eq!(ping(&sock), Some(pong_of(sa.pid())));
    assert_eq!(listening_rows(&sock), 1);
}

#[test]
fn systemd_socket_activate_passes_through_initkit_exec() {
    let sb = Sandbox::new();
    let sock = sb.sock();
    let m = sb.manifest("");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(&sock)
        .arg("--fdname=control")
        .arg(env!("CARGO_BIN_EXE_initkit"))
        .args(["exec", "--manifest"])
        .arg(&m)
        .arg("--")
        .arg(echo_daemon());
    sb.env(&mut cmd);
    let sa = Proc::spawn(cmd.stderr(Stdio::null()));
    assert!(wait_until(5.0, || sock.exists()));
    assert_eq!(
        ping(&sock),
        Some(pong_of(sa.pid())),
        "initkit exec kept the pid"
    );
    assert!(
        !sb.path("state/echo/echo.lock").exists(),
        "under an init system the guard is not used"
    );
}

#[test]
fn wrapper_fork_is_refused_loudly_with_exit_3() {
    for via_exec in [false, true] {
        let sb = Sandbox::new();
        let sock = sb.sock();
        let m = sb.manifest("");
        // sh forks the daemon because a command follows it.
        let script = if via_exec {
            "\"$1\" exec --manifest \"$2\" -- \"$3\"; echo \"exit=$?\" >&2; true"
        } else {
            "\"$3\"; echo \"exit=$?\" >&2; true"
        };
        let mut cmd = Command::new("systemd-socket-activate");
        cmd.arg("-l")
            .arg(&sock)
            .arg("--fdname=control")
            .args(["/bin/sh", "-c", script, "sh"])
            .arg(env!("CARGO_BIN_EXE_initkit"))
            .arg(&m)
            .arg(echo_daemon())
            .stderr(Stdio::piped());
        sb.env(&mut cmd);
        let mut sa = Proc::spawn(&mut cmd);
        assert!(wait_until(5.0, || sock.exists()));
        // The first connection makes systemd-socket-activate exec the wrapper.
        let _conn = UnixStream::connect(&sock).unwrap();
        let status = sa.wait_secs(10.0).expect("the wrapper ends");
        assert!(status.success(), "sh ends with `true`");
        assert_eq!(listening_rows(&sock), 0, "no second listener appeared");
        assert!(
            !sb.path("state/echo").exists(),
            "the guard never ran: no lock, nothing bound"
        );
        let err = sa.stderr();
        assert!(
            err.contains("socket-activated but LISTEN_PID mismatch (a wrapper forked?)"),
            "via_exec={via_exec}: {err}"
        );
        assert!(err.contains("exit=3"), "via_exec={via_exec}: {err}");
    }
}

/// Stops and removes test units, then reloads the manager.
struct Cleanup<'a>(&'a support::UserManager, String, Vec<PathBuf>);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .systemctl()
            .args([
                "stop",
                &format!("{}.socket", self.1),
                &format!("{}.service", self.1),
            ])
            .output();
        for f in &self.2 {
            let _ = std::fs::remove_file(f);
        }
        let _ = self.0.systemctl().arg("daemon-reload").output();
    }
}

#[test]
fn user_manager_runs_the_generated_socket_unit() {
    let Some(mgr) = support::user_manager() else {
        return;
    };
    let sb = Sandbox::new();
    let unit_dir = mgr.runtime_dir.join("systemd/user");
    std::fs::create_dir_all(&unit_dir).unwrap();
    for via_exec in [false, true] {
        let name = support::unique_name("runtime");
        let manifest = sb.path(&format!("{name}.toml"));
        let command = if via_exec {
            format!(
                "[\"{}\", \"exec\", \"--manifest\", \"{}\", \"--\", \"{}\"]",
                env!("CARGO_BIN_EXE_initkit"),
                manifest.display(),
                echo_daemon().display()
            )
        } else {
            format!("[\"{}\"]", echo_daemon().display())
        };
        std::fs::write(
            &manifest,
            format!(
                "name = \"{name}\"\ncommand = {command}\nreadiness = \"notify\"\n[[socket]]\nname = \"control\"\nlisten = \"unix:{{runtime}}/{name}.sock\"\n[systemd.socket]\nRemoveOnStop = true\n"
            ),
        )
        .unwrap();
        // Render with initkit itself, then install by copying.
        let out_dir = sb.path(&format!("out-{name}"));
        let out = support::run(
            initkit()
                .args(["generate", "--platform", "systemd", "--out"])
                .arg(&out_dir)
                .arg(&manifest),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut installed = Vec::new();
        for unit in [format!("{name}.socket"), format!("{name}.service")] {
            let dest = unit_dir.join(&unit);
            std::fs::copy(out_dir.join("units").join(&unit), &dest).unwrap();
            installed.push(dest);
        }
        let _cleanup = Cleanup(&mgr, name.clone(), installed);
        let out = support::run(mgr.systemctl().arg("daemon-reload"));
        assert!(out.status.success(), "{out:?}");
        let out = support::run(mgr.systemctl().args(["start", &format!("{name}.socket")]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = mgr.runtime_dir.join(format!("{name}.sock"));
        assert!(wait_until(5.0, || sock.exists()), "{}", sock.display());
        let answer = ping(&sock).expect("the daemon answers");
        let service = format!("{name}.service");
        let main_pid = mgr.prop(&service, "MainPID");
        assert_eq!(answer, format!("pong {main_pid}"), "via_exec={via_exec}");
        // Type=notify: active only after READY=1 reached the manager.
        assert!(
            wait_until(5.0, || mgr.prop(&service, "ActiveState") == "active"),
            "via_exec={via_exec}: {}",
            mgr.prop(&service, "ActiveState")
        );
        assert!(
            wait_until(5.0, || mgr.prop(&service, "StatusText") == "serving"),
            "STATUS=serving: {:?}",
            mgr.prop(&service, "StatusText")
        );
    }
}

#[test]
fn python_daemon_takes_fd_3_from_initkit_exec() {
    let sb = Sandbox::new();
    let script = sb.path("daemon.py");
    std::fs::write(
        &script,
        r#"import os, socket, sys
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID"
assert os.environ["LISTEN_FDS"] == "1" and os.environ["LISTEN_FDNAMES"] == "control"
s = socket.socket(fileno=3)
while True:
    c, _ = s.accept()
    c.recv(100)
    c.sendall(b"pong %d\n" % os.getpid())
    c.close()
"#,
    )
    .unwrap();
    let m = sb.manifest("");
    let py = Path::new("/usr/bin/python3");
    let d = Proc::spawn(&mut sb.exec(&m, &[], &[py, &script]));
    let sock = sb.sock();
    assert!(
        wait_until(5.0, || ping(&sock).is_some()),
        "python daemon answers"
    );
    assert_eq!(ping(&sock), Some(pong_of(d.pid())), "exec kept the pid");
    let lock = sb.path("state/echo/echo.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        d.pid().to_string(),
        "the lock names the daemon"
    );
    assert!(
        holds_flock(d.pid(), &lock),
        "the daemon itself holds the flock after exec"
    );
    assert_eq!(
        std::fs::metadata(sb.path("state/echo"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn dbus_daemon_takes_its_socket_from_initkit_exec() {
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let mut cmd = sb.exec(&m, &[], &[Path::new("/usr/bin/dbus-daemon")]);
    cmd.args(["--session", "--address=systemd:", "--nofork", "--nopidfile"])
        .stderr(Stdio::null());
    let d = Proc::spawn(&mut cmd);
    let sock = sb.sock();
    let bus = format!("unix:path={}", sock.display());
    let ask = || {
        Command::new("dbus-send")
            .arg(format!("--bus={bus}"))
            .args([
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                "string:org.freedesktop.DBus",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    assert!(
        wait_until(10.0, || ask().is_some()),
        "dbus-daemon answers on {bus}"
    );
    let reply = ask().unwrap();
    assert!(
        reply.contains(&format!("uint32 {}", d.pid())),
        "the bus runs as the exec'd pid {}: {reply}",
        d.pid()
    );
}

#[test]
fn storm_of_100_starts_leaves_one_listener_and_99_clean_exits() {
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let sock = sb.sock();
    let echo = echo_daemon();
    // Sample the path's inode and listener count for the whole storm.
    let stop = Arc::new(AtomicBool::new(false));
    let max_rows = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, max_rows, sock) = (Arc::clone(&stop), Arc::clone(&max_rows), sock.clone());
        std::thread::spawn(move || {
            let mut inodes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(i) = inode(&sock) {
                    if inodes.last() != Some(&i) {
                        inodes.push(i);
                    }
                }
                max_rows.fetch_max(listening_rows(&sock), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            inodes
        })
    };
    let mut procs: Vec<Proc> = (0..100)
        .map(|_| Proc::spawn(sb.exec(&m, &[], &[&echo]).stderr(Stdio::piped())))
        .collect();
    let mut exited = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while exited.len() < 99 && Instant::now() < deadline {
        for (i, p) in procs.iter_mut().enumerate() {
            if !exited.iter().any(|(j, _)| *j == i) {
                if let Some(status) = p.0.try_wait().unwrap() {
                    exited.push((i, status));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(exited.len(), 99, "99 starters exit, one keeps running");
    assert!(
        exited.iter().all(|(_, s)| s.success()),
        "losers exit 0: {:?}",
        exited
            .iter()
            .filter(|(_, s)| !s.success())
            .collect::<Vec<_>>()
    );
    let winner = (0..100)
        .find(|i| !exited.iter().any(|(j, _)| j == i))
        .unwrap();
    assert_eq!(ping(&sock), Some(pong_of(procs[winner].pid())));
    assert_eq!(listening_rows(&sock), 1, "exactly one LISTEN row");
    let said = format!("already running (pid {})", procs[winner].pid());
    for (i, _) in &exited {
        let mut err = String::new();
        std::io::Read::read_to_string(procs[*i].0.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains(&said), "loser {i} says {said:?}: {err}");
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let inodes = sampler.join().unwrap();
    assert_eq!(
        inodes.len(),
        1,
        "the path's inode never changed: {inodes:?}"
    );
    assert_eq!(max_rows.load(Ordering::Relaxed), 1, "never two listeners");
    // After the daemon dies the watcher removes its socket path.
    procs[winner].signal(libc::SIGTERM);
    assert!(procs[winner].wait_secs(5.0).is_some());
    assert!(wait_until(5.0, || !sock.exists()), "socket path cleaned up");
}

#[test]
fn removed_state_dir_stops_a_and_b_takes_over_without_overlap() {
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let sock = sb.sock();
    let echo = echo_daemon();
    let flags = ["--watch-interval", "0.2"];
    let mut a = Proc::spawn(sb.exec(&m, &flags, &[&echo]).stderr(Stdio::piped()));
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    assert_eq!(ping(&sock), Some(pong_of(a.pid())));

    let stop = Arc::new(AtomicBool::new(false));
    let max_rows = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, max_rows, sock) = (Arc::clone(&stop), Arc::clone(&max_rows), sock.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max_rows.fetch_max(listening_rows(&sock), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    std::fs::remove_dir_all(sb.path("state")).unwrap();
    // B races A's shutdown: it takes a new lock, then waits for A's socket.
    let b = Proc::spawn(sb.exec(&m, &flags, &[&echo]).stderr(Stdio::null()));
    assert!(
        a.wait_secs(5.0).is_some(),
        "A stops within the watch interval"
    );
    assert!(
        wait_until(10.0, || ping(&sock) == Some(pong_of(b.pid()))),
        "B serves: {:?}",
        ping(&sock)
    );
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(
        max_rows.load(Ordering::Relaxed),
        1,
        "never two listeners at the path"
    );
    let err = a.stderr();
    assert!(
        err.contains("echo/echo.lock"),
        "A says why it stopped: {err}"
    );
}

#[test]
fn stale_socket_after_sigkill_is_recovered() {
    let sb = Sandbox::new();
    let sock = sb.sock();
    // The example daemon guarding itself; SIGKILL leaves its socket file.
    let mut a = Proc::spawn(
        Command::new(echo_daemon())
            .arg("--bind")
            .arg(&sock)
            .stderr(Stdio::null()),
    );
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    a.signal(libc::SIGKILL);
    a.wait_secs(5.0).unwrap();
    let stale = inode(&sock).expect("SIGKILL left the socket file");
    let m = sb.manifest("");
    let b = Proc::spawn(sb.exec(&m, &[], &[&echo_daemon()]).stderr(Stdio::null()));
    // B answering proves the stale file was replaced by a live listener (the
    // inode number itself may be reused by tmpfs, so it is not compared).
    assert!(wait_until(5.0, || ping(&sock) == Some(pong_of(b.pid()))));
    assert!(inode(&sock).is_some() && stale > 0);
}

#[test]
fn non_socket_paths_are_refused_and_never_removed() {
    for kind in ["file", "dir", "mode000"] {
        let sb = Sandbox::new();
        let sock = sb.sock();
        match kind {
            "file" => std::fs::write(&sock, "precious").unwrap(),
            "dir" => std::fs::create_dir(&sock).unwrap(),
            _ => {
                drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
                std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).unwrap();
            }
        }
        let before = inode(&sock);
        let m = sb.manifest("");
        let (code, err) = finish(&mut sb.exec(&m, &[], &[&echo_daemon()]), 10.0);
        assert_eq!(code, Some(2), "{kind}: {err}");
        let want = match kind {
            "file" => "it is a regular file, not a socket",
            "dir" => "it is a directory, not a socket",
            _ => "a socket with mode 000",
        };
        assert!(err.contains(want), "{kind}: {err}");
        assert!(err.contains("refusing to replace"), "{kind}: {err}");
        assert_eq!(inode(&sock), before, "{kind} kept");
    }
}

#[test]
fn unprivileged_starter_refuses_a_socket_it_cannot_probe() {
    // As root, connect() bypasses permissions; run the starter as `nobody`
    // (setpriv, no account needed) so EACCES is real.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to switch to nobody");
        return;
    }
    let sb = Sandbox::new();
    for d in [
        sb.dir.path().to_path_buf(),
        sb.path("run"),
        sb.path("state"),
        sb.path("home"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sock = sb.sock();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = inode(&sock);
    let m = sb.manifest("");
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_initkit"))
        .args(["exec", "--manifest"])
        .arg(&m)
        .arg("--")
        .arg(echo_daemon());
    sb.env(&mut cmd);
    let (code, err) = finish(&mut cmd, 10.0);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot tell whether") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(inode(&sock), before, "kept");
}

#[test]
fn sigstopped_daemon_keeps_its_socket() {
    let sb = Sandbox::new();
    let sock = sb.sock();
    let a = Proc::spawn(
        Command::new(echo_daemon())
            .arg("--bind")
            .arg(&sock)
            .stderr(Stdio::null()),
    );
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    let before = inode(&sock);
    a.signal(libc::SIGSTOP);
    // A different lock, so only the socket probe stands between B and the
    // path: connect() succeeds into the stopped daemon's backlog.
    let m = sb.manifest("");
    let (code, err) = finish(
        &mut sb.exec(&m, &["--watch-interval", "0.1"], &[&echo_daemon()]),
        10.0,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("already running (pid {})", a.pid())),
        "{err}"
    );
    assert_eq!(inode(&sock), before, "never unlinked");
    assert_eq!(listening_rows(&sock), 1);
    a.signal(libc::SIGCONT);
    assert_eq!(ping(&sock), Some(pong_of(a.pid())));
}

#[test]
fn failure_budget_stops_a_crash_loop_with_exit_0() {
    let sb = Sandbox::new();
    let m = sb.manifest("[restart]\npolicy = \"on-failure\"\nburst = 2\nwindow = 600\n");
    let echo = echo_daemon();
    let mut codes = Vec::new();
    for _ in 0..3 {
        let mut cmd = sb.exec(&m, &["--failure-budget"], &[&echo]);
        cmd.arg("--fail-on-start");
        codes.push(finish(&mut cmd, 10.0));
    }
    assert_eq!(codes[0].0, Some(1), "{codes:?}");
    assert_eq!(codes[1].0, Some(1), "{codes:?}");
    assert_eq!(codes[2].0, Some(0), "{codes:?}");
    assert!(codes[2].1.contains("failure budget exhausted"), "{codes:?}");
}

#[test]
fn name_form_finds_the_installed_manifest_in_the_registry() {
    let sb = Sandbox::new();
    let name = support::unique_name("runtime");
    let mut cmd = initkit();
    cmd.args(["exec", &name, "--", "/bin/true"]);
    sb.env(&mut cmd);
    let (code, err) = finish(&mut cmd, 10.0);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("no initkit-installed service named {name:?}")),
        "{err}"
    );

    // The record `initkit install` writes: {state}/initkit/installed/NAME.json.
    let text = std::fs::read_to_string(sb.manifest("")).unwrap().replacen(
        "name = \"echo\"",
        &format!("name = \"{name}\""),
        1,
    );
    let record = format!(
        "{{\"version\": 1, \"name\": \"{name}\", \"scope\": \"user\", \"manifest_path\": \"/nonexistent/{name}.toml\", \"manifest\": {}, \"files\": []}}",
        json_string(&text)
    );
    let registry = sb.path("state/initkit/installed");
    std::fs::create_dir_all(&registry).unwrap();
    std::fs::write(registry.join(format!("{name}.json")), record).unwrap();
    let mut cmd = initkit();
    cmd.args(["exec", &name]).stderr(Stdio::null());
    sb.env(&mut cmd);
    let d = Proc::spawn(&mut cmd);
    let sock = sb.sock();
    assert!(
        wait_until(5.0, || ping(&sock).is_some()),
        "runs the recorded manifest's command"
    );
    assert_eq!(ping(&sock), Some(pong_of(d.pid())));
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn idle_exit_ends_the_daemon_and_the_watcher_removes_its_path() {
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let sock = sb.sock();
    let mut cmd = sb.exec(&m, &["--watch-interval", "0.1"], &[&echo_daemon()]);
    cmd.args(["--idle-exit", "0.5"]).stderr(Stdio::null());
    let mut d = Proc::spawn(&mut cmd);
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    let status = d.wait_secs(10.0).expect("idle exit");
    assert!(status.success(), "{status:?}");
    assert!(
        wait_until(5.0, || !sock.exists()),
        "socket path removed after exit"
    );
    assert!(
        sb.path("state/echo/echo.lock").exists(),
        "the lock file stays"
    );
}

#[test]
fn exec_failure_exits_2_and_removes_the_path_it_bound() {
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let out = support::run(&mut sb.exec(
        &m,
        &["--watch-interval", "0"],
        &[Path::new("/nonexistent/daemon")],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("exec /nonexistent/daemon"), "{err}");
    assert!(!sb.sock().exists(), "no stale path left behind");
}

#[test]
fn tcp_and_unix_sockets_are_bound_off_init_in_manifest_order() {
    let sb = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = sb.path("two.toml");
    std::fs::write(
        &m,
        format!(
            "name = \"two\"\ncommand = [\"{}\"]\n[[socket]]\nname = \"http\"\nlisten = \"tcp:127.0.0.1:{port}\"\n[[socket]]\nname = \"control\"\nlisten = \"unix:{{runtime}}/echo.sock\"\n",
            echo_daemon().display()
        ),
    )
    .unwrap();
    let script = sb.path("names.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$LISTEN_FDS $LISTEN_FDNAMES\" > \"$1\"\nexec \"$2\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let names = sb.path("names.txt");
    let d = Proc::spawn(
        sb.exec(&m, &[], &[&script, &names, &echo_daemon()])
            .stderr(Stdio::null()),
    );
    let sock = sb.sock();
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    assert_eq!(ping(&sock), Some(pong_of(d.pid())));
    assert_eq!(
        std::fs::read_to_string(&names).unwrap().trim(),
        "2 http:control"
    );
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"ping\n").unwrap();
    let mut line = String::new();
    BufReader::new(tcp).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), pong_of(d.pid()));
    assert!(
        sb.path("run/initkit/two.lock").exists(),
        "default lock under {{runtime}}/initkit"
    );
}

#[test]
fn without_cmd_exec_runs_the_manifest_command_environment_and_directory() {
    let sb = Sandbox::new();
    // The daemon is found through {home}: a placeholder in command[0].
    std::fs::copy(echo_daemon(), sb.path("home/echo_daemon")).unwrap();
    let m = sb.path("m.toml");
    std::fs::write(
        &m,
        "name = \"echo\"\ncommand = [\"{home}/echo_daemon\", \"--idle-exit\", \"30\"]\nworking-directory = \"{home}\"\nenvironment = { ECHO_DATA = \"{state}/data\" }\n[[socket]]\nname = \"control\"\nlisten = \"unix:{runtime}/echo.sock\"\n",
    )
    .unwrap();
    let mut cmd = initkit();
    cmd.args(["exec", "--manifest"])
        .arg(&m)
        .stderr(Stdio::null());
    sb.env(&mut cmd);
    let d = Proc::spawn(&mut cmd);
    let sock = sb.sock();
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    assert_eq!(ping(&sock), Some(pong_of(d.pid())));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", d.pid())).unwrap();
    let want = format!(
        "{}/echo_daemon\0--idle-exit\x0030\0",
        sb.path("home").display()
    );
    assert_eq!(String::from_utf8_lossy(&cmdline), want);
    // Off-init, exec applies what the unit would: environment and directory.
    let environ = std::fs::read(format!("/proc/{}/environ", d.pid())).unwrap();
    let want = format!("ECHO_DATA={}/data", sb.path("state").display());
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes()),
        "{want} in the daemon's environment"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/cwd", d.pid())).unwrap(),
        sb.path("home")
    );
}

/// Started with fds 0 and 1 closed, `initkit exec` first opens them on
/// /dev/null, as std's runtime would (the binary has its own start-up, see
/// src/main.rs): the daemon's stdin and stdout are /dev/null, not the lock
/// file or a socket, and its socket is at fd 3.
#[test]
fn closed_stdin_and_stdout_become_dev_null_for_the_daemon() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    let m = sb.manifest("");
    let report = sb.path("fds");
    // Read in a subshell: the shell applies `> file` to its own fd 1 first.
    let script = "fds=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/3); echo \"$fds\" >\"$1\"";
    let argv = [
        Path::new("/bin/sh"),
        Path::new("-c"),
        Path::new(script),
        Path::new("sh"),
        &report,
    ];
    let mut cmd = sb.exec(&m, &["--watch-interval", "0"], &argv);
    // SAFETY: only close(2), in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            Ok(())
        });
    }
    let (code, err) = finish(&mut cmd, 10.0);
    assert_eq!(code, Some(0), "{err}");
    let fds = std::fs::read_to_string(&report).unwrap();
    let fds: Vec<&str> = fds.lines().collect();
    assert_eq!(fds[..2], ["/dev/null", "/dev/null"], "{fds:?}");
    assert!(fds[2].starts_with("socket:["), "{fds:?}");
}

#[test]
fn system_scope_off_init_runs_the_daemon_as_the_manifest_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to switch to nobody");
        return;
    }
    let sb = Sandbox::new();
    let m = sb.path("sys.toml");
    std::fs::write(
        &m,
        format!(
            "name = \"echo\"\ncommand = [\"{}\"]\nscope = \"system\"\nuser = \"nobody\"\n[[socket]]\nname = \"control\"\nlisten = \"unix:{}\"\n[orphans]\nlock = \"{}\"\n",
            echo_daemon().display(),
            sb.sock().display(),
            sb.path("state/echo.lock").display()
        ),
    )
    .unwrap();
    let d = Proc::spawn(sb.exec(&m, &[], &[&echo_daemon()]).stderr(Stdio::null()));
    let sock = sb.sock();
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    assert_eq!(ping(&sock), Some(pong_of(d.pid())));
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(2),
        Some("65534"),
        "effective uid is nobody: {uid_line}"
    );
    assert_eq!(
        std::fs::symlink_metadata(&sock)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o666,
        "SocketMode= default, as systemd"
    );
}

#[test]
fn library_guard_stops_a_self_binding_daemon_when_its_lock_is_removed() {
    let sb = Sandbox::new();
    let sock = sb.sock();
    let mut a = Proc::spawn(
        Command::new(echo_daemon())
            .arg("--bind")
            .arg(&sock)
            .arg("--lock")
            .arg(sb.path("state/echo/echo.lock"))
            .stderr(Stdio::piped()),
    );
    assert!(wait_until(5.0, || ping(&sock).is_some()));
    std::fs::remove_dir_all(sb.path("state")).unwrap();
    let status = a.wait_secs(5.0).expect("stops within the watch interval");
    assert!(status.success(), "{status:?}");
    assert!(
        !sock.exists(),
        "it removed its own socket path on the way out"
    );
    let err = a.stderr();
    assert!(err.contains("echo.lock vanished"), "{err}");
}
