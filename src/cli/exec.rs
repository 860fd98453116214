//! `initkit exec (--manifest M | NAME) [-- CMD ARGS...]`: do the init system's
//! part, then exec the daemon in place (same pid, so `LISTEN_PID` holds).
//!
//! | started by | what exec does |
//! |---|---|
//! | systemd (`LISTEN_FDS` for this pid) | checks the passed fds and names, execs unchanged |
//! | systemd, `LISTEN_PID` names another pid | refuses loudly, exit 3 |
//! | launchd (macOS) | activates each manifest socket by name, moves them to fds 3.., exports `LISTEN_*`, applies the failure budget |
//! | nothing (off-init) | guard: lock (kept across exec), bind, fds 3.., `LISTEN_*`, the manifest's `environment`, `working-directory`, `user`/`group`; a watcher stops the daemon if its paths are taken |
//!
//! Exit codes of `initkit exec` itself (once it execs, the daemon's own):
//! 0 already running, or failure budget exhausted; 2 error (nothing that was
//! there before is removed); 3 `LISTEN_PID` mismatch.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::Outcome;
use initkit::activation::env::{self, Activation, Passed, LISTEN_FDS_START};
use initkit::activation::fd;
use initkit::activation::guard::{Acquired, GuardSpec, WatchSet};
use initkit::dirs::Dirs;
use initkit::manifest::{Listen, Manifest, OnStart, Socket};

/// Exit code when `LISTEN_FDS` was passed to another pid (a wrapper forked).
pub const EXIT_PID_MISMATCH: i32 = 3;

const AFTER_HELP: &str = "\
Exit codes (before the daemon is executed):
  0  already running (pid N), or the failure budget is exhausted
  2  error: bad manifest, unsafe socket path, exec failed (nothing that was
     there before is removed), or [orphans] on-start = \"refuse\" found
     instances the manager does not track
  3  socket-activated but LISTEN_PID mismatch (a wrapper forked?)
After exec the exit code is the daemon's.";

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The manifest to run
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// An installed service's name (its manifest as `initkit install` recorded it), instead of --manifest
    #[arg(
        value_name = "NAME",
        conflicts_with = "manifest",
        required_unless_present = "manifest"
    )]
    name: Option<String>,
    /// Apply restart.burst/restart.window even when not under launchd (off-init)
    #[arg(long)]
    failure_budget: bool,
    /// Seconds between checks that the lock and socket paths are still ours
    /// (off-init); 0 disables the watcher process
    #[arg(long, value_name = "SECS", default_value = "0.5")]
    watch_interval: f64,
    /// The daemon and its arguments; default: the manifest's command
    #[arg(last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

impl Args {
    /// The common, well-formed command lines without clap: `initkit exec`
    /// runs on every daemon start, and building a clap parser there costs
    /// about a tenth of a millisecond of page faults. `None` for anything
    /// else (help, version, an unknown or repeated option, a value that
    /// looks like an option, conflicts, non-UTF-8 names): clap then parses,
    /// so help and errors stay clap's. A test checks that every `Some`
    /// equals clap's parse. `argv` starts after `exec`.
    pub fn fast(argv: &[OsString]) -> Option<Args> {
        // An option's value: the rest of `--opt=VALUE` or the next word.
        fn value<'a>(
            inline: Option<&'a str>,
            rest: &mut std::slice::Iter<'a, OsString>,
        ) -> Option<&'a std::ffi::OsStr> {
            let v = match inline {
                Some(v) => std::ffi::OsStr::new(v),
                None => rest.next()?.as_os_str(),
            };
            let first = v.as_encoded_bytes().first()?;
            (*first != b'-').then_some(v)
        }
        let mut manifest = None;
        let mut name = None;
        let mut failure_budget = false;
        let mut watch_interval = None;
        let mut rest = argv.iter();
        let mut command = Vec::new();
        while let Some(word) = rest.next() {
            let text = word.to_str()?;
            if text == "--" {
                command.extend(rest.by_ref().cloned());
                break;
            }
            if !text.starts_with('-') {
                if name.replace(text.to_owned()).is_some() {
                    return None;
                }
                continue;
            }
            let (option, inline) = match text.split_once('=') {
                Some((o, v)) => (o, Some(v)),
                None => (text, None),
            };
            match option {
                "--manifest" if manifest.is_none() => {
                    manifest = Some(PathBuf::from(value(inline, &mut rest)?));
                }
                "--watch-interval" if watch_interval.is_none() => {
                    watch_interval = Some(value(inline, &mut rest)?.to_str()?.parse::<f64>().ok()?);
                }
                "--failure-budget" if !failure_budget && inline.is_none() => failure_budget = true,
                _ => return None,
            }
        }
        if manifest.is_some() == name.is_some() {
            return None;
        }
        Some(Args {
            manifest,
            name,
            failure_budget,
            watch_interval: watch_interval.unwrap_or(0.5),
            command,
        })
    }
}

/// Everything checked before any side effect.
struct Plan {
    manifest: Manifest,
    /// Needed off-init and under launchd (paths), not to pass through.
    dirs: Result<Dirs, initkit::dirs::DirsError>,
    command: Vec<OsString>,
    failure_budget: bool,
    watch_interval: Option<Duration>,
}

fn plan(args: Args) -> anyhow::Result<Plan> {
    let manifest = match (&args.manifest, &args.name) {
        (Some(path), _) => super::load_manifest(path)?.manifest,
        (None, Some(name)) => installed_manifest(name)?,
        (None, None) => bail!("pass --manifest FILE or a service NAME"),
    };
    let dirs = Dirs::current(manifest.scope);
    let command = if args.command.is_empty() {
        let dirs = dirs.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        manifest
            .command
            .iter()
            .map(|t| dirs.resolve(t).into_os_string())
            .collect()
    } else {
        args.command
    };
    if !(args.watch_interval.is_finite() && args.watch_interval >= 0.0) {
        bail!("--watch-interval must be a number of seconds >= 0");
    }
    let watch_interval =
        (args.watch_interval > 0.0).then(|| Duration::from_secs_f64(args.watch_interval));
    Ok(Plan {
        manifest,
        dirs,
        command,
        failure_budget: args.failure_budget,
        watch_interval,
    })
}

/// The manifest `initkit install` recorded for `name`, user scope first, then
/// system. A scope whose registry cannot be located (no `HOME` for a system
/// service) is skipped.
fn installed_manifest(name: &str) -> anyhow::Result<Manifest> {
    use initkit::backend::registry;
    use initkit::manifest::Scope;
    let mut found = Vec::new();
    let mut looked = Vec::new();
    for scope in [Scope::User, Scope::System] {
        let Ok(dir) = registry::dir(scope) else {
            continue;
        };
        if let Some(installed) = registry::get_in(&dir, name)? {
            found.push(installed);
        }
        looked.push(dir.display().to_string());
    }
    match found.len() {
        0 => bail!(
            "no initkit-installed service named {name:?} (looked in {}); install it first, or pass --manifest FILE",
            looked.join(" and ")
        ),
        1 => Ok(found.remove(0).manifest),
        _ => bail!("{name:?} is installed for both the user and the system; pass --manifest FILE"),
    }
}

/// How this process was started, from what the environment says.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// systemd (or systemd-socket-activate) passed these fds to this pid.
    PassThrough(Vec<Passed>),
    /// Another pid's sockets: a wrapper forked between the manager and us.
    PidMismatch(Activation),
    /// Nobody passed sockets.
    OffInit,
}

fn mode(activation: Activation) -> Mode {
    match activation {
        Activation::Activated(passed) => Mode::PassThrough(passed),
        m @ Activation::PidMismatch { .. } => Mode::PidMismatch(m),
        Activation::NotActivated => Mode::OffInit,
    }
}

/// Every manifest socket must have been passed under its name.
fn check_passed_names(manifest: &Manifest, passed: &[Passed]) -> Result<(), String> {
    let names: Vec<&str> = passed.iter().map(|p| p.name.as_str()).collect();
    let missing: Vec<&str> = manifest
        .sockets
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| !names.contains(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the manifest's socket(s) {} were not passed (LISTEN_FDNAMES={}); is FileDescriptorName= set in the socket unit?",
            missing.join(", "),
            names.join(":")
        ))
    }
}

pub fn run(args: Args) -> anyhow::Result<Outcome> {
    // The pid check comes first: a forked wrapper must get exit 3 whatever
    // else is wrong.
    let activation = env::from_env().context("socket activation environment")?;
    if let Mode::PidMismatch(m) = mode(activation.clone()) {
        eprintln!("initkit exec: error: {m}; refusing to start a second listener (exit {EXIT_PID_MISMATCH})");
        std::process::exit(EXIT_PID_MISMATCH);
    }
    let plan = plan(args)?;
    match mode(activation) {
        Mode::PidMismatch(_) => unreachable!("handled above"),
        Mode::PassThrough(passed) => {
            for p in &passed {
                fd::inspect(p.fd, &p.name)?;
            }
            check_passed_names(&plan.manifest, &passed).map_err(anyhow::Error::msg)?;
            // Under the manager the paths may not resolve (no HOME for a
            // system service); then the check has nothing to look at.
            if let Ok(dirs) = &plan.dirs {
                apply_on_start(&plan.manifest, dirs)?;
            }
            Err(exec(&plan.command, None, None))
        }
        Mode::OffInit => {
            let dirs = plan.dirs.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
            // `report` with a watcher: the watcher reports, once the daemon
            // runs (and a start that finds the service running reports
            // nothing: it starts nothing).
            let in_watcher =
                plan.manifest.orphans.on_start == OnStart::Report && plan.watch_interval.is_some();
            if !in_watcher {
                apply_on_start(&plan.manifest, dirs)?;
            }
            #[cfg(any(target_os = "macos", initkit_check_macos))]
            if let Some(outcome) = launchd(&plan, dirs, in_watcher)? {
                return outcome;
            }
            if plan.failure_budget && budget_exhausted(&plan, dirs)? {
                return Ok(Outcome::Ok);
            }
            off_init(&plan, dirs, in_watcher)
        }
    }
}

/// Whether launchd started this process as the manifest's job: launchd sets
/// `XPC_SERVICE_NAME` to the job's label (a shell has it unset or `0`). Pure.
#[cfg_attr(
    not(any(target_os = "macos", initkit_check_macos)),
    allow(dead_code) // unit-tested on Linux; called on macOS
)]
pub fn is_launchd_job(xpc_service_name: Option<&std::ffi::OsStr>, label: &str) -> bool {
    xpc_service_name.is_some_and(|v| v == label)
}

/// Under launchd: activate the manifest's sockets by name and export them as
/// `LISTEN_*` from fd 3; launchd owns the single instance, so no guard; the
/// failure budget replaces the StartLimitBurst launchd lacks. `Ok(None)` when
/// this is not a launchd job.
#[cfg(any(target_os = "macos", initkit_check_macos))]
fn launchd(
    plan: &Plan,
    dirs: &Dirs,
    report: bool,
) -> anyhow::Result<Option<anyhow::Result<Outcome>>> {
    let job = is_launchd_job(
        std::env::var_os("XPC_SERVICE_NAME").as_deref(),
        &plan.manifest.label,
    );
    let passed = if job || !plan.manifest.sockets.is_empty() {
        launchd_sockets(&plan.manifest)?
    } else {
        None
    };
    if !job && passed.is_none() {
        return Ok(None);
    }
    if budget_exhausted(plan, dirs)? {
        return Ok(Some(Ok(Outcome::Ok)));
    }
    if report {
        // launchd owns the instance: no watcher runs here.
        report_in_background(&plan.manifest, dirs);
    }
    let owned = passed
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            // SAFETY: launchd just created these fds for this process.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(p.fd) };
            (p.name, fd)
        })
        .collect();
    let env = place_fds(owned, None)?;
    Ok(Some(Err(exec(&plan.command, Some(&env), None))))
}

/// `[orphans] on-start`: look for instances the manager does not track, with
/// the same classifier as `initkit orphans`. `terminate` and `refuse` decide
/// before the start, so they scan first; `report` (the default) changes
/// nothing about the start, so it scans in another process while the daemon
/// starts (off-init: the watcher): a process-table scan stays off the start's
/// hot path.
fn apply_on_start(manifest: &Manifest, dirs: &Dirs) -> anyhow::Result<()> {
    match manifest.orphans.on_start {
        OnStart::Report => {
            report_in_background(manifest, dirs);
            Ok(())
        }
        OnStart::Terminate | OnStart::Refuse => orphan_precheck(manifest, dirs, std::process::id()),
    }
}

/// Run the `report` scan in a grandchild (fork twice, reap the middle
/// child): the daemon, which keeps this pid, never gets a child it did not
/// start, nor a zombie. The grandchild holds no socket or lock (nothing is
/// bound yet), prints its findings to the inherited stderr and exits.
fn report_in_background(manifest: &Manifest, dirs: &Dirs) {
    use nix::unistd::{fork, ForkResult};
    let own_pid = std::process::id();
    // SAFETY: `initkit exec` is single-threaded here (no thread was
    // spawned), so the children may run ordinary code after fork.
    match unsafe { fork() } {
        Err(e) => eprintln!(
            "initkit exec {}: warning: orphan check skipped: fork: {e}",
            manifest.name
        ),
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::sys::wait::waitpid(child, None);
        }
        Ok(ForkResult::Child) => {
            // SAFETY: as above; the middle child only forks and exits.
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                // The lowest priority: the daemon's start comes first.
                // SAFETY: setpriority on this process only.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                null_stdin_stdout();
                let _ = orphan_precheck(manifest, dirs, own_pid);
                std::process::exit(0);
            }
            // SAFETY: _exit ends the middle child without running anything
            // that belongs to the parent (atexit handlers, buffered stdio).
            unsafe { libc::_exit(0) };
        }
    }
}

/// `own_pid`: this `initkit exec`, the instance about to start (the report
/// runs in another process).
fn orphan_precheck(manifest: &Manifest, dirs: &Dirs, own_pid: u32) -> anyhow::Result<()> {
    use initkit::manifest::OnStart;
    use initkit::orphan;
    let name = &manifest.name;
    let findings = match orphan::find(manifest, dirs, &own_view(own_pid)) {
        Ok(findings) => findings,
        Err(e) if manifest.orphans.on_start == OnStart::Refuse => {
            return Err(e).context("orphan check before start (on-start = refuse)")
        }
        Err(e) => {
            eprintln!("initkit exec {name}: warning: orphan check skipped: {e}");
            return Ok(());
        }
    };
    // One write per line: under `report` these lines interleave with the
    // daemon's own output on the same stderr.
    let mut stderr = std::io::stderr().lock();
    for f in &findings {
        let reasons: Vec<&str> = f.reasons.iter().map(|r| r.as_str()).collect();
        let line = format!(
            "initkit exec {name}: orphan pid {} ({}, {}): {}\n",
            f.pid,
            reasons.join(","),
            orphan::format_age(f.age_secs),
            f.argv.join(" ")
        );
        let _ = std::io::Write::write_all(&mut stderr, line.as_bytes());
    }
    drop(stderr);
    if findings.is_empty() {
        return Ok(());
    }
    match manifest.orphans.on_start {
        OnStart::Report => Ok(()),
        OnStart::Terminate => {
            let grace = Duration::from_secs(u64::from(manifest.stop_timeout.unwrap_or(5)));
            let report =
                orphan::kill(&findings, grace).context("stop orphans (on-start = terminate)")?;
            for pid in report.terminated.iter().chain(&report.killed) {
                eprintln!("initkit exec {name}: stopped orphan pid {pid}");
            }
            for (pid, why) in &report.skipped {
                eprintln!("initkit exec {name}: left orphan pid {pid} alone: {why:?}");
            }
            Ok(())
        }
        OnStart::Refuse => {
            let pids: Vec<String> = findings.iter().map(|f| f.pid.to_string()).collect();
            bail!(
                "refusing to start: {} untracked instance(s) run (pid {}); stop them with `initkit orphans --kill`, or set [orphans] on-start",
                findings.len(),
                pids.join(", ")
            )
        }
    }
}

/// The manager's view from inside: under systemd this process sits in its
/// unit's cgroup, and that cgroup is the instance; anywhere else it runs
/// off-init and the guard's lock holder is the instance. Either way
/// `own_pid` (this `initkit exec`, about to become the daemon) is the
/// instance too: naming it spares the scan a search for the holder of the
/// sockets it binds.
fn own_view(own_pid: u32) -> initkit::orphan::Tracked {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map(|t| initkit::scan::parse_cgroup(&t))
        .unwrap_or_default();
    let unit = [cgroup.0, cgroup.1]
        .into_iter()
        .flatten()
        .find(|p| p.ends_with(".service"));
    initkit::orphan::Tracked {
        guard: unit.is_none(),
        control_group: unit,
        pids: vec![own_pid],
        ..initkit::orphan::Tracked::default()
    }
}

#[cfg(any(target_os = "macos", initkit_check_macos))]
fn launchd_sockets(manifest: &Manifest) -> anyhow::Result<Option<Vec<Passed>>> {
    if manifest.sockets.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = manifest.sockets.iter().map(|s| s.name.as_str()).collect();
    Ok(initkit::activation::launchd::activate_all(&names)?)
}

/// Where the off-init guard's lock lives (shared with the orphan scanner).
fn lock_path(manifest: &Manifest, dirs: &Dirs) -> PathBuf {
    initkit::orphan::lock_path(manifest, dirs)
}

/// `report`: the watcher runs the `on-start = "report"` scan.
fn off_init(plan: &Plan, dirs: &Dirs, report: bool) -> anyhow::Result<Outcome> {
    let m = &plan.manifest;
    // Checked before anything is locked or bound.
    let unit = UnitSettings::of(m, dirs)?;
    let mut spec = GuardSpec::new(lock_path(m, dirs));
    if let Some(interval) = plan.watch_interval {
        spec = spec.takeover_wait(interval * 6);
    }
    for s in &m.sockets {
        if let Listen::Unix(path) = &s.listen {
            // systemd's SocketMode= defaults to 0666; match it off-init.
            let mode = s.mode.unwrap_or(0o666);
            spec = spec.unix_socket(&s.name, dirs.resolve(path), Some(mode), s.backlog);
        }
    }
    let guard = match spec.acquire().context("single-instance guard")? {
        Acquired::Won(guard) => guard,
        Acquired::AlreadyRunning(running) => {
            eprintln!("initkit exec {}: {running}", m.name);
            return Ok(Outcome::Ok);
        }
    };
    // Still holding the lock: bind the inet sockets (the kernel refuses a
    // second listener on a port, and nothing is ever unlinked for them).
    let mut inet = Vec::new();
    for s in &m.sockets {
        if !matches!(s.listen, Listen::Unix(_)) {
            inet.push((s.name.clone(), bind_inet(s)?));
        }
    }
    let parts = guard.into_exec_parts();
    // Manifest order: LISTEN_FDNAMES lists the sockets as the manifest does.
    let mut unix: Vec<(String, OwnedFd)> = parts.sockets;
    let mut ordered = Vec::with_capacity(m.sockets.len());
    for s in &m.sockets {
        let pool = if matches!(s.listen, Listen::Unix(_)) {
            &mut unix
        } else {
            &mut inet
        };
        let i = pool
            .iter()
            .position(|(n, _)| *n == s.name)
            .expect("every manifest socket was bound");
        ordered.push(pool.remove(i));
    }
    let env = place_fds(ordered, Some(parts.lock))?;
    if let Some(interval) = plan.watch_interval {
        let report = report.then_some((m, dirs));
        spawn_watcher(&parts.watch, interval, &env, report)?;
    }
    let err = exec(&plan.command, Some(&env), Some(&unit));
    // Nothing runs on our sockets: remove the paths we bound (still ours).
    parts.watch.cleanup_sockets();
    Err(err)
}

fn bind_inet(s: &Socket) -> anyhow::Result<OwnedFd> {
    let (host, port, tcp) = match &s.listen {
        Listen::Tcp { host, port } => (host, *port, true),
        Listen::Udp { host, port } => (host, *port, false),
        Listen::Unix(_) => unreachable!("unix sockets are bound by the guard"),
    };
    let hosts: Vec<String> = match host {
        Some(h) => vec![h.clone()],
        // Like systemd's ListenStream=PORT: dual-stack, else IPv4.
        None => vec!["::".into(), "0.0.0.0".into()],
    };
    let mut last = None;
    for h in hosts {
        let addr: std::net::IpAddr = h.parse().expect("the manifest validated IP literals");
        let addr = std::net::SocketAddr::new(addr, port);
        let bound = if tcp {
            std::net::TcpListener::bind(addr).map(OwnedFd::from)
        } else {
            std::net::UdpSocket::bind(addr).map(OwnedFd::from)
        };
        match bound {
            Ok(fd) => return Ok(fd),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("at least one address tried");
    Err(anyhow::Error::new(e).context(format!(
        "bind socket {:?} at {} {addr}",
        s.name,
        if tcp { "tcp" } else { "udp" }
    )))
}

/// The variables to export and how many fds sit at 3...
struct ListenEnv {
    fd_count: usize,
    names: String,
    /// Where the lock fd sits for the daemon, if there is one.
    lock_fd: Option<RawFd>,
}

/// Move `sockets` to fds 3, 4, ... (without CLOEXEC, so the daemon inherits
/// them) and the lock, if any, to the first fd above them (also inherited:
/// the flock stays held by the daemon). Everything else keeps CLOEXEC.
fn place_fds(sockets: Vec<(String, OwnedFd)>, lock: Option<OwnedFd>) -> anyhow::Result<ListenEnv> {
    let n = sockets.len();
    let above = LISTEN_FDS_START + RawFd::try_from(n).context("too many sockets")? + 1;
    let high = |fd: &OwnedFd| -> anyhow::Result<RawFd> {
        // SAFETY: F_DUPFD_CLOEXEC duplicates an fd we own to a new number >= `above`.
        let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, above) };
        if new < 0 {
            return Err(std::io::Error::last_os_error()).context("fcntl(F_DUPFD_CLOEXEC)");
        }
        Ok(new)
    };
    // First move everything above the target range, then close the originals
    // (some may sit inside 3..3+n), then dup2 into place.
    let mut names = Vec::with_capacity(n);
    let mut temps = Vec::with_capacity(n);
    for (name, fd) in &sockets {
        names.push(name.clone());
        temps.push(high(fd)?);
    }
    let lock_temp = lock.as_ref().map(high).transpose()?;
    drop(sockets);
    drop(lock);
    for (i, temp) in temps.iter().enumerate() {
        let target = LISTEN_FDS_START + RawFd::try_from(i).expect("bounded above");
        // SAFETY: dup2 onto the fixed LISTEN_FDS slot; the new fd has no CLOEXEC.
        if unsafe { libc::dup2(*temp, target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("dup2 socket into place");
        }
    }
    let mut lock_fd = None;
    if let Some(temp) = lock_temp {
        // SAFETY: F_DUPFD (no CLOEXEC) duplicates the lock fd above the sockets.
        let fd = unsafe { libc::fcntl(temp, libc::F_DUPFD, above - 1) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("keep the lock across exec");
        }
        lock_fd = Some(fd);
    }
    // The temporaries carry CLOEXEC and vanish at exec; close them now anyway.
    for temp in temps.into_iter().chain(lock_temp) {
        // SAFETY: these fds were created above and are owned by nobody else.
        unsafe { libc::close(temp) };
    }
    Ok(ListenEnv {
        fd_count: n,
        names: names.join(":"),
        lock_fd,
    })
}

/// A small child process that outlives the exec: while its parent (the
/// daemon, same pid as this process) lives, it checks every `interval` that
/// the lock and socket paths still name our inodes. When one vanishes or is
/// replaced it sends the daemon SIGTERM, so there are never two reachable
/// instances. When the daemon has exited it removes the socket paths that are
/// still ours and that nobody listens on any more, then exits.
///
/// With `report`, the watcher first runs the `on-start = "report"` orphan
/// scan, at the lowest priority (nice 19, kept for its life: its own work is
/// a few `stat`s per interval).
fn spawn_watcher(
    watch: &WatchSet,
    interval: Duration,
    listen: &ListenEnv,
    report: Option<(&Manifest, &Dirs)>,
) -> anyhow::Result<()> {
    let daemon = nix::unistd::getpid();
    // The daemon starts only once the watcher has let go of the lock and the
    // sockets (EOF on this pipe: the watcher closes its end after them).
    // Otherwise a daemon that exits at once would leave them held by a
    // watcher not yet scheduled, and the next start would find the lock
    // taken and report "already running" with nothing running.
    let (released, release) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe for the path watcher")?;
    // SAFETY: `initkit exec` is single-threaded (no thread was spawned), so
    // the child may run ordinary code after fork.
    match unsafe { nix::unistd::fork() }.context("fork the path watcher")? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(release);
            // EOF also when the watcher dies first; read_to_end retries EINTR.
            let _ = std::io::Read::read_to_end(&mut std::fs::File::from(released), &mut Vec::new());
            Ok(())
        }
        nix::unistd::ForkResult::Child => {
            // Hold neither the sockets nor the lock: a dead daemon must look
            // dead (ECONNREFUSED, lock free).
            let end = LISTEN_FDS_START + RawFd::try_from(listen.fd_count).unwrap_or(0);
            for fd in (LISTEN_FDS_START..end).chain(listen.lock_fd) {
                // SAFETY: closing the inherited listening fds and the lock fd in the child.
                unsafe { libc::close(fd) };
            }
            drop((released, release));
            null_stdin_stdout();
            // Live exactly as long as the daemon: a Ctrl-C or a group kill
            // must not take the watcher (and its cleanup) away first.
            for sig in [
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::Signal::SIGTERM,
                nix::sys::signal::Signal::SIGHUP,
                nix::sys::signal::Signal::SIGQUIT,
            ] {
                // SAFETY: SIG_IGN installs no handler code.
                let _ =
                    unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigIgn) };
            }
            if let Some((manifest, dirs)) = report {
                // SAFETY: setpriority on this process only.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                let _ = orphan_precheck(manifest, dirs, daemon.as_raw().unsigned_abs());
            }
            let mut signalled = false;
            loop {
                std::thread::sleep(interval);
                if nix::unistd::getppid() != daemon {
                    watch.cleanup_stale_sockets();
                    std::process::exit(0);
                }
                if signalled {
                    continue;
                }
                if let Err(lost) = watch.check() {
                    eprintln!("initkit exec: {lost}; sending SIGTERM to pid {daemon}");
                    let _ = nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGTERM);
                    signalled = true;
                }
            }
        }
    }
}

/// Replace this process with `command`; returns only on failure.
fn exec(
    command: &[OsString],
    listen: Option<&ListenEnv>,
    unit: Option<&UnitSettings>,
) -> anyhow::Error {
    let Some((program, args)) = command.split_first() else {
        return anyhow::anyhow!("no command to run");
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if let Some(unit) = unit {
        cmd.envs(unit.environment.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &unit.working_directory {
            cmd.current_dir(dir);
        }
        // std sets the group first, drops supplementary groups, then the user.
        if let Some(gid) = unit.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = unit.uid {
            cmd.uid(uid);
        }
    }
    if let Some(listen) = listen {
        for var in env::ACTIVATION_VARS {
            cmd.env_remove(var);
        }
        if listen.fd_count > 0 {
            cmd.env("LISTEN_PID", std::process::id().to_string())
                .env("LISTEN_FDS", listen.fd_count.to_string())
                .env("LISTEN_FDNAMES", &listen.names);
        }
    }
    let err = cmd.exec();
    anyhow::Error::new(err).context(format!("exec {}", display_argv(command)))
}

/// What the generated unit or plist sets for the daemon, applied by exec
/// off-init so the daemon runs the same there: environment, working
/// directory, and (system scope, started as root) the manifest's user and
/// group. Supplementary groups are dropped, not initialised.
struct UnitSettings {
    environment: Vec<(String, OsString)>,
    working_directory: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl UnitSettings {
    fn of(manifest: &Manifest, dirs: &Dirs) -> anyhow::Result<UnitSettings> {
        let user = match &manifest.user {
            Some(name) => Some(
                nix::unistd::User::from_name(name)
                    .with_context(|| format!("look up user {name:?}"))?
                    .with_context(|| format!("user {name:?} (from the manifest) does not exist"))?,
            ),
            None => None,
        };
        let group = match &manifest.group {
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .with_context(|| format!("look up group {name:?}"))?
                    .with_context(|| format!("group {name:?} (from the manifest) does not exist"))?
                    .gid,
            ),
            None => user.as_ref().map(|u| u.gid),
        };
        let euid = nix::unistd::geteuid();
        let uid = user.as_ref().map(|u| u.uid).filter(|u| *u != euid);
        let gid = group.filter(|g| *g != nix::unistd::getegid());
        if (uid.is_some() || gid.is_some()) && !euid.is_root() {
            bail!(
                "the manifest runs the daemon as {}; start initkit exec as root or as that user",
                manifest.user.as_deref().unwrap_or("another group")
            );
        }
        Ok(UnitSettings {
            environment: manifest
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), dirs.resolve(v).into_os_string()))
                .collect(),
            working_directory: manifest.working_directory.as_ref().map(|t| dirs.resolve(t)),
            uid: uid.map(nix::unistd::Uid::as_raw),
            gid: gid.map(nix::unistd::Gid::as_raw),
        })
    }
}

fn display_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Failure budget: launchd has no StartLimitBurst.

/// Whether to start, given earlier start times (unix seconds) and `now`.
/// Pure: returns the decision and the history to store.
///
/// Starts older than `window` seconds are forgotten, so a daemon that stayed
/// up longer than the window starts with a clean slate. With `burst` starts
/// already inside the window, the next start is refused.
pub fn budget(history: &[u64], now: u64, burst: u32, window: u32) -> (bool, Vec<u64>) {
    let mut recent: Vec<u64> = history
        .iter()
        .copied()
        .filter(|t| *t <= now && now - *t < u64::from(window))
        .collect();
    if recent.len() >= burst as usize {
        return (false, recent);
    }
    recent.push(now);
    (true, recent)
}

fn parse_history(text: &str) -> Vec<u64> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Record this start; true when the budget is exhausted (caller exits 0).
fn budget_exhausted(plan: &Plan, dirs: &Dirs) -> anyhow::Result<bool> {
    let (Some(burst), Some(window)) = (plan.manifest.restart.burst, plan.manifest.restart.window)
    else {
        return Ok(false);
    };
    let dir = dirs.state.join("initkit");
    let file = dir.join(format!("{}.starts", plan.manifest.name));
    let history = match std::fs::read_to_string(&file) {
        Ok(text) => parse_history(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (start, keep) = budget(&history, now, burst, window);
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let text: String = keep.iter().fold(String::new(), |mut out, t| {
        out.push_str(&t.to_string());
        out.push('\n');
        out
    });
    initkit::fsutil::write_atomic(&file, text.as_bytes(), 0o600)
        .with_context(|| format!("write {}", file.display()))?;
    if !start {
        eprintln!(
            "initkit exec {}: {burst} starts within {window} s; not starting again (failure budget exhausted). It resets {window} s after the last start; fix the crash and start it then, or remove {}",
            plan.manifest.name,
            file.display()
        );
    }
    Ok(!start)
}

/// Point stdin and stdout of this (background child) process at /dev/null;
/// stderr stays, so its reports still reach the user.
fn null_stdin_stdout() {
    if let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        // SAFETY: dup2 over fds 0 and 1 of this process only; `null` stays
        // open for the duration of both calls.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_burst_then_refuses_then_resets() {
        let (ok, h) = budget(&[], 100, 3, 60);
        assert!(ok);
        let (ok, h) = budget(&h, 110, 3, 60);
        assert!(ok);
        let (ok, h) = budget(&h, 120, 3, 60);
        assert!(ok);
        assert_eq!(h, [100, 110, 120]);
        let (ok, h2) = budget(&h, 130, 3, 60);
        assert!(!ok, "a 4th start within 60 s is refused");
        assert_eq!(h2, [100, 110, 120], "a refused start is not recorded");
        // Stable for longer than the window: clean slate.
        let (ok, h3) = budget(&h, 200, 3, 60);
        assert!(ok);
        assert_eq!(h3, [200]);
        // A start time in the future (clock went back) is forgotten.
        assert!(budget(&[500, 501, 502], 100, 3, 60).0);
        assert_eq!(parse_history("1\n\nx\n2\n"), [1, 2]);
    }

    #[test]
    fn launchd_job_is_recognised_by_label_only() {
        use std::ffi::OsStr;
        assert!(is_launchd_job(
            Some(OsStr::new("initkit.echo")),
            "initkit.echo"
        ));
        assert!(!is_launchd_job(Some(OsStr::new("0")), "initkit.echo"));
        assert!(!is_launchd_job(
            Some(OsStr::new("com.apple.Terminal")),
            "initkit.echo"
        ));
        assert!(!is_launchd_job(None, "initkit.echo"));
    }

    #[test]
    fn mode_from_activation() {
        assert_eq!(mode(Activation::NotActivated), Mode::OffInit);
        let m = Activation::PidMismatch {
            listen_pid: 1,
            self_pid: 2,
        };
        assert_eq!(mode(m.clone()), Mode::PidMismatch(m));
    }

    #[test]
    fn passed_names_must_cover_the_manifest() {
        let m = Manifest::from_toml(
            "name = \"e\"\ncommand = [\"/bin/e\"]\n[[socket]]\nname = \"control\"\nlisten = \"unix:/tmp/e.sock\"\n[[socket]]\nname = \"http\"\nlisten = \"tcp:8080\"\n",
        )
        .unwrap();
        let p = |names: &[&str]| -> Vec<Passed> {
            names
                .iter()
                .zip(3..)
                .map(|(n, fd)| Passed {
                    fd,
                    name: (*n).to_owned(),
                })
                .collect()
        };
        assert!(check_passed_names(&m, &p(&["http", "control"])).is_ok());
        let err = check_passed_names(&m, &p(&["control", "unknown"])).unwrap_err();
        assert!(
            err.starts_with(
                "the manifest's socket(s) http were not passed (LISTEN_FDNAMES=control:unknown)"
            ),
            "{err}"
        );
    }
}
