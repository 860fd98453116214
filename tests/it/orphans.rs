//! `initkit orphans` against real processes, each test replaying an incident:
//! hand-started copies next to a socket-activated unit (real systemd user
//! manager), a socket path stolen by systemd, an unlinked lock file, another
//! user's copy, a recycled pid and a stopped copy. The pure classifier is
//! also run over fixture `/proc` trees captured from real processes.
//!
//! Daemons are small python3 programs under a per-test directory, so the
//! argv prefix `[/usr/bin/python3, <dir>/daemon.py]` is unique to the test.
//! Tests kill only the processes they started, by pid.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use initkit::orphan::{self, Reason, Skipped, Tracked};
use initkit::scan::{FileId, Interest};
use serde_json::Value;

use crate::support::{
    echo_daemon, initkit, run, unique_name, user_manager, wait_until, UserManager,
};

/// A daemon: optional `--lock PATH` (flock, held), `--listen PATH` (unlink,
/// bind, listen), or the socket systemd passes; `--pidfile PATH` is written
/// once ready. Answers `ping` with `pong <pid>`.
const DAEMON: &str = r"
import fcntl, os, signal, socket, sys, time
# A graceful-shutdown handler, as real daemons have: it makes SIGTERM
# non-fatal, so a stopped copy only acts on it once continued.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
args = sys.argv[2:]
opts = dict(zip(args[0::2], args[1::2]))
keep = []
if '--lock' in opts:
    f = open(opts['--lock'], 'a')
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    keep.append(f)
listener = None
if '--listen' in opts:
    try:
        os.unlink(opts['--listen'])
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(opts['--listen'])
    listener.listen(16)
elif os.environ.get('LISTEN_PID') == str(os.getpid()):
    listener = socket.socket(fileno=3)
if '--pidfile' in opts:
    with open(opts['--pidfile'] + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.rename(opts['--pidfile'] + '.tmp', opts['--pidfile'])
if listener is None:
    while True:
        time.sleep(3600)
while True:
    c, _ = listener.accept()
    try:
        for line in c.makefile():
            if line.strip() == 'ping':
                c.sendall(('pong %d\n' % os.getpid()).encode())
    except Exception:
        pass
    c.close()
";

const PYTHON: &str = "/usr/bin/python3";

/// One test's world: a directory with the daemon and its manifest.
struct Case {
    dir: tempfile::TempDir,
    name: String,
    script: PathBuf,
    spawned: u32,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::Builder::new()
            .prefix("ikt-orphans-")
            .tempdir()
            .unwrap();
        // Readable by the foreign-uid test's user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.path().join("daemon.py");
        std::fs::write(&script, DAEMON).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        Case {
            dir,
            name: unique_name("orphans"),
            script,
            spawned: 0,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The example daemon through a symlink in this case's directory. The
    /// default orphan rule matches argv[0], so this test's daemons are not
    /// the orphans of another test running at the same time (nor the other
    /// way round).
    fn echo(&self) -> PathBuf {
        let link = self.path("echo_daemon");
        if !link.exists() {
            std::os::unix::fs::symlink(echo_daemon(), &link).unwrap();
        }
        link
    }

    /// Write the manifest; `extra` is appended (e.g. a `[[socket]]`).
    fn manifest(&self, orphans_extra: &str, extra: &str) -> PathBuf {
        let path = self.path("manifest.toml");
        let text = format!(
            "name = {name:?}\ncommand = [{PYTHON:?}, {script:?}, \"serve\"]\n{extra}\n\
             [orphans]\nmatch = [{PYTHON:?}, {script:?}]\n{orphans_extra}\n",
            name = self.name,
            script = self.script.display().to_string(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Start a copy by hand: `setsid -f` forks, so it is re-parented to
    /// init. `wrap` goes before python (e.g. setpriv).
    fn spawn_orphan(&mut self, wrap: &[&str], opts: &[&str]) -> Spawned {
        self.spawned += 1;
        let pub_dir = self.path("pub");
        std::fs::create_dir_all(&pub_dir).unwrap();
        std::fs::set_permissions(&pub_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let pidfile = pub_dir.join(format!("pid-{}", self.spawned));
        let status = Command::new("setsid")
            .arg("-f")
            .args(wrap)
            .arg(PYTHON)
            .arg(&self.script)
            .arg("serve")
            .args(opts)
            .arg("--pidfile")
            .arg(&pidfile)
            .status()
            .unwrap();
        assert!(status.success(), "setsid -f failed: {status}");
        assert!(
            wait_until(10.0, || pidfile.exists()),
            "the hand-started daemon did not write {}",
            pidfile.display()
        );
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Spawned::new(pid, &self.script)
    }

    fn orphans(&self, args: &[&str]) -> Output {
        let manifest = self.path("manifest.toml");
        let uid = nix::unistd::getuid();
        run(initkit()
            .arg("orphans")
            .arg(&manifest)
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_RUNTIME_DIR", format!("/run/user/{uid}")))
    }

    /// `initkit orphans --json`, parsed, with the exit code.
    fn orphans_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.orphans(&all);
        let code = out.status.code().unwrap_or(-1);
        assert!(
            code != 2,
            "initkit orphans failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, json)
    }
}

/// A process this test started, killed by pid on drop if it still is the
/// same process (its cmdline names this test's script).
struct Spawned {
    pid: u32,
    start: u64,
    marker: PathBuf,
}

impl Spawned {
    fn new(pid: u32, marker: &Path) -> Spawned {
        let start = start_ticks(pid).expect("spawned process is running");
        Spawned {
            pid,
            start,
            marker: marker.to_owned(),
        }
    }

    fn alive(&self) -> bool {
        alive(self.pid, self.start)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let marker = self.marker.as_os_str().as_encoded_bytes();
        if self.alive() && cmdline.windows(marker.len()).any(|w| w == marker) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(self.pid).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some((fields[0].chars().next()?, fields[19].parse().ok()?))
}

fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|f| f.1)
}

/// The process started at `start` still runs (a zombie does not count).
fn alive(pid: u32, start: u64) -> bool {
    matches!(stat_fields(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

fn findings_for(json: &Value, pid: u32) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pid"] == pid)
        .flat_map(|f| f["reasons"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn finding_pids(list: &Value) -> Vec<u64> {
    list.as_array()
        .map(|a| a.iter().map(|f| f["pid"].as_u64().unwrap()).collect())
        .unwrap_or_default()
}

/// A hand-written socket + service unit pair in the user manager's runtime
/// unit directory, removed on drop.
struct Units {
    manager: UserManager,
    name: String,
    files: Vec<PathBuf>,
}

impl Units {
    fn install(manager: &UserManager, case: &Case, socket: &Path) -> Units {
        let dir = manager.runtime_dir.join("systemd/user");
        std::fs::create_dir_all(&dir).unwrap();
        let socket_unit = dir.join(format!("{}.socket", case.name));
        let service_unit = dir.join(format!("{}.service", case.name));
        std::fs::write(
            &socket_unit,
            format!("[Socket]\nListenStream={}\n", socket.display()),
        )
        .unwrap();
        std::fs::write(
            &service_unit,
            format!(
                "[Service]\nExecStart={PYTHON} {} serve\n",
                case.script.display()
            ),
        )
        .unwrap();
        let units = Units {
            manager: manager.clone(),
            name: case.name.clone(),
            files: vec![socket_unit, service_unit],
        };
        let out = run(manager.systemctl().arg("daemon-reload"));
        assert!(out.status.success(), "daemon-reload: {out:?}");
        units
    }

    fn start_socket(&self) {
        let out = run(self
            .manager
            .systemctl()
            .args(["start", &format!("{}.socket", self.name)]));
        assert!(
            out.status.success(),
            "start socket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn main_pid(&self) -> u32 {
        self.manager
            .prop(&format!("{}.service", self.name), "MainPID")
            .parse()
            .unwrap()
    }
}

impl Drop for Units {
    fn drop(&mut self) {
        let _ = run(self.manager.systemctl().args([
            "stop",
            &format!("{}.socket", self.name),
            &format!("{}.service", self.name),
        ]));
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = run(self.manager.systemctl().arg("daemon-reload"));
    }
}

fn ping(path: &Path) -> u32 {
    let mut stream = UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"ping\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("pong ")
        .unwrap_or_else(|| panic!("unexpected answer {line:?}"))
        .parse()
        .unwrap()
}

/// Incident: with the socket-activated service running, someone starts a
/// copy by hand (setsid, double fork). It is invisible to `stop`.
#[test]
fn hand_started_copy_is_reported_and_killed_while_the_unit_survives() {
    let Some(manager) = user_manager() else {
        return;
    };
    let mut case = Case::new();
    let socket = case.path("echo.sock");
    case.manifest(
        "",
        &format!("[[socket]]\nlisten = \"unix:{}\"\n", socket.display()),
    );
    let units = Units::install(&manager, &case, &socket);
    units.start_socket();
    let main = ping(&socket);
    assert_eq!(units.main_pid(), main, "the unit's MainPID answered");

    let copy = case.spawn_orphan(&[], &[]);
    assert_eq!(
        stat_ppid(copy.pid),
        1,
        "setsid -f re-parents the copy to init"
    );

    let (code, json) = case.orphans_json(&[]);
    assert_eq!(code, 1, "{json:#}");
    let reasons = findings_for(&json, copy.pid);
    assert!(reasons.contains(&"reparented".to_owned()), "{json:#}");
    assert!(
        findings_for(&json, main).is_empty(),
        "the unit's MainPID is tracked: {json:#}"
    );

    let (code, json) = case.orphans_json(&["--kill", "--grace", "5"]);
    assert_eq!(code, 0, "nothing remains after --kill: {json:#}");
    assert!(!copy.alive(), "the copy is gone");
    assert_eq!(units.main_pid(), main, "the unit's MainPID survived");
    assert_eq!(ping(&socket), main, "the unit still answers");
    assert_eq!(finding_pids(&json["remaining"]), Vec::<u64>::new());

    let out = case.orphans(&[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no orphans"));
}

fn stat_ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Incident: a daemon started by hand listens on P; then the socket unit
/// starts and systemd unlinks P and binds again. The first daemon runs on,
/// unreachable.
#[test]
fn path_stolen_by_the_socket_unit_leaves_a_stale_listener() {
    let Some(manager) = user_manager() else {
        return;
    };
    let mut case = Case::new();
    let socket = case.path("echo.sock");
    case.manifest(
        "",
        &format!("[[socket]]\nlisten = \"unix:{}\"\n", socket.display()),
    );
    let early = case.spawn_orphan(&[], &["--listen", socket.to_str().unwrap()]);
    assert_eq!(ping(&socket), early.pid, "the hand-started daemon owns P");
    let before = FileId::of_path(&socket).unwrap();

    let units = Units::install(&manager, &case, &socket);
    units.start_socket();
    let after = FileId::of_path(&socket).unwrap();
    assert_ne!(before, after, "systemd re-bound P as a new inode");
    assert!(early.alive(), "the hand-started daemon runs on");

    let (code, json) = case.orphans_json(&[]);
    assert_eq!(code, 1, "{json:#}");
    let reasons = findings_for(&json, early.pid);
    assert!(reasons.contains(&"stale-listener".to_owned()), "{json:#}");
    // The connection now reaches systemd's socket, which starts the unit.
    let main = ping(&socket);
    assert_ne!(main, early.pid);
    let (_, json) = case.orphans_json(&[]);
    assert!(
        findings_for(&json, main).is_empty(),
        "the activated service is tracked: {json:#}"
    );
    drop(units);
}

/// Incident: `rm -rf` of the state dir while the daemon runs; the next
/// starter locks a fresh file. The old daemon keeps its lock on an inode no
/// path reaches.
#[test]
fn lock_on_an_unlinked_file_is_a_stale_lock() {
    let mut case = Case::new();
    let lock = case.path("state/app.lock");
    case.manifest(&format!("lock = {:?}\n", lock.display().to_string()), "");
    std::fs::create_dir_all(case.path("state")).unwrap();
    let old = case.spawn_orphan(&[], &["--lock", lock.to_str().unwrap()]);
    std::fs::remove_dir_all(case.path("state")).unwrap();
    std::fs::create_dir_all(case.path("state")).unwrap();
    let new = case.spawn_orphan(&[], &["--lock", lock.to_str().unwrap()]);

    let (code, json) = case.orphans_json(&[]);
    assert_eq!(code, 1, "{json:#}");
    let reasons = findings_for(&json, old.pid);
    assert!(reasons.contains(&"stale-lock".to_owned()), "{json:#}");
    assert!(
        findings_for(&json, new.pid).is_empty(),
        "off-init, the live lock's holder is the instance: {json:#}"
    );
}

const TEST_USER: &str = "ikt-orphans";

/// The test user, created once (idempotent: an existing user is reused).
fn test_user() -> (u32, u32) {
    let exists = |out: &Output| out.status.success();
    if !exists(&run(Command::new("id").args(["-u", TEST_USER]))) {
        let out = run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ]));
        // A concurrent run may have created it meanwhile.
        assert!(
            out.status.success() || exists(&run(Command::new("id").args(["-u", TEST_USER]))),
            "useradd {TEST_USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let user = nix::unistd::User::from_name(TEST_USER).unwrap().unwrap();
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Another user's copy with the same argv is listed, never touched.
#[test]
fn another_users_copy_is_listed_and_survives_kill() {
    let (uid, gid) = test_user();
    let mut case = Case::new();
    case.manifest("", "");
    let reuid = format!("--reuid={uid}");
    let regid = format!("--regid={gid}");
    let foreign = case.spawn_orphan(&["setpriv", &reuid, &regid, "--clear-groups"], &[]);

    let (code, json) = case.orphans_json(&[]);
    assert_eq!(code, 1, "{json:#}");
    assert!(
        findings_for(&json, foreign.pid).contains(&"foreign-uid".to_owned()),
        "{json:#}"
    );

    let (code, json) = case.orphans_json(&["--kill", "--grace", "1"]);
    assert_eq!(code, 1, "another user's process remains: {json:#}");
    assert!(foreign.alive(), "another user's process is never signalled");
    let skipped = json["kill"]["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s[0] == foreign.pid && s[1]["why"] == "foreign-uid"),
        "{json:#}"
    );
    assert_eq!(
        finding_pids(&json["remaining"]),
        vec![u64::from(foreign.pid)]
    );
}

/// Incident: between the scan and the signal the orphan exits and its pid
/// goes to an unrelated process. The unrelated process must not be hit.
#[test]
fn a_recycled_pid_is_never_signalled() {
    let mut case = Case::new();
    let manifest_path = case.manifest("", "");
    let manifest =
        initkit::manifest::Manifest::from_toml(&std::fs::read_to_string(&manifest_path).unwrap())
            .unwrap();
    let dirs = initkit::dirs::Dirs::system();
    let off_init = Tracked {
        guard: true,
        ..Tracked::default()
    };

    // 1. Deterministic: the snapshot saw pid X start at S; now X is an
    //    unrelated process started later.
    let orphan = case.spawn_orphan(&[], &[]);
    let mut unrelated = Command::new("sleep").arg("300").spawn().unwrap();
    let findings = orphan::find(&manifest, &dirs, &off_init).unwrap();
    let mut stale = findings
        .iter()
        .find(|f| f.pid == orphan.pid)
        .expect("the orphan is found")
        .clone();
    stale.pid = unrelated.id();
    let report = orphan::kill(&[stale], Duration::from_secs(1)).unwrap();
    assert!(
        matches!(report.skipped.as_slice(), [(pid, Skipped::Recycled { .. })] if *pid == unrelated.id()),
        "{report:?}"
    );
    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "the unrelated process was not signalled"
    );
    let _ = unrelated.kill();
    let _ = unrelated.wait();

    // 2. Real reuse: in the window between snapshot and signal, the orphan
    //    (our child, so we reap it) dies and its pid is handed to a new
    //    process through ns_last_pid.
    let mut child = Command::new(PYTHON)
        .arg(&case.script)
        .arg("serve")
        .spawn()
        .unwrap();
    let child_pid = child.id();
    assert!(wait_until(10.0, || {
        std::fs::read(format!("/proc/{child_pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(PYTHON.as_bytes()))
    }));
    let findings = orphan::find(&manifest, &dirs, &off_init).unwrap();
    let target: Vec<_> = findings
        .into_iter()
        .filter(|f| f.pid == child_pid)
        .collect();
    assert_eq!(target.len(), 1, "the child is found");
    let mut reused: Option<std::process::Child> = None;
    let report = orphan::kill_with_hook(&target, Duration::from_secs(1), &mut |f| {
        child.kill().unwrap();
        child.wait().unwrap();
        for _ in 0..2000 {
            if std::fs::write("/proc/sys/kernel/ns_last_pid", (f.pid - 1).to_string()).is_err() {
                return;
            }
            let mut c = Command::new("sleep").arg("300").spawn().unwrap();
            if c.id() == f.pid {
                reused = Some(c);
                return;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    })
    .unwrap();
    let mut reused = reused.expect("the pid was handed to a new process (ns_last_pid)");
    assert!(
        matches!(report.skipped.as_slice(), [(pid, Skipped::Recycled { .. })] if *pid == child_pid),
        "{report:?}"
    );
    assert!(report.terminated.is_empty() && report.killed.is_empty());
    assert!(
        reused.try_wait().unwrap().is_none(),
        "the process that got the recycled pid was not signalled"
    );
    let _ = reused.kill();
    let _ = reused.wait();
}

/// A SIGSTOPped copy is reported `stopped`; --kill continues it so it can
/// act on SIGTERM, well within the grace period.
#[test]
fn a_stopped_copy_is_reported_and_removed_by_sigterm() {
    let mut case = Case::new();
    case.manifest("", "");
    let copy = case.spawn_orphan(&[], &[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(copy.pid).unwrap()),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    assert!(wait_until(5.0, || stat_fields(copy.pid)
        .is_some_and(|(state, _)| state == 'T')));

    let (code, json) = case.orphans_json(&[]);
    assert_eq!(code, 1);
    assert!(
        findings_for(&json, copy.pid).contains(&"stopped".to_owned()),
        "{json:#}"
    );

    let (code, json) = case.orphans_json(&["--kill", "--grace", "60"]);
    assert_eq!(code, 0, "{json:#}");
    assert!(!copy.alive());
    assert_eq!(
        json["kill"]["terminated"],
        serde_json::json!([copy.pid]),
        "SIGTERM (after SIGCONT) ended it, no SIGKILL needed: {json:#}"
    );
}

/// The classifier over fixture `/proc` trees captured from real processes
/// by tests/fixtures/proc/capture.sh (see its header for the scenario).
#[test]
fn fixture_tree_classification() {
    let root = crate::support::repo_root().join("tests/fixtures/proc/incidents");
    let facts: std::collections::HashMap<String, String> =
        std::fs::read_to_string(root.join("../incidents.facts"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let pid = |k: &str| -> u32 { facts[k].parse().unwrap() };
    let prefix: Vec<std::ffi::OsString> = vec![PYTHON.into(), facts["SCRIPT"].clone().into()];
    let lock = PathBuf::from(&facts["LOCK"]);
    let socket = PathBuf::from(&facts["SOCKET"]);
    let interest = Interest {
        argv_prefixes: vec![prefix.clone()],
        lock_paths: vec![lock.clone()],
        socket_paths: vec![socket.clone()],
        pids: vec![],
    };
    let snapshot = initkit::scan::read_with_root(&root, &interest).unwrap();
    let live_lock = FileId::from_major_minor(
        facts["LOCK_MAJOR"].parse().unwrap(),
        facts["LOCK_MINOR"].parse().unwrap(),
        facts["LOCK_INO"].parse().unwrap(),
    );
    let rules = orphan::Rules {
        service: "fixture".into(),
        match_argv: prefix,
        lock: Some(orphan::PathState {
            path: lock,
            current: Some(live_lock),
        }),
        // The socket path was removed after the listener bound it.
        sockets: vec![orphan::PathState {
            path: socket,
            current: None,
        }],
        owner_uid: 0,
        self_pid: 0,
    };
    let findings = orphan::classify(
        &snapshot,
        &rules,
        &Tracked {
            guard: true,
            ..Tracked::default()
        },
    );
    let reasons = |k: &str| -> Vec<Reason> {
        findings
            .iter()
            .find(|f| f.pid == pid(k))
            .map(|f| f.reasons.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        reasons("LIVE"),
        vec![],
        "the live lock holder is the instance"
    );
    assert_eq!(
        reasons("STALE_LOCK"),
        vec![Reason::StaleLock, Reason::Reparented]
    );
    assert_eq!(
        reasons("LISTENER"),
        vec![Reason::StaleListener, Reason::Reparented]
    );
    assert_eq!(
        reasons("STOPPED"),
        vec![Reason::Reparented, Reason::Stopped]
    );
    assert_eq!(
        reasons("FOREIGN"),
        vec![Reason::Reparented, Reason::ForeignUid]
    );
    assert_eq!(
        findings.len(),
        4,
        "nothing else in the tree is a candidate: {findings:#?}"
    );
    let stale = findings
        .iter()
        .find(|f| f.pid == pid("STALE_LOCK"))
        .unwrap();
    assert!(
        stale.evidence.iter().any(|e| e.contains("(deleted)")),
        "{:?}",
        stale.evidence
    );
}

/// `initkit ARGS` with the real HOME (where the registry and the user
/// manager's unit directory live), for installed services.
fn ik(manager: &UserManager, args: &[&str]) -> Output {
    run(initkit()
        .args(args)
        .env("XDG_RUNTIME_DIR", &manager.runtime_dir)
        .env_remove("DBUS_SESSION_BUS_ADDRESS"))
}

/// Uninstalls on drop.
struct Installed {
    manager: UserManager,
    name: String,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = ik(&self.manager, &["uninstall", &self.name]);
    }
}

/// `status` shows an installed service's orphans, and `orphans` finds them
/// by name and without arguments (every installed service).
#[test]
fn status_and_orphans_cover_installed_services() {
    let Some(manager) = user_manager() else {
        return;
    };
    let mut case = Case::new();
    let socket = case.path("echo.sock");
    let manifest = case.manifest(
        "",
        &format!("[[socket]]\nlisten = \"unix:{}\"\n", socket.display()),
    );
    let out = ik(&manager, &["install", manifest.to_str().unwrap()]);
    let installed = Installed {
        manager: manager.clone(),
        name: case.name.clone(),
    };
    assert!(out.status.success(), "install: {out:?}");
    let main = ping(&socket);
    let copy = case.spawn_orphan(&[], &[]);

    let out = ik(&manager, &["status", &case.name, "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let orphans = &json["services"][0]["orphans"];
    assert_eq!(finding_pids(orphans), vec![u64::from(copy.pid)], "{json:#}");
    assert_eq!(orphans[0]["reasons"][0], "reparented");

    let out = ik(&manager, &["status", &case.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{}: orphans: 1 (pid {}, reparented, ",
            case.name, copy.pid
        )),
        "{text}"
    );

    let out = ik(&manager, &["orphans", &case.name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(finding_pids(&json["findings"]), vec![u64::from(copy.pid)]);
    assert!(findings_for(&json, main).is_empty());

    let out = ik(&manager, &["orphans", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        finding_pids(&json["findings"]).contains(&u64::from(copy.pid)),
        "no arguments covers every installed service: {json:#}"
    );
    drop(installed);
}

/// `initkit exec` applies `[orphans] on-start` before it starts anything.
#[test]
fn exec_applies_the_on_start_policy() {
    let mut case = Case::new();
    let runtime = case.path("rt");
    std::fs::create_dir_all(&runtime).unwrap();
    let exec = |case: &Case| -> Output {
        run(initkit()
            .args(["exec", "--manifest"])
            .arg(case.path("manifest.toml"))
            .args(["--watch-interval", "0", "--", "/usr/bin/true"])
            .env("HOME", case.dir.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID"))
    };
    let copy = case.spawn_orphan(&[], &[]);

    case.manifest("on-start = \"report\"\n", "");
    let out = exec(&case);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("orphan pid {}", copy.pid)),
        "{out:?}"
    );
    assert!(copy.alive(), "report only reports");

    case.manifest("on-start = \"refuse\"\n", "");
    let out = exec(&case);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to start") && stderr.contains(&copy.pid.to_string()),
        "{stderr}"
    );
    assert!(copy.alive(), "refuse touches nothing");

    case.manifest("on-start = \"terminate\"\n", "");
    let out = exec(&case);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !copy.alive(),
        "terminate stopped the orphan before the start"
    );
}

/// Off-init with the watcher (the default), `report` runs in the watcher
/// once the daemon runs: the findings still reach exec's stderr while the
/// daemon (exec's own pid) runs; a start that finds the service running
/// starts nothing and reports nothing.
#[test]
fn exec_reports_orphans_from_the_watcher() {
    let mut case = Case::new();
    let runtime = case.path("rt");
    std::fs::create_dir_all(&runtime).unwrap();
    case.manifest("on-start = \"report\"\n", "");
    let copy = case.spawn_orphan(&[], &[]);
    let exec = |case: &Case, command: &[&str]| {
        let mut cmd = initkit();
        cmd.args(["exec", "--manifest"])
            .arg(case.path("manifest.toml"))
            .arg("--")
            .args(command)
            .env("HOME", case.dir.path())
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        cmd
    };

    // The daemon prints its pid and lives 30 s; the report comes meanwhile.
    let mut first = exec(&case, &["/bin/sh", "-c", "echo $$; exec sleep 30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let daemon = first.id();
    let mut stderr = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!("orphan pid {}", copy.pid)),
        "the watcher reports the copy: {line:?}"
    );
    let mut stdout = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut stdout)
        .unwrap();
    assert_eq!(stdout.trim(), daemon.to_string(), "exec kept its pid");

    // A second start finds the first running: no start, no report.
    let second = run(&mut exec(&case, &["/bin/true"]));
    let text = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{text}");
    assert!(text.contains("already running"), "{text}");
    assert!(!text.contains("orphan pid"), "{text}");

    // SAFETY: kill(2) on the daemon this test started (exec kept the pid).
    unsafe { libc::kill(i32::try_from(daemon).unwrap(), libc::SIGTERM) };
    let _ = first.wait();
    assert!(copy.alive(), "report only reports");
}

/// Case 1 with the real example service installed by initkit: a copy of
/// echo_daemon started by hand (setsid, on its own path) is `reparented`;
/// `--kill` removes it and the unit's MainPID survives.
#[test]
fn hand_started_copy_of_the_installed_example_service() {
    let Some(manager) = user_manager() else {
        return;
    };
    let case = Case::new();
    let echo = case.echo();
    let socket = case.path("echo.sock");
    let manifest = case.path("echo.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = {:?}\ncommand = [{:?}]\nreadiness = \"notify\"\n[[socket]]\nlisten = \"unix:{}\"\n",
            case.name,
            echo.display().to_string(),
            socket.display()
        ),
    )
    .unwrap();
    let out = ik(&manager, &["install", manifest.to_str().unwrap()]);
    let installed = Installed {
        manager: manager.clone(),
        name: case.name.clone(),
    };
    assert!(out.status.success(), "install: {out:?}");
    let main = ping(&socket);
    assert_eq!(
        manager.prop(&format!("{}.service", case.name), "MainPID"),
        main.to_string()
    );

    let copy_socket = case.path("copy.sock");
    let status = Command::new("setsid")
        .arg("-f")
        .arg(&echo)
        .arg("--bind")
        .arg(&copy_socket)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(wait_until(10.0, || UnixStream::connect(&copy_socket).is_ok()));
    let copy = Spawned::new(ping(&copy_socket), &echo);
    assert_eq!(stat_ppid(copy.pid), 1);

    let out = ik(&manager, &["orphans", &case.name, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(finding_pids(&json["findings"]), vec![u64::from(copy.pid)]);
    assert_eq!(json["findings"][0]["reasons"][0], "reparented");

    let out = ik(&manager, &["orphans", &case.name, "--kill", "--grace", "5"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!copy.alive());
    assert_eq!(
        ping(&socket),
        main,
        "the unit's MainPID survived and answers"
    );
    let out = ik(&manager, &["orphans", &case.name]);
    assert_eq!(out.status.code(), Some(0), "rescan is clean: {out:?}");
    drop(installed);
}

/// Off-init with no service manager at all (no bus in XDG_RUNTIME_DIR): the
/// instance `initkit exec` started holds the guard's live lock and is the
/// tracked one; a copy started by hand next to it is reported.
#[test]
fn off_init_the_guarded_instance_is_tracked_and_a_copy_is_not() {
    let case = Case::new();
    let echo = case.echo();
    let runtime = case.path("rt");
    std::fs::create_dir_all(&runtime).unwrap();
    let socket = case.path("echo.sock");
    let manifest = case.path("manifest.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = {:?}\ncommand = [{:?}]\n[[socket]]\nlisten = \"unix:{}\"\n",
            case.name,
            echo.display().to_string(),
            socket.display()
        ),
    )
    .unwrap();
    let status = Command::new("setsid")
        .arg("-f")
        .arg(env!("CARGO_BIN_EXE_initkit"))
        .args(["exec", "--watch-interval", "0", "--manifest"])
        .arg(&manifest)
        .env("HOME", case.dir.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(wait_until(10.0, || UnixStream::connect(&socket).is_ok()));
    let instance = Spawned::new(ping(&socket), &echo);

    let copy_socket = case.path("copy.sock");
    assert!(Command::new("setsid")
        .arg("-f")
        .arg(&echo)
        .arg("--bind")
        .arg(&copy_socket)
        .status()
        .unwrap()
        .success());
    assert!(wait_until(10.0, || UnixStream::connect(&copy_socket).is_ok()));
    let copy = Spawned::new(ping(&copy_socket), &echo);

    let out = run(initkit()
        .args(["orphans", "--json"])
        .arg(&manifest)
        .env("HOME", case.dir.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("DBUS_SESSION_BUS_ADDRESS"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        finding_pids(&json["findings"]),
        vec![u64::from(copy.pid)],
        "the guarded instance {} is tracked: {json:#}",
        instance.pid
    );
}

/// Exit 2 on error, with the reason on stderr; nothing is scanned.
#[test]
fn errors_exit_2() {
    let case = Case::new();
    let out = run(initkit().args(["orphans", "/nonexistent/ikt.toml"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ikt.toml"));
    std::fs::write(case.path("bad.toml"), "name = \"x\"\n").unwrap();
    let out = run(initkit().arg("orphans").arg(case.path("bad.toml")));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = run(initkit().args(["orphans", "--grace", "3", "/x.toml"]));
    assert_eq!(out.status.code(), Some(2), "--grace needs --kill: {out:?}");
}
