//! A small daemon written the initkit way: it takes the sockets it was given
//! by name, says READY=1, and never forks away.
//!
//! ```text
//! echo_daemon [--bind PATH [--lock PATH]] [--idle-exit SECS] [--fail-on-start]
//! ```
//!
//! - Started by systemd, launchd or `initkit exec`: serves every passed socket.
//! - Not activated, with `--bind PATH`: guards a single instance itself
//!   (lock `PATH.lock` unless `--lock`), binds PATH, and stops when its lock
//!   or socket path is removed or replaced.
//! - Protocol, per line: `ping` → `pong <pid>`; anything else is echoed.
//!   UDP sockets answer each datagram the same way.
//! - `--idle-exit SECS`: exit 0 after SECS without a connection.
//! - `--fail-on-start`: exit 1 at once (crash-loop tests).
//!
//! Exit codes: 0 stopped (SIGTERM, idle, or already running); 1
//! `--fail-on-start`; 2 error; 3 LISTEN_PID names another process.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use initkit::activation::guard::{Acquired, GuardSpec, WatchSet, DEFAULT_WATCH_INTERVAL};
use initkit::activation::notify::{notify, NotifyState};
use initkit::activation::{self, FdError, Listener};

#[derive(Debug, Default)]
struct Opts {
    bind: Option<PathBuf>,
    lock: Option<PathBuf>,
    idle_exit: Option<Duration>,
    fail_on_start: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts::default();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.to_str() {
            Some("--bind") => opts.bind = Some(value("--bind")?.into()),
            Some("--lock") => opts.lock = Some(value("--lock")?.into()),
            Some("--idle-exit") => {
                let v = value("--idle-exit")?;
                let secs: f64 = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or("--idle-exit takes a number of seconds")?;
                opts.idle_exit = Some(Duration::from_secs_f64(secs));
            }
            Some("--fail-on-start") => opts.fail_on_start = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(opts)
}

/// Paths to clean up at exit when this process guards itself.
static WATCH: OnceLock<WatchSet> = OnceLock::new();

fn stop(code: i32) -> ! {
    let _ = notify(&[NotifyState::Stopping]);
    if let Some(w) = WATCH.get() {
        w.cleanup_sockets();
    }
    std::process::exit(code);
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("echo_daemon: {e}");
            std::process::exit(2);
        }
    };
    if opts.fail_on_start {
        eprintln!("echo_daemon: failing on start as asked");
        std::process::exit(1);
    }
    // Block SIGTERM/SIGINT before any thread starts; one thread waits for them.
    let mut signals = nix::sys::signal::SigSet::empty();
    signals.add(nix::sys::signal::Signal::SIGTERM);
    signals.add(nix::sys::signal::Signal::SIGINT);
    signals.thread_block().expect("block signals");

    let listeners = match take_sockets(&opts) {
        Ok(l) => l,
        Err(code) => std::process::exit(code),
    };

    std::thread::spawn(move || {
        match signals.wait() {
            Ok(sig) => eprintln!("echo_daemon: {sig}, stopping"),
            Err(e) => eprintln!("echo_daemon: sigwait: {e}, stopping"),
        }
        stop(0);
    });

    let pid = std::process::id();
    let last = Arc::new(AtomicU64::new(0));
    let active = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let touch = {
        let last = Arc::clone(&last);
        move || last.store(elapsed_ms(started), Ordering::Relaxed)
    };
    let mut names = Vec::new();
    for (name, listener) in listeners {
        names.push(name.clone());
        let touch = touch.clone();
        let active = Arc::clone(&active);
        match listener {
            Listener::Unix(l) => {
                std::thread::spawn(move || {
                    for conn in l.incoming().flatten() {
                        touch();
                        let (touch, active) = (touch.clone(), Arc::clone(&active));
                        std::thread::spawn(move || serve(conn, pid, &touch, &active));
                    }
                });
            }
            Listener::Tcp(l) => {
                std::thread::spawn(move || {
                    for conn in l.incoming().flatten() {
                        touch();
                        let (touch, active) = (touch.clone(), Arc::clone(&active));
                        std::thread::spawn(move || serve(conn, pid, &touch, &active));
                    }
                });
            }
            Listener::Udp(s) => {
                std::thread::spawn(move || serve_udp(&s, pid, &touch));
            }
            other => {
                eprintln!("echo_daemon: socket {name:?} is not a stream listener or udp socket ({other:?}); ignoring it");
            }
        }
    }
    if let Err(e) = notify(&[NotifyState::Ready, NotifyState::Status("serving".into())]) {
        eprintln!("echo_daemon: {e}");
    }
    eprintln!("echo_daemon: pid {pid} serving {}", names.join(", "));

    loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(idle) = opts.idle_exit {
            let quiet = elapsed_ms(started).saturating_sub(last.load(Ordering::Relaxed));
            if active.load(Ordering::Relaxed) == 0 && u128::from(quiet) >= idle.as_millis() {
                eprintln!("echo_daemon: idle for {idle:?}, exiting");
                stop(0);
            }
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The sockets to serve, or the exit code to stop with.
fn take_sockets(opts: &Opts) -> Result<Vec<(String, Listener)>, i32> {
    match activation::listeners(&["control"]) {
        Ok(Some(mut passed)) => return Ok(passed.take_all()),
        Ok(None) => {}
        Err(activation::Error::Fd(e @ FdError::PidMismatch { .. })) => {
            eprintln!("echo_daemon: error: {e}");
            return Err(3);
        }
        Err(e) => {
            eprintln!("echo_daemon: error: {e}");
            return Err(2);
        }
    }
    let Some(path) = &opts.bind else {
        eprintln!(
            "echo_daemon: error: not socket-activated; pass --bind PATH to bind a socket yourself"
        );
        return Err(2);
    };
    let lock = opts.lock.clone().unwrap_or_else(|| {
        let mut p = path.clone().into_os_string();
        p.push(".lock");
        p.into()
    });
    let spec = GuardSpec::new(lock)
        .unix_socket("control", path, Some(0o600), None)
        .ping(Box::new(|s| {
            s.write_all(b"ping\n")?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            if line.starts_with("pong ") {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("unexpected answer {line:?}")))
            }
        }));
    let mut guard = match spec.acquire() {
        Ok(Acquired::Won(g)) => g,
        Ok(Acquired::AlreadyRunning(running)) => {
            eprintln!("echo_daemon: {running}");
            return Err(0);
        }
        Err(e) => {
            eprintln!("echo_daemon: error: {e}");
            return Err(2);
        }
    };
    let mut sockets = guard.listeners().map_err(|e| {
        eprintln!("echo_daemon: error: {e}");
        2
    })?;
    // The lock stays held for the life of the process; cleanup at exit goes
    // through WATCH (process::exit skips destructors).
    let watch = guard.hold_until_exit();
    let _ = WATCH.set(watch.clone());
    watch
        .spawn(DEFAULT_WATCH_INTERVAL, |lost| {
            eprintln!("echo_daemon: {lost}");
            stop(0);
        })
        .map_err(|e| {
            eprintln!("echo_daemon: error: spawn watcher: {e}");
            2
        })?;
    Ok(sockets.take_all())
}

fn serve<S: std::io::Read + Write>(conn: S, pid: u32, touch: &impl Fn(), active: &AtomicUsize) {
    active.fetch_add(1, Ordering::Relaxed);
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        touch();
        let reply = if line.trim_end() == "ping" {
            format!("pong {pid}\n")
        } else {
            line.clone()
        };
        if reader.get_mut().write_all(reply.as_bytes()).is_err() {
            break;
        }
    }
    active.fetch_sub(1, Ordering::Relaxed);
    touch();
}

fn serve_udp(socket: &UdpSocket, pid: u32, touch: &impl Fn()) {
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        touch();
        let reply = if buf[..n].trim_ascii_end() == b"ping" {
            format!("pong {pid}\n").into_bytes()
        } else {
            buf[..n].to_vec()
        };
        let _ = socket.send_to(&reply, from);
    }
}
