//! The systemd backend: `org.freedesktop.systemd1` over D-Bus (zbus, blocking).
//!
//! The user manager is reached on the user bus (`$DBUS_SESSION_BUS_ADDRESS`,
//! else `unix:path=$XDG_RUNTIME_DIR/bus`), the system manager on the system
//! bus. The connection is opened on first use, so planning (`--dry-run`)
//! never needs a bus.
//!
//! Jobs (`StartUnit`, `StopUnit`, `RestartUnit`) are waited for: after the
//! call returns the job path, initkit polls `ListJobs` until the job is gone,
//! then reads the unit's state and fails with its `Result` when the job did not
//! get the unit where it was asked to go.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::OwnedObjectPath;

use super::dbus::{ManagerProxy, UnitPropertiesProxy};
use super::{
    thrash_reason, BackendError, ManagerView, Rewrite, ServiceManager, ServiceStatus, UnitState,
};
use crate::dirs::{Dirs, DirsError};
use crate::manifest::{Manifest, Scope};
use crate::render::{RenderError, Rendered};

/// How long a job may take before initkit gives up waiting (the manifest's
/// start/stop timeout plus this margin, or systemd's default 90 s plus it).
const JOB_MARGIN: Duration = Duration::from_secs(30);

/// One action on systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `Reload()`: re-read unit files (`daemon-reload`).
    Reload,
    /// `EnableUnitFiles(units)`: create the [Install] symlinks.
    Enable(Vec<String>),
    /// `DisableUnitFiles(units)`.
    Disable(Vec<String>),
    /// `StartUnit(unit, "replace")`, waiting for the job.
    Start(String),
    /// `StopUnit(unit, "replace")`, waiting for the job.
    Stop(String),
    /// `RestartUnit(unit, "replace")`, waiting for the job.
    Restart(String),
    /// `ResetFailedUnit(unit)` for each: clears the failed state and the start
    /// rate limit; a unit that is not loaded is skipped.
    ResetFailed(Vec<String>),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Reload => write!(f, "reload the manager (daemon-reload)"),
            Step::Enable(units) => write!(f, "enable {}", units.join(" ")),
            Step::Disable(units) => write!(f, "disable {}", units.join(" ")),
            Step::Start(unit) => write!(f, "start {unit}"),
            Step::Stop(unit) => write!(f, "stop {unit}"),
            Step::Restart(unit) => write!(f, "restart {unit}"),
            Step::ResetFailed(units) => write!(f, "reset-failed {}", units.join(" ")),
        }
    }
}

/// Where the bus is, or why it cannot be found. Pure: takes the variables.
pub fn user_bus_address(
    session_bus: Option<&str>,
    runtime_dir: Option<&Path>,
) -> Result<String, BackendError> {
    if let Some(address) = session_bus.filter(|a| !a.is_empty()) {
        return Ok(address.to_owned());
    }
    match runtime_dir.filter(|d| d.is_absolute()) {
        Some(dir) => Ok(format!("unix:path={}", dir.join("bus").display())),
        None => Err(BackendError::NoUserBus),
    }
}

/// The unit directory for a scope: `$XDG_CONFIG_HOME/systemd/user` or
/// `/etc/systemd/system`.
pub fn unit_dir(scope: Scope, dirs: &Dirs) -> PathBuf {
    match scope {
        Scope::User => dirs.config.join("systemd/user"),
        Scope::System => PathBuf::from("/etc/systemd/system"),
    }
}

/// `$XDG_CONFIG_HOME/systemd/user` (default `~/.config/systemd/user`) from
/// the variables `lookup` reports; needs no `XDG_RUNTIME_DIR`, so
/// `install --dry-run` works without a session.
pub fn user_unit_dir(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, DirsError> {
    let abs = |k: &str| lookup(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let config = match abs("XDG_CONFIG_HOME") {
        Some(c) => c,
        None => abs("HOME")
            .ok_or(DirsError {
                variable: "HOME",
                placeholder: "home",
            })?
            .join(".config"),
    };
    Ok(config.join("systemd/user"))
}

/// Unit names of the rendered files, in the order they were rendered.
fn unit_names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// The lines of one `[name]` section of a unit file, comments and blank
/// lines left out. Pure.
fn section<'a>(unit: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut lines = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.is_empty() && !line.starts_with(['#', ';']) {
            lines.push(line);
        }
    }
    lines
}

/// The units of a manifest: entry (socket or timer) first, then the service.
fn units(m: &Manifest) -> Vec<String> {
    let mut out: Vec<String> = m.socket_units().into_iter().chain(m.timer_unit()).collect();
    out.push(m.service_unit());
    out
}

/// The systemd manager of one scope.
pub struct Systemd {
    scope: Scope,
    unit_dir: PathBuf,
    /// `None` for the system bus.
    user_address: Option<Result<String, String>>,
    connection: OnceLock<Connection>,
    job_timeout: Duration,
}

impl fmt::Debug for Systemd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Systemd")
            .field("scope", &self.scope)
            .field("unit_dir", &self.unit_dir)
            .finish_non_exhaustive()
    }
}

impl Systemd {
    /// The manager of `scope` as seen from this process's environment. Does
    /// not connect yet.
    pub fn new(scope: Scope) -> Result<Systemd, DirsError> {
        let unit_dir = match scope {
            Scope::User => user_unit_dir(|k| std::env::var_os(k))?,
            Scope::System => unit_dir(Scope::System, &Dirs::system()),
        };
        let user_address = (scope == Scope::User).then(|| {
            user_bus_address(
                std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().as_deref(),
                std::env::var_os("XDG_RUNTIME_DIR")
                    .map(PathBuf::from)
                    .as_deref(),
            )
            .map_err(|e| e.to_string())
        });
        Ok(Systemd {
            scope,
            unit_dir,
            user_address,
            connection: OnceLock::new(),
            job_timeout: Duration::from_secs(90) + JOB_MARGIN,
        })
    }

    /// The user manager on the bus at `address` (e.g.
    /// `unix:path=/run/user/1000/bus`), with units in `unit_dir`; for callers
    /// that know where the manager is without reading this process's
    /// environment.
    pub fn user_at(address: String, unit_dir: PathBuf) -> Systemd {
        Systemd {
            scope: Scope::User,
            unit_dir,
            user_address: Some(Ok(address)),
            connection: OnceLock::new(),
            job_timeout: Duration::from_secs(90) + JOB_MARGIN,
        }
    }

    fn connection(&self) -> Result<&Connection, BackendError> {
        if let Some(c) = self.connection.get() {
            return Ok(c);
        }
        let connection = match &self.user_address {
            None => Connection::system().map_err(|error| BackendError::Connect {
                bus: "system",
                address: std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| {
                    "unix:path=/var/run/dbus/system_bus_socket".to_owned()
                }),
                hint: "is this machine booted with systemd? system services need the system bus and PID 1 systemd",
                error: Box::new(error),
            })?,
            Some(Err(_)) => return Err(BackendError::NoUserBus),
            Some(Ok(address)) => zbus::blocking::connection::Builder::address(address.as_str())
                .and_then(zbus::blocking::connection::Builder::build)
                .map_err(|error| BackendError::Connect {
                    bus: "user",
                    address: address.clone(),
                    hint: "is the systemd user manager running? log in as the user so that systemd --user runs, or enable linger",
                    error: Box::new(error),
                })?,
        };
        Ok(self.connection.get_or_init(|| connection))
    }

    fn manager(&self) -> Result<ManagerProxy<'_>, BackendError> {
        let conn = self.connection()?;
        ManagerProxy::new(conn)
            .map_err(|source| call_err("connect to", "org.freedesktop.systemd1", source))
    }

    /// Every property of `unit`, in one `GetAll("")` on its object path
    /// (systemd loads a unit that is not loaded yet when its path is used,
    /// as `LoadUnit` would).
    fn properties(&self, unit: &str) -> Result<UnitProps, BackendError> {
        let path = unit_object_path(unit);
        let map = UnitPropertiesProxy::builder(self.connection()?)
            .path(path.as_str())
            .map(|b| b.cache_properties(zbus::proxy::CacheProperties::No))
            .and_then(zbus::blocking::proxy::Builder::build)
            .and_then(|p| p.get_all(""))
            .map_err(|source| call_err("GetAll properties of", unit, source))?
            .0;
        Ok(UnitProps {
            unit: unit.to_owned(),
            map,
        })
    }

    /// What systemd tracks for a service unit: its cgroup, main pid and every
    /// pid in the cgroup (`GetUnitProcesses`).
    pub fn unit_view(&self, service_unit: &str) -> Result<ManagerView, BackendError> {
        let props = self.properties(service_unit)?;
        let processes = if props.string("ControlGroup")?.is_empty() {
            Vec::new()
        } else {
            self.unit_processes(service_unit)?
        };
        view_from(&props, processes)
    }

    /// Every pid in the unit's cgroup; none when it is not loaded.
    fn unit_processes(&self, unit: &str) -> Result<Vec<u32>, BackendError> {
        match self.manager()?.get_unit_processes(unit) {
            Ok(procs) => Ok(procs.into_iter().map(|(_, pid, _)| pid).collect()),
            // stopped (and unloaded) in between: no processes
            Err(e) if is_no_such_unit(&e) => Ok(Vec::new()),
            Err(e) => Err(call_err("GetUnitProcesses", unit, e)),
        }
    }

    /// Every unit of `m`, and with `processes` the service's pids, asked
    /// concurrently on the one connection: each call is a round trip through
    /// the bus, and none depends on another's answer.
    fn read_units(&self, m: &Manifest, processes: bool) -> Result<UnitReads, BackendError> {
        self.connection()?;
        let service_unit = m.service_unit();
        std::thread::scope(|s| {
            let sockets: Vec<_> = m
                .socket_units()
                .into_iter()
                .map(|u| s.spawn(move || self.properties(&u)))
                .collect();
            let timer = m.timer_unit().map(|u| s.spawn(move || self.properties(&u)));
            let pids = processes.then(|| s.spawn(|| self.unit_processes(&service_unit)));
            let service = self.properties(&service_unit);
            Ok(UnitReads {
                sockets: sockets.into_iter().map(join).collect::<Result<_, _>>()?,
                timer: timer.map(join).transpose()?,
                processes: pids.map(join).transpose()?.unwrap_or_default(),
                service: service?,
            })
        })
    }

    fn status_from(&self, m: &Manifest, reads: &UnitReads) -> Result<ServiceStatus, BackendError> {
        let props = &reads.service;
        let service = props.state()?;
        let mut sockets = Vec::new();
        let mut listen = Vec::new();
        for socket in &reads.sockets {
            sockets.push(socket.state()?);
            listen.extend(socket.listen()?.into_iter().map(|(_, address)| address));
        }
        let timer = reads.timer.as_ref().map(UnitProps::state).transpose()?;
        let main_pid = props.u32("MainPID")?;
        let status_text = props.string("StatusText")?;
        let thrash = thrash_reason(&service, &sockets);
        let start_limit_hit = super::start_limit_hit(&service, &sockets);
        let linger = match self.scope {
            Scope::User => super::linger::current_user_lingers(),
            Scope::System => None,
        };
        Ok(ServiceStatus {
            name: m.name.clone(),
            scope: self.scope,
            manager: "systemd",
            manifest: None,
            service,
            sockets,
            timer,
            main_pid: (main_pid != 0).then_some(main_pid),
            n_restarts: Some(props.u32("NRestarts")?),
            exec_main_status: Some(props.i32("ExecMainStatus")?),
            listen,
            status_text: (!status_text.is_empty()).then_some(status_text),
            start_limit_hit,
            thrash: thrash.is_some(),
            thrash_reason: thrash,
            linger,
            orphans: None,
        })
    }

    /// Run a job-returning call and wait for the job to finish; then check
    /// the unit got where `verb` asked.
    fn job(
        &self,
        verb: &'static str,
        call: &'static str,
        unit: &str,
        f: impl FnOnce(&ManagerProxy<'_>) -> zbus::Result<OwnedObjectPath>,
    ) -> Result<(), BackendError> {
        let manager = self.manager()?;
        let job = f(&manager).map_err(|e| call_err(call, unit, e))?;
        let deadline = Instant::now() + self.job_timeout;
        loop {
            let jobs = manager
                .list_jobs()
                .map_err(|e| call_err("ListJobs for", unit, e))?;
            if !jobs.iter().any(|j| j.4 == job) {
                break;
            }
            if Instant::now() > deadline {
                return Err(BackendError::Timeout {
                    verb,
                    unit: unit.to_owned(),
                    secs: self.job_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let props = self.properties(unit)?;
        let state = props.state()?;
        let ok = match verb {
            "stop" => !matches!(state.active_state.as_str(), "active" | "reloading"),
            _ => matches!(
                state.active_state.as_str(),
                "active" | "activating" | "reloading"
            ),
        };
        if ok {
            return Ok(());
        }
        let hint = match state.result.as_str() {
            "start-limit-hit" | "service-start-limit-hit" => {
                "; it crashed too often: fix the daemon, then `initkit start` resets the limit"
                    .to_owned()
            }
            _ if verb != "stop" => format!("; see `initkit logs {}`", props.service_name()),
            _ => String::new(),
        };
        Err(BackendError::JobFailed {
            verb,
            state: Box::new(state),
            hint,
        })
    }
}

/// A unit's object path as systemd derives it from the name
/// (`sd_bus_path_encode`): every byte other than an ASCII letter or digit,
/// and a leading digit, becomes `_xx` (two lowercase hex digits). Pure.
pub fn unit_object_path(unit: &str) -> String {
    use std::fmt::Write as _;
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        path.push('_');
    }
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            path.push(char::from(b));
        } else {
            let _ = write!(path, "_{b:02x}");
        }
    }
    path
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// What `read_units` got.
struct UnitReads {
    service: UnitProps,
    sockets: Vec<UnitProps>,
    timer: Option<UnitProps>,
    /// The service's pids (`GetUnitProcesses`), when asked for.
    processes: Vec<u32>,
}

/// The manager view from a service's properties and the pids in its
/// cgroup (ignored when it has no cgroup: not running).
fn view_from(service: &UnitProps, mut pids: Vec<u32>) -> Result<ManagerView, BackendError> {
    let control_group = service.string("ControlGroup")?;
    let main_pid = service.u32("MainPID")?;
    if control_group.is_empty() {
        pids.clear();
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(ManagerView {
        control_group: (!control_group.is_empty()).then_some(control_group),
        main_pid: (main_pid != 0).then_some(main_pid),
        pids,
    })
}

/// The properties of one unit, from one `GetAll("")`.
struct UnitProps {
    unit: String,
    map: std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
}

impl UnitProps {
    /// One of [`super::dbus::READ_PROPERTIES`].
    fn get<'a, T>(&'a self, name: &'static str) -> Result<T, BackendError>
    where
        T: TryFrom<&'a zbus::zvariant::Value<'a>>,
        <T as TryFrom<&'a zbus::zvariant::Value<'a>>>::Error: Into<zbus::zvariant::Error>,
    {
        let value = self.map.get(name).ok_or_else(|| {
            call_err(
                "read property of",
                &self.unit,
                zbus::Error::Failure(format!("no property {name}")),
            )
        })?;
        value.downcast_ref::<T>().map_err(|e| {
            call_err(
                "read property of",
                &self.unit,
                zbus::Error::Failure(format!("{name}: {e}")),
            )
        })
    }

    fn string(&self, name: &'static str) -> Result<String, BackendError> {
        self.get::<&str>(name).map(str::to_owned)
    }

    fn u32(&self, name: &'static str) -> Result<u32, BackendError> {
        self.get(name)
    }

    fn i32(&self, name: &'static str) -> Result<i32, BackendError> {
        self.get(name)
    }

    /// The initkit service a unit belongs to, for `initkit logs NAME`: the
    /// service's name, or for a socket or timer that of the service it
    /// triggers (`NAME-http.socket` belongs to `NAME`).
    fn service_name(&self) -> String {
        let base = |unit: &str| unit.rsplit_once('.').map_or(unit, |(b, _)| b).to_owned();
        if !self.unit.ends_with(".service") {
            let triggered: Option<&zbus::zvariant::Array<'_>> = self.get("Triggers").ok();
            let service = triggered.into_iter().flat_map(|a| a.iter()).find_map(|v| {
                <&str>::try_from(v)
                    .ok()
                    .filter(|u| u.ends_with(".service"))
                    .map(base)
            });
            if let Some(service) = service {
                return service;
            }
        }
        base(&self.unit)
    }

    /// A socket's `Listen`: (type, address) pairs.
    fn listen(&self) -> Result<Vec<(String, String)>, BackendError> {
        let array: &zbus::zvariant::Array<'_> = self.get("Listen")?;
        array
            .iter()
            .map(|v| {
                let pair: (String, String) = v
                    .try_clone()
                    .map_err(zbus::Error::from)
                    .and_then(|v| v.try_into().map_err(zbus::Error::from))
                    .map_err(|e| call_err("read property of", &self.unit, e))?;
                Ok(pair)
            })
            .collect()
    }

    /// `Result` lives on the type's interface: services, sockets and timers
    /// have one; other units report "".
    fn state(&self) -> Result<UnitState, BackendError> {
        Ok(UnitState {
            unit: self.unit.clone(),
            load_state: self.string("LoadState")?,
            active_state: self.string("ActiveState")?,
            sub_state: self.string("SubState")?,
            result: if self.map.contains_key("Result") {
                self.string("Result")?
            } else {
                String::new()
            },
        })
    }
}

fn call_err(call: &'static str, target: &str, source: zbus::Error) -> BackendError {
    BackendError::Call {
        call,
        target: target.to_owned(),
        error: Box::new(source),
    }
}

fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit"
            || name.as_str() == "org.freedesktop.systemd1.LoadFailed")
}

impl ServiceManager for Systemd {
    type Step = Step;

    fn kind(&self) -> &'static str {
        "systemd"
    }

    /// Wait at most the manifest's start/stop timeout (default 90 s) plus
    /// 30 s for a job.
    fn with_timeouts_of(mut self, m: &Manifest) -> Systemd {
        let secs = m.start_timeout.max(m.stop_timeout).unwrap_or(90).max(90);
        self.job_timeout = Duration::from_secs(u64::from(secs)) + JOB_MARGIN;
        self
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn unit_dir(&self) -> &Path {
        &self.unit_dir
    }

    fn render(&self, manifest: &Manifest, source_name: &str) -> Result<Rendered, RenderError> {
        crate::render::systemd::render(manifest, source_name)
    }

    fn install_steps(&self, m: &Manifest, files: &[PathBuf], start: bool) -> Vec<Step> {
        let mut steps = vec![Step::Reload, Step::Enable(unit_names(files))];
        if start {
            steps.extend(m.entry_units().into_iter().map(Step::Start));
        }
        steps
    }

    /// Stops every unit of the manifest and any other unit among the
    /// recorded files (one a failed reinstall could not retire), entry units
    /// before the service.
    fn uninstall_steps(&self, m: &Manifest, files: &[PathBuf]) -> (Vec<Step>, Vec<Step>) {
        let ours = units(m);
        let mut all: Vec<String> = unit_names(files)
            .into_iter()
            .filter(|u| !ours.contains(u))
            .collect();
        all.extend(ours);
        let mut before: Vec<Step> = all.iter().cloned().map(Step::Stop).collect();
        before.push(Step::Disable(unit_names(files)));
        // Failed units stay loaded until reset; the reload then drops them.
        let after = vec![Step::ResetFailed(all), Step::Reload];
        (before, after)
    }

    /// Stops, disables and resets the units whose files are going (the
    /// reload that follows makes the manager forget them), and stops each
    /// socket unit whose `[Socket]` section changed: on reload systemd keeps
    /// the fds it bound, so a new address would not be listened on until the
    /// socket restarts. Stopped now, under its old definition, systemd
    /// removes the old socket file (`RemoveOnStop=`). When any socket changed
    /// or is new, the service is stopped too (a socket's stop already stops
    /// the service that `Requires=` it): a running service would not get the
    /// new fds, and systemd refuses to start a socket whose service is
    /// already active. The next client starts it with every socket.
    fn prepare_steps(
        &self,
        previous: Option<&Manifest>,
        stale: &[PathBuf],
        rewrites: &[Rewrite<'_>],
    ) -> Vec<Step> {
        let retired = unit_names(stale);
        let changed: Vec<&Rewrite<'_>> = rewrites
            .iter()
            .filter(|r| r.path.extension().is_some_and(|e| e == "socket"))
            .filter(|r| section(r.old, "Socket") != section(r.new, "Socket"))
            .collect();
        let rebind: Vec<PathBuf> = changed
            .iter()
            .filter(|r| !r.old.is_empty())
            .map(|r| r.path.to_path_buf())
            .collect();
        let service = previous
            .filter(|_| !changed.is_empty())
            .map(Manifest::service_unit);
        let mut steps: Vec<Step> = retired
            .iter()
            .cloned()
            .chain(unit_names(&rebind))
            .chain(service)
            .map(Step::Stop)
            .collect();
        if !retired.is_empty() {
            steps.push(Step::Disable(retired.clone()));
            steps.push(Step::ResetFailed(retired));
        }
        steps
    }

    /// `start` means "I want it running now": the failed state and start
    /// rate limit of the units are reset first, so it recovers a crash loop.
    fn start_steps(&self, m: &Manifest) -> Vec<Step> {
        let mut steps = vec![Step::ResetFailed(units(m))];
        steps.extend(m.entry_units().into_iter().map(Step::Start));
        steps
    }

    /// Stops the socket or timer first, so nothing re-activates the service.
    fn stop_steps(&self, m: &Manifest) -> Vec<Step> {
        units(m).into_iter().map(Step::Stop).collect()
    }

    /// The socket keeps listening (same inode, connections queue) while the
    /// service restarts. Like `start`, an explicit restart first resets the
    /// failed state and start rate limit: systemd counts every start, manual
    /// ones too, so twenty quick restarts would otherwise hit the limit.
    fn restart_steps(&self, m: &Manifest) -> Vec<Step> {
        let mut steps = vec![Step::ResetFailed(units(m))];
        if !m.sockets.is_empty() || m.timer_unit().is_some() {
            steps.extend(m.entry_units().into_iter().map(Step::Start));
        }
        steps.push(Step::Restart(m.service_unit()));
        steps
    }

    fn connect(&self) -> Result<(), BackendError> {
        // A proxy alone does not talk to the bus; ask the manager something.
        self.manager()?
            .list_jobs()
            .map(drop)
            .map_err(|e| call_err("ListJobs on", "org.freedesktop.systemd1", e))
    }

    fn perform(&self, step: &Step) -> Result<(), BackendError> {
        match step {
            Step::Reload => self
                .manager()?
                .reload()
                .map_err(|e| call_err("Reload", "(daemon-reload)", e)),
            Step::Enable(units) => {
                let names: Vec<&str> = units.iter().map(String::as_str).collect();
                self.manager()?
                    .enable_unit_files(&names, false, false)
                    .map(drop)
                    .map_err(|e| call_err("EnableUnitFiles", &units.join(" "), e))
            }
            Step::Disable(units) => {
                let names: Vec<&str> = units.iter().map(String::as_str).collect();
                self.manager()?
                    .disable_unit_files(&names, false)
                    .map(drop)
                    .map_err(|e| call_err("DisableUnitFiles", &units.join(" "), e))
            }
            Step::Start(unit) => self.job("start", "StartUnit", unit, |m| {
                m.start_unit(unit, "replace")
            }),
            Step::Stop(unit) => {
                // Stopping a unit that is not loaded is already done.
                match self.manager()?.get_unit(unit) {
                    Err(e) if is_no_such_unit(&e) => return Ok(()),
                    Err(e) => return Err(call_err("GetUnit", unit, e)),
                    Ok(_) => {}
                }
                self.job("stop", "StopUnit", unit, |m| m.stop_unit(unit, "replace"))
            }
            Step::Restart(unit) => self.job("restart", "RestartUnit", unit, |m| {
                m.restart_unit(unit, "replace")
            }),
            Step::ResetFailed(units) => {
                let manager = self.manager()?;
                for unit in units {
                    match manager.reset_failed_unit(unit) {
                        Ok(()) => {}
                        Err(e) if is_no_such_unit(&e) => {}
                        Err(e) => return Err(call_err("ResetFailedUnit", unit, e)),
                    }
                }
                Ok(())
            }
        }
    }

    fn status(&self, m: &Manifest) -> Result<ServiceStatus, BackendError> {
        let reads = self.read_units(m, false)?;
        self.status_from(m, &reads)
    }

    /// One `GetAll` per unit, and `GetUnitProcesses` for the view, all at
    /// once.
    fn status_and_view(&self, m: &Manifest) -> Result<(ServiceStatus, ManagerView), BackendError> {
        let mut reads = self.read_units(m, true)?;
        let status = self.status_from(m, &reads)?;
        let processes = std::mem::take(&mut reads.processes);
        Ok((status, view_from(&reads.service, processes)?))
    }

    fn manager_view(&self, m: &Manifest) -> Result<ManagerView, BackendError> {
        self.unit_view(&m.service_unit())
    }

    fn logs_command(&self, m: &Manifest, follow: bool, lines: Option<u32>) -> Command {
        let mut cmd = Command::new("journalctl");
        cmd.args(journalctl_args(self.scope, m, follow, lines));
        cmd
    }
}

/// `journalctl` arguments for a service's logs; pure.
pub fn journalctl_args(
    scope: Scope,
    m: &Manifest,
    follow: bool,
    lines: Option<u32>,
) -> Vec<String> {
    let mut args = Vec::new();
    if scope == Scope::User {
        args.push("--user".to_owned());
    }
    for unit in units(m) {
        args.push("-u".to_owned());
        args.push(unit);
    }
    if let Some(n) = lines {
        args.push("-n".to_owned());
        args.push(n.to_string());
    }
    if follow {
        args.push("-f".to_owned());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::from_toml(&format!(
            "name = \"echo\"\ncommand = [\"/bin/echo\"]\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn user_bus_address_prefers_session_variable() {
        assert_eq!(
            user_bus_address(Some("unix:path=/x"), Some(Path::new("/run/user/1"))).unwrap(),
            "unix:path=/x"
        );
        assert_eq!(
            user_bus_address(Some(""), Some(Path::new("/run/user/1"))).unwrap(),
            "unix:path=/run/user/1/bus"
        );
        let err = user_bus_address(None, None).unwrap_err().to_string();
        assert!(err.contains("XDG_RUNTIME_DIR"), "{err}");
        assert!(err.contains("sudo"), "the message says what to do: {err}");
    }

    #[test]
    fn steps_act_on_the_socket_when_socket_activated() {
        let sd = Systemd::new(Scope::System).unwrap();
        let m = manifest("[[socket]]\nlisten = \"unix:{runtime}/echo.sock\"\n");
        let files = vec![
            PathBuf::from("/etc/systemd/system/echo.service"),
            PathBuf::from("/etc/systemd/system/echo.socket"),
        ];
        let shown: Vec<String> = sd
            .install_steps(&m, &files, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "reload the manager (daemon-reload)",
                "enable echo.service echo.socket",
                "start echo.socket"
            ]
        );
        assert_eq!(
            sd.stop_steps(&m),
            [
                Step::Stop("echo.socket".into()),
                Step::Stop("echo.service".into())
            ]
        );
        assert_eq!(
            sd.restart_steps(&m)[1..],
            [
                Step::Start("echo.socket".into()),
                Step::Restart("echo.service".into())
            ]
        );
        assert_eq!(
            sd.start_steps(&m).last(),
            Some(&Step::Start("echo.socket".into()))
        );
        let (before, after) = sd.uninstall_steps(&m, &files);
        assert_eq!(
            before.last(),
            Some(&Step::Disable(vec![
                "echo.service".into(),
                "echo.socket".into()
            ]))
        );
        assert_eq!(after.last(), Some(&Step::Reload));
    }

    #[test]
    fn reinstall_stops_a_socket_whose_socket_section_changed() {
        fn rewrite<'a>(path: &'a Path, old: &'a str, new: &'a str) -> Rewrite<'a> {
            Rewrite { path, old, new }
        }
        let sd = Systemd::new(Scope::System).unwrap();
        let files = [
            PathBuf::from("/etc/systemd/system/echo.service"),
            PathBuf::from("/etc/systemd/system/echo.socket"),
        ];
        let unit = |desc: &str, listen: &str| {
            format!(
                "# Generated\n[Unit]\nDescription={desc}\n\n[Socket]\nListenStream={listen}\nAccept=no\n\n[Install]\nWantedBy=sockets.target\n"
            )
        };
        let (a, b) = (unit("x", "/run/a.sock"), unit("x", "/run/b.sock"));
        let renamed = unit("y", "/run/a.sock");
        let (socket, service) = (files[1].as_path(), files[0].as_path());
        assert_eq!(
            sd.prepare_steps(None, &[], &[rewrite(socket, &a, &b)]),
            [Step::Stop("echo.socket".into())]
        );
        // on a reinstall the service is stopped too, so it gets the new fds
        let m = manifest("[[socket]]\nlisten = \"unix:/run/a.sock\"\n");
        assert_eq!(
            sd.prepare_steps(Some(&m), &[], &[rewrite(socket, &a, &b)]),
            [
                Step::Stop("echo.socket".into()),
                Step::Stop("echo.service".into())
            ]
        );
        // a new socket (nothing on disk): only the service needs stopping
        assert_eq!(
            sd.prepare_steps(Some(&m), &[], &[rewrite(socket, "", &b)]),
            [Step::Stop("echo.service".into())]
        );
        assert_eq!(
            sd.prepare_steps(Some(&m), &[], &[rewrite(socket, &a, &renamed)]),
            [],
            "only [Socket] changes need new fds"
        );
        // a rewritten service is applied by the reload (and the next restart)
        let exec = rewrite(
            service,
            "[Service]\nExecStart=/a\n",
            "[Service]\nExecStart=/b\n",
        );
        assert_eq!(sd.prepare_steps(Some(&m), &[], &[exec]), []);
    }

    #[test]
    fn logs_hint_names_the_service_a_socket_triggers() {
        use zbus::zvariant::{OwnedValue, Value};
        let props = |unit: &str, triggers: &[&str]| UnitProps {
            unit: unit.to_owned(),
            map: [(
                "Triggers".to_owned(),
                OwnedValue::try_from(Value::from(triggers.to_vec())).unwrap(),
            )]
            .into(),
        };
        // `web-admin` could be a socket of `web` or a service of its own
        let socket = props("web-admin.socket", &["web.service"]);
        assert_eq!(socket.service_name(), "web");
        assert_eq!(props("web-admin.service", &[]).service_name(), "web-admin");
        assert_eq!(props("job.timer", &["job.service"]).service_name(), "job");
        let bare = UnitProps {
            unit: "lone.socket".into(),
            map: std::collections::HashMap::new(),
        };
        assert_eq!(bare.service_name(), "lone");
    }

    #[test]
    fn section_reads_one_section_without_comments() {
        let unit =
            "[Unit]\nA=1\n[Socket]\n# c\nListenStream=/a\n\n; d\nBacklog=5\n[Install]\nB=2\n";
        assert_eq!(section(unit, "Socket"), ["ListenStream=/a", "Backlog=5"]);
        assert_eq!(section(unit, "Unit"), ["A=1"]);
        assert!(section(unit, "Timer").is_empty());
    }

    #[test]
    fn reinstall_retires_the_units_it_no_longer_renders() {
        let sd = Systemd::new(Scope::System).unwrap();
        // two sockets became one: echo-a/echo-b.socket go, echo.socket comes
        let old = manifest(
            "[[socket]]\nname = \"a\"\nlisten = \"unix:/run/a.sock\"\n\
             [[socket]]\nname = \"b\"\nlisten = \"unix:/run/b.sock\"\n",
        );
        let stale = [
            PathBuf::from("/etc/systemd/system/echo-a.socket"),
            PathBuf::from("/etc/systemd/system/echo-b.socket"),
        ];
        assert_eq!(sd.prepare_steps(Some(&old), &[], &[]), []);
        let names = vec!["echo-a.socket".to_owned(), "echo-b.socket".to_owned()];
        assert_eq!(
            sd.prepare_steps(Some(&old), &stale, &[]),
            [
                Step::Stop("echo-a.socket".into()),
                Step::Stop("echo-b.socket".into()),
                Step::Disable(names.clone()),
                Step::ResetFailed(names),
            ]
        );
        // A record that still lists them (retirement failed): uninstall
        // stops them too, before the service.
        let new = manifest("[[socket]]\nlisten = \"unix:/run/a.sock\"\n");
        let mut files = vec![
            PathBuf::from("/etc/systemd/system/echo.service"),
            PathBuf::from("/etc/systemd/system/echo.socket"),
        ];
        files.extend(stale);
        let (before, _) = sd.uninstall_steps(&new, &files);
        let stops: Vec<&str> = before
            .iter()
            .filter_map(|s| match s {
                Step::Stop(u) => Some(u.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            stops,
            [
                "echo-a.socket",
                "echo-b.socket",
                "echo.socket",
                "echo.service"
            ]
        );
    }

    #[test]
    fn plain_service_starts_itself_and_no_start_skips_it() {
        let sd = Systemd::new(Scope::System).unwrap();
        let m = manifest("");
        let files = vec![PathBuf::from("/etc/systemd/system/echo.service")];
        assert_eq!(
            sd.install_steps(&m, &files, false),
            [Step::Reload, Step::Enable(vec!["echo.service".into()])]
        );
        assert_eq!(
            sd.restart_steps(&m),
            [
                Step::ResetFailed(vec!["echo.service".into()]),
                Step::Restart("echo.service".into())
            ]
        );
        assert_eq!(
            unit_dir(Scope::System, &Dirs::system()),
            PathBuf::from("/etc/systemd/system")
        );
    }

    /// The escaping systemd documents (`avahi-daemon.service` →
    /// `avahi_2ddaemon_2eservice`), a leading digit, and every byte outside
    /// `[A-Za-z0-9]` of a valid unit name.
    #[test]
    fn unit_object_paths_escape_like_sd_bus() {
        let p = |u| unit_object_path(u).replace("/org/freedesktop/systemd1/unit/", "");
        assert_eq!(p("avahi-daemon.service"), "avahi_2ddaemon_2eservice");
        assert_eq!(p("1x.socket"), "_31x_2esocket");
        assert_eq!(p("a1_b:c@d\\.timer"), "a1_5fb_3ac_40d_5c_2etimer");
        assert_eq!(p(""), "_");
    }

    #[test]
    fn journalctl_arguments() {
        let m = manifest("[[socket]]\nlisten = \"tcp:80\"\n");
        assert_eq!(
            journalctl_args(Scope::User, &m, true, Some(20)),
            [
                "--user",
                "-u",
                "echo.socket",
                "-u",
                "echo.service",
                "-n",
                "20",
                "-f"
            ]
        );
        assert_eq!(
            journalctl_args(Scope::System, &manifest(""), false, None),
            ["-u", "echo.service"]
        );
    }
}
