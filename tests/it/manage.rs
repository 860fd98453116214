//! install / start / stop / restart / status / uninstall against the real
//! systemd user manager, with the example daemon (examples/echo_daemon.rs).
//!
//! Every test uses a unique service name, and a guard uninstalls (and, if that
//! fails, stops and removes) what the test installed, even when it panics.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use initkit::backend::systemd::Systemd;

use crate::support::{
    echo_daemon, initkit, ok, ping, registry_record, run, text, unique_name, unit_dir,
    user_manager, wait_until, Service,
};

#[test]
fn lifecycle_install_start_status_restart_stop_uninstall() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::echo(&mgr, "life");
    let out = svc.install();
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("start {}", svc.unit("socket"))),
        "each step is printed: {stdout}"
    );

    // the socket listens, the service waits for its first client
    assert_eq!(svc.prop("socket", "ActiveState"), "active");
    assert_eq!(svc.prop("socket", "SubState"), "listening");
    assert_eq!(svc.prop("service", "ActiveState"), "inactive");
    let mut files = svc.files_in_unit_dir();
    files.sort();
    assert_eq!(files, [svc.unit("service"), svc.unit("socket")]);
    assert!(registry_record(&svc.name).exists());

    // a client starts it; the pid that answers is the unit's main pid, in its cgroup
    let pid = ping(&svc.socket).expect("first client gets a reply");
    assert_eq!(svc.prop("service", "MainPID"), pid.to_string());
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup
            .lines()
            .any(|l| l.ends_with(&format!("/{}", svc.unit("service")))),
        "pid {pid} lives in the unit's cgroup: {cgroup}"
    );

    // what the orphan classifier gets from the manager
    let systemd = Systemd::user_at(
        format!("unix:path={}", mgr.runtime_dir.join("bus").display()),
        unit_dir(),
    );
    let view = systemd.unit_view(&svc.unit("service")).unwrap();
    assert_eq!(view.main_pid, Some(pid));
    assert_eq!(view.pids, [pid], "the daemon is the unit's only process");
    assert!(
        view.control_group
            .as_deref()
            .is_some_and(|cg| cg.ends_with(&format!("/{}", svc.unit("service")))),
        "{view:?}"
    );

    let (code, status) = svc.status_json();
    assert_eq!(code, Some(0));
    assert_eq!(status["name"], svc.name.as_str());
    assert_eq!(status["scope"], "user");
    assert_eq!(status["service"]["active_state"], "active");
    assert_eq!(status["service"]["sub_state"], "running");
    assert_eq!(status["sockets"][0]["unit"], svc.unit("socket").as_str());
    assert_eq!(status["sockets"][0]["active_state"], "active");
    assert_eq!(status["sockets"][0]["sub_state"], "running");
    assert_eq!(status["main_pid"], pid);
    assert_eq!(status["n_restarts"], 0);
    assert_eq!(status["status_text"], "serving");
    assert_eq!(status["listen"][0], svc.socket.display().to_string());
    assert_eq!(status["thrash"], false);
    assert_eq!(status["start_limit_hit"], false);
    assert_eq!(
        status["orphans"],
        serde_json::json!([]),
        "orphans: checked, none (null would mean not checked)"
    );
    assert_eq!(
        status["manifest"],
        std::fs::canonicalize(svc.manifest())
            .unwrap()
            .display()
            .to_string()
    );

    // logs go through journalctl (no journald runs here: it prints no entries)
    let logs = svc.ik(&["logs", &svc.name, "-n", "5"]);
    ok(&logs);

    // the human table names it too
    let table = ok(&svc.ik(&["status"])).stdout.clone();
    assert!(
        String::from_utf8_lossy(&table).contains(&svc.name),
        "status without NAME lists it"
    );

    // restart: a new main pid, same socket
    let inode = std::fs::metadata(&svc.socket).unwrap().ino();
    ok(&svc.ik(&["restart", &svc.name]));
    let new_pid = ping(&svc.socket).expect("served after restart");
    assert_ne!(new_pid, pid, "restart replaced the process");
    assert_eq!(svc.prop("service", "MainPID"), new_pid.to_string());
    assert_eq!(std::fs::metadata(&svc.socket).unwrap().ino(), inode);

    // stop: both units inactive, nobody answers
    ok(&svc.ik(&["stop", &svc.name]));
    assert_eq!(svc.prop("socket", "ActiveState"), "inactive");
    assert_eq!(svc.prop("service", "ActiveState"), "inactive");
    assert!(ping(&svc.socket).is_err());
    let view = systemd.unit_view(&svc.unit("service")).unwrap();
    assert_eq!(
        view,
        initkit::backend::ManagerView::default(),
        "stopped: nothing tracked"
    );

    // uninstall: no file, no loaded unit, no record
    let out = svc.ik(&["uninstall", &svc.name]);
    ok(&out);
    assert_eq!(svc.files_in_unit_dir(), Vec::<String>::new());
    for kind in ["socket", "service"] {
        assert_eq!(
            svc.prop(kind, "LoadState"),
            "not-found",
            "{kind} unit is gone"
        );
    }
    assert!(!registry_record(&svc.name).exists());
    let again = svc.ik(&["uninstall", &svc.name]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "uninstalling twice is refused: {}",
        text(&again)
    );
}

#[test]
fn cold_start_herd_gets_one_daemon() {
    const CLIENTS: usize = 100;
    let Some(mgr) = user_manager() else { return };
    let svc = Service::echo(&mgr, "herd");
    ok(&svc.install());
    assert_eq!(svc.prop("service", "ActiveState"), "inactive");

    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let path = svc.socket.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let start = std::time::Instant::now();
                let stream = UnixStream::connect(&path);
                let connected_after = start.elapsed();
                let mut stream = stream?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                stream.write_all(b"ping\n")?;
                let mut line = String::new();
                BufReader::new(&stream).read_line(&mut line)?;
                Ok::<_, std::io::Error>((line, connected_after))
            })
        })
        .collect();
    let mut pids = HashSet::new();
    let mut slowest_connect = Duration::ZERO;
    for h in handles {
        let (line, connected_after) = h.join().unwrap().expect("every client gets a reply");
        let pid: u32 = line
            .trim()
            .strip_prefix("pong ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("reply {line:?}"));
        pids.insert(pid);
        slowest_connect = slowest_connect.max(connected_after);
    }
    // connect() on a listening socket returns once queued in the backlog,
    // before any daemon runs: all 100 arrive together at the inactive socket.
    assert!(
        slowest_connect < Duration::from_secs(2),
        "clients connected within {slowest_connect:?}"
    );
    assert_eq!(pids.len(), 1, "exactly one daemon answered: {pids:?}");
    let pid = *pids.iter().next().unwrap();
    assert_eq!(svc.prop("service", "MainPID"), pid.to_string());
    assert_eq!(
        svc.prop("service", "NRestarts"),
        "0",
        "one start, no restarts"
    );
}

#[test]
fn restart_under_load_refuses_no_connection() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::echo(&mgr, "load");
    ok(&svc.install());
    ping(&svc.socket).expect("first reply");
    let inode = std::fs::metadata(&svc.socket).unwrap().ino();

    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicUsize::new(0));
    let resets = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let (stop, replies, resets) =
                (Arc::clone(&stop), Arc::clone(&replies), Arc::clone(&resets));
            let path = svc.socket.clone();
            std::thread::spawn(move || {
                let mut refused = Vec::new();
                let mut pids = HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    match ping(&path) {
                        Ok(pid) => {
                            pids.insert(pid);
                            replies.fetch_add(1, Ordering::Relaxed);
                        }
                        // refused or missing: the socket was not there for a client
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::ConnectionRefused | ErrorKind::NotFound
                            ) =>
                        {
                            refused.push(e.to_string());
                        }
                        // an accepted connection cut by the stopping daemon
                        Err(_) => {
                            resets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                (refused, pids)
            })
        })
        .collect();
    for i in 0..20 {
        let out = svc.ik(&["restart", &svc.name]);
        assert!(out.status.success(), "restart {i}: {}", text(&out));
    }
    stop.store(true, Ordering::Relaxed);
    let mut refused = Vec::new();
    let mut pids = HashSet::new();
    for c in clients {
        let (r, p) = c.join().unwrap();
        refused.extend(r);
        pids.extend(p);
    }
    assert!(
        refused.is_empty(),
        "{} connections refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    assert_eq!(
        std::fs::metadata(&svc.socket).unwrap().ino(),
        inode,
        "the socket file was never replaced"
    );
    assert!(
        pids.len() >= 10,
        "the clients saw the restarts: {} daemons answered",
        pids.len()
    );
    eprintln!(
        "restart under load: {} replies, {} reset connections, {} daemons",
        replies.load(Ordering::Relaxed),
        resets.load(Ordering::Relaxed),
        pids.len()
    );
}

#[test]
fn crash_loop_is_reported_and_start_recovers() {
    let Some(mgr) = user_manager() else { return };
    let flag = tempfile::NamedTempFile::new().unwrap();
    let daemon = echo_daemon();
    // fails at once while the flag file exists
    let script = format!(
        "if [ -e '{flag}' ]; then exec '{d}' --fail-on-start; else exec '{d}'; fi",
        flag = flag.path().display(),
        d = daemon.display()
    );
    let svc = Service::new(
        &mgr,
        "crash",
        &["/bin/sh".into(), "-c".into(), script],
        "[restart]\npolicy = \"on-failure\"\ndelay = 1\nburst = 3\nwindow = 60\n",
    );
    ok(&svc.install());
    let _ = ping(&svc.socket); // triggers the first start; the reply never comes

    // systemd 252 records the limit on the socket that tried to activate the
    // service (service-start-limit-hit); `start_limit_hit` reports either place.
    assert!(
        wait_until(30.0, || svc.prop("socket", "ActiveState") == "failed"),
        "socket failed: {} / {}",
        svc.prop("socket", "ActiveState"),
        svc.prop("socket", "Result")
    );
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(1), "a thrashing service is a finding");
    assert_eq!(status["start_limit_hit"], true, "{status:#}");
    assert_eq!(status["service"]["active_state"], "failed");
    assert_eq!(status["sockets"][0]["active_state"], "failed");
    assert_eq!(status["sockets"][0]["result"], "service-start-limit-hit");
    assert!(
        status["n_restarts"].as_u64().unwrap() >= 2,
        "it was restarted: {status:#}"
    );
    assert_eq!(status["thrash"], true);
    assert!(status["thrash_reason"]
        .as_str()
        .unwrap()
        .contains("start-limit-hit"));
    assert_eq!(status["exec_main_status"], 1);
    let table = svc.ik(&["status", &svc.name]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("THRASHING"),
        "{}",
        text(&table)
    );
    // the socket is closed: clients are refused
    let err = ping(&svc.socket).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::NotFound
        ),
        "{err}"
    );

    // fixed daemon: `start` resets the failed state and the limit itself
    std::fs::remove_file(flag.path()).unwrap();
    let out = svc.ik(&["start", &svc.name]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reset-failed"),
        "{}",
        text(&out)
    );
    let pid = ping(&svc.socket).expect("recovered");
    assert_eq!(svc.prop("service", "MainPID"), pid.to_string());
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(0));
    assert_eq!(status["thrash"], false);
}

#[test]
fn start_reports_the_failure_with_the_unit_and_result() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::new(
        &mgr,
        "nostart",
        &[
            echo_daemon().display().to_string(),
            "--fail-on-start".into(),
        ],
        "",
    );
    ok(&svc.install());
    // restarting the service itself starts it, which fails
    let out = svc.ik(&["restart", &svc.name]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("restart {} failed", svc.unit("service"))),
        "{stderr}"
    );
    assert!(
        stderr.contains("exit-code"),
        "the unit's Result is named: {stderr}"
    );
}

#[test]
fn install_refuses_to_overwrite_a_hand_written_unit() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::echo(&mgr, "hand");
    std::fs::create_dir_all(unit_dir()).unwrap();
    let hand = unit_dir().join(svc.unit("service"));
    let mine = "[Service]\nExecStart=/bin/true\n";
    std::fs::write(&hand, mine).unwrap();

    let out = svc.install();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was not generated by initkit"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&hand).unwrap(),
        mine,
        "left untouched"
    );
    assert_eq!(
        svc.files_in_unit_dir(),
        [svc.unit("service")],
        "nothing else written"
    );
    assert!(!registry_record(&svc.name).exists());

    // and it was not installed, so uninstall refuses to delete it
    let out = svc.ik(&["uninstall", &svc.name]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(hand.exists());

    // --force replaces it (and the guard uninstalls it)
    ok(&svc.ik(&["install", "--force", svc.manifest().to_str().unwrap()]));
    assert!(initkit::render::is_generated(
        &std::fs::read_to_string(&hand).unwrap()
    ));
}

#[test]
fn linger_without_logind_fails_clearly_and_writes_nothing() {
    let Some(mgr) = user_manager() else { return };
    if Path::new("/run/dbus/system_bus_socket").exists() {
        eprintln!("skipped: a system bus runs here; this test covers its absence");
        return;
    }
    let svc = Service::echo(&mgr, "linger");
    let out = svc.ik(&["install", "--linger", svc.manifest().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot enable linger") && stderr.contains("logind"),
        "{stderr}"
    );
    assert!(svc.files_in_unit_dir().is_empty());
    assert!(!registry_record(&svc.name).exists());
}

#[test]
fn system_scope_dry_run_writes_nothing_and_verifies() {
    let name = unique_name("sys");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &manifest,
        format!(
            "name = \"{name}\"\nscope = \"system\"\nuser = \"daemon\"\ncommand = [\"{}\"]\nreadiness = \"notify\"\n[[socket]]\nlisten = \"unix:{{runtime}}/{name}.sock\"\n",
            echo_daemon().display()
        ),
    )
    .unwrap();
    let out = run(initkit().args(["install", "--dry-run", manifest.to_str().unwrap()]));
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();

    // the files it would write, rebuilt from the printout
    let rendered = dir.path().join("rendered");
    std::fs::create_dir(&rendered).unwrap();
    let mut written = Vec::new();
    let mut current: Option<(PathBuf, String)> = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("would write ") {
            written.extend(current.take());
            let path = rest.strip_suffix(" (mode 0644):").expect("mode is printed");
            current = Some((PathBuf::from(path), String::new()));
        } else if let (Some((_, body)), Some(l)) = (current.as_mut(), line.strip_prefix("    ")) {
            body.push_str(l);
            body.push('\n');
        } else {
            written.extend(current.take());
        }
    }
    written.extend(current.take());
    let paths: Vec<&Path> = written.iter().map(|(p, _)| p.as_path()).collect();
    assert_eq!(
        paths,
        [
            PathBuf::from(format!("/etc/systemd/system/{name}.service")),
            PathBuf::from(format!("/etc/systemd/system/{name}.socket"))
        ]
    );
    for (path, _) in &written {
        assert!(!path.exists(), "dry run wrote {}", path.display());
    }
    for step in [
        "would reload the manager (daemon-reload)".to_owned(),
        format!("would enable {name}.service {name}.socket"),
        format!("would start {name}.socket"),
    ] {
        assert!(stdout.contains(&step), "{step:?} in {stdout}");
    }

    let files: Vec<PathBuf> = written
        .iter()
        .map(|(path, body)| {
            let f = rendered.join(path.file_name().unwrap());
            std::fs::write(&f, body).unwrap();
            f
        })
        .collect();
    let verify = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .args(&files));
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        text(&verify)
    );
}

#[test]
fn missing_bus_or_runtime_dir_is_actionable() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("nobus.toml");
    std::fs::write(
        &manifest,
        "name = \"ikt-nobus\"\ncommand = [\"/bin/true\"]\n",
    )
    .unwrap();
    let manifest = manifest.to_str().unwrap();

    // sudo/ssh without a session: neither variable set
    let out = run(initkit()
        .args(["start", manifest])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DBUS_SESSION_BUS_ADDRESS"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot find the user bus") && stderr.contains("XDG_RUNTIME_DIR"),
        "{stderr}"
    );

    // a runtime dir without a bus: the address and what to do are named
    let out = run(initkit()
        .args(["status", manifest])
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("DBUS_SESSION_BUS_ADDRESS"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bus = dir.path().join("bus");
    assert!(
        stderr.contains(&format!(
            "cannot connect to the user bus at unix:path={}",
            bus.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("systemd --user"), "{stderr}");

    // install writes nothing when it cannot reach the manager
    let config = tempfile::tempdir().unwrap();
    let out = run(initkit()
        .args(["install", manifest])
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_CONFIG_HOME", config.path())
        .env("XDG_STATE_HOME", config.path())
        .env_remove("DBUS_SESSION_BUS_ADDRESS"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        crate::support::tree(config.path()).is_empty(),
        "nothing written: {:?}",
        crate::support::tree(config.path())
    );
}

#[test]
fn several_sockets_each_get_a_unit_that_start_and_stop_act_on() {
    let Some(mgr) = user_manager() else { return };
    let daemon = echo_daemon();
    let svc = Service::with_manifest(&mgr, "multi", |name| {
        format!(
            "name = \"{name}\"\ncommand = [{daemon:?}]\nreadiness = \"notify\"\n\
             [[socket]]\nname = \"a\"\nlisten = \"unix:{{runtime}}/{name}-a.sock\"\n\
             [[socket]]\nname = \"b\"\nlisten = \"unix:{{runtime}}/{name}-b.sock\"\n"
        )
    });
    let out = svc.install();
    ok(&out);
    let units = [
        format!("{}-a.socket", svc.name),
        format!("{}-b.socket", svc.name),
    ];
    for unit in &units {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("start {unit}")),
            "{}",
            text(&out)
        );
        assert_eq!(mgr.prop(unit, "ActiveState"), "active", "{unit}");
    }
    let a = mgr.runtime_dir.join(format!("{}-a.sock", svc.name));
    let b = mgr.runtime_dir.join(format!("{}-b.sock", svc.name));
    let pid = ping(&a).expect("socket a answers");
    assert_eq!(
        ping(&b).expect("socket b answers"),
        pid,
        "one daemon serves both"
    );

    let (_, status) = svc.status_json();
    let names: Vec<&str> = status["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["unit"].as_str().unwrap())
        .collect();
    assert_eq!(names, units.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(status["listen"].as_array().unwrap().len(), 2);

    ok(&svc.ik(&["stop", &svc.name]));
    for unit in &units {
        assert_eq!(mgr.prop(unit, "ActiveState"), "inactive", "{unit}");
    }
    assert_eq!(svc.prop("service", "ActiveState"), "inactive");
    ok(&svc.ik(&["start", &svc.name]));
    assert!(ping(&b).is_ok(), "start brought both sockets back");
    ok(&svc.ik(&["uninstall", &svc.name]));
    for unit in &units {
        assert_eq!(mgr.prop(unit, "LoadState"), "not-found", "{unit}");
    }
}

/// Two sockets become one on reinstall: the unit names change
/// (`NAME-a.socket`, `NAME-b.socket` → `NAME.socket`) and the new unit takes
/// over socket a's address. The old units are stopped (and with them the
/// daemon that held their fds), disabled and their files removed before the
/// new socket starts; nothing of them stays loaded, listening or recorded.
#[test]
fn reinstall_retires_the_socket_units_it_no_longer_renders() {
    let Some(mgr) = user_manager() else { return };
    let daemon = echo_daemon();
    let two = |name: &str| {
        format!(
            "name = \"{name}\"\ncommand = [{daemon:?}]\nreadiness = \"notify\"\n\
             [[socket]]\nname = \"a\"\nlisten = \"unix:{{runtime}}/{name}-a.sock\"\n\
             [[socket]]\nname = \"b\"\nlisten = \"unix:{{runtime}}/{name}-b.sock\"\n"
        )
    };
    let svc = Service::with_manifest(&mgr, "reinst", two);
    ok(&svc.install());
    let a = mgr.runtime_dir.join(format!("{}-a.sock", svc.name));
    let b = mgr.runtime_dir.join(format!("{}-b.sock", svc.name));
    let old_pid = ping(&a).expect("socket a answers");
    let old_units = [
        format!("{}-a.socket", svc.name),
        format!("{}-b.socket", svc.name),
    ];

    std::fs::write(
        svc.manifest(),
        format!(
            "name = \"{0}\"\ncommand = [{daemon:?}]\nreadiness = \"notify\"\n\
             [[socket]]\nname = \"a\"\nlisten = \"unix:{{runtime}}/{0}-a.sock\"\n",
            svc.name
        ),
    )
    .unwrap();
    let dry = svc.ik(&["install", "--dry-run", svc.manifest().to_str().unwrap()]);
    ok(&dry);
    for unit in &old_units {
        let shown = String::from_utf8_lossy(&dry.stdout);
        assert!(
            shown.contains(&format!("would stop {unit}")),
            "{}",
            text(&dry)
        );
        assert!(shown.contains("(no longer rendered)"), "{}", text(&dry));
        assert_eq!(mgr.prop(unit, "ActiveState"), "active", "dry run: {unit}");
    }
    for unit in &old_units {
        assert!(
            unit_dir().join(unit).exists(),
            "dry run removed nothing: {unit}"
        );
    }

    let out = svc.install();
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for unit in &old_units {
        assert!(stdout.contains(&format!("stop {unit}")), "{}", text(&out));
        assert!(
            stdout.contains(&format!(
                "{} (no longer rendered)",
                unit_dir().join(unit).display()
            )),
            "{}",
            text(&out)
        );
        assert_eq!(mgr.prop(unit, "LoadState"), "not-found", "{unit}");
        assert!(!unit_dir().join(unit).exists(), "{unit} removed");
    }
    let mut files = svc.files_in_unit_dir();
    files.sort();
    assert_eq!(files, [svc.unit("service"), svc.unit("socket")]);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry_record(&svc.name)).unwrap()).unwrap();
    assert_eq!(
        record["files"].as_array().map(Vec::len),
        Some(2),
        "the record lists the new files only: {record}"
    );
    assert_eq!(svc.prop("socket", "ActiveState"), "active");
    assert!(
        wait_until(10.0, || !Path::new(&format!("/proc/{old_pid}")).exists()),
        "the daemon holding the old sockets was stopped with them"
    );
    let new_pid = ping(&a).expect("the new socket unit serves socket a's address");
    assert_ne!(new_pid, old_pid);
    assert_eq!(svc.prop("service", "MainPID"), new_pid.to_string());
    // systemd removes the socket file on stop (RemoveOnStop=yes)
    let gone = ping(&b).map_err(|e| e.kind());
    assert!(
        matches!(
            gone,
            Err(ErrorKind::NotFound | ErrorKind::ConnectionRefused)
        ),
        "nothing listens on the dropped socket b: {gone:?}"
    );
    let (code, _) = svc.status_json();
    assert_eq!(code, Some(0));
    ok(&svc.ik(&["uninstall", &svc.name]));
    assert_eq!(svc.files_in_unit_dir(), Vec::<String>::new());
}

/// The socket moves to a new path on reinstall. On reload systemd keeps the
/// fd it bound, so install stops the socket unit (and with it the daemon
/// that `Requires=` it) under its old definition, then starts it: the new
/// path answers from a new daemon and the old path is gone.
#[test]
fn reinstall_with_a_new_socket_address_listens_there() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::echo(&mgr, "moved");
    ok(&svc.install());
    let old_pid = ping(&svc.socket).expect("first address answers");
    let moved = mgr.runtime_dir.join(format!("{}-moved.sock", svc.name));
    let manifest = std::fs::read_to_string(svc.manifest()).unwrap();
    let old_listen = format!("{{runtime}}/{}.sock", svc.name);
    assert!(manifest.contains(&old_listen), "{manifest}");
    std::fs::write(
        svc.manifest(),
        manifest.replace(&old_listen, &format!("{{runtime}}/{}-moved.sock", svc.name)),
    )
    .unwrap();

    let out = svc.install();
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stop {}", svc.unit("socket"))),
        "{}",
        text(&out)
    );
    let new_pid = ping(&moved).expect("the new address answers");
    assert_ne!(new_pid, old_pid, "the daemon was restarted with the new fd");
    assert_eq!(svc.prop("service", "MainPID"), new_pid.to_string());
    assert!(
        !svc.socket.exists(),
        "the old path was removed with the old listener"
    );
    // Reinstalling the same manifest again changes nothing: no stop.
    let again = svc.install();
    ok(&again);
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("stop"),
        "{}",
        text(&again)
    );
    assert_eq!(ping(&moved).expect("still answers"), new_pid);
}

/// A third socket is added on reinstall while the daemon serves the first
/// two. systemd would refuse to start the new socket unit while its service
/// runs, and the running daemon has no fd for it: install stops the service
/// first, so the next client starts a daemon that serves all three.
#[test]
fn reinstall_with_an_added_socket_serves_it_from_a_new_daemon() {
    let Some(mgr) = user_manager() else { return };
    let daemon = echo_daemon();
    let sockets = |name: &str, which: &[&str]| {
        let header = format!("name = \"{name}\"\ncommand = [{daemon:?}]\nreadiness = \"notify\"\n");
        let sockets = which.iter().map(|s| {
            format!("[[socket]]\nname = \"{s}\"\nlisten = \"unix:{{runtime}}/{name}-{s}.sock\"\n")
        });
        std::iter::once(header).chain(sockets).collect::<String>()
    };
    let svc = Service::with_manifest(&mgr, "added", |name| sockets(name, &["a", "b"]));
    ok(&svc.install());
    let path = |s: &str| mgr.runtime_dir.join(format!("{}-{s}.sock", svc.name));
    let old_pid = ping(&path("a")).expect("socket a answers");

    std::fs::write(svc.manifest(), sockets(&svc.name, &["a", "b", "c"])).unwrap();
    let out = svc.install();
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("stop {}", svc.unit("service"))),
        "{}",
        text(&out)
    );
    let c = format!("{}-c.socket", svc.name);
    assert_eq!(mgr.prop(&c, "ActiveState"), "active", "{c}");
    let new_pid = ping(&path("c")).expect("the added socket answers");
    assert_ne!(new_pid, old_pid);
    for s in ["a", "b"] {
        assert_eq!(
            ping(&path(s)).expect("the old sockets still answer"),
            new_pid,
            "one daemon serves all three"
        );
    }
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(0));
    assert_eq!(status["sockets"].as_array().map(Vec::len), Some(3));
}

/// A socket unit unlinks its path before it binds, so installing a second
/// service on a path that is taken would strand the first listener. Install
/// refuses, names the field, and writes nothing: the path of another
/// installed service, and a path a foreign process listens on. A stale
/// socket file nobody listens on is free.
#[test]
fn install_refuses_a_socket_path_that_is_taken() {
    let Some(mgr) = user_manager() else { return };
    let first = Service::echo(&mgr, "taken");
    ok(&first.install());
    let pid = ping(&first.socket).expect("first service answers");
    let inode = std::fs::metadata(&first.socket).unwrap().ino();

    let daemon = echo_daemon();
    let on = |path: &Path| {
        let (path, daemon) = (path.to_owned(), daemon.clone());
        move |name: &str| {
            format!(
                "name = \"{name}\"\ncommand = [{daemon:?}]\nreadiness = \"notify\"\n\
                 [[socket]]\nlisten = \"unix:{}\"\n",
                path.display()
            )
        }
    };
    let nothing_written = |svc: &Service, out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(2), "{}", text(out));
        assert_eq!(svc.files_in_unit_dir(), Vec::<String>::new());
        assert!(!registry_record(&svc.name).exists());
    };

    let second = Service::with_manifest(&mgr, "taken", on(&first.socket));
    let out = second.install();
    nothing_written(&second, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("socket[0].listen"), "{err}");
    assert!(
        err.contains(&format!("installed service {} (user scope)", first.name)),
        "{err}"
    );
    assert_eq!(ping(&first.socket).expect("first still answers"), pid);
    assert_eq!(std::fs::metadata(&first.socket).unwrap().ino(), inode);

    // A process of its own (not an installed service) listening on a path.
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.sock");
    let listener = std::os::unix::net::UnixListener::bind(&foreign).unwrap();
    let foreign_inode = std::fs::metadata(&foreign).unwrap().ino();
    let third = Service::with_manifest(&mgr, "taken", on(&foreign));
    let out = third.install();
    nothing_written(&third, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a process is listening"), "{err}");
    assert_eq!(std::fs::metadata(&foreign).unwrap().ino(), foreign_inode);
    UnixStream::connect(&foreign).expect("the foreign listener still accepts");

    // Gone, its file left behind: nobody listens, so the path is free.
    drop(listener);
    assert!(foreign.exists());
    ok(&third.install());
    assert!(ping(&foreign).is_ok(), "the new service owns the path");
}

#[test]
fn scheduled_job_installs_and_starts_its_timer() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::with_manifest(&mgr, "timer", |name| {
        format!("name = \"{name}\"\ncommand = [\"/bin/true\"]\nreadiness = \"exec\"\n[schedule]\ninterval = 3600\n")
    });
    ok(&svc.install());
    assert_eq!(svc.prop("timer", "ActiveState"), "active");
    assert_eq!(svc.prop("timer", "SubState"), "waiting");
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(0));
    assert_eq!(status["timer"]["unit"], svc.unit("timer").as_str());
    assert_eq!(status["timer"]["active_state"], "active");
    assert_eq!(status["sockets"], serde_json::json!([]));
    ok(&svc.ik(&["stop", &svc.name]));
    assert_eq!(svc.prop("timer", "ActiveState"), "inactive");
    ok(&svc.ik(&["uninstall", &svc.name]));
    assert_eq!(svc.prop("timer", "LoadState"), "not-found");
    assert_eq!(svc.files_in_unit_dir(), Vec::<String>::new());
}
