//! Faults, end to end, against the real systemd user manager: a daemon killed
//! mid-request, clients racing an idle exit, and a daemon that never says
//! READY. Each service is installed with `initkit install` from a temp
//! manifest under a unique name and uninstalled when the test ends (see
//! `support::Service`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::{echo_daemon, ok, ping, text, user_manager, wait_until, Service};

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// SIGKILL while a request is half sent, under `Restart=on-failure`: the
/// socket unit keeps listening on the same inode, the next client is served
/// by a new instance, and `NRestarts` goes up by exactly one.
#[test]
fn sigkill_mid_request_restarts_once_and_the_socket_keeps_listening() {
    let Some(mgr) = user_manager() else { return };
    let svc = Service::new(
        &mgr,
        "kill",
        &[echo_daemon().display().to_string()],
        "[restart]\npolicy = \"on-failure\"\n",
    );
    ok(&svc.install());
    let first = ping(&svc.socket).expect("first client is served");
    assert_eq!(svc.prop("service", "MainPID"), first.to_string());
    assert_eq!(svc.prop("service", "NRestarts"), "0");
    let inode = std::fs::metadata(&svc.socket).unwrap().ino();

    // A request in flight: accepted by the daemon, line not finished.
    let mut in_flight = UnixStream::connect(&svc.socket).unwrap();
    in_flight.write_all(b"pi").unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // the daemon is serving it (a thread per connection), then dies
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on the pid this unit's manager reported as MainPID and
    // that answered us above; it is the daemon this test installed.
    let rc = unsafe { libc::kill(i32::try_from(first).unwrap(), libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {first}: {}", std::io::Error::last_os_error());
    assert!(wait_until(10.0, || !pid_alive(first)), "pid {first} died");

    // the half-sent request is lost with its process: EOF or reset, no reply
    let mut buf = [0u8; 64];
    match in_flight.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "a killed daemon answered: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    // the socket unit never stopped listening, and its path was not replaced
    assert_eq!(svc.prop("socket", "ActiveState"), "active");
    assert_eq!(std::fs::metadata(&svc.socket).unwrap().ino(), inode);

    let second = ping(&svc.socket).expect("the next client is served");
    assert_ne!(second, first, "a new instance answers");
    assert_eq!(svc.prop("service", "MainPID"), second.to_string());
    assert_eq!(svc.prop("service", "ActiveState"), "active");
    assert_eq!(
        svc.prop("service", "NRestarts"),
        "1",
        "one crash, one restart"
    );
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(0), "{status:#}");
    assert_eq!(status["n_restarts"], 1);
    assert_eq!(status["main_pid"], second);
    assert_eq!(std::fs::metadata(&svc.socket).unwrap().ino(), inode);
}

/// A daemon that exits after 1 s without a client (`--idle-exit 1`), and
/// clients that arrive around that deadline: just before it, while the
/// daemon is exiting, and after it. Every client gets a reply: connections
/// queue on the socket systemd holds and start the next instance.
#[test]
fn idle_exit_race_loses_no_connection() {
    // 10 rounds x 3 simultaneous clients, offsets 0.8 s ..= 1.3 s after the
    // last activity; the daemon checks for idleness every 100 ms.
    const ROUNDS: u32 = 10;
    const PER_ROUND: usize = 3;
    let Some(mgr) = user_manager() else { return };
    let svc = Service::new(
        &mgr,
        "idle",
        &[
            echo_daemon().display().to_string(),
            "--idle-exit".into(),
            "1".into(),
        ],
        // a start per round: lift the default start limit (5 per 10 s)
        "[systemd.unit]\nStartLimitIntervalSec = \"0\"\n",
    );
    ok(&svc.install());

    let mut before_exit = 0; // answered by the daemon that was idling
    let mut after_exit = 0; // answered by a new instance
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        // the last activity: this connection closes, the daemon starts its 1 s
        let warm = ping(&svc.socket).expect("warm-up client is served");
        let idle_since = Instant::now();
        let offset = Duration::from_millis(800 + u64::from(round) * 500 / u64::from(ROUNDS - 1));
        let barrier = Arc::new(Barrier::new(PER_ROUND));
        let clients: Vec<_> = (0..PER_ROUND)
            .map(|_| {
                let (barrier, path) = (Arc::clone(&barrier), svc.socket.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(offset.saturating_sub(idle_since.elapsed()));
                    barrier.wait();
                    ping(&path)
                })
            })
            .collect();
        for c in clients {
            match c.join().unwrap() {
                Ok(pid) if pid == warm => before_exit += 1,
                Ok(_) => after_exit += 1,
                Err(e) => failures.push(format!("round {round} (+{offset:?}): {e}")),
            }
        }
        // let this round's daemon go idle before the next warm-up
    }
    assert!(
        failures.is_empty(),
        "{} of {} clients lost: {failures:?}",
        failures.len(),
        ROUNDS as usize * PER_ROUND
    );
    // The window covered the deadline from both sides, or it tested nothing.
    assert!(
        before_exit > 0 && after_exit > 0,
        "clients straddle the idle deadline: {before_exit} served before the exit, {after_exit} after"
    );
    eprintln!("idle-exit race: {before_exit} clients before the exit, {after_exit} after");
}

/// Takes its socket (fd 3) and then hangs: no READY=1, no accept().
const NEVER_READY: &str = r#"
import os, socket, sys, time
listener = socket.socket(fileno=3)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
"#;

/// `readiness = "notify"` and a daemon that never sends READY=1: systemd
/// stops it at TimeoutStartSec (`start-timeout = 2`), the unit fails with
/// `timeout`, and the waiting client gets no reply, only the end of its
/// connection once the socket gives up (`burst = 1`: no second try).
#[test]
fn never_ready_fails_at_the_start_timeout_and_serves_nobody() {
    let Some(mgr) = user_manager() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("never_ready.py");
    std::fs::write(&script, NEVER_READY).unwrap();
    let took = dir.path().join("took-fd-3");
    let svc = Service::new(
        &mgr,
        "noready",
        &[
            "/usr/bin/python3".into(),
            script.display().to_string(),
            took.display().to_string(),
        ],
        "start-timeout = 2\n[restart]\nburst = 1\nwindow = 60\n",
    );
    ok(&svc.install());
    assert_eq!(svc.prop("service", "TimeoutStartUSec"), "2s");

    let started = Instant::now();
    let mut client = UnixStream::connect(&svc.socket).expect("queued on the socket");
    client.write_all(b"ping\n").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    // the daemon runs and holds the socket, but the unit is not started
    assert!(wait_until(10.0, || took.exists()), "the daemon took fd 3");
    let pid: u32 = std::fs::read_to_string(&took).unwrap().parse().unwrap();
    assert_eq!(svc.prop("service", "ActiveState"), "activating");
    assert_eq!(svc.prop("service", "MainPID"), pid.to_string());

    // nobody answers: the connection ends without a byte
    let mut buf = [0u8; 64];
    let read = client.read(&mut buf);
    let waited = started.elapsed();
    match read {
        Ok(0) => {}
        Ok(n) => panic!(
            "a never-ready daemon answered: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        waited >= Duration::from_millis(1500),
        "the connection ended after {waited:?}: before TimeoutStartSec=2"
    );

    // failed at the start timeout, and the process is gone
    assert!(
        wait_until(10.0, || svc.prop("service", "ActiveState") == "failed"),
        "service {} / {}",
        svc.prop("service", "ActiveState"),
        svc.prop("service", "Result")
    );
    assert_eq!(svc.prop("service", "Result"), "timeout");
    assert!(
        wait_until(10.0, || !pid_alive(pid)),
        "pid {pid} was stopped"
    );
    // the socket stopped retrying rather than serving anyone
    assert_eq!(svc.prop("socket", "ActiveState"), "failed");
    let err = ping(&svc.socket).expect_err("nobody serves");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::NotFound
        ),
        "{err}"
    );
    let (code, status) = svc.status_json();
    assert_eq!(code, Some(1), "a failed service is a finding: {status:#}");
    assert_eq!(
        status["service"]["result"],
        "timeout",
        "{}",
        text(&svc.ik(&["status", &svc.name]))
    );
}
