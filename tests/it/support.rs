//! Shared test support: the real binary, temp dirs, and the real systemd user
//! manager (started by `scripts/user-manager.sh`, which `scripts/test.sh` runs).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

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
