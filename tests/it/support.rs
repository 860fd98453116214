//! Shared test support: the real binary, temp dirs, and the real systemd user
//! manager (started by `scripts/user-manager.sh`, which `scripts/test.sh` runs).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The `initkit` binary built for this test run.
pub fn initkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_initkit"))
}

/// Run a command and return its output, panicking with everything it printed
/// when it could not be spawned.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// A name no other test (or concurrent test run) uses: `ikt-<area>-<pid>-<n>`.
pub fn unique_name(area: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ikt-{area}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the real systemd user manager can be reached.
#[derive(Debug, Clone)]
pub struct UserManager {
    pub runtime_dir: PathBuf,
}

impl UserManager {
    /// `systemctl --user` against this manager.
    pub fn systemctl(&self) -> Command {
        let mut cmd = Command::new("systemctl");
        cmd.arg("--user").env("XDG_RUNTIME_DIR", &self.runtime_dir);
        cmd
    }

    /// One property of a unit, e.g. `prop("echo.service", "MainPID")`.
    pub fn prop(&self, unit: &str, property: &str) -> String {
        let out = run(self.systemctl().args(["show", "-P", property, unit]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// The running user manager, or `None` with a loud message when it is not
/// running. With `INITKIT_REQUIRE_MANAGER=1` (set by `scripts/test.sh`, and so
/// by CI) a missing manager fails the test instead of skipping it.
pub fn user_manager() -> Option<UserManager> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let runtime_dir = PathBuf::from(format!("/run/user/{uid}"));
    let up = runtime_dir.join("bus").exists()
        && Command::new("systemctl")
            .args(["--user", "is-system-running"])
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .output()
            .is_ok_and(|o| {
                let s = String::from_utf8_lossy(&o.stdout);
                matches!(s.trim(), "running" | "degraded")
            });
    if up {
        return Some(UserManager { runtime_dir });
    }
    assert!(
        std::env::var_os("INITKIT_REQUIRE_MANAGER").is_none_or(|v| v != "1"),
        "INITKIT_REQUIRE_MANAGER=1 but no systemd user manager answers at {}; run scripts/user-manager.sh start", runtime_dir.display()
    );
    eprintln!("\n*** SKIPPED: no systemd user manager at {} (run scripts/user-manager.sh start, or scripts/test.sh) ***\n", runtime_dir.display());
    None
}

/// Poll `check` every 20 ms for up to `secs` seconds.
pub fn wait_until(secs: f64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    check()
}

/// Every regular file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The example daemon (`examples/echo_daemon.rs`), built once per test run
/// next to the `initkit` binary (`cargo build --example echo_daemon`, a no-op
/// when `cargo test --all-targets` already built it).
pub fn echo_daemon() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_initkit"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf();
    BUILT.call_once(|| {
        let profile = bin_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug");
        let target_dir = bin_dir.parent().expect("profile dir has a parent");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "--example",
            "echo_daemon",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(repo_root());
        if profile == "release" {
            cmd.arg("--release");
        }
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "cargo build --example echo_daemon: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let path = bin_dir.join("examples/echo_daemon");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A TOML basic string holding `s` exactly (control characters escaped).
pub fn toml_string(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// --- Services installed on the real user manager (manage, faults) ----------

pub fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

/// The user manager's unit directory (the manager reads ~/.config/systemd/user).
pub fn unit_dir() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map_or_else(|| home().join(".config"), PathBuf::from)
        .join("systemd/user")
}

pub fn registry_record(name: &str) -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map_or_else(|| home().join(".local/state"), PathBuf::from)
        .join(format!("initkit/installed/{name}.json"))
}

/// `initkit ARGS` against the given user manager.
pub fn ik(mgr: &UserManager, args: &[&str]) -> Output {
    run(initkit()
        .args(args)
        .env("XDG_RUNTIME_DIR", &mgr.runtime_dir)
        .env_remove("DBUS_SESSION_BUS_ADDRESS"))
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(out: &Output) -> &Output {
    assert!(out.status.success(), "{}", text(out));
    out
}

/// A service this test installs; dropping it uninstalls it.
pub struct Service {
    pub mgr: UserManager,
    pub name: String,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Service {
    /// Write `<name>.toml` with `command` (the example daemon by default)
    /// and one unix socket at `{runtime}/<name>.sock`.
    ///
    /// The example daemon runs through a symlink in this service's temp
    /// dir, so its argv[0], which the orphan rule matches by default, is
    /// this service's alone: other tests' daemons running at the same time
    /// are not its orphans.
    pub fn new(mgr: &UserManager, area: &str, command: &[String], extra: &str) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut command = command.to_vec();
        if let Some(program) = command.first_mut() {
            if program.ends_with("/examples/echo_daemon")
                && Path::new(program.as_str()) == echo_daemon()
            {
                let link = dir.path().join("echo_daemon");
                std::os::unix::fs::symlink(echo_daemon(), &link).unwrap();
                *program = link.display().to_string();
            }
        }
        let command: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
        Service::in_dir(mgr, area, dir, |name| {
            format!(
                "name = \"{name}\"\ncommand = [{}]\nreadiness = \"notify\"\n{extra}\n[[socket]]\nlisten = \"unix:{{runtime}}/{name}.sock\"\n",
                command.join(", ")
            )
        })
    }

    /// Write `<name>.toml` as `manifest(name)` says.
    pub fn with_manifest(
        mgr: &UserManager,
        area: &str,
        manifest: impl Fn(&str) -> String,
    ) -> Service {
        Service::in_dir(mgr, area, tempfile::tempdir().unwrap(), manifest)
    }

    fn in_dir(
        mgr: &UserManager,
        area: &str,
        dir: tempfile::TempDir,
        manifest: impl Fn(&str) -> String,
    ) -> Service {
        let name = unique_name(area);
        std::fs::write(dir.path().join(format!("{name}.toml")), manifest(&name)).unwrap();
        Service {
            mgr: mgr.clone(),
            socket: mgr.runtime_dir.join(format!("{name}.sock")),
            name,
            dir,
        }
    }

    pub fn echo(mgr: &UserManager, area: &str) -> Service {
        Service::new(mgr, area, &[echo_daemon().display().to_string()], "")
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join(format!("{}.toml", self.name))
    }

    pub fn ik(&self, args: &[&str]) -> Output {
        ik(&self.mgr, args)
    }

    pub fn install(&self) -> Output {
        self.ik(&["install", self.manifest().to_str().unwrap()])
    }

    pub fn unit(&self, kind: &str) -> String {
        format!("{}.{kind}", self.name)
    }

    pub fn prop(&self, kind: &str, property: &str) -> String {
        self.mgr.prop(&self.unit(kind), property)
    }

    pub fn status_json(&self) -> (Option<i32>, serde_json::Value) {
        let out = self.ik(&["status", &self.name, "--json"]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", text(&out)));
        assert_eq!(report["version"], 1);
        (out.status.code(), report["services"][0].clone())
    }

    pub fn files_in_unit_dir(&self) -> Vec<String> {
        std::fs::read_dir(unit_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{}.", self.name)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if registry_record(&self.name).exists() {
            let out = self.ik(&["uninstall", &self.name]);
            if out.status.success() {
                return;
            }
            eprintln!("cleanup: uninstall {} failed: {}", self.name, text(&out));
        }
        // Fallback: stop, remove, reload; never touches other names.
        let units = ["socket", "timer", "service"]
            .map(|kind| self.unit(kind))
            .into_iter()
            .chain(["a", "b", "c"].map(|s| format!("{}-{s}.socket", self.name)));
        for unit in units {
            let _ = self.mgr.systemctl().args(["stop", &unit]).output();
            let _ = self.mgr.systemctl().args(["disable", &unit]).output();
            let _ = self.mgr.systemctl().args(["reset-failed", &unit]).output();
            let _ = std::fs::remove_file(unit_dir().join(&unit));
        }
        let _ = std::fs::remove_file(registry_record(&self.name));
        let _ = self.mgr.systemctl().arg("daemon-reload").output();
    }
}

/// One request: connect, `ping`, read `pong <pid>`.
pub fn ping(path: &Path) -> std::io::Result<u32> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(b"ping\n")?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    line.trim()
        .strip_prefix("pong ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::UnexpectedEof, format!("reply {line:?}")))
}
